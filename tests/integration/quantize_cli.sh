#!/usr/bin/env bash
# quantize_cli.sh — `tanuki model quantize` as a user runs it: quantizing the
# f32 fixture models must reproduce llama-quantize's files (the fixtures made
# from them: tests/fixtures/README.md) byte for byte, for every scheme there
# is a fixture of; the per-tensor choices show in `model info`; the quantized
# file runs (`tanuki logits`); bad input gives exit 2 (usage) or 1 (failure)
# and leaves no output file.
set -euo pipefail

BIN=${TANUKI_BIN:?}
FIX=${TK_FIXTURES:?}
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT

fail() { echo "FAIL: $*" >&2; exit 1; }

# ---- byte-equal to llama-quantize's output ----
for pair in llama:Q4_K_M llama:Q5_K_M llama:Q6_K llama:Q8_0 llama:Q4_0 llama:Q5_1 \
	    llama:F16 qwen2:Q4_K_M qwen2:Q8_0; do
	arch=${pair%%:*} scheme=${pair#*:}
	out="$TMP/$arch-$scheme.gguf"
	msg=$("$BIN" model quantize -t 2 "$FIX/models/tiny-$arch-f32.gguf" "$out" "$scheme") ||
		fail "quantize $arch $scheme"
	cmp -s "$out" "$FIX/models/tiny-$arch-$scheme.gguf" ||
		fail "$arch $scheme differs from llama-quantize's file: $(cmp "$out" "$FIX/models/tiny-$arch-$scheme.gguf" | head -1)"
	grep -q "^$out: $scheme, $(stat -c %s "$out") bytes, tensors:" <<<"$msg" || fail "summary: $msg"
done
echo "9 schemes: byte-equal to llama-quantize"

# ---- the Q4_K_M mix as model info reports it ----
out=$("$BIN" model info "$TMP/llama-Q4_K_M.gguf")
grep -qx 'tensor_types: f32=5 q4_K=13 q6_K=3' <<<"$out" || fail "Q4_K_M types: $(grep tensor_types <<<"$out")"
# --pure: every matrix in Q4_K, output.weight included
"$BIN" model quantize --pure "$FIX/models/tiny-llama-f32.gguf" "$TMP/pure.gguf" q4_k_m >/dev/null
out=$("$BIN" model info "$TMP/pure.gguf")
grep -qx 'tensor_types: f32=5 q4_K=16' <<<"$out" || fail "pure types: $(grep tensor_types <<<"$out")"

# ---- the types without a fixture: written, read back, runnable ----
for scheme in Q2_K Q3_K_M IQ4_NL Q5_K_S; do
	"$BIN" model quantize "$FIX/models/tiny-llama-f32.gguf" "$TMP/$scheme.gguf" "$scheme" >/dev/null ||
		fail "quantize $scheme"
	"$BIN" logits --model "$TMP/$scheme.gguf" --tokens 1,50,60 --json >"$TMP/logits.json" ||
		fail "logits on $scheme"
	# three positions of 512 finite logits (non-finite ones print as null)
	[ "$(jq '[.logits[] | length] == [512, 512, 512] and ([.logits[][] | select(. == null)] | length == 0)' \
		"$TMP/logits.json")" = true ] || fail "$scheme logits not 3 x 512 finite numbers"
done

# ---- a model with rows that do not split into 256-blocks, and GQA 4 ----
"$BIN" model synth --arch llama --type f16 --n-embd 320 --n-layer 9 --n-head 8 --n-head-kv 2 \
	--n-ff 768 --ctx 64 -o "$TMP/odd.gguf"
"$BIN" model quantize "$TMP/odd.gguf" "$TMP/odd-q4km.gguf" Q4_K_M >/dev/null || fail "odd rows"
js=$("$BIN" model info --json "$TMP/odd-q4km.gguf")
# rows of 320 fall back to Q5_0 (Q6_K rows to Q8_0); ffn_down's 768 rows are 256-multiples
[ "$(jq -r '.tensor_types.q5_0 // 0' <<<"$js")" -gt 0 ] || fail "no q5_0 fallback: $js"
[ "$(jq -r '.tensor_types.q8_0 // 0' <<<"$js")" -gt 0 ] || fail "no q8_0 fallback: $js"

# ---- errors ----
rc=0; "$BIN" model quantize "$FIX/models/tiny-llama-f32.gguf" "$TMP/x.gguf" Q9_K 2>"$TMP/err" || rc=$?
[ $rc = 2 ] || fail "unknown scheme: exit $rc"
grep -q "Q4_K_M" "$TMP/err" || fail "unknown scheme message lists the schemes"
rc=0; "$BIN" model quantize "$FIX/models/tiny-llama-f32.gguf" "$TMP/x.gguf" 2>/dev/null || rc=$?
[ $rc = 2 ] || fail "missing scheme: exit $rc"
rc=0; "$BIN" model quantize "$FIX/models/tiny-llama-Q4_0.gguf" "$TMP/x.gguf" Q4_K_M 2>"$TMP/err" || rc=$?
[ $rc = 1 ] || fail "requantize: exit $rc"
grep -q "requantizing" "$TMP/err" || fail "requantize message: $(cat "$TMP/err")"
rc=0; "$BIN" model quantize "$TMP/nope.gguf" "$TMP/x.gguf" Q4_K_M 2>/dev/null || rc=$?
[ $rc = 1 ] || fail "missing input: exit $rc"
[ ! -e "$TMP/x.gguf" ] && [ ! -e "$TMP/x.gguf.tmp" ] || fail "an output file was left behind"
echo "quantize_cli: ok"
