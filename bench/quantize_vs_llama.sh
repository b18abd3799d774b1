#!/usr/bin/env bash
# quantize_vs_llama.sh — wall time of `tanuki model quantize` and of
# llama.cpp's llama-quantize on the same f16 model, per scheme and thread
# count, and whether the two files are byte-identical.
#
#   bench/quantize_vs_llama.sh TANUKI_BIN [LLAMA_QUANTIZE] [SCHEMES] [THREADS]
#
# The model is synthesized once (qwen2, Qwen2.5-Coder-1.5B's layer shapes:
# n_embd 1536, n_ff 8960, 12 heads / 2 KV heads, but 4 layers and the
# built-in 259-token vocabulary: ~187 M parameters, 375 MB in f16). Prints
# numbers only; never fails on time.
set -euo pipefail
T="${1:?tanuki binary}"
LQ="${2:-/tmp/llama.cpp/build/bin/llama-quantize}"
SCHEMES="${3:-Q4_K_M Q5_K_M Q6_K Q8_0}"
THREADS="${4:-1 2}"
TMP=$(mktemp -d "${TMPDIR:-/tmp}/tk-qbench.XXXXXX")
trap 'rm -rf "$TMP"' EXIT
"$T" model synth --arch qwen2 --type f16 --n-embd 1536 --n-layer 4 --n-head 12 --n-head-kv 2 \
	--n-ff 8960 --ctx 4096 -o "$TMP/m.gguf" >/dev/null
echo "model: $(stat -c %s "$TMP/m.gguf") bytes f16"
secs() { local s e; s=$(date +%s.%N); "$@" >/dev/null 2>&1; e=$(date +%s.%N); echo "$e - $s" | bc; }
for s in $SCHEMES; do
	for th in $THREADS; do
		tt=$(secs "$T" model quantize -t "$th" "$TMP/m.gguf" "$TMP/tk.gguf" "$s")
		if [ -x "$LQ" ]; then
			lt=$(printf '%.2f' "$(secs "$LQ" "$TMP/m.gguf" "$TMP/ll.gguf" "$s" "$th")")
			same=$(cmp -s "$TMP/tk.gguf" "$TMP/ll.gguf" && echo identical || echo DIFFERENT)
		else
			lt=-; same="(no llama-quantize)"
		fi
		printf '%-7s threads %s  tanuki %6.2f s  llama-quantize %6s s  %s\n' "$s" "$th" "$tt" \
			"$lt" "$same"
	done
done
