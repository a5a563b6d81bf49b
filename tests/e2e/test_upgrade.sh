#!/usr/bin/env bash
# "Upgrade" (WebSocket and friends) relayed blindly after 101, plain and decrypted: an origin
# that switches to an echo protocol, a client that checks bytes flow both ways afterwards.
set -euo pipefail
source "$(dirname "$0")/lib.sh"

start_tls_lab
ws_plain=$(free_port)
ws_tls=$(free_port)
/usr/bin/python3 "$SOURCE_DIR/tests/e2e/upgrade_origin.py" "$ws_plain" "$ws_tls" \
  "$work/pki/site.pem" "$work/pki/site.key" >"$work/upgrade-origin.log" 2>&1 &
pids+=("$!")
wait_for_port "$ws_tls"

lab_config "$work/mintgate.toml"
cat >>"$work/mintgate.toml" <<TOML
[inspection]
connect_ports = [$ws_tls]
extra_trust = ["$work/pki/ca.pem"]
[log]
access = "$work/access.log"
TOML
start_mintgate gateway "$work/mintgate.toml" "$proxy"
client="$SOURCE_DIR/tests/e2e/upgrade_client.py"

out=$(/usr/bin/python3 "$client" "$proxy" plain www.lab.test "$ws_plain" 2>&1) || fail "plain: $out"
[[ $out == upgraded ]] || fail "plain: $out"
out=$(/usr/bin/python3 "$client" "$proxy" tls www.lab.test "$ws_tls" "$work/state/ca/ca.pem" 2>&1) ||
  fail "decrypted: $out"
[[ $out == upgraded ]] || fail "decrypted: $out"
wait_for_line "$work/access.log" '"status":101' || fail "101 not logged: $(cat "$work/access.log")"

echo "PASS: upgrades relayed after 101"
