#!/usr/bin/env bash
# agents_demo.sh — the README's main command, scripts/demo.sh, in its
# offline mode (scripted replies, real sandbox) against the built binary:
# the task completes, and the words.c it leaves in the output directory
# compiles and passes the demo's tests when built here, outside Tanuki.
# Needs the sandbox minimum, or TANUKI_SANDBOX_TESTS_ALLOW_INSECURE=1 to skip.
set -euo pipefail
T="${TANUKI_BIN:?TANUKI_BIN not set}"
S="${TK_SOURCE_DIR:?TK_SOURCE_DIR not set}"
TMP=$(mktemp -d "${TMPDIR:-/tmp}/tk-agents-demo.XXXXXX")
trap 'rm -rf "$TMP"' EXIT
if ! "$T" sandbox doctor --no-selftest >"$TMP/doctor" 2>&1; then
	if [ "${TANUKI_SANDBOX_TESTS_ALLOW_INSECURE:-0}" = 1 ]; then
		echo "SKIP: host lacks the sandbox minimum" >&2
		exit 0
	fi
	cat "$TMP/doctor" >&2
	exit 1
fi
rc=0
TANUKI_DEMO_SKIP_SETUP=1 TANUKI_BIN="$T" TANUKI_DEMO_OUT="$TMP/out" \
	bash "$S/scripts/demo.sh" >"$TMP/stdout" 2>"$TMP/stderr" || rc=$?
if [ "$rc" != 0 ]; then
	cat "$TMP/stderr" "$TMP/stdout" >&2
	echo "FAIL: demo exit $rc" >&2
	exit 1
fi
grep -q 'OFFLINE DEMO' "$TMP/stderr" || { echo "FAIL: the offline demo is not labelled" >&2; exit 1; }
grep -q '^status: completed$' "$TMP/stdout" || { echo "FAIL: no 'status: completed'" >&2; exit 1; }
grep -q '^iterations: 3 ' "$TMP/stdout" || { echo "FAIL: not the three rounds of the script" >&2; exit 1; }
# the result, built and tested here without the sandbox
cc -Wall -Wextra -Werror -o "$TMP/t" "$TMP/out/tests/test_words.c" "$TMP/out/words.c"
"$TMP/t" | grep -q 'all wc_words tests pass' || { echo "FAIL: demo result does not pass" >&2; exit 1; }
echo "all checks passed"
