#!/usr/bin/env bash
# llm_grammar_trie.sh — the embedded backend's constrained decoding gives
# the same replies whether the fallback masks come from the vocabulary trie
# (the default) or from the per-token check (TANUKI_NO_GRAMMAR_TRIE=1): the
# tiny llama fixture at temperature 1, several seeds, under an agents-like
# turn schema, an any-JSON schema and a GBNF grammar with multi-byte
# characters. A random model disagrees with the grammar at most steps, so
# the mask is used often; any difference between the masks would change
# the sampled tokens. (tests/unit/test_llm_trie.c compares the masks
# themselves; this checks how the backend uses them.)
set -euo pipefail
B="${TANUKI_BIN:?}"
M="${TK_FIXTURES:?}/models/tiny-llama-f32.gguf"
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
fail() { echo "FAIL: $*"; exit 1; }

cat >"$T/turn.json" <<'JSON'
{"type": "object", "properties": {"thought": {"type": "string"},
 "tool": {"enum": ["list_files", "read_file", "write_file", "run", "finish"]},
 "args": {"type": "object", "properties": {"path": {"type": "string"},
   "content": {"type": "string"}, "command": {"type": "string"}}}},
 "required": ["thought", "tool", "args"]}
JSON
printf '{}' >"$T/any.json"
cat >"$T/words.gbnf" <<'G'
root ::= (word " ")* word "."
word ::= [a-z]+ | "été" | "日本" | [α-ω]+
G

n=0
for c in "--json-schema $T/turn.json" "--json-schema $T/any.json" "--grammar $T/words.gbnf"; do
  for seed in 1 2 3 4; do
    # shellcheck disable=SC2086
    "$B" llm chat --backend embedded --model "$M" -m "answer" --max-tokens 48 \
      --temperature 1 --seed $seed --json $c >"$T/a.json" 2>"$T/err" ||
      fail "trie run ($c, seed $seed): $(cat "$T/err")"
    # shellcheck disable=SC2086
    TANUKI_NO_GRAMMAR_TRIE=1 "$B" llm chat --backend embedded --model "$M" -m "answer" \
      --max-tokens 48 --temperature 1 --seed $seed --json $c >"$T/b.json" 2>"$T/err" ||
      fail "per-token run ($c, seed $seed): $(cat "$T/err")"
    a=$(jq -c '{text, finish_reason, n: .usage.completion_tokens}' "$T/a.json")
    b=$(jq -c '{text, finish_reason, n: .usage.completion_tokens}' "$T/b.json")
    [ "$a" = "$b" ] || fail "$c seed $seed: trie $a, per-token $b"
    [ "$(jq -r .usage.completion_tokens "$T/a.json")" -gt 0 ] || fail "$c seed $seed: no tokens"
    n=$((n + 1))
  done
done
echo "$n constrained replies identical with trie and per-token masks"
