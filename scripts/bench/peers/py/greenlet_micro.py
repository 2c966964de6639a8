# raw greenlet (no hub): switch ping-pong | spawn (create + switch into each)
import os, sys, time
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from greenlet import greenlet, getcurrent
from common import result, arg, status

PEER = "greenlet"
bench = sys.argv[1]
now = time.perf_counter

if bench == "switch":
    N = arg(2, 1_000_000)  # total switches (a->b counts one, b->a counts one)
    half = N // 2

    def ping():
        sw = pong.switch
        for _ in range(half):
            sw()

    def pong():
        sw = a.switch
        for _ in range(half):
            sw()

    a = greenlet(ping)
    pong = greenlet(pong)
    t0 = now()
    a.switch()
    dt = now() - t0
    result("switch", PEER, ns_per_switch=dt / N * 1e9)

elif bench == "spawn":
    N = arg(2, 200_000)

    def nop():
        pass

    t0 = now()
    gs = [greenlet(nop) for _ in range(N)]
    for g in gs:
        g.switch()  # runs it to completion; control returns to the parent
    dt = now() - t0
    assert all(g.dead for g in gs)
    result("spawn", PEER, ns_per_task=dt / N * 1e9)

elif bench == "mem":
    # N greenlets parked (switched back to main) in a list, released one by one
    N = arg(2, 100_000)
    main = getcurrent()

    def waiter():
        main.switch()

    base, _ = status()
    t0 = now()
    gs = [greenlet(waiter) for _ in range(N)]
    for g in gs:
        g.switch()
    tcreate = now() - t0
    rss, hwm = status()
    blocked = sum(1 for g in gs if g)  # started and not dead
    if N > 200_000:
        # a million tasks: report creation and memory, skip the teardown
        # (minutes of freeing greenlets, which the benchmark does not measure)
        result("mem", PEER, n=N, ok=int(blocked == N), bytes_per_task=(hwm - base) / N,
               rss_mb=rss / 2**20, hwm_mb=hwm / 2**20, base_mb=base / 2**20,
               create_s=tcreate)
        os._exit(0)
    for g in gs:
        g.switch()
    ok = all(g.dead for g in gs)
    result("mem", PEER, n=N, ok=int(ok), bytes_per_task=(hwm - base) / N,
           rss_mb=rss / 2**20, hwm_mb=hwm / 2**20, base_mb=base / 2**20,
           create_s=tcreate)
else:
    sys.exit("unknown bench " + bench)
