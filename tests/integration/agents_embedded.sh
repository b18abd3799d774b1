#!/usr/bin/env bash
# agents_embedded.sh — `tanuki run` on the embedded engine with a tiny
# random-weight model (tests/fixtures/models/tiny-llama-f32.gguf): the whole
# pipeline runs without crashing and ends with a clear status (a random
# model cannot complete: the test command is `false`), and every reply the
# orchestrator parsed as a tool call was valid JSON, thanks to the JSON
# schema the orchestrator passes to the engine's constrained decoding.
#
# The CI-sized cut of tests/slow/agents_run_embedded.sh (which keeps the
# whole team): two agents in the team (the orchestrator adds the reviewer),
# replies of 32 tokens, a token budget of 5000. Three model calls of ~1800
# prompt tokens each; measured ~37 s of CPU in the debug build and ~52 s
# under ASan+UBSan (docs/benchmarks.md, "Grammar masks"). The grammar is
# not what costs here: prefilling the briefings is (masks are ~0.02% of the
# profile). Needs the sandbox only if a tool call is `run`.
#
# tests/slow/agents_run_embedded.sh runs this script with the whole team:
#   TK_EMB_TEAM       agents.team JSON (default: the two agents above)
#   TK_EMB_MAX_TOKENS agents.max_tokens, the task's token budget (5000)
set -euo pipefail
T="${TANUKI_BIN:?TANUKI_BIN not set}"
FX="${TK_FIXTURES:?TK_FIXTURES not set}"
M="$FX/models/tiny-llama-f32.gguf"
TMP=$(mktemp -d "${TMPDIR:-/tmp}/tk-agents-embci.XXXXXX")
trap 'rm -rf "$TMP"' EXIT
FAILS=0
fail() { echo "FAIL: $*" >&2; FAILS=$((FAILS + 1)); }

cp "$FX/agents/entry_add.h" "$TMP/add.h"
# Small replies and few turns: the point is the pipeline, not the answer.
TEAM=${TK_EMB_TEAM:-'[{"name":"planner-critic","max_tokens":32},
       {"name":"coder","max_tokens":32,"max_turns":1}]'}
MAX_TOKENS=${TK_EMB_MAX_TOKENS:-5000}
rc=0
(cd "$TMP" && "$T" run "Implement add() declared in add.h in add.c" --file add.h \
	--test-command false --out "$TMP/out" --events "$TMP/ev.jsonl" --json \
	--set llm.backend=embedded --set "llm.model=$M" --set llm.embedded_ctx=4096 \
	--set agents.context_tokens=4096 --set "agents.team=$TEAM" --set agents.plans=1 \
	--set agents.max_iterations=1 --set agents.wall_s=900 --set agents.seed=7 \
	--set agents.max_repairs=0 --set "agents.max_tokens=$MAX_TOKENS" \
	>"$TMP/result.json" 2>"$TMP/stderr") || rc=$?

# A clear ending: exit 1 (never completed), a terminal status with a reason.
[ "$rc" = 1 ] || fail "exit status $rc, expected 1"
grep -q 'fatal signal\|ERROR: AddressSanitizer\|runtime error:' "$TMP/stderr" &&
	fail "crash or sanitizer report: $(head -c 2000 "$TMP/stderr")"
status=$(jq -r .status "$TMP/result.json" 2>/dev/null || echo none)
case "$status" in
failed | timed_out) ;;
*) fail "status '$status', expected failed or timed_out" ;;
esac
[ -n "$(jq -r '.reason // empty' "$TMP/result.json")" ] || fail "no reason"
# The events: the task, at least one model turn, a final status.
jq -e -s 'map(.type) | index("task") != null and index("agent_turn") != null' \
	"$TMP/ev.jsonl" >/dev/null || fail "events lack task/agent_turn"
last=$(jq -r -s 'map(select(.type == "status")) | last | .data.status' "$TMP/ev.jsonl")
[ "$last" = "$status" ] || fail "last status event '$last' != result '$status'"
# The schema shapes every reply: even one cut by max_tokens starts as a JSON
# object (a random model left alone emits token soup, not "{").
notobj=$(jq -r 'select(.type == "agent_turn" and .data.text != null) | .data.text
	| ltrimstr("\n") | ltrimstr(" ") | select(startswith("{") | not)' "$TMP/ev.jsonl" | wc -l)
[ "$notobj" = 0 ] || fail "$notobj replies do not start as a JSON object"
# Every complete reply (finish stop) is one valid JSON object, and every
# tool call the orchestrator executed names a known tool with an args object.
bad=$(jq -r 'select(.type == "agent_turn" and .data.finish_reason == "stop")
	| .data.text | (try (fromjson | type) catch "invalid") | select(. != "object")' \
	"$TMP/ev.jsonl" | wc -l)
[ "$bad" = 0 ] || fail "$bad complete replies were not a JSON object"
turns=$(jq -s 'map(select(.type == "agent_turn" and .data.text != null)) | length' "$TMP/ev.jsonl")
[ "$turns" -ge 1 ] || fail "no model reply recorded"
badtools=$(jq -r 'select(.type == "tool_call") | select((.data.tool | IN("list_files",
	"read_file", "write_file", "edit_file", "run") | not) or (.data.args | type) != "object")
	| .data.tool' "$TMP/ev.jsonl" | wc -l)
[ "$badtools" = 0 ] || fail "$badtools tool calls with an unknown tool or no args object"
echo "embedded run: status=$status turns=$turns tool_calls=$(jq -s 'map(select(.type == "tool_call")) | length' "$TMP/ev.jsonl")"
if [ "$FAILS" -gt 0 ]; then
	tail -n 30 "$TMP/stderr" >&2
	exit 1
fi
echo "all checks passed"
