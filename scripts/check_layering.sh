#!/usr/bin/env bash
# Fails when a source folder includes a layer it may not depend on (SPEC §1):
#   rules/ -> the standard library only; tls/ -> OpenSSL and rules/; proxy/ -> anything.
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
check rules 'openssl/|uv\.h|llhttp|ares|toml\+\+|nlohmann|CLI/|tls/|proxy/' "may use the standard library only"
check tls 'uv\.h|llhttp|ares|toml\+\+|nlohmann|CLI/|proxy/' "may use OpenSSL and rules/ only"
if ((status == 0)); then echo "layering ok: rules/ std only, tls/ OpenSSL only, proxy/ on top"; fi
exit $status
