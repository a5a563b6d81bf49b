"""Python's ssl module as a client: CONNECT through the proxy, TLS trusting only the CA file
given, one GET; prints the body. Exit 1 when TLS or the request fails.

usage: tls_client.py PROXY_PORT URL CAFILE
"""
import socket
import ssl
import sys
from urllib.parse import urlsplit

proxy_port, url, cafile = int(sys.argv[1]), urlsplit(sys.argv[2]), sys.argv[3]
host, port = url.hostname, url.port or 443
context = ssl.create_default_context(cafile=cafile)  # only this CA: no system store
with socket.create_connection(("127.0.0.1", proxy_port), timeout=10) as raw:
    raw.sendall(f"CONNECT {host}:{port} HTTP/1.1\r\nHost: {host}:{port}\r\n\r\n".encode())
    reply = b""
    while b"\r\n\r\n" not in reply:
        chunk = raw.recv(4096)
        if not chunk:
            sys.exit("the proxy closed before answering CONNECT")
        reply += chunk
    if reply.split(b" ", 2)[1] != b"200":
        sys.exit("CONNECT refused: " + reply.split(b"\r\n")[0].decode())
    try:
        with context.wrap_socket(raw, server_hostname=host) as tls:
            tls.sendall(f"GET {url.path} HTTP/1.1\r\nHost: {host}:{port}\r\n"
                        "Connection: close\r\n\r\n".encode())
            response = b""
            while chunk := tls.recv(65536):
                response += chunk
    except ssl.SSLError as e:
        sys.exit(f"TLS: {e}")
head, _, body = response.partition(b"\r\n\r\n")
if b" 200 " not in head.split(b"\r\n")[0]:
    sys.exit("status: " + head.split(b"\r\n")[0].decode())
sys.stdout.write(body.decode())
