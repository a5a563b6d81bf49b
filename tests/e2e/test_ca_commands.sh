#!/usr/bin/env bash
# `mintgate ca init` and `mintgate ca show` against the real binary, cross-checked with the
# openssl command-line tool. Env: MINTGATE = path to the mintgate binary.
set -euo pipefail

: "${MINTGATE:?set MINTGATE to the mintgate binary}"
MINTGATE=$(realpath "$MINTGATE")

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cd "$work"

fail() {
  echo "FAIL: $*" >&2
  exit 1
}
# Runs a command that must fail with a given exit code; its stderr is kept in $work/err.
expect_exit() {
  local want=$1
  shift
  local got=0
  "$@" >"$work/out" 2>"$work/err" || got=$?
  [[ $got == "$want" ]] || fail "'$*' exited $got, expected $want: $(cat "$work/err")"
}

check_ca() {
  local key=$1 dir=$2 key_text=$3
  "$MINTGATE" ca init --out "$dir" --key "$key" --name "E2E $key" --days 30 >"$dir.init.txt" ||
    fail "ca init --key $key"
  [[ -f $dir/ca.pem && -f $dir/ca.key ]] || fail "ca init did not write $dir/ca.pem and ca.key"
  [[ $(stat -c %a "$dir/ca.key") == 600 ]] || fail "ca.key mode is $(stat -c %a "$dir/ca.key")"
  [[ $(stat -c %a "$dir/ca.pem") == 644 ]] || fail "ca.pem mode is $(stat -c %a "$dir/ca.pem")"

  local text
  text=$(openssl x509 -in "$dir/ca.pem" -noout -text)
  grep -q "CA:TRUE" <<<"$text" || fail "$key: no CA:TRUE"
  grep -q "Certificate Sign, CRL Sign" <<<"$text" || fail "$key: keyUsage is not keyCertSign+cRLSign"
  grep -q "Basic Constraints: critical" <<<"$text" || fail "$key: basicConstraints not critical"
  grep -q "Key Usage: critical" <<<"$text" || fail "$key: keyUsage not critical"
  grep -q "Subject Key Identifier" <<<"$text" || fail "$key: no SKI"
  grep -q "Authority Key Identifier" <<<"$text" || fail "$key: no AKI"
  grep -q "Signature Algorithm: .*[Ss][Hh][Aa]256" <<<"$text" || fail "$key: not signed with SHA-256"
  grep -q "$key_text" <<<"$text" || fail "$key: key is not '$key_text'"
  local verified
  verified=$(openssl verify -CAfile "$dir/ca.pem" "$dir/ca.pem") || fail "$key: openssl verify"
  [[ $verified == *": OK" ]] || fail "$key: openssl verify said '$verified'"
  # The key file is the certificate's key.
  [[ $(openssl pkey -in "$dir/ca.key" -pubout) == $(openssl x509 -in "$dir/ca.pem" -noout -pubkey) ]] ||
    fail "$key: ca.key does not match ca.pem"

  local fingerprint
  fingerprint=$(openssl x509 -in "$dir/ca.pem" -noout -fingerprint -sha256 | sed 's/^.*=//')
  [[ -n $fingerprint ]] || fail "openssl printed no fingerprint"
  grep -qF "$fingerprint" "$dir.init.txt" || fail "$key: ca init did not print $fingerprint"
  "$MINTGATE" ca show "$dir/ca.pem" >"$dir.show.txt" || fail "$key: ca show exited non-zero"
  grep -qF "$fingerprint" "$dir.show.txt" || fail "$key: ca show lacks $fingerprint"
  grep -q "CN=E2E $key" "$dir.show.txt" || fail "$key: ca show lacks the subject"

  # DER under a .cer name is recognised by content.
  openssl x509 -in "$dir/ca.pem" -outform DER -out "$dir/ca.cer"
  "$MINTGATE" ca show "$dir/ca.cer" >"$dir.show-der.txt" || fail "$key: ca show on DER .cer"
  grep -qF "$fingerprint" "$dir.show-der.txt" || fail "$key: ca show on DER lacks $fingerprint"

  "$MINTGATE" ca show --json "$dir/ca.pem" "$dir/ca.cer" >"$dir.json" || fail "$key: ca show --json"
  python3 - "$dir.json" "$fingerprint" "E2E $key" <<'EOF' || fail "$key: bad --json output"
import json, sys
doc = json.load(open(sys.argv[1]))
certs = doc["certificates"]
assert len(certs) == 2, certs
for c in certs:
    assert c["sha256"] == sys.argv[2], c["sha256"]
    assert c["subject_cn"] == sys.argv[3], c["subject_cn"]
    assert c["ca"] is True and c["self_signed"] is True, c
EOF
  python3 -c 'import json,sys; json.load(sys.stdin)' <"$dir.json" || fail "--json is not JSON"
  echo "ok: ca init --key $key ($fingerprint)"
}

check_ca ecdsa-p256 "$work/ec" "NIST CURVE: P-256"
check_ca rsa-2048 "$work/rsa" "Public-Key: (2048 bit)"

# Refuses to overwrite an existing CA and leaves it untouched.
before=$(sha256sum "$work/ec/ca.pem" "$work/ec/ca.key")
expect_exit 2 "$MINTGATE" ca init --out "$work/ec"
grep -q "already exists" "$work/err" || fail "ca init into an existing dir: $(cat "$work/err")"
[[ $(sha256sum "$work/ec/ca.pem" "$work/ec/ca.key") == "$before" ]] || fail "existing CA modified"
echo "ok: ca init refuses to overwrite"

# Not a certificate: exit 2, the file is named, and the other files are still shown.
cp "$work/ec/ca.key" "$work/not-a-cert.pem"
echo "garbage" >"$work/garbage.cer"
expect_exit 2 "$MINTGATE" ca show "$work/not-a-cert.pem"
grep -q "not-a-cert.pem: not a certificate" "$work/err" || fail "ca show key file: $(cat "$work/err")"
expect_exit 2 "$MINTGATE" ca show "$work/garbage.cer" "$work/ec/ca.pem"
grep -q "garbage.cer: not a certificate" "$work/err" || fail "ca show garbage: $(cat "$work/err")"
grep -q "CN=E2E ecdsa-p256" "$work/out" || fail "ca show stopped at the first bad file"
expect_exit 2 "$MINTGATE" ca show "$work/missing.pem"
grep -q "missing.pem: cannot read" "$work/err" || fail "ca show missing: $(cat "$work/err")"
echo "ok: ca show refuses non-certificates with exit 2"

# Usage errors are exit 2 as well.
expect_exit 2 "$MINTGATE" ca init --out "$work/bad" --key rsa-1024
echo "ok: bad --key is a usage error"

echo "PASS: test_ca_commands"
