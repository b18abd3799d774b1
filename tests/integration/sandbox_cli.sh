#!/usr/bin/env bash
# sandbox_cli.sh — `tanuki sandbox run|doctor|profiles` driven the way a user
# would: ordinary use (a C program with its tests, a Python script, stdin),
# the JSON result record, limits through flags, profiles from a file, and
# the refusal path of a host without the minimum (a non-root user without a
# writable cgroup), which must fail loudly and run only with
# --allow-degraded.
#
# Needs root (CI runs as root). When the host lacks the sandbox minimum the
# test fails, unless TANUKI_SANDBOX_TESTS_ALLOW_INSECURE=1.
set -euo pipefail
T="${TANUKI_BIN:?TANUKI_BIN not set}"
fail() { echo "FAIL: $*" >&2; exit 1; }

if ! "$T" sandbox doctor --no-selftest > /tmp/sbdoc.$$ 2>&1; then
  cat /tmp/sbdoc.$$ >&2
  rm -f /tmp/sbdoc.$$
  if [ "${TANUKI_SANDBOX_TESTS_ALLOW_INSECURE:-0}" = 1 ]; then
    echo "SKIP: host lacks the sandbox minimum (TANUKI_SANDBOX_TESTS_ALLOW_INSECURE=1)" >&2
    exit 0
  fi
  fail "host lacks the sandbox minimum (set TANUKI_SANDBOX_TESTS_ALLOW_INSECURE=1 to skip)"
fi
rm -f /tmp/sbdoc.$$

WS=$(mktemp -d /tmp/tanuki-sbcli-XXXXXX)
OUT=$(mktemp -d /tmp/tanuki-sbcli-out-XXXXXX)
cleanup() { rm -rf "$WS" "$OUT"; }
trap cleanup EXIT
jget() { python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); print(d[sys.argv[2]])' "$@"; }

# --- doctor: text and JSON, with the live self-test
"$T" sandbox doctor > "$OUT/doc.txt" || fail "doctor failed: $(cat "$OUT/doc.txt")"
grep -q '^verdict: OK' "$OUT/doc.txt" || fail "doctor verdict"
grep -q '^selftest: /bin/true in profile shell: OK' "$OUT/doc.txt" || fail "doctor selftest"
grep -q 'memory  *enforced  *cgroup' "$OUT/doc.txt" || fail "doctor: memory line"
"$T" sandbox doctor --json > "$OUT/doc.json"
[ "$(jget "$OUT/doc.json" secure)" = True ] || fail "doctor json secure"

# --- profiles
"$T" sandbox profiles > "$OUT/prof.txt"
for p in c python shell; do grep -q "^$p " "$OUT/prof.txt" || fail "profile $p missing"; done

# --- ordinary use: a C program with its tests, through make, profile c
cat > "$WS/fact.c" <<'EOF'
long fact(int n) { return n <= 1 ? 1 : n * fact(n - 1); }
EOF
cat > "$WS/test_fact.c" <<'EOF'
#include <stdio.h>
long fact(int n);
int main(void) {
	int bad = 0;
	bad += fact(0) != 1; bad += fact(5) != 120; bad += fact(10) != 3628800;
	printf("%s\n", bad ? "FAILED" : "fact: 3 tests passed");
	return bad;
}
EOF
printf 'check: t\n\t./t\nt: fact.c test_fact.c\n\t$(CC) -O2 -Wall -o t fact.c test_fact.c\n' > "$WS/Makefile"
"$T" sandbox run --profile c --workspace "$WS" -- make check > "$OUT/make.out" 2> "$OUT/make.err" ||
  fail "make check in the sandbox: $(cat "$OUT/make.out" "$OUT/make.err")"
grep -q 'fact: 3 tests passed' "$OUT/make.out" || fail "C tests output"
[ -x "$WS/t" ] || fail "built binary not in the workspace"

# --- a Python script, JSON record
printf 'import sys\nprint(sum(int(x) for x in sys.stdin.read().split()))\n' > "$WS/add.py"
printf '1 2 3\n4 5\n' > "$OUT/nums.txt"
"$T" sandbox run --json --profile python --workspace "$WS" --stdin "$OUT/nums.txt" \
  -- python3 add.py > "$OUT/py.json" || fail "python run"
[ "$(jget "$OUT/py.json" status)" = OK ] || fail "python status: $(cat "$OUT/py.json")"
[ "$(jget "$OUT/py.json" stdout)" = 15 ] || fail "python stdout"
[ "$(jget "$OUT/py.json" exit_code)" = 0 ] || fail "python exit code"
[ "$(jget "$OUT/py.json" stdout_bytes)" = 3 ] || fail "python stdout_bytes"

# --- exit codes without --json: the program's, 124 for time, 125 for limits
set +e
"$T" sandbox run --workspace "$WS" -- sh -c 'exit 7' 2>/dev/null; rc=$?
[ $rc = 7 ] || fail "exit code passthrough: $rc"
"$T" sandbox run --wall-ms 200 --workspace "$WS" -- sleep 5 2>/dev/null; rc=$?
[ $rc = 124 ] || fail "wall limit exit code: $rc"
"$T" sandbox run --output-kb 16 --workspace "$WS" -- yes > /dev/null 2>&1; rc=$?
[ $rc = 125 ] || fail "output limit exit code: $rc"
"$T" sandbox run --mem-mb 32 --workspace "$WS" -- python3 -c 'x = bytearray(200 << 20)' > /dev/null 2>&1; rc=$?
[ $rc = 125 ] || fail "memory limit exit code: $rc"
"$T" sandbox run --profile nope -- true 2>/dev/null; rc=$?
[ $rc = 2 ] || fail "unknown profile must be a usage error: $rc"
set -e
"$T" sandbox run --json --cpu-ms 200 --workspace "$WS" -- sh -c 'while :; do :; done' > "$OUT/cpu.json" || true
[ "$(jget "$OUT/cpu.json" status)" = TO ] || fail "cpu: $(cat "$OUT/cpu.json")"
[ "$(jget "$OUT/cpu.json" limit)" = cpu ] || fail "cpu limit name"

# --- SIGTERM stops the run cleanly: exit 128+15, temporary workspace removed
mkdir "$OUT/tmpd"
TMPDIR="$OUT/tmpd" "$T" sandbox run -- sleep 30 2> "$OUT/term.err" &
cli=$!
sleep 0.5
kill -TERM $cli
set +e
wait $cli; rc=$?
set -e
[ $rc = 143 ] || fail "SIGTERM: exit $rc: $(cat "$OUT/term.err")"
grep -q interrupted "$OUT/term.err" || fail "SIGTERM message"
[ -z "$(ls -A "$OUT/tmpd")" ] || fail "temporary workspace left after SIGTERM"

# --- a profile from a file: loopback network, its own env and limits
cat > "$OUT/profiles.json" <<'EOF'
{"netshell": {"extends": "shell", "net": "loopback",
              "env": {"PATH": "/usr/bin:/bin", "GREETING": "from-profile"},
              "limits": {"wall_ms": 5000}}}
EOF
"$T" sandbox run --json --profiles-file "$OUT/profiles.json" --profile netshell --workspace "$WS" \
  -- sh -c 'echo $GREETING; cat /sys/class/net/lo/operstate 2>/dev/null; python3 -c "
import socket; s=socket.socket(); s.bind((\"127.0.0.1\",0)); s.listen(); c=socket.create_connection(s.getsockname()); print(\"loopback ok\")"' \
  > "$OUT/net.json" || fail "netshell run"
[ "$(jget "$OUT/net.json" status)" = OK ] || fail "netshell: $(cat "$OUT/net.json")"
grep -q 'from-profile' "$OUT/net.json" || fail "profile env"
grep -q 'loopback ok' "$OUT/net.json" || fail "loopback network"
echo '{"bad": {"extends": "shell", "binds": ["/etc"]}}' > "$OUT/bad.json"
if "$T" sandbox run --profiles-file "$OUT/bad.json" -- true 2> "$OUT/bad.err"; then
  fail "a profile binding /etc must be refused"
fi
grep -q 'may not be shown' "$OUT/bad.err" || fail "bad profile message: $(cat "$OUT/bad.err")"

# --- no minimum, no run: an unprivileged user cannot write the cgroups here
if command -v setpriv > /dev/null && [ "$(id -u)" = 0 ]; then
  NW=$(mktemp -d /tmp/tanuki-sbcli-nobody-XXXXXX)
  chmod 777 "$NW"
  set +e
  setpriv --reuid 65534 --regid 65534 --clear-groups "$T" sandbox run --workspace "$NW" -- true \
    > /dev/null 2> "$OUT/refuse.err"; rc=$?
  set -e
  [ $rc = 1 ] || fail "non-root without cgroups must be refused, rc=$rc"
  grep -q 'refusing to run untrusted code' "$OUT/refuse.err" || fail "refusal message"
  # explicitly degraded: runs in a user namespace with rlimit fallbacks
  setpriv --reuid 65534 --regid 65534 --clear-groups "$T" sandbox run --allow-degraded --json \
    --workspace "$NW" -- sh -c 'id -u; grep NoNewPrivs /proc/self/status' > "$OUT/degraded.json" \
    2>/dev/null || fail "degraded run"
  [ "$(jget "$OUT/degraded.json" status)" = OK ] || fail "degraded: $(cat "$OUT/degraded.json")"
  grep -q 'NoNewPrivs:\\t1' "$OUT/degraded.json" || fail "degraded: no_new_privs"
  setpriv --reuid 65534 --regid 65534 --clear-groups "$T" sandbox doctor --no-selftest \
    > "$OUT/doc-nobody.txt" && fail "doctor must fail without the minimum"
  grep -q 'verdict: INSECURE' "$OUT/doc-nobody.txt" || fail "doctor insecure verdict"
  grep -q 'memory  *WEAK' "$OUT/doc-nobody.txt" || fail "doctor must call the fallback weak"
  rm -rf "$NW"
fi
echo "sandbox_cli: ok"
