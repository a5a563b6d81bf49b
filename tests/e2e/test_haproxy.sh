#!/usr/bin/env bash
# Two gateways behind Debian's HAProxy (TCP mode), as docs/deploy.md describes: one
# configuration (the same file content, the same CA), PROXY protocol v2 with HAProxy's unique
# id, HAProxy's health check on each admin listener's /readyz. Checks that
#   (a) both gateways serve (round robin);
#   (b) each access log names the real client (127.0.0.N, not the balancer), a rule on
#       `clients` applies through the balancer, and HAProxy's unique id is the "proxy_id"; the
#       PAC served through the balancer names the balancer;
#   (c) a connection without a header, or with one from a peer not in proxy_protocol_from, is
#       closed and counted;
#   (d) SIGTERM to one gateway while requests run: /readyz says 503, HAProxy moves every new
#       request to the other gateway, none fails but those in flight at the signal's instant;
#   (e) restarted, the gateway is brought back by HAProxy's check and serves again.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
command -v haproxy >/dev/null || fail "haproxy is not installed (apt-get install haproxy)"

start_tls_lab
echo "hello" >"$work/www/hello.txt"
truncate -s 256M "$work/www/big.bin" # sparse: held half-read to keep a drain going
"$MINTGATE" ca init --out "$work/ca" --name "HAProxy Test Root CA" >/dev/null

# One template; each gateway gets a folder with its copy, which differs only in the two ports
# (state_dir and the access log are relative to the file's folder).
proxy_a=$proxy admin_a=$admin
proxy_b=$(free_port) admin_b=$(free_port)
hport=$(free_port)
cat >"$work/template.toml" <<TOML
[server]
listen = ["127.0.0.1:@PROXY@"]
workers = 2
allow_clients = ["127.0.0.0/8"]
allow_loopback_upstreams = true
state_dir = "state"
proxy_protocol = "v2"
proxy_protocol_from = ["127.0.0.1/32"]
[dns]
servers = ["127.0.0.1:$dns"]
[admin]
listen = "127.0.0.1:@ADMIN@"
[log]
access = "access.log"
format = "json"
[inspection]
default_ca = "main"
connect_ports = [$NGINX_TLS_PORT]
extra_trust = ["$work/pki/ca.pem"]
[ca.main]
cert = "$work/ca/ca.pem"
key = "$work/ca/ca.key"
[[rule]]
name = "blocked-client"
action = "block"
clients = ["127.0.0.7/32"]
TOML
for g in a b; do
  mkdir -p "$work/$g"
  p=proxy_$g a=admin_$g
  sed -e "s/@PROXY@/${!p}/" -e "s/@ADMIN@/${!a}/" "$work/template.toml" >"$work/$g/mintgate.toml"
done
start_mintgate gateway-a "$work/a/mintgate.toml" "$proxy_a"
pid_a=$MINTGATE_PID
start_mintgate gateway-b "$work/b/mintgate.toml" "$proxy_b"
pid_b=$MINTGATE_PID
log_a="$work/a/access.log" log_b="$work/b/access.log"

# HAProxy in front. Each server is named after its admin listener, so that one `http-check
# send` gives every server's check the Host header naming that server's admin listener (the
# admin listener refuses any other Host). The traffic goes to the proxy port with a PROXY v2
# header carrying a unique id; the check goes to the admin port (`check port`) without one.
# `option redispatch 1`: every retry may pick another server (the default, -1, redispatches
# only on the last retry, after a 1 s turn-around on the refusing server).
cat >"$work/haproxy.cfg" <<CFG
global
  maxconn 512
defaults
  mode tcp
  timeout connect 1s
  timeout client 30s
  timeout server 30s
  timeout check 1s
  retries 3
  option redispatch 1
frontend proxy
  bind 127.0.0.1:$hport
  unique-id-format %ci:%cp_%rt
  default_backend gateways
backend gateways
  balance roundrobin
  option httpchk
  http-check send meth GET uri /readyz ver HTTP/1.1 hdr Host "%[srv_name]"
  http-check expect status 200
  default-server send-proxy-v2 proxy-v2-options unique-id inter 200ms fall 1 rise 1
  server 127.0.0.1:$admin_a 127.0.0.1:$proxy_a check port $admin_a
  server 127.0.0.1:$admin_b 127.0.0.1:$proxy_b check port $admin_b
CFG
haproxy -c -f "$work/haproxy.cfg" >"$work/haproxy-check.out" 2>&1 ||
  fail "haproxy rejects its configuration: $(cat "$work/haproxy-check.out")"
haproxy -f "$work/haproxy.cfg" -db >"$work/haproxy.log" 2>&1 &
pids+=($!)
wait_for_port "$hport"
sleep 0.5 # two check rounds: both servers are (and stay) up

https_url="https://www.lab.test:$NGINX_TLS_PORT/hello.txt"
http_url="http://www.lab.test:$origin/hello.txt"
# One request through HAProxy from source address $1; prints the status ("000": it failed).
# A refused CONNECT shows as "000" plus the CONNECT's status: get_connect says that one.
get() {  # source url
  curl --proxy "http://127.0.0.1:$hport" --interface "$1" --cacert "$work/ca/ca.pem" \
    -s -o /dev/null -w '%{http_code}' --max-time 10 "$2" || true
}
get_connect() {  # source url
  curl --proxy "http://127.0.0.1:$hport" --interface "$1" --cacert "$work/ca/ca.pem" \
    -s -o /dev/null -w '%{http_connect}' --max-time 10 "$2" || true
}
# The access-log records (JSON) of both gateways, each with "gw": "a" or "b", as one JSON list.
records() {
  python3 - "$log_a" "$log_b" <<'PY'
import json, sys
out = []
for gw, path in zip("ab", sys.argv[1:]):
    try:
        for line in open(path):
            if line.startswith("{"):
                rec = json.loads(line)
                rec["gw"] = gw
                out.append(rec)
    except FileNotFoundError:
        pass
print(json.dumps(out))
PY
}
metric() {  # state_dir admin_port series (exact, labels included) -> its value
  ADMIN_STATE=$1 admin_curl "http://127.0.0.1:$2/metrics" | awk -v s="$3" '$1 == s {print $2}'
}

# --- (a) and (b): eight requests from four addresses, decrypted and plain alternating, then
# the blocked client's four.
for i in 1 2 3 4 5 6 7 8; do
  src=127.0.0.$((2 + i % 4))
  if ((i % 2)); then url="$https_url?ab=$i"; else url="$http_url?ab=$i"; fi
  [[ $(get "$src" "$url") == 200 ]] || fail "request $i from $src ($url) through HAProxy"
  echo "$i $src" >>"$work/ab.expected"
done
for i in 1 2 3 4; do
  if ((i % 2)); then
    url="$https_url?blocked=$i" status=$(get_connect 127.0.0.7 "$https_url?blocked=$i")
  else
    url="$http_url?blocked=$i" status=$(get 127.0.0.7 "$http_url?blocked=$i")
  fi
  [[ $status == 403 ]] || fail "blocked client 127.0.0.7 got $status for $url (expected 403)"
done
sleep 0.3 # access-log lines are written every 20 ms
records >"$work/ab.json"
python3 - "$work/ab.json" "$work/ab.expected" <<'PY' || fail "(a)/(b): see above"
import json, re, sys
recs = json.load(open(sys.argv[1]))
expected = dict(line.split() for line in open(sys.argv[2]))
seen = {}
for r in recs:
    m = re.search(r"[?&]ab=(\d+)$", r.get("url") or "")
    if m:
        seen[m.group(1)] = r
problems = []
for i, src in expected.items():
    r = seen.get(i)
    if r is None:
        problems.append(f"request {i}: no access-log record")
    elif r["client"] != src:
        problems.append(f"request {i}: client {r['client']!r}, expected {src} (gateway {r['gw']})")
for gw in "ab":
    n = sum(1 for r in seen.values() if r["gw"] == gw)
    if n == 0:
        problems.append(f"gateway {gw} served none of the 8 requests (round robin)")
    print(f"gateway {gw}: {n} of the 8 requests")
# Every record that came through HAProxy (all of them here) has the real client, never the
# balancer, and HAProxy's unique id (unique-id-format %ci:%cp_%rt: it starts with the client).
for r in recs:
    if r["client"] == "127.0.0.1":
        problems.append(f"the balancer's address is the client: {r}")
    pid = r.get("proxy_id")
    if not pid or not pid.startswith(r["client"] + ":"):
        problems.append(f"proxy_id {pid!r} does not carry HAProxy's id for {r['client']}: {r}")
blocked = [r for r in recs if "blocked=" in (r.get("url") or "") or
           (r["client"] == "127.0.0.7")]
if not blocked or any(r["client"] != "127.0.0.7" or r["action"] != "block" or
                      r.get("rule") != "blocked-client" for r in blocked):
    problems.append(f"the block rule on clients = 127.0.0.7/32: {blocked}")
for p in problems:
    print("FAIL:", p)
sys.exit(1 if problems else 0)
PY
echo "(a) both gateways serve; (b) real clients, block rule by client and proxy_id: ok"
# The PAC served through the balancer names the balancer (the PROXY header's destination), not
# the gateway that answered: browsers set up from it keep going through HAProxy.
pac=$(curl --proxy "http://127.0.0.1:$hport" --interface 127.0.0.3 -s --max-time 5 \
  http://mintgate.portal/proxy.pac) || fail "no PAC through the balancer"
[[ $pac == *"PROXY 127.0.0.1:$hport"* ]] || fail "the PAC through the balancer names: $pac"

# --- (c) straight to a gateway, bypassing HAProxy: without a header (from the allowed
# balancer address), and with a well-formed v2 header from an address not in
# proxy_protocol_from. Both are closed without an answer, and counted. (A valid header, or a
# LOCAL one, from the balancer's address is served.)
cat >"$work/pp2.py" <<'PY'
"""PROXY protocol v2 client. `send PORT BIND SRC URL`: from BIND, a header saying SRC (LOCAL: a
LOCAL header), then a GET of URL; prints how many bytes came back. `hold PORT SRC URL RELEASE`:
from 127.0.0.1, the same, reads the response's first bytes, prints its status line, then stops
reading (the exchange stays in flight) until the file RELEASE exists."""
import os, socket, struct, sys, time

def header(src, sport, dport):
    if src == "LOCAL":  # a LOCAL command (HAProxy's check-send-proxy): no address
        return b"\r\n\r\n\x00\r\nQUIT\n" + bytes([0x20, 0x00, 0, 0])
    body = socket.inet_aton(src) + socket.inet_aton("127.0.0.1") + struct.pack("!HH", sport, dport)
    return b"\r\n\r\n\x00\r\nQUIT\n" + bytes([0x21, 0x11]) + struct.pack("!H", len(body)) + body

def request(url):
    host = url.split("/")[2]
    return f"GET {url} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n".encode()

mode, port = sys.argv[1], int(sys.argv[2])
if mode == "send":
    bind, src, url = sys.argv[3:6]
    s = socket.socket()
    s.bind((bind, 0))
    s.connect(("127.0.0.1", port))
    s.settimeout(5)
    s.sendall(header(src, 40001, port) + request(url))
    data = b""
    try:
        while chunk := s.recv(65536):
            data += chunk
    except ConnectionResetError:
        pass
    print(len(data))
else:
    src, url, release = sys.argv[3:6]
    s = socket.create_connection(("127.0.0.1", port))
    s.sendall(header(src, 40002, port) + request(url))
    print("holding:", s.recv(4096).split(b"\r\n")[0].decode(), flush=True)
    while not os.path.exists(release):
        time.sleep(0.05)
    s.close()
PY
refused=mintgate_connections_refused_total'{reason="proxy_header"}'
before=$(metric "$work/a/state" "$admin_a" "$refused")
[[ -n $before ]] || fail "no $refused in gateway a's /metrics"
# A v2 header from the allowed balancer address is accepted (the gateway's own check).
[[ $(python3 "$work/pp2.py" send "$proxy_a" 127.0.0.1 127.0.0.66 "$http_url?direct=ok") -gt 0 ]] ||
  fail "a direct client with a valid v2 header from 127.0.0.1 got no answer"
# A LOCAL header (a balancer's own connection) is accepted; the client is then the balancer.
[[ $(python3 "$work/pp2.py" send "$proxy_a" 127.0.0.1 LOCAL "$http_url?direct=local") -gt 0 ]] ||
  fail "a v2 LOCAL header from 127.0.0.1 got no answer"
if out=$(curl --proxy "http://127.0.0.1:$proxy_a" -s -o /dev/null -w '%{http_code}' --max-time 5 \
  "$http_url?direct=noheader"); then
  fail "a request without a PROXY header was answered ($out)"
fi
bytes=$(python3 "$work/pp2.py" send "$proxy_a" 127.0.0.9 127.0.0.66 "$http_url?direct=spoofed")
[[ $bytes == 0 ]] || fail "a v2 header from 127.0.0.9 (not in proxy_protocol_from) got $bytes bytes back"
sleep 0.1
after=$(metric "$work/a/state" "$admin_a" "$refused")
((after - before == 2)) || fail "$refused went from $before to $after, expected +2"
records | python3 -c '
import json, sys
recs = json.load(sys.stdin)
urls = [r["url"] for r in recs if "direct=" in (r.get("url") or "")]
ok = [r for r in recs if (r.get("url") or "").endswith("direct=ok")]
assert ok and ok[0]["client"] == "127.0.0.66", ok
local = [r for r in recs if (r.get("url") or "").endswith("direct=local")]
assert local and local[0]["client"] == "127.0.0.1", local
assert not any("noheader" in u or "spoofed" in u for u in urls), urls
' || fail "direct requests in the access log: $(grep direct= "$log_a")"
echo "(c) no header or an unlisted sender: refused and counted ($before -> $after); LOCAL: ok"

# --- (d) SIGTERM to b while 60 requests run. First a request held half-read on b (direct,
# with a v2 header) keeps its drain going long enough to see /readyz say 503.
python3 "$work/pp2.py" hold "$proxy_b" 127.0.0.99 "http://www.lab.test:$origin/big.bin" \
  "$work/release" >"$work/holder.out" 2>&1 &
holder=$!
pids+=("$holder")
wait_for_line "$work/holder.out" "holding: HTTP/1.1 200" || fail "holder: $(cat "$work/holder.out")"

(
  for i in $(seq 1 60); do
    if ((i % 2)); then url="$https_url?loop=$i"; else url="$http_url?loop=$i"; fi
    start=$(now_ms)
    status=$(get "127.0.0.$((2 + i % 4))" "$url")
    echo "$i $start $(now_ms) $status" >>"$work/loop.txt"
    sleep 0.05
  done
) &
loop=$!
pids+=("$loop")
for _ in $(seq 100); do
  [[ -f $work/loop.txt && $(wc -l <"$work/loop.txt") -ge 15 ]] && break
  sleep 0.05
done
t_signal=$(now_ms)
kill -TERM "$pid_b"
# b's admin listener stays up while it drains, and says so.
ready=""
for _ in $(seq 40); do
  ready=$(curl -s --max-time 1 -w ' %{http_code}' "http://127.0.0.1:$admin_b/readyz" || true)
  [[ $ready == "draining"*" 503" ]] && break
  sleep 0.05
done
[[ $ready == "draining"*" 503" ]] || fail "b's /readyz during the drain: '$ready'"
draining=$(metric "$work/b/state" "$admin_b" mintgate_draining)
[[ $draining == 1 ]] || fail "b's mintgate_draining during the drain: '$draining'"
wait "$loop"
# The drain ends when the held exchange does; b then exits 0.
touch "$work/release"
for _ in $(seq 150); do
  kill -0 "$pid_b" 2>/dev/null || break
  sleep 0.1
done
! kill -0 "$pid_b" 2>/dev/null || fail "gateway b still runs 15 s after SIGTERM"
rc=0
wait "$pid_b" || rc=$?
((rc == 0)) || fail "gateway b exited $rc after SIGTERM"
kill -0 "$pid_a" || fail "gateway a stopped too"
grep -q "gateways/127.0.0.1:$admin_b is DOWN" "$work/haproxy.log" ||
  fail "HAProxy never marked b down: $(cat "$work/haproxy.log")"
sleep 0.1
records >"$work/d.json"
# A request whose connection HAProxy had handed to b just before the signal can fail: b
# closes its listening sockets at once, and a connection the kernel had completed into b's
# accept queue but b had not accepted yet is reset with them. HAProxy counts it as
# established (its PROXY header and the request were sent), so it cannot retry it elsewhere.
# Anything that reached b before is drained; anything after finds b's port closed (HAProxy
# retries on a, `option redispatch 1`) and then b marked down by the check. So at most a
# request or two, in flight at that instant, may fail.
python3 - "$work/d.json" "$work/loop.txt" "$t_signal" <<'PY' || fail "(d): see above"
import json, re, sys
recs, t_signal = json.load(open(sys.argv[1])), int(sys.argv[3])
loop = {}
for line in open(sys.argv[2]):
    i, start, end, status = line.split()
    loop[i] = (int(start), int(end), status)
where = {}
for r in recs:
    m = re.search(r"[?&]loop=(\d+)$", r.get("url") or "")
    if m:
        where.setdefault(m.group(1), set()).add(r["gw"])
problems = []
if len(loop) != 60:
    problems.append(f"{len(loop)} of 60 requests ran")
failed = [i for i, (_, _, status) in loop.items() if status != "200"]
for i in failed:
    start, end, status = loop[i]
    if not (start <= t_signal + 500 and end >= t_signal - 50):
        problems.append(f"request {i} failed ({status}) but was not in flight at the signal: "
                        f"{start - t_signal}..{end - t_signal} ms from it")
if len(failed) > 2:
    problems.append(f"{len(failed)} requests failed: {failed}")
before = [i for i, (start, end, _) in loop.items() if end < t_signal]
# Half a second after the signal b's listeners are closed even on a loaded machine.
after = [i for i, (start, _, _) in loop.items() if start > t_signal + 500]
to_b_before = [i for i in before if "b" in where.get(i, ())]
late_b = [i for i in after if "b" in where.get(i, ())]
late_a = [i for i in after if where.get(i) == {"a"}]
if not to_b_before:
    problems.append("b served none of the requests before the signal")
if late_b:
    problems.append(f"requests started after the signal reached b: {late_b}")
if len(late_a) != len(after) - len([i for i in failed if i in after]):
    problems.append(f"requests after the signal not all on a: {sorted(after)} vs {sorted(late_a)}")
print(f"(d) {len(before)} requests before the signal ({len(to_b_before)} to b), {len(after)} from"
      f" 0.5 s after it (all to a), failed: {failed or 'none'}")
for p in problems:
    print("FAIL:", p)
sys.exit(1 if problems else 0)
PY

# --- (e) b restarted: HAProxy's check sees /readyz answer 200 again and sends it traffic.
start_mintgate gateway-b2 "$work/b/mintgate.toml" "$proxy_b"
down_line=$(grep -n "gateways/127.0.0.1:$admin_b is DOWN" "$work/haproxy.log" | tail -n 1 | cut -d: -f1)
up=""
for _ in $(seq 50); do
  up=$(tail -n "+$down_line" "$work/haproxy.log" | grep "gateways/127.0.0.1:$admin_b is UP" || true)
  [[ -n $up ]] && break
  sleep 0.1
done
[[ -n $up ]] || fail "HAProxy did not bring b back: $(tail -n 5 "$work/haproxy.log")"
for i in 1 2 3 4 5 6; do
  if ((i % 2)); then url="$https_url?back=$i"; else url="$http_url?back=$i"; fi
  [[ $(get 127.0.0.3 "$url") == 200 ]] || fail "request $i after b's restart"
done
sleep 0.3
n=$(grep -c 'back=[0-9]"' "$log_b" || true)
((n >= 1)) || fail "b's access log has none of the 6 requests after its restart"
echo "(e) b restarted: back in HAProxy's rotation, served $n of 6 requests"

echo "PASS: haproxy (two gateways, PROXY v2, /readyz checks, drain, restart)"
