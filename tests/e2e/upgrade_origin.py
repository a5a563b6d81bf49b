#!/usr/bin/env python3
"""A tiny origin that accepts "Upgrade: echo" with 101 Switching Protocols and then echoes
every byte back, prefixed with the upgraded protocol's greeting. Plain on one port, TLS on
another (certificate and key given). Used by test_upgrade.sh; stops after 60 s."""
import socket
import ssl
import sys
import threading

plain_port, tls_port, cert, key = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3], sys.argv[4]


def serve(conn):
    with conn:
        conn.settimeout(10)
        head = b""
        while b"\r\n\r\n" not in head:
            chunk = conn.recv(4096)
            if not chunk:
                return
            head += chunk
        head, rest = head.split(b"\r\n\r\n", 1)
        lines = head.decode("latin-1").split("\r\n")
        headers = {l.split(":", 1)[0].strip().lower(): l.split(":", 1)[1].strip()
                   for l in lines[1:] if ":" in l}
        if headers.get("upgrade", "").lower() != "echo" or \
                "upgrade" not in headers.get("connection", "").lower():
            body = b"no upgrade requested\n"
            conn.sendall(b"HTTP/1.1 400 Bad Request\r\nContent-Length: %d\r\n"
                         b"Connection: close\r\n\r\n%s" % (len(body), body))
            return
        conn.sendall(b"HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\n"
                     b"Upgrade: echo\r\n\r\nhello from echo\n")
        if rest:
            conn.sendall(rest)
        while True:
            data = conn.recv(4096)
            if not data:
                return
            conn.sendall(data)


def listen(port, context):
    server = socket.create_server(("127.0.0.1", port))
    server.settimeout(60)
    while True:
        try:
            conn, _ = server.accept()
        except (socket.timeout, OSError):
            return
        if context is not None:
            try:
                conn = context.wrap_socket(conn, server_side=True)
            except (ssl.SSLError, OSError):
                conn.close()
                continue
        threading.Thread(target=serve, args=(conn,), daemon=True).start()


ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
ctx.load_cert_chain(cert, key)
threading.Thread(target=listen, args=(plain_port, None), daemon=True).start()
listen(tls_port, ctx)
