#!/usr/bin/env bash
# Proxy authentication ([auth]) with Basic against an htpasswd file (bcrypt and SHA-512-crypt
# made by the real tools), groups from a groups file and a static user by client address: the
# 407 and its challenge, the connection kept across it, a CONNECT's user owning the requests
# inside the tunnel, rules on users and groups, the credential never passed to the origin,
# the file re-read when it changes, and auth.unidentified = "deny" and "allow".
set -euo pipefail
source "$(dirname "$0")/lib.sh"

start_tls_lab
echo "inside" >"$work/www/hello.txt"

htpasswd -cbB "$work/users.htpasswd" alice 'alice pw!' 2>/dev/null
echo "bob:$(openssl passwd -6 'bob-pw')" >>"$work/users.htpasswd"
htpasswd -bm "$work/users.htpasswd" carol 'carol-pw' 2>/dev/null # MD5 ($apr1$): refused
chmod 600 "$work/users.htpasswd"
grep -q '^alice:\$2y\$' "$work/users.htpasswd" || fail "htpasswd -B made no bcrypt hash"
grep -q '^bob:\$6\$' "$work/users.htpasswd" || fail "openssl passwd -6 made no SHA-512 hash"
printf 'finance: alice\n# a comment\nstaff: alice, bob\n' >"$work/groups.txt"

write_config() { # unidentified
  lab_config "$work/mintgate.toml"
  cat >>"$work/mintgate.toml" <<TOML
[inspection]
connect_ports = [$NGINX_TLS_PORT]
extra_trust = ["$work/pki/ca.pem"]
[auth]
schemes = ["basic"]
unidentified = "$1"
realm = "Lab Gateway"
htpasswd = "$work/users.htpasswd"
groups_file = "$work/groups.txt"
static_users = [{ clients = ["127.0.0.2"], user = "kiosk" }]
[[rule]]
name = "finance-blocked"
action = "block"
hosts = ["blocked.lab.test"]
groups = ["finance"]
[[rule]]
name = "no-kiosk"
action = "block"
hosts = ["www.lab.test"]
users = ["kiosk"]
[log]
access = "$work/access.log"
TOML
}
write_config challenge
"$MINTGATE" check -c "$work/mintgate.toml" >/dev/null 2>"$work/check.err" ||
  fail "check: $(cat "$work/check.err")"
grep -q "warning: \[auth\]:.*carol\|warning: \[auth\]:.*line 3" "$work/check.err" ||
  fail "check does not warn about the MD5 entry: $(cat "$work/check.err")"
start_mintgate gateway "$work/mintgate.toml" "$proxy"

P=(--proxy "http://127.0.0.1:$proxy" --silent --show-error --max-time 15)
base="http://www.lab.test:$origin"
last_record() { access_logged "$1" | tail -n 1 || echo "(no record with $1)"; }

# --- No credential: 407 with the challenge, the realm, and the record says why.
curl "${P[@]}" -D "$work/h407" -o /dev/null "$base/hello.txt" || true
grep -q "^HTTP/1.1 407" "$work/h407" || fail "no 407: $(head -1 "$work/h407")"
grep -qi '^Proxy-Authenticate: Basic realm="Lab Gateway"' "$work/h407" ||
  fail "no Basic challenge: $(cat "$work/h407")"
rec=$(last_record '"status":407')
[[ $rec == *'"auth":"required"'* ]] || fail "407 record: $rec"

# --- curl answers the challenge on the same connection: one connect, 200, and the origin
# never sees the credential.
out=$(curl "${P[@]}" --proxy-anyauth -U 'alice:alice pw!' -w '\n%{num_connects} %{http_code}' \
  "$base/echo-headers")
[[ $(tail -1 <<<"$out") == "1 200" ]] || fail "challenge answered on one connection: $out"
[[ $(head -1 <<<"$out") == *"pa=[]"* ]] || fail "the origin saw the credential: $out"
rec=$(last_record '/echo-headers')
[[ $rec == *'"user":"alice"'* && $rec == *'"auth":"basic"'* ]] || fail "alice's record: $rec"
[[ $rec == *'"groups":["finance","staff"]'* ]] || fail "alice's groups: $rec"
grep -q "alice pw" "$work/access.log" "$work/gateway.log" && fail "the password reached a log"

# SHA-512-crypt works; a wrong password and an MD5 entry get the 407 again.
code=$(curl "${P[@]}" -U bob:bob-pw -o /dev/null -w '%{http_code}' "$base/hello.txt")
[[ $code == 200 ]] || fail "bob (SHA-512-crypt): $code"
code=$(curl "${P[@]}" -U bob:wrong -o /dev/null -w '%{http_code}' "$base/hello.txt")
[[ $code == 407 ]] || fail "wrong password: $code"
rec=$(last_record '"auth":"failed"')
[[ $rec == *"wrong user name or password"* ]] || fail "failed record: $rec"
code=$(curl "${P[@]}" -U carol:carol-pw -o /dev/null -w '%{http_code}' "$base/hello.txt")
[[ $code == 407 ]] || fail "MD5 entry accepted: $code"

# --- Rules on groups and users: finance (alice) is blocked from blocked.lab.test, bob is not.
code=$(curl "${P[@]}" -U 'alice:alice pw!' -o /dev/null -w '%{http_code}' \
  "http://blocked.lab.test:$origin/hello.txt")
[[ $code == 403 ]] || fail "finance-blocked for alice: $code"
rec=$(last_record 'blocked.lab.test')
[[ $rec == *'"rule":"finance-blocked"'* ]] || fail "alice's block record: $rec"
code=$(curl "${P[@]}" -U bob:bob-pw -o /dev/null -w '%{http_code}' \
  "http://blocked.lab.test:$origin/hello.txt")
[[ $code == 200 ]] || fail "bob to blocked.lab.test: $code"

# --- A static user: requests from 127.0.0.2 are "kiosk" without a credential.
code=$(curl "${P[@]}" --interface 127.0.0.2 -o /dev/null -w '%{http_code}' \
  "http://blocked.lab.test:$origin/hello.txt")
[[ $code == 200 ]] || fail "kiosk to blocked.lab.test: $code"
code=$(curl "${P[@]}" --interface 127.0.0.2 -o /dev/null -w '%{http_code}' "$base/hello.txt")
[[ $code == 403 ]] || fail "the kiosk rule: $code"
rec=$(last_record '"rule":"no-kiosk"')
[[ $rec == *'"user":"kiosk"'* && $rec == *'"auth":"static"'* ]] || fail "kiosk record: $rec"

# --- CONNECT: authenticated once, its user owns every request inside the decrypted tunnel.
ca="$work/state/ca/ca.pem"
out=$(curl "${P[@]}" --proxy-anyauth -U 'alice:alice pw!' --cacert "$ca" \
  "https://www.lab.test:$NGINX_TLS_PORT/hello.txt" "https://www.lab.test:$NGINX_TLS_PORT/hello.txt")
[[ $out == $'inside\ninside' ]] || fail "decrypted GETs as alice: $out"
for _ in $(seq 50); do
  n=$(access_logged "https://www.lab.test:$NGINX_TLS_PORT/hello.txt" | grep -c '"user":"alice"' ||
    true)
  [[ $n == 2 ]] && break
  sleep 0.1
done
[[ $n == 2 ]] || fail "requests inside the tunnel as alice: $n: $(grep -F "lab.test:$NGINX_TLS_PORT" "$work/access.log")"
grep -F '"method":"CONNECT"' "$work/access.log" | grep -q '"user":"alice"' ||
  fail "the CONNECT record has no user: $(grep CONNECT "$work/access.log" | tail -2)"
code=$(curl "${P[@]}" --cacert "$ca" -o /dev/null -w '%{http_code}' \
  "https://www.lab.test:$NGINX_TLS_PORT/hello.txt" 2>/dev/null || true)
[[ $code == 000 || $code == 407 ]] || fail "CONNECT without a credential: $code"
access_logged '"status":407' | grep -q '"method":"CONNECT"' || fail "CONNECT 407 not logged"

# --- The htpasswd file is read again when it changes: a new user works without a reload.
htpasswd -bB "$work/users.htpasswd" dave dave-pw 2>/dev/null
sleep 1.2
code=$(curl "${P[@]}" -U dave:dave-pw -o /dev/null -w '%{http_code}' "$base/hello.txt")
[[ $code == 200 ]] || fail "a user added to the file: $code"

# --- unidentified = "deny": 403 without a credential; "allow": no user, the rules decide.
write_config deny
reload_gateway
code=$(curl "${P[@]}" -o /dev/null -w '%{http_code}' "$base/hello.txt")
[[ $code == 403 ]] || fail "unidentified = deny: $code"
write_config allow
reload_gateway
code=$(curl "${P[@]}" -o /dev/null -w '%{http_code}' "$base/hello.txt")
[[ $code == 200 ]] || fail "unidentified = allow: $code"

# --- A configuration whose files are missing fails `check` with the file named.
sed -i "s|$work/users.htpasswd|$work/missing.htpasswd|" "$work/mintgate.toml"
if "$MINTGATE" check -c "$work/mintgate.toml" >/dev/null 2>"$work/check.err"; then
  fail "check accepted a missing htpasswd file"
fi
grep -q "missing.htpasswd" "$work/check.err" || fail "check: $(cat "$work/check.err")"

# --- rules test explains users and groups.
out=$("$MINTGATE" rules test -c "$work/mintgate.toml" --host blocked.lab.test --port 80 \
  --user alice --group finance)
[[ $out == *"rule:    finance-blocked"* && $out == *'group "finance"'* ]] || fail "rules test: $out"
echo "PASS test_auth"
