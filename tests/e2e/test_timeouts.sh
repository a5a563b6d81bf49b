#!/usr/bin/env bash
# Every state that holds a socket ends when [timeouts] says so (configured short here): no
# ClientHello after the 200, a silent tunnel, an origin that never answers (504), one that
# stops mid-response, a slow request head (408), an idle kept-alive client; TCP keepalive is on
# for both legs; and server.max_connections(_per_client) cap what clients can hold open.
# Each limit is checked against a hang, never against the machine's speed.
set -euo pipefail
source "$(dirname "$0")/lib.sh"

start_http_lab
echo "hello" >"$work/www/hello.txt"
silent=$(free_port)
stalled=$(free_port)
/usr/bin/python3 "$SOURCE_DIR/tests/e2e/stall_origin.py" "$silent" silent &
pids+=("$!")
/usr/bin/python3 "$SOURCE_DIR/tests/e2e/stall_origin.py" "$stalled" headers &
pids+=("$!")
wait_for_port "$silent"
wait_for_port "$stalled"

# Half a second bounds what takes milliseconds on loopback (a head in one write, nginx's
# answer); tunnel_idle keeps 1 s, in which ss must see the open tunnel below.
lab_config "$work/mintgate.toml"
cat >>"$work/mintgate.toml" <<TOML
[timeouts]
request_head = 0.5
client_idle = 0.5
tls_handshake = 0.5
origin_first_byte = 0.5
origin_idle = 0.5
tunnel_idle = 1
tcp_keepalive = 7
[inspection]
connect_ports = [443, $origin]
[log]
access = "$work/access.log"
[[rule]]
name = "tunnel-origin"
action = "tunnel"
hosts = ["tunnel.lab.test"]
TOML
start_mintgate gateway "$work/mintgate.toml" "$proxy"

# Seconds until the gateway closes a connection that sent $1 (printf format) and then waits;
# 30 (the bound against a hang) when it never does.
seconds_until_closed() {
  python3 - "$proxy" "$1" <<'PY'
import socket, sys, time
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])))
s.sendall(sys.argv[2].encode().decode("unicode_escape").encode("latin-1"))
start = time.time()
s.settimeout(30)
try:
    while s.recv(65536):
        pass
except socket.timeout:
    print(30)
    sys.exit()
except ConnectionResetError:
    pass
print(int(time.time() - start))
PY
}

# No ClientHello after "200 Connection established": tls_handshake.
t=$(seconds_until_closed "CONNECT www.lab.test:$origin HTTP/1.1\r\nHost: x\r\n\r\n")
((t < 10)) || fail "no ClientHello: still open after ${t} s"
wait_for_line "$work/access.log" 'no ClientHello within 0.5 s' || fail "ClientHello timeout not logged"

# A tunnel where nobody says anything more (nginx keeps its connection 75 s): tunnel_idle.
t=$(seconds_until_closed "CONNECT tunnel.lab.test:$origin HTTP/1.1\r\n\r\nGET /hello.txt HTTP/1.1\r\nHost: www.lab.test\r\n\r\n")
((t < 10)) || fail "idle tunnel: still open after ${t} s"
wait_for_line "$work/access.log" 'tunnel idle for 1 s' || fail "tunnel timeout not logged"

# An origin that never answers: 504 after origin_first_byte.
P=(--proxy "http://127.0.0.1:$proxy" --silent --max-time 30)
status=$(curl "${P[@]}" -o "$work/504.html" -w '%{http_code}' "http://www.lab.test:$silent/")
[[ $status == 504 ]] || fail "silent origin: $status"
grep -q "did not answer within 0.5 s" "$work/504.html" || fail "504 page: $(cat "$work/504.html")"

# An origin that stops mid-response: the client's connection is closed (origin_idle), not
# held until the origin gives up.
start=$(date +%s)
curl "${P[@]}" -o /dev/null "http://www.lab.test:$stalled/" && fail "a cut response looked whole"
(($(date +%s) - start < 10)) || fail "stalled response held the client for $(($(date +%s) - start)) s"
wait_for_line "$work/access.log" 'mid-response' || fail "origin_idle not logged"

# A head that trickles: 408 after request_head; an idle kept-alive client: closed.
t=$(seconds_until_closed "GET http://www.lab.test:$origin/hello.txt HTTP/1.1\r\nHost: www")
((t < 10)) || fail "slow head: still open after ${t} s"
t=$(seconds_until_closed "GET http://www.lab.test:$origin/hello.txt HTTP/1.1\r\nHost: www.lab.test\r\n\r\n")
((t < 10)) || fail "idle keep-alive client: still open after ${t} s"

# TCP keepalive on both legs: the kernel shows a keepalive timer on the gateway's sockets
# while a tunnel is open (it closes after tunnel_idle, so look while it is young).
python3 - "$proxy" "$origin" <<'PY' &
import socket, sys, time
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])))
s.sendall(b"CONNECT tunnel.lab.test:%s HTTP/1.1\r\n\r\nGET /hello.txt HTTP/1.1\r\nHost: x\r\n\r\n" % sys.argv[2].encode())
time.sleep(3)
PY
holder=$!
for ((i = 0; i < 50; i++)); do
  ss -tnoH state established "( sport = :$proxy )" >"$work/ss-client.txt"
  ss -tnoH state established "( dport = :$origin )" >"$work/ss-origin.txt"
  grep -q "timer:(keepalive" "$work/ss-client.txt" && grep -q "timer:(keepalive" "$work/ss-origin.txt" &&
    break
  sleep 0.05
done
kill "$holder" 2>/dev/null || true  # done looking: the tunnel need not stay for its 3 s
wait "$holder" || true
grep -q "timer:(keepalive" "$work/ss-client.txt" || fail "client leg: $(cat "$work/ss-client.txt")"
grep -q "timer:(keepalive" "$work/ss-origin.txt" || fail "origin leg: $(cat "$work/ss-origin.txt")"

# Connection limits: two per client address, three in all. Held connections are idle clients
# (client_idle is long on this gateway); the one beyond a limit gets 503 at once.
proxy2=$(free_port)
admin2=$(free_port)
cat >"$work/limits.toml" <<TOML
[server]
listen = ["127.0.0.1:$proxy2"]
workers = 2
state_dir = "$work/state2"
allow_loopback_upstreams = true
max_connections = 3
max_connections_per_client = 2
[dns]
servers = ["127.0.0.1:$dns"]
[admin]
listen = "127.0.0.1:$admin2"
TOML
start_mintgate limits "$work/limits.toml" "$proxy2"
python3 - "$proxy2" "$origin" <<'PY' || fail "connection limits"
import socket, sys, time
proxy, origin = int(sys.argv[1]), sys.argv[2]

def connect(source):
    s = socket.socket()
    s.bind((source, 0))
    s.connect(("127.0.0.1", proxy))
    return s

def status(s):
    s.settimeout(10)
    s.sendall(("GET http://www.lab.test:%s/hello.txt HTTP/1.1\r\nHost: www.lab.test\r\n\r\n"
               % origin).encode())
    data = b""
    while b"\r\n" not in data:
        chunk = s.recv(4096)
        if not chunk:
            break
        data += chunk
    return data.split(b" ")[1].decode() if data else "closed"

a1, a2 = connect("127.0.0.1"), connect("127.0.0.1")
assert status(a1) == "200" and status(a2) == "200"
a3 = connect("127.0.0.1")
got = status(a3)
assert got in ("503", "closed"), "third connection from one client: " + got
b1 = connect("127.0.0.2")
assert status(b1) == "200"
b2 = connect("127.0.0.2")
got = status(b2)
assert got in ("503", "closed"), "fourth connection in all: " + got
a1.close()
time.sleep(0.5)
b3 = connect("127.0.0.2")
assert status(b3) == "200", "a freed slot is usable again"
PY
grep -q '"status":503' "$work/limits.log" 2>/dev/null || true
metrics=$(ADMIN_STATE="$work/state2" admin_curl "http://127.0.0.1:$admin2/metrics")
grep -Eq '^mintgate_connections_refused_total\{reason="max_connections_per_client"\} [1-9]' \
  <<<"$metrics" || fail "per-client refusals not counted: $(grep connections <<<"$metrics")"
grep -Eq '^mintgate_connections_refused_total\{reason="max_connections"\} [1-9]' <<<"$metrics" ||
  fail "refusals not counted: $(grep connections <<<"$metrics")"

echo "PASS: timeouts"
