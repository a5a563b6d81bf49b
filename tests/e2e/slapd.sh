#!/usr/bin/env bash
# A real OpenLDAP slapd on 127.0.0.1 for the tests, every file under one directory:
#   bash tests/e2e/slapd.sh start DIR   # prints LDAP_URL=..., LDAPS_URL=..., LDAP_CA=..., ...
#   bash tests/e2e/slapd.sh stop DIR
# or, sourced (no arguments): slapd_start DIR / slapd_stop DIR, each in a subshell, so the
# caller's shell options are left alone.
#
# Suffix dc=mintgate,dc=test, its own configuration only (slapd -f DIR/slapd.conf; Debian's
# /etc/ldap/slapd.d is never read), a throwaway CA (DIR/ca.pem) and a server certificate for
# localhost and 127.0.0.1 (subjectAltName DNS:localhost, IP:127.0.0.1; libldap checks the name
# "localhost" as the machine's host name, so clients use 127.0.0.1), and another CA that signed
# nothing here (DIR/other-ca.pem, LDAP_OTHER_CA). slapd listens on
#   LDAP_URL              ldap://127.0.0.1:P1   (StartTLS offered; plain binds work too)
#   LDAPS_URL             ldaps://127.0.0.1:P2
#   LDAPS_WRONG_NAME_URL  ldaps://127.0.0.2:P3  (same certificate: its name does not match)
# on free ports, so two can run at once with different DIRs. Nothing outside DIR is written.
#
# Entries (passwords in brackets):
#   ou=people: uid=alice [alice-ldap-pw], uid=bob [bob-ldap-pw], uid=carol smith
#     [carol-ldap-pw], uid=a* [astar-ldap-pw] (a literal star: a filter that is not escaped
#     finds alice too), and SPECIAL_USER [special-ldap-pw], a uid with every character that
#     RFC 4514 (DNs) or RFC 4515 (filters) escapes: #o"b(r)*, j+<x>;=\ (leading #, trailing
#     space); its DN is SPECIAL_DN.
#   ou=people,ou=people: uid=x [x-ldap-pw], what a template uid={user},ou=people,<base> would
#     reach for the name "x,ou=people" if {user} were not escaped.
#   ou=groups (groupOfNames, named by cn): finance {alice}, staff {alice, bob},
#     special {SPECIAL_USER}.
# Anonymous users may bind (auth) and read everything under people and groups except
# userPassword; the rootdn cn=admin,<base> has its password in LDAP_ROOT_PW_FILE (0600, with a
# trailing newline).
#
# With SLAPD_OWNER_PID=<pid> in the environment (e.g. a test binary's pid), slapd also stops
# when that process ends, even if it died before it could run `stop`.
#
# The output is shell assignments for eval (KEY=value lines; only paths and SPECIAL_* are
# quoted, SPECIAL_* in single quotes):
#   LDAP_URL LDAPS_URL LDAPS_WRONG_NAME_URL LDAP_CA LDAP_OTHER_CA LDAP_BASE LDAP_ROOT_DN
#   LDAP_ROOT_PW_FILE SLAPD_PID SPECIAL_USER SPECIAL_DN

slapd_base="dc=mintgate,dc=test"
slapd_deadline_s=10

# The pid of DIR's slapd when it is running (checked to be a slapd started for DIR).
slapd_pid_of() {
  local dir=$1 pid
  [[ -s $dir/slapd.pid ]] || return 1
  pid=$(tr -dc 0-9 <"$dir/slapd.pid")
  [[ -n $pid && -r /proc/$pid/cmdline ]] || return 1
  # Not a recycled pid: the process is slapd and was given this DIR's configuration.
  tr '\0' ' ' <"/proc/$pid/cmdline" | grep -qF -- "slapd" || return 1
  tr '\0' ' ' <"/proc/$pid/cmdline" | grep -qF -- "$dir/slapd.conf" || return 1
  echo "$pid"
}

slapd_stop() (
  dir=${1:?usage: slapd_stop DIR}
  [[ -d $dir ]] || exit 0
  dir=$(realpath "$dir")
  pid=$(slapd_pid_of "$dir") || { rm -f "$dir/slapd.pid"; exit 0; }
  kill -TERM "$pid" 2>/dev/null || true
  for ((i = 0; i < 50; i++)); do
    # Gone, or a zombie waiting for whichever process reaps orphans.
    state=$(awk '/^State:/ { print $2 }' "/proc/$pid/status" 2>/dev/null) || state=
    [[ -n $state && $state != Z ]] || { rm -f "$dir/slapd.pid"; exit 0; }
    sleep 0.1
  done
  kill -KILL "$pid" 2>/dev/null || true
  rm -f "$dir/slapd.pid"
)

# Three distinct ports free on 127.0.0.1 (the first two) and 127.0.0.2 (the third); another
# process may still take one before slapd binds, so start retries.
slapd_free_ports() {
  python3 - <<'PY'
import socket
ports = []
for address in ("127.0.0.1", "127.0.0.1", "127.0.0.2"):
    for _ in range(50):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            s.bind((address, 0))
            port = s.getsockname()[1]
        if port not in ports:
            ports.append(port)
            break
    else:
        raise SystemExit("no free port on " + address)
print(*ports)
PY
}

# A throwaway CA and the server's certificate (EC P-256, valid two days).
slapd_write_certificates() { # dir
  local dir=$1
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 \
    -subj "/CN=mintgate test LDAP CA" \
    -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign" \
    -keyout "$dir/ca.key" -out "$dir/ca.pem" >"$dir/openssl.log" 2>&1 || return 1
  openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj "/CN=localhost" \
    -keyout "$dir/server.key" -out "$dir/server.csr" >>"$dir/openssl.log" 2>&1 || return 1
  cat >"$dir/server.ext" <<EOF
basicConstraints = critical,CA:FALSE
keyUsage = critical,digitalSignature
extendedKeyUsage = serverAuth
subjectAltName = DNS:localhost,IP:127.0.0.1
EOF
  openssl x509 -req -in "$dir/server.csr" -CA "$dir/ca.pem" -CAkey "$dir/ca.key" \
    -CAcreateserial -days 2 -extfile "$dir/server.ext" -out "$dir/server.pem" \
    >>"$dir/openssl.log" 2>&1 || return 1
  # A CA that signed nothing here, for clients that must refuse the server.
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 \
    -subj "/CN=mintgate test LDAP other CA" \
    -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign" \
    -keyout "$dir/other-ca.key" -out "$dir/other-ca.pem" >>"$dir/openssl.log" 2>&1 || return 1
  chmod 600 "$dir/ca.key" "$dir/server.key" "$dir/other-ca.key"
}

slapd_write_config() { # dir rootpw
  local dir=$1 rootpw=$2
  cat >"$dir/slapd.conf" <<EOF
include /etc/ldap/schema/core.schema
include /etc/ldap/schema/cosine.schema
include /etc/ldap/schema/inetorgperson.schema
include /etc/ldap/schema/nis.schema
modulepath /usr/lib/ldap
moduleload back_mdb
pidfile $dir/slapd.pid
argsfile $dir/slapd.args
TLSCACertificateFile $dir/ca.pem
TLSCertificateFile $dir/server.pem
TLSCertificateKeyFile $dir/server.key
TLSProtocolMin 3.3

database mdb
maxsize 16777216
directory $dir/db
suffix "$slapd_base"
rootdn "cn=admin,$slapd_base"
rootpw $rootpw
access to attrs=userPassword
  by anonymous auth
  by * none
access to dn.base="$slapd_base"
  by * read
access to dn.subtree="ou=people,$slapd_base"
  by * read
access to dn.subtree="ou=groups,$slapd_base"
  by * read
access to *
  by * none
EOF
}

# base64 for LDIF's "attr:: value" form, which carries any bytes (the special user's leading
# '#' and trailing space would not survive the plain form).
slapd_b64() { printf '%s' "$1" | base64 -w0; }

slapd_write_ldif() { # dir special_uid special_dn
  local dir=$1 special_uid=$2 special_dn=$3
  slapd_hash() { slappasswd -h '{SSHA}' -s "$1"; }
  cat >"$dir/data.ldif" <<EOF
dn: $slapd_base
objectClass: dcObject
objectClass: organization
o: mintgate test
dc: mintgate

dn: ou=people,$slapd_base
objectClass: organizationalUnit
ou: people

dn: ou=groups,$slapd_base
objectClass: organizationalUnit
ou: groups

dn: uid=alice,ou=people,$slapd_base
objectClass: inetOrgPerson
uid: alice
cn: Alice
sn: A
userPassword: $(slapd_hash alice-ldap-pw)

dn: uid=bob,ou=people,$slapd_base
objectClass: inetOrgPerson
uid: bob
cn: Bob
sn: B
userPassword: $(slapd_hash bob-ldap-pw)

dn: uid=carol smith,ou=people,$slapd_base
objectClass: inetOrgPerson
uid: carol smith
cn: Carol Smith
sn: S
userPassword: $(slapd_hash carol-ldap-pw)

dn: uid=a*,ou=people,$slapd_base
objectClass: inetOrgPerson
uid: a*
cn: A Star
sn: Star
userPassword: $(slapd_hash astar-ldap-pw)

dn:: $(slapd_b64 "$special_dn")
objectClass: inetOrgPerson
uid:: $(slapd_b64 "$special_uid")
cn: Special
sn: Special
userPassword: $(slapd_hash special-ldap-pw)

dn: ou=people,ou=people,$slapd_base
objectClass: organizationalUnit
ou: people

dn: uid=x,ou=people,ou=people,$slapd_base
objectClass: inetOrgPerson
uid: x
cn: X
sn: X
userPassword: $(slapd_hash x-ldap-pw)

dn: cn=finance,ou=groups,$slapd_base
objectClass: groupOfNames
cn: finance
member: uid=alice,ou=people,$slapd_base

dn: cn=staff,ou=groups,$slapd_base
objectClass: groupOfNames
cn: staff
member: uid=alice,ou=people,$slapd_base
member: uid=bob,ou=people,$slapd_base

dn: cn=special,ou=groups,$slapd_base
objectClass: groupOfNames
cn: special
member:: $(slapd_b64 "$special_dn")
EOF
}

slapd_start() (
  set -euo pipefail
  dir=${1:?usage: slapd_start DIR}
  fail() {
    echo "slapd.sh: $*" >&2
    exit 1
  }
  PATH=$PATH:/usr/sbin:/sbin
  for tool in slapd slapadd slappasswd ldapsearch openssl python3 base64; do
    command -v "$tool" >/dev/null ||
      fail "$tool is not installed (slapd, ldap-utils: scripts/deps.sh --test)"
  done
  [[ -r /usr/lib/ldap/back_mdb.so || -r /usr/lib/ldap/back_mdb.la ]] ||
    fail "slapd's back_mdb module is not in /usr/lib/ldap (is the slapd package installed?)"
  mkdir -p "$dir"
  dir=$(realpath "$dir")
  ! slapd_pid_of "$dir" >/dev/null || fail "a slapd is already running for $dir (slapd.sh stop $dir)"
  rm -rf "$dir/db" "$dir/slapd.pid" "$dir/slapd.args" "$dir"/*.log
  mkdir -p "$dir/db"

  start=${EPOCHREALTIME/./}
  elapsed_ms() { echo $(((${EPOCHREALTIME/./} - start) / 1000)); }

  slapd_write_certificates "$dir" || fail "openssl failed: $(tail -5 "$dir/openssl.log")"
  rootpw=$(head -c 18 /dev/urandom | od -An -tx1 | tr -d ' \n')
  (umask 077 && printf '%s\n' "$rootpw" >"$dir/rootpw")
  slapd_write_config "$dir" "$rootpw"
  special_uid='#o"b(r)*, j+<x>;=\ '
  special_dn='uid=\#o\"b(r)*\, j\+\<x\>\;\=\\\ ,ou=people,'$slapd_base
  slapd_write_ldif "$dir" "$special_uid" "$special_dn"
  slapadd -f "$dir/slapd.conf" -l "$dir/data.ldif" >"$dir/slapadd.log" 2>&1 ||
    fail "slapadd failed: $(tail -5 "$dir/slapadd.log")"

  # slapd opens its listeners before it detaches: a port taken in the meantime makes it exit
  # non-zero, and another three are tried.
  ports=
  for ((attempt = 1; attempt <= 5; attempt++)); do
    read -r p1 p2 p3 < <(slapd_free_ports) || fail "no free ports on 127.0.0.1"
    urls="ldap://127.0.0.1:$p1/ ldaps://127.0.0.1:$p2/ ldaps://127.0.0.2:$p3/"
    if slapd -f "$dir/slapd.conf" -h "$urls" -n "slapd-mintgate-test" \
      >>"$dir/slapd.out" 2>&1 </dev/null; then
      ports="$p1 $p2 $p3"
      break
    fi
    (($(elapsed_ms) < slapd_deadline_s * 1000)) || break
  done
  [[ -n $ports ]] || fail "slapd did not start: $(tail -n 5 "$dir/slapd.out" 2>&1)"

  # Ready once the daemon has written its pid file and answers on ldap:// and on ldaps://
  # (with the server's certificate verified against DIR/ca.pem).
  export LDAPTLS_CACERT=$dir/ca.pem LDAPTLS_REQCERT=demand
  unset LDAPTLS_CERT LDAPTLS_KEY LDAPURI LDAPBASE LDAPBINDDN
  probe() {
    ldapsearch -x -LLL -o nettimeout=2 -l 2 -H "$1" -b "$slapd_base" -s base dn \
      >>"$dir/probe.log" 2>&1
  }
  while :; do
    if pid=$(slapd_pid_of "$dir") && probe "ldap://127.0.0.1:$p1" &&
      probe "ldaps://127.0.0.1:$p2"; then
      if [[ -n ${SLAPD_OWNER_PID:-} ]]; then
        (
          while kill -0 "$SLAPD_OWNER_PID" 2>/dev/null && slapd_pid_of "$dir" >/dev/null; do
            sleep 1
          done
          slapd_stop "$dir"
        ) </dev/null >/dev/null 2>&1 &
      fi
      # Plain values need no quoting for eval; paths get %q; the special user's values are
      # single-quoted (they hold no single quote).
      echo "LDAP_URL=ldap://127.0.0.1:$p1"
      echo "LDAPS_URL=ldaps://127.0.0.1:$p2"
      echo "LDAPS_WRONG_NAME_URL=ldaps://127.0.0.2:$p3"
      printf 'LDAP_CA=%q\n' "$dir/ca.pem"
      printf 'LDAP_OTHER_CA=%q\n' "$dir/other-ca.pem"
      echo "LDAP_BASE=$slapd_base"
      echo "LDAP_ROOT_DN=cn=admin,$slapd_base"
      printf 'LDAP_ROOT_PW_FILE=%q\n' "$dir/rootpw"
      echo "SLAPD_PID=$pid"
      echo "SPECIAL_USER='$special_uid'"
      echo "SPECIAL_DN='$special_dn'"
      exit 0
    fi
    if [[ -s $dir/slapd.pid ]] && ! slapd_pid_of "$dir" >/dev/null; then
      fail "slapd exited after starting: $(tail -10 "$dir/slapd.out" 2>/dev/null)"
    fi
    if (($(elapsed_ms) >= slapd_deadline_s * 1000)); then
      slapd_stop "$dir"
      fail "slapd on 127.0.0.1:$p1 did not answer within $slapd_deadline_s s; ldapsearch said: $(tail -3 "$dir/probe.log" 2>/dev/null)"
    fi
    sleep 0.1
  done
)

if [[ ${BASH_SOURCE[0]} == "$0" ]]; then
  case ${1:-} in
    start) slapd_start "${2:?usage: slapd.sh start|stop DIR}" ;;
    stop) slapd_stop "${2:?usage: slapd.sh start|stop DIR}" ;;
    *)
      echo "usage: slapd.sh start|stop DIR" >&2
      exit 2
      ;;
  esac
fi
