#!/usr/bin/env bash
# Proxy authentication against real directory servers on loopback: an MIT Kerberos KDC
# (Negotiate: curl --proxy-negotiate with a ticket from kinit, the user is the principal
# without its realm) and OpenLDAP's slapd (Basic checked by a bind as the user over ldaps://
# and StartTLS, groups from the directory's groupOfNames entries), the 407 offering Negotiate
# before Basic, and rules on LDAP groups.
set -euo pipefail
source "$(dirname "$0")/lib.sh"

start_http_lab
echo "hello" >"$work/www/hello.txt"
kdc_env=$(bash "$SOURCE_DIR/tests/e2e/kdc.sh" start "$work/kdc") || fail "the KDC did not start"
ldap_env=$(bash "$SOURCE_DIR/tests/e2e/slapd.sh" start "$work/ldap") || fail "slapd did not start"
stop_servers() {
  bash "$SOURCE_DIR/tests/e2e/kdc.sh" stop "$work/kdc"
  bash "$SOURCE_DIR/tests/e2e/slapd.sh" stop "$work/ldap"
  cleanup
}
trap stop_servers EXIT
eval "$kdc_env"
eval "$ldap_env"
export KRB5_CONFIG

write_config() { # ldap url, starttls
  lab_config "$work/mintgate.toml"
  cat >>"$work/mintgate.toml" <<TOML
[auth]
schemes = ["negotiate", "basic"]
keytab = "$KEYTAB"
service_principal = "HTTP/gateway.mintgate.test@$REALM"
[auth.ldap]
url = "$1"
starttls = $2
user_dn = "uid={user},ou=people,$LDAP_BASE"
group_base = "ou=groups,$LDAP_BASE"
ca_file = "$LDAP_CA"
[[rule]]
name = "finance-blocked"
action = "block"
hosts = ["blocked.lab.test"]
groups = ["finance"]
[log]
access = "$work/access.log"
TOML
}
write_config "$LDAPS_URL" false
"$MINTGATE" check -c "$work/mintgate.toml" >/dev/null 2>"$work/check.err" ||
  fail "check: $(cat "$work/check.err")"
start_mintgate gateway "$work/mintgate.toml" "$proxy"

# curl asks for a ticket for HTTP@<the proxy's name>: the proxy is reached by the service's
# name, resolved by curl to loopback.
P=(--proxy "http://gateway.mintgate.test:$proxy" --resolve "gateway.mintgate.test:$proxy:127.0.0.1"
  --silent --show-error --max-time 15)
base="http://www.lab.test:$origin"

# --- The 407 offers Negotiate first, then Basic.
curl "${P[@]}" -D "$work/h407" -o /dev/null "$base/hello.txt" || true
grep -i "^Proxy-Authenticate" "$work/h407" | tr -d '\r' >"$work/challenges"
[[ $(head -1 "$work/challenges") == "Proxy-Authenticate: Negotiate" ]] ||
  fail "Negotiate is not offered first: $(cat "$work/challenges")"
grep -q "Basic realm" "$work/challenges" || fail "no Basic challenge: $(cat "$work/challenges")"

# --- Negotiate with a Kerberos ticket: the user is alice, without the realm.
export KRB5CCNAME="FILE:$work/alice.ccache"
echo alice-krb-pw | kinit alice >/dev/null || fail "kinit alice"
out=$(curl "${P[@]}" --proxy-negotiate -U : -w '\n%{http_code}' "$base/hello.txt")
[[ $(tail -1 <<<"$out") == 200 ]] || fail "Negotiate: $out"
rec=$(access_logged '"auth":"negotiate"' | tail -1) || fail "no Negotiate record"
[[ $rec == *'"user":"alice"'* ]] || fail "Negotiate record: $rec"
# Kerberos users get their LDAP groups too (looked up by name under the DN template).
[[ $rec == *'"groups":["finance","staff"]'* ]] || fail "alice's LDAP groups: $rec"
code=$(curl "${P[@]}" --proxy-negotiate -U : -o /dev/null -w '%{http_code}' \
  "http://blocked.lab.test:$origin/hello.txt")
[[ $code == 403 ]] || fail "finance-blocked for alice over Negotiate: $code"
# A ticket for another service is refused.
kdestroy >/dev/null 2>&1 || true

# --- Basic against LDAP (ldaps://, the server's certificate checked against ca_file).
code=$(curl "${P[@]}" -U bob:bob-ldap-pw -o /dev/null -w '%{http_code}' \
  "http://blocked.lab.test:$origin/hello.txt")
[[ $code == 200 ]] || fail "bob over LDAP: $code"
rec=$(access_logged '"user":"bob"' | tail -1)
[[ $rec == *'"auth":"basic"'* && $rec == *'"groups":["staff"]'* ]] || fail "bob's record: $rec"
code=$(curl "${P[@]}" -U bob:wrong -o /dev/null -w '%{http_code}' "$base/hello.txt")
[[ $code == 407 ]] || fail "a wrong LDAP password: $code"
code=$(curl "${P[@]}" -U 'carol smith:carol-ldap-pw' -o /dev/null -w '%{http_code}' \
  "$base/hello.txt")
[[ $code == 200 ]] || fail "a user whose DN needs no escaping beyond a space: $code"
# LDAP compares names without case: "ALICE" is alice, and alice's rules apply to her.
code=$(curl "${P[@]}" -U 'ALICE:alice-ldap-pw' -o /dev/null -w '%{http_code}' \
  "http://blocked.lab.test:$origin/hello.txt")
[[ $code == 403 ]] || fail "ALICE escaped alice's group rule: $code"
access_logged '"rule":"finance-blocked"' | tail -1 | grep -q '"user":"alice"' ||
  fail "ALICE was not logged as alice"
# A name that tries to steer the DN does not bind as someone else.
code=$(curl "${P[@]}" -U 'bob,ou=people:bob-ldap-pw' -o /dev/null -w '%{http_code}' \
  "$base/hello.txt")
[[ $code == 407 ]] || fail "a DN injection: $code"

# --- StartTLS on ldap://.
write_config "$LDAP_URL" true
reload_gateway
code=$(curl "${P[@]}" -U alice:alice-ldap-pw -o /dev/null -w '%{http_code}' \
  "http://blocked.lab.test:$origin/hello.txt")
[[ $code == 403 ]] || fail "alice over StartTLS (finance is blocked): $code"

# --- A directory whose certificate is not trusted: 503 naming LDAP, never a plain bind.
sed -i "s|^ca_file = .*|ca_file = \"$work/pki-none.pem\"|" "$work/mintgate.toml"
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 1 -subj /CN=other \
  -keyout /dev/null -out "$work/pki-none.pem" 2>/dev/null
reload_gateway
code=$(curl "${P[@]}" -U bob:bob-ldap-pw -o "$work/503.html" -w '%{http_code}' "$base/hello.txt")
[[ $code == 503 ]] || fail "an untrusted directory: $code"
grep -q "LDAP" "$work/503.html" || fail "the 503 does not name LDAP: $(cat "$work/503.html")"

# --- /metrics counts the results by scheme.
metrics=$(admin_curl "http://127.0.0.1:$admin/metrics")
[[ $metrics == *'mintgate_auth_results_total{scheme="negotiate",result="ok"}'* ]] ||
  fail "no Negotiate count in /metrics"
[[ $metrics == *'mintgate_auth_results_total{scheme="basic",result="failed"}'* ]] ||
  fail "no failed Basic count in /metrics"
echo "PASS test_auth_directory"
