# Shared helpers for the end-to-end tests: free ports, real peers (nginx, dnsmasq) and the
# mintgate binary, all on loopback, all stopped by the EXIT trap. Source it after `set -euo
# pipefail`; it needs MINTGATE (the binary) and creates $work.
#
# A suite that makes the gateway try destinations it must refuse (metadata addresses, private
# ranges, odd spellings of addresses) starts with
#   [[ -n ${MINTGATE_NETNS:-} ]] || exec env MINTGATE_NETNS=1 unshare -n -- bash "$0" "$@"
#   ip link set lo up
# before sourcing this file: it then runs in a network namespace of its own with only
# loopback, so a regression fails with "network unreachable" instead of sending a packet off
# the machine.

: "${MINTGATE:?set MINTGATE to the mintgate binary}"
MINTGATE=$(realpath "$MINTGATE")
work=$(mktemp -d)
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
  rm -rf "$work"
}
trap cleanup EXIT
# A command that fails under `set -e` without its own message still says where it stopped.
trap 'rc=$?; echo "FAIL: line $LINENO of $(basename "$0") exited $rc" >&2; dump_logs' ERR

dump_logs() {
  for log in "$work"/*.log; do
    [[ -f $log ]] && { echo "--- $log" >&2; tail -n 20 "$log" >&2; }
  done
}

fail() {
  echo "FAIL: $*" >&2
  dump_logs
  exit 1
}

# A TCP and UDP port that was free a moment ago on 127.0.0.1, chosen at random below the
# kernel's ephemeral range: a port the kernel picked (bind to port 0) goes back into that range
# when released, and the suites running in parallel open client connections and UDP sockets
# all the time, one of which could be given it before the server here binds it.
free_port() {
  python3 - <<'PY'
import random, socket
low = int(open("/proc/sys/net/ipv4/ip_local_port_range").read().split()[0])
first, last = (10000, low) if low > 11000 else (low, 65536)
for _ in range(1000):
    port = random.randrange(first, last)
    try:
        for kind in (socket.SOCK_STREAM, socket.SOCK_DGRAM):
            with socket.socket(socket.AF_INET, kind) as s:
                s.bind(("127.0.0.1", port))
    except OSError:
        continue
    print(port)
    break
PY
}

# Milliseconds since the epoch: timeouts of a second are timed finer than `date +%s` can.
now_ms() {
  echo $(($(date +%s%N) / 1000000))
}

wait_for_port() {  # port [seconds]
  local port=$1 tries=$((${2:-10} * 10))
  for ((i = 0; i < tries; i++)); do
    if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then return 0; fi
    sleep 0.1
  done
  fail "nothing listens on 127.0.0.1:$port"
}

# Until `file` has a line matching `pattern` (grep, with the options that follow), for up to
# 5 s: the gateway writes access log lines up to 20 ms after each exchange, in batches.
wait_for_line() {  # file pattern [grep options]
  local file=$1 pattern=$2 i
  shift 2
  for ((i = 0; i < 50; i++)); do
    grep -q "$@" -- "$pattern" "$file" 2>/dev/null && return 0
    sleep 0.1
  done
  return 1
}

# The access-log lines ($work/access.log) that contain $1 (fixed string), once there are some:
# the gateway writes its lines every 20 ms. Fails after 5 s.
access_logged() {
  for _ in $(seq 50); do
    grep -F -- "$1" "$work/access.log" 2>/dev/null && return 0
    sleep 0.1
  done
  return 1
}

# SIGHUP to the gateway started by start_mintgate (logging to $work/gateway.log), then waits
# until it says it reloaded and its workers have the new configuration.
reload_gateway() {
  local before i
  before=$(grep -c "configuration reloaded" "$work/gateway.log" || true)
  kill -HUP "$MINTGATE_PID"
  for ((i = 0; i < 50; i++)); do
    if (($(grep -c "configuration reloaded" "$work/gateway.log" || true) > before)); then
      sleep 0.3 # the workers take the new configuration on their loops
      return 0
    fi
    sleep 0.1
  done
  fail "the gateway did not reload: $(tail -3 "$work/gateway.log")"
}

# nginx serving $work/www on $1, with WebDAV PUT for uploads and a few fixed answers.
start_nginx() {
  local port=$1
  mkdir -p "$work/www" "$work/nginx"
  # As root, nginx would hand requests to an unprivileged worker that cannot read $work.
  local user_line=""
  [[ $(id -u) == 0 ]] && user_line="user root;"
  # An origin whose certificate nobody trusts, when the test asks for one.
  local bad_server=""
  if [[ -n ${NGINX_BAD_TLS_PORT:-} ]]; then
    bad_server="server { listen 127.0.0.1:$NGINX_BAD_TLS_PORT ssl; root $work/www;
      ssl_certificate $work/pki/selfsigned.pem; ssl_certificate_key $work/pki/selfsigned.key; }"
  fi
  # One server block that picks the certificate by SNI at each handshake (as hosting
  # platforms do): www.lab.test gets the lab CA's *.lab.test certificate, evil.lab.test a
  # self-signed one. TLS sessions of one name can be resumed under another here.
  if [[ -n ${NGINX_SNI_TLS_PORT:-} ]]; then
    bad_server+="
  server { listen 127.0.0.1:$NGINX_SNI_TLS_PORT ssl; root $work/www;
    ssl_certificate $work/pki/sni/\$ssl_server_name.pem;
    ssl_certificate_key $work/pki/sni/\$ssl_server_name.key;
    location = /conn { default_type text/plain; return 200 \"\$connection \$ssl_session_reused\\n\"; }
  }"
  fi
  cat >"$work/nginx/nginx.conf" <<NGINX
$user_line
daemon off;
worker_processes 1;
pid $work/nginx/nginx.pid;
error_log $work/nginx.log warn;
events { worker_connections 256; }
http {
  access_log off;
  client_body_temp_path $work/nginx/body;
  proxy_temp_path $work/nginx/proxy;
  fastcgi_temp_path $work/nginx/fastcgi;
  uwsgi_temp_path $work/nginx/uwsgi;
  scgi_temp_path $work/nginx/scgi;
  client_max_body_size 0;
  server {
    listen 127.0.0.1:$port;
    ${NGINX_TLS_PORT:+listen 127.0.0.1:$NGINX_TLS_PORT ssl;}
    ${NGINX_TLS_PORT:+ssl_certificate $work/pki/site.pem;}
    ${NGINX_TLS_PORT:+ssl_certificate_key $work/pki/site.key;}
    root $work/www;
    location /upload/ { dav_methods PUT; create_full_put_path on; }
    location = /status/204 { return 204; }
    # Which origin connection served a request, and whether its TLS session was resumed.
    location = /conn { default_type text/plain; return 200 "\$connection \$ssl_session_reused\n"; }
    location = /conn-close {
      keepalive_timeout 0;
      default_type text/plain; return 200 "\$connection \$ssl_session_reused\n";
    }
    # An NTLM challenge (connection-oriented authentication), naming the origin connection.
    location = /ntlm {
      add_header WWW-Authenticate NTLM always;
      default_type text/plain; return 401 "\$connection\n";
    }
    location = /echo-headers { return 200 "te=[\$http_te] pc=[\$http_proxy_connection] ka=[\$http_keep_alive] x=[\$http_x_end_to_end] host=[\$host] pa=[\$http_proxy_authorization]\n"; }
  }
  $bad_server
}
NGINX
  nginx -c "$work/nginx/nginx.conf" -e "$work/nginx.log" >"$work/nginx.out.log" 2>&1 &
  pids+=($!)
  wait_for_port "$port"
}

# A lab CA and a certificate for www.lab.test / *.lab.test signed by it, made now.
make_lab_pki() {
  mkdir -p "$work/pki"
  (
    cd "$work/pki"
    openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 \
      -subj "/CN=mintgate lab CA" -keyout ca.key -out ca.pem \
      -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign" \
      2>/dev/null
    openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj "/CN=www.lab.test" \
      -keyout site.key -out site.csr 2>/dev/null
    printf 'subjectAltName=DNS:www.lab.test,DNS:*.lab.test\nextendedKeyUsage=serverAuth\n' \
      >site.ext
    openssl x509 -req -in site.csr -CA ca.pem -CAkey ca.key -CAcreateserial -days 2 \
      -extfile site.ext -out site.pem 2>/dev/null
    # An origin certificate nobody trusts (self-signed), for the verification-failure tests.
    openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 \
      -subj "/CN=www.lab.test" -addext "subjectAltName=DNS:www.lab.test" \
      -keyout selfsigned.key -out selfsigned.pem 2>/dev/null
    # Per-name certificates for the SNI-switching server (NGINX_SNI_TLS_PORT).
    mkdir -p sni
    cp site.pem sni/www.lab.test.pem && cp site.key sni/www.lab.test.key
    openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 \
      -subj "/CN=evil.lab.test" -addext "subjectAltName=DNS:evil.lab.test" \
      -keyout sni/evil.lab.test.key -out sni/evil.lab.test.pem 2>/dev/null
    # A certificate from the lab CA that names the host only in its subject CN (no DNS SAN):
    # browsers refuse it, so must the gateway.
    openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj "/CN=cn-only.lab.test" \
      -keyout sni/cn-only.lab.test.key -out cn-only.csr 2>/dev/null
    printf 'extendedKeyUsage=serverAuth\n' >cn-only.ext
    openssl x509 -req -in cn-only.csr -CA ca.pem -CAkey ca.key -CAcreateserial -days 2 \
      -extfile cn-only.ext -out sni/cn-only.lab.test.pem 2>/dev/null
  ) || fail "cannot make the lab PKI"
}

# dnsmasq on $1 answering *.lab.test with 127.0.0.1 and NXDOMAIN for *.invalid.test, plus
# whatever the array DNSMASQ_EXTRA adds (e.g. --address=/meta.lab.test/169.254.169.254).
start_dnsmasq() {
  local port=$1
  dnsmasq -k --conf-file=/dev/null --no-resolv --no-hosts --listen-address=127.0.0.1 \
    --bind-interfaces --port="$port" ${DNSMASQ_EXTRA[@]+"${DNSMASQ_EXTRA[@]}"} \
    --address=/lab.test/127.0.0.1 --address=/other.test/127.0.0.1 --local=/invalid.test/ \
    --pid-file="$work/dnsmasq.pid" --user=root --log-facility="$work/dnsmasq.log" \
    >"$work/dnsmasq.out.log" 2>&1 &
  pids+=($!)
  for ((i = 0; i < 50; i++)); do
    if [[ -s $work/dnsmasq.pid ]]; then return 0; fi
    sleep 0.1
  done
  fail "dnsmasq did not start"
}

# The lab gateway's [server], [dns] and [admin] sections: listening on $proxy, resolving
# through dnsmasq on $dns, loopback origins allowed. Tests append their own sections.
lab_config() {  # file
  cat >"$1" <<TOML
[server]
listen = ["127.0.0.1:$proxy"]
workers = 2
allow_loopback_upstreams = true
state_dir = "$work/state"
[dns]
servers = ["127.0.0.1:$dns"]
[admin]
listen = "127.0.0.1:$admin"
TOML
}

# The issuer of the certificate a client gets for $3 (SNI) at $2 (host:port) through the
# proxy on $1. openssl s_client occasionally closes before printing the certificate on a
# loaded machine, so it is asked up to three times.
issuer_via_proxy() {  # proxy_port host:port sni
  local out
  for _ in 1 2 3; do
    out=$(echo | timeout 10 openssl s_client -proxy "127.0.0.1:$1" -connect "$2" -servername "$3" \
      2>/dev/null | openssl x509 -noout -issuer 2>/dev/null) && [[ -n $out ]] && {
      echo "$out"
      return 0
    }
    sleep 0.2
  done
  echo "(no certificate)"
}

# The TLS lab: lab PKI, nginx (plain on $origin, TLS on $NGINX_TLS_PORT, and on
# $NGINX_BAD_TLS_PORT with an untrusted certificate and $NGINX_SNI_TLS_PORT with a
# certificate per SNI when those are set), dnsmasq on $dns, and
# free ports for the gateway ($proxy, $admin). Sets those variables.
start_tls_lab() {
  make_lab_pki
  NGINX_TLS_PORT=$(free_port)
  start_http_lab
  wait_for_port "$NGINX_TLS_PORT"
  if [[ -n ${NGINX_BAD_TLS_PORT:-} ]]; then wait_for_port "$NGINX_BAD_TLS_PORT"; fi
  if [[ -n ${NGINX_SNI_TLS_PORT:-} ]]; then wait_for_port "$NGINX_SNI_TLS_PORT"; fi
}

# The plain lab: nginx on $origin, dnsmasq on $dns, free ports for the gateway ($proxy,
# $admin). Sets those variables.
start_http_lab() {
  origin=$(free_port)
  dns=$(free_port)
  proxy=$(free_port)
  admin=$(free_port)
  start_nginx "$origin"
  start_dnsmasq "$dns"
}

# A cross-signed CA certificate: the subject and key of the root in $1 (ca.pem, ca.key),
# issued by the root in $2; written to $3.
cross_sign() {  # new_root_dir issuer_root_dir out
  cat >"$work/cross-ext.cnf" <<'EXT'
[v3_ca]
basicConstraints = critical, CA:TRUE
keyUsage = critical, keyCertSign, cRLSign
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
EXT
  openssl x509 -x509toreq -in "$1/ca.pem" -signkey "$1/ca.key" -out "$work/cross.csr" 2>/dev/null
  openssl x509 -req -in "$work/cross.csr" -CA "$2/ca.pem" -CAkey "$2/ca.key" \
    -set_serial 0x1234 -days 365 -extfile "$work/cross-ext.cnf" -extensions v3_ca \
    -out "$3" 2>/dev/null
}

# The admin bearer token a gateway generated in its state_dir ($work/state unless given).
admin_token() {  # [state_dir]
  local file="${1:-$work/state}/admin.token"
  [[ -s $file ]] || fail "no admin token in $file"
  head -n 1 "$file"
}

# curl with the admin token of the gateway whose state_dir is $ADMIN_STATE ($work/state by
# default): admin_curl [curl options] URL. Silent, 5 s at most unless the options say longer.
admin_curl() {
  curl -s --max-time 5 -H "Authorization: Bearer $(admin_token "${ADMIN_STATE:-$work/state}")" "$@"
}

# mintgate run -c $2, logs in $work/$1.log; sets MINTGATE_PID.
start_mintgate() {
  local name=$1 config=$2 port=$3 admin_port
  "$MINTGATE" run -c "$config" >"$work/$name.log" 2>&1 &
  MINTGATE_PID=$!
  pids+=("$MINTGATE_PID")
  wait_for_port "$port"
  # The proxy port answers once the first worker listens; the admin listener opens after
  # every worker has started (each loads the system trust store: ~130 ms later with the ASan
  # build, more on a loaded machine). Once it answers, the whole gateway is up.
  admin_port=$(sed -n 's/^listen = "127\.0\.0\.1:\([0-9]*\)"$/\1/p' "$config" | tail -n 1)
  if [[ -n $admin_port ]]; then wait_for_port "$admin_port"; fi
}
