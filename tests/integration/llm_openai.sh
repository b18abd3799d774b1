#!/usr/bin/env bash
# llm_openai.sh — the openai backend (src/llm/llm_openai.c) through
# `tanuki llm`, against the fake server: SSE streaming, usage, request
# fields, JSON schema, retries on 429/500/cut streams, no retry once text
# was shown, timeouts, malformed data, errors, health, models, metrics,
# adapter mapping, cancellation, and the API key never printed.
. "$(dirname "$0")/llm_lib.bash"
KEY=sk-test-SECRET
O=(--backend openai --url "http://127.0.0.1:$P/v1" --set llm.backoff_ms=5 --set llm.api_key=$KEY)
chat() { "$B" llm chat "${O[@]}" -m "hi there" "$@"; }

# streaming to stdout, the summary on stderr
out=$(chat --model ok 2>"$T/err")
expect_eq "streamed text" "$out" "Hello, world!"
grep -q "finish=stop prompt_tokens=11 completion_tokens=4" "$T/err" || fail "summary: $(cat "$T/err")"

# --json: parsed fields, and what the server received
chat --model ok --json --temperature 0.5 --max-tokens 9 --seed 42 --stop END --system "be brief" >"$T/j"
expect_eq text "$(jq -r .text "$T/j")" "Hello, world!"
expect_eq finish "$(jq -r .finish_reason "$T/j")" stop
expect_eq usage "$(jq -c .usage "$T/j")" '{"prompt_tokens":11,"completion_tokens":4}'
expect_eq attempts "$(jq -r .attempts "$T/j")" 1
expect_eq ttft_set "$(jq -r '.timings.ttft_ms > 0 and .timings.total_ms >= .timings.ttft_ms' "$T/j")" true
req=$(jq -c 'select(.path == "/v1/chat/completions")' "$LOG" | tail -1)
expect_eq "request fields" "$(jq -c '.body | [.stream, .stream_options.include_usage, .temperature, .max_tokens, .seed, .stop, (.messages | map(.role + ":" + .content))]' <<<"$req")" \
  '[true,true,0.5,9,42,["END"],["system:be brief","user:hi there"]]'
expect_eq "bearer key sent" "$(jq -r .auth_ok <<<"$req")" true

# finish_reason length
expect_eq length "$(chat --model length --json | jq -r .finish_reason)" length

# JSON schema -> response_format (the "schema" model echoes it back)
echo '{"type":"object","properties":{"a":{"type":"integer"}},"required":["a"]}' >"$T/schema.json"
rf=$(chat --model schema --json-schema "$T/schema.json" --json | jq -r .text)
expect_eq "response_format" "$(jq -c '[.type, .json_schema.strict, .json_schema.schema.required]' <<<"$rf")" '["json_schema",true,["a"]]'

# retries: 429 twice then ok; 500 once then ok; a stream cut before any text
expect_eq "429 retried" "$(chat --model flaky429-2 --json 2>/dev/null | jq -r '[.attempts, .text] | @tsv')" $'3\tHello, world!'
expect_eq "500 retried" "$(chat --model flaky500-1 --json 2>/dev/null | jq -r .attempts)" 2
expect_eq "cut retried" "$(chat --model cut-first --json 2>/dev/null | jq -r .attempts)" 2
# retries are bounded: 1 + max_retries attempts, then a clear error
if chat --model flaky429-9 --set llm.max_retries=2 >"$T/o" 2>"$T/err"; then fail "429 forever succeeded"; fi
grep -q "chat failed (busy).*HTTP 429: try later 3" "$T/err" || fail "429 error: $(tail -1 "$T/err")"
expect_eq "429 attempts" "$(requests_for /v1/chat/completions flaky429-9)" 3
if chat --model cut >/dev/null 2>"$T/err"; then fail "cut stream succeeded"; fi
grep -q "io_error" "$T/err" || fail "cut error: $(tail -1 "$T/err")"
# once text was streamed, no retry: the caller saw it
if chat --model cut-late >"$T/o" 2>"$T/err"; then fail "cut-late succeeded"; fi
expect_eq "partial text shown" "$(cat "$T/o")" "Hel"
expect_eq "cut-late attempts" "$(requests_for /v1/chat/completions cut-late)" 1

# errors that are not retried
if chat --model malformed >/dev/null 2>"$T/err"; then fail "malformed succeeded"; fi
grep -q "bad_format.*malformed stream event" "$T/err" || fail "malformed: $(tail -1 "$T/err")"
if chat --model error-event >/dev/null 2>"$T/err"; then fail "error event succeeded"; fi
grep -q "model crashed" "$T/err" || fail "error event: $(tail -1 "$T/err")"
if chat --model bad-status >/dev/null 2>"$T/err"; then fail "401 succeeded"; fi
grep -q "permission_denied.*HTTP 401: invalid api key" "$T/err" || fail "401: $(tail -1 "$T/err")"
expect_eq "401 attempts" "$(requests_for /v1/chat/completions bad-status)" 1

# timeouts: a silent server (read timeout, retried once), a call deadline
if chat --model hang --set llm.read_timeout_ms=200 --set llm.max_retries=1 >/dev/null 2>"$T/err"; then fail "hang succeeded"; fi
grep -q "timeout.*read timeout" "$T/err" || fail "read timeout: $(tail -1 "$T/err")"
expect_eq "hang attempts" "$(requests_for /v1/chat/completions hang)" 2
expect_eq "hang then ok" "$(chat --model hang-first --set llm.read_timeout_ms=200 --json 2>/dev/null | jq -r .attempts)" 2
if chat --model hang --set llm.request_timeout_ms=300 >/dev/null 2>"$T/err"; then fail "deadline passed"; fi
grep -q "request timeout" "$T/err" || fail "request timeout: $(tail -1 "$T/err")"

# cancellation: SIGINT while waiting on a silent server
"$B" llm chat "${O[@]}" -m hi --model hang >/dev/null 2>"$T/err" &
cpid=$!
sleep 0.5
kill -INT $cpid
if wait $cpid; then fail "cancelled call succeeded"; fi
grep -q "cancelled" "$T/err" || fail "cancel: $(tail -1 "$T/err")"

# adapter -> model mapping (llm.adapter_models); "echo" returns the message
out=$("$B" llm chat "${O[@]}" --set 'llm.adapter_models={"fixer":"echo"}' --adapter fixer -m "map me" 2>/dev/null)
expect_eq "adapter mapped" "$out" "map me"
if "$B" llm chat "${O[@]}" --adapter nope -m x 2>"$T/err"; then fail "unmapped adapter accepted"; fi
grep -q "adapter 'nope' has no model" "$T/err" || fail "unmapped adapter: $(cat "$T/err")"

# health and models
"$B" llm health "${O[@]}" >/dev/null || fail "health"
expect_eq models "$("$B" llm models "${O[@]}" | tr '\n' ' ')" "tiny coder "
if "$B" llm health --backend openai --url http://127.0.0.1:1/v1 --set llm.max_retries=0 2>/dev/null; then fail "dead server healthy"; fi

# metrics after a call
chat --model ok --metrics-out "$T/metrics" >/dev/null 2>&1
grep -q '^tanuki_llm_requests_total{backend="openai",model="ok",adapter="",outcome="ok"} 1$' "$T/metrics" || fail "requests metric"
grep -q '^tanuki_llm_time_to_first_token_seconds_count{backend="openai",model="ok",adapter=""} 1$' "$T/metrics" || fail "ttft metric"
grep -q '^tanuki_llm_completion_tokens_total{backend="openai",model="ok",adapter=""} 4$' "$T/metrics" || fail "tokens metric"
grep -q '^tanuki_llm_request_duration_seconds_count{backend="openai",model="ok",adapter=""} 1$' "$T/metrics" || fail "duration metric"

# the key never shows in anything tanuki printed, nor in config show
chat --model bad-status --set log.level=debug >"$T/o" 2>"$T/err" || true
if grep -rq "$KEY" "$T/o" "$T/err"; then fail "API key printed"; fi
"$B" config show --set llm.api_key=$KEY | grep -q "$KEY" && fail "config show printed the key"
# tanuki generate on the openai backend: flags become llm.* settings
G=(--backend openai --base-url "http://127.0.0.1:$P/v1" --set llm.backoff_ms=5)
expect_eq "generate streamed" "$("$B" generate "${G[@]}" --model ok -p "hi there" 2>/dev/null)" "Hello, world!"
"$B" generate "${G[@]}" --model ok --chat "gen chat" -n 9 --temp 0.5 --seed 42 --stop END --json >"$T/j"
expect_eq "generate json" "$(jq -c '[.text, .finish_reason, .usage.prompt_tokens, .usage.completion_tokens, .tokens, .backend]' "$T/j")" \
  '["Hello, world!","stop",11,4,[],"openai"]'
req=$(jq -c 'select(.path == "/v1/chat/completions")' "$LOG" | tail -1)
expect_eq "generate request" "$(jq -c '.body | [.model, .max_tokens, .temperature, .seed, .stop, has("top_p"), has("top_k"), (.messages | map(.role + ":" + .content))]' <<<"$req")" \
  '["ok",9,0.5,42,["END"],false,false,["user:gen chat"]]'
rf=$("$B" generate "${G[@]}" --model schema -p x --json-schema "$T/schema.json" --json | jq -r .text)
expect_eq "generate response_format" "$(jq -c '[.type, .json_schema.schema.required]' <<<"$rf")" '["json_schema",["a"]]'
if "$B" generate --backend openai --model ok -p x 2>"$T/err"; then fail "openai without --base-url"; fi
grep -q "needs --base-url" "$T/err" || fail "no base url: $(cat "$T/err")"
if "$B" generate "${G[@]}" --model bad-status -p x >/dev/null 2>"$T/err"; then fail "generate 401 succeeded"; fi
grep -q "generation failed (permission_denied)" "$T/err" || fail "generate 401: $(cat "$T/err")"
echo "llm_openai: ok"
