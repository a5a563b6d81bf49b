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

# --- the install packages: each names both needed CAs (legacy now, new after the cutover)
# and nothing else, with the right type and download name.
for package in "mintgate-ca.mobileconfig application/x-apple-aspen-config" \
  "mintgate-ca-install.ps1 text/plain; charset=utf-8" \
  "mintgate-ca-install.sh application/x-sh" "policies.json application/json"; do
  file=${package%% *}
  mime=${package#* }
  grep -q "href=\"/install/$file\"" "$work/page.html" || fail "the page does not link $file"
  got=$("${via_proxy[@]}" -D "$work/headers" -o "$work/$file" -w '%{http_code} %{content_type}' \
    "$portal/install/$file")
  [[ $got == "200 $mime" ]] || fail "/install/$file: $got, expected 200 $mime"
  grep -qi "^content-disposition: attachment; filename=\"$file\"" "$work/headers" ||
    fail "/install/$file: no attachment header: $(cat "$work/headers")"
  grep -q "PRIVATE" "$work/$file" && fail "$file holds a private key"
done
openssl x509 -in "$work/ca/legacy/ca.pem" -outform DER -out "$work/legacy.expected.der"
# The Apple profile: a Configuration with one com.apple.security.root payload per CA, whose
# data is the CA's DER; identifiers and UUIDs unique and stable across downloads.
/usr/bin/python3 - "$work" <<'PY' || fail "mobileconfig: $(cat "$work/mintgate-ca.mobileconfig")"
import plistlib, re, sys, uuid
work = sys.argv[1]
profile = plistlib.load(open(f"{work}/mintgate-ca.mobileconfig", "rb"))
assert profile["PayloadType"] == "Configuration" and profile["PayloadVersion"] == 1, profile
assert profile["PayloadIdentifier"] == "mintgate.mintgate.portal", profile["PayloadIdentifier"]
payloads = profile["PayloadContent"]
assert [p["PayloadType"] for p in payloads] == ["com.apple.security.root"] * 2, payloads
wanted = {open(f"{work}/{n}.expected.der", "rb").read() for n in ("legacy", "new")}
assert {p["PayloadContent"] for p in payloads} == wanted, "payloads are not the two CAs"
ids = [profile["PayloadUUID"]] + [p["PayloadUUID"] for p in payloads]
assert len(set(ids)) == 3 and all(str(uuid.UUID(i)).upper() == i for i in ids), ids
assert len({p["PayloadIdentifier"] for p in payloads}) == 2, payloads
assert all(p["PayloadIdentifier"].startswith("mintgate.mintgate.portal.ca.") for p in payloads)
PY
"${via_proxy[@]}" -o "$work/again.mobileconfig" "$portal/install/mintgate-ca.mobileconfig"
cmp -s "$work/again.mobileconfig" "$work/mintgate-ca.mobileconfig" ||
  fail "the profile's identifiers change between downloads"
# The PowerShell script, by text: each CA's DER and its SHA-256 as the page shows it, and the
# check that refuses to import on a mismatch before anything is imported.
/usr/bin/python3 - "$work" "$(fingerprint PEM "$work/ca/legacy/ca.pem")" \
  "$(fingerprint PEM "$work/ca/new/ca.pem")" <<'PY' || fail "ps1: $(cat "$work/mintgate-ca-install.ps1")"
import base64, hashlib, re, sys
work, fps = sys.argv[1], [f.replace(":", "") for f in sys.argv[2:]]
script = open(f"{work}/mintgate-ca-install.ps1").read()
entries = re.findall(r"Sha256 = '([0-9A-F]{64})';\s*Der = '([A-Za-z0-9+/=]+)'", script)
assert sorted(sha for sha, _ in entries) == sorted(fps), entries
for sha, der in entries:
    assert hashlib.sha256(base64.b64decode(der)).hexdigest().upper() == sha, sha
wanted = {open(f"{work}/{n}.expected.der", "rb").read() for n in ("legacy", "new")}
assert {base64.b64decode(der) for _, der in entries} == wanted
check = script.index("if ($actual -ne $ca.Sha256)")
assert script.index("throw", check) < script.index("$store.Open('ReadWrite')"), "imports first"
assert "X509Store('Root', 'LocalMachine')" in script
PY
# The Linux script in a scratch root: the CAs where update-ca-certificates reads them, and
# Firefox's policy naming them; a root with RHEL's anchors folder gets them there instead.
mkdir -p "$work/root-debian" "$work/root-rhel/etc/pki/ca-trust/source/anchors"
sh "$work/mintgate-ca-install.sh" --root "$work/root-debian" >"$work/install.log" 2>&1 ||
  fail "install script: $(cat "$work/install.log")"
for name in legacy new; do
  installed="$work/root-debian/usr/local/share/ca-certificates/mintgate-$name.crt"
  [[ $(fingerprint PEM "$installed") == $(fingerprint PEM "$work/ca/$name/ca.pem") ]] ||
    fail "install script: $installed is not the $name CA"
  [[ $(stat -c %a "$installed") == 644 ]] || fail "$installed is not mode 644"
done
/usr/bin/python3 - "$work" <<'PY' || fail "policies: $(cat "$work/policies.json")"
import json, sys
work = sys.argv[1]
wanted = [f"/usr/local/share/ca-certificates/mintgate-{n}.crt" for n in ("legacy", "new")]
written = json.load(open(f"{work}/root-debian/etc/firefox/policies/policies.json"))
assert sorted(written["policies"]["Certificates"]["Install"]) == wanted, written
served = json.load(open(f"{work}/policies.json"))
assert sorted(served["policies"]["Certificates"]["Install"]) == wanted, served
assert served["policies"]["Certificates"]["ImportEnterpriseRoots"] is True, served
PY
sh "$work/mintgate-ca-install.sh" --root "$work/root-rhel" >"$work/install.log" 2>&1 ||
  fail "install script (RHEL): $(cat "$work/install.log")"
[[ -f $work/root-rhel/etc/pki/ca-trust/source/anchors/mintgate-new.crt ]] ||
  fail "install script (RHEL): $(cat "$work/install.log")"
# A tampered certificate is refused before anything is installed.
/usr/bin/python3 - "$work/mintgate-ca-install.sh" "$work/tampered.sh" <<'PY'
import sys
lines = open(sys.argv[1]).read().split("\n")
at = lines.index("-----BEGIN CERTIFICATE-----") + 2  # a line inside the first certificate
lines[at] = lines[at][:9] + ("B" if lines[at][9] == "A" else "A") + lines[at][10:]
open(sys.argv[2], "w").write("\n".join(lines))
PY
mkdir -p "$work/root-tampered"
if sh "$work/tampered.sh" --root "$work/root-tampered" >"$work/install.log" 2>&1; then
  fail "a tampered certificate was installed"
fi
grep -q "nothing was installed" "$work/install.log" || fail "tampered: $(cat "$work/install.log")"
[[ -z $(find "$work/root-tampered" -type f) ]] || fail "the tampered script installed files"

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
