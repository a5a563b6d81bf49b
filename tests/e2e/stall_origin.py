#!/usr/bin/env python3
"""An origin that stalls, for the timeout tests: on 127.0.0.1:PORT it reads each request head
and then, by MODE, never answers ("silent"), or sends a response head and a first part of a
body promised to be longer and then nothing ("headers"). Holds every connection for 60 s."""
import socket
import sys
import threading
import time

port, mode = int(sys.argv[1]), sys.argv[2]
server = socket.socket()
server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
server.bind(("127.0.0.1", port))
server.listen(16)


def serve(conn):
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = conn.recv(4096)
        if not chunk:
            return
        data += chunk
    if mode == "headers":
        conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\nfirst part")
    time.sleep(60)
    conn.close()


while True:
    c, _ = server.accept()
    threading.Thread(target=serve, args=(c,), daemon=True).start()
