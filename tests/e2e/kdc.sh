#!/usr/bin/env bash
# A real MIT Kerberos KDC on 127.0.0.1 for the tests, everything under one directory:
#   bash tests/e2e/kdc.sh start DIR   # prints KRB5_CONFIG=..., KDC_PORT=..., KEYTAB=..., REALM=...
#   bash tests/e2e/kdc.sh stop DIR
# Realm MINTGATE.TEST; principals alice (password alice-krb-pw) and bob (bob-krb-pw); the
# service HTTP/gateway.mintgate.test with its keys in DIR/http.keytab and
# HTTP/other.mintgate.test in DIR/other.keytab. Two can run at once with different DIRs.
set -euo pipefail

cmd=${1:?usage: kdc.sh start|stop DIR}
dir=${2:?usage: kdc.sh start|stop DIR}
realm=MINTGATE.TEST

if [[ $cmd == stop ]]; then
  if [[ -s $dir/krb5kdc.pid ]]; then kill "$(cat "$dir/krb5kdc.pid")" 2>/dev/null || true; fi
  exit 0
fi
[[ $cmd == start ]] || { echo "usage: kdc.sh start|stop DIR" >&2; exit 2; }
for tool in krb5kdc kdb5_util kadmin.local kinit; do
  command -v "$tool" >/dev/null || { echo "kdc.sh: $tool is not installed (scripts/deps.sh --test)" >&2; exit 1; }
done

mkdir -p "$dir"
dir=$(realpath "$dir")
port=$(python3 - <<'PY'
import random, socket
for _ in range(1000):
    port = random.randrange(10000, 30000)
    try:
        for kind in (socket.SOCK_STREAM, socket.SOCK_DGRAM):
            with socket.socket(socket.AF_INET, kind) as s:
                s.bind(("127.0.0.1", port))
    except OSError:
        continue
    print(port)
    break
PY
)

cat >"$dir/krb5.conf" <<EOF
[libdefaults]
  default_realm = $realm
  dns_lookup_kdc = false
  dns_lookup_realm = false
  rdns = false
  dns_canonicalize_hostname = false
  udp_preference_limit = 1
[realms]
  $realm = {
    kdc = 127.0.0.1:$port
  }
[domain_realm]
  .mintgate.test = $realm
  mintgate.test = $realm
EOF
cat >"$dir/kdc.conf" <<EOF
[kdcdefaults]
  kdc_ports = $port
  kdc_tcp_ports = $port
[realms]
  $realm = {
    database_name = $dir/principal
    key_stash_file = $dir/stash
    acl_file = $dir/kadm5.acl
    max_life = 1h
    supported_enctypes = aes256-cts-hmac-sha1-96:normal aes128-cts-hmac-sha1-96:normal
  }
[logging]
  kdc = FILE:$dir/kdc.log
EOF
: >"$dir/kadm5.acl"
export KRB5_CONFIG=$dir/krb5.conf KRB5_KDC_PROFILE=$dir/kdc.conf

kdb5_util create -s -r "$realm" -P "$(head -c 16 /dev/urandom | od -An -tx1 | tr -d ' \n')" \
  >"$dir/kdb5_util.log" 2>&1
kadmin() { kadmin.local -r "$realm" -q "$1" >>"$dir/kadmin.log" 2>&1; }
kadmin "addprinc -pw alice-krb-pw alice"
kadmin "addprinc -pw bob-krb-pw bob"
kadmin "addprinc -randkey HTTP/gateway.mintgate.test"
kadmin "addprinc -randkey HTTP/other.mintgate.test"
kadmin "ktadd -k $dir/http.keytab HTTP/gateway.mintgate.test"
kadmin "ktadd -k $dir/other.keytab HTTP/other.mintgate.test"
chmod 600 "$dir/http.keytab" "$dir/other.keytab"

krb5kdc -r "$realm" -P "$dir/krb5kdc.pid" >>"$dir/kdc.log" 2>&1
# Ready once a ticket can be had.
for ((i = 0; i < 100; i++)); do
  if echo alice-krb-pw | KRB5CCNAME="FILE:$dir/probe.ccache" kinit alice >/dev/null 2>&1; then
    rm -f "$dir/probe.ccache"
    echo "KRB5_CONFIG=$dir/krb5.conf"
    echo "KDC_PORT=$port"
    echo "KEYTAB=$dir/http.keytab"
    echo "OTHER_KEYTAB=$dir/other.keytab"
    echo "REALM=$realm"
    exit 0
  fi
  sleep 0.1
done
echo "kdc.sh: the KDC did not answer within 10 s; its log:" >&2
tail -20 "$dir/kdc.log" >&2
exit 1
