#!/usr/bin/env python3
"""A port that accepts no connection: a listener with a one-slot backlog that never calls
accept(), with its queue filled by connections of its own, so further SYNs are dropped and a
connect() to it times out. Prints "ready" once a connection of its own fills the queue; runs
for 60 s."""
import select
import socket
import sys
import time

port = int(sys.argv[1])
server = socket.socket()
server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
server.bind(("127.0.0.1", port))
server.listen(0)
fillers = []
for _ in range(4):
    s = socket.socket()
    s.setblocking(False)
    try:
        s.connect(("127.0.0.1", port))
    except BlockingIOError:
        pass
    fillers.append(s)
# A filler that completed its handshake sits in the accept queue, which is then full.
deadline = time.monotonic() + 10
while time.monotonic() < deadline:
    _, connected, _ = select.select([], fillers, [], 0.1)
    if any(s.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR) == 0 for s in connected):
        print("ready", flush=True)
        break
time.sleep(60)
