#!/usr/bin/env bash
# Every connection that ends in a failure leaves an access-log record saying so: `error` is
# "source/kind" (downstream, upstream, dns, client_tls, origin_tls, policy, internal) and
# `note` the reason in words. Before the error model, a 408 for a slow head, a client that
# left before its ClientHello or during the TLS handshake, a broken TLS record from a
# decrypting client and a request body cut short were logged without a cause or not at all.
set -euo pipefail
source "$(dirname "$0")/lib.sh"

start_tls_lab
echo "hello" >"$work/www/hello.txt"
lab_config "$work/mintgate.toml"
cat >>"$work/mintgate.toml" <<TOML
[timeouts]
request_head = 0.5
tls_handshake = 5
[inspection]
connect_ports = [$NGINX_TLS_PORT]
extra_trust = ["$work/pki/ca.pem"]
[log]
access = "$work/access.log"
TOML
start_mintgate gateway "$work/mintgate.toml" "$proxy"
ca="$work/state/ca/ca.pem"

python3 - "$proxy" "$origin" "$NGINX_TLS_PORT" "$ca" <<'PY'
import socket, ssl, sys, time
proxy, origin, tls_port, ca = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]

def connect():
    s = socket.create_connection(("127.0.0.1", proxy))
    s.settimeout(20)
    return s

def drain(s):  # reads until the gateway closes (bounded by the socket timeout)
    try:
        while s.recv(65536):
            pass
    except (ConnectionResetError, socket.timeout):
        pass

def connect_tunnel():
    s = connect()
    s.sendall(f"CONNECT www.lab.test:{tls_port} HTTP/1.1\r\nHost: www.lab.test\r\n\r\n".encode())
    reply = b""
    while b"\r\n\r\n" not in reply:
        reply += s.recv(4096)
    assert reply.startswith(b"HTTP/1.1 200"), reply
    return s

# 1. A request head that never ends: 408 after request_head.
s = connect()
s.sendall(b"GET http://www.lab.test:%d/hello.txt HTTP/1.1\r\nHost: www" % origin)
drain(s)

# 2. A CONNECT whose client leaves before sending a ClientHello.
s = connect_tunnel()
s.close()

# 3. A client that sends its ClientHello and leaves during the handshake.
ctx = ssl.create_default_context(cafile=ca)
incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
tls = ctx.wrap_bio(incoming, outgoing, server_hostname="www.lab.test")
try:
    tls.do_handshake()
except ssl.SSLWantReadError:
    pass
s = connect_tunnel()
s.sendall(outgoing.read())
s.close()

# 4. A decrypting client that completes the handshake, then sends a record the gateway
#    cannot decrypt.
s = connect_tunnel()
incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
tls = ctx.wrap_bio(incoming, outgoing, server_hostname="www.lab.test")
while True:
    try:
        tls.do_handshake()
        break
    except ssl.SSLWantReadError:
        s.sendall(outgoing.read())
        data = s.recv(65536)
        assert data, "the gateway closed during the handshake"
        incoming.write(data)
s.sendall(outgoing.read())
s.sendall(b"\x17\x03\x03\x00\x20" + b"\x00" * 32)
drain(s)

# 5. An upload cut short by the client (the origin waits for the rest).
s = connect()
s.sendall(b"PUT http://www.lab.test:%d/upload/cut.bin HTTP/1.1\r\nHost: www.lab.test\r\n"
          b"Content-Length: 1000\r\n\r\n" % origin + b"x" * 10)
time.sleep(0.3)
s.close()
PY

# The records, in any order (five connections, one record each).

for _ in $(seq 50); do
  [[ $(grep -c '"error"' "$work/access.log" || true) -ge 5 ]] && break
  sleep 0.1
done
python3 - "$work/access.log" <<'PY' || fail "abort records"
import json, sys
records = [json.loads(line) for line in open(sys.argv[1])]
def find(error, note_part):
    hits = [r for r in records if r.get("error") == error and note_part in r.get("note", "")]
    assert hits, f"no record with error {error!r} and a note with {note_part!r}: {records}"
    return hits[0]
r = find("downstream/timeout", "request head did not arrive within 0.5 s")
assert r["status"] == 408, r
r = find("downstream/closed", "before its ClientHello")
assert r["method"] == "CONNECT" and r["status"] == 200, r
r = find("client_tls/closed", "during the TLS handshake")
assert r["method"] == "CONNECT", r
r = find("client_tls/malformed", "client TLS")
r = find("downstream/closed", "before the exchange ended")
assert r["method"] == "PUT", r
print("records:", len(records))
PY
echo "PASS: abort reasons in the access log"
