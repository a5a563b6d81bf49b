#!/usr/bin/env bash
# A real MIT Kerberos KDC on 127.0.0.1 for the tests, every file under one directory:
#   bash tests/e2e/kdc.sh start DIR   # prints KRB5_CONFIG=..., KDC_PORT=..., KEYTAB=..., ...
#   bash tests/e2e/kdc.sh stop DIR
# or, sourced (no arguments): kdc_start DIR / kdc_stop DIR, each in a subshell, so the caller's
# shell options are left alone.
#
# Realm MINTGATE.TEST; principals alice (password alice-krb-pw) and bob (bob-krb-pw); the
# service HTTP/gateway.mintgate.test with its keys in DIR/http.keytab and
# HTTP/other.mintgate.test in DIR/other.keytab. The KDC listens on 127.0.0.1 only, on a free
# port (UDP and TCP), so two can run at once with different DIRs. Nothing outside DIR is
# written; no DNS is asked. The output is shell assignments for eval:
#   KRB5_CONFIG KRB5_KDC_PROFILE KDC_PORT KDC_PID REALM KEYTAB OTHER_KEYTAB SERVICE_PRINCIPAL
#   OTHER_PRINCIPAL ALICE_PASSWORD BOB_PASSWORD
# A client such as curl then needs KRB5_CONFIG and a ticket (kinit alice into KRB5CCNAME).
# With KDC_OWNER_PID=<pid> in the environment, the KDC also stops when that process ends.

kdc_realm=MINTGATE.TEST
kdc_deadline_s=10

# The pid of DIR's KDC when it is running (checked to be a krb5kdc started for DIR).
kdc_pid_of() {
  local dir=$1 pid
  [[ -s $dir/krb5kdc.pid ]] || return 1
  pid=$(tr -dc 0-9 <"$dir/krb5kdc.pid")
  [[ -n $pid && -r /proc/$pid/cmdline ]] || return 1
  # Not a recycled pid: the process is krb5kdc and was given this DIR's pid file.
  tr '\0' ' ' <"/proc/$pid/cmdline" | grep -qF -- "krb5kdc" || return 1
  tr '\0' ' ' <"/proc/$pid/cmdline" | grep -qF -- "$dir/krb5kdc.pid" || return 1
  echo "$pid"
}

kdc_stop() (
  dir=${1:?usage: kdc_stop DIR}
  [[ -d $dir ]] || exit 0
  dir=$(realpath "$dir")
  pid=$(kdc_pid_of "$dir") || { rm -f "$dir/krb5kdc.pid"; exit 0; }
  kill -TERM "$pid" 2>/dev/null || true
  for ((i = 0; i < 50; i++)); do
    # Gone, or a zombie waiting for whichever process reaps orphans.
    state=$(awk '/^State:/ { print $2 }' "/proc/$pid/status" 2>/dev/null) || state=
    [[ -n $state && $state != Z ]] || { rm -f "$dir/krb5kdc.pid"; exit 0; }
    sleep 0.1
  done
  kill -KILL "$pid" 2>/dev/null || true
  rm -f "$dir/krb5kdc.pid"
)

# A port free on 127.0.0.1 for both TCP and UDP, bind-checked, chosen at random below the
# kernel's ephemeral range (as tests/e2e/lib.sh's free_port): a port the kernel picked for a
# bind to port 0 goes back into that range, where a client connection of a suite running in
# parallel could be given it before the KDC binds it. Another process may still take it in
# the meantime, so start checks and retries.
kdc_free_port() {
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
else:
    raise SystemExit("no free port on 127.0.0.1")
PY
}

kdc_write_config() { # dir port
  local dir=$1 port=$2
  cat >"$dir/krb5.conf" <<EOF
[libdefaults]
  default_realm = $kdc_realm
  dns_lookup_kdc = false
  dns_lookup_realm = false
  rdns = false
  dns_canonicalize_hostname = false
  udp_preference_limit = 1
  kdc_timesync = 0
  default_ccache_name = FILE:$dir/default.ccache
  default_keytab_name = FILE:$dir/default.keytab
[realms]
  $kdc_realm = {
    kdc = 127.0.0.1:$port
  }
[domain_realm]
  .mintgate.test = $kdc_realm
  mintgate.test = $kdc_realm
EOF
  cat >"$dir/kdc.conf" <<EOF
[kdcdefaults]
  kdc_ports = 127.0.0.1:$port
  kdc_tcp_ports = 127.0.0.1:$port
[realms]
  $kdc_realm = {
    database_name = $dir/principal
    key_stash_file = $dir/stash
    acl_file = $dir/kadm5.acl
    max_life = 1h
    max_renewable_life = 1h
    supported_enctypes = aes256-cts-hmac-sha1-96:normal aes128-cts-hmac-sha1-96:normal
  }
[logging]
  kdc = FILE:$dir/kdc.log
  admin_server = FILE:$dir/kadmin.log
  default = FILE:$dir/krb5lib.log
EOF
}

kdc_start() (
  set -euo pipefail
  dir=${1:?usage: kdc_start DIR}
  fail() {
    echo "kdc.sh: $*" >&2
    exit 1
  }
  for tool in krb5kdc kdb5_util kadmin.local kinit python3 timeout; do
    command -v "$tool" >/dev/null ||
      fail "$tool is not installed (krb5-kdc, krb5-admin-server, krb5-user: scripts/deps.sh --test)"
  done
  mkdir -p "$dir"
  dir=$(realpath "$dir")
  ! kdc_pid_of "$dir" >/dev/null || fail "a KDC is already running for $dir (kdc.sh stop $dir)"
  rm -f "$dir"/principal* "$dir"/stash "$dir"/*.keytab "$dir"/krb5kdc.pid "$dir"/*.log "$dir"/krb5kdc.out
  : >"$dir/kadm5.acl"
  export KRB5_CONFIG=$dir/krb5.conf KRB5_KDC_PROFILE=$dir/kdc.conf
  export KRB5CCNAME=FILE:$dir/probe.ccache KRB5_KTNAME=FILE:$dir/default.keytab
  export KRB5RCACHEDIR=$dir
  unset KRB5_TRACE

  start=${EPOCHREALTIME/./}
  elapsed_ms() { echo $(((${EPOCHREALTIME/./} - start) / 1000)); }

  # The database and principals do not depend on the port: the config is rewritten with the
  # port for each attempt to start the KDC.
  kdc_write_config "$dir" 0
  master=$(head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n')
  kdb5_util create -s -r "$kdc_realm" -P "$master" >"$dir/kdb5_util.log" 2>&1 ||
    fail "kdb5_util create failed: $(tail -5 "$dir/kdb5_util.log")"
  kadmin() {
    kadmin.local -r "$kdc_realm" -q "$1" >>"$dir/kadmin.local.log" 2>&1 ||
      fail "kadmin.local -q \"$1\" failed: $(tail -5 "$dir/kadmin.local.log")"
  }
  kadmin "addprinc -pw alice-krb-pw alice"
  kadmin "addprinc -pw bob-krb-pw bob"
  kadmin "addprinc -randkey HTTP/gateway.mintgate.test"
  kadmin "addprinc -randkey HTTP/other.mintgate.test"
  kadmin "ktadd -k $dir/http.keytab HTTP/gateway.mintgate.test"
  kadmin "ktadd -k $dir/other.keytab HTTP/other.mintgate.test"
  [[ -s $dir/http.keytab && -s $dir/other.keytab ]] || fail "the keytabs were not written"
  chmod 600 "$dir/http.keytab" "$dir/other.keytab"

  # krb5kdc binds its sockets before it detaches: a port taken in the meantime by another
  # user makes it exit non-zero. It sets SO_REUSEPORT, so a port taken by another KDC of the
  # same user (a concurrent run) would be shared silently: count the sockets on the port and
  # start over on another port unless this KDC's are the only ones.
  port=
  for ((attempt = 1; attempt <= 5; attempt++)); do
    candidate=$(kdc_free_port) || fail "no free port on 127.0.0.1"
    kdc_write_config "$dir" "$candidate"
    if krb5kdc -r "$kdc_realm" -P "$dir/krb5kdc.pid" >>"$dir/krb5kdc.out" 2>&1 </dev/null; then
      if ! command -v ss >/dev/null ||
        [[ $(ss -Htln "sport = :$candidate" | wc -l) == 1 &&
          $(ss -Huln "sport = :$candidate" | wc -l) == 1 ]]; then
        port=$candidate
        break
      fi
      echo "kdc.sh: port $candidate is shared with another process, trying another" >&2
      until kdc_pid_of "$dir" >/dev/null || (($(elapsed_ms) >= kdc_deadline_s * 1000)); do
        sleep 0.05
      done
      kdc_stop "$dir"
    fi
    (($(elapsed_ms) < kdc_deadline_s * 1000)) || break
  done
  [[ -n $port ]] || fail "krb5kdc did not start: $(tail -n 5 "$dir/krb5kdc.out" "$dir/kdc.log" 2>&1)"

  # Ready once the daemon has written its pid file and a ticket can be had from it.
  while :; do
    if pid=$(kdc_pid_of "$dir") &&
      timeout 3 kinit alice <<<"alice-krb-pw" >>"$dir/probe.log" 2>&1; then
      rm -f "$dir/probe.ccache"
      # With KDC_OWNER_PID (e.g. a test binary's pid), the KDC is stopped once that process
      # is gone, even if it died before it could run `stop`.
      if [[ -n ${KDC_OWNER_PID:-} ]]; then
        (
          while kill -0 "$KDC_OWNER_PID" 2>/dev/null && kdc_pid_of "$dir" >/dev/null; do
            sleep 1
          done
          kdc_stop "$dir"
        ) </dev/null >/dev/null 2>&1 &
      fi
      printf 'KRB5_CONFIG=%q\n' "$dir/krb5.conf"
      printf 'KRB5_KDC_PROFILE=%q\n' "$dir/kdc.conf"
      printf 'KDC_PORT=%q\n' "$port"
      printf 'KDC_PID=%q\n' "$pid"
      printf 'REALM=%q\n' "$kdc_realm"
      printf 'KEYTAB=%q\n' "$dir/http.keytab"
      printf 'OTHER_KEYTAB=%q\n' "$dir/other.keytab"
      printf 'SERVICE_PRINCIPAL=%q\n' "HTTP/gateway.mintgate.test@$kdc_realm"
      printf 'OTHER_PRINCIPAL=%q\n' "HTTP/other.mintgate.test@$kdc_realm"
      printf 'ALICE_PASSWORD=%q\n' alice-krb-pw
      printf 'BOB_PASSWORD=%q\n' bob-krb-pw
      exit 0
    fi
    if [[ -s $dir/krb5kdc.pid ]] && ! kdc_pid_of "$dir" >/dev/null; then
      fail "krb5kdc exited after starting; its log: $(tail -10 "$dir/kdc.log" 2>/dev/null)"
    fi
    if (($(elapsed_ms) >= kdc_deadline_s * 1000)); then
      kdc_stop "$dir"
      fail "the KDC on 127.0.0.1:$port did not answer within $kdc_deadline_s s; kinit said: $(tail -3 "$dir/probe.log" 2>/dev/null); its log: $(tail -10 "$dir/kdc.log" 2>/dev/null)"
    fi
    sleep 0.1
  done
)

if [[ ${BASH_SOURCE[0]} == "$0" ]]; then
  case ${1:-} in
    start) kdc_start "${2:?usage: kdc.sh start|stop DIR}" ;;
    stop) kdc_stop "${2:?usage: kdc.sh start|stop DIR}" ;;
    *)
      echo "usage: kdc.sh start|stop DIR" >&2
      exit 2
      ;;
  esac
fi
