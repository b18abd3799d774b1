#!/usr/bin/env bash
# gguf_fuzz_short.sh — a short libFuzzer run (~25 s) of tests/fuzz/fuzz_gguf.c
# over a copy of its seed corpus; fails on any crash, leak or sanitizer report.
#
# Needs clang and libFuzzer (Debian: clang + libclang-rt-14-dev, both in
# scripts/install-deps.sh). Without them this test FAILS, on purpose: set
# TANUKI_NO_FUZZ=1 to skip it knowingly. Longer runs: docs/engine.md.
set -euo pipefail

if [ "${TANUKI_NO_FUZZ:-0}" = 1 ]; then
  echo "gguf_fuzz_short: skipped because TANUKI_NO_FUZZ=1"
  exit 0
fi

SRC=${TK_SOURCE_DIR:?}
SECONDS_TO_RUN=${TANUKI_FUZZ_SECONDS:-25}
CC_FUZZ=${TANUKI_FUZZ_CC:-clang}

if ! command -v "$CC_FUZZ" >/dev/null; then
  echo "gguf_fuzz_short: FAIL: $CC_FUZZ not found; install clang and libclang-rt-14-dev" \
       "(scripts/install-deps.sh) or set TANUKI_NO_FUZZ=1 to skip" >&2
  exit 1
fi

TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT

# Is libFuzzer usable? (a missing runtime shows up as a link error)
printf '%s\n' '#include <stdint.h>' '#include <stddef.h>' \
  'int LLVMFuzzerTestOneInput(const uint8_t *d, size_t n);' \
  'int LLVMFuzzerTestOneInput(const uint8_t *d, size_t n) { (void)d; (void)n; return 0; }' \
  >"$TMP/probe.c"
if ! "$CC_FUZZ" -fsanitize=fuzzer "$TMP/probe.c" -o "$TMP/probe" 2>"$TMP/probe.err"; then
  echo "gguf_fuzz_short: FAIL: $CC_FUZZ cannot link libFuzzer:" >&2
  cat "$TMP/probe.err" >&2
  echo "install libclang-rt-14-dev (scripts/install-deps.sh) or set TANUKI_NO_FUZZ=1" >&2
  exit 1
fi

CC="$CC_FUZZ" cmake -S "$SRC" -B "$TMP/build" -DTANUKI_FUZZ=ON -DCMAKE_BUILD_TYPE=Debug \
  >"$TMP/configure.log" 2>&1 || { cat "$TMP/configure.log" >&2; exit 1; }
cmake --build "$TMP/build" --target fuzz_gguf -j2 >"$TMP/build.log" 2>&1 ||
  { cat "$TMP/build.log" >&2; exit 1; }

mkdir "$TMP/corpus"
cp "$SRC"/tests/fuzz/corpus/gguf/* "$TMP/corpus/"
cd "$TMP"
# libFuzzer exits non-zero on a crash, a sanitizer report, a leak or a
# timeout; crash-* reproducers are printed below when that happens.
if ! "$TMP/build/tests/fuzz/fuzz_gguf" -max_total_time="$SECONDS_TO_RUN" -max_len=8192 \
     -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 "$TMP/corpus" >"$TMP/fuzz.log" 2>&1; then
  tail -n 60 "$TMP/fuzz.log" >&2
  for f in "$TMP"/crash-* "$TMP"/leak-* "$TMP"/timeout-* "$TMP"/oom-*; do
    [ -e "$f" ] && { echo "reproducer $f:" >&2; od -A d -t x1 "$f" | head -20 >&2; }
  done
  echo "gguf_fuzz_short: FAIL: the fuzzer found a problem" >&2
  exit 1
fi
grep -E "stat::number_of_executed_units|Done" "$TMP/fuzz.log" | tail -n 2
echo "gguf_fuzz_short: ok (${SECONDS_TO_RUN}s, corpus $(ls "$TMP/corpus" | wc -l) files after run)"
