#!/usr/bin/env bash
# A CA cutover in a running gateway: until retire_at the same client gets leaves from the
# legacy root, after it from the new one, with no restart; the cutover is logged once, and
# `ca audit` shows both states.
set -euo pipefail
source "$(dirname "$0")/lib.sh"

start_tls_lab
echo "cutover" >"$work/www/hello.txt"

"$MINTGATE" ca init --out "$work/ca/legacy" --name "TREND.IWS.2" >/dev/null
"$MINTGATE" ca init --out "$work/ca/new" --name "Web Security Cloud Root CA" >/dev/null
# Both roots in one bundle: the client trusts either, as after step 1 of a migration.
cat "$work/ca/legacy/ca.pem" "$work/ca/new/ca.pem" >"$work/both.pem"
# 4 s from now (3 at least, in whole seconds): several times what the audit, the start and the
# requests before the cutover take (well under a second).
cutover_at=$(date -u -d "+4 seconds" +%Y-%m-%dT%H:%M:%SZ)

lab_config "$work/mintgate.toml"
cat >>"$work/mintgate.toml" <<TOML
[inspection]
default_ca = "legacy"
connect_ports = [$NGINX_TLS_PORT]
extra_trust = ["$work/pki/ca.pem"]
[ca.legacy]
cert = "$work/ca/legacy/ca.pem"
key = "$work/ca/legacy/ca.key"
retire_at = $cutover_at
successor = "new"
[ca.new]
cert = "$work/ca/new/ca.pem"
key = "$work/ca/new/ca.key"
TOML
"$MINTGATE" ca audit -c "$work/mintgate.toml" >"$work/audit-before.txt" && fail "audit said clean"
start_mintgate gateway "$work/mintgate.toml" "$proxy"
url="https://www.lab.test:$NGINX_TLS_PORT/hello.txt"

# The issuer of the leaf the client verified (curl prints the chain it received).
issuer_now() {
  curl --proxy "http://127.0.0.1:$proxy" -s --max-time 10 --cacert "$work/both.pem" \
    -w '%{certs}' -o /dev/null "$url" | openssl x509 -noout -issuer 2>/dev/null || true
}
out=$(curl --proxy "http://127.0.0.1:$proxy" -s --max-time 10 --cacert "$work/both.pem" "$url")
[[ $out == cutover ]] || fail "before the cutover: '$out'"
before=$(issuer_now)
[[ $before == *"TREND.IWS.2"* ]] || fail "before the cutover the leaf came from: $before"

# retire_at is passed from its own second on.
cutover=$(date -u -d "$cutover_at" +%s)
while (($(date -u +%s) < cutover)); do sleep 0.1; done
after=$(issuer_now)
[[ $after == *"Web Security Cloud Root CA"* ]] || fail "after the cutover the leaf came from: $after"
out=$(curl --proxy "http://127.0.0.1:$proxy" -s --max-time 10 --cacert "$work/ca/new/ca.pem" "$url")
[[ $out == cutover ]] || fail "after the cutover, a client trusting only the new root: '$out'"
issuer_now >/dev/null
[[ $(grep -c "CA cutover" "$work/gateway.log") == 1 ]] || fail "cutover not logged exactly once"
kill -0 "$MINTGATE_PID" || fail "the gateway did not survive the cutover"

echo "PASS: CA cutover while running"
