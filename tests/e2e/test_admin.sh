#!/usr/bin/env bash
# The admin listener's defences: a connection that does not deliver a complete request within
# timeouts.request_head (1 s here) is answered 408 and closed; requests larger than an admin
# request can need are refused; a request whose Host is not the listener's address (DNS
# rebinding) is refused; every endpoint but /healthz needs the bearer token.
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

# --- the bearer token: generated 0600 in state_dir at first start, needed by every endpoint
# but /healthz, never logged.
token_file="$work/state/admin.token"
[[ $(stat -c %a "$token_file") == 600 ]] || fail "admin.token mode $(stat -c %a "$token_file")"
token=$(admin_token)
[[ $token =~ ^[0-9a-f]{64}$ ]] || fail "admin token format: $token"
grep -qF "$token" "$work/gateway.log" && fail "the admin token was logged"
grep -qF "created the admin token in $token_file" "$work/gateway.log" ||
  fail "token creation not announced: $(cat "$work/gateway.log")"
for path in /metrics /readiness /audit; do
  code=$(curl -s -D "$work/headers.txt" -o /dev/null -w '%{http_code}' --max-time 5 "$base$path")
  [[ $code == 401 ]] || fail "$path without a token: $code"
  grep -qi '^WWW-Authenticate: Bearer realm="mintgate admin"' "$work/headers.txt" ||
    fail "401 without a Bearer challenge: $(cat "$work/headers.txt")"
  code=$(curl -s -o /dev/null -w '%{http_code}' --max-time 5 \
    -H "Authorization: Bearer 0000000000000000000000000000000000000000000000000000000000000000" \
    "$base$path")
  [[ $code == 401 ]] || fail "$path with a wrong token: $code"
  code=$(admin_curl -o /dev/null -w '%{http_code}' "$base$path")
  [[ $code == 200 ]] || fail "$path with the token: $code"
done
[[ $(curl -s --max-time 5 "$base/healthz") == ok ]] || fail "/healthz without a token"

# POST /reload: refused without the token (nothing reloads), applied with it.
code=$(curl -s -o /dev/null -w '%{http_code}' --max-time 5 -X POST "$base/reload")
[[ $code == 401 ]] || fail "POST /reload without a token: $code"
grep -Eq "configuration reloaded|reload rejected" "$work/gateway.log" &&
  fail "POST /reload without a token reloaded"
code=$(admin_curl --max-time 20 -o "$work/reload.json" -w '%{http_code}' -X POST "$base/reload")
[[ $code == 200 ]] || fail "POST /reload with the token: $code $(cat "$work/reload.json")"
grep -q "configuration reloaded" "$work/gateway.log" || fail "the reload was not logged"

# A new token in the file applies after a reload, not before.
new_token=$(openssl rand -hex 32)
echo "$new_token" >"$token_file"
code=$(curl -s -o /dev/null -w '%{http_code}' --max-time 5 -H "Authorization: Bearer $new_token" \
  "$base/metrics")
[[ $code == 401 ]] || fail "the new token before the reload: $code"
code=$(curl -s -o /dev/null -w '%{http_code}' --max-time 20 -X POST \
  -H "Authorization: Bearer $token" "$base/reload")
[[ $code == 200 ]] || fail "reload to the new token: $code"
code=$(curl -s -o /dev/null -w '%{http_code}' --max-time 5 -H "Authorization: Bearer $token" \
  "$base/metrics")
[[ $code == 401 ]] || fail "the old token after the reload: $code"
[[ $(admin_curl -o /dev/null -w '%{http_code}' "$base/metrics") == 200 ]] ||
  fail "the new token after the reload"

# `mintgate ca readiness` reads the token from the configuration's state_dir, or --token-file.
"$MINTGATE" ca readiness -c "$config" >"$work/ready.txt" 2>&1 ||
  fail "ca readiness with the config's token: $(cat "$work/ready.txt")"
grep -q "clients tracked" "$work/ready.txt" || fail "ca readiness: $(cat "$work/ready.txt")"
echo "not-the-token-0123456789abcdef" >"$work/wrong.token"
rc=0
"$MINTGATE" ca readiness -c "$config" --token-file "$work/wrong.token" >"$work/ready.txt" 2>&1 ||
  rc=$?
[[ $rc == 3 ]] || fail "ca readiness with a wrong token exited $rc"
grep -q "refused the token from $work/wrong.token (401)" "$work/ready.txt" ||
  fail "wrong token not explained: $(cat "$work/ready.txt")"
rc=0
"$MINTGATE" ca readiness --admin "127.0.0.1:$admin" --token-file "$work/none.token" \
  >"$work/ready.txt" 2>&1 || rc=$?
[[ $rc == 2 ]] || fail "ca readiness without a token file exited $rc"
grep -q "cannot read the admin token: $work/none.token" "$work/ready.txt" ||
  fail "missing token file not explained: $(cat "$work/ready.txt")"

# A configured token_file that others can read is refused, by check and at start.
echo "operator-chosen-token-0123456789" >"$work/open.token"
chmod 644 "$work/open.token"
cat >"$work/open-token.toml" <<TOML
[server]
listen = ["127.0.0.1:$(free_port)"]
state_dir = "$work/state-open"
[admin]
listen = "127.0.0.1:$(free_port)"
token_file = "$work/open.token"
TOML
rc=0
"$MINTGATE" check -c "$work/open-token.toml" >"$work/check.txt" 2>&1 || rc=$?
[[ $rc == 2 ]] || fail "check with a 0644 token_file exited $rc"
grep -qF "admin.token_file: $work/open.token: admin token file is readable by group or others (mode 0644); run: chmod 600 $work/open.token" \
  "$work/check.txt" || fail "check: $(cat "$work/check.txt")"
rc=0
timeout 10 "$MINTGATE" run -c "$work/open-token.toml" >"$work/open-run.txt" 2>&1 || rc=$?
[[ $rc == 2 ]] || fail "run with a 0644 token_file exited $rc: $(cat "$work/open-run.txt")"
grep -qF "run: chmod 600 $work/open.token" "$work/open-run.txt" ||
  fail "run: $(cat "$work/open-run.txt")"

# An admin listener off loopback is warned about (check, and at start).
sed -e 's|^listen = "127.0.0.1:\([0-9]*\)"$|listen = "0.0.0.0:\1"|' -e 's|0644|0600|' \
  "$work/open-token.toml" >"$work/wide.toml"
chmod 600 "$work/open.token"
grep -q '^listen = "0.0.0.0:' "$work/wide.toml" || fail "wide.toml: $(cat "$work/wide.toml")"
"$MINTGATE" check -c "$work/wide.toml" >"$work/check.txt" 2>&1 || fail "check: $(cat "$work/check.txt")"
grep -q "warning: admin.listen 0.0.0.0:[0-9]* is not a loopback address" "$work/check.txt" ||
  fail "no warning for an admin listener on 0.0.0.0: $(cat "$work/check.txt")"

echo "PASS: admin listener timeouts, bounds, Host check and token"
