#!/usr/bin/env bash
# The client portal (SPEC §6): reached through the proxy by its reserved host name and
# directly on the listen address, it lists the CAs clients must install (here the legacy root
# that signs now and the new root its successor signs with after the scheduled cutover), with
# fingerprints that match the PEM and DER downloads and the profiles' files, the right MIME
# types, and a /proxy.pac that a JavaScript engine runs with the standard PAC helpers.
set -euo pipefail
source "$(dirname "$0")/lib.sh"

proxy=$(free_port)
admin=$(free_port)
dns=$(free_port) # nothing answers there: the portal needs no DNS

"$MINTGATE" ca init --out "$work/ca/legacy" --name "TREND.IWS.2" >/dev/null
"$MINTGATE" ca init --out "$work/ca/new" --name "Web Security Cloud Root CA" >/dev/null
"$MINTGATE" ca init --out "$work/ca/unused" --name "Unused Root" >/dev/null
cutover_at=$(date -u -d "+30 days" +%Y-%m-%dT%H:%M:%SZ)

lab_config "$work/mintgate.toml"
cat >>"$work/mintgate.toml" <<TOML
[inspection]
default_ca = "legacy"
[ca.legacy]
cert = "$work/ca/legacy/ca.pem"
key = "$work/ca/legacy/ca.key"
retire_at = $cutover_at
successor = "new"
[ca.new]
cert = "$work/ca/new/ca.pem"
key = "$work/ca/new/ca.key"
[ca.unused]
cert = "$work/ca/unused/ca.pem"
key = "$work/ca/unused/ca.key"
[portal]
pac_bypass = ["localhost", "*.corp.example", ".intranet.example", "10.0.0.0/8", "127.0.0.0/8", "::1/128"]
TOML
"$MINTGATE" check -c "$work/mintgate.toml" >/dev/null || fail "the portal config does not check"
start_mintgate gateway "$work/mintgate.toml" "$proxy"

via_proxy=(curl -sS --max-time 10 --proxy "http://127.0.0.1:$proxy")
direct=(curl -sS --max-time 10 --noproxy '*')
portal="http://mintgate.portal"

# "sha256 Fingerprint=AB:CD:..." -> "AB:CD:..."
fingerprint() { # inform file
  local out
  out=$(openssl x509 -inform "$1" -in "$2" -noout -fingerprint -sha256) || return 1
  echo "${out#*=}"
}

# --- the page, through the proxy by name and directly on the listen address
type=$("${via_proxy[@]}" -o "$work/page.html" -w '%{http_code} %{content_type}' "$portal/")
[[ $type == "200 text/html; charset=utf-8" ]] || fail "portal page via the proxy: $type"
type=$("${direct[@]}" -o "$work/page-direct.html" -w '%{http_code} %{content_type}' \
  "http://127.0.0.1:$proxy/")
[[ $type == "200 text/html; charset=utf-8" ]] || fail "portal page on the listen address: $type"
cmp -s "$work/page.html" "$work/page-direct.html" || fail "the two pages differ"
grep -q "PRIVATE KEY" "$work/page.html" && fail "the page shows a private key"

# The fingerprint the page shows in each certificate's section.
page_fingerprint() { # name
  python3 - "$work/page.html" "$1" <<'PY'
import re, sys
page, name = open(sys.argv[1]).read(), sys.argv[2]
m = re.search(r'<section class="ca[^"]*" id="ca-%s">(.*?)</section>' % re.escape(name), page, re.S)
f = m and re.search(r'<code class="fp">([0-9A-F:]{95})</code>', m.group(1))
print(f.group(1) if f else "")
PY
}
listed=$(grep -o '<code class="fp">' "$work/page.html" | wc -l)
[[ $listed == 2 ]] || fail "expected 2 certificates on the page, found $listed"
grep -qF "$(fingerprint PEM "$work/ca/unused/ca.pem")" "$work/page.html" &&
  fail "the page lists a profile no rule signs with"

for name in legacy new; do
  want=$(fingerprint PEM "$work/ca/$name/ca.pem")
  on_page=$(page_fingerprint "$name")
  [[ $on_page == "$want" ]] || fail "$name: page shows '$on_page', the profile's file is $want"
  for ext in pem cer crt; do
    case $ext in
      pem) mime=application/x-pem-file inform=PEM ;;
      cer) mime=application/pkix-cert inform=DER ;;
      crt) mime=application/x-x509-ca-cert inform=DER ;;
    esac
    for how in via_proxy direct; do
      if [[ $how == via_proxy ]]; then
        url="$portal/ca/$name.$ext"
        got=$("${via_proxy[@]}" -D "$work/headers" -o "$work/$name.$ext" -w '%{http_code} %{content_type}' "$url")
      else
        url="http://127.0.0.1:$proxy/ca/$name.$ext"
        got=$("${direct[@]}" -D "$work/headers" -o "$work/$name.$ext" -w '%{http_code} %{content_type}' "$url")
      fi
      [[ $got == "200 $mime" ]] || fail "$url ($how): $got, expected 200 $mime"
      grep -qi "^content-disposition: attachment; filename=\"$name.$ext\"" "$work/headers" ||
        fail "$url: no attachment header: $(cat "$work/headers")"
      fp=$(fingerprint "$inform" "$work/$name.$ext") || fail "$url is not a $inform certificate"
      [[ $fp == "$want" ]] || fail "$url: fingerprint $fp, expected $want"
    done
  done
  grep -q "PRIVATE" "$work/$name.pem" && fail "$name.pem holds a private key"
done
# The PEM download is the profile's certificate, byte for byte in DER.
openssl x509 -in "$work/ca/new/ca.pem" -outform DER -out "$work/new.expected.der"
cmp -s "$work/new.expected.der" "$work/new.cer" || fail "new.cer differs from the profile's file"

# --- what is not there, and what is not allowed
code=$("${via_proxy[@]}" -o /dev/null -w '%{http_code}' "$portal/ca/unused.pem")
[[ $code == 404 ]] || fail "/ca/unused.pem: $code"
code=$("${via_proxy[@]}" -o "$work/404.html" -w '%{http_code}' "$portal/nothing%3Cscript%3E")
[[ $code == 404 ]] || fail "/nothing: $code"
grep -q "<script>" "$work/404.html" && fail "the 404 page echoes markup: $(cat "$work/404.html")"
code=$("${via_proxy[@]}" -X POST -d x=1 -D "$work/headers" -o /dev/null -w '%{http_code}' "$portal/")
[[ $code == 405 ]] || fail "POST /: $code"
grep -qi "^allow: GET, HEAD" "$work/headers" || fail "405 without Allow: $(cat "$work/headers")"
got=$("${via_proxy[@]}" -I -o "$work/head.txt" -w '%{http_code} %{size_download}' "$portal/ca/new.pem")
[[ $got == "200 0" ]] || fail "HEAD /ca/new.pem: $got"

# --- /proxy.pac, run by node with the PAC helper functions
type=$("${via_proxy[@]}" -o "$work/proxy.pac" -w '%{http_code} %{content_type}' "$portal/proxy.pac")
[[ $type == "200 application/x-ns-proxy-autoconfig" ]] || fail "/proxy.pac: $type"
"${direct[@]}" -o "$work/proxy-direct.pac" "http://127.0.0.1:$proxy/proxy.pac"
cmp -s "$work/proxy.pac" "$work/proxy-direct.pac" || fail "the two PAC files differ"
cat >"$work/pac-harness.js" <<'JS'
// Runs a PAC file with the helper functions browsers give it; argv: pac file, JSON cases.
const fs = require("fs");
const vm = require("vm");
const resolved = [];
const toNum = (a) => a.split(".").reduce((n, p) => ((n << 8) | Number(p)) >>> 0, 0);
const isIp = (h) => /^\d{1,3}(\.\d{1,3}){3}$/.test(h);
const sandbox = {
  isPlainHostName: (h) => h.indexOf(".") < 0,
  dnsDomainIs: (h, d) => h.length >= d.length && h.substring(h.length - d.length) === d,
  shExpMatch: (s, p) =>
    new RegExp("^" + p.replace(/[.+^${}()|[\]\\]/g, "\\$&").replace(/\*/g, ".*")
      .replace(/\?/g, ".") + "$").test(s),
  dnsResolve: (h) => {
    resolved.push(h);
    return { "files.lan.test": "10.20.30.40", "www.example.com": "192.0.2.80" }[h] || null;
  },
  isInNet: (h, net, mask) => {
    const ip = isIp(h) ? h : sandbox.dnsResolve(h);
    return ip !== null && ((toNum(ip) & toNum(mask)) >>> 0) === ((toNum(net) & toNum(mask)) >>> 0);
  },
  myIpAddress: () => "127.0.0.1",
};
vm.createContext(sandbox);
vm.runInContext(fs.readFileSync(process.argv[2], "utf8"), sandbox);
let bad = 0;
for (const [host, want] of JSON.parse(process.argv[3])) {
  const got = sandbox.FindProxyForURL("http://" + host + "/", host);
  if (got !== want) {
    console.log(`FindProxyForURL(${host}) = ${JSON.stringify(got)}, expected ${JSON.stringify(want)}`);
    bad++;
  }
}
for (const h of ["a.corp.example", "www.intranet.example", "mintgate.portal"]) {
  if (resolved.includes(h)) {
    console.log(`resolved ${h}, which needs no DNS`);
    bad++;
  }
}
process.exit(bad ? 1 : 0);
JS
via="PROXY 127.0.0.1:$proxy"
cases=$(
  cat <<JSON
[["www.example.com", "$via"],
 ["mintgate.portal", "$via"],
 ["corp.example", "$via"],
 ["a.corp.example", "DIRECT"],
 ["deep.a.CORP.example", "DIRECT"],
 ["intranet.example", "DIRECT"],
 ["www.intranet.example", "DIRECT"],
 ["intranet", "DIRECT"],
 ["localhost", "DIRECT"],
 ["10.1.2.3", "DIRECT"],
 ["files.lan.test", "DIRECT"],
 ["11.1.2.3", "$via"],
 ["127.0.0.1", "DIRECT"],
 ["::1", "DIRECT"],
 ["2001:db8::1", "$via"]]
JSON
)
node "$work/pac-harness.js" "$work/proxy.pac" "$cases" >"$work/pac.log" 2>&1 ||
  fail "PAC results: $(cat "$work/pac.log")"$'\n'"$(cat "$work/proxy.pac")"

# --- a non-portal request still goes through the proxy machinery (and is not the portal)
code=$("${via_proxy[@]}" -o "$work/other.html" -w '%{http_code}' "http://127.0.0.1:1/" || true)
[[ $code != 200 ]] || fail "a request for 127.0.0.1:1 got the portal"
# A request line without a version (HTTP/0.9 to llhttp) is not a request the portal answers.
exec 3<>"/dev/tcp/127.0.0.1/$proxy"
printf 'GET /\r\n\r\n' >&3
status=$(timeout 5 head -n 1 <&3 | tr -d '\r' | cut -d' ' -f2)
exec 3<&-
[[ $status == 400 ]] || fail "GET / without a version: $status"
kill -0 "$MINTGATE_PID" || fail "the gateway did not survive"

echo "PASS: client portal"
