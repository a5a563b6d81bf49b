#!/usr/bin/env bash
# Readiness with nine real TLS stacks: each client is driven through the gateway once trusting
# only the gateway's CA (it must read "trusts", on the evidence of its request) and once
# trusting only another CA (it must read "rejects", with how it was seen). Several of them
# check the certificate only after the handshake and then close (wget/GnuTLS), or close in the
# middle of it without an alert (Java, Node): a finished handshake alone is not trust, and a
# close is a rejection. /readiness is read after each run, and every refused connection has
# its access-log record with the verdict and its evidence.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
stacks="$(cd "$(dirname "$0")" && pwd)/stacks"

start_tls_lab
echo "ready" >"$work/www/hello.txt"
lab_config "$work/mintgate.toml"
cat >>"$work/mintgate.toml" <<TOML
[inspection]
connect_ports = [$NGINX_TLS_PORT]
extra_trust = ["$work/pki/ca.pem"]
[log]
access = "$work/access.log"
format = "json"
TOML
start_mintgate gateway "$work/mintgate.toml" "$proxy"
gateway_ca="$work/state/ca/ca.pem"
other_ca="$work/pki/ca.pem" # the origin's CA: a client trusting only it rejects every leaf
url="https://www.lab.test:$NGINX_TLS_PORT/hello.txt"

# Every client runs with nothing from this environment that adds trust or a proxy
# (SSL_CERT_FILE, NODE_EXTRA_CA_CERTS, https_proxy, ...), and trusts only the CA file given.
clean() { env -i PATH=/usr/local/bin:/usr/bin:/bin HOME="$work/home" LANG=C.UTF-8 "$@"; }
mkdir -p "$work/home"

# The Go client is built once (Java runs its single file as it is).
(cd "$stacks" && clean GOCACHE="$work/gocache" GO111MODULE=off go build -o "$work/tls_client_go" \
  tls_client.go) || fail "cannot build the Go client"

# An NSS database trusting only $2, in $1 (Chromium's ~/.pki/nssdb, a Firefox profile).
nss_db() { # dir cafile
  rm -rf "$1" && mkdir -p "$1"
  certutil -N -d "sql:$1" --empty-password &&
    certutil -A -d "sql:$1" -n "trusted CA" -t "C,," -i "$2"
}

# The readiness entry of 127.0.0.1 for the gateway's profile, as JSON ("null" before any).
entry() {
  admin_curl "http://127.0.0.1:$admin/readiness" | /usr/bin/python3 -c '
import json, sys
doc = json.load(sys.stdin)
rows = [c for p in doc["profiles"] for c in p["clients"]
        if c["client"] == "127.0.0.1" and c["status"] != "unknown"]
print(json.dumps(rows[0] if rows else None))'
}
# The verdicts so far (trusted, rejected, unused): changes with every verdict.
verdicts() {
  entry | /usr/bin/python3 -c '
import json, sys
e = json.load(sys.stdin) or {}
print(e.get("trusted", 0), e.get("rejected", 0), e.get("unused", 0))'
}
# Requests for the page that reached the origin and were answered.
answered() {
  grep -c '"method":"GET".*"status":200.*"url":"https://www.lab.test:[0-9]*/hello.txt"' \
    "$work/access.log" || true
}

firefox_prefs() { # profile
  cat >"$1/user.js" <<JS
user_pref("network.proxy.type", 1);
user_pref("network.proxy.http", "127.0.0.1");
user_pref("network.proxy.http_port", $proxy);
user_pref("network.proxy.ssl", "127.0.0.1");
user_pref("network.proxy.ssl_port", $proxy);
user_pref("network.proxy.no_proxies_on", "");
user_pref("network.proxy.allow_hijacking_localhost", true);
user_pref("network.dns.disablePrefetch", true);
user_pref("network.predictor.enabled", false);
user_pref("network.http.speculative-parallel-limit", 0);
user_pref("network.captive-portal-service.enabled", false);
user_pref("network.connectivity-service.enabled", false);
user_pref("browser.safebrowsing.malware.enabled", false);
user_pref("browser.safebrowsing.phishing.enabled", false);
user_pref("browser.safebrowsing.downloads.enabled", false);
user_pref("browser.shell.checkDefaultBrowser", false);
user_pref("browser.startup.homepage_override.mstone", "ignore");
user_pref("datareporting.policy.dataSubmissionEnabled", false);
user_pref("toolkit.telemetry.enabled", false);
user_pref("app.update.enabled", false);
user_pref("extensions.update.enabled", false);
user_pref("services.settings.server", "http://127.0.0.1:1/");
user_pref("security.OCSP.enabled", 0);
user_pref("security.remote_settings.crlite_filters.enabled", false);
user_pref("security.enterprise_roots.enabled", false);
JS
}

# run_client STACK CAFILE: one GET of $url through the gateway; prints the body, if any.
run_client() {
  local stack=$1 ca=$2
  case $stack in
    curl) clean curl -s --max-time 10 --proxy "http://127.0.0.1:$proxy" --cacert "$ca" \
      --capath /nonexistent "$url" ;;
    wget) clean wget -q -T 10 -t 1 -O - -e use_proxy=on -e "https_proxy=http://127.0.0.1:$proxy" \
      --ca-certificate="$ca" --ca-directory=/nonexistent "$url" ;;
    gnutls-cli) clean /usr/bin/python3 "$stacks/gnutls_client.py" "$proxy" "$url" "$ca" ;;
    python) clean /usr/bin/python3 "$stacks/tls_client.py" "$proxy" "$url" "$ca" ;;
    go) clean "$work/tls_client_go" "$proxy" "$url" "$ca" ;;
    java) clean java "$stacks/TlsClient.java" "$proxy" "$url" "$ca" ;;
    node) clean node "$stacks/tls_client.js" "$proxy" "$url" "$ca" ;;
    chromium)
      nss_db "$work/home/.pki/nssdb" "$ca" >/dev/null || fail "certutil for Chromium"
      rm -rf "$work/chromium"
      clean timeout 60 chromium --headless --no-sandbox --disable-gpu --no-first-run \
        --disable-background-networking --disable-component-update --disable-sync \
        --disable-default-apps --disable-features=DnsOverHttps,OptimizationHints \
        --user-data-dir="$work/chromium" --proxy-server="http://127.0.0.1:$proxy" \
        --dump-dom "$url" 2>"$work/chromium.out.log" | tr -d '\n' |
        sed -n 's/.*<pre[^>]*>\([^<]*\)<\/pre>.*/\1/p'
      ;;
    firefox)
      # Firefox headless has no "print the page and exit" that survives its own certificate
      # error page: it loads the URL until the gateway has a verdict, then it is stopped.
      local profile="$work/firefox" seen i pid
      nss_db "$profile" "$ca" >/dev/null || fail "certutil for Firefox"
      firefox_prefs "$profile"
      seen=$(verdicts)
      # Started directly (not through clean(), a function: its subshell would be $!), in a
      # session of its own so that all its processes are stopped together.
      env -i PATH=/usr/local/bin:/usr/bin:/bin HOME="$work/home" LANG=C.UTF-8 \
        setsid firefox-esr --headless --no-remote --profile "$profile" "$url" \
        >"$work/firefox.out.log" 2>&1 &
      pid=$!
      pids+=("$pid")
      for ((i = 0; i < 300; i++)); do
        [[ $(verdicts) == "$seen" ]] || break
        sleep 0.1
      done
      sleep 0.5 # the request on an accepted connection reaches the log
      kill -- "-$pid" 2>/dev/null || true
      wait "$pid" 2>/dev/null || true
      ;;
  esac
}

# How each stack refuses a leaf it does not trust: an alert in the handshake (OpenSSL, GnuTLS,
# Go, BoringSSL, NSS), a close after a finished handshake (wget checks afterwards), or a close
# in the middle of it without an alert (JSSE, Node). Any close may come as a reset.
declare -A refusal=(
  [curl]=alert [wget]=after [gnutls-cli]=alert [python]=alert [go]=alert
  [java]=during [node]=during [chromium]=alert [firefox]=alert
)

# Every stack refuses first, then every stack accepts: all from 127.0.0.1, and a close after
# the handshake within a minute of an accepted request from the same address is counted as a
# browser's spare connection ("unused"), not a rejection.
for mode in rejects trusts; do
  for stack in ${STACKS:-curl wget gnutls-cli python go java node chromium firefox}; do
    ca=$gateway_ca
    [[ $mode == rejects ]] && ca=$other_ca
    before=$(entry)
    seen=$(verdicts)
    answered_before=$(answered)
    body=$(run_client "$stack" "$ca" 2>"$work/client.out.log") || true
    for ((i = 0; i < 50; i++)); do
      [[ $(verdicts) == "$seen" ]] || break
      sleep 0.1
    done
    after=$(entry)
    answered_now=$(answered)
    /usr/bin/python3 - "$mode" "${refusal[$stack]}" "$before" "$after" <<'PY' ||
import json, sys
mode, refusal = sys.argv[1], sys.argv[2]
before = json.loads(sys.argv[3]) or {"trusted": 0, "rejected": 0}
after = json.loads(sys.argv[4])
assert after is not None, "nothing recorded"
trusted = after["trusted"] - before["trusted"]
rejected = after["rejected"] - before["rejected"]
assert after["status"] == mode, f"status {after['status']}"
certificate_alerts = {"bad_certificate", "unsupported_certificate", "certificate_revoked",
                      "certificate_expired", "certificate_unknown", "unknown_ca"}
if mode == "trusts":
    assert trusted >= 1 and rejected == 0, f"+{trusted} trusted, +{rejected} rejected"
    seen = after["last_trusted"]
    assert seen["evidence"] == "application_data", seen
else:
    assert rejected >= 1 and trusted == 0, f"+{trusted} trusted, +{rejected} rejected"
    seen = after["last_rejected"]
    expected = {"alert": {"alert"},
                "after": {"closed_after_handshake", "reset_after_handshake"},
                "during": {"closed_during_handshake", "reset_during_handshake"}}[refusal]
    assert seen["evidence"] in expected, f"evidence {seen['evidence']}, wanted {expected}"
    assert (seen["alert"] in certificate_alerts) == (refusal == "alert"), seen
assert after["evidence"] == seen["evidence"], after
assert seen["sni"] == "www.lab.test", seen
PY
      fail "$stack ($mode): $(tail -n 3 "$work/client.out.log") -> $after"
    if [[ $mode == trusts ]]; then
      ((answered_now > answered_before)) || fail "$stack ($mode): its request was not answered"
      # Firefox shows the page in a window nobody reads; the others print it.
      [[ $stack == firefox || $body == ready ]] || fail "$stack ($mode): body [$body]"
      how="application_data"
    else
      ((answered_now == answered_before)) || fail "$stack ($mode): a request went through"
      # The refused connection has its access-log record, with the verdict and its evidence.
      how=$(/usr/bin/python3 -c 'import json, sys
e = json.loads(sys.argv[1])["last_rejected"]
print(e["evidence"] + (":" + e["alert"] if e["alert"] else ""))' "$after")
      wait_for_line "$work/access.log" \
        "\"evidence\":\"$how\".*\"readiness\":\"rejects\".*\"sni\":\"www.lab.test\"" ||
        fail "$stack ($mode): no access-log record with $how"
    fi
    echo "ok: $stack $mode ($how)"
  done
done

# The command-line view shows the evidence.
"$MINTGATE" ca readiness -c "$work/mintgate.toml" >"$work/ready.txt" || fail "ca readiness"
grep -q "EVIDENCE" "$work/ready.txt" && grep -q "127.0.0.1" "$work/ready.txt" ||
  fail "ca readiness: $(cat "$work/ready.txt")"

echo "PASS: readiness with nine real TLS stacks"
