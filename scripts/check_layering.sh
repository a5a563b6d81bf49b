#!/usr/bin/env bash
# Fails when a source folder includes a layer it may not depend on (SPEC §1 and
# docs/architecture.md):
#   rules/ -> the standard library only; tls/ -> OpenSSL and rules/;
#   proxy/<folder>/ -> the folders below it only, and only the third-party libraries it owns.
# CMake's PRIVATE links catch a wrong dependency only when a symbol is used; this catches
# the include itself.
set -euo pipefail
cd "$(dirname "$0")/.."
status=0
check() {  # folder, regex of forbidden includes, explanation
  local hits
  hits=$(grep -nE "^[[:space:]]*#[[:space:]]*include[[:space:]]*[<\"]($2)" "$1"/*.h "$1"/*.cc 2>/dev/null || true)
  if [[ -n $hits ]]; then
    echo "layering violation: $1/ $3:"
    echo "$hits"
    status=1
  fi
}
# Every proxy/ folder, bottom to top; a folder may include the ones listed before it that its
# line allows, never one after it.
folders=(config log net http auth dns runtime upstream session control cli)
forbid_above() {  # folder: the proxy/ folders above it, as an include regex
  local out="" seen=0 f
  for f in "${folders[@]}"; do
    if ((seen)); then out+="${out:+|}proxy/$f/"; fi
    [[ $f == "$1" ]] && seen=1
  done
  echo "$out"
}
check rules 'openssl/|uv\.h|llhttp|ares|toml\+\+|nlohmann|CLI/|tls/|proxy/' "may use the standard library only"
check tls 'uv\.h|llhttp|ares|toml\+\+|nlohmann|CLI/|proxy/' "may use OpenSSL and rules/ only"
check proxy/config "uv\.h|llhttp|ares|nlohmann|CLI/|$(forbid_above config)|proxy/log/|proxy/net/|proxy/http/" \
  "is the configuration and its files: TOML, rules/, tls/ only"
check proxy/log "uv\.h|llhttp|ares|toml\+\+|nlohmann|CLI/|$(forbid_above log)" \
  "writes records: proxy/config/ only"
check proxy/net "llhttp|ares|toml\+\+|nlohmann|CLI/|openssl/|tls/|rules/|proxy/config/|proxy/log/|$(forbid_above net)" \
  "owns libuv handles: libuv and the standard library only"
check proxy/http "uv\.h|ares|toml\+\+|nlohmann|CLI/|$(forbid_above http)|proxy/config/|proxy/log/|proxy/net/" \
  "parses and writes HTTP: llhttp and rules/ only"
check proxy/auth "uv\.h|llhttp|ares|toml\+\+|nlohmann|CLI/|$(forbid_above auth)|proxy/log/|proxy/net/|proxy/http/" \
  "checks credentials (GSS-API, LDAP, crypt): proxy/config/ only, no event loop"
check proxy/dns "llhttp|toml\+\+|nlohmann|CLI/|$(forbid_above dns)|proxy/log/|proxy/http/" \
  "resolves names: c-ares, libuv, proxy/config/ and proxy/net/ only"
check proxy/runtime "uv\.h|llhttp|ares|toml\+\+|CLI/|$(forbid_above runtime)|proxy/net/|proxy/dns/" \
  "is what a connection reads: no event loop"
check proxy/upstream "llhttp|toml\+\+|nlohmann|CLI/|$(forbid_above upstream)|proxy/runtime/|proxy/http/|proxy/log/" \
  "pools origin connections: proxy/net/, proxy/dns/ and tls/ only"
check proxy/session "toml\+\+|nlohmann|CLI/|$(forbid_above session)" "is the data plane: nothing above it"
check proxy/control "CLI/|$(forbid_above control)" "runs the gateway: everything but proxy/cli/"
stray=$(find proxy -maxdepth 1 -name '*.h' -o -maxdepth 1 -name '*.cc')
if [[ -n $stray ]]; then
  echo "layering violation: files directly in proxy/ (each belongs in a folder):"
  echo "$stray"
  status=1
fi
if ((status == 0)); then
  echo "layering ok: rules/ std only, tls/ OpenSSL only, proxy/ folders bottom to top:" \
    "${folders[*]}"
fi
exit $status
