#!/usr/bin/env bash
# server_crash.sh — never lose a task:
#  1. kill -9 while tasks run and others are queued; restart; every task
#     submitted is accounted for: completed, or failed with the restart
#     reason, or re-queued and then completed.
#  2. SIGTERM drain: a short task finishes within the grace period, a long
#     one is stopped at the end of it and stored as failed with the reason,
#     queued ones stay queued and run after the next start; exit 0.
source "$(dirname "$0")/server_lib.bash"

D=$TMP/data
mkdir -p "$D"
K=$(mkkey "$D" u user)

# ---- 1. kill -9
srv_start "$D" --rate-limit-per-min 0 --workers 2 --noop-delay-ms 0
# Two long tasks take both workers; four more wait in the queue (they take
# no time once they run).
ids=()
for i in 1 2 3 4 5 6; do
	delay=""
	[ "$i" -le 2 ] && delay=" noop:delay_ms=30000"
	api POST /run_task "$K" "{\"task_description\":\"crash $i$delay\"}"
	check "submit $i" eq "$RESP_CODE" 202
	ids+=("$(jget .task_id)")
done
# Wait until two are running and have emitted progress (work started).
for _ in $(seq 1 100); do
	api GET "/tasks?status=running" "$K"
	[ "$(jget '.tasks | length')" = 2 ] && break
	sleep 0.05
done
check "two running before the kill" eq "$(jget '.tasks | length')" 2
sleep 0.3
srv_stop KILL
# Restart with fast tasks: the recovered ones must settle.
srv_start "$D" --rate-limit-per-min 0 --workers 2 --noop-delay-ms 0
n_failed=0
n_done=0
for id in "${ids[@]}"; do
	for _ in $(seq 1 300); do
		api GET "/tasks/$id" "$K"
		case "$(jget .status)" in completed|failed) break ;; esac
		sleep 0.05
	done
	st=$(jget .status)
	case "$st" in
	failed)
		check "failed with the restart reason ($id)" eq "$(jget .error)" "interrupted by restart"
		n_failed=$((n_failed + 1)) ;;
	completed)
		n_done=$((n_done + 1)) ;;
	*)
		fail "task $id is '$st' after restart" ;;
	esac
done
check "the 2 running tasks failed with the reason ($n_failed)" eq "$n_failed" 2
check "the 4 queued tasks completed after restart ($n_done)" eq "$n_done" 4
api GET "/tasks?limit=1000" "$K"
check "no task appeared or vanished" eq "$(jget '.tasks | length')" 6
check "recovery logged" grep -q 'recovered tasks left running' "$D/server.log"
srv_stop TERM

# ---- 2. SIGTERM drain with a 5 s grace
D2=$TMP/data2
mkdir -p "$D2"
K2=$(mkkey "$D2" u user)
srv_start "$D2" --rate-limit-per-min 0 --workers 2 --drain-grace-s 5 --noop-delay-ms 0
api POST /run_task "$K2" '{"task_description":"short noop:delay_ms=2500"}'; SHORT=$(jget .task_id)
api POST /run_task "$K2" '{"task_description":"long noop:delay_ms=60000"}'; LONG=$(jget .task_id)
api POST /run_task "$K2" '{"task_description":"queued a"}'; Q1=$(jget .task_id)
api POST /run_task "$K2" '{"task_description":"queued b"}'; Q2=$(jget .task_id)
check "long running" wait_status "$LONG" "$K2" running
api GET "/tasks/$SHORT" "$K2"; check "short still running at SIGTERM" eq "$(jget .status)" running
# An event stream open on the long task must end (with its final status)
# when the server drains.
curl -sN --max-time 60 -H "X-API-Key: $K2" "http://$SRV/tasks/$LONG/events" >"$TMP/sse.long" &
SSE_PID=$!
sleep 0.2
kill -TERM "$SRV_PID"
# During the grace period: no new tasks, not ready, but still serving.
sleep 0.2
api POST /run_task "$K2" '{"task_description":"too late"}'
check "submit during drain 503" eq "$RESP_CODE" 503
hdrs=$(curl -s -D - -o /dev/null -H "X-API-Key: $K2" -d '{"task_description":"x"}' "http://$SRV/run_task")
check "503 carries Retry-After" grep -qi '^Retry-After: ' <<<"$hdrs"
api GET /readyz ""; check "readyz 503 during drain" eq "$RESP_CODE" 503
srv_stop TERM
check "exit 0 after drain" eq "$SRV_RC" 0
wait "$SSE_PID" || true
check "open stream saw the long task fail" grep -q '"status":"failed","error":"server shutting down"' "$TMP/sse.long"
check "drain logged" grep -q '"msg":"shutting down"' "$D2/server.log"
# Restart to read the outcome (queued tasks then run).
srv_start "$D2" --rate-limit-per-min 0 --workers 2 --noop-delay-ms 0
api GET "/tasks/$SHORT" "$K2"; check "short task finished in the grace period" eq "$(jget .status)" completed
api GET "/tasks/$LONG" "$K2"; check "long task failed" eq "$(jget .status)" failed
check "long task reason" eq "$(jget .error)" "server shutting down"
check "queued a ran after restart" wait_status "$Q1" "$K2" completed
check "queued b ran after restart" wait_status "$Q2" "$K2" completed
api GET "/tasks?limit=1000" "$K2"
check "4 tasks, none lost" eq "$(jget '.tasks | length')" 4
srv_stop TERM
finish
