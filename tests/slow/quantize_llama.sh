#!/usr/bin/env bash
# quantize_llama.sh — `tanuki model quantize` against llama.cpp's
# llama-quantize on the same inputs: every scheme, on the f32 fixtures and on
# synthetic models whose shapes exercise the per-tensor rules (9 to 17
# layers, GQA 1/4/8, rows of 320 that fall back to 32-element types, tied
# and untied output), must give byte-identical files.
#
# Opt-in (tests/slow, -DTANUKI_SLOW_TESTS=ON): needs llama-quantize, from
# $LLAMA_QUANTIZE or /tmp/llama.cpp/build/bin/llama-quantize (built from
# llama.cpp's public source); without it the test says so and passes.
set -euo pipefail
BIN=${TANUKI_BIN:?}
FIX=${TK_FIXTURES:?}
LQ=${LLAMA_QUANTIZE:-/tmp/llama.cpp/build/bin/llama-quantize}
if [ ! -x "$LQ" ]; then
	echo "SKIP: llama-quantize not found (set LLAMA_QUANTIZE)"
	exit 0
fi
TMP=$(mktemp -d "${TMPDIR:-/tmp}/tk-quantize.XXXXXX")
trap 'rm -rf "$TMP"' EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }

cp "$FIX/models/tiny-llama-f32.gguf" "$TMP/fix-llama.gguf"
cp "$FIX/models/tiny-qwen2-f32.gguf" "$TMP/fix-qwen2.gguf"
"$BIN" model synth --arch llama --type f16 --n-embd 320 --n-layer 12 --n-head 8 --n-head-kv 2 \
	--n-ff 768 --ctx 64 --seed 3 -o "$TMP/syn-odd.gguf"
"$BIN" model synth --arch qwen2 --type f32 --n-embd 256 --n-layer 17 --n-head 8 --n-head-kv 1 \
	--n-ff 512 --ctx 64 --seed 4 -o "$TMP/syn-gqa8.gguf"
"$BIN" model synth --arch llama --type bf16 --n-embd 256 --n-layer 9 --n-head 8 --n-head-kv 8 \
	--n-ff 512 --ctx 64 --seed 5 -o "$TMP/syn-mha.gguf"

n=0
for m in fix-llama fix-qwen2 syn-odd syn-gqa8 syn-mha; do
	for s in Q4_K_M Q5_K_M Q6_K Q2_K Q3_K_S Q3_K_M Q3_K_L Q4_K_S Q5_K_S IQ4_NL Q8_0 Q4_0 Q4_1 \
		 Q5_0 Q5_1 F16 BF16; do
		"$LQ" "$TMP/$m.gguf" "$TMP/ll.gguf" "$s" 2 >"$TMP/lq.log" 2>&1 ||
			fail "llama-quantize $m $s: $(tail -3 "$TMP/lq.log")"
		"$BIN" model quantize -t 2 "$TMP/$m.gguf" "$TMP/tk.gguf" "$s" >/dev/null ||
			fail "tanuki model quantize $m $s"
		cmp -s "$TMP/ll.gguf" "$TMP/tk.gguf" ||
			fail "$m $s: $(cmp "$TMP/ll.gguf" "$TMP/tk.gguf" | head -1)"
		n=$((n + 1))
	done
	echo "$m: 17 schemes byte-identical to llama-quantize"
done
echo "quantize_llama: $n files identical"
