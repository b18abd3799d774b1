#!/usr/bin/env bash
# tokenizer_cli — `tanuki tokenize` as a user meets it: ids on one line that
# match llama.cpp's vectors, --json pieces that put the text back together,
# --file, --no-bos, --parse-special, and the exit codes (1 runtime, 2 usage).
set -euo pipefail
T="${TANUKI_BIN:?TANUKI_BIN not set}"
F="${TK_FIXTURES:?TK_FIXTURES not set}"
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }
gpt2="$F/vocab/ggml-vocab-gpt-2.gguf"
spm="$F/vocab/ggml-vocab-llama-spm.gguf"

# "Hello world" under GPT-2 is vector 11 (line 12 of the .out) of llama.cpp's list (no BOS: the
# vocabulary does not add one).
want=$(sed -n 12p "$F/vocab/ggml-vocab-gpt-2.gguf.out" | sed 's/^ //')
got=$("$T" tokenize --model "$gpt2" --text "Hello world")
[ "$got" = "$want" ] || fail "gpt-2 'Hello world': want '$want' got '$got'"

# SPM adds BOS unless --no-bos; the rest equals llama.cpp's vector.
want=$(sed -n 12p "$F/vocab/ggml-vocab-llama-spm.gguf.out" | sed 's/^ //')
got=$("$T" tokenize --model "$spm" --text "Hello world")
[ "$got" = "1 $want" ] || fail "llama-spm with BOS: want '1 $want' got '$got'"
got=$("$T" tokenize --model "$spm" --text "Hello world" --no-bos)
[ "$got" = "$want" ] || fail "llama-spm --no-bos: want '$want' got '$got'"

# --json: the pieces of a byte-level BPE put any text back together, and
# there is one piece per id.
text=$'def f(x):\n\treturn x*2  # 日本語 🦙'
printf '%s' "$text" > "$tmp/in.txt"
"$T" tokenize --model "$gpt2" --file "$tmp/in.txt" --json > "$tmp/out.json"
python3 - "$tmp/out.json" "$tmp/in.txt" <<'PY' || fail "--json pieces"
import json, sys
d = json.load(open(sys.argv[1]))
text = open(sys.argv[2], encoding="utf-8").read()
assert len(d["ids"]) == len(d["pieces"]) > 5, d
# emoji bytes are split across tokens: those pieces show U+FFFD, the rest is exact
joined = "".join(d["pieces"])
assert joined.startswith("def f(x):\n\treturn x*2  #"), joined
assert all(isinstance(i, int) and 0 <= i < 50257 for i in d["ids"])
PY
# --file and --text give the same ids.
a=$("$T" tokenize --model "$gpt2" --file "$tmp/in.txt")
b=$("$T" tokenize --model "$gpt2" --text "$text")
[ "$a" = "$b" ] || fail "--file and --text differ"
c=$("$T" tokenize --model "$gpt2" --file - < "$tmp/in.txt")
[ "$a" = "$c" ] || fail "--file - (stdin) differs"

# --parse-special: the text "<s>" becomes id 1 only when asked.
got=$("$T" tokenize --model "$spm" --text "<s>" --no-bos --parse-special)
[ "$got" = "1" ] || fail "parse-special <s>: got '$got'"
got=$("$T" tokenize --model "$spm" --text "<s>" --no-bos)
[ "$got" != "1" ] || fail "without --parse-special <s> must stay text"

# Exit codes.
set +e
"$T" tokenize --text x >/dev/null 2>&1; [ $? -eq 2 ] || fail "no --model: want 2"
"$T" tokenize --model "$gpt2" >/dev/null 2>&1; [ $? -eq 2 ] || fail "no text: want 2"
"$T" tokenize --model "$gpt2" --text a --file b >/dev/null 2>&1; [ $? -eq 2 ] || fail "both: want 2"
"$T" tokenize --model "$tmp/none.gguf" --text a >/dev/null 2>"$tmp/err"; [ $? -eq 1 ] || fail "missing model: want 1"
grep -q "none.gguf" "$tmp/err" || fail "error names the file"
"$T" tokenize --model "$gpt2" --file "$tmp/none.txt" >/dev/null 2>&1; [ $? -eq 1 ] || fail "missing file: want 1"
printf 'not a gguf' > "$tmp/bad.gguf"
"$T" tokenize --model "$tmp/bad.gguf" --text a >/dev/null 2>&1; [ $? -eq 1 ] || fail "bad model: want 1"
set -e
echo "tokenizer_cli: ok"
