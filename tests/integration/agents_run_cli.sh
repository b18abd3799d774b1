#!/usr/bin/env bash
# agents_run_cli.sh — `tanuki run` end to end with the scripted backend
# (issue #9, test 6, CLI half): a small C task (implement add() so that the
# given test program passes) completes, its files land under --out with the
# right contents; a task whose fix never comes fails with exit 1 and still
# writes its partial result; --json; the event log (--events) replays to
# the same files and status (--replay); --out never writes through a
# symbolic link; Ctrl-C cancels cleanly; usage errors exit 2.
#
# Runs real sandbox runs (gcc): like sandbox_cli.sh it needs a host with the
# sandbox minimum, or TANUKI_SANDBOX_TESTS_ALLOW_INSECURE=1 to skip.
set -euo pipefail
T="${TANUKI_BIN:?TANUKI_BIN not set}"
FX="${TK_FIXTURES:?TK_FIXTURES not set}/agents"
TMP=$(mktemp -d "${TMPDIR:-/tmp}/tk-agents-cli.XXXXXX")
BGPID=""
cleanup() {
	[ -n "$BGPID" ] && kill -KILL "$BGPID" 2>/dev/null
	rm -rf "$TMP"
}
trap cleanup EXIT
FAILS=0
fail() { echo "FAIL: $*" >&2; FAILS=$((FAILS + 1)); }

if ! "$T" sandbox doctor --no-selftest >"$TMP/doctor" 2>&1; then
	if [ "${TANUKI_SANDBOX_TESTS_ALLOW_INSECURE:-0}" = 1 ]; then
		echo "SKIP: host lacks the sandbox minimum" >&2
		exit 0
	fi
	cat "$TMP/doctor" >&2
	echo "FAIL: host lacks the sandbox minimum (TANUKI_SANDBOX_TESTS_ALLOW_INSECURE=1 skips)" >&2
	exit 1
fi

# The task: add.h declares add(), test_add.c checks it; the coder's script
# writes add.c. The expected add.c is read out of the script itself.
W="$TMP/work"
mkdir -p "$W/tests"
cp "$FX/entry_add.h" "$W/add.h"
cp "$FX/entry_test_add.c" "$W/tests/test_add.c"
expected_add_c() {
	jq -j '.responses[] | select(.agent == "coder") | .text | fromjson
		| select(.tool == "write_file" and .args.path == "add.c") | .args.content' "$1"
}
expected_add_c "$FX/entry_c_add.json" >"$TMP/add.c.expected"
[ -s "$TMP/add.c.expected" ] || fail "fixture: no add.c in the script"
TEST_CMD='gcc -Wall -Werror -I. -o t tests/test_add.c add.c && ./t'
run_task() { # SCRIPT OUT [extra args...]
	local script=$1 out=$2
	shift 2
	(cd "$W" && "$T" run "Implement add() declared in add.h in a new file add.c" \
		--file "$W/add.h" --file ./tests/test_add.c --test-command "$TEST_CMD" \
		--set llm.backend=scripted --set "llm.script=$script" --set agents.plans=1 \
		--out "$out" "$@")
}

# ---- 1. the task completes: exit 0, files under --out (dirs created)
rc=0
run_task "$FX/entry_c_add.json" "$TMP/out/deep/er" --events "$TMP/ev.jsonl" \
	>"$TMP/stdout" 2>"$TMP/stderr" || rc=$?
[ "$rc" = 0 ] || fail "completed task: exit $rc: $(tail -n 5 "$TMP/stderr")"
O="$TMP/out/deep/er"
cmp -s "$O/add.c" "$TMP/add.c.expected" || fail "--out add.c differs from the script's"
cmp -s "$O/add.h" "$W/add.h" || fail "--out add.h (absolute --file: base name) differs"
cmp -s "$O/tests/test_add.c" "$W/tests/test_add.c" || fail "--out tests/test_add.c differs"
[ "$(find "$O" -type f | wc -l)" = 3 ] || fail "--out holds $(find "$O" -type f | wc -l) files, not 3"
grep -q '^status: completed$' "$TMP/stdout" || fail "summary lacks 'status: completed'"
grep -q '^  A add.c$' "$TMP/stdout" || fail "summary lacks the added add.c"
grep -q '^tests: passed' "$TMP/stdout" || fail "summary lacks 'tests: passed'"
# progress on stderr (not a terminal: plain lines, no escape codes)
grep -q 'test_run .*passed=true' "$TMP/stderr" || fail "no test_run progress line"
grep -q $'\033' "$TMP/stderr" && fail "escape codes on a non-terminal"
# the event log: what ran, in order, ending completed
jq -e -s 'map(.type) | (index("task") < index("plan")) and (index("plan") < index("test_run"))
	and (index("test_run") < index("review"))' "$TMP/ev.jsonl" >/dev/null ||
	fail "events out of order: $(jq -r -s 'map(.type) | join(",")' "$TMP/ev.jsonl")"
[ "$(jq -r -s 'map(select(.type == "status")) | last | .data.status' "$TMP/ev.jsonl")" = completed ] ||
	fail "last status event is not completed"
[ "$(jq -r 'select(.type == "test_run") | .data.passed' "$TMP/ev.jsonl" | tail -n 1)" = true ] ||
	fail "test_run event not passed"

# ---- 2. --json: the result object
rc=0
run_task "$FX/entry_c_add.json" "$TMP/out-json" --json --quiet >"$TMP/result.json" 2>"$TMP/stderr" || rc=$?
[ "$rc" = 0 ] || fail "--json: exit $rc"
[ "$(jq -r .status "$TMP/result.json")" = completed ] || fail "--json status"
jq -j '.files[] | select(.path == "add.c") | .content' "$TMP/result.json" >"$TMP/json-add.c"
cmp -s "$TMP/json-add.c" "$TMP/add.c.expected" || fail "--json files[add.c].content"
jq -e '.diff | contains("+++ b/add.c")' "$TMP/result.json" >/dev/null || fail "--json diff lacks add.c"
jq -e '.tests.passed == true and .iterations >= 1' "$TMP/result.json" >/dev/null ||
	fail "--json tests/iterations"
[ -s "$TMP/stderr" ] && fail "--quiet still printed: $(head -c 300 "$TMP/stderr")"

# ---- 3. replay of the event log: same files, same status
rc=0
"$T" run --replay "$TMP/ev.jsonl" --out "$TMP/out-replay" >"$TMP/replay.out" 2>"$TMP/replay.err" || rc=$?
[ "$rc" = 0 ] || fail "replay: exit $rc: $(tail -n 5 "$TMP/replay.err")"
diff -r "$O" "$TMP/out-replay" >&2 || fail "replayed files differ"
grep -q '^status: completed$' "$TMP/replay.out" || fail "replay status"
grep -q 'replay: recorded status completed, replayed completed' "$TMP/replay.err" ||
	fail "replay report line"

# ---- 4. a task whose fix never comes: exit 1, the partial result written
rc=0
run_task "$FX/entry_c_add_fails.json" "$TMP/out-fail" >"$TMP/stdout" 2>"$TMP/stderr" || rc=$?
[ "$rc" = 1 ] || fail "failing task: exit $rc, expected 1"
grep -q '^status: failed$' "$TMP/stdout" || fail "failing task: no 'status: failed'"
grep -q '^reason: ' "$TMP/stdout" || fail "failing task: no reason"
grep -q '^tests: failed' "$TMP/stdout" || fail "failing task: tests not reported failed"
expected_add_c "$FX/entry_c_add_fails.json" >"$TMP/bad-add.c.expected"
cmp -s "$TMP/out-fail/add.c" "$TMP/bad-add.c.expected" || fail "failing task: partial add.c not written"

# ---- 5. --out never writes through a symbolic link
mkdir -p "$TMP/out-link"
echo "outside" >"$TMP/outside.txt"
ln -s "$TMP/outside.txt" "$TMP/out-link/add.c"
rc=0
run_task "$FX/entry_c_add.json" "$TMP/out-link" --quiet >/dev/null 2>"$TMP/stderr" || rc=$?
[ "$rc" = 1 ] || fail "symlink in --out: exit $rc, expected 1"
[ "$(cat "$TMP/outside.txt")" = outside ] || fail "a file outside --out was written"
grep -q 'add.c' "$TMP/stderr" || fail "symlink in --out: error does not name the file"

# ---- 6. Ctrl-C cancels: the test command sleeps; SIGINT ends the task as
# cancelled within seconds, exit 1, the partial result still written.
rc=0
(cd "$W" && exec "$T" run "Implement add()" --file add.h --test-command "sleep 60" \
	--set llm.backend=scripted --set "llm.script=$FX/entry_c_add.json" --set agents.plans=1 \
	--events "$TMP/ev-int.jsonl" --out "$TMP/out-int" >"$TMP/int.out" 2>"$TMP/int.err") &
BGPID=$!
for _ in $(seq 1 200); do
	grep -q '"type":"step"' "$TMP/ev-int.jsonl" 2>/dev/null && break
	sleep 0.05
done
sleep 0.5 # inside the sandboxed sleep by now
kill -INT "$BGPID"
for _ in $(seq 1 200); do
	kill -0 "$BGPID" 2>/dev/null || break
	sleep 0.05
done
if kill -0 "$BGPID" 2>/dev/null; then
	fail "SIGINT did not end the run within 10 s"
	kill -KILL "$BGPID"
fi
wait "$BGPID" || rc=$?
BGPID=""
[ "$rc" = 1 ] || fail "SIGINT: exit $rc, expected 1"
grep -q '^status: cancelled$' "$TMP/int.out" || fail "SIGINT: no 'status: cancelled' ($(head -n 2 "$TMP/int.out"))"
[ -f "$TMP/out-int/add.c" ] || fail "SIGINT: partial add.c not written"

# ---- 7. usage and input errors
rc=0; "$T" run >/dev/null 2>&1 || rc=$?
[ "$rc" = 2 ] || fail "no task: exit $rc, expected 2"
rc=0; "$T" run "a" "b" >/dev/null 2>&1 || rc=$?
[ "$rc" = 2 ] || fail "two tasks: exit $rc, expected 2"
rc=0; "$T" run --replay "$TMP/ev.jsonl" "a task" >/dev/null 2>&1 || rc=$?
[ "$rc" = 2 ] || fail "--replay with a task: exit $rc, expected 2"
rc=0; "$T" run "x" --file "$TMP/nonexistent.c" >/dev/null 2>&1 || rc=$?
[ "$rc" = 1 ] || fail "missing --file: exit $rc, expected 1"
rc=0; (cd "$W/tests" && "$T" run "x" --file ../add.h >/dev/null 2>"$TMP/stderr") || rc=$?
[ "$rc" = 1 ] || fail "--file ../add.h: exit $rc, expected 1"
grep -q "relative path" "$TMP/stderr" || fail "--file ../add.h: unclear error"
rc=0; "$T" run --replay "$FX/entry_c_add.json" >/dev/null 2>"$TMP/stderr" || rc=$?
[ "$rc" = 1 ] || fail "--replay of a non-export: exit $rc, expected 1"

if [ "$FAILS" -gt 0 ]; then
	echo "$FAILS check(s) failed" >&2
	exit 1
fi
echo "all checks passed"
