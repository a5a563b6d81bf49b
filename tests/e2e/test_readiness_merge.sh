#!/usr/bin/env bash
# `mintgate ca readiness` with several --admin: two gateways with the same configuration and CA
# (as behind one load balancer), each seeing some of the clients. The merged report lists the
# clients of both with the latest verdict and which gateway saw each; with one gateway stopped,
# the other's rows still print, with a warning naming the stopped one.
set -euo pipefail
source "$(dirname "$0")/lib.sh"

start_tls_lab
echo "ready" >"$work/www/hello.txt"
"$MINTGATE" ca init --out "$work/ca/main" --name "Merge Test Root CA" >/dev/null
# One admin token for both, as gateways deployed from one configuration share it.
openssl rand -hex 32 >"$work/admin.token"
chmod 600 "$work/admin.token"

proxy_a=$proxy admin_a=$admin
proxy_b=$(free_port) admin_b=$(free_port)
gateway_config() {  # file proxy_port admin_port state_dir
  cat >"$1" <<TOML
[server]
listen = ["127.0.0.1:$2"]
workers = 1
allow_loopback_upstreams = true
state_dir = "$4"
[dns]
servers = ["127.0.0.1:$dns"]
[inspection]
default_ca = "main"
connect_ports = [$NGINX_TLS_PORT]
extra_trust = ["$work/pki/ca.pem"]
[ca.main]
cert = "$work/ca/main/ca.pem"
key = "$work/ca/main/ca.key"
[admin]
token_file = "$work/admin.token"
listen = "127.0.0.1:$3"
TOML
}
gateway_config "$work/a.toml" "$proxy_a" "$admin_a" "$work/state-a"
gateway_config "$work/b.toml" "$proxy_b" "$admin_b" "$work/state-b"
start_mintgate gateway-a "$work/a.toml" "$proxy_a"
start_mintgate gateway-b "$work/b.toml" "$proxy_b"
pid_b=$MINTGATE_PID
A="127.0.0.1:$admin_a" B="127.0.0.1:$admin_b"

url="https://www.lab.test:$NGINX_TLS_PORT/hello.txt"
get() {  # proxy-port source-address cafile -> body, or nothing when the TLS handshake fails
  curl --proxy "http://127.0.0.1:$1" --interface "$2" -s --max-time 10 --cacert "$3" "$url" || true
}
# 127.0.0.2 trusts the gateway's CA, through a; 127.0.0.3 does not (unknown_ca), through b.
[[ $(get "$proxy_a" 127.0.0.2 "$work/ca/main/ca.pem") == ready ]] || fail "trusting client via a"
[[ -z $(get "$proxy_b" 127.0.0.3 "$work/pki/ca.pem") ]] || fail "b's leaf was trusted"
# 127.0.0.4 through both: rejects on a, then (a second later) trusts on b. Latest wins.
[[ -z $(get "$proxy_a" 127.0.0.4 "$work/pki/ca.pem") ]] || fail "a's leaf was trusted"
sleep 1.1
[[ $(get "$proxy_b" 127.0.0.4 "$work/ca/main/ca.pem") == ready ]] || fail "127.0.0.4 via b"

readiness() {  # mintgate ca readiness over both gateways, with these options
  "$MINTGATE" ca readiness --admin "$A" --admin "$B" --token-file "$work/admin.token" "$@"
}
check_json() {  # the merged document in $work/merged.json is complete
  /usr/bin/python3 - "$work/merged.json" "$A" "$B" <<'PY'
import json, sys
doc = json.load(open(sys.argv[1]))
a, b = sys.argv[2], sys.argv[3]
assert doc["gateways"] == [{"address": a, "answered": True},
                           {"address": b, "answered": True}], doc["gateways"]
(main,) = [p for p in doc["profiles"] if p["profile"] == "main"]
rows = {c["client"]: c for c in main["clients"]}
assert rows["127.0.0.2"]["status"] == "trusts", rows
assert rows["127.0.0.2"]["evidence"] == "application_data", rows
assert rows["127.0.0.2"]["seen_by"] == [a], rows
assert rows["127.0.0.3"]["status"] == "rejects", rows
assert rows["127.0.0.3"]["last_rejected"]["alert"] == "unknown_ca", rows
assert rows["127.0.0.3"]["seen_by"] == [b], rows
c4 = rows["127.0.0.4"]
assert (c4["status"], c4["evidence"], c4["trusted"], c4["rejected"]) == \
    ("trusts", "application_data", 1, 1), c4
assert c4["seen_by"] == [a, b], c4
assert c4["last_rejected"]["alert"] == "unknown_ca", c4
assert (main["trusting"], main["rejecting"], main["unknown"]) == (2, 1, 0), main
assert doc["clients_tracked"] == 3, doc
PY
}
# Rejections are recorded as the gateway sees the client's alert: wait until both are in.
for ((i = 0; ; i++)); do
  readiness --json >"$work/merged.json" 2>"$work/merged.err" || fail "$(cat "$work/merged.err")"
  check_json 2>"$work/check.err" && break
  ((i < 30)) || fail "merged readiness: $(cat "$work/check.err") $(cat "$work/merged.json")"
  sleep 0.2
done
[[ ! -s $work/merged.err ]] || fail "warnings with both gateways up: $(cat "$work/merged.err")"

readiness >"$work/merged.txt" || fail "ca readiness (text)"
line() { grep -E "^  $1 " "$work/merged.txt" || fail "no row for $1: $(cat "$work/merged.txt")"; }
grep -q "^Client readiness merged from 2 of 2 gateways ($A, $B), " "$work/merged.txt" ||
  fail "heading: $(cat "$work/merged.txt")"
grep -q 'Profile "main": 2 of 3 clients trust it (66%), 1 reject it$' "$work/merged.txt" ||
  fail "counts: $(cat "$work/merged.txt")"
grep -q "SEEN BY" "$work/merged.txt" || fail "no SEEN BY column"
[[ $(line 127.0.0.2) =~ trusts\ +application_data.*\ $A$ ]] || fail "row: $(line 127.0.0.2)"
[[ $(line 127.0.0.3) =~ rejects\ +alert:unknown_ca.*\ $B$ ]] || fail "row: $(line 127.0.0.3)"
[[ $(line 127.0.0.4) =~ trusts\ +application_data.*\ $A,$B$ ]] || fail "row: $(line 127.0.0.4)"

# One gateway alone: its own report, as before (no SEEN BY).
"$MINTGATE" ca readiness --admin "$A" --token-file "$work/admin.token" >"$work/one.txt" ||
  fail "ca readiness with one --admin"
grep -q "^Client readiness reported by mintgate at $A, " "$work/one.txt" &&
  ! grep -q "SEEN BY" "$work/one.txt" || fail "single report: $(cat "$work/one.txt")"

# b stopped: a's rows, and a warning that names b.
kill "$pid_b"
wait "$pid_b" 2>/dev/null || true
readiness >"$work/half.txt" 2>"$work/half.err" || fail "exit $? with a answering"
grep -q "^warning: cannot reach the admin listener at $B: connection refused" "$work/half.err" ||
  fail "no warning naming b: $(cat "$work/half.err")"
grep -q "^Client readiness merged from 1 of 2 gateways ($A; not answering: $B), " \
  "$work/half.txt" || fail "heading: $(cat "$work/half.txt")"
grep -Eq "^  127\.0\.0\.2 .* trusts .* $A$" "$work/half.txt" &&
  ! grep -q "127.0.0.3" "$work/half.txt" || fail "a's rows: $(cat "$work/half.txt")"
readiness --json 2>/dev/null | /usr/bin/python3 -c '
import json, sys
doc = json.load(sys.stdin)
assert [g["answered"] for g in doc["gateways"]] == [True, False], doc["gateways"]
assert "connection refused" in doc["gateways"][1]["error"], doc["gateways"]
' || fail "--json with b stopped"

echo "PASS: readiness merged over two gateways"
