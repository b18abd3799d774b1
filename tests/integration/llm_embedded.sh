#!/usr/bin/env bash
# llm_embedded.sh — `tanuki llm` on the embedded backend with the tiny llama
# fixture: a streamed reply, a JSON-schema-constrained reply that satisfies
# the schema, a grammar, the model list, and a clear error for a bad path.
set -euo pipefail
B="${TANUKI_BIN:?}"
M="${TK_FIXTURES:?}/models/tiny-llama-f32.gguf"
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
fail() { echo "FAIL: $*"; exit 1; }
E=(--backend embedded --model "$M")

"$B" llm chat "${E[@]}" -m "Once upon a time" --max-tokens 8 --temperature 0 --json >"$T/j"
[ "$(jq -r '.usage.completion_tokens' "$T/j")" = 8 ] || fail "8 tokens: $(cat "$T/j")"
[ "$(jq -r '.finish_reason' "$T/j")" = length ] || fail "finish length"

echo '{"type":"object","properties":{"ok":{"type":"boolean"},"n":{"enum":[1,2,3]}},"required":["ok","n"]}' >"$T/s.json"
for seed in 1 2; do
  "$B" llm chat "${E[@]}" -m "json please" --json-schema "$T/s.json" --seed $seed --temperature 1 \
    --max-tokens 64 --json >"$T/j"
  jq -e '.finish_reason == "stop"' "$T/j" >/dev/null || fail "schema finish: $(cat "$T/j")"
  jq -r .text "$T/j" | jq -e '(.ok | type) == "boolean" and (.n | IN(1, 2, 3)) and (keys | length) == 2' >/dev/null \
    || fail "reply does not fit the schema: $(jq -r .text "$T/j")"
done

printf 'root ::= "yes" | "no"\n' >"$T/g.gbnf"
out=$("$B" llm chat "${E[@]}" -m "yes or no?" --grammar "$T/g.gbnf" --temperature 1 2>/dev/null)
[ "$out" = yes ] || [ "$out" = no ] || fail "grammar reply: $out"

[ "$("$B" llm models "${E[@]}")" != "" ] || fail "models"
if "$B" llm chat --backend embedded --model "$T/none.gguf" -m x 2>"$T/err"; then fail "bad path accepted"; fi
grep -q "cannot set up the LLM backend.*none.gguf" "$T/err" || fail "bad path: $(cat "$T/err")"
echo "llm_embedded: ok"
