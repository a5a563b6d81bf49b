#!/usr/bin/env bash
# `mintgate check` and `mintgate rules test` on the shipped sample configurations, with real
# CA files made at test time (ca init, and openssl for the cross-signed certificate).
# Env: MINTGATE = the mintgate binary, SOURCE_DIR = the source tree.
set -euo pipefail
source "$(dirname "$0")/lib.sh"

: "${SOURCE_DIR:?set SOURCE_DIR to the source tree}"
cp -r "$SOURCE_DIR/conf" "$work/conf"
cd "$work/conf/examples"
expect_exit() {  # want, command...: keeps stdout in $work/out and stderr in $work/err
  local want=$1
  shift
  local got=0
  "$@" >"$work/out" 2>"$work/err" || got=$?
  [[ $got == "$want" ]] || fail "'$*' exited $got, expected $want: $(cat "$work/err" "$work/out")"
}
json_field() {  # file, field
  python3 -c 'import json,sys; v=json.load(open(sys.argv[1]))[sys.argv[2]]; print("null" if v is None else v)' "$1" "$2"
}

# --- the annotated sample and the category example check clean as shipped
expect_exit 0 "$MINTGATE" check -c ../mintgate.toml
grep -q "OK" "$work/out" || fail "check of conf/mintgate.toml printed no OK"
expect_exit 0 "$MINTGATE" check -c no-decrypt-finance-health.toml
grep -q "3 categories with 9 pattern(s)" "$work/out" || fail "categories not counted: $(cat "$work/out")"

# --- the migration example needs its CA files: until they exist, check names each one
expect_exit 2 "$MINTGATE" check -c migration.toml
# At the key that names the file (cert = ..., line 16, column 8), not the [ca.legacy] header.
grep -q "migration.toml:16:8: \[ca.legacy\]: .*ca/legacy/ca.pem: cannot read" "$work/err" ||
  fail "missing CA file not reported at its key: $(cat "$work/err")"
# ... and the audit fails too (exit 2), naming each unreadable profile, instead of calling the
# rules that use them migrated.
expect_exit 2 "$MINTGATE" ca audit -c migration.toml
grep -q "No rule needs migration" "$work/out" && fail "audit without CA files passed: $(cat "$work/out")"
grep -q "errors: the audit is incomplete" "$work/out" || fail "no error summary: $(cat "$work/out")"
grep -q 'CA profile "legacy" cannot be read: .*ca/legacy/ca.pem.*(used by ' "$work/err" ||
  fail "unreadable profile not named: $(cat "$work/err")"
expect_exit 2 "$MINTGATE" ca audit -c migration.toml --json
python3 -c 'import json,sys; j=json.load(open(sys.argv[1])); assert j["ok"] is False and len(j["errors"]) == 2, j["errors"]' \
  "$work/out" || fail "audit JSON without CA files: $(cat "$work/out")"
# The generated CA of the shipped sample does not exist before the first start: pending, not
# an error.
expect_exit 0 "$MINTGATE" ca audit -c ../mintgate.toml
grep -Eq "^default +decrypt .* pending" "$work/out" || fail "generated CA not pending: $(cat "$work/out")"
"$MINTGATE" ca init --out ca/legacy --name "TREND.IWS.2" >/dev/null
"$MINTGATE" ca init --out ca/new --name "Web Security Cloud Root CA" >/dev/null
expect_exit 0 "$MINTGATE" check -c migration.toml

# Before the cutover the default rule signs with legacy, after it with new; a rule that
# already names new keeps it; tunnel rules sign with nothing.
expect_exit 0 "$MINTGATE" rules test -c migration.toml --host www.example.com \
  --at 2026-06-29T23:59:59+09:00 --json
[[ $(json_field "$work/out" rule) == default ]] || fail "expected the default rule"
[[ $(json_field "$work/out" ca) == legacy ]] || fail "before the cutover: $(cat "$work/out")"
expect_exit 0 "$MINTGATE" rules test -c migration.toml --host www.example.com \
  --at 2026-06-30T00:00:00+09:00 --json
[[ $(json_field "$work/out" ca) == new ]] || fail "at the cutover: $(cat "$work/out")"
[[ $(json_field "$work/out" configured_ca) == legacy ]] || fail "configured CA lost"
grep -q 'retired at' "$work/out" || fail "reason does not explain the retirement"
expect_exit 0 "$MINTGATE" rules test -c migration.toml --host online.bank.example --json
[[ $(json_field "$work/out" action) == tunnel ]] || fail "bank not tunnelled: $(cat "$work/out")"
[[ $(json_field "$work/out" ca) == null ]] || fail "a tunnel names a CA"
expect_exit 0 "$MINTGATE" rules test -c migration.toml --host x.example --client 10.20.3.4 \
  --at 2026-01-01T00:00:00Z --json
[[ $(json_field "$work/out" rule) == sales-already-migrated ]] || fail "client rule missed"
[[ $(json_field "$work/out" ca) == new ]] || fail "migrated rule does not sign with new"
expect_exit 0 "$MINTGATE" rules test -c migration.toml --host malware.example
grep -q "^action:  block" "$work/out" || fail "block rule: $(cat "$work/out")"
# SNI decides over the CONNECT host, as on the wire.
expect_exit 0 "$MINTGATE" rules test -c migration.toml --host 192.0.2.1 --sni a.bank.example \
  --json
[[ $(json_field "$work/out" action) == tunnel ]] || fail "--sni not used"

# --- ca audit: the migration report before and after the cutover
expect_exit 1 "$MINTGATE" ca audit -c migration.toml --at 2026-06-01T00:00:00+09:00
grep -E "^default +decrypt +legacy +TREND.IWS.2 +TREND.IWS.2 +migrate +2026-06-29T15:00:00Z -> new" \
  "$work/out" >/dev/null || fail "audit before the cutover: $(cat "$work/out")"
grep -E "^sales-already-migrated +decrypt +new +Web Security Cloud Root CA .* ok" "$work/out" \
  >/dev/null || fail "audit: migrated rule not ok: $(cat "$work/out")"
expect_exit 1 "$MINTGATE" ca audit -c migration.toml --at 2026-07-01T00:00:00+09:00 --json
python3 - "$work/out" <<'PY' || fail "audit JSON: $(cat "$work/out")"
import json, sys
j = json.load(open(sys.argv[1]))
assert j["needs_migration"] is True
rows = {r["rule"]: r for r in j["rules"]}
d = rows["default"]
assert d["configured_profile"] == "legacy" and d["profile"] == "new", d
assert d["subject_cn"] == "Web Security Cloud Root CA" and d["status"] == "migrate", d
assert rows["no-decrypt-banking"]["profile"] is None
profiles = {p["name"]: p for p in j["profiles"]}
assert profiles["legacy"]["retire_at"] == "2026-06-29T15:00:00Z"
assert "default" in profiles["new"]["used_by"] and len(profiles["new"]["sha256"]) == 95
PY
# Once every rule names the new profile, the audit is clean (exit 0).
sed 's/^default_ca = "legacy"/default_ca = "new"/' migration.toml >migrated.toml
expect_exit 0 "$MINTGATE" ca audit -c migrated.toml
grep -q "No rule needs migration" "$work/out" || fail "migrated config: $(cat "$work/out")"

# --- the cross-signed example: new root's key and subject, issued by the customer root
"$MINTGATE" ca init --out ca/customer --name "Customer Enterprise Root" --key rsa-2048 >/dev/null
cross_sign ca/new ca/customer ca/new-cross.pem
expect_exit 0 "$MINTGATE" check -c cross-signed.toml
# 発行先 is the new root's name, 発行元 the customer's root: the cross-signed certificate.
expect_exit 0 "$MINTGATE" ca audit -c cross-signed.toml --json
python3 -c 'import json,sys; r={x["rule"]:x for x in json.load(open(sys.argv[1]))["rules"]}["default"]; assert r["subject_cn"]=="Web Security Cloud Root CA" and r["issuer_cn"]=="Customer Enterprise Root", r' \
  "$work/out" || fail "cross-signed audit: $(cat "$work/out")"
expect_exit 0 "$MINTGATE" rules test -c cross-signed.toml --host portal.health.example --json
[[ $(json_field "$work/out" action) == tunnel ]] || fail "health not tunnelled"
# A chain that does not match is refused by check, naming the chain file.
"$MINTGATE" ca init --out ca/other --name "Unrelated Root" >/dev/null
sed -i 's|chain = \["ca/customer/ca.pem"\]|chain = ["ca/other/ca.pem"]|' cross-signed.toml
expect_exit 2 "$MINTGATE" check -c cross-signed.toml
grep -q "ca/other/ca.pem" "$work/err" || fail "wrong chain not named: $(cat "$work/err")"

# --- configuration errors: every one reported, with file:line:column, exit 2
cat >"$work/bad.toml" <<'BAD'
[server]
workres = 2

[inspection]
enabled = "yes"

[[rule]]
name = "r1"
action = "decrypt"
hosts = ["ok.example", "*.*.example"]
clients = ["10.0.0.0/8", "10.0.0.1/8"]
categories = ["finance"]
ca = "nowhere"

[[rule]]
name = "r1"
action = "tunnel"

[[canary]]
ca = "nobody"
BAD
expect_exit 2 "$MINTGATE" check -c "$work/bad.toml"
grep -q "bad.toml:2:1: unknown key 'workres' in \[server\]; did you mean 'workers'?" "$work/err" ||
  fail "unknown key: $(cat "$work/err")"
grep -q "bad.toml:5:11: inspection.enabled: expected true or false, got a string" "$work/err" ||
  fail "wrong type: $(cat "$work/err")"
# Problems found while compiling the rules (and the canaries) point at the value itself, in an
# array at the element, in the same file:line:column form.
grep -q 'bad.toml:10:24: rule "r1" (line 7): host pattern "\*\.\*\.example"' "$work/err" ||
  fail "bad pattern not reported at its element: $(cat "$work/err")"
grep -q 'bad.toml:11:26: rule "r1" (line 7): client "10.0.0.1/8": .*did you mean "10.0.0.0/8"' \
  "$work/err" || fail "bad client not reported at its element: $(cat "$work/err")"
grep -q 'bad.toml:12:15: rule "r1" (line 7): unknown category "finance"' "$work/err" ||
  fail "unknown category not reported at its element: $(cat "$work/err")"
grep -q 'bad.toml:13:6: rule "r1" (line 7): unknown CA profile "nowhere"' "$work/err" ||
  fail "unknown CA profile not reported at its value: $(cat "$work/err")"
grep -q 'bad.toml:16:8: rule "r1" (line 15): the name is already used by rule' "$work/err" ||
  fail "duplicate rule name not reported at the name: $(cat "$work/err")"
grep -q 'bad.toml:20:6: \[\[canary\]\]: ca = "nobody" is not a \[ca.NAME\] profile' "$work/err" ||
  fail "canary's unknown CA not reported at its value: $(cat "$work/err")"
expect_exit 2 "$MINTGATE" rules test -c "$work/bad.toml" --host a.example
expect_exit 2 "$MINTGATE" rules test -c migration.toml --host a.example --at yesterday
expect_exit 2 "$MINTGATE" check -c "$work/does-not-exist.toml"
grep -q "does-not-exist.toml: cannot read" "$work/err" || fail "missing file: $(cat "$work/err")"

# --- a state_dir that group or others can write is refused by check and at start: whoever can
# write there could replace the generated CA key and the admin token.
mkdir -m 0777 "$work/open-state"
chmod 0777 "$work/open-state"  # whatever the umask made of it
cat >"$work/open-state.toml" <<TOML
[server]
listen = ["127.0.0.1:$(free_port)"]
state_dir = "$work/open-state"
[admin]
listen = "127.0.0.1:$(free_port)"
TOML
expect_exit 2 "$MINTGATE" check -c "$work/open-state.toml"
grep -qF "server.state_dir: $work/open-state is writable by group or others (mode 0777)" \
  "$work/err" || fail "world-writable state_dir: $(cat "$work/err")"
grep -qF "run: chmod 700 $work/open-state" "$work/err" || fail "no chmod hint: $(cat "$work/err")"
expect_exit 2 timeout 10 "$MINTGATE" run -c "$work/open-state.toml"
grep -qF "$work/open-state is writable by group or others" "$work/err" ||
  fail "run with a world-writable state_dir: $(cat "$work/err")"
[[ ! -e $work/open-state/ca ]] || fail "a CA was generated in a world-writable state_dir"
chmod 0770 "$work/open-state"
expect_exit 2 "$MINTGATE" check -c "$work/open-state.toml"
grep -qF "(mode 0770)" "$work/err" || fail "group-writable state_dir: $(cat "$work/err")"
chmod 0755 "$work/open-state"
expect_exit 0 "$MINTGATE" check -c "$work/open-state.toml"

echo "PASS: check and rules test on the sample configurations"
