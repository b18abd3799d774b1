#!/usr/bin/env bash
# gguf_model_cli.sh — `tanuki model info|synth` driven as a user would:
# info on the llama.cpp-made fixtures matches their documented shape; synth
# writes models of every type and both architectures that info (and so the
# GGUF reader) reads back with the requested shape; bad input gives exit 2/1.
set -euo pipefail

BIN=${TANUKI_BIN:?}
FIX=${TK_FIXTURES:?}
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT

fail() { echo "FAIL: $*" >&2; exit 1; }

# ---- info on a fixture (text and JSON agree with the documented shape) ----
out=$("$BIN" model info "$FIX/models/tiny-llama-Q8_0.gguf")
grep -qx 'architecture: llama' <<<"$out" || fail "architecture line: $out"
grep -qx 'n_embd: 256' <<<"$out" || fail "n_embd line"
grep -qx 'n_layer: 2' <<<"$out" || fail "n_layer line"
grep -qx 'n_head_kv: 2' <<<"$out" || fail "n_head_kv line"
grep -qx 'vocab_size: 512' <<<"$out" || fail "vocab_size line"
grep -qx 'tensor_types: f32=5 q8_0=16' <<<"$out" || fail "tensor_types line: $(grep tensor_types <<<"$out")"
grep -qx 'rope_freq_base: 10000' <<<"$out" || fail "rope line"
grep -qx 'rms_norm_eps: 1e-05' <<<"$out" || fail "eps line"

js=$("$BIN" model info --json --ctx 100 "$FIX/models/tiny-llama-f32.gguf")
size=$(stat -c %s "$FIX/models/tiny-llama-f32.gguf")
[ "$(jq -r .file_size <<<"$js")" = "$size" ] || fail "file_size"
[ "$(jq -r .architecture <<<"$js")" = llama ] || fail "json architecture"
[ "$(jq -r .tensor_types.f32 <<<"$js")" = 21 ] || fail "json tensor types"
[ "$(jq -r .head_dim <<<"$js")" = 64 ] || fail "json head_dim"
# KV cache = 2 * n_layer * ctx * n_kv_heads * head_dim * bytes
[ "$(jq -r .kv_cache_f32_bytes <<<"$js")" = $((2 * 2 * 100 * 2 * 64 * 4)) ] || fail "kv f32"
[ "$(jq -r .kv_cache_f16_bytes <<<"$js")" = $((2 * 2 * 100 * 2 * 64 * 2)) ] || fail "kv f16"
w=$(jq -r .weights_bytes <<<"$js")
[ "$(jq -r .total_f16_bytes <<<"$js")" = $((w + 2 * 2 * 100 * 2 * 64 * 2)) ] || fail "total f16"
# parameters = sum of tensor elements: embd + output + norm + 2 layers
p=$((256 * 512 * 2 + 256 + 2 * (2 * 256 + 256 * 256 * 2 + 256 * 128 * 2 + 3 * 256 * 512)))
[ "$(jq -r .parameters <<<"$js")" = $p ] || fail "parameters $(jq -r .parameters <<<"$js") != $p"

# a vocab-only file: no tensors, hyperparameters still shown
js=$("$BIN" model info --json "$FIX/vocab/ggml-vocab-gpt-2.gguf")
[ "$(jq -r .tensors <<<"$js")" = 0 ] || fail "vocab tensors"
[ "$(jq -r .tokenizer_model <<<"$js")" = gpt2 ] || fail "vocab tokenizer model"

# strings from the file that are not one clean line or not UTF-8 keep both
# output forms intact
python3 - "$TMP/odd.gguf" <<'PY'
import struct, sys
def gstr(b): return struct.pack("<Q", len(b)) + b
out = b"GGUF" + struct.pack("<IQQ", 3, 0, 2)
out += gstr(b"general.name") + struct.pack("<I", 8) + gstr(b"two\nlines\xff")
out += gstr(b"tokenizer.chat_template") + struct.pack("<I", 8) + gstr(b"{{ x }}\r\nrest")
open(sys.argv[1], "wb").write(out)
PY
out=$("$BIN" model info "$TMP/odd.gguf")
[ "$(grep -c '' <<<"$out")" = 28 ] || fail "odd strings: line count $(grep -c '' <<<"$out")"
grep -qx 'chat_template_first_line: {{ x }}' <<<"$out" || fail "template first line"
js=$("$BIN" model info --json "$TMP/odd.gguf")
[ "$(jq -r .name <<<"$js")" = "two
lines?" ] || fail "odd name in JSON: $(jq -r .name <<<"$js")"
[ "$(jq -r .chat_template <<<"$js")" = true ] || fail "chat_template flag"

# ---- synth: every type, both architectures, read back ----
for arch in llama qwen2; do
  for t in f32 f16 bf16 q8_0 q4_0 q4_1 q5_0 q5_1; do
    f="$TMP/$arch-$t.gguf"
    "$BIN" model synth --arch "$arch" --type "$t" --n-embd 128 --n-layer 3 --n-head 4 \
      --n-head-kv 2 --n-ff 256 --ctx 512 --seed 7 \
      --vocab-from "$FIX/models/tiny-llama-f32.gguf" -o "$f" || fail "synth $arch $t"
    js=$("$BIN" model info --json "$f") || fail "info on synth $arch $t"
    n2d=$((2 + 3 * 7))                       # embd, output, 7 matrices per layer
    n1d=$((1 + 3 * 2)); [ $arch = qwen2 ] && n1d=$((n1d + 3 * 3))
    # f32 count, then the requested type's count (the same key for f32)
    if [ $t = f32 ]; then types="$((n2d + n1d)) $((n2d + n1d))"; else types="$n1d $n2d"; fi
    got=$(jq -r "[.architecture, .n_embd, .n_layer, .n_head_kv, .n_ff, .context_length,
                  .vocab_size, .tensor_types.f32, .tensor_types.$t] | map(tostring) | join(\" \")" <<<"$js")
    want="$arch 128 3 2 256 512 512 $types"
    [ "$got" = "$want" ] || fail "$arch $t: got '$got', want '$want'"
  done
done

# same seed, same bytes; other seed, other bytes
"$BIN" model synth --arch llama --type q4_0 --seed 7 -o "$TMP/a.gguf"
"$BIN" model synth --arch llama --type q4_0 --seed 7 -o "$TMP/b.gguf"
"$BIN" model synth --arch llama --type q4_0 --seed 8 -o "$TMP/c.gguf"
cmp -s "$TMP/a.gguf" "$TMP/b.gguf" || fail "synth is not deterministic"
cmp -s "$TMP/a.gguf" "$TMP/c.gguf" && fail "seed has no effect"
# built-in vocabulary
[ "$("$BIN" model info --json "$TMP/a.gguf" | jq -r .vocab_size)" = 259 ] || fail "builtin vocab"

# ---- errors ----
set +e
"$BIN" model synth --arch llama --type q4_k -o "$TMP/x.gguf" 2>/dev/null; [ $? = 2 ] || fail "bad type exit"
"$BIN" model synth --arch gpt --type f32 -o "$TMP/x.gguf" 2>/dev/null; [ $? = 2 ] || fail "bad arch exit"
"$BIN" model synth --arch llama --type q8_0 --n-embd 48 --n-head 3 -o "$TMP/x.gguf" 2>"$TMP/err"
[ $? = 1 ] || fail "bad shape exit"
grep -q "block size" "$TMP/err" || fail "bad shape message: $(cat "$TMP/err")"
[ -e "$TMP/x.gguf" ] && fail "failed synth left a file"
"$BIN" model info "$TMP/nope.gguf" 2>/dev/null; [ $? = 1 ] || fail "missing file exit"
head -c 1000 "$FIX/models/tiny-llama-f32.gguf" >"$TMP/trunc.gguf"
"$BIN" model info "$TMP/trunc.gguf" 2>"$TMP/err"; [ $? = 1 ] || fail "truncated exit"
grep -q "gguf:" "$TMP/err" || fail "truncated message: $(cat "$TMP/err")"
"$BIN" model bogus 2>/dev/null; [ $? = 2 ] || fail "unknown subcommand exit"
"$BIN" model info 2>/dev/null; [ $? = 2 ] || fail "missing argument exit"
set -e
"$BIN" model --help | grep -q "tanuki model info" || fail "help"
echo "gguf_model_cli: ok"
