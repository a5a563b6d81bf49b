"""gnutls-cli as a client through the proxy: it connects in plain mode (--starttls), this
script writes the CONNECT request on its stdin and waits for the 200, then SIGALRM makes it
start TLS (trusting only the CA file given, verifying the host name) and the GET is written.
Prints the body; exit 1 when TLS or the request fails.

usage: gnutls_client.py PROXY_PORT URL CAFILE
"""
import os
import select
import signal
import subprocess
import sys
import time
from urllib.parse import urlsplit

proxy_port, url, cafile = sys.argv[1], urlsplit(sys.argv[2]), sys.argv[3]
host, port = url.hostname, url.port or 443
cli = subprocess.Popen(
    ["gnutls-cli", "--starttls", "--x509cafile", cafile, "--sni-hostname", host,
     "--verify-hostname", host, "--port", proxy_port, "127.0.0.1"],
    stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
deadline = time.monotonic() + 10


def read_until(marker):
    """stdout until `marker` (or the end, or the deadline)."""
    out = b""
    while marker not in out and time.monotonic() < deadline:
        ready, _, _ = select.select([cli.stdout], [], [], 0.1)
        if ready:
            chunk = os.read(cli.stdout.fileno(), 65536)
            if not chunk:
                break
            out += chunk
    return out


cli.stdin.write(f"CONNECT {host}:{port} HTTP/1.1\r\nHost: {host}:{port}\r\n\r\n".encode())
cli.stdin.flush()
reply = read_until(b"\r\n\r\n")
if b" 200 " not in reply:
    cli.kill()
    sys.exit("CONNECT: " + repr(reply[:200]))
cli.send_signal(signal.SIGALRM)  # start TLS now
# The request only once the handshake has ended: written earlier, it would go out in plain.
status = read_until(b"- Options:")
if b"- Options:" not in status:
    cli.kill()
    lines = [l for l in status.decode(errors="replace").splitlines() if l.startswith("***")]
    sys.exit("gnutls-cli: " + (lines[-1] if lines else "no handshake"))
cli.stdin.write(f"GET {url.path} HTTP/1.1\r\nHost: {host}:{port}\r\n"
                "Connection: close\r\n\r\n".encode())
try:
    cli.stdin.flush()
except BrokenPipeError:
    pass  # gnutls-cli already gave up (a certificate it does not trust)
response = read_until(b"\r\n\r\n")
response += read_until(b"\x00")  # the rest, until the server closes
try:
    cli.wait(timeout=max(0.1, deadline - time.monotonic()))
except subprocess.TimeoutExpired:
    cli.kill()
start = response.find(b"HTTP/1.1 ")
head, _, body = response[max(start, 0):].partition(b"\r\n\r\n")
if start < 0 or not head.startswith(b"HTTP/1.1 200 "):
    sys.exit("gnutls-cli: no 200 response: " + repr(response[-200:]))
if b"non-properly terminated" in response:
    sys.exit("gnutls-cli: the server closed without close_notify (a truncation, to a client)")
# gnutls-cli adds its own status lines to what the server sent ("*** ..." on errors, "- Peer
# has closed the GnuTLS connection" after the server's close_notify).
sys.stdout.write("".join(l for l in body.decode(errors="replace").splitlines(True)
                         if not l.startswith(("*** ", "- Peer has closed"))))
