#!/usr/bin/env bash
# Runs every test: engine unit tests (ctest), the same under ASan + UBSan,
# the engine's fuzz targets for a bounded time, then the PostgreSQL tests.
# Installs what it needs first. Run as root on Debian 12.
set -uo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh || exit 1
passed=0; failed=0
# Adds ctest's own counts ("N% tests passed, F tests failed out of T").
add_ctest_counts() {
  local line t f
  line=$(grep -E "tests failed out of" "$1" | tail -n 1)
  if [ -z "$line" ]; then failed=$((failed+1)); return; fi
  f=$(echo "$line" | sed -E 's/.* ([0-9]+) tests failed out of ([0-9]+).*/\1/')
  t=$(echo "$line" | sed -E 's/.* ([0-9]+) tests failed out of ([0-9]+).*/\2/')
  passed=$((passed + t - f)); failed=$((failed + f))
  [ "$2" -eq 0 ] || [ "$f" -gt 0 ] || failed=$((failed+1))
}

echo "== engine unit tests (ctest)"
cmake -S . -B build -DCMAKE_BUILD_TYPE=Release >/dev/null && cmake --build build -j2 >/dev/null || exit 1
(cd build && ctest --output-on-failure) > build/ctest.log 2>&1
rc=$?
grep -E "tests passed|tests failed|Failed|\*\*\*" build/ctest.log
add_ctest_counts build/ctest.log "$rc"

echo "== engine unit tests under AddressSanitizer + UBSan (ctest)"
cmake -S . -B build-asan -DVELOSTREAM_SANITIZE=ON >/dev/null && cmake --build build-asan -j2 --target engine_tests >/dev/null || exit 1
(cd build-asan && ctest --output-on-failure) > build-asan/ctest.log 2>&1
rc=$?
grep -E "tests passed|tests failed|Failed|\*\*\*|runtime error|ERROR: AddressSanitizer" build-asan/ctest.log
add_ctest_counts build-asan/ctest.log "$rc"

echo "== fuzzing: csv and json decoders, batch codec, state loader (libFuzzer, ${FUZZ_SECONDS:-20} s each)"
bash test/fuzz/run.sh > build/fuzz.log 2>&1
rc=$?
cat build/fuzz.log
ok=$(grep -c "^PASS" build/fuzz.log || true)
bad=$(grep -c "^FAIL" build/fuzz.log || true)
passed=$((passed + ok)); failed=$((failed + bad))
[ $rc -eq 0 ] || [ "$bad" -gt 0 ] || failed=$((failed + 1))

echo "== build and install the extension"
make -s -j2 >/dev/null && make -s install >/dev/null || { echo "build failed"; exit 1; }

echo "== pg_regress"
bash test/regress/run.sh > build/regress.log 2>&1
rc=$?
grep -E "^(ok|not ok|test |     )|tests (passed|failed)|^ *[0-9]+ of [0-9]+ tests" build/regress.log || true
if [ $rc -ne 0 ]; then cat build/regress.log; fi
ok=$(grep -cE "\.\.\. ok|^ok " build/regress.log || true)
bad=$(grep -cE "\.\.\. FAILED|^not ok " build/regress.log || true)
passed=$((passed + ok)); failed=$((failed + bad))
[ $rc -eq 0 ] || [ "$bad" -gt 0 ] || failed=$((failed + 1))

for t in test/integration/*.sh; do
  echo "== integration: $(basename "$t")"
  bash "$t" 2>&1 | tee build/"$(basename "$t" .sh)".log
  rc=${PIPESTATUS[0]}
  ok=$(grep -c "^PASS" build/"$(basename "$t" .sh)".log || true)
  bad=$(grep -c "^FAIL" build/"$(basename "$t" .sh)".log || true)
  passed=$((passed + ok)); failed=$((failed + bad))
  [ $rc -eq 0 ] || [ "$bad" -gt 0 ] || failed=$((failed + 1))
done

echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
