#!/usr/bin/env bash
# server_wrk.sh — HTTP throughput and latency of `tanuki serve` with wrk.
# Prints wrk's numbers; never passes or fails on them.
#
#   bench/server_wrk.sh [TANUKI_BIN] [DURATION_S] [CONNECTIONS] [THREADS]
#
# Two runs against a fresh data directory on 127.0.0.1:
#   1. GET /livez                   the HTTP stack alone (no auth, no store);
#   2. POST /run_task, wait=30      submit-and-complete with the noop runner
#                                   (delay 0): auth, validation, one store
#                                   transaction to create, claim, 3 events,
#                                   an output file, the final status, and the
#                                   suspended wait resumed by the worker.
# Rate limits are off (--rate-limit-per-min 0, --read-rate-per-min 0) so the
# limiter does not answer 429 instead of working.
set -euo pipefail

BIN=${1:-${TANUKI_BIN:-build/src/cli/tanuki}}
DUR=${2:-10}
CONNS=${3:-32}
THREADS=${4:-2}
command -v wrk >/dev/null || { echo "wrk not installed (apt-get install wrk)" >&2; exit 1; }

TMP=$(mktemp -d "${TMPDIR:-/tmp}/tk-wrk.XXXXXX")
PID=""
cleanup() {
	[ -n "$PID" ] && kill -TERM "$PID" 2>/dev/null && wait "$PID" 2>/dev/null || true
	rm -rf "$TMP"
}
trap cleanup EXIT

KEY=$("$BIN" keys create --data-dir "$TMP" --name bench --role user | tail -n 1)
"$BIN" serve --listen 127.0.0.1:0 --data-dir "$TMP" --addr-file "$TMP/addr" \
	--rate-limit-per-min 0 --read-rate-per-min 0 --workers 4 --queue-max 10000 \
	--http-threads 4 --runner noop --set log.level=warning 2>"$TMP/server.log" &
PID=$!
for _ in $(seq 1 100); do [ -s "$TMP/addr" ] && break; sleep 0.05; done
ADDR=$(cat "$TMP/addr")

echo "== GET /livez (${DUR}s, ${CONNS} connections, ${THREADS} threads)"
wrk -t"$THREADS" -c"$CONNS" -d"${DUR}s" --latency "http://$ADDR/livez"

cat >"$TMP/submit.lua" <<'LUA'
wrk.method = "POST"
wrk.body = '{"task_description":"bench noop task","wait":30}'
wrk.headers["Content-Type"] = "application/json"
wrk.headers["X-API-Key"] = os.getenv("TK_KEY")
LUA
echo
echo "== POST /run_task wait=30, noop runner (${DUR}s, ${CONNS} connections, ${THREADS} threads)"
TK_KEY=$KEY wrk -t"$THREADS" -c"$CONNS" -d"${DUR}s" --latency -s "$TMP/submit.lua" \
	"http://$ADDR/run_task"
echo
echo "tasks completed: $(curl -s "http://$ADDR/metrics" | grep '^tanuki_tasks_total{outcome="completed"}' | cut -d' ' -f2)"
