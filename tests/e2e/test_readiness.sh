#!/usr/bin/env bash
# Client readiness and canaries: a canary client that lacks the new root rejects its leaf
# (TLS alert unknown_ca), is recorded as rejecting it, and falls back to the legacy profile;
# one that has the new root is recorded as trusting it. `mintgate ca readiness` and
# /readiness show both.
set -euo pipefail
source "$(dirname "$0")/lib.sh"

start_tls_lab
echo "ready" >"$work/www/hello.txt"
"$MINTGATE" ca init --out "$work/ca/legacy" --name "TREND.IWS.2" >/dev/null
"$MINTGATE" ca init --out "$work/ca/new" --name "Web Security Cloud Root CA" >/dev/null

lab_config "$work/mintgate.toml"
cat >>"$work/mintgate.toml" <<TOML
[inspection]
default_ca = "legacy"
connect_ports = [$NGINX_TLS_PORT]
extra_trust = ["$work/pki/ca.pem"]
[ca.legacy]
cert = "$work/ca/legacy/ca.pem"
key = "$work/ca/legacy/ca.key"
[ca.new]
cert = "$work/ca/new/ca.pem"
key = "$work/ca/new/ca.key"
[[canary]]
ca = "new"
clients = ["127.0.0.2/32", "127.0.0.3/32"]
percent = 100
[log]
access = "$work/access.log"
TOML
start_mintgate gateway "$work/mintgate.toml" "$proxy"
url="https://www.lab.test:$NGINX_TLS_PORT/hello.txt"
get() {  # source-address cafile -> body, or nothing when the TLS handshake fails
  curl --proxy "http://127.0.0.1:$proxy" --interface "$1" -s --max-time 10 --cacert "$2" "$url" || true
}

# A client outside the canary: the rule's own profile.
[[ $(get 127.0.0.1 "$work/ca/legacy/ca.pem") == ready ]] || fail "non-canary client"
# A canary client without the new root: rejected, then falls back to legacy.
[[ -z $(get 127.0.0.2 "$work/ca/legacy/ca.pem") ]] || fail "canary leaf not from the new CA"
[[ $(get 127.0.0.2 "$work/ca/legacy/ca.pem") == ready ]] || fail "no fallback after a rejection"
# A canary client with the new root: accepted.
[[ $(get 127.0.0.3 "$work/ca/new/ca.pem") == ready ]] || fail "canary client trusting new"

"$MINTGATE" ca readiness -c "$work/mintgate.toml" --json >"$work/ready.json" ||
  fail "ca readiness: $(cat "$work/ready.json")"
/usr/bin/python3 - "$work/ready.json" <<'PY' || fail "readiness: $(cat "$work/ready.json")"
import json, sys
doc = json.load(open(sys.argv[1]))
status = {(p["profile"], c["client"]): (c["status"], c.get("last_alert"))
          for p in doc["profiles"] for c in p["clients"]}
assert status[("new", "127.0.0.2")] == ("rejects", "unknown_ca"), status
assert status[("new", "127.0.0.3")][0] == "trusts", status
assert status[("legacy", "127.0.0.2")][0] == "trusts", status
assert status[("legacy", "127.0.0.1")][0] == "trusts", status
# Seen with legacy only: unknown for new, never "trusts".
assert status[("new", "127.0.0.1")] == ("unknown", None), status
# Trust is on the evidence of a request; a rejection says how it was seen.
entry = {(p["profile"], c["client"]): c for p in doc["profiles"] for c in p["clients"]}
assert entry[("new", "127.0.0.3")]["last_trusted"]["evidence"] == "application_data", entry
rejected = entry[("new", "127.0.0.2")]["last_rejected"]
assert (rejected["evidence"], rejected["alert"], rejected["sni"]) == \
    ("alert", "unknown_ca", "www.lab.test"), rejected
PY
"$MINTGATE" ca readiness -c "$work/mintgate.toml" >"$work/ready.txt" || fail "ca readiness (text)"
grep -q "127.0.0.2" "$work/ready.txt" && grep -q "alert:unknown_ca" "$work/ready.txt" ||
  fail "readiness table: $(cat "$work/ready.txt")"
readiness=$(admin_curl "http://127.0.0.1:$admin/readiness") || fail "/readiness did not answer"
grep -q '"rejecting"' <<<"$readiness" || fail "/readiness"
wait_for_line "$work/access.log" '"note":"canary: new instead of legacy"' || fail "canary not logged"

echo "PASS: client readiness and canary"
