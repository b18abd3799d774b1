#!/usr/bin/env bash
# cli_basics — the tanuki command as a user meets it: version, help on every
# command, exit codes (0 ok, 1 runtime failure, 2 usage), config layering.
set -euo pipefail
T="${TANUKI_BIN:?TANUKI_BIN not set}"
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }

# --version and version agree and carry a semantic version and a commit.
v1=$("$T" --version); v2=$("$T" version)
[ "$v1" = "$v2" ] || fail "--version and version differ"
grep -Eq '^tanuki [0-9]+\.[0-9]+\.[0-9]+ \(commit ([0-9a-f]{7,}(-dirty)?|unknown)' <<<"$v1" \
  || fail "version line: $v1"
"$T" version --json | python3 -c 'import json,sys; d=json.load(sys.stdin); assert d["version"].count(".")==2 and d["commit"] and d["build_date"]'

# Every listed command answers --help with exit 0 and a usage line.
cmds=$("$T" --help | awk '/^commands:/{f=1;next} f&&/^  [a-z]/{print $1} f&&/^$/{f=0}')
[ -n "$cmds" ] || fail "no commands listed by --help"
for c in $cmds; do
  out=$("$T" "$c" --help) || fail "$c --help exited $?"
  grep -qi 'usage' <<<"$out" || fail "$c --help prints no usage"
  "$T" help "$c" >/dev/null || fail "help $c"
done

# Usage errors exit 2, with a message on stderr.
set +e
"$T" >/dev/null 2>&1; [ $? -eq 2 ] || fail "no command: want exit 2"
"$T" no-such-command >/dev/null 2>"$tmp/err"; [ $? -eq 2 ] || fail "unknown command: want exit 2"
grep -q "unknown command" "$tmp/err" || fail "unknown command message"
"$T" version --bogus >/dev/null 2>&1; [ $? -eq 2 ] || fail "bad option: want exit 2"
"$T" config show --set server.workers=zero >/dev/null 2>"$tmp/err"; [ $? -eq 2 ] || fail "bad --set: want 2"
grep -q "server.workers: expected an integer" "$tmp/err" || fail "bad --set message"
set -e

# Config: file < env < flag, and secrets masked.
cat > "$tmp/t.json" <<'JSON'
{"server": {"workers": 3, "listen": "127.0.0.1:9999", "admin_key": "sk-hidden-123456"}}
JSON
out=$(TANUKI_SERVER_WORKERS=4 "$T" config show --config "$tmp/t.json" --set server.queue_max=9)
echo "$out" | python3 -c '
import json,sys
d=json.load(sys.stdin)
assert d["server"]["workers"]==4, d["server"]["workers"]
assert d["server"]["listen"]=="127.0.0.1:9999"
assert d["server"]["queue_max"]==9
assert d["server"]["admin_key"]=="********"'
grep -q "sk-hidden" <<<"$out" && fail "secret printed"
grep -q 9999 <<<"$(TANUKI_CONFIG="$tmp/t.json" "$T" config show)" || fail "TANUKI_CONFIG not used"
grep -q ok <<<"$("$T" config check "$tmp/t.json")" || fail "config check ok"
echo '{"server":{"workers":0}}' > "$tmp/bad.json"
set +e
"$T" config check "$tmp/bad.json" >/dev/null 2>"$tmp/err"; rc=$?
set -e
[ $rc -eq 1 ] || fail "config check bad: want exit 1, got $rc"
grep -q "server.workers: must be in 1..256, got 0" "$tmp/err" || fail "config check message"
# The example configuration that ships is valid.
"$T" config check "$TK_SOURCE_DIR/config/tanuki.json" >/dev/null || fail "config/tanuki.json invalid"
echo "cli_basics: ok"
