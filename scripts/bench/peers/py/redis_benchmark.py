# redis-benchmark -c CONC (the ceiling of the redis row): SET and GET, as
# many requests as take about SECS seconds in all, against the
# redis-server on PORT; ops/s = requests / time, both tests together.
# Usage: /usr/bin/python3 redis_benchmark.py PORT SECS CONC
import re
import subprocess
import sys
import time

from common import result

port, secs, conc = sys.argv[1], float(sys.argv[2]), sys.argv[3]


def run(n):
    t0 = time.monotonic()
    out = subprocess.run(["redis-benchmark", "-h", "127.0.0.1", "-p", port, "-c", conc,
                          "-n", str(n), "-t", "set,get", "-d", "16", "-q"],
                         capture_output=True, text=True, timeout=secs * 10 + 60).stdout
    took = time.monotonic() - t0
    rates = [float(x) for x in re.findall(r"([\d.]+) requests per second", out.replace("\r", "\n"))]
    if len(rates) != 2:
        raise SystemExit("redis-benchmark said: " + out[-300:])
    return took


n = 20000
took = run(n)  # a short run, to size the real one
n = max(n, int(n * secs / took))
took = run(n)
result("redis", "redis-benchmark", ops_per_s=2 * n / took, errors=0)
