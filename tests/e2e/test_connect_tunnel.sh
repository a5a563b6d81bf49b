#!/usr/bin/env bash
# CONNECT through the real binary: refusals before the tunnel, the ClientHello peek and the
# rule decision by SNI, and tunnels that show the origin's own certificate (nginx with a lab
# CA made now), with curl and openssl s_client as clients.
set -euo pipefail
source "$(dirname "$0")/lib.sh"

# www.bank.test resolves elsewhere than the lab origin (nothing listens there: nothing must
# ever be sent there either).
DNSMASQ_EXTRA=(--address=/bank.test/127.0.0.2)
start_tls_lab
echo "hello over a tunnel" >"$work/www/hello.txt"

lab_config "$work/mintgate.toml"
cat >>"$work/mintgate.toml" <<TOML
[inspection]
connect_ports = [443, $NGINX_TLS_PORT, $admin, $proxy]

[log]
access = "$work/access.log"

[[rule]]
name = "block-bad"
action = "block"
hosts = ["bad.lab.test"]

[[rule]]
name = "tunnel-by-sni"
action = "tunnel"
hosts = ["www.lab.test", "sni.lab.test"]

[[rule]]
name = "block-by-sni"
action = "block"
hosts = ["blocked-sni.lab.test"]

[[rule]]
name = "no-decrypt-bank"
action = "tunnel"
hosts = [".bank.test"]
TOML
start_mintgate gateway "$work/mintgate.toml" "$proxy"
P=(--proxy "http://127.0.0.1:$proxy" --silent --show-error --max-time 10)

# A tunnel rule: the client sees the origin's own certificate, issued by the lab CA.
out=$(curl "${P[@]}" --cacert "$work/pki/ca.pem" "https://www.lab.test:$NGINX_TLS_PORT/hello.txt")
[[ $out == "hello over a tunnel" ]] || fail "tunnelled GET: $out"
issuer=$(issuer_via_proxy "$proxy" "www.lab.test:$NGINX_TLS_PORT" www.lab.test)
[[ $issuer == *"mintgate lab CA"* ]] || fail "tunnel does not show the origin certificate: $issuer"

# Keep-alive inside the tunnel: several requests, one CONNECT.
curl "${P[@]}" --cacert "$work/pki/ca.pem" -v "https://www.lab.test:$NGINX_TLS_PORT/hello.txt" \
  "https://www.lab.test:$NGINX_TLS_PORT/hello.txt" -o /dev/null -o /dev/null 2>"$work/ka.txt" ||
  fail "two requests in one tunnel"
[[ $(grep -c "CONNECT www.lab.test" "$work/ka.txt") == 1 ]] || fail "tunnel not reused"

# Refused before the tunnel, with a 403 the client can read.
connect_code() {  # target -> the CONNECT response status
  exec 3<>"/dev/tcp/127.0.0.1/$proxy"
  printf 'CONNECT %s HTTP/1.1\r\nHost: %s\r\n\r\n' "$1" "$1" >&3
  timeout 5 head -n 1 <&3 | tr -d '\r' | cut -d' ' -f2
  exec 3<&-
}
[[ $(connect_code "bad.lab.test:$NGINX_TLS_PORT") == 403 ]] || fail "block rule by CONNECT host"
[[ $(connect_code "www.lab.test:22") == 403 ]] || fail "port outside connect_ports"
[[ $(connect_code "127.0.0.1:$admin") == 403 ]] || fail "CONNECT to the admin listener"
[[ $(connect_code "127.0.0.1:$proxy") == 403 ]] || fail "CONNECT to the proxy itself"
[[ $(connect_code "nowhere.invalid.test:$NGINX_TLS_PORT") == 502 ]] || fail "unknown host"
[[ $(connect_code "www.lab.test") == 400 ]] || fail "CONNECT without a port"

# The SNI decides, not the CONNECT host: a blocked SNI behind an allowed CONNECT host gets a
# block page over TLS, under a leaf from the gateway's CA, never the origin's certificate.
# (curl reports the chain it verified; openssl s_client may exit before printing it when the
# server closes right after the handshake, as a block page does.)
issuer=$(curl "${P[@]}" --cacert "$work/state/ca/ca.pem" -w '%{certs}' -o /dev/null \
  --connect-to "blocked-sni.lab.test:$NGINX_TLS_PORT:www.lab.test:$NGINX_TLS_PORT" \
  "https://blocked-sni.lab.test:$NGINX_TLS_PORT/" | openssl x509 -noout -issuer || true)
[[ $issuer == *"mintgate Root CA"* ]] || fail "blocked SNI: certificate issuer '$issuer'"
body=$(curl "${P[@]}" --cacert "$work/state/ca/ca.pem" -w '\n%{http_code}' \
  --connect-to "blocked-sni.lab.test:$NGINX_TLS_PORT:www.lab.test:$NGINX_TLS_PORT" \
  "https://blocked-sni.lab.test:$NGINX_TLS_PORT/hello.txt")
[[ ${body##*$'\n'} == 403 ]] || fail "blocked SNI: status ${body##*$'\n'}"
grep -q 'blocked by rule &quot;block-by-sni&quot;' <<<"$body" || fail "block page: $body"
# A tunnel rule matches the SNI of a CONNECT made to an IP address that the SNI resolves to.
out=$(curl "${P[@]}" --cacert "$work/pki/ca.pem" --connect-to "sni.lab.test:$NGINX_TLS_PORT:127.0.0.1:$NGINX_TLS_PORT" \
  "https://sni.lab.test:$NGINX_TLS_PORT/hello.txt") || fail "tunnel by SNI via its own IP"
[[ $out == "hello over a tunnel" ]] || fail "SNI-decided tunnel: $out"

# A tunnel rule chosen by the SNI never sends the bytes to an address that is not the SNI's
# (the audit's exfiltration channel: CONNECT to any IP with a "do not decrypt" bank's SNI).
# The CONNECT host decides instead (here the default rule: decrypt), and decryption verifies
# the origin for the SNI: the client gets the gateway's leaf and a page, never the origin's
# certificate or content.
for target in "127.0.0.1:$NGINX_TLS_PORT" "x.other.test:$NGINX_TLS_PORT"; do
  certs=$(curl "${P[@]}" --cacert "$work/state/ca/ca.pem" -w '%{certs}' -o "$work/bank.html" \
    --connect-to "www.bank.test:$NGINX_TLS_PORT:${target%:*}:$NGINX_TLS_PORT" \
    "https://www.bank.test:$NGINX_TLS_PORT/hello.txt" || true)
  issuer=$(openssl x509 -noout -issuer <<<"$certs" 2>/dev/null || true)
  [[ $issuer == *"mintgate Root CA"* ]] || fail "bank SNI via $target: tunnelled (issuer '$issuer')"
  grep -q "hello over a tunnel" "$work/bank.html" && fail "bank SNI via $target: origin content"
  grep -q "failed verification" "$work/bank.html" || fail "bank SNI via $target: $(cat "$work/bank.html")"
done
# The record names both the CONNECT target and the SNI.
wait_for_line "$work/access.log" '"sni":"www.bank.test"' || fail "no record with the bank SNI"
grep '"sni":"www.bank.test"' "$work/access.log" | grep -q '"url":"127.0.0.1:' ||
  fail "CONNECT target missing: $(grep bank.test "$work/access.log")"

# An SNI that is no host name (a wildcard, an address) gets a TLS alert: no decision, no leaf.
for bad in '*.com' '127.0.0.1' 'a..b'; do
  out=$(echo | timeout 10 openssl s_client -proxy "127.0.0.1:$proxy" \
    -connect "www.lab.test:$NGINX_TLS_PORT" -servername "$bad" 2>&1 || true)
  grep -q "unrecognized name" <<<"$out" || fail "SNI '$bad': $(tail -n 3 <<<"$out")"
  grep -q "BEGIN CERTIFICATE\|Server certificate" <<<"$out" && fail "SNI '$bad' got a certificate"
done
wait_for_line "$work/access.log" '"note":"invalid SNI' || fail "invalid SNI not logged"

# A malformed ClientHello is closed (and logged); the gateway keeps serving.
exec 3<>"/dev/tcp/127.0.0.1/$proxy"
printf 'CONNECT www.lab.test:%s HTTP/1.1\r\n\r\n' "$NGINX_TLS_PORT" >&3
timeout 5 head -n 2 <&3 >/dev/null
printf '\x16\x03\x01\x00\x05\x02\x00\x00\x01\x00' >&3
timeout 5 cat <&3 >/dev/null || true
exec 3<&-
grep -q "malformed ClientHello" "$work/gateway.log" || fail "malformed ClientHello not logged"
out=$(curl "${P[@]}" --cacert "$work/pki/ca.pem" "https://www.lab.test:$NGINX_TLS_PORT/hello.txt")
[[ $out == "hello over a tunnel" ]] || fail "not serving after a malformed ClientHello"

# The access log has the tunnels (rule, bytes) and the refusals.
wait_for_line "$work/access.log" '"rule":"block-bad"' || fail "no block logged"
python3 - "$work/access.log" <<'PY' || fail "access log: $(tail -n 3 "$work/access.log")"
import json, sys
records = [json.loads(line) for line in open(sys.argv[1])]
tunnels = [r for r in records if r["method"] == "CONNECT" and r["action"] == "tunnel"]
assert tunnels and tunnels[0]["rule"] == "tunnel-by-sni" and tunnels[0]["status"] == 200, tunnels
assert all("sni" in r for r in records), records[0]
assert tunnels[0]["sni"] == "www.lab.test" and tunnels[0]["url"].startswith("www.lab.test:"), tunnels[0]
assert tunnels[0]["bytes_to_client"] > 1000 and tunnels[0]["bytes_from_client"] > 200, tunnels[0]
blocked = [r for r in records if r["status"] == 403 and r["rule"] == "block-bad"]
assert blocked and blocked[0]["action"] == "block", blocked
PY

echo "PASS: CONNECT tunnels"
