#!/usr/bin/env bash
# Configuration reload in a running gateway: SIGHUP applies a new rule to new connections
# while connections opened before keep their configuration (a keep-alive connection, a long
# decrypted download); a broken file is rejected by POST /reload with its file:line and the
# running configuration keeps serving; the certificate cache survives a rules-only reload;
# reloads are counted in /metrics and logged.
set -euo pipefail
source "$(dirname "$0")/lib.sh"

start_tls_lab
echo "reload" >"$work/www/hello.txt"
head -c $((4 << 20)) /dev/urandom >"$work/www/big.bin"
"$MINTGATE" ca init --out "$work/ca" --name "Reload Test Root CA" >/dev/null
ca="$work/ca/ca.pem"
config="$work/mintgate.toml"

# The configuration: $1 = extra TOML appended (rules), $2 = workers; TRUST overrides
# inspection.extra_trust.
write_config() {
  local trust=${TRUST-"[\"$work/pki/ca.pem\"]"}
  lab_config "$config.new"
  sed -i "s/^workers = .*/workers = ${2:-2}/" "$config.new"
  cat >>"$config.new" <<TOML
[inspection]
default_ca = "lab"
connect_ports = [$NGINX_TLS_PORT]
extra_trust = $trust
[ca.lab]
cert = "$ca"
key = "$work/ca/ca.key"
[log]
access = "$work/access.log"
$1
TOML
  mv "$config.new" "$config"
}
block_rule='[[rule]]
name = "block-www"
action = "block"
hosts = ["www.lab.test"]'

write_config ""
start_mintgate gateway "$config" "$proxy"
wait_for_port "$admin"
P=(--proxy "http://127.0.0.1:$proxy" --silent --show-error --max-time 20)
tls_url="https://www.lab.test:$NGINX_TLS_PORT"
http_url="http://www.lab.test:$origin"

metric() {  # name{labels} -> value
  admin_curl "http://127.0.0.1:$admin/metrics" | awk -v m="$1" '$1 == m { print $2 }'
}
reload() {  # POST /reload; prints the body then the status on its own line
  admin_curl --max-time 20 -X POST -w '\n%{http_code}' "http://127.0.0.1:$admin/reload"
}
wait_for_log() {  # count pattern: until the log holds `count` lines matching
  for _ in $(seq 100); do
    [[ $(grep -cF -- "$2" "$work/gateway.log") -ge $1 ]] && return 0
    sleep 0.1
  done
  fail "the log never showed '$2' $1 time(s)"
}

# Before: www.lab.test is decrypted (the leaf verifies against our CA only).
[[ $(curl "${P[@]}" --cacert "$ca" "$tls_url/hello.txt") == reload ]] || fail "decrypt before"
[[ $(metric 'mintgate_config_reloads_total{result="ok"}') == 0 ]] || fail "reloads counted at start"
[[ -n $(metric mintgate_config_last_reload_timestamp_seconds) ]] || fail "no reload timestamp"
[[ $(metric mintgate_cert_mints_total) == 1 ]] || fail "mints before: $(metric mintgate_cert_mints_total)"

# Opened before the reload: a keep-alive plain HTTP connection (one request now, one after)
# and a slow decrypted download.
cat >"$work/keepalive.py" <<'PY'
import os, socket, sys, time
port, host, path, go = int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4]
s = socket.create_connection(("127.0.0.1", port), timeout=20)
f = s.makefile("rb")
def get():
    s.sendall(f"GET http://{host}{path} HTTP/1.1\r\nHost: {host}\r\n\r\n".encode())
    status = f.readline().split()[1].decode()
    length = 0
    while True:
        line = f.readline()
        if line in (b"\r\n", b""):
            break
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value)
    return status + " " + f.read(length).decode().strip()
print(get(), flush=True)
for _ in range(300):
    if os.path.exists(go):
        break
    time.sleep(0.1)
print(get(), flush=True)
PY
python3 "$work/keepalive.py" "$proxy" "www.lab.test:$origin" /hello.txt "$work/go" \
  >"$work/keepalive.out" 2>"$work/keepalive.log" &
keepalive_pid=$!
pids+=("$keepalive_pid")
for _ in $(seq 100); do
  [[ -s $work/keepalive.out ]] && break
  sleep 0.1
done
[[ $(cat "$work/keepalive.out") == "200 reload" ]] || fail "keep-alive, first request: $(cat "$work/keepalive.out")"
# The download lasts about 4 s (4 MiB at 1 MiB/s), begun once the keep-alive client (slower
# to start) is in place: several times what it takes to begin and to reload.
curl "${P[@]}" --max-time 60 --limit-rate 1M --cacert "$ca" -o "$work/big.out" \
  "$tls_url/big.bin" 2>"$work/download.log" &
download_pid=$!
pids+=("$download_pid")
for _ in $(seq 100); do
  [[ -s $work/big.out ]] && break
  sleep 0.1
done
[[ -s $work/big.out ]] || fail "the download did not start"

# SIGHUP with a rule that blocks www.lab.test.
write_config "$block_rule"
kill -HUP "$MINTGATE_PID"
wait_for_log 1 "mintgate: configuration reloaded from $config (2 rules, 1 CA profiles)"
grep -qF "certificate cache kept" "$work/gateway.log" || fail "rules-only reload dropped the cache"
(($(stat -c %s "$work/big.out") < 4 << 20)) || fail "the download was over before the reload"

# New connections get the block, through CONNECT and plain HTTP alike.
code=$(curl "${P[@]}" --cacert "$ca" -o /dev/null -w '%{http_connect}' "$tls_url/hello.txt" || true)
[[ $code == 403 ]] || fail "CONNECT after the reload: $code"
code=$(curl "${P[@]}" -o /dev/null -w '%{http_code}' "$http_url/hello.txt")
[[ $code == 403 ]] || fail "plain HTTP after the reload: $code"
# Other hosts still pass.
[[ $(curl "${P[@]}" "http://other.test:$origin/hello.txt") == reload ]] || fail "other.test after the reload"

# Connections opened before keep the configuration they started with.
touch "$work/go"
wait "$keepalive_pid" || fail "keep-alive client: $(cat "$work/keepalive.log")"
[[ $(sed -n 2p "$work/keepalive.out") == "200 reload" ]] ||
  fail "keep-alive, second request: $(sed -n 2p "$work/keepalive.out")"
wait "$download_pid" || fail "the download begun before the reload failed: $(cat "$work/download.log")"
cmp -s "$work/www/big.bin" "$work/big.out" || fail "the download begun before the reload differs"

# A broken file: 422 naming file:line, logged, and the running configuration keeps serving.
write_config "$block_rule
[[rule]
name = \"broken\""
bad_line=$(grep -n '^\[\[rule\]$' "$config" | cut -d: -f1)
[[ -n $bad_line ]] || fail "the broken line is not in the file"
out=$(reload)
[[ ${out##*$'\n'} == 422 ]] || fail "POST /reload with a broken file: ${out##*$'\n'}"
[[ $out == *'"ok": false'* && $out == *"$config:$bad_line"* ]] || fail "422 body: $out"
wait_for_log 1 "mintgate: reload rejected: $config:$bad_line"
code=$(curl "${P[@]}" -o /dev/null -w '%{http_code}' "$http_url/hello.txt")
[[ $code == 403 ]] || fail "after the rejected reload the block rule is gone: $code"
[[ $(curl "${P[@]}" "http://other.test:$origin/hello.txt") == reload ]] || fail "not serving after a rejected reload"
[[ $(metric mintgate_config_last_reload_successful) == 0 ]] || fail "last reload not marked failed"

code=$(admin_curl -o /dev/null -w '%{http_code}' "http://127.0.0.1:$admin/reload")
[[ $code == 405 ]] || fail "GET /reload: $code"

# Fixed (no block rule any more, and a setting that needs a restart): 200.
before_reload=$(date +%s)
write_config "" 1
out=$(reload)
[[ ${out##*$'\n'} == 200 ]] || fail "POST /reload with a fixed file: $out"
[[ $out == *'"ok": true'* && $out == *'"restart_needed": ['*'"server.workers"'* ]] ||
  fail "200 body: $out"
wait_for_log 1 "mintgate: reload: server.workers changed; restart to apply"
wait_for_log 1 "mintgate: configuration reloaded from $config (1 rules, 1 CA profiles)"
[[ $(curl "${P[@]}" --cacert "$ca" "$tls_url/hello.txt") == reload ]] || fail "decrypt after the fix"
# The leaf minted before the reloads is served from the cache that survived them.
[[ $(metric mintgate_cert_mints_total) == 1 ]] || fail "leaf minted again: $(metric mintgate_cert_mints_total)"

[[ $(metric 'mintgate_config_reloads_total{result="ok"}') == 2 ]] ||
  fail "ok reloads: $(metric 'mintgate_config_reloads_total{result="ok"}')"
[[ $(metric 'mintgate_config_reloads_total{result="rejected"}') == 1 ]] ||
  fail "rejected reloads: $(metric 'mintgate_config_reloads_total{result="rejected"}')"
[[ $(metric mintgate_config_last_reload_timestamp_seconds) -ge $before_reload ]] ||
  fail "last reload timestamp: $(metric mintgate_config_last_reload_timestamp_seconds)"
[[ $(metric mintgate_config_last_reload_successful) == 1 ]] || fail "last reload not marked ok"

# Upstream trust is reloaded too: without the lab CA, an origin behind it is refused. (A host
# with no pooled upstream connection, whose verification predates the reload.)
fresh_url="https://fresh.lab.test:$NGINX_TLS_PORT"
TRUST="[]" write_config "" 1
out=$(reload)
[[ ${out##*$'\n'} == 200 ]] || fail "reload without extra_trust: $out"
code=$(curl "${P[@]}" --cacert "$ca" -o /dev/null -w '%{http_code}' "$fresh_url/hello.txt")
[[ $code == 502 ]] || fail "an origin no longer trusted: $code"
write_config "" 1
out=$(reload)
[[ ${out##*$'\n'} == 200 ]] || fail "reload with extra_trust again: $out"
[[ $(curl "${P[@]}" --cacert "$ca" "$fresh_url/hello.txt") == reload ]] || fail "trusted again"

# A new CA file under the same name: a new certificate cache, leaves from the new CA.
rm -rf "$work/ca"
"$MINTGATE" ca init --out "$work/ca" --name "Reload Test Root CA 2" >/dev/null
out=$(reload)
[[ ${out##*$'\n'} == 200 && $out == *'"certificate_cache": "new"'* ]] || fail "new CA reload: $out"
[[ $(curl "${P[@]}" --cacert "$ca" "$tls_url/hello.txt") == reload ]] || fail "decrypt with the new CA"

kill -0 "$MINTGATE_PID" || fail "the gateway did not survive the reloads"
kill -TERM "$MINTGATE_PID"
wait "$MINTGATE_PID" || fail "exit status after SIGTERM: $?"
grep -qF "mintgate: stopped" "$work/gateway.log" || fail "no clean stop"

echo "PASS: configuration reload"
