#!/usr/bin/env bash
# The whole test suite: installs dependencies, builds the normal (debug,
# gcc) and the AddressSanitizer/UBSan (clang) configurations, runs every
# registered test in both, compiles the release configuration (gcc -O2,
# whose optimiser finds warnings the others miss), and ends with one
# summary line "N passed, N failed". Warnings are errors in all three, so
# gcc and clang are both held to -Werror.
#   scripts/test.sh            everything
#   TANUKI_TEST_KINDS=debug scripts/test.sh   just one configuration's tests
#   TANUKI_CHECK_RELEASE=0 scripts/test.sh    skip the release compile
#   TANUKI_SLOW_TESTS=1 scripts/test.sh       also the opt-in slow tests
set -uo pipefail
cd "$(dirname "$0")/.."

if [ "${TANUKI_SKIP_DEPS:-0}" != 1 ]; then
  bash scripts/install-deps.sh || { echo "install-deps failed"; echo "0 passed, 1 failed"; exit 1; }
fi

slow=OFF
if [ "${TANUKI_SLOW_TESTS:-0}" = 1 ]; then slow=ON; fi
jobs=$(nproc)
passed=0; failed=0
for kind in ${TANUKI_TEST_KINDS:-debug asan}; do
  echo "=== $kind build ==="
  cc=gcc
  if [ "$kind" = asan ]; then cc=clang; fi
  if ! dir=$(CC=$cc bash scripts/build.sh "$kind" -DTANUKI_SLOW_TESTS=$slow | tail -n 1); then
    echo "build ($kind) failed"
    failed=$((failed + 1))
    continue
  fi
  echo "=== $kind tests ==="
  log="$dir/ctest.log"
  ASAN_OPTIONS="detect_leaks=1:abort_on_error=0" \
  UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1" \
    ctest --test-dir "$dir" -j "$jobs" --output-on-failure 2>&1 | tee "$log"
  # ctest: "NN% tests passed, F tests failed out of T"
  line=$(grep -E 'tests passed, [0-9]+ tests? failed out of [0-9]+' "$log" | tail -n 1)
  if [ -z "$line" ]; then
    echo "ctest ($kind) printed no summary"
    failed=$((failed + 1))
    continue
  fi
  f=$(echo "$line" | sed -E 's/.* ([0-9]+) tests? failed out of ([0-9]+).*/\1/')
  t=$(echo "$line" | sed -E 's/.* failed out of ([0-9]+).*/\1/')
  passed=$((passed + t - f)); failed=$((failed + f))
done
if [ "${TANUKI_CHECK_RELEASE:-1}" = 1 ]; then
  echo "=== release build (compile check) ==="
  if CC=gcc bash scripts/build.sh release >/dev/null; then
    passed=$((passed + 1)); echo "release build: ok"
  else
    failed=$((failed + 1)); echo "release build: FAILED"
  fi
fi
echo "${passed} passed, ${failed} failed"
[ "$failed" -eq 0 ]
