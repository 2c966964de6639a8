# gevent + redis-py (Debian's python3-redis): CONC greenlets, each with its
# own connection, alternate SET and GET of their own key for SECS seconds
# against the redis-server on PORT.
# Usage: /usr/bin/python3 gevent_redis.py PORT SECS CONC
from gevent import monkey

monkey.patch_all()

import sys  # noqa: E402
import time  # noqa: E402

import gevent  # noqa: E402
import redis  # noqa: E402

from common import result  # noqa: E402

port, secs, conc = int(sys.argv[1]), float(sys.argv[2]), int(sys.argv[3])
count = {"n": 0, "errors": 0}
deadline = time.monotonic() + secs
value = b"v" * 16


def worker(i):
    c = redis.Redis(host="127.0.0.1", port=port, single_connection_client=True)
    key = "key:%d" % i
    while time.monotonic() < deadline:
        try:
            c.set(key, value)
            ok = c.get(key) == value
        except Exception:
            ok = False
        if ok:
            count["n"] += 2
        else:
            count["errors"] += 1
    c.close()


t0 = time.monotonic()
gevent.joinall([gevent.spawn(worker, i) for i in range(conc)])
result("redis", "gevent", ops_per_s=count["n"] / (time.monotonic() - t0),
       errors=count["errors"])
