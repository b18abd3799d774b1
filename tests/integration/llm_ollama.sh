#!/usr/bin/env bash
# llm_ollama.sh — the ollama backend (src/llm/llm_ollama.c) through
# `tanuki llm`, against the fake server: NDJSON streaming, done line counts,
# options/format/keep_alive in the request, retries, no retry after text,
# malformed lines, mid-stream errors, grammar refused, health, models.
. "$(dirname "$0")/llm_lib.bash"
O=(--backend ollama --url "http://127.0.0.1:$P" --set llm.backoff_ms=5)
chat() { "$B" llm chat "${O[@]}" -m "hi there" "$@"; }

out=$(chat --model ok 2>"$T/err")
expect_eq "streamed text" "$out" "Hello, world!"
grep -q "finish=stop prompt_tokens=11 completion_tokens=4" "$T/err" || fail "summary: $(cat "$T/err")"

chat --model ok --json --temperature 0.25 --top-k 7 --max-tokens 9 --seed 3 --stop END \
  --set llm.num_ctx=2048 --set llm.keep_alive=10m >"$T/j"
expect_eq result "$(jq -c '[.text, .finish_reason, .usage.prompt_tokens, .usage.completion_tokens]' "$T/j")" \
  '["Hello, world!","stop",11,4]'
req=$(jq -c 'select(.path == "/api/chat")' "$LOG" | tail -1)
expect_eq "request fields" "$(jq -c '.body | [.stream, .keep_alive, .options.temperature, .options.top_k, .options.num_predict, .options.seed, .options.num_ctx, .options.stop, .messages[0].content]' <<<"$req")" \
  '[true,"10m",0.25,7,9,3,2048,["END"],"hi there"]'
expect_eq "no key, no auth header" "$(jq -r .auth <<<"$req")" false
expect_eq length "$(chat --model length --json | jq -r .finish_reason)" length

echo '{"type":"object","properties":{"ok":{"type":"boolean"}}}' >"$T/schema.json"
fmt=$(chat --model schema --json-schema "$T/schema.json" --json | jq -r .text)
expect_eq "format is the schema" "$(jq -c . <<<"$fmt")" '{"type":"object","properties":{"ok":{"type":"boolean"}}}'

expect_eq "429 retried" "$(chat --model flaky429-1 --json 2>/dev/null | jq -r .attempts)" 2
expect_eq "500 retried" "$(chat --model flaky500-2 --json 2>/dev/null | jq -r .attempts)" 3
expect_eq "cut retried" "$(chat --model cut-first --json 2>/dev/null | jq -r .attempts)" 2
if chat --model cut-late >"$T/o" 2>"$T/err"; then fail "cut-late succeeded"; fi
expect_eq "partial text" "$(cat "$T/o")" "Hel"
expect_eq "cut-late attempts" "$(requests_for /api/chat cut-late)" 1
if chat --model malformed >/dev/null 2>"$T/err"; then fail "malformed succeeded"; fi
grep -q "bad_format.*malformed stream line" "$T/err" || fail "malformed: $(tail -1 "$T/err")"
if chat --model error-event >/dev/null 2>"$T/err"; then fail "error line succeeded"; fi
grep -q "model crashed" "$T/err" || fail "error line: $(tail -1 "$T/err")"
if chat --model hang --set llm.read_timeout_ms=200 --set llm.max_retries=0 >/dev/null 2>"$T/err"; then fail "hang succeeded"; fi
grep -q "read timeout" "$T/err" || fail "read timeout: $(tail -1 "$T/err")"

echo 'root ::= "x"' >"$T/g.gbnf"
if chat --model ok --grammar "$T/g.gbnf" 2>"$T/err"; then fail "grammar accepted"; fi
grep -q "unsupported.*use json_schema" "$T/err" || fail "grammar: $(cat "$T/err")"

"$B" llm health "${O[@]}" >/dev/null || fail health
expect_eq "health probes" "$(jq -r 'select(.body == null) | .path' "$LOG" | tr '\n' ' ')" "/ /api/tags "
expect_eq models "$("$B" llm models "${O[@]}" | tr '\n' ' ')" "tiny:latest coder:7b "
if "$B" llm health --backend ollama --url http://127.0.0.1:1 2>/dev/null; then fail "dead server healthy"; fi
# switching backend is a configuration change only: one file, then the env
cat >"$T/tanuki.json" <<JSON
{"llm": {"backend": "openai", "url": "http://127.0.0.1:$P/v1", "model": "echo", "backoff_ms": 5}}
JSON
expect_eq "openai from the file" "$("$B" llm chat --config "$T/tanuki.json" -m "via file" 2>/dev/null)" "via file"
expect_eq "ollama from the env" "$(TANUKI_LLM_BACKEND=ollama TANUKI_LLM_URL="http://127.0.0.1:$P" \
  "$B" llm chat --config "$T/tanuki.json" -m "via env" 2>/dev/null)" "via env"
expect_eq "paths used" "$(jq -r 'select(.body.messages[0].content | . == "via file" or . == "via env") | .path' "$LOG" | tr '\n' ' ')" \
  "/v1/chat/completions /api/chat "
# tanuki generate on the ollama backend
G=(--backend ollama --base-url "http://127.0.0.1:$P" --set llm.backoff_ms=5)
expect_eq "generate streamed" "$("$B" generate "${G[@]}" --model ok -p "hi there" 2>/dev/null)" "Hello, world!"
"$B" generate "${G[@]}" --model echo -p "gen echo" -n 7 --top-k 5 --seed 3 --json >"$T/j"
expect_eq "generate json" "$(jq -c '[.text, .backend]' "$T/j")" '["gen echo","ollama"]'
req=$(jq -c 'select(.path == "/api/chat")' "$LOG" | tail -1)
expect_eq "generate request" "$(jq -c '.body | [.model, .options.num_predict, .options.top_k, .options.seed, (.options | has("temperature")), .messages[0].content]' <<<"$req")" \
  '["echo",7,5,3,false,"gen echo"]'
fmt=$("$B" generate "${G[@]}" --model schema -p x --json-schema "$T/schema.json" --json | jq -r .text)
expect_eq "generate format" "$(jq -c . <<<"$fmt")" '{"type":"object","properties":{"ok":{"type":"boolean"}}}'
if "$B" generate "${G[@]}" --model ok -p x --grammar "$T/g.gbnf" 2>"$T/err"; then fail "generate grammar accepted"; fi
grep -q "unsupported.*use json_schema" "$T/err" || fail "generate grammar: $(cat "$T/err")"
if "$B" generate --backend ollama --model ok -p x 2>"$T/err"; then fail "ollama without --base-url"; fi
echo "llm_ollama: ok"
