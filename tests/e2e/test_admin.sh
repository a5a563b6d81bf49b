#!/usr/bin/env bash
# The admin listener's defences: a connection that does not deliver a complete request within
# timeouts.request_head (1 s here) is answered 408 and closed; requests larger than an admin
# request can need are refused; a request whose Host is not the listener's address (DNS
# rebinding) is refused.
set -euo pipefail
source "$(dirname "$0")/lib.sh"

proxy=$(free_port)
admin=$(free_port)
config="$work/mintgate.toml"
cat >"$config" <<TOML
[server]
listen = ["127.0.0.1:$proxy"]
workers = 1
state_dir = "$work/state"
[admin]
listen = "127.0.0.1:$admin"
[timeouts]
request_head = 1
TOML
start_mintgate gateway "$config" "$proxy"
base="http://127.0.0.1:$admin"

# --- slow loris: part of a request, then nothing. The server must close the connection
# within the timeout (1 s; 4 s allows for a loaded machine), having answered 408.
python3 - "$admin" >"$work/loris.out" <<'PY' || fail "slow loris: $(cat "$work/loris.out")"
import socket, sys, time
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])))
s.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ")
s.settimeout(8)
start, data = time.monotonic(), b""
try:
    while True:
        chunk = s.recv(4096)
        if not chunk:
            break
        data += chunk
except socket.timeout:
    print("still open after 8 s; got %r" % data)
    sys.exit(1)
took = time.monotonic() - start
print("closed after %.1f s: %r" % (took, data[:40]))
sys.exit(0 if took < 4 and data.startswith(b"HTTP/1.1 408 ") else 1)
PY
# A connection that sends nothing at all is closed as well.
python3 - "$admin" >"$work/silent.out" <<'PY' || fail "silent client: $(cat "$work/silent.out")"
import socket, sys, time
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])))
s.settimeout(8)
start = time.monotonic()
try:
    while s.recv(4096):
        pass
except socket.timeout:
    print("still open after 8 s")
    sys.exit(1)
print("closed after %.1f s" % (time.monotonic() - start))
sys.exit(0 if time.monotonic() - start < 4 else 1)
PY
# The listener still serves after both.
[[ $(curl -s --max-time 5 "$base/healthz") == ok ]] || fail "/healthz after the slow clients"

# --- size bounds: a 20 KiB header and a 100 KiB body are more than any admin request needs.
big=$(head -c 20000 /dev/zero | tr '\0' a)
code=$(curl -s -o /dev/null -w '%{http_code}' --max-time 5 -H "X-Big: $big" "$base/healthz")
[[ $code == 431 ]] || fail "a 20 KiB request head: $code"
head -c 100000 /dev/zero >"$work/body.bin"
code=$(curl -s -o /dev/null -w '%{http_code}' --max-time 5 --data-binary "@$work/body.bin" \
  "$base/healthz")
[[ $code == 413 ]] || fail "a 100 KiB request body: $code"
code=$(curl -s -o /dev/null -w '%{http_code}' --max-time 5 -H "Transfer-Encoding: chunked" \
  --data-binary "@$work/body.bin" "$base/healthz")
[[ $code == 413 ]] || fail "a 100 KiB chunked request body: $code"

# --- DNS rebinding: a page at evil.example, its name now resolving to 127.0.0.1, sends its own
# name as Host. Refused on every endpoint; the listener's own address (or localhost) is fine.
for path in /healthz /metrics /readiness /audit; do
  code=$(curl -s -o "$work/rebind.txt" -w '%{http_code}' --max-time 5 \
    --resolve "evil.example:$admin:127.0.0.1" "http://evil.example:$admin$path")
  [[ $code == 403 ]] || fail "Host evil.example on $path: $code"
  grep -q "does not name this admin listener" "$work/rebind.txt" ||
    fail "403 without a reason: $(cat "$work/rebind.txt")"
done
code=$(curl -s -o /dev/null -w '%{http_code}' --max-time 5 -X POST -H "Host: evil.example" \
  "$base/reload")
[[ $code == 403 ]] || fail "POST /reload with Host evil.example: $code"
grep -Eq "configuration reloaded|reload rejected" "$work/gateway.log" && fail "a refused POST /reload reloaded"
[[ $(curl -s --max-time 5 "http://localhost:$admin/healthz") == ok ]] || fail "Host localhost"
code=$(curl -s -o /dev/null -w '%{http_code}' --max-time 5 -H "Host: 127.0.0.1:1" "$base/healthz")
[[ $code == 403 ]] || fail "Host with another port: $code"

echo "PASS: admin listener timeouts, bounds and Host check"
