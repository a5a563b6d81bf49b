#!/usr/bin/env bash
# decrypt-to-login, the original product's case: with inspection switched off, a client the
# gateway cannot identify still has its HTTPS decrypted (with the login CA) so that its first
# request goes to the portal's sign-in page, served over HTTPS on the portal's name. After a
# sign-in (CSRF-checked, throttled, the password never logged) the client address is that
# user's, and the user's tunnel rule really tunnels from the next connection; signing out
# brings the login back. The audit, the portal and `rules test` show the login path.
set -euo pipefail
source "$(dirname "$0")/lib.sh"

start_tls_lab
echo "inside" >"$work/www/hello.txt"
htpasswd -cbB "$work/users.htpasswd" alice 'alice pw!' 2>/dev/null
chmod 600 "$work/users.htpasswd"

lab_config "$work/mintgate.toml"
cat >>"$work/mintgate.toml" <<TOML
[inspection]
enabled = false
connect_ports = [443, $NGINX_TLS_PORT]
extra_trust = ["$work/pki/ca.pem"]
[auth]
unidentified = "decrypt-to-login"
login_ttl = 3600
htpasswd = "$work/users.htpasswd"
[[rule]]
name = "alice-tunnels"
action = "tunnel"
hosts = ["www.lab.test"]
users = ["alice"]
[log]
access = "$work/access.log"
TOML
"$MINTGATE" check -c "$work/mintgate.toml" >/dev/null || fail "the login config does not check"
start_mintgate gateway "$work/mintgate.toml" "$proxy"
ca="$work/state/ca/ca.pem"
P=(--proxy "http://127.0.0.1:$proxy" --silent --show-error --max-time 15)
site="https://www.lab.test:$NGINX_TLS_PORT/hello.txt"
login="https://mintgate.portal/login"

# --- Unidentified, inspection off: decrypted with the gateway's CA anyway (curl trusts only
# that CA here), and sent to the sign-in page with the way back.
headers=$(curl "${P[@]}" --cacert "$ca" -D - -o /dev/null "$site") ||
  fail "the unidentified HTTPS request was not decrypted with the gateway's CA"
[[ $headers == *"HTTP/1.1 302"* ]] || fail "no redirect to the login: $headers"
location=$(grep -i '^Location:' <<<"$headers" | tr -d '\r' | cut -d' ' -f2)
[[ $location == "$login?return=https%3A%2F%2Fwww.lab.test%3A$NGINX_TLS_PORT%2Fhello.txt" ]] ||
  fail "Location: $location"
access_logged '"method":"CONNECT"' | tail -1 | grep -q '"action":"decrypt"' ||
  fail "the CONNECT record: $(grep CONNECT "$work/access.log" | tail -1)"
# Plain HTTP goes to the same page.
headers=$(curl "${P[@]}" -D - -o /dev/null "http://www.lab.test:$origin/hello.txt")
[[ $headers == *"HTTP/1.1 302"* && $headers == *"return=http%3A%2F%2Fwww.lab.test"* ]] ||
  fail "plain HTTP: $headers"

# --- The sign-in page, over HTTPS on the portal's name, under the gateway's CA.
page() { # curl options...; prints the body, the status last
  curl "${P[@]}" --cacert "$ca" -c "$work/jar" -b "$work/jar" -w '\n%{http_code}' "$@"
}
out=$(page "$location") || fail "the sign-in page is not served over HTTPS"
[[ $(tail -1 <<<"$out") == 200 ]] || fail "sign-in page: $(tail -1 <<<"$out")"
csrf=$(python3 -c '
import re, sys
html = sys.stdin.read()
for tag in re.findall(r"<input[^>]*>", html):
    if re.search(r"name=\"csrf\"", tag):
        print(re.search(r"value=\"([0-9a-f]+)\"", tag).group(1))
        break
' <<<"$out")
[[ ${#csrf} == 64 ]] || fail "no CSRF token in the form: $out"
grep -q "mintgate_login" "$work/jar" || fail "no CSRF cookie"

post() { # path, then curl options
  local path=$1
  shift
  page -o "$work/post.html" "$@" "https://mintgate.portal$path" | tail -1
}
ret="$site"
# Without the token, and with a wrong password: refused.
code=$(post /login --data-urlencode user=alice --data-urlencode 'password=alice pw!' \
  --data-urlencode "return=$ret")
[[ $code == 403 ]] && grep -q "expired or came from another site" "$work/post.html" ||
  fail "a form without its token: $code"
code=$(post /login --data-urlencode user=alice --data-urlencode password=wrong \
  --data-urlencode "csrf=$csrf" --data-urlencode "return=$ret")
[[ $code == 403 ]] && grep -q "Wrong user name or password" "$work/post.html" ||
  fail "wrong password: $code"

# --- Throttled: a client that keeps failing waits (another address, another user).
for i in 1 2 3 4 5; do
  code=$(post /login --interface 127.0.0.3 --data-urlencode user=mallory \
    --data-urlencode password="guess$i" --data-urlencode "csrf=$csrf")
  [[ $code == 403 ]] || fail "failure $i: $code"
done
code=$(post /login --interface 127.0.0.3 --data-urlencode user=mallory \
  --data-urlencode password=guess6 --data-urlencode "csrf=$csrf")
[[ $code == 429 ]] && grep -q "Too many failed sign-ins" "$work/post.html" ||
  fail "no throttle after 5 failures: $code"

# --- The sign-in: back to where the client was going; the address is alice's now.
headers=$(curl "${P[@]}" --cacert "$ca" -b "$work/jar" -c "$work/jar" -D - -o /dev/null \
  --data-urlencode user=alice --data-urlencode 'password=alice pw!' \
  --data-urlencode "csrf=$csrf" --data-urlencode "return=$ret" "$login")
[[ $headers == *"HTTP/1.1 303"* ]] || fail "sign-in: $headers"
grep -qi "^Location: $site" <<<"$headers" || fail "sign-in Location: $headers"
access_logged '"auth":"login"' | grep -q '"user":"alice"' ||
  fail "the sign-in record: $(grep login "$work/access.log" | tail -2)"
grep -q "alice pw" "$work/access.log" "$work/gateway.log" && fail "the password reached a log"

# alice's tunnel rule applies from the next connection: the origin's own certificate (the
# lab CA), not a leaf of the gateway's.
out=$(curl "${P[@]}" --cacert "$work/pki/ca.pem" "$site") || fail "alice's tunnel"
[[ $out == inside ]] || fail "alice's tunnel: $out"
access_logged '"action":"tunnel"' | tail -1 | grep -q '"user":"alice"' ||
  fail "the tunnel record: $(tail -1 "$work/access.log")"

# --- The page shows who is signed in; signing out brings the login back.
out=$(page "$login")
[[ $out == *"Signed in as <strong>alice</strong>"* ]] || fail "the page does not show the sign-in: $out"
grep -q "mintgate_session" "$work/jar" || fail "no portal session cookie"
# Another device behind the same address is not told who signed in, and cannot sign out.
out=$(curl "${P[@]}" --cacert "$ca" "$login")
[[ $out != *"alice"* && $out == *'name="password"'* ]] || fail "another device sees the sign-in"
code=$(curl "${P[@]}" --cacert "$ca" -o /dev/null -w '%{http_code}' -b "mintgate_login=$csrf" \
  --data-urlencode "csrf=$csrf" https://mintgate.portal/logout)
[[ $code == 403 ]] || fail "a device without the session signed out: $code"
code=$(post /logout --data-urlencode "csrf=$csrf")
[[ $code == 200 ]] && grep -qi "signed out" "$work/post.html" || fail "sign-out: $code"
headers=$(curl "${P[@]}" --cacert "$ca" -D - -o /dev/null "$site")
[[ $headers == *"HTTP/1.1 302"* ]] || fail "after sign-out: $headers"

# --- The login path everywhere the CAs are listed.
audit=$("$MINTGATE" ca audit -c "$work/mintgate.toml" || true)
[[ $audit == *"(login: unidentified users)"* ]] || fail "ca audit has no login row: $audit"
portal=$(curl "${P[@]}" http://mintgate.portal/)
[[ $portal == *"cannot identify"* ]] || fail "the portal does not say why the CA is needed"
out=$("$MINTGATE" rules test -c "$work/mintgate.toml" --host www.lab.test --unidentified)
[[ $out == *"user not identified: decrypted with"* && $out == *"action:  decrypt"* ]] ||
  fail "rules test --unidentified: $out"
out=$("$MINTGATE" rules test -c "$work/mintgate.toml" --host www.lab.test --user alice)
[[ $out == *"action:  tunnel"* ]] || fail "rules test --user alice: $out"
echo "PASS test_auth_login"
