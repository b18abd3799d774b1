#!/usr/bin/env bash
# agents_run_http.sh — the orchestrator behind the HTTP API (issue #9, tests 6
# and 7, server half): `tanuki serve` with the orchestrator runner and the
# scripted backend runs the same small C task as agents_run_cli.sh through
# POST /run_task; the SSE stream (curl -N) shows its progress and ends with
# the completed status; GET /tasks/{id} has the result and the output files.
# Then `tanuki tasks export` writes the task's events as JSONL and
# `tanuki run --replay` of that export gives the same files and status.
# A task that fails keeps its partial result visible (result, files, error).
#
# Runs real sandbox runs (gcc): needs the sandbox minimum, or
# TANUKI_SANDBOX_TESTS_ALLOW_INSECURE=1 to skip.
source "$(dirname "$0")/server_lib.bash"
FX="${TK_FIXTURES:?TK_FIXTURES not set}/agents"
jqe() { jq -e "$@" >/dev/null; }

if ! "$TANUKI_BIN" sandbox doctor --no-selftest >"$TMP/doctor" 2>&1; then
	if [ "${TANUKI_SANDBOX_TESTS_ALLOW_INSECURE:-0}" = 1 ]; then
		echo "SKIP: host lacks the sandbox minimum" >&2
		exit 0
	fi
	cat "$TMP/doctor" >&2
	echo "FAIL: host lacks the sandbox minimum (TANUKI_SANDBOX_TESTS_ALLOW_INSECURE=1 skips)" >&2
	exit 1
fi

D="$TMP/data"
mkdir -p "$D"
KEY=$(mkkey "$D" alice user)
ADMIN=$(mkkey "$D" root admin)
srv_start "$D" --runner orchestrator --set llm.backend=scripted \
	--set "llm.script=$FX/entry_c_add.json" --set agents.plans=1 --rate-limit-per-min 0

api GET /readyz ""
check "readyz with the orchestrator runner" eq "$RESP_CODE" 200
check "readyz: runner ready" eq "$(jget .checks.runner)" true

# The request: add.h and tests/test_add.c; the script's coder writes add.c.
TEST_CMD='gcc -Wall -Werror -I. -o t tests/test_add.c add.c && ./t'
body=$(jq -n --rawfile h "$FX/entry_add.h" --rawfile t "$FX/entry_test_add.c" --arg c "$TEST_CMD" \
	'{task_description: "Implement add() declared in add.h in a new file add.c",
	  files: [{path: "add.h", content: $h}, {path: "tests/test_add.c", content: $t}],
	  test_command: $c}')
api POST /run_task "$KEY" "$body"
check "POST /run_task accepted ($RESP_CODE)" eq "$RESP_CODE" 202
ID=$(jget .task_id)

# ---- SSE progress: the stream from the first event to the terminal status
curl -s -N --max-time 60 -H "X-API-Key: $KEY" "http://$SRV/tasks/$ID/events" >"$TMP/sse" || true
types=$(grep '^event: ' "$TMP/sse" | cut -d' ' -f2 | paste -sd, -)
for t in task plan agent_turn tool_call tool_result test_run review; do
	check "SSE has a $t event ($types)" grep -q "^event: $t\$" "$TMP/sse"
done
check "SSE: orchestrator status events renamed (store owns status)" \
	grep -q '^event: agent_status$' "$TMP/sse"
last_status=$(grep -A1 '^event: status$' "$TMP/sse" | grep '^data: ' | tail -n 1 | cut -c7-)
check "SSE ends with the completed status ($last_status)" eq "$(jq -r .status <<<"$last_status")" completed

# ---- the task: completed, result, output files
wait_status "$ID" "$KEY" completed || fail "task did not complete: $RESP_BODY"
expected=$(jq -r '.responses[] | select(.agent == "coder") | .text | fromjson
	| select(.tool == "write_file" and .args.path == "add.c") | .args.content' "$FX/entry_c_add.json")
check "GET: add.c is the scripted one" eq "$(jget '.files[] | select(.path == "add.c") | .content')" "$expected"
check "GET: only the changed file is an output" eq "$(jget '.files | length')" 1
check "GET: tests passed" eq "$(jget .tests.passed)" true
check "GET: usage reported" test "$(jget .usage.llm_calls)" -ge 3
check "GET: result summary" test -n "$(jget .result)"
jq -j '.files[] | select(.path == "add.c") | .content' <<<"$RESP_BODY" >"$TMP/http-add.c"

# ---- export: the task's events as JSONL, straight from the store
rc=0
"$TANUKI_BIN" tasks export "$ID" --data-dir "$D" --out "$TMP/export.jsonl" 2>"$TMP/export.err" || rc=$?
check "tasks export exit 0 ($(cat "$TMP/export.err"))" eq "$rc" 0
check "export: one JSON object a line, seq 1..N" jqe -s \
	'(map(.seq) == [range(1; length + 1)]) and all(.[]; has("type") and has("data") and has("created_at"))' \
	"$TMP/export.jsonl"
check "export: as many events as the SSE stream" eq "$(wc -l <"$TMP/export.jsonl")" "$(grep -c '^event: ' "$TMP/sse")"
check "export: the task event carries the input files" jqe -s \
	'map(select(.type == "task")) | .[0].data.files | map(.path) == ["add.h", "tests/test_add.c"]' \
	"$TMP/export.jsonl"
"$TANUKI_BIN" tasks export "$ID" --data-dir "$D" >"$TMP/export-stdout.jsonl"
check "export to stdout = --out" cmp -s "$TMP/export.jsonl" "$TMP/export-stdout.jsonl"
rc=0; "$TANUKI_BIN" tasks export "$ID" --data-dir "$TMP/nowhere" >/dev/null 2>&1 || rc=$?
check "export from a missing data dir fails" eq "$rc" 1
check "no data dir made by a failed export" test ! -e "$TMP/nowhere"
rc=0; "$TANUKI_BIN" tasks export 0190a000-0000-7000-8000-000000000000 --data-dir "$D" >/dev/null 2>&1 || rc=$?
check "export of an unknown task fails" eq "$rc" 1
rc=0; "$TANUKI_BIN" tasks export not-an-id --data-dir "$D" >/dev/null 2>&1 || rc=$?
check "export of a bad id: usage" eq "$rc" 2

# ---- test 7: the export replayed gives the same result
rc=0
"$TANUKI_BIN" run --replay "$TMP/export.jsonl" --out "$TMP/replay" --json >"$TMP/replay.json" \
	2>"$TMP/replay.err" || rc=$?
check "replay exit 0 ($(tail -n 3 "$TMP/replay.err"))" eq "$rc" 0
check "replay status completed" eq "$(jq -r .status "$TMP/replay.json")" completed
check "replayed add.c = the server's" cmp -s "$TMP/replay/add.c" "$TMP/http-add.c"
check "replayed changed files = the server's" eq \
	"$(jq -c '[.files[] | {path, content}]' "$TMP/replay.json")" \
	"$(jq -c '[.files[] | {path, content}]' <<<"$RESP_BODY")"
check "replay: the same tool calls" eq \
	"$(jq -c -s '[.[] | select(.type == "tool_call") | .data]' "$TMP/export.jsonl")" \
	"$("$TANUKI_BIN" run --replay "$TMP/export.jsonl" --quiet --events "$TMP/replay-ev.jsonl" >/dev/null 2>&1;
	   jq -c -s '[.[] | select(.type == "tool_call") | .data]' "$TMP/replay-ev.jsonl")"

# ---- a failing task keeps its partial result: the tests can never pass
# and the script has no reply for the debugger
body=$(jq -n --rawfile h "$FX/entry_add.h" \
	'{task_description: "Implement add() declared in add.h in a new file add.c",
	  files: [{path: "add.h", content: $h}], test_command: "false"}')
api POST /run_task "$KEY" "$body"
ID2=$(jget .task_id)
wait_status "$ID2" "$KEY" failed || fail "the failing task did not fail: $RESP_BODY"
check "failed: error names the outcome and reason" grep -q '^failed: ' <<<"$(jget .error)"
check "failed: partial result visible" test -n "$(jget .result)"
check "failed: tests reported" eq "$(jget .tests.passed)" false
check "failed: partial add.c visible" eq "$(jget '.files[] | select(.path == "add.c") | .content')" "$expected"

# ---- admin sees the task
api GET "/tasks/$ID" "$ADMIN"
check "admin sees the task" eq "$RESP_CODE" 200

# ---- cancel reaches the orchestrator mid-run: the test command sleeps in the
# sandbox; the task ends cancelled within the cancel wait, its partial result kept
slow_body=$(jq -n --rawfile h "$FX/entry_add.h" \
	'{task_description: "Implement add() declared in add.h in a new file add.c",
	  files: [{path: "add.h", content: $h}], test_command: "sleep 30"}')
wait_event() { # ID TYPE: polls the stored events (bounded, 20 s)
	for _ in $(seq 1 200); do
		"$TANUKI_BIN" tasks export "$1" --data-dir "$D" 2>/dev/null | grep -q "\"type\":\"$2\"" && return 0
		sleep 0.1
	done
	return 1
}
api POST /run_task "$KEY" "$slow_body"
ID3=$(jget .task_id)
check "slow task reaches its tests" wait_event "$ID3" step
sleep 0.3
api POST "/tasks/$ID3/cancel" "$KEY" ""
wait_status "$ID3" "$KEY" cancelled || fail "cancel: the task did not end cancelled: $RESP_BODY"
check "cancel: partial result visible" test -n "$(jget .result)"
check "cancel: partial add.c visible" eq "$(jget '.files[] | select(.path == "add.c") | .content')" "$expected"

srv_stop
check "server exit 0 after SIGTERM" eq "$SRV_RC" 0

# ---- the server's per-task deadline reaches the orchestrator: timed_out
srv_start "$D" --runner orchestrator --set llm.backend=scripted \
	--set "llm.script=$FX/entry_c_add.json" --set agents.plans=1 --rate-limit-per-min 0 \
	--task-timeout-ms 1500
api POST /run_task "$KEY" "$slow_body"
ID4=$(jget .task_id)
wait_status "$ID4" "$KEY" timed_out || fail "deadline: the task did not time out: $RESP_BODY"
check "deadline: error says so" grep -q 'deadline' <<<"$(jget .error)"
check "deadline: partial add.c visible" eq "$(jget '.files[] | select(.path == "add.c") | .content')" "$expected"
srv_stop
check "server exit 0 after SIGTERM (2)" eq "$SRV_RC" 0
finish
