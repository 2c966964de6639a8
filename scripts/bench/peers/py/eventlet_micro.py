# eventlet micro benchmarks: switch [N] | spawn [N] | mem [N] | queue [N] | timers
import os, sys, time
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import eventlet
from eventlet.event import Event
from eventlet.queue import Queue
from common import status, delays, result, arg

PEER = "eventlet"
bench = sys.argv[1]
now = time.perf_counter

if bench == "switch":
    N = arg(2, 1_000_000)

    def worker(n):
        sleep = eventlet.sleep
        for _ in range(n):
            sleep(0)

    t0 = now()
    a = eventlet.spawn(worker, N // 2)
    b = eventlet.spawn(worker, N // 2)
    a.wait(); b.wait()
    dt = now() - t0
    result("switch", PEER, ns_per_switch=dt / N * 1e9)

elif bench == "spawn":
    N = arg(2, 200_000)

    def nop():
        pass

    t0 = now()
    gs = [eventlet.spawn(nop) for _ in range(N)]
    for g in gs:
        g.wait()
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
    gs = [eventlet.spawn(waiter) for _ in range(N)]
    eventlet.sleep(0)
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
    ev.send(True)
    for g in gs:
        g.wait()
    ok = blocked == N
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
    a = eventlet.spawn(producer)
    b = eventlet.spawn(consumer)
    a.wait(); b.wait()
    dt = now() - t0
    result("queue", PEER, ns_per_item=dt / N * 1e9)

elif bench == "timers":
    N = 10_000
    ds = delays(N)
    late = [0.0] * N

    def sleeper(i, d):
        t = now()
        eventlet.sleep(d / 1000.0)
        late[i] = now() - t - d / 1000.0

    t0 = now()
    gs = [eventlet.spawn(sleeper, i, d) for i, d in enumerate(ds)]
    for g in gs:
        g.wait()
    dt = now() - t0
    result("timers", PEER, total_ms=dt * 1e3, mean_late_ms=sum(late) / N * 1e3,
           max_late_ms=max(late) * 1e3)
else:
    sys.exit("unknown bench " + bench)
