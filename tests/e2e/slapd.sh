#!/usr/bin/env bash
# A real OpenLDAP slapd on 127.0.0.1 for the tests, everything under one directory:
#   bash tests/e2e/slapd.sh start DIR   # prints LDAP_URL=..., LDAPS_URL=..., LDAP_CA=..., ...
#   bash tests/e2e/slapd.sh stop DIR
# Suffix dc=mintgate,dc=test; people alice (alice-ldap-pw), bob (bob-ldap-pw) and
# "carol smith" (carol-ldap-pw) under ou=people; groups finance (alice) and staff (alice, bob)
# under ou=groups; the server's certificate (localhost, 127.0.0.1) from DIR/ca.pem, served on
# ldaps:// and with StartTLS on ldap://. Two can run at once with different DIRs.
set -euo pipefail

cmd=${1:?usage: slapd.sh start|stop DIR}
dir=${2:?usage: slapd.sh start|stop DIR}
if [[ $cmd == stop ]]; then
  if [[ -s $dir/slapd.pid ]]; then kill "$(cat "$dir/slapd.pid")" 2>/dev/null || true; fi
  exit 0
fi
[[ $cmd == start ]] || { echo "usage: slapd.sh start|stop DIR" >&2; exit 2; }
for tool in slapd slapadd ldapsearch openssl; do
  command -v "$tool" >/dev/null || [[ -x /usr/sbin/$tool ]] ||
    { echo "slapd.sh: $tool is not installed (scripts/deps.sh --test)" >&2; exit 1; }
done
PATH=$PATH:/usr/sbin

mkdir -p "$dir/db"
dir=$(realpath "$dir")
read -r plain tls < <(python3 - <<'PY'
import random, socket
ports = []
while len(ports) < 2:
    port = random.randrange(30000, 40000)
    try:
        with socket.socket() as s:
            s.bind(("127.0.0.1", port))
    except OSError:
        continue
    if port not in ports:
        ports.append(port)
print(*ports)
PY
)

# A throwaway CA and the server's certificate.
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 \
  -subj "/CN=mintgate test LDAP CA" -keyout "$dir/ca.key" -out "$dir/ca.pem" 2>/dev/null
openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj "/CN=localhost" \
  -keyout "$dir/server.key" -out "$dir/server.csr" 2>/dev/null
printf 'subjectAltName=DNS:localhost,IP:127.0.0.1\nextendedKeyUsage=serverAuth\n' >"$dir/ext.cnf"
openssl x509 -req -in "$dir/server.csr" -CA "$dir/ca.pem" -CAkey "$dir/ca.key" \
  -CAcreateserial -days 2 -extfile "$dir/ext.cnf" -out "$dir/server.pem" 2>/dev/null

rootpw=$(head -c 12 /dev/urandom | od -An -tx1 | tr -d ' \n')
cat >"$dir/slapd.conf" <<EOF
include /etc/ldap/schema/core.schema
include /etc/ldap/schema/cosine.schema
include /etc/ldap/schema/inetorgperson.schema
include /etc/ldap/schema/nis.schema
modulepath /usr/lib/ldap
moduleload back_mdb
pidfile $dir/slapd.pid
TLSCACertificateFile $dir/ca.pem
TLSCertificateFile $dir/server.pem
TLSCertificateKeyFile $dir/server.key
database mdb
maxsize 16777216
directory $dir/db
suffix "dc=mintgate,dc=test"
rootdn "cn=admin,dc=mintgate,dc=test"
rootpw $rootpw
access to attrs=userPassword
  by anonymous auth
  by * none
access to *
  by * read
EOF

hash() { slappasswd -s "$1"; }
cat >"$dir/data.ldif" <<EOF
dn: dc=mintgate,dc=test
objectClass: dcObject
objectClass: organization
o: mintgate test
dc: mintgate

dn: ou=people,dc=mintgate,dc=test
objectClass: organizationalUnit
ou: people

dn: ou=groups,dc=mintgate,dc=test
objectClass: organizationalUnit
ou: groups

dn: uid=alice,ou=people,dc=mintgate,dc=test
objectClass: inetOrgPerson
uid: alice
cn: Alice
sn: A
userPassword: $(hash alice-ldap-pw)

dn: uid=bob,ou=people,dc=mintgate,dc=test
objectClass: inetOrgPerson
uid: bob
cn: Bob
sn: B
userPassword: $(hash bob-ldap-pw)

dn: uid=carol smith,ou=people,dc=mintgate,dc=test
objectClass: inetOrgPerson
uid: carol smith
cn: Carol Smith
sn: S
userPassword: $(hash carol-ldap-pw)

dn: cn=finance,ou=groups,dc=mintgate,dc=test
objectClass: groupOfNames
cn: finance
member: uid=alice,ou=people,dc=mintgate,dc=test

dn: cn=staff,ou=groups,dc=mintgate,dc=test
objectClass: groupOfNames
cn: staff
member: uid=alice,ou=people,dc=mintgate,dc=test
member: uid=bob,ou=people,dc=mintgate,dc=test
EOF
slapadd -f "$dir/slapd.conf" -l "$dir/data.ldif" >"$dir/slapadd.log" 2>&1 ||
  { echo "slapd.sh: slapadd failed:" >&2; cat "$dir/slapadd.log" >&2; exit 1; }
printf '%s\n' "$rootpw" >"$dir/rootpw"
chmod 600 "$dir/rootpw" "$dir/server.key" "$dir/ca.key"

slapd -f "$dir/slapd.conf" -h "ldap://127.0.0.1:$plain/ ldaps://127.0.0.1:$tls/" \
  >"$dir/slapd.log" 2>&1
for ((i = 0; i < 100; i++)); do
  if ldapsearch -x -LLL -H "ldap://127.0.0.1:$plain" -b dc=mintgate,dc=test -s base dn \
    >/dev/null 2>&1; then
    echo "LDAP_URL=ldap://127.0.0.1:$plain"
    echo "LDAPS_URL=ldaps://127.0.0.1:$tls"
    echo "LDAP_CA=$dir/ca.pem"
    echo "LDAP_BASE=dc=mintgate,dc=test"
    echo "LDAP_ROOT_DN=cn=admin,dc=mintgate,dc=test"
    echo "LDAP_ROOT_PW_FILE=$dir/rootpw"
    exit 0
  fi
  sleep 0.1
done
echo "slapd.sh: slapd did not answer within 10 s; its log:" >&2
tail -20 "$dir/slapd.log" >&2
exit 1
