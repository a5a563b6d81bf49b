#!/usr/bin/env bash
# Instructions per decrypted keep-alive request (the lab's scenario C, one worker, under
# callgrind): the gateway runs under valgrind with instrumentation off; a warm-up connection mints
# the leaf and fills the pools; then two measured runs of the same connections with R and 2R
# requests each. (I(2R) - I(R)) / (connections × R) is what one more keep-alive request costs,
# the handshakes, the leaf and start-up cancelled out. Exact and repeatable, unlike timings.
#
#   bench/callgrind/keepalive.sh [MINTGATE_BINARY] [LOADGEN_BINARY]
#
# Defaults: build/release/mintgate and build/release/bench/mintgate_loadgen. Needs valgrind,
# nginx, dnsmasq (scripts/deps.sh --test installs the last two). Prints one line per run and
# the result; KEEPALIVE_REQUESTS sets R (default 200), KEEPALIVE_CONNECTIONS the connections
# (default 4), KEEPALIVE_PROFILE a file to keep the last run's profile in (for callgrind_annotate).
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
export MINTGATE=${1:-$root/build/release/mintgate}
loadgen=$(realpath "${2:-$root/build/release/bench/mintgate_loadgen}")
requests=${KEEPALIVE_REQUESTS:-200}
conns=${KEEPALIVE_CONNECTIONS:-4}
command -v valgrind >/dev/null || {
  echo "needs valgrind" >&2
  exit 2
}
source "$root/tests/e2e/lib.sh"

start_tls_lab
printf '%100s' '' | tr ' ' x >"$work/www/c.txt"  # a ~100-byte body, as in scenario C
lab_config "$work/mintgate.toml"
sed -i 's/^workers = 2$/workers = 1/' "$work/mintgate.toml"
cat >>"$work/mintgate.toml" <<TOML
[inspection]
connect_ports = [$NGINX_TLS_PORT]
extra_trust = ["$work/pki/ca.pem"]
[log]
access = "$work/access.log"
TOML
valgrind --tool=callgrind --instr-atstart=no --callgrind-out-file="$work/cg.%p" \
  "$MINTGATE" run -c "$work/mintgate.toml" >"$work/gateway.log" 2>&1 &
pid=$!
pids+=("$pid")
wait_for_port "$proxy" 60
wait_for_port "$admin" 60
ca="$work/state/ca/ca.pem"

drive() {  # connections requests
  "$loadgen" --proxy "127.0.0.1:$proxy" --host www.lab.test --port "$NGINX_TLS_PORT" \
    --cafile "$ca" --path /c.txt --requests-per-conn "$2" --concurrency "$1" \
    --max-connections "$1" --duration 600 --timeout 120 --json >"$work/lg.json"
  python3 -c 'import json,sys; r=json.load(open(sys.argv[1])); sys.exit(0 if r["connections_failed"] == 0 and not any(r["errors"].values()) else 1)' \
    "$work/lg.json" || fail "load generator failures: $(cat "$work/lg.json")"
}
measure() {  # connections requests -> instructions
  callgrind_control --zero "$pid" >/dev/null 2>&1
  callgrind_control --instr=on "$pid" >/dev/null 2>&1
  drive "$1" "$2"
  callgrind_control --instr=off "$pid" >/dev/null 2>&1
  rm -f "$work"/cg.*
  callgrind_control --dump "$pid" >/dev/null 2>&1
  local out
  for _ in $(seq 50); do
    out=$(ls "$work"/cg.* 2>/dev/null | head -n 1 || true)
    [[ -n $out ]] && grep -q '^totals:' "$out" 2>/dev/null && break
    sleep 0.2
  done
  if [[ -n ${KEEPALIVE_PROFILE:-} ]]; then cp "$out" "$KEEPALIVE_PROFILE"; fi
  sed -n 's/^totals: *\([0-9]*\).*/\1/p' "$out"
}

drive 1 2  # the leaf, the pools, the first-time paths
one=$(measure "$conns" "$requests")
two=$(measure "$conns" $((2 * requests)))
echo "instructions: $one for $conns x $requests requests, $two for $conns x $((2 * requests))"
echo "per keep-alive request: $(((two - one) / (conns * requests)))"
