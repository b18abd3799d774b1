# server_lib.bash — helpers shared by the server_*.sh integration tests
# (sourced, not a test itself: the test glob only takes *.sh).
#
# srv_start DIR [serve flags...]   starts `tanuki serve` on 127.0.0.1, a free
#                                  port (port 0 + --addr-file), sets SRV_PID
#                                  and SRV (host:port); waits for /livez.
#                                  Runner noop unless the flags say --runner.
# srv_stop                          SIGTERM, waits (bounded), then SIGKILL.
# mkkey DIR NAME ROLE               prints a new API key.
# api METHOD PATH KEY [BODY]        curl; prints "STATUS BODY" into $RESP_CODE/$RESP_BODY.
# fail MSG / check COND MSG         test assertions.
set -euo pipefail

: "${TANUKI_BIN:?TANUKI_BIN must point to the tanuki binary}"
TMP=$(mktemp -d "${TMPDIR:-/tmp}/tk-srv-test.XXXXXX")
SRV_PID=""
SRV=""
SRV_DIR=""
FAILS=0

cleanup() {
	if [ -n "$SRV_PID" ] && kill -0 "$SRV_PID" 2>/dev/null; then
		kill -KILL "$SRV_PID" 2>/dev/null || true
		wait "$SRV_PID" 2>/dev/null || true
	fi
	rm -rf "$TMP"
}
trap cleanup EXIT

fail() {
	echo "FAIL: $*" >&2
	FAILS=$((FAILS + 1))
}

# check "<description>" <command...>: runs the command; failure is recorded.
check() {
	local what=$1
	shift
	if ! "$@"; then
		fail "$what"
	fi
}

eq() { [ "$1" = "$2" ] || { echo "  expected '$2', got '$1'" >&2; return 1; }; }

mkkey() {
	"$TANUKI_BIN" keys create --data-dir "$1" --name "$2" --role "$3" | tail -n 1
}

srv_start() {
	local dir=$1
	shift
	SRV_DIR=$dir
	rm -f "$dir/addr"
	# The noop runner unless the test picks another (--runner later wins):
	# these tests are about the server, not the agents.
	"$TANUKI_BIN" serve --listen 127.0.0.1:0 --data-dir "$dir" --addr-file "$dir/addr" \
		--runner noop "$@" \
		2>>"$dir/server.log" &
	SRV_PID=$!
	for _ in $(seq 1 200); do
		if [ -s "$dir/addr" ]; then
			SRV=$(head -n 1 "$dir/addr")
			if curl -s -o /dev/null --max-time 2 "http://$SRV/livez"; then
				return 0
			fi
		fi
		if ! kill -0 "$SRV_PID" 2>/dev/null; then
			echo "server exited during start-up; log:" >&2
			tail -n 20 "$dir/server.log" >&2
			exit 1
		fi
		sleep 0.05
	done
	echo "server did not start" >&2
	exit 1
}

# srv_stop [signal]: sends the signal (TERM), waits up to 60 s; sets SRV_RC.
srv_stop() {
	local sig=${1:-TERM}
	SRV_RC=0
	[ -n "$SRV_PID" ] || return 0
	kill -s "$sig" "$SRV_PID" 2>/dev/null || true
	for _ in $(seq 1 600); do
		kill -0 "$SRV_PID" 2>/dev/null || break
		sleep 0.1
	done
	if kill -0 "$SRV_PID" 2>/dev/null; then
		fail "server did not exit after SIG$sig"
		kill -KILL "$SRV_PID" 2>/dev/null || true
	fi
	wait "$SRV_PID" 2>/dev/null || SRV_RC=$?
	SRV_PID=""
	# Under ASan/UBSan a report lands in the server's stderr (the log).
	if grep -qE 'ERROR: (Address|Leak)Sanitizer|runtime error:' "$SRV_DIR/server.log"; then
		fail "sanitizer report in $SRV_DIR/server.log"
		grep -E -A20 'ERROR: (Address|Leak)Sanitizer|runtime error:' "$SRV_DIR/server.log" | head -n 40 >&2
	fi
}

# api METHOD PATH KEY [BODY [extra curl args...]]: sets RESP_CODE, RESP_BODY.
api() {
	local method=$1 path=$2 key=$3 body=${4-}
	shift 3
	[ $# -gt 0 ] && shift
	local args=(-s -o "$TMP/resp" -w '%{http_code}' --max-time 30 -X "$method")
	[ -n "$key" ] && args+=(-H "X-API-Key: $key")
	if [ -n "$body" ]; then
		args+=(-H 'Content-Type: application/json' --data-binary "$body")
	fi
	RESP_CODE=$(curl "${args[@]}" "$@" "http://$SRV$path") || RESP_CODE=000
	RESP_BODY=$(cat "$TMP/resp" 2>/dev/null || true)
}

jget() { printf '%s' "$RESP_BODY" | jq -r "$1"; }

# wait_status ID KEY STATUS: polls GET /tasks/ID (bounded, 30 s).
wait_status() {
	local id=$1 key=$2 want=$3
	for _ in $(seq 1 300); do
		api GET "/tasks/$id" "$key"
		[ "$(jget .status)" = "$want" ] && return 0
		sleep 0.1
	done
	echo "  task $id: wanted $want, last $(jget .status)" >&2
	return 1
}

finish() {
	if [ "$FAILS" -gt 0 ]; then
		echo "$FAILS check(s) failed" >&2
		exit 1
	fi
	echo "all checks passed"
}
