#!/usr/bin/env bash
# Builds the libFuzzer targets (the fuzz preset: clang, ASan+UBSan) and runs each one for a
# bounded time, at most two at a time, starting from a copy of its seed corpus
# (fuzz/corpus/<target>/) so that runs never write into the repository.
# Fails on any crash, sanitizer report, leak, timeout or out-of-memory, printing the report and
# the path of the input that caused it.
#
#   scripts/fuzz.sh [TARGET...]        all targets when none is named (e.g. http_request)
#   MINTGATE_FUZZ_SECONDS=25           how long each target runs
#   MINTGATE_FUZZ_PARALLEL=2           targets run at once
#   MINTGATE_FUZZ_CORPUS=DIR           keep the corpus in DIR/<target> (grows across runs)
#                                      instead of a temporary copy
set -euo pipefail
cd "$(dirname "$0")/.."

all_targets=(http_request http_response client_hello host_name config ca_loading form proxy_header)
seconds=${MINTGATE_FUZZ_SECONDS:-25}
parallel=${MINTGATE_FUZZ_PARALLEL:-2}
targets=("$@")
((${#targets[@]})) || targets=("${all_targets[@]}")

# Largest input per target: a little above its largest seed.
max_len() {
  case "$1" in
    host_name) echo 512 ;;
    config) echo 16384 ;;
    *) echo 4096 ;;
  esac
}
dict() {
  case "$1" in
    http_request | http_response) echo "-dict=fuzz/http.dict" ;;
    config) echo "-dict=fuzz/toml.dict" ;;
  esac
}

if ! command -v clang++ >/dev/null; then
  echo "mintgate: clang++ is missing; run scripts/deps.sh --test" >&2
  exit 2
fi

echo "== fuzz build"
cmake --preset fuzz >/dev/null
cmake --build --preset fuzz -j"$(nproc)"

bin=build/fuzz/fuzz
artifacts=$PWD/build/fuzz/artifacts
mkdir -p "$artifacts"
work=$(mktemp -d /tmp/mintgate-fuzz.XXXXXX)
trap 'rm -rf "$work"' EXIT

# halt_on_error and the build's -fno-sanitize-recover make every report fatal; libFuzzer keeps
# LeakSanitizer on (-detect_leaks=1 by default).
export ASAN_OPTIONS=${ASAN_OPTIONS:-abort_on_error=1:detect_stack_use_after_return=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}

run_one() {  # target; writes $work/<target>.log, returns libFuzzer's status
  local t=$1 corpus
  if [[ -n ${MINTGATE_FUZZ_CORPUS:-} ]]; then
    corpus=$MINTGATE_FUZZ_CORPUS/$t
    mkdir -p "$corpus"
  else
    corpus=$work/corpus-$t
    mkdir -p "$corpus"
  fi
  cp -n fuzz/corpus/"$t"/* "$corpus"/ 2>/dev/null || true
  # shellcheck disable=SC2046  # dict() is empty or one word
  "$bin/${t}_fuzzer" "$corpus" $(dict "$t") -max_total_time="$seconds" \
    -max_len="$(max_len "$t")" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
    -artifact_prefix="$artifacts/$t-" >"$work/$t.log" 2>&1
}

report() {  # target status
  local t=$1 status=$2 log=$work/$1.log
  local runs
  runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
  if ((status == 0)); then
    printf '%-14s ok: %s runs in %s s, corpus %s inputs\n' "$t" "${runs:-?}" "$seconds" \
      "$(grep -o 'corp: [0-9]*' "$log" | tail -1 | cut -d' ' -f2)"
    return 0
  fi
  cp "$log" "$artifacts/$t.log"
  echo "$t FAILED (exit $status); full log: $artifacts/$t.log"
  grep -E '^(==[0-9]+==|SUMMARY|.*runtime error|.*invariant broken|.*Test unit written)' "$log" |
    head -20 || true
  echo "--- last lines of the report:"
  tail -n 40 "$log"
  local input
  input=$(sed -n 's/.*Test unit written to \(.*\)$/\1/p' "$log" | tail -1)
  if [[ -n $input ]]; then
    echo "--- reproduce with: $bin/${t}_fuzzer $input"
  fi
  return 1
}

echo "== fuzz runs: ${targets[*]} (${seconds} s each, $parallel at a time)"
start=$SECONDS
failed=0
declare -A pids=()
for t in "${targets[@]}"; do
  [[ -x $bin/${t}_fuzzer ]] || { echo "unknown fuzz target: $t" >&2; exit 2; }
  while ((${#pids[@]} >= parallel)); do
    sleep 1
    for done_t in "${!pids[@]}"; do
      if ! kill -0 "${pids[$done_t]}" 2>/dev/null; then
        status=0
        wait "${pids[$done_t]}" || status=$?
        report "$done_t" "$status" || failed=1
        unset "pids[$done_t]"
      fi
    done
  done
  run_one "$t" &
  pids[$t]=$!
done
for t in "${!pids[@]}"; do
  status=0
  wait "${pids[$t]}" || status=$?
  report "$t" "$status" || failed=1
done
echo "== fuzz runs took $((SECONDS - start)) s"
if ((failed)); then
  echo "mintgate: a fuzz target failed; the inputs are in $artifacts" >&2
  exit 1
fi
