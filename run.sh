#!/usr/bin/env bash
# Installs what is missing (Debian packages), builds mintgate in Release mode and runs
# `mintgate run` in the foreground. Without arguments it uses the embedded default
# configuration (127.0.0.1:3128, a CA generated in ./mintgate-state on first start); extra
# arguments go to `mintgate run`, e.g. ./run.sh -c conf/mintgate.toml
set -euo pipefail
cd "$(dirname "$0")"

scripts/deps.sh
cmake --preset release >/dev/null
cmake --build --preset release -j"$(nproc)" --target mintgate >/dev/null
exec build/release/mintgate run "$@"
