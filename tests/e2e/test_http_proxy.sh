#!/usr/bin/env bash
# Plain HTTP forward proxying through the real binary: nginx as the origin, dnsmasq as the DNS
# server the gateway queries through c-ares, curl and raw sockets as clients.
set -euo pipefail
source "$(dirname "$0")/lib.sh"

start_http_lab

echo "hello through mintgate" >"$work/www/hello.txt"
head -c $((24 << 20)) /dev/urandom >"$work/www/big.bin"

lab_config "$work/mintgate.toml"
proxy6=$(free_port)
sed -i "s|^listen = \[\"127.0.0.1:$proxy\"\]|listen = [\"127.0.0.1:$proxy\", \"[::1]:$proxy6\"]|" "$work/mintgate.toml"
printf '[log]\naccess = "%s"\n' "$work/access.log" >>"$work/mintgate.toml"
# Request heads here arrive in one write; the slowloris below waits 1 s for its 408, not 10.
printf '[timeouts]\nrequest_head = 1\n' >>"$work/mintgate.toml"
start_mintgate gateway "$work/mintgate.toml" "$proxy"
P=(--proxy "http://127.0.0.1:$proxy" --silent --show-error --max-time 20)
base="http://www.lab.test:$origin"

# A GET resolved through dnsmasq and relayed.
[[ $(curl "${P[@]}" "$base/hello.txt") == "hello through mintgate" ]] || fail "GET hello.txt"

# A large body streams through intact (and with bounded memory: sampled below).
curl "${P[@]}" -o "$work/big.out" "$base/big.bin" || fail "GET big.bin"
cmp -s "$work/www/big.bin" "$work/big.out" || fail "big.bin differs after the proxy"

# Uploads: Content-Length and chunked request bodies reach the origin intact.
head -c $((3 << 20)) /dev/urandom >"$work/up.bin"
code=$(curl "${P[@]}" -o /dev/null -w '%{http_code}' -T "$work/up.bin" "$base/upload/a.bin")
[[ $code == 201 || $code == 204 ]] || fail "PUT with Content-Length: $code"
cmp -s "$work/up.bin" "$work/www/upload/a.bin" || fail "uploaded body differs"
code=$(curl "${P[@]}" -o /dev/null -w '%{http_code}' -H 'Transfer-Encoding: chunked' \
  -T - "$base/upload/b.bin" <"$work/up.bin")
[[ $code == 201 || $code == 204 ]] || fail "chunked PUT: $code"
cmp -s "$work/up.bin" "$work/www/upload/b.bin" || fail "chunked upload differs"

# Expect: 100-continue: the origin's 100 reaches the client, which only then sends the body.
curl "${P[@]}" -v -o /dev/null -H 'Expect: 100-continue' -T "$work/up.bin" \
  "$base/upload/c.bin" 2>"$work/expect.txt" || fail "PUT with Expect: 100-continue"
grep -q "< HTTP/1.1 100 Continue" "$work/expect.txt" || fail "no 100 Continue relayed"
cmp -s "$work/up.bin" "$work/www/upload/c.bin" || fail "upload after 100-continue differs"

# HEAD and 204 carry no body; the connection stays usable afterwards.
curl "${P[@]}" -I "$base/hello.txt" | grep -q "^HTTP/1.1 200" || fail "HEAD"
[[ $(curl "${P[@]}" -o /dev/null -w '%{http_code}' "$base/status/204") == 204 ]] || fail "204"
[[ $(curl "${P[@]}" -o /dev/null -w '%{http_code}' "$base/missing") == 404 ]] || fail "404"

# Keep-alive to the client: two requests, one connection.
curl "${P[@]}" -v "$base/hello.txt" "$base/hello.txt" -o /dev/null -o /dev/null 2>"$work/ka.txt"
grep -qi "re-using existing connection" "$work/ka.txt" || fail "client connection not reused"

# Upstream connections are pooled per worker: of three clients one after the other, at least
# two share a worker and so reach the origin over one connection. A connection the origin
# closes is never reused.
ids=$(for _ in 1 2 3; do curl "${P[@]}" "$base/conn" | cut -d' ' -f1; done)
[[ $(sort <<<"$ids" | uniq -d) ]] || fail "upstream connections not reused: $ids"
ids=$(for _ in 1 2 3; do curl "${P[@]}" "$base/conn-close" | cut -d' ' -f1; done)
[[ -z $(sort <<<"$ids" | uniq -d) ]] || fail "a closed upstream connection was reused: $ids"

# IPv6: the gateway listens on [::1] as configured.
[[ $(curl --proxy "http://[::1]:$proxy6" --silent --max-time 20 "$base/hello.txt") == \
  "hello through mintgate" ]] || fail "GET through the IPv6 listener"

# Pipelined requests, sent in one write, are answered in order.
/usr/bin/python3 - "$proxy" "$base" <<'PY' || fail "pipelined requests"
import re, socket, sys
port, base = int(sys.argv[1]), sys.argv[2]
s = socket.create_connection(("127.0.0.1", port), timeout=10)
s.sendall((f"GET {base}/hello.txt HTTP/1.1\r\nHost: x\r\n\r\n"
           f"GET {base}/missing HTTP/1.1\r\nHost: x\r\n\r\n"
           f"GET {base}/hello.txt HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").encode())
data = b""
while True:
    chunk = s.recv(65536)
    if not chunk:
        break
    data += chunk
statuses = re.findall(rb"HTTP/1\.1 (\d{3}) ", data)
assert statuses == [b"200", b"404", b"200"], (statuses, data[:300])
assert data.count(b"hello through mintgate") == 2, data[:300]
PY

# Hop-by-hop headers are not forwarded; end-to-end ones are.
out=$(curl "${P[@]}" -H 'TE: trailers' -H 'Proxy-Connection: keep-alive' -H 'Keep-Alive: 5' \
  -H 'X-End-To-End: yes' -H 'Proxy-Authorization: Basic Zm9vOmJhcg==' "$base/echo-headers")
[[ $out == "te=[] pc=[] ka=[] x=[yes] host=[www.lab.test] pa=[]" ]] || fail "headers: $out"

# The origin sees the URL's host, not a Host header the client made up.
out=$(curl "${P[@]}" -H 'Host: blocked.example' "$base/echo-headers")
[[ $out == *"host=[www.lab.test]"* ]] || fail "client Host header passed on: $out"

# DNS failure: 502 naming DNS.
body=$(curl "${P[@]}" -w '\n%{http_code}' "http://nowhere.invalid.test/")
[[ ${body##*$'\n'} == 502 ]] || fail "unknown host: ${body##*$'\n'}"
grep -q "DNS" <<<"$body" || fail "502 page does not name DNS: $body"

# Requests that are not proxy requests, and smuggling vectors: 400 and close.
raw() {  # sends $1 to the proxy, prints the status line
  exec 3<>"/dev/tcp/127.0.0.1/$proxy"
  printf '%b' "$1" >&3
  timeout 5 head -n 1 <&3 | tr -d '\r'
  exec 3<&-
}
[[ $(raw 'GET /hello.txt HTTP/1.1\r\nHost: x\r\n\r\n') == "HTTP/1.1 400 Bad Request" ]] ||
  fail "origin-form request not refused"
[[ $(raw "POST $base/x HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n") == "HTTP/1.1 400 Bad Request" ]] ||
  fail "Content-Length with Transfer-Encoding not refused"
[[ $(raw "POST $base/x HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\nContent-Length: 5\r\n\r\nabcd") == "HTTP/1.1 400 Bad Request" ]] ||
  fail "conflicting Content-Length not refused"
[[ $(raw "GET $base/x HTTP/1.1\nHost: x\n\n") == "HTTP/1.1 400 Bad Request" ]] ||
  fail "bare LF not refused"
long=$(head -c 70000 /dev/zero | tr '\0' 'a')
[[ $(raw "GET $base/x HTTP/1.1\r\nHost: x\r\nX-Long: $long\r\n\r\n") == "HTTP/1.1 431 Request Header Fields Too Large" ]] ||
  fail "oversized header not 431"

# Slowloris: a head that never completes gets 408 after timeouts.request_head (1 s).
exec 4<>"/dev/tcp/127.0.0.1/$proxy"
printf 'GET %s/hello.txt HTTP/1.1\r\nHost: x\r\n' "$base" >&4
start=$(now_ms)
line=$(timeout 15 head -n 1 <&4 | tr -d '\r') || true
elapsed=$(($(now_ms) - start))
exec 4<&-
[[ $line == "HTTP/1.1 408 Request Timeout" ]] || fail "slowloris: got '$line'"
((elapsed >= 900)) || fail "408 came after only ${elapsed} ms"

# The gateway is still alive and serving after all of that.
[[ $(curl "${P[@]}" "$base/hello.txt") == "hello through mintgate" ]] || fail "alive after errors"

# The access log: one JSON line per request, with status, bytes, rule and upstream.
python3 - "$work/access.log" "$base" <<'PY' || fail "access log: $(tail -n 3 "$work/access.log")"
import json, sys
records = [json.loads(line) for line in open(sys.argv[1])]
base = sys.argv[2]
hello = [r for r in records if r["url"] == base + "/hello.txt" and r["method"] == "GET"]
assert hello and hello[0]["status"] == 200 and hello[0]["rule"] == "default", hello[:1]
assert hello[0]["bytes_to_client"] > 23 and hello[0]["upstream"] == "127.0.0.1", hello[0]
dns = [r for r in records if "nowhere.invalid.test" in r["url"]]
assert dns and dns[0]["status"] == 502 and "DNS" in dns[0]["note"], dns
smuggled = [r for r in records if r["status"] == 400]
assert len(smuggled) >= 4, smuggled
PY

# Memory stays bounded while a large body streams: RSS sampled during a slow download.
curl "${P[@]}" --limit-rate 8M -o /dev/null "$base/big.bin" &
slow=$!
max_rss=0
while kill -0 "$slow" 2>/dev/null; do
  rss=$(awk '/VmRSS/ {print $2}' "/proc/$MINTGATE_PID/status")
  ((rss > max_rss)) && max_rss=$rss
  sleep 0.2
done
wait "$slow" || fail "slow download"
# (Sanitizer builds inflate RSS many times over: MINTGATE_SANITIZED=1 skips the bound.)
if [[ -z ${MINTGATE_SANITIZED:-} ]]; then
  ((max_rss < 64 * 1024)) || fail "RSS reached ${max_rss} KiB while streaming a 24 MiB body"
fi

# A client outside allow_clients gets 403; loopback origins are refused by default.
proxy2=$(free_port)
cat >"$work/strict.toml" <<TOML
[server]
listen = ["127.0.0.1:$proxy2"]
workers = 1
state_dir = "$work/state2"
[dns]
servers = ["127.0.0.1:$dns"]
[admin]
listen = "127.0.0.1:$(free_port)"
TOML
start_mintgate strict "$work/strict.toml" "$proxy2"
code=$(curl --proxy "http://127.0.0.1:$proxy2" -s -o "$work/loop.html" -w '%{http_code}' "$base/hello.txt")
[[ $code == 403 ]] || fail "loopback origin allowed without allow_loopback_upstreams: $code"
grep -q "loopback" "$work/loop.html" || fail "403 page does not say why"
sed -i 's|^workers = 1|workers = 1\nallow_clients = ["10.0.0.0/8"]|' "$work/strict.toml"
proxy3=$(free_port)
sed -i -e "s|127.0.0.1:$proxy2|127.0.0.1:$proxy3|" \
  -e "s|^listen = \"127.0.0.1:[0-9]*\"$|listen = \"127.0.0.1:$(free_port)\"|" "$work/strict.toml"
start_mintgate denied "$work/strict.toml" "$proxy3"
code=$(curl --proxy "http://127.0.0.1:$proxy3" -s -o /dev/null -w '%{http_code}' "$base/hello.txt")
[[ $code == 403 ]] || fail "client outside allow_clients not refused: $code"

# Connection-oriented authentication (NTLM, Negotiate) authenticates the origin connection:
# it serves only the client connection that authenticated on it and is closed with it, never
# pooled for another client. Triggered by the client's Authorization and by a 401 offering it.
auth=(-H "Authorization: NTLM TlRMTVNTUAABAAAAB4IIogAAAAA")
for trigger in authorization challenge; do
  if [[ $trigger == authorization ]]; then
    out=$(curl "${P[@]}" "${auth[@]}" "$base/conn" "$base/conn")
  else
    out=$(curl "${P[@]}" "$base/ntlm" "$base/conn")
  fi
  pinned=$(head -n 1 <<<"$out" | cut -d' ' -f1)
  [[ $(sed -n 2p <<<"$out" | cut -d' ' -f1) == "$pinned" ]] ||
    fail "$trigger: the authenticated connection did not serve its client's next request: $out"
  # Other clients, one after the other, on both workers: never that connection.
  for _ in 1 2 3 4 5 6; do
    other=$(curl "${P[@]}" "$base/conn" | cut -d' ' -f1)
    [[ $other != "$pinned" ]] || fail "$trigger: origin connection $pinned served another client"
  done
done

# The admin listener answers health checks and metrics; the proxy port does not.
[[ $(curl -s --max-time 5 "http://127.0.0.1:$admin/healthz") == ok ]] || fail "/healthz"
# Read whole before grep: grep -q stops at the first line, and curl, cut off, would fail the pipe.
metrics=$(admin_curl "http://127.0.0.1:$admin/metrics") || fail "/metrics did not answer"
grep -q "^mintgate_up 1$" <<<"$metrics" || fail "/metrics"
[[ $(admin_curl -o /dev/null -w '%{http_code}' "http://127.0.0.1:$admin/nope") == 404 ]] ||
  fail "unknown admin path"

# SIGTERM: stop accepting, drain, exit 0.
kill -TERM "$MINTGATE_PID"
rc=0
wait "$MINTGATE_PID" || rc=$?
[[ $rc == 0 ]] || fail "exit code $rc after SIGTERM"
grep -q "stopped" "$work/denied.log" || fail "no clean stop logged"

echo "PASS: plain HTTP proxying"
