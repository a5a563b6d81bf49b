#!/usr/bin/env python3
"""Asks for "Upgrade: echo" through the proxy, plain (absolute-form) or inside CONNECT + TLS
(trusting the given CA), then checks the greeting and that bytes sent both ways come back.
Prints "upgraded" on success, else what went wrong, and exits 1."""
import socket
import ssl
import sys

proxy_port, mode, host, port = int(sys.argv[1]), sys.argv[2], sys.argv[3], int(sys.argv[4])
cafile = sys.argv[5] if len(sys.argv) > 5 else None


def read_until(sock, marker):
    data = b""
    while marker not in data:
        chunk = sock.recv(4096)
        if not chunk:
            break
        data += chunk
    return data


sock = socket.create_connection(("127.0.0.1", proxy_port), timeout=10)
target = f"http://{host}:{port}/ws"
if mode == "tls":
    sock.sendall(f"CONNECT {host}:{port} HTTP/1.1\r\nHost: {host}:{port}\r\n\r\n".encode())
    answer = read_until(sock, b"\r\n\r\n")
    if not answer.startswith(b"HTTP/1.1 200"):
        sys.exit(f"CONNECT: {answer!r}")
    ctx = ssl.create_default_context(cafile=cafile)
    ctx.set_alpn_protocols(["http/1.1"])
    sock = ctx.wrap_socket(sock, server_hostname=host)
    target = "/ws"
sock.sendall(f"GET {target} HTTP/1.1\r\nHost: {host}:{port}\r\nConnection: Upgrade\r\n"
             f"Upgrade: echo\r\n\r\n".encode())
answer = read_until(sock, b"hello from echo\n")
if not answer.startswith(b"HTTP/1.1 101") or not answer.endswith(b"hello from echo\n"):
    sys.exit(f"upgrade answer: {answer!r}")
for message in (b"ping\n", b"x" * 100000 + b"\n"):
    sock.sendall(message)
    echoed = b""
    while len(echoed) < len(message):
        chunk = sock.recv(65536)
        if not chunk:
            break
        echoed += chunk
    if echoed != message:
        sys.exit(f"echo: sent {len(message)} bytes, got {len(echoed)}")
print("upgraded")
