#!/usr/bin/env bash
# generate_constrained.sh — `tanuki generate --json-schema/--grammar` on the
# tiny llama fixture (through the embedded LLM backend): the output parses
# as JSON and fits the schema, a grammar's output is one of its strings,
# --json keeps generate's keys, and bad combinations fail with a message.
set -euo pipefail
B="${TANUKI_BIN:?}"
M="${TK_FIXTURES:?}/models/tiny-llama-f32.gguf"
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
fail() { echo "FAIL: $*"; exit 1; }

# schema: an object with a boolean, an integer and an enum; no extra keys
cat >"$T/s.json" <<'JSON'
{"type":"object","properties":{"ok":{"type":"boolean"},"n":{"type":"integer"},
 "c":{"enum":["red","green"]}},"required":["ok","n","c"],"additionalProperties":false}
JSON
for seed in 1 2 3; do
  "$B" generate --model "$M" -p "json please" --json-schema "$T/s.json" --seed $seed \
    --temp 1 -n 96 >"$T/out" 2>"$T/err" || fail "schema run $seed: $(cat "$T/err")"
  python3 - "$T/out" <<'PY' || fail "seed $seed: output does not fit the schema: $(cat "$T/out")"
import json, sys
v = json.loads(open(sys.argv[1]).read())
assert isinstance(v, dict) and set(v) == {"ok", "n", "c"}, v
assert isinstance(v["ok"], bool), v
assert isinstance(v["n"], int) and not isinstance(v["n"], bool), v
assert v["c"] in ("red", "green"), v
PY
done

# --json keeps generate's keys; the text is the constrained reply
"$B" generate --model "$M" --chat "json please" --json-schema "$T/s.json" --temp 0 -n 96 --json >"$T/j"
jq -e 'has("tokens") and has("text") and has("finish_reason") and (.usage | has("prompt_tokens") and has("completion_tokens")) and (.timings | has("prompt_ms") and has("decode_ms") and has("decode_tokens_per_s"))' "$T/j" >/dev/null \
  || fail "--json keys: $(cat "$T/j")"
jq -r .text "$T/j" | jq -e '.ok | type == "boolean"' >/dev/null || fail "--json text: $(cat "$T/j")"
[ "$(jq -r .finish_reason "$T/j")" = stop ] || fail "schema run ends at the grammar's end: $(cat "$T/j")"
[ "$(jq -r .usage.completion_tokens "$T/j")" -gt 0 ] || fail "completion tokens counted"

# grammar: the reply is exactly one of the alternatives
printf 'root ::= "yes" | "no" | "maybe" [0-9]\n' >"$T/g.gbnf"
for seed in 1 2 3 4; do
  out=$("$B" generate --model "$M" -p "answer" --grammar "$T/g.gbnf" --seed $seed -n 8)
  [[ "$out" =~ ^(yes|no|maybe[0-9])$ ]] || fail "grammar seed $seed: '$out'"
done

# bad combinations
expect_fail() { # CODE MESSAGE-REGEX ARGS...
  local want=$1 re=$2; shift 2
  local rc=0
  "$B" generate "$@" >/dev/null 2>"$T/err" || rc=$?
  [ "$rc" = "$want" ] || fail "'$*' exited $rc, want $want: $(cat "$T/err")"
  grep -Eq -e "$re" "$T/err" || fail "'$*' message: $(cat "$T/err")"
}
expect_fail 2 "exclusive" --model "$M" -p x --json-schema "$T/s.json" --grammar "$T/g.gbnf"
expect_fail 2 "needs --base-url" --model m -p x --backend openai
expect_fail 2 "must be embedded, ollama or openai" --model m -p x --backend nope --base-url http://127.0.0.1:1
expect_fail 1 "cannot read --json-schema: $T/missing.json" --model "$M" -p x --json-schema "$T/missing.json"
expect_fail 2 "--tokens is not available" --model "$M" --tokens "1 2" --grammar "$T/g.gbnf"
expect_fail 2 "--set/--config only apply" --model "$M" -p x --set llm.max_retries=1
echo '{"type": ' >"$T/bad.json"
expect_fail 1 "json_schema" --model "$M" -p x --json-schema "$T/bad.json"
echo "generate_constrained: ok"
