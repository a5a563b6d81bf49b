#!/usr/bin/env bash
# The migration console in a real browser: headless Chromium logs in with the admin token,
# reads the rules table and readiness (with the evidence of a real client's rejection) from the
# DOM, sees a readiness row appear after a client's handshake, postpones a retire_at and stops a
# canary through the confirmation pages (the overlay is written, the configuration file is
# not), and renders the console and the portal at 1280 and 390 px. Screenshots are kept in
# test-artifacts/console next to the binary.
set -euo pipefail
source "$(dirname "$0")/lib.sh"

start_tls_lab
echo "console" >"$work/www/hello.txt"
"$MINTGATE" ca init --out "$work/ca/legacy" --name "Console Legacy Root" >/dev/null
"$MINTGATE" ca init --out "$work/ca/new" --name "Console New Root" >/dev/null

config="$work/mintgate.toml"
lab_config "$config"
cat >>"$config" <<TOML
[inspection]
default_ca = "legacy"
connect_ports = [$NGINX_TLS_PORT]
extra_trust = ["$work/pki/ca.pem"]
[ca.legacy]
cert = "$work/ca/legacy/ca.pem"
key = "$work/ca/legacy/ca.key"
retire_at = 2099-01-01T00:00:00Z
successor = "new"
[ca.new]
cert = "$work/ca/new/ca.pem"
key = "$work/ca/new/ca.key"
[[canary]]
ca = "new"
clients = ["127.0.0.2/32", "127.0.0.3/32"]
[[rule]]
name = "banking"
action = "tunnel"
hosts = ["*.bank.example"]
[[rule]]
name = "already-new"
action = "decrypt"
clients = ["10.20.0.0/16"]
ca = "new"
TOML
config_sum=$(sha256sum "$config")
start_mintgate gateway "$config" "$proxy"
url="https://www.lab.test:$NGINX_TLS_PORT/hello.txt"
get() {  # source-address cafile
  curl --proxy "http://127.0.0.1:$proxy" --interface "$1" -s --max-time 10 --cacert "$2" "$url" || true
}
[[ $(get 127.0.0.1 "$work/ca/legacy/ca.pem") == console ]] || fail "127.0.0.1 with legacy"
# The canary client without the new root rejects it, then falls back to legacy.
[[ -z $(get 127.0.0.2 "$work/ca/legacy/ca.pem") ]] || fail "127.0.0.2 accepted a leaf of new"
[[ $(get 127.0.0.2 "$work/ca/legacy/ca.pem") == console ]] || fail "127.0.0.2 did not fall back"

artifacts="${MINTGATE_ARTIFACTS:-$(dirname "$MINTGATE")/test-artifacts}/console"
rm -rf "$artifacts"
handshake="curl --proxy http://127.0.0.1:$proxy --interface 127.0.0.3 -s --max-time 10 \
--cacert $work/ca/new/ca.pem -o /dev/null $url"
/usr/bin/python3 "$(dirname "$0")/console_browser.py" "$admin" "$proxy" "$work/state/admin.token" \
  "$artifacts" "$handshake" || fail "the console in Chromium (screenshots in $artifacts)"

# The console wrote the overlay and its audit log, never the configuration file, and the
# running gateway applied both actions.
[[ $(sha256sum "$config") == "$config_sum" ]] || fail "the console rewrote the configuration file"
grep -q 'retire_at = 2099-06-01T00:00:00Z' "$work/state/schedule.toml" ||
  fail "overlay: $(cat "$work/state/schedule.toml")"
[[ $(grep -c '"by":"console 127.0.0.1"' "$work/state/schedule-audit.log") == 2 ]] ||
  fail "audit log: $(cat "$work/state/schedule-audit.log")"
"$MINTGATE" ca audit -c "$config" --json >"$work/audit.json" || true
grep -q '"retire_at": "2099-06-01T00:00:00Z"' "$work/audit.json" || fail "ca audit misses the change"
# The canary is stopped: 127.0.0.3 gets a leaf of legacy now.
issuer=$(curl --proxy "http://127.0.0.1:$proxy" --interface 127.0.0.3 -s --max-time 10 -k \
  -w '%{certs}' -o /dev/null "$url" | openssl x509 -noout -issuer)
[[ $issuer == *"Console Legacy Root"* ]] || fail "after the canary stopped: $issuer"
[[ $(grep -c "configuration reloaded" "$work/gateway.log") -ge 2 ]] ||
  fail "the console's actions did not reload the gateway"

# Without a session the console only offers its login page, and the JSON endpoints still need
# the bearer token.
status=$(curl -s -o /dev/null -w '%{http_code} %{redirect_url}' "http://127.0.0.1:$admin/console/")
[[ $status == "303 http://127.0.0.1:$admin/console/login" ]] || fail "anonymous console: $status"
status=$(curl -s -o /dev/null -w '%{http_code}' -X POST "http://127.0.0.1:$admin/console/action" \
  -d "action=clear&profile=legacy&confirm=yes")
[[ $status == 403 ]] || fail "anonymous action answered $status"
status=$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$admin/readiness")
[[ $status == 401 ]] || fail "/readiness without a token answered $status"
for f in console-1280 console-390 confirm-1280 confirm-390 portal-1280 portal-390; do
  [[ -s $artifacts/$f.png ]] || fail "no screenshot $f"
done
echo "PASS: the migration console in Chromium"
