"""Opens N keep-alive TLS connections to 127.0.0.1:PORT, sends one
"GET /" on each and reads its 13-byte answer, then holds them all open
and idle, prints "READY <n>" and waits until killed: the load of the
tls_idle benchmark, which measures the server's RSS meanwhile.

    /usr/bin/python3 tlsidle.py PORT N
"""
import socket
import ssl
import sys
import time

port, n = int(sys.argv[1]), int(sys.argv[2])
ctx = ssl.create_default_context()
ctx.check_hostname = False
ctx.verify_mode = ssl.CERT_NONE
REQ = b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"
held = []
for i in range(n):
    raw = socket.create_connection(("127.0.0.1", port), timeout=10)
    s = ctx.wrap_socket(raw, server_hostname="localhost")
    s.sendall(REQ)
    got = b""
    while not got.endswith(b"Hello, World!"):
        d = s.recv(4096)
        if not d:
            sys.exit("connection %d closed early" % i)
        got += d
    held.append(s)
print("READY %d" % len(held), flush=True)
while True:
    time.sleep(60)
