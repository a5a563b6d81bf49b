#!/usr/bin/env bash
# Installs what is missing (Debian packages), builds mintgate in Release mode and runs it.
#
# The proxy itself is not built yet (see README.md, "Status"): with no arguments this creates
# the gateway's CA in mintgate-state/ca on first start, reuses it after, and prints it.
# With arguments, they are passed to the mintgate binary: ./run.sh ca show some.cer
set -euo pipefail
cd "$(dirname "$0")"

scripts/deps.sh
cmake --preset release >/dev/null
cmake --build --preset release -j"$(nproc)" --target mintgate >/dev/null
bin=build/release/mintgate

if (($# > 0)); then exec "$bin" "$@"; fi

state=mintgate-state
if [[ ! -f $state/ca/ca.pem ]]; then
  "$bin" ca init --out "$state/ca" --name "mintgate Root CA ($(hostname -s))"
else
  echo "mintgate: using the existing CA in $state/ca"
fi
"$bin" ca show "$state/ca/ca.pem"
echo
echo "Install $state/ca/ca.pem on clients as a trusted root; its key $state/ca/ca.key stays here."
