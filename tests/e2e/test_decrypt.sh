#!/usr/bin/env bash
# Decryption through the real binary: the origin (nginx with a lab CA) is verified first, the
# client gets a leaf minted by the gateway's generated CA, and requests are relayed decrypted.
# Origins that fail verification get a page naming the reason, never their content.
set -euo pipefail
source "$(dirname "$0")/lib.sh"

NGINX_BAD_TLS_PORT=$(free_port)
NGINX_SNI_TLS_PORT=$(free_port)
start_tls_lab
echo "secret inside TLS" >"$work/www/hello.txt"

lab_config "$work/mintgate.toml"
cat >>"$work/mintgate.toml" <<TOML
[inspection]
connect_ports = [$NGINX_TLS_PORT, $NGINX_BAD_TLS_PORT, $NGINX_SNI_TLS_PORT]
extra_trust = ["$work/pki/ca.pem"]
[log]
access = "$work/access.log"
TOML
start_mintgate gateway "$work/mintgate.toml" "$proxy"
ca="$work/state/ca/ca.pem"
[[ -f $ca ]] || fail "no generated CA at $ca"
P=(--proxy "http://127.0.0.1:$proxy" --silent --show-error --max-time 15)
url="https://www.lab.test:$NGINX_TLS_PORT"

# Decrypted GET, verified by curl against the gateway's CA only.
out=$(curl "${P[@]}" --cacert "$ca" "$url/hello.txt") || fail "decrypted GET failed"
[[ $out == "secret inside TLS" ]] || fail "decrypted GET: $out"

# The client sees a leaf for the host, issued by the gateway's CA, not the origin's cert.
for _ in 1 2 3; do  # s_client sometimes closes before printing on a loaded machine
  echo | timeout 10 openssl s_client -proxy "127.0.0.1:$proxy" \
    -connect "www.lab.test:$NGINX_TLS_PORT" -servername www.lab.test -CAfile "$ca" \
    -verify_hostname www.lab.test >"$work/sc.txt" 2>&1 || true
  grep -q "Verify return code: 0 (ok)" "$work/sc.txt" && break
done
grep -q "Verify return code: 0 (ok)" "$work/sc.txt" || fail "leaf does not verify: $(tail -5 "$work/sc.txt")"
issuer=$(openssl x509 -noout -issuer <"$work/sc.txt")
[[ $issuer == *"mintgate Root CA"* ]] || fail "leaf issuer: $issuer"

# Verified origin connections outlive their client: of three clients one after the other, at
# least two share a worker, whose pooled origin connection the later one uses. New origin
# connections resume the origin's TLS session (cached per worker).
ids=$(for _ in 1 2 3; do curl "${P[@]}" --cacert "$ca" "$url/conn" | cut -d' ' -f1; done)
[[ $(sort <<<"$ids" | uniq -d) ]] || fail "origin connections not reused: $ids"
out=$(for _ in 1 2 3; do curl "${P[@]}" --cacert "$ca" "$url/conn-close"; done)
[[ -z $(cut -d' ' -f1 <<<"$out" | sort | uniq -d) ]] || fail "a closed origin connection was reused"
grep -q " r$" <<<"$out" || fail "origin TLS session never resumed: $out"

# The leaf mirrors the origin's names: a host its certificate covers only with *.lab.test gets
# a leaf for *.lab.test, which then serves every such host from the cache.
for h in one two; do
  curl "${P[@]}" --cacert "$ca" -w '%{certs}' -o /dev/null "https://$h.lab.test:$NGINX_TLS_PORT/hello.txt" |
    openssl x509 -noout -ext subjectAltName >"$work/san-$h.txt" || fail "GET via $h.lab.test"
done
grep -q "DNS:\*.lab.test" "$work/san-one.txt" || fail "leaf SAN: $(cat "$work/san-one.txt")"
wait_for_line "$work/access.log" \
  '"url":"two.lab.test:[0-9]*".*"cert_cache":"hit"\|"cert_cache":"hit".*"url":"two.lab.test' || fail "the wildcard leaf was not reused: $(grep two.lab "$work/access.log")"

# A host under the wildcard may resume a TLS session another host under it left with the
# origin (its certificate is valid for both), but only once its own certificate was verified
# in a full handshake: never-seen names are never resumed, a name seen before is.
out=$(for h in s1 s2 s3 s4 s5 s6; do
  curl "${P[@]}" --cacert "$ca" "https://$h.lab.test:$NGINX_TLS_PORT/conn-close" || fail "GET via $h"
done)
grep -q " r$" <<<"$out" && fail "a never-seen name resumed another name's session: $out"
out=$(for _ in 1 2 3 4 5; do
  curl "${P[@]}" --cacert "$ca" "https://s1.lab.test:$NGINX_TLS_PORT/conn-close" || fail "GET via s1"
done)
grep -q " r$" <<<"$out" || fail "a verified name never resumed its session: $out"

# An origin that picks its certificate by SNI: after www.lab.test (verified through the lab
# CA's wildcard), evil.lab.test at the same address has a self-signed certificate of its own.
# Resuming www's session for it would hide that certificate; it must be verified, and fail.
sni="$NGINX_SNI_TLS_PORT"
for _ in 1 2 3 4; do
  out=$(curl "${P[@]}" --cacert "$ca" "https://www.lab.test:$sni/hello.txt") || fail "www via SNI origin"
  [[ $out == "secret inside TLS" ]] || fail "www via SNI origin: $out"
  body=$(curl "${P[@]}" --cacert "$ca" -w '\n%{http_code}' "https://evil.lab.test:$sni/hello.txt")
  [[ ${body##*$'\n'} == 502 ]] || fail "evil.lab.test behind a shared session: ${body##*$'\n'}"
  grep -q "failed verification" <<<"$body" || fail "evil.lab.test page: $body"
done
# A certificate that names the host only in its subject CN is a name mismatch, as in browsers.
body=$(curl "${P[@]}" --cacert "$ca" -w '\n%{http_code}' "https://cn-only.lab.test:$sni/hello.txt")
[[ ${body##*$'\n'} == 502 ]] || fail "CN-only certificate: status ${body##*$'\n'}"
grep -qi "hostname mismatch" <<<"$body" || fail "CN-only certificate: $body"

# A decrypted origin connection that carried NTLM is closed with its client, not pooled for
# the next one (plain HTTP: test_http_proxy).
out=$(curl "${P[@]}" --cacert "$ca" "$url/ntlm" "$url/conn")
pinned=$(head -n 1 <<<"$out" | cut -d' ' -f1)
[[ $(sed -n 2p <<<"$out" | cut -d' ' -f1) == "$pinned" ]] || fail "pinned connection: $out"
for _ in 1 2 3 4 5 6; do
  other=$(curl "${P[@]}" --cacert "$ca" "$url/conn" | cut -d' ' -f1)
  [[ $other != "$pinned" ]] || fail "decrypted origin connection $pinned (NTLM) served another client"
done

# A CONNECT inside the decrypted connection would open a tunnel no rule has seen: 400.
code=$(curl "${P[@]}" --cacert "$ca" -o /dev/null -w '%{http_code}' -X CONNECT \
  --request-target "www.lab.test:$NGINX_TLS_PORT" "$url/")
[[ $code == 400 ]] || fail "nested CONNECT: $code"

# Keep-alive inside the decrypted connection, and an upload.
curl "${P[@]}" --cacert "$ca" -v "$url/hello.txt" "$url/hello.txt" -o /dev/null -o /dev/null \
  2>"$work/ka.txt" || fail "two decrypted requests"
[[ $(grep -c "CONNECT www.lab.test" "$work/ka.txt") == 1 ]] || fail "decrypted connection not reused"
head -c $((2 << 20)) /dev/urandom >"$work/up.bin"
code=$(curl "${P[@]}" --cacert "$ca" -o /dev/null -w '%{http_code}' -T "$work/up.bin" "$url/upload/x.bin")
[[ $code == 201 || $code == 204 ]] || fail "decrypted PUT: $code"
cmp -s "$work/up.bin" "$work/www/upload/x.bin" || fail "decrypted upload differs"

# A client without the gateway's CA refuses the leaf; the gateway logs the client's alert.
rc=0
curl "${P[@]}" "$url/hello.txt" -o /dev/null 2>/dev/null || rc=$?
[[ $rc == 60 ]] || fail "a client without the CA accepted the leaf (curl rc $rc)"

# An origin nobody trusts: a page naming the reason, over a trusted leaf, and nothing of it.
body=$(curl "${P[@]}" --cacert "$ca" -w '\n%{http_code}' "https://www.lab.test:$NGINX_BAD_TLS_PORT/hello.txt")
[[ ${body##*$'\n'} == 502 ]] || fail "untrusted origin: status ${body##*$'\n'}"
grep -q "failed verification" <<<"$body" || fail "no reason on the page: $body"
grep -q "secret inside TLS" <<<"$body" && fail "content of an unverified origin was relayed"
# A name the origin's certificate does not cover.
body=$(curl "${P[@]}" --cacert "$ca" -w '\n%{http_code}' "https://www.other.test:$NGINX_TLS_PORT/hello.txt")
[[ ${body##*$'\n'} == 502 ]] || fail "name mismatch: status ${body##*$'\n'}"
grep -qi "hostname mismatch" <<<"$body" || fail "name mismatch not named: $body"

# upstream_cert_errors = "untrusted": the unverified origin is relayed under a leaf no client
# trusts, so a client warns (curl refuses) unless the user insists (curl -k).
proxy2=$(free_port)
sed -e "s/127.0.0.1:$proxy/127.0.0.1:$proxy2/" -e "s|$work/state|$work/state2|" \
  -e "s|^extra_trust|upstream_cert_errors = \"untrusted\"\nextra_trust|" \
  -e "s|$work/access.log|$work/access2.log|" -e "s/^listen = \"127.0.0.1:$admin\"/listen = \"127.0.0.1:$(free_port)\"/" \
  "$work/mintgate.toml" >"$work/untrusted.toml"
start_mintgate untrusted "$work/untrusted.toml" "$proxy2"
bad="https://www.lab.test:$NGINX_BAD_TLS_PORT/hello.txt"
rc=0
curl --proxy "http://127.0.0.1:$proxy2" -s --max-time 10 --cacert "$work/state2/ca/ca.pem" \
  "$bad" -o /dev/null || rc=$?
[[ $rc == 60 ]] || fail "untrusted mode: a verifying client accepted the leaf (rc $rc)"
out=$(curl --proxy "http://127.0.0.1:$proxy2" -s --max-time 10 -k "$bad")
[[ $out == "secret inside TLS" ]] || fail "untrusted mode: insisting client got '$out'"
issuer=$(issuer_via_proxy "$proxy2" "www.lab.test:$NGINX_BAD_TLS_PORT" www.lab.test)
[[ $issuer == *"untrusted"* ]] || fail "untrusted mode: leaf issuer $issuer"

# Metrics count the certificate cache and show each CA's days to expiry; /audit is the
# `ca audit` report as JSON.
admin_curl "http://127.0.0.1:$admin/metrics" >"$work/metrics.txt"
grep -Eq '^mintgate_cert_cache_hits_total [1-9]' "$work/metrics.txt" || fail "metrics: cache hits"
grep -Eq '^mintgate_ca_expiry_days\{profile="default"\} [0-9]+' "$work/metrics.txt" ||
  fail "metrics: CA expiry"
admin_curl "http://127.0.0.1:$admin/audit" |
  python3 -c 'import json,sys; j=json.load(sys.stdin); assert j["rules"][-1]["rule"]=="default" and j["rules"][-1]["subject_cn"]=="mintgate Root CA", j' ||
  fail "/audit"

wait_for_line "$work/access.log" "unknown ca" -i || fail "no unknown-CA refusal logged"
python3 - "$work/access.log" <<'PY' || fail "access log: $(tail -n 5 "$work/access.log")"
import json, sys
records = [json.loads(line) for line in open(sys.argv[1])]
inner = [r for r in records if r["method"] == "GET" and r["url"].startswith("https://www.lab.test:")]
assert inner and inner[0]["status"] == 200 and inner[0]["action"] == "decrypt", inner[:1]
assert inner[0]["ca"] == "default" and inner[0]["upstream_verify"] == "ok", inner[0]
connects = [r for r in records if r["method"] == "CONNECT" and r["action"] == "decrypt"]
assert any(r.get("cert_cache") == "miss" for r in connects), connects
assert any(r.get("cert_cache") == "hit" for r in connects), connects
assert any("unknown ca" in r.get("note", "").lower() for r in connects), connects
PY

echo "PASS: decryption"
