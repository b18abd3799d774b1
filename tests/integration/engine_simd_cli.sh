#!/usr/bin/env bash
# engine_simd_cli — run-time kernel dispatch as a user sees it: `tanuki
# version --verbose` names the CPU features and the kernel variant, the
# TANUKI_NO_AVX512 / TANUKI_NO_AVX2 overrides lower it (and are not taken for
# unknown settings), and a model gives the same greedy text with every
# variant this CPU runs.
set -euo pipefail
T="${TANUKI_BIN:?TANUKI_BIN not set}"
F="${TK_FIXTURES:?TK_FIXTURES not set}"
fail() { echo "FAIL: $*" >&2; exit 1; }

out=$("$T" version --verbose)
grep -Eq '^cpu features: [a-z0-9_ ]+$' <<<"$out" || fail "no cpu features line: $out"
best=$(sed -n 's/^kernels: //p' <<<"$out")
case "$best" in ref|avx2|avx512) ;; *) fail "kernels line: $out" ;; esac
"$T" version --verbose --json | python3 -c '
import json, sys
d = json.load(sys.stdin)
assert d["kernels"] in ("ref", "avx2", "avx512"), d
assert isinstance(d["cpu_features"], str) and d["cpu_features"], d'
# plain version output is unchanged by the new option
[ "$("$T" version | wc -l)" -eq 1 ] || fail "plain version prints more than one line"

k=$(TANUKI_NO_AVX2=1 "$T" version --verbose | sed -n 's/^kernels: //p')
[ "$k" = ref ] || fail "TANUKI_NO_AVX2=1 gives kernels '$k'"
k=$(TANUKI_NO_AVX512=1 "$T" version --verbose | sed -n 's/^kernels: //p')
[ "$k" != avx512 ] || fail "TANUKI_NO_AVX512=1 still gives avx512"
[ "$best" = ref ] || [ "$k" = avx2 ] || fail "TANUKI_NO_AVX512=1 gives '$k' on a '$best' CPU"
k=$(TANUKI_NO_AVX512=0 "$T" version --verbose | sed -n 's/^kernels: //p')
[ "$k" = "$best" ] || fail "TANUKI_NO_AVX512=0 must not count as set ('$k')"

# every variant decodes the fixture model to the same greedy text (the
# overrides pass the config loader: TANUKI_NO_* are tooling variables)
model="$F/models/tiny-llama-Q6_K.gguf" # Q6_K kernels are bit-exact: same text for sure
[ -f "$model" ] || fail "missing fixture $model"
gen() { env "$@" "$T" generate --model "$model" -p "Once upon a time" -n 12 --temp 0 2>/dev/null; }
a=$(gen) || fail "generate failed (default kernels)"
b=$(gen TANUKI_NO_AVX512=1) || fail "generate failed (TANUKI_NO_AVX512=1)"
c=$(gen TANUKI_NO_AVX2=1) || fail "generate failed (TANUKI_NO_AVX2=1)"
[ -n "$a" ] || fail "empty generation"
[ "$a" = "$b" ] || fail "avx2 text differs: '$a' vs '$b'"
[ "$a" = "$c" ] || fail "reference text differs: '$a' vs '$c'"
echo ok
