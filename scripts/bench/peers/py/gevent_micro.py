# gevent micro benchmarks: switch [N] | spawn [N] | mem [N] | queue [N] | timers
# | process [N]
import os, sys, time
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import gevent
from gevent.event import Event
from gevent.queue import Queue
from common import status, delays, result, arg

PEER = "gevent"
bench = sys.argv[1]
now = time.perf_counter

if bench == "switch":
    N = arg(2, 1_000_000)  # total yields, split over two greenlets

    def worker(n):
        sleep = gevent.sleep
        for _ in range(n):
            sleep(0)

    t0 = now()
    gevent.joinall([gevent.spawn(worker, N // 2), gevent.spawn(worker, N // 2)])
    dt = now() - t0
    result("switch", PEER, ns_per_switch=dt / N * 1e9)

elif bench == "spawn":
    N = arg(2, 200_000)

    def nop():
        pass

    t0 = now()
    gs = [gevent.spawn(nop) for _ in range(N)]
    gevent.joinall(gs)
    dt = now() - t0
    result("spawn", PEER, ns_per_task=dt / N * 1e9)

elif bench == "mem":
    N = arg(2, 100_000)
    ev = Event()
    parked = [0]

    def waiter():
        parked[0] += 1
        ev.wait()

    base, _ = status()
    t0 = now()
    gs = [gevent.spawn(waiter) for _ in range(N)]
    gevent.sleep(0)  # let every greenlet run up to ev.wait()
    tcreate = now() - t0
    blocked = parked[0]
    rss, hwm = status()
    if N > 200_000:
        # a million tasks: report creation and memory, skip the teardown
        # (minutes of freeing greenlets, which the benchmark does not measure)
        result("mem", PEER, n=N, ok=int(blocked == N), bytes_per_task=(hwm - base) / N,
               rss_mb=rss / 2**20, hwm_mb=hwm / 2**20, base_mb=base / 2**20,
               create_s=tcreate)
        os._exit(0)
    ev.set()
    gevent.joinall(gs)
    ok = blocked == N and all(g.successful() for g in gs)
    result("mem", PEER, n=N, ok=int(ok), bytes_per_task=(hwm - base) / N,
           rss_mb=rss / 2**20, hwm_mb=hwm / 2**20, base_mb=base / 2**20,
           create_s=tcreate)

elif bench == "queue":
    N = arg(2, 1_000_000)
    q = Queue(100)

    def producer():
        put = q.put
        for i in range(N):
            put(i)

    def consumer():
        get = q.get
        for _ in range(N):
            get()

    t0 = now()
    gevent.joinall([gevent.spawn(producer), gevent.spawn(consumer)])
    dt = now() - t0
    result("queue", PEER, ns_per_item=dt / N * 1e9)

elif bench == "timers":
    N = 10_000
    ds = delays(N)
    late = [0.0] * N

    def sleeper(i, d):
        t = now()
        gevent.sleep(d / 1000.0)
        late[i] = now() - t - d / 1000.0

    t0 = now()
    gs = [gevent.spawn(sleeper, i, d) for i, d in enumerate(ds)]
    gevent.joinall(gs)
    dt = now() - t0
    result("timers", PEER, total_ms=dt * 1e3, mean_late_ms=sum(late) / N * 1e3,
           max_late_ms=max(late) * 1e3)
elif bench == "process":
    # N runs of /bin/true, 50 at a time, with gevent.subprocess
    import gevent.subprocess
    from gevent.pool import Pool
    N = arg(2, 1000)
    errors = [0]

    def run():
        if gevent.subprocess.Popen(["/bin/true"]).wait() != 0:
            errors[0] += 1

    pool = Pool(50)
    t0 = now()
    for _ in range(N):
        pool.spawn(run)
    pool.join()
    dt = now() - t0
    result("process", PEER, n=N, runs_per_s=N / dt, errors=errors[0])
else:
    sys.exit("unknown bench " + bench)
