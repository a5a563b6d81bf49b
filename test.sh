#!/usr/bin/env bash
# Installs what is missing, builds, and runs every test (unit and end-to-end). Then builds the
# ASan+UBSan and TSan configurations and runs the unit tests under them, and runs each
# libFuzzer target for a bounded time (scripts/fuzz.sh).
# Exits non-zero on any failure. MINTGATE_SANITIZERS=0 skips the sanitizer and fuzz runs;
# MINTGATE_FUZZ=0 skips only the fuzz runs.
set -euo pipefail
cd "$(dirname "$0")"

jobs=$(nproc)
started=$SECONDS
# Each phase is announced with the minutes:seconds since the start, so a slow step shows.
phase() { printf '== [%d:%02d] %s\n' $(((SECONDS - started) / 60)) $(((SECONDS - started) % 60)) "$1"; }
scripts/deps.sh --test

phase "release build"
cmake --preset release >/dev/null
cmake --build --preset release -j"$jobs"
phase "release tests (unit + e2e)"
ctest --preset release -j"$jobs" --timeout 300

if [[ "${MINTGATE_SANITIZERS:-1}" != 0 ]]; then
  # Leaks of the system's libraries that mintgate cannot fix (each explained in the file).
  export LSAN_OPTIONS="suppressions=$PWD/tests/lsan.supp${LSAN_OPTIONS:+:$LSAN_OPTIONS}"
  for preset in asan tsan; do
    phase "$preset build"
    cmake --preset "$preset" >/dev/null
    cmake --build --preset "$preset" -j"$jobs"
    phase "$preset unit tests"
    ctest --preset "$preset" -j"$jobs" --timeout 600
  done
  # Traffic from the network must never crash the gateway: the end-to-end suites once more
  # against the ASan+UBSan binary (which aborts on the first error).
  phase "asan end-to-end tests"
  MINTGATE_SANITIZED=1 ctest --test-dir build/asan -L e2e -j"$jobs" --timeout 600 \
    --output-on-failure
  # The parsers of network input and configuration files under libFuzzer (ASan+UBSan), about
  # 25 s per target, two at a time.
  if [[ "${MINTGATE_FUZZ:-1}" != 0 ]]; then
    scripts/fuzz.sh
  fi
fi
phase "done"
echo "mintgate: all tests passed"
