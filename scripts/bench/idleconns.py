#!/usr/bin/python3
"""The http_idle row of scripts/bench/compare: how much memory a server
spends on idle keep-alive connections.

    idleconns.py PORT N PID NAME

Opens N connections to 127.0.0.1:PORT, sends one GET on each and reads
its whole response, so that every connection is a kept-alive idle one,
waits two seconds, and prints

    RESULT bench=http_idle peer=NAME bytes_per_conn=B rss_mb=M conns=N

with B = (RSS of the server now - RSS before) / N, RSS being the sum of
VmRSS over PID and its descendants (nginx's master and worker).  Fails if
the server closed any of them.  Only the standard library is used.
"""
import os
import selectors
import socket
import sys
import time

REQUEST = b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"


def tree(pid):
    """pid and its descendants."""
    children = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open("/proc/%s/stat" % entry) as f:
                stat = f.read()
        except OSError:
            continue
        ppid = int(stat[stat.rindex(")") + 2:].split()[1])
        children.setdefault(ppid, []).append(int(entry))
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        todo.extend(children.get(p, []))
    return out


def rss(pid):
    total = 0
    for p in tree(pid):
        try:
            with open("/proc/%d/status" % p) as f:
                for line in f:
                    if line.startswith("VmRSS:"):
                        total += int(line.split()[1]) * 1024
        except OSError:
            pass
    return total


def complete(buf):
    """Whether buf holds a whole response (content-length framing)."""
    head, sep, body = buf.partition(b"\r\n\r\n")
    if not sep:
        return False
    for line in head.split(b"\r\n")[1:]:
        k, _, v = line.partition(b":")
        if k.strip().lower() == b"content-length":
            return len(body) >= int(v)
    return False


def main():
    port, n, pid, name = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
    time.sleep(0.5)
    before = rss(pid)
    sel = selectors.DefaultSelector()
    socks, pending, done = [], 0, 0
    deadline = time.monotonic() + 120
    opened = 0
    while done < n:
        while opened < n and pending < 500:  # a few hundred handshakes at a time
            s = socket.socket()
            s.setblocking(False)
            s.connect_ex(("127.0.0.1", port))
            socks.append(s)
            sel.register(s, selectors.EVENT_WRITE, [b"", False])
            opened += 1
            pending += 1
        if time.monotonic() > deadline:
            sys.exit("only %d of %d connections answered in time" % (done, n))
        for key, ev in sel.select(1):
            s, st = key.fileobj, key.data
            if ev & selectors.EVENT_WRITE and not st[1]:
                err = s.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
                if err:
                    sys.exit("connect failed: %s" % os.strerror(err))
                s.send(REQUEST)
                st[1] = True
                sel.modify(s, selectors.EVENT_READ, st)
            elif ev & selectors.EVENT_READ:
                data = s.recv(4096)
                if not data:
                    sys.exit("the server closed a connection")
                st[0] += data
                if complete(st[0]):
                    sel.unregister(s)
                    pending -= 1
                    done += 1
    time.sleep(2)
    for s in socks:  # none closed meanwhile
        s.setblocking(False)
        try:
            if s.recv(1) == b"":
                sys.exit("the server closed an idle connection")
        except BlockingIOError:
            pass
    after = rss(pid)
    print("RESULT bench=http_idle peer=%s bytes_per_conn=%.0f rss_mb=%.1f conns=%d"
          % (name, (after - before) / n, after / 2**20, n), flush=True)
    for s in socks:
        s.close()


if __name__ == "__main__":
    main()
