#!/usr/bin/env bash
# A CA that expires while the gateway runs: it is warned about (it is within 30 days of its
# not-after from the start), then never signs again. Its rules get a 403 naming the CA before
# the tunnel with on_ca_expired = "block", or an untouched tunnel with "tunnel".
set -euo pipefail
source "$(dirname "$0")/lib.sh"

start_tls_lab
echo "expiry" >"$work/www/hello.txt"

# A root that ends a few seconds after it is signed (`openssl ca` takes an exact end date).
# Whatever does not need it is made first, so that only starting the gateways and one
# request happen in its lifetime; its end is then all the test waits for.
mkdir -p "$work/short"
cat >"$work/short/ca.cnf" <<'CNF'
[ca]
default_ca = short
[short]
dir = .
database = index.txt
new_certs_dir = .
serial = serial
default_md = sha256
policy = any
x509_extensions = root_ext
[any]
commonName = supplied
[root_ext]
basicConstraints = critical,CA:TRUE
keyUsage = critical,keyCertSign,cRLSign
subjectKeyIdentifier = hash
CNF
(
  cd "$work/short"
  touch index.txt
  echo 01 >serial
  openssl ecparam -name prime256v1 -genkey -noout -out ca.key
  chmod 600 ca.key
  openssl req -new -key ca.key -subj "/CN=Short-lived Root" -out ca.csr
)

write_config() {  # file mode
  lab_config "$1"
  cat >>"$1" <<TOML
[inspection]
default_ca = "short"
on_ca_expired = "$2"
connect_ports = [$NGINX_TLS_PORT]
extra_trust = ["$work/pki/ca.pem"]
[ca.short]
cert = "$work/short/ca.pem"
key = "$work/short/ca.key"
TOML
}
write_config "$work/block.toml" block
block_proxy=$proxy block_admin=$admin
proxy=$(free_port) admin=$(free_port)
write_config "$work/tunnel.toml" tunnel
sed -i "s|state_dir = .*|state_dir = \"$work/state-tunnel\"|" "$work/tunnel.toml"
tunnel_proxy=$proxy proxy=$block_proxy
url="https://www.lab.test:$NGINX_TLS_PORT/hello.txt"

# Valid for 5 s (4 at least, as the end date has whole seconds): several times what the two
# starts and the request before the end take (under a second; more with sanitizers).
(
  cd "$work/short"
  openssl ca -batch -config ca.cnf -selfsign -keyfile ca.key -in ca.csr -notext -out ca.pem \
    -startdate "$(date -u -d '-1 hour' +%y%m%d%H%M%SZ)" \
    -enddate "$(date -u -d '+5 seconds' +%y%m%d%H%M%SZ)" 2>/dev/null
)
expires=$(date -d "$(openssl x509 -noout -enddate -in "$work/short/ca.pem" | cut -d= -f2)" +%s)
start_mintgate block "$work/block.toml" "$block_proxy"
start_mintgate tunnel "$work/tunnel.toml" "$tunnel_proxy"

grep -q 'warning: CA profile "short" expires' "$work/block.log" ||
  fail "no 30-day warning: $(cat "$work/block.log")"

# Before the end: decrypted with a leaf from the short-lived root.
out=$(curl --proxy "http://127.0.0.1:$proxy" -s --max-time 10 --cacert "$work/short/ca.pem" "$url") ||
  fail "decrypt before expiry (the CA ends in $((expires - $(date +%s))) s)"
[[ $out == expiry ]] || fail "before expiry: $out"

# The gateway counts the CA as expired from the second of its not-after on.
while (($(date +%s) < expires)); do sleep 0.1; done

# After: "block" refuses before the tunnel with a page naming the CA.
code=$(curl --proxy "http://127.0.0.1:$proxy" -s --max-time 10 --cacert "$work/short/ca.pem" \
  -o "$work/page.html" -w '%{http_connect}' "$url" || true)
[[ $code == 403 ]] || fail "after expiry, block mode: CONNECT answered $code"
page=$(exec 3<>"/dev/tcp/127.0.0.1/$proxy"
  printf 'CONNECT www.lab.test:%s HTTP/1.1\r\nHost: www.lab.test\r\n\r\n' "$NGINX_TLS_PORT" >&3
  timeout 5 cat <&3 || true)
grep -q 'short' <<<"$page" && grep -q 'expired' <<<"$page" ||
  fail "the 403 page does not name the CA: $page"
grep -q 'CA profile "short" expired at' "$work/block.log" ||
  fail "expiry not logged: $(cat "$work/block.log")"
metrics=$(admin_curl "http://127.0.0.1:$block_admin/metrics")
grep -q '^mintgate_ca_expired_refusals_total [1-9]' <<<"$metrics" ||
  fail "metrics: $(grep expir <<<"$metrics")"

# "tunnel": the client sees the origin's own certificate, issued by the lab CA.
out=$(curl --proxy "http://127.0.0.1:$tunnel_proxy" -s --max-time 10 --cacert "$work/pki/ca.pem" "$url") ||
  fail "after expiry, tunnel mode: not tunnelled"
[[ $out == expiry ]] || fail "tunnel mode: $out"

echo "PASS: CA expiry while running"
