# spawn process with Python's subprocess, one run after the other:
# process [N] -> runs per second (Debian's /usr/bin/python3).
import os, sys, time, subprocess
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import result, arg

N = arg(1, 1000)
errors = 0
t0 = time.perf_counter()
for _ in range(N):
    if subprocess.run(["/bin/true"]).returncode != 0:
        errors += 1
dt = time.perf_counter() - t0
result("process", "python", n=N, runs_per_s=N / dt, errors=errors)
