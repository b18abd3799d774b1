# llm_lib.bash — sourced by the llm_*.sh tests: starts the fake LLM server
# (llm_fake_server.py) on a free loopback port and stops it on exit.
# Sets: T (scratch dir), P (port), B (tanuki binary), LOG (request log).
set -euo pipefail
B="${TANUKI_BIN:?TANUKI_BIN must point at the tanuki binary}"
T=$(mktemp -d)
LOG="$T/requests.log"
: >"$LOG"
FAKE_PID=
llm_cleanup() {
  if [ -n "$FAKE_PID" ]; then kill "$FAKE_PID" 2>/dev/null || true; wait "$FAKE_PID" 2>/dev/null || true; fi
  rm -rf "$T"
}
trap llm_cleanup EXIT
python3 "$(dirname "${BASH_SOURCE[0]}")/llm_fake_server.py" "$T/port" "$LOG" &
FAKE_PID=$!
for _ in $(seq 1 100); do [ -s "$T/port" ] && break; sleep 0.05; done
[ -s "$T/port" ] || { echo "fake server did not start"; exit 1; }
P=$(cat "$T/port")

fail() { echo "FAIL: $*"; exit 1; }
# expect_eq WHAT GOT WANT
expect_eq() { [ "$2" == "$3" ] || fail "$1: got '$2', want '$3'"; }
# requests_for PATH MODEL: how many requests the server saw for that model
requests_for() { jq -c --arg p "$1" --arg m "$2" 'select(.path == $p and .body.model == $m)' "$LOG" | wc -l; }
