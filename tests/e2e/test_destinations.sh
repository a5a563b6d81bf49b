#!/usr/bin/env bash
# Where the gateway refuses to send bytes, in every spelling a client can write: the gateway's
# own admin and proxy listeners, loopback, cloud metadata and other built-in ranges (directly,
# through DNS, and inside IPv6 forms), server.deny_destinations, ports outside
# server.http_ports; and hosts that are no DNS name nor a canonical address are refused
# before DNS. Runs in a network namespace of its own with only loopback: should the gateway
# regress and connect, the connection fails with "network unreachable" and no packet leaves
# the machine.
set -euo pipefail
[[ -n ${MINTGATE_NETNS:-} ]] || exec env MINTGATE_NETNS=1 unshare -n -- bash "$0" "$@"
ip link set lo up
source "$(dirname "$0")/lib.sh"

DNSMASQ_EXTRA=(--address=/meta.test/169.254.169.254 --address=/meta6.test/fd00:ec2::254
  --address=/mapped.test/::ffff:127.0.0.1 --address=/intranet.test/10.1.2.3)
start_http_lab
echo "hello" >"$work/www/hello.txt"

# Gateway 1: loopback origins allowed (as in every lab), so only its own listeners are refused
# on loopback.
lab_config "$work/loop.toml"
cat >>"$work/loop.toml" <<TOML
[inspection]
connect_ports = [443, $admin, $proxy, $origin]
[log]
access = "$work/access.log"
TOML
start_mintgate loop "$work/loop.toml" "$proxy"
P=(--proxy "http://127.0.0.1:$proxy" --silent --max-time 10)

code() {  # url -> the status the gateway answers
  curl "${P[@]}" -o "$work/body" -w '%{http_code}' "$1" || true
}
connect_code() {  # proxy_port target -> the CONNECT response status
  exec 3<>"/dev/tcp/127.0.0.1/$1"
  printf 'CONNECT %s HTTP/1.1\r\nHost: %s\r\n\r\n' "$2" "$2" >&3
  timeout 5 head -n 1 <&3 | tr -d '\r' | cut -d' ' -f2
  exec 3<&-
}
expect() {  # status url [what]
  local got
  got=$(code "$2")
  [[ $got == "$1" ]] || fail "${3:-$2}: expected $1, got $got: $(head -c 300 "$work/body")"
}

# The origin is reachable, by name and by any spelling of its address.
expect 200 "http://www.lab.test:$origin/hello.txt"
expect 200 "http://127.0.0.1:$origin/hello.txt"
expect 200 "http://0177.1:$origin/hello.txt" "octal spelling of the origin"
expect 200 "http://2130706433:$origin/hello.txt" "integer spelling of the origin"

# The admin listener, in every spelling (the audit reached POST /reload this way).
for host in "127.0.0.1" "[::ffff:127.0.0.1]" "[::ffff:7f00:1]" "[::127.0.0.1]" "0177.1" \
  "0x7f.0.0.1" "127.0.0.01" "2130706433" "127.1"; do
  expect 403 "http://$host:$admin/metrics" "admin via $host"
  grep -q "admin listener" "$work/body" || fail "admin via $host: $(cat "$work/body")"
  status=$(curl "${P[@]}" -X POST -o /dev/null -w '%{http_code}' "http://$host:$admin/reload" || true)
  [[ $status == 403 ]] || fail "POST /reload via $host: $status"
done
expect 403 "http://mapped.test:$admin/metrics" "admin via a name resolving to ::ffff:127.0.0.1"
for target in "127.0.0.1:$admin" "[::ffff:127.0.0.1]:$admin" "0177.1:$admin" \
  "[::ffff:127.0.0.1]:$proxy" "2130706433:$proxy"; do
  [[ $(connect_code "$proxy" "$target") == 403 ]] || fail "CONNECT $target"
done

# Numeric hosts that are no address never reach DNS: 400, and dnsmasq never sees them.
expect 400 "http://127.0.0.1.5:$origin/" "five-part address"
expect 400 "http://999.0.0.1:$origin/" "part above 255"
expect 400 "http://www.0x1:$origin/" "name ending in a number"
[[ $(connect_code "$proxy" "1.2.3.4.5:443") == 400 ]] || fail "CONNECT to a five-part address"
if grep -Eq "127\.0\.0\.1\.5|999\.0\.0\.1|www\.0x1" "$work/dnsmasq.log"; then
  fail "an invalid host reached DNS: $(grep -E '127\.0\.0\.1\.5|999|0x1' "$work/dnsmasq.log")"
fi

# http:// only to server.http_ports (80, 443, 1025-65535 by default).
expect 403 "http://www.lab.test:25/" "port 25"
grep -q "server.http_ports" "$work/body" || fail "port 25 page: $(cat "$work/body")"

# A reload that forbids a range also stops the origin connections already pooled there: the
# next request is judged again and refused, not sent on the idle connection.
expect 200 "http://www.lab.test:$origin/hello.txt"
expect 200 "http://www.lab.test:$origin/hello.txt"
sed -i "s|^workers = 2|workers = 2\ndeny_destinations = [\"127.0.0.0/8\"]|" "$work/loop.toml"
kill -HUP "$MINTGATE_PID"
for ((i = 0; i < 50; i++)); do
  grep -q "configuration reloaded" "$work/loop.log" && break
  sleep 0.1
done
grep -q "configuration reloaded" "$work/loop.log" || fail "reload: $(tail -n 3 "$work/loop.log")"
for _ in 1 2 3 4; do
  expect 403 "http://www.lab.test:$origin/hello.txt" "pooled origin after the reload"
done
kill -0 "$MINTGATE_PID" || fail "the gateway died after refusing a pooled connection"

# Gateway 2: the defaults of a production gateway (loopback refused), plus an intranet range.
proxy2=$(free_port)
admin2=$(free_port)
cat >"$work/prod.toml" <<TOML
[server]
listen = ["127.0.0.1:$proxy2"]
workers = 1
state_dir = "$work/state2"
deny_destinations = ["10.0.0.0/8"]
[dns]
servers = ["127.0.0.1:$dns"]
[admin]
listen = "127.0.0.1:$admin2"
[inspection]
connect_ports = [443, $origin]
TOML
start_mintgate prod "$work/prod.toml" "$proxy2"
P=(--proxy "http://127.0.0.1:$proxy2" --silent --max-time 10)
for url in "http://127.0.0.1:$origin/" "http://0177.1:$origin/" "http://[::1]:$origin/" \
  "http://[::ffff:127.0.0.1]:$origin/" "http://www.lab.test:$origin/" \
  "http://169.254.169.254/latest/meta-data/" "http://[::ffff:169.254.169.254]/" \
  "http://[::ffff:a9fe:a9fe]/" "http://169.254.43518/" "http://[fd00:ec2::254]/" \
  "http://100.100.100.200/" "http://[64:ff9b::a9fe:a9fe]/" "http://[2002:a9fe:a9fe::1]/" \
  "http://[fe80::1]/" "http://0.0.0.0:$origin/" "http://[::]:$origin/" "http://224.0.0.1/" \
  "http://255.255.255.255/" "http://meta.test/" "http://meta6.test/" \
  "http://mapped.test:$origin/" "http://10.1.2.3/" "http://intranet.test/" \
  "http://[::ffff:10.1.2.3]/"; do
  expect 403 "$url"
  grep -q "does not connect to\|itself" "$work/body" || fail "$url: $(cat "$work/body")"
done
[[ $(connect_code "$proxy2" "169.254.169.254:443") == 403 ]] || fail "CONNECT to metadata"
[[ $(connect_code "$proxy2" "[::ffff:127.0.0.1]:$origin") == 403 ]] || fail "CONNECT mapped"
[[ $(connect_code "$proxy2" "meta.test:443") == 403 ]] || fail "CONNECT to a name of metadata"
# Addresses outside every list are tried: here they fail, as nothing but loopback exists.
status=$(code "http://192.0.2.1/")
[[ $status == 502 || $status == 504 ]] || fail "192.0.2.1 should be tried (502/504), got $status"

wait_for_line "$work/access.log" '"status":403' || fail "refusals not logged"
echo "PASS: destinations"
