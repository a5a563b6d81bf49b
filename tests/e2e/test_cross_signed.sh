#!/usr/bin/env bash
# The three kinds of CA profile end to end (SPEC §6): a client that trusts only the legacy
# root, only the self-signed new root, or only the customer's enterprise root accepts the
# leaves of the profile meant for it, and no other. The cross-signed profile is the new
# root's key and subject issued by the customer root, which goes in `chain`.
set -euo pipefail
source "$(dirname "$0")/lib.sh"

start_tls_lab
echo "cross" >"$work/www/hello.txt"
cd "$work"
"$MINTGATE" ca init --out ca/legacy --name "TREND.IWS.2" >/dev/null
"$MINTGATE" ca init --out ca/new --name "Web Security Cloud Root CA" >/dev/null
"$MINTGATE" ca init --out ca/customer --name "Customer Enterprise Root" --key rsa-2048 >/dev/null
cross_sign ca/new ca/customer ca/new-cross.pem

lab_config mintgate.toml
cat >>mintgate.toml <<TOML
[inspection]
default_ca = "legacy"
connect_ports = [$NGINX_TLS_PORT]
extra_trust = ["$work/pki/ca.pem"]
[ca.legacy]
cert = "ca/legacy/ca.pem"
key = "ca/legacy/ca.key"
[ca.new]
cert = "ca/new/ca.pem"
key = "ca/new/ca.key"
[ca.cross]
cert = "ca/new-cross.pem"
key = "ca/new/ca.key"
chain = ["ca/customer/ca.pem"]
[[rule]]
name = "new-root"
action = "decrypt"
hosts = ["new.lab.test"]
ca = "new"
[[rule]]
name = "cross-signed"
action = "decrypt"
hosts = ["cross.lab.test"]
ca = "cross"
TOML
start_mintgate gateway mintgate.toml "$proxy"

ok() {  # host cafile
  [[ $(curl --proxy "http://127.0.0.1:$proxy" -s --max-time 10 --cacert "$2" \
    "https://$1:$NGINX_TLS_PORT/hello.txt") == cross ]]
}
ok www.lab.test ca/legacy/ca.pem || fail "legacy leaf, client trusting the legacy root"
ok new.lab.test ca/new/ca.pem || fail "new-root leaf, client trusting the new root"
ok cross.lab.test ca/customer/ca.pem || fail "cross-signed leaf, client trusting only the customer root"
ok cross.lab.test ca/new/ca.pem || fail "cross-signed leaf, client trusting only the new root"
! ok www.lab.test ca/new/ca.pem || fail "legacy leaf accepted by a client without the legacy root"
! ok new.lab.test ca/customer/ca.pem || fail "new-root leaf accepted with only the customer root"
! ok cross.lab.test ca/legacy/ca.pem || fail "cross-signed leaf accepted with only the legacy root"

# The cross-signed chain as sent: leaf, the cross-signed new root, the customer root.
curl --proxy "http://127.0.0.1:$proxy" -s --max-time 10 --cacert ca/customer/ca.pem -w '%{certs}' \
  -o /dev/null "https://cross.lab.test:$NGINX_TLS_PORT/hello.txt" >chain.txt
[[ $(grep -c "BEGIN CERTIFICATE" chain.txt) == 3 ]] || fail "chain: $(grep -c BEGIN chain.txt) certificates"

echo "PASS: legacy, new and cross-signed profiles against clients trusting one root each"
