#!/usr/bin/env bash
# The README's test command: install what is missing, build, and run every test.
#   1. the full suite (labels unit, integration, e2e, packaging, gcp) in the dev build; the
#      gcp test skips itself without DATAFLOW_GCP_PROJECT, DATAFLOW_GCP_BUCKET and credentials
#      (docs/operations.md, "Running against Google Cloud") and is counted as skipped;
#   2. the core unit tests under ASan+UBSan;
#   3. the concurrency tests under TSan;
#   4. every libFuzzer target under tests/fuzz, bounded, over its committed seeds.
set -euo pipefail
cd "$(dirname "$0")/.."
JOBS=${JOBS:-$(nproc)}
# ccache keys independent of where the clone lives, so a fresh clone reuses earlier builds.
export CCACHE_BASEDIR="$PWD" CCACHE_NOHASHDIR=1

./scripts/setup.sh

# Four builds (dev, ASan, TSan, fuzz) with debug info and node_modules take ~9 GB in a fresh
# clone, and the compiler's temporary files go to TMPDIR: stop now with the reason, not half an
# hour later at a "No space left on device".
free_gb() { df -Pk "$1" | awk 'NR == 2 {printf "%d", $4 / 1048576}'; }
need_gb=${DATAFLOW_MIN_FREE_GB:-$([[ -d build/dev ]] && echo 3 || echo 9)}
for dir in "$PWD" "${TMPDIR:-/tmp}"; do
  if (( $(free_gb "$dir") < need_gb )); then
    echo "scripts/test.sh: only $(free_gb "$dir") GB free for $dir; the builds and tests need" \
      "about $need_gb GB (DATAFLOW_MIN_FREE_GB overrides). Free some space and run again." >&2
    exit 1
  fi
done

failed=0
passed_total=0
failed_total=0
skipped_total=0
declare -a summary

run_suite() {  # name preset ctest-args...
  local name=$1 preset=$2
  shift 2
  echo "=== $name: configure and build (preset $preset)"
  cmake --preset "$preset" >/dev/null
  cmake --build --preset "$preset" -j "$JOBS"
  echo "=== $name: ctest $*"
  local log
  log=$(mktemp)
  # pipefail: the pipeline fails when ctest does.
  # ctest counts a skipped test as passed; its list "The following tests did not run:" names
  # each one "(Skipped)".
  local skipped
  if ctest --test-dir "build/$preset" --output-on-failure -j "$JOBS" "$@" 2>&1 | tee "$log"; then
    skipped=$(grep -E '^\s+[0-9]+ - .* \(Skipped\)$' "$log" | sed -E 's/.* - (.*) \(Skipped\)$/\1/' |
      paste -sd, - || true)
    summary+=("$name: ok${skipped:+ (skipped: $skipped)}")
  else
    summary+=("$name: FAILED")
    failed=1
  fi
  # "100% tests passed, 0 tests failed out of 7"
  local line total bad
  line=$(grep -E 'tests failed out of [0-9]+' "$log" | tail -1 || true)
  total=$(sed -E 's/.* out of ([0-9]+).*/\1/' <<<"$line")
  bad=$(sed -E 's/.*passed, ([0-9]+) tests failed.*/\1/' <<<"$line")
  if [[ -n $line ]]; then
    skipped=$(grep -cE '^\s+[0-9]+ - .* \(Skipped\)$' "$log" || true)
    passed_total=$((passed_total + total - bad - skipped))
    failed_total=$((failed_total + bad))
    skipped_total=$((skipped_total + skipped))
  else
    failed_total=$((failed_total + 1))
  fi
  rm -f "$log"
}

run_suite "all tests" dev
run_suite "unit tests under ASan+UBSan" asan -L unit
run_suite "concurrency tests under TSan" tsan -L concurrency

echo "=== fuzzing (bounded): every target under tests/fuzz"
cmake --preset fuzz >/dev/null
mapfile -t fuzzers < build/fuzz/fuzzers.txt
cmake --build --preset fuzz -j "$JOBS" --target "${fuzzers[@]/%/_fuzzer}"
# Each target runs with the flags in tests/fuzz/<name>/options over a scratch copy of its
# committed seeds (libFuzzer adds what it finds to its first corpus directory).
# FUZZ_SECONDS caps each run (the options' -runs= is the normal bound).
for name in "${fuzzers[@]}"; do
  fuzz_dir=$(mktemp -d)
  cp -r "tests/fuzz/$name/corpus/." "$fuzz_dir"/
  read -r -a options < "tests/fuzz/$name/options"
  fuzz_log=/tmp/dataflow-fuzz-$name.log
  if "build/fuzz/tests/fuzz/$name/${name}_fuzzer" "${options[@]}" \
      -max_total_time="${FUZZ_SECONDS:-30}" "$fuzz_dir" >"$fuzz_log" 2>&1; then
    summary+=("fuzzing $name: ok ($(grep -o 'Done [0-9]* runs' "$fuzz_log"))")
    passed_total=$((passed_total + 1))
  else
    tail -40 "$fuzz_log"
    summary+=("fuzzing $name: FAILED (see $fuzz_log)")
    failed=1
    failed_total=$((failed_total + 1))
  fi
  rm -rf "$fuzz_dir"
done

echo "=== summary"
printf '%s\n' "${summary[@]}"
echo "total: ${passed_total} passed, ${failed_total} failed, ${skipped_total} skipped"
exit $failed
