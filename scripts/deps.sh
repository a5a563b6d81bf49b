#!/usr/bin/env bash
# Installs the Debian packages mintgate needs to build and test. Idempotent and quiet
# when everything is present; prints what it installs otherwise.
set -euo pipefail

build_pkgs=(build-essential cmake ninja-build pkg-config libssl-dev libuv1-dev libc-ares-dev
  node-llhttp libtomlplusplus-dev libcli11-dev nlohmann-json3-dev libgtest-dev
  libbenchmark-dev openssl libkrb5-dev libldap-dev libcrypt-dev)
# clang and its runtimes (libclang-rt-14-dev: libFuzzer, ASan, UBSan) for scripts/fuzz.sh.
# The readiness suite drives nine real TLS stacks (tests/e2e/test_readiness_stacks.sh): curl,
# wget (GnuTLS), gnutls-cli, Python, Go, Java, Node, Chromium and Firefox (NSS databases made
# with certutil). python3-websocket (websocket-client): tests/e2e/browser.py drives headless
# Chromium over the DevTools protocol (tests/e2e/test_browser_driver.sh). Proxy authentication
# is tested against a real MIT KDC (krb5-kdc, krb5-user for kinit and kadmin.local), OpenLDAP's
# slapd (ldap-utils for ldapadd) and htpasswd files made by apache2-utils. Scale-out is tested
# behind Debian's HAProxy, and the Debian package (scripts/package-deb.sh) is checked by lintian
# (systemd-analyze, from systemd, verifies its unit; logrotate runs its rotation rules and
# shellcheck reads its maintainer scripts).
test_pkgs=(curl nginx-light dnsmasq nodejs clang libclang-rt-14-dev wget gnutls-bin golang-go
  openjdk-17-jdk-headless chromium libnss3-tools firefox-esr python3-websocket
  fonts-ipafont-gothic krb5-kdc krb5-admin-server krb5-user slapd ldap-utils apache2-utils
  haproxy lintian systemd dpkg-dev logrotate shellcheck)
# The load lab (bench/lab/run) compares mintgate with these peers (python3-cryptography:
# the certificates of its per-host mode, bench/lab/lab_certs.py).
lab_pkgs=(squid-openssl mitmproxy haproxy nginx-light dnsmasq python3-cryptography)

want=("${build_pkgs[@]}")
for arg in "$@"; do
  case "$arg" in
    --test) want+=("${test_pkgs[@]}") ;;
    --lab) want+=("${lab_pkgs[@]}") ;;
    *) echo "usage: $0 [--test] [--lab]" >&2; exit 2 ;;
  esac
done

missing=()
declare -A seen=()
for p in "${want[@]}"; do
  [[ -n ${seen[$p]:-} ]] && continue
  seen[$p]=1
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done
if ((${#missing[@]} == 0)); then exit 0; fi

echo "mintgate: installing missing Debian packages: ${missing[*]}"
SUDO=""
if [[ $(id -u) -ne 0 ]]; then SUDO="sudo"; fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
# Keep package-shipped services (nginx, dnsmasq, squid) from grabbing ports at install time:
# the tests and the load lab start their own instances on free loopback ports.
if [[ ! -e /usr/sbin/policy-rc.d ]]; then
  printf '#!/bin/sh\nexit 101\n' | $SUDO tee /usr/sbin/policy-rc.d >/dev/null
  $SUDO chmod +x /usr/sbin/policy-rc.d
  trap '$SUDO rm -f /usr/sbin/policy-rc.d' EXIT
fi
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
echo "mintgate: installed ${missing[*]}"
