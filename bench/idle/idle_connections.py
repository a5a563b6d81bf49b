#!/usr/bin/env python3
"""Memory per idle keep-alive client connection of a mintgate binary.

Starts a small keep-alive origin and the gateway (one worker, plain HTTP, loopback only),
opens N client connections that each make one request and then stay open and idle, and
reports the gateway's resident memory before and after, per connection. Run it with the old
and the new binary alternating; the figure is a difference within one process, so the
machine's load barely moves it.

    bench/idle/idle_connections.py --mintgate build/release/mintgate [--connections 10000]
"""
import argparse
import http.server
import os
import resource
import socket
import subprocess
import sys
import tempfile
import threading
import time


class Origin(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    # The head and the body are two writes: without this, Nagle's algorithm and the
    # gateway's delayed ACK hold each response for 40 ms, and 10,000 clients take minutes.
    disable_nagle_algorithm = True

    def do_GET(self):  # noqa: N802 (the stdlib's name)
        body = b"ok\n"
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise RuntimeError("no VmRSS")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mintgate", required=True)
    parser.add_argument("--connections", type=int, default=10000)
    args = parser.parse_args()
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    if hard < args.connections + 100:
        sys.exit(f"the open-file limit {hard} is below {args.connections + 100}")

    origin = http.server.ThreadingHTTPServer(("127.0.0.2", 0), Origin)
    threading.Thread(target=origin.serve_forever, daemon=True).start()
    origin_port = origin.server_address[1]
    work = tempfile.mkdtemp(prefix="mgidle")
    proxy, admin = free_port(), free_port()
    with open(f"{work}/m.toml", "w") as f:
        f.write(f"""[server]
listen = ["127.0.0.1:{proxy}"]
workers = 1
allow_loopback_upstreams = true
state_dir = "{work}/state"
max_connections = {args.connections + 100}
max_connections_per_client = 0
[admin]
listen = "127.0.0.1:{admin}"
[inspection]
enabled = false
[log]
access = "{work}/access.log"
[timeouts]
client_idle = 600
""")
    gateway = subprocess.Popen([args.mintgate, "run", "-c", f"{work}/m.toml"],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        for _ in range(100):
            try:
                socket.create_connection(("127.0.0.1", proxy), timeout=1).close()
                break
            except OSError:
                time.sleep(0.1)
        request = (f"GET http://127.0.0.2:{origin_port}/ HTTP/1.1\r\n"
                   f"Host: 127.0.0.2:{origin_port}\r\n\r\n").encode()

        def one(sock):
            sock.sendall(request)
            got = b""
            while not got.endswith(b"ok\n"):
                chunk = sock.recv(4096)
                if not chunk:
                    raise RuntimeError("the gateway closed a connection")
                got += chunk

        # Warm up: the worker's buffers, the pool, the allocator's arenas.
        for _ in range(200):
            with socket.create_connection(("127.0.0.1", proxy)) as s:
                one(s)
        time.sleep(0.5)
        before = rss_kib(gateway.pid)
        clients = []
        for _ in range(args.connections):
            s = socket.create_connection(("127.0.0.1", proxy))
            one(s)
            clients.append(s)
        time.sleep(1)
        after = rss_kib(gateway.pid)
        per = (after - before) / args.connections
        print(f"{os.path.basename(args.mintgate)}: {args.connections} idle keep-alive clients: "
              f"RSS {before} KiB -> {after} KiB, {per:.2f} KiB per connection")
        for s in clients:
            s.close()
    finally:
        gateway.terminate()
        gateway.wait(timeout=30)
        origin.shutdown()


if __name__ == "__main__":
    main()
