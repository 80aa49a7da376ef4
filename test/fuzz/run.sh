#!/usr/bin/env bash
# Builds the libFuzzer targets with clang (in build-fuzz/) and runs each for a
# bounded time, printing one PASS or FAIL line per target:
#   PASS: fuzz csv_decoder: 812345 runs in 20 s, no crash
# Usage: bash test/fuzz/run.sh [TARGET ...]   (default: all four)
# FUZZ_SECONDS (default 20) bounds each run; the random seed is fixed
# (FUZZ_SEED, default 1) and every run starts from the committed seeds only,
# so a run is reproducible: the same inputs in the same order (how many fit in
# the time depends on the machine). A crashing input is saved as
# build-fuzz/artifacts/TARGET-crash-*; replay it with
#   build-fuzz/test/fuzz/TARGET_fuzz build-fuzz/artifacts/TARGET-crash-...
set -uo pipefail
cd "$(dirname "$0")/../.."
seconds=${FUZZ_SECONDS:-20}
seed=${FUZZ_SEED:-1}
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(csv_decoder json_decoder batch_codec state_loader)
declare -A dict=([csv_decoder]=csv [json_decoder]=json [batch_codec]=batch [state_loader]=state)

if ! { cmake -S . -B build-fuzz -DCMAKE_CXX_COMPILER=clang++ -DVELOSTREAM_FUZZ=ON >/dev/null &&
       cmake --build build-fuzz -j2 --target "${targets[@]/%/_fuzz}" >build-fuzz/build.log 2>&1; }; then
  [ -f build-fuzz/build.log ] && tail -n 30 build-fuzz/build.log
  for t in "${targets[@]}"; do echo "FAIL: fuzz $t: the fuzz targets did not build"; done
  exit 1
fi

export UBSAN_OPTIONS=print_stacktrace=1
status=0
mkdir -p build-fuzz/artifacts
for t in "${targets[@]}"; do
  work=build-fuzz/corpus/$t  # inputs found by this run; the committed seeds stay as they are
  log=build-fuzz/$t.log
  rm -rf "$work" && mkdir -p "$work"
  rm -f build-fuzz/artifacts/$t-*
  build-fuzz/test/fuzz/${t}_fuzz -seed="$seed" -max_total_time="$seconds" -max_len=4096 -timeout=10 \
    -rss_limit_mb=2048 -dict=test/fuzz/${dict[$t]}.dict -artifact_prefix=build-fuzz/artifacts/$t- \
    "$work" test/fuzz/corpus/$t >"$log" 2>&1
  rc=$?
  runs=$(sed -nE 's/^Done ([0-9]+) runs in ([0-9]+) second.*/\1 runs in \2 s/p' "$log")
  if [ $rc -eq 0 ] && [ -n "$runs" ]; then
    echo "PASS: fuzz $t: $runs, no crash"
  else
    status=1
    echo "FAIL: fuzz $t (exit $rc): see $log"
    grep -E "ERROR: |runtime error|fuzz check failed|SUMMARY|Test unit written" "$log" | head -n 10
  fi
done
exit $status
