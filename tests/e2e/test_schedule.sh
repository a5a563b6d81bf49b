#!/usr/bin/env bash
# The schedule overlay: `mintgate ca schedule` moves a retire_at, rolls it back, starts and
# stops a canary, without touching the configuration file; `ca audit` and `check` show the
# overlay, and a running gateway applies each change on its next reload (SIGHUP or POST
# /reload): the CA that signs a client's leaf switches.
set -euo pipefail
source "$(dirname "$0")/lib.sh"

start_tls_lab
echo "schedule" >"$work/www/hello.txt"

"$MINTGATE" ca init --out "$work/ca/legacy" --name "Schedule Legacy Root" >/dev/null
"$MINTGATE" ca init --out "$work/ca/new" --name "Schedule New Root" >/dev/null
cat "$work/ca/legacy/ca.pem" "$work/ca/new/ca.pem" >"$work/both.pem"

config="$work/mintgate.toml"
lab_config "$config"
cat >>"$config" <<TOML
# The administrator's comments, which no schedule change may lose.
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
TOML
config_sum=$(sha256sum "$config")
overlay="$work/state/schedule.toml"
audit_log="$work/state/schedule-audit.log"

# Runs a command that must exit with a given code; its output is kept in $work/out and
# $work/err.
expect_exit() {
  local want=$1 got=0
  shift
  "$@" >"$work/out" 2>"$work/err" || got=$?
  [[ $got == "$want" ]] || fail "'$*' exited $got, expected $want: $(cat "$work/out" "$work/err")"
}
issuer_now() {
  curl --proxy "http://127.0.0.1:$proxy" -s --max-time 10 --cacert "$work/both.pem" \
    -w '%{certs}' -o /dev/null "https://www.lab.test:$NGINX_TLS_PORT/hello.txt" |
    openssl x509 -noout -issuer 2>/dev/null || true
}
expect_issuer() {  # CN, context
  local got
  got=$(issuer_now)
  [[ $got == *"$1"* ]] || fail "$2: the leaf came from '$got', expected $1"
}
reloads=0
sighup_reload() {  # until the gateway logged one more reload
  reloads=$((reloads + 1))
  kill -HUP "$MINTGATE_PID"
  for _ in $(seq 100); do
    (($(grep -c "configuration reloaded" "$work/gateway.log") >= reloads)) && return 0
    sleep 0.1
  done
  fail "the gateway did not reload"
}

# Nothing in the overlay yet.
expect_exit 0 "$MINTGATE" ca schedule -c "$config"
grep -q "no changes" "$work/out" || fail "empty overlay: $(cat "$work/out")"

# Bad requests are refused with exit 2 and write nothing.
expect_exit 2 "$MINTGATE" ca schedule -c "$config" --profile new --retire-at 2020-01-01T00:00:00Z
grep -q 'CA profile "new" has no successor' "$work/err" || fail "no successor: $(cat "$work/err")"
expect_exit 2 "$MINTGATE" ca schedule -c "$config" --profile nope --clear
grep -q 'no CA profile "nope"' "$work/err" || fail "unknown profile: $(cat "$work/err")"
expect_exit 2 "$MINTGATE" ca schedule -c "$config" --profile legacy --retire-at tomorrow
expect_exit 2 "$MINTGATE" ca schedule -c "$config" --profile legacy
expect_exit 2 "$MINTGATE" ca schedule -c "$config" --canary new --percent 0
expect_exit 2 "$MINTGATE" ca schedule -c "$config" --canary new --percent 10 --clients 10.0.0.1/8
[[ ! -e $overlay ]] || fail "a refused change wrote $overlay"

start_mintgate gateway "$config" "$proxy"
expect_issuer "Schedule Legacy Root" "before any change"

# The cutover brought forward to a past instant: after the reload, the new root signs.
past=$(date -u -d "-1 hour" +%Y-%m-%dT%H:%M:%SZ)
expect_exit 0 "$MINTGATE" ca schedule -c "$config" --profile legacy --retire-at "$past"
grep -qF "ca.legacy.retire_at = $past (the file says 2099-01-01T00:00:00Z; cli $(id -un) at " \
  "$work/out" || fail "schedule output: $(cat "$work/out")"
grep -q "next reload" "$work/out" || fail "no reload hint: $(cat "$work/out")"
[[ $(stat -c %a "$overlay") == 600 ]] || fail "overlay mode $(stat -c %a "$overlay")"
[[ $(stat -c %a "$audit_log") == 600 ]] || fail "audit log mode $(stat -c %a "$audit_log")"
grep -q "^# Written by mintgate" "$overlay" || fail "no header in the overlay"
[[ $(sha256sum "$config") == "$config_sum" ]] || fail "the configuration file was rewritten"

"$MINTGATE" ca audit -c "$config" >"$work/audit.txt" && fail "the audit said no migration is needed"
grep -q "^schedule overlay $overlay:" "$work/audit.txt" || fail "audit: $(head "$work/audit.txt")"
grep -qF "$past -> new" "$work/audit.txt" || fail "audit switch time: $(cat "$work/audit.txt")"
"$MINTGATE" ca audit -c "$config" --json >"$work/audit.json" || true
python3 - "$work/audit.json" "$overlay" "$past" <<'PY' || fail "audit --json: $(cat "$work/audit.json")"
import json, sys
doc = json.load(open(sys.argv[1]))
overlay = doc["overlay"]
assert overlay["file"] == sys.argv[2], overlay
assert len(overlay["changes"]) == 1 and overlay["changes"][0].startswith("ca.legacy.retire_at = " + sys.argv[3]), overlay
legacy = [p for p in doc["profiles"] if p["name"] == "legacy"][0]
assert legacy["retire_at"] == sys.argv[3], legacy
PY
expect_exit 0 "$MINTGATE" check -c "$config"
grep -q "^schedule overlay $overlay:" "$work/out" || fail "check: $(cat "$work/out")"
grep -qF "  ca.legacy.retire_at = $past" "$work/out" || fail "check: $(cat "$work/out")"

# The running gateway still signs with legacy until it reloads.
expect_issuer "Schedule Legacy Root" "before the reload"
sighup_reload
grep -qF "reload: schedule overlay $overlay: ca.legacy.retire_at = $past" "$work/gateway.log" ||
  fail "the reload did not log the overlay"
expect_issuer "Schedule New Root" "after --retire-at in the past and SIGHUP"

# Rolled back with --clear, applied through POST /reload.
expect_exit 0 "$MINTGATE" ca schedule -c "$config" --profile legacy --clear
grep -qF "ca.legacy.retire_at = none" "$work/out" || fail "clear: $(cat "$work/out")"
reloads=$((reloads + 1))
status=$(admin_curl -o /dev/null -w '%{http_code}' -X POST "http://127.0.0.1:$admin/reload")
[[ $status == 200 ]] || fail "POST /reload answered $status"
expect_issuer "Schedule Legacy Root" "after --clear and POST /reload"
"$MINTGATE" ca audit -c "$config" >"$work/audit.txt" || fail "after --clear the audit still wants a migration"

# A canary for every client of 127.0.0.0/8: the new root signs for them, until it stops.
expect_exit 0 "$MINTGATE" ca schedule -c "$config" --canary new --percent 100 --clients 127.0.0.0/8
grep -qF "canary.new = 100% of 127.0.0.0/8, fallback (the file says none;" "$work/out" ||
  fail "canary: $(cat "$work/out")"
sighup_reload
expect_issuer "Schedule New Root" "with the canary started"
expect_exit 0 "$MINTGATE" ca schedule -c "$config" --canary new --stop
sighup_reload
expect_issuer "Schedule Legacy Root" "with the canary stopped"

# Back to the file: both entries reset; nothing left to reset.
expect_exit 0 "$MINTGATE" ca schedule -c "$config" --profile legacy --reset
grep -qF "ca.legacy.retire_at = 2099-01-01T00:00:00Z (the file's value again;" "$work/out" ||
  fail "reset: $(cat "$work/out")"
expect_exit 0 "$MINTGATE" ca schedule -c "$config" --canary new --reset
expect_exit 0 "$MINTGATE" ca schedule -c "$config" --canary new --reset
grep -q "nothing changed" "$work/out" || fail "second reset: $(cat "$work/out")"
expect_exit 0 "$MINTGATE" check -c "$config"
grep -q "schedule overlay" "$work/out" && fail "check still shows an overlay: $(cat "$work/out")"

# Every change is in the audit log, in order, with its old and new value.
python3 - "$audit_log" "$past" "cli $(id -un)" <<'PY' || fail "audit log: $(cat "$audit_log")"
import json, sys
entries = [json.loads(line) for line in open(sys.argv[1])]
actions = [e["action"] for e in entries]
assert actions == ["retire_at", "clear", "canary_start", "canary_stop", "reset", "canary_reset"], actions
first = entries[0]
assert first["by"] == sys.argv[3] and first["profile"] == "legacy", first
assert first["old"] == "2099-01-01T00:00:00Z" and first["new"] == sys.argv[2], first
assert entries[1]["old"] == sys.argv[2] and entries[1]["new"] == "none", entries[1]
assert entries[2]["profile"] == "new" and entries[2]["old"] == "none", entries[2]
assert entries[3]["new"] == "stopped", entries[3]
PY
expect_exit 0 "$MINTGATE" ca schedule -c "$config" --show
grep -q "recent changes" "$work/out" || fail "--show: $(cat "$work/out")"

# A malformed overlay stops nothing that runs: the reload is rejected, the gateway serves on.
echo "[ca.legacy" >"$overlay"
expect_exit 2 "$MINTGATE" check -c "$config"
grep -qF "$overlay:1:" "$work/err" || fail "check of a malformed overlay: $(cat "$work/err")"
status=$(admin_curl -o /dev/null -w '%{http_code}' -X POST "http://127.0.0.1:$admin/reload")
[[ $status == 422 ]] || fail "POST /reload with a malformed overlay answered $status"
expect_issuer "Schedule Legacy Root" "after a rejected reload"
[[ $(sha256sum "$config") == "$config_sum" ]] || fail "the configuration file was rewritten"
kill -0 "$MINTGATE_PID" || fail "the gateway did not survive"

echo "PASS: schedule overlay"
