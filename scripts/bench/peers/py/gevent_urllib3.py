# gevent + urllib3: CONC greenlets issue keep-alive GETs for SECS seconds
# through one PoolManager (a pool of CONC connections).
# Usage: /usr/bin/python3 gevent_urllib3.py URL SECS CONC
from gevent import monkey

monkey.patch_all()

import sys  # noqa: E402
import time  # noqa: E402

import gevent  # noqa: E402
import urllib3  # noqa: E402

from common import result  # noqa: E402

url, secs, conc = sys.argv[1], float(sys.argv[2]), int(sys.argv[3])
pool = urllib3.PoolManager(maxsize=conc, retries=False)
count = {"n": 0, "errors": 0}
deadline = time.monotonic() + secs


def worker():
    while time.monotonic() < deadline:
        try:
            r = pool.request("GET", url)
            ok = r.status == 200 and len(r.data) > 0
        except Exception:
            ok = False
        count["n" if ok else "errors"] += 1


t0 = time.monotonic()
gevent.joinall([gevent.spawn(worker) for _ in range(conc)])
result("http_client", "gevent", req_per_s=count["n"] / (time.monotonic() - t0),
       errors=count["errors"])
