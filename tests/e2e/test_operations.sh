#!/usr/bin/env bash
# What an operations team relies on: /metrics counts what happened (requests by action and
# status, handshakes, verdicts, alerts, origin failures, DNS failures, bytes, latencies, PROXY
# header refusals); SIGUSR1 reopens the access log after a rotation; SIGTERM turns /readyz to
# 503 while the admin listener stays up for the drain, and the gateway exits once drained.
set -euo pipefail
source "$(dirname "$0")/lib.sh"

NGINX_BAD_TLS_PORT=$(free_port)
start_tls_lab
echo "inside" >"$work/www/hello.txt"
lab_config "$work/mintgate.toml"
cat >>"$work/mintgate.toml" <<TOML
[inspection]
connect_ports = [$NGINX_TLS_PORT, $NGINX_BAD_TLS_PORT]
extra_trust = ["$work/pki/ca.pem"]
[log]
access = "$work/access.log"
TOML
start_mintgate gateway "$work/mintgate.toml" "$proxy"
ca="$work/state/ca/ca.pem"
P=(--proxy "http://127.0.0.1:$proxy" --silent --max-time 15)
metric() {  # exact series -> its value (0 when absent)
  admin_curl "http://127.0.0.1:$admin/metrics" | awk -v s="$1" '$1 == s { print $2; f=1 } END { if (!f) print 0 }'
}

[[ $(curl -s --max-time 5 "http://127.0.0.1:$admin/readyz") == ready ]] || fail "/readyz not ready"

# Traffic of every kind.
for _ in 1 2 3; do
  [[ $(curl "${P[@]}" --cacert "$ca" "https://www.lab.test:$NGINX_TLS_PORT/hello.txt") == inside ]] ||
    fail "decrypted GET failed"
done
[[ $(curl "${P[@]}" "http://www.lab.test:$origin/hello.txt") == inside ]] || fail "plain GET failed"
# A client that does not trust the gateway's CA: a handshake failure with an alert.
curl "${P[@]}" --cacert "$work/pki/ca.pem" "https://www.lab.test:$NGINX_TLS_PORT/" && fail "untrusted leaf accepted"
# An origin whose certificate does not verify, and a name that does not exist.
curl "${P[@]}" --cacert "$ca" "https://www.lab.test:$NGINX_BAD_TLS_PORT/" >/dev/null || true
curl "${P[@]}" "http://nothing.invalid.test/" >/dev/null || true

[[ $(metric 'mintgate_requests_total{action="decrypt",code="2xx"}') -ge 3 ]] ||
  fail "decrypted requests not counted: $(admin_curl "http://127.0.0.1:$admin/metrics" | grep requests_total)"
[[ $(metric 'mintgate_requests_total{action="http",code="2xx"}') -ge 1 ]] || fail "plain request not counted"
[[ $(metric 'mintgate_requests_total{action="http",code="5xx"}') -ge 1 ]] || fail "DNS 502 not counted"
[[ $(metric 'mintgate_dns_failures_total{reason="nxdomain"}') -ge 1 ]] || fail "DNS failure not counted"
[[ $(metric 'mintgate_client_handshakes_total{result="ok"}') -ge 3 ]] || fail "client handshakes not counted"
[[ $(metric 'mintgate_client_handshakes_total{result="failed"}') -ge 1 ]] || fail "failed handshake not counted"
[[ $(metric 'mintgate_client_alerts_total{alert="unknown_ca"}') -ge 1 ]] || fail "unknown_ca alert not counted"
[[ $(metric 'mintgate_client_verdicts_total{verdict="trusts"}') -ge 1 ]] || fail "trusting verdict not counted"
[[ $(metric 'mintgate_origin_verify_failures_total{reason="self_signed"}') -ge 1 ]] ||
  fail "origin verification failure not counted: $(admin_curl "http://127.0.0.1:$admin/metrics" | grep verify_failures)"
[[ $(metric 'mintgate_leaf_mint_seconds_count') -ge 1 ]] || fail "no leaf mint timed"
[[ $(metric 'mintgate_origin_handshake_seconds_count') -ge 1 ]] || fail "no origin handshake timed"
[[ $(metric 'mintgate_time_to_first_byte_seconds_count') -ge 4 ]] || fail "time to first byte not timed"
[[ $(metric 'mintgate_received_bytes_total{peer="origin"}') -gt 0 ]] || fail "origin bytes not counted"
[[ $(metric 'mintgate_sent_bytes_total{peer="client"}') -gt 0 ]] || fail "client bytes not counted"
[[ $(metric 'mintgate_connections_accepted_total') -ge 7 ]] || fail "accepted connections not counted"

# SIGUSR1: logrotate renamed the file; later lines go to a new one at the configured path.
mv "$work/access.log" "$work/access.log.1"
kill -USR1 "$MINTGATE_PID"
wait_for_line "$work/gateway.log" "SIGUSR1: access log reopened"
curl "${P[@]}" "http://www.lab.test:$origin/hello.txt" >/dev/null || fail "GET after SIGUSR1"
for _ in $(seq 50); do [[ -s $work/access.log ]] && break; sleep 0.1; done
grep -q '"url":"http://www.lab.test:'"$origin"'/hello.txt"' "$work/access.log" ||
  fail "no line in the reopened access log"
[[ $(stat -c %a "$work/access.log") == 640 ]] || fail "reopened log mode $(stat -c %a "$work/access.log")"

# SIGTERM with a request half sent: the drain waits for it, /readyz says 503 meanwhile.
exec 3<>"/dev/tcp/127.0.0.1/$proxy"
printf 'GET http://www.lab.test:%s/hello.txt HTTP/1.1\r\nHost: www.lab.test\r\n' "$origin" >&3
sleep 0.3
kill -TERM "$MINTGATE_PID"
wait_for_line "$work/gateway.log" "SIGTERM: no longer accepting"
code=$(curl -s -o /dev/null -w '%{http_code}' --max-time 5 "http://127.0.0.1:$admin/readyz")
[[ $code == 503 ]] || fail "/readyz during the drain: $code"
[[ $(metric mintgate_draining) == 1 ]] || fail "mintgate_draining not 1"
# The request completes; then the gateway exits.
printf 'Connection: close\r\n\r\n' >&3
reply=$(timeout 10 cat <&3) || true
exec 3<&-
[[ $reply == "HTTP/1.1 200"* ]] || fail "the request in flight during the drain: ${reply:0:80}"
for _ in $(seq 100); do kill -0 "$MINTGATE_PID" 2>/dev/null || break; sleep 0.1; done
kill -0 "$MINTGATE_PID" 2>/dev/null && fail "the gateway did not exit after its drain"
wait_for_line "$work/gateway.log" "mintgate: stopped"
echo "PASS: operations"
