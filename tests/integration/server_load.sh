#!/usr/bin/env bash
# server_load.sh — 200 concurrent submissions (several keys, many
# connections at once): every one is answered 202, every returned id is
# distinct, the store holds exactly those 200 tasks, and all complete.
source "$(dirname "$0")/server_lib.bash"

D=$TMP/data
mkdir -p "$D"
ADMIN=$(mkkey "$D" admin admin)
KEYS=()
for i in 1 2 3 4; do KEYS+=("$(mkkey "$D" "user$i" user)"); done
srv_start "$D" --rate-limit-per-min 0 --workers 4 --queue-max 1000 --noop-delay-ms 0

N=200
mkdir -p "$TMP/out"
submit() {
	local i=$1 key=${KEYS[$(($1 % 4))]}
	curl -s -o "$TMP/out/$i.json" -w '%{http_code}\n' --max-time 60 -H "X-API-Key: $key" \
		-d "{\"task_description\":\"load $i\"}" "http://$SRV/run_task" >"$TMP/out/$i.code" || true
}
pids=()
for i in $(seq 1 $N); do
	submit "$i" &
	pids+=($!)
done
for p in "${pids[@]}"; do wait "$p" || true; done

ok=$(cat "$TMP"/out/*.code | grep -c '^202$' || true)
cat "$TMP"/out/*.code | sort | uniq -c >&2
check "all $N submissions answered 202 (got $ok)" eq "$ok" "$N"
cat "$TMP"/out/*.json | jq -r .task_id | sort >"$TMP/ids"
check "$N ids returned" eq "$(wc -l <"$TMP/ids")" "$N"
check "no duplicate ids" eq "$(sort -u "$TMP/ids" | wc -l)" "$N"
# Each description came back on its own task.
for i in 1 77 200; do
	id=$(jq -r .task_id "$TMP/out/$i.json")
	api GET "/tasks/$id" "$ADMIN"
	check "task of submission $i exists" eq "$RESP_CODE" 200
done

# Every task completes; the store lists exactly the returned ids.
for _ in $(seq 1 600); do
	api GET "/tasks?status=completed&limit=1000" "$ADMIN"
	[ "$(jget '.tasks | length')" -ge "$N" ] && break
	sleep 0.1
done
jget '.tasks[].task_id' | sort >"$TMP/stored"
check "all $N completed, exactly the returned ids" diff "$TMP/ids" "$TMP/stored"
api GET "/tasks?limit=1000" "$ADMIN"
check "no extra tasks" eq "$(jget '.tasks | length')" "$N"
curl -s "http://$SRV/metrics" >"$TMP/m"
check "submitted counter" grep -q "^tanuki_tasks_submitted_total $N\$" "$TMP/m"
check "completed counter" grep -q "^tanuki_tasks_total{outcome=\"completed\"} $N\$" "$TMP/m"

# 30 concurrent submissions with wait: each must answer 200 with its own
# completed task, however busy the other tasks keep the server.
mkdir -p "$TMP/w"
pids=()
for i in $(seq 1 30); do
	curl -s -o "$TMP/w/$i.json" -w '%{http_code}\n' --max-time 60 -H "X-API-Key: ${KEYS[1]}" \
		-d "{\"task_description\":\"wait $i noop:delay_ms=200\",\"wait\":50}" \
		"http://$SRV/run_task" >"$TMP/w/$i.code" &
	pids+=($!)
done
for p in "${pids[@]}"; do wait "$p" || true; done
check "30 waits answered 200 ($(cat "$TMP"/w/*.code | sort | uniq -c | tr '\n' ' '))" \
	eq "$(cat "$TMP"/w/*.code | grep -c '^200$')" 30
check "30 waits completed" eq "$(cat "$TMP"/w/*.json | jq -r .status | grep -c '^completed$')" 30
check "each wait got its own task" eq "$(cat "$TMP"/w/*.json | jq -r .result | sort -u | wc -l)" 30

# 40 concurrent event streams on 20 running tasks (two per task, one of
# them resuming after event 2): every stream sees its task to the end with
# gap-free ids. Exercises suspend/resume under concurrency.
sse_ids=()
for i in $(seq 1 20); do
	api POST /run_task "${KEYS[0]}" "{\"task_description\":\"sse $i noop:delay_ms=600\"}"
	sse_ids+=("$(jget .task_id)")
done
pids=()
for i in $(seq 0 19); do
	id=${sse_ids[$i]}
	curl -sN --max-time 60 -H "X-API-Key: ${KEYS[0]}" "http://$SRV/tasks/$id/events" \
		>"$TMP/sse.$i.a" &
	pids+=($!)
	curl -sN --max-time 60 -H "X-API-Key: ${KEYS[0]}" -H 'Last-Event-ID: 2' \
		"http://$SRV/tasks/$id/events" >"$TMP/sse.$i.b" &
	pids+=($!)
done
for p in "${pids[@]}"; do wait "$p" || true; done
bad=0
for i in $(seq 0 19); do
	for v in a b; do
		f=$TMP/sse.$i.$v
		first=1; [ "$v" = b ] && first=3
		n=$(grep -c '^id: ' "$f" || true)
		want=$(seq -s ' ' "$first" $((first + n - 1)))
		got=$(grep '^id: ' "$f" | cut -d' ' -f2 | tr '\n' ' ' | sed 's/ $//')
		if [ "$got" != "$want" ] || ! tail -n 3 "$f" | grep -q '"status":"completed"'; then
			bad=$((bad + 1))
			echo "  stream $i.$v: ids '$got'" >&2
		fi
	done
done
check "40 concurrent streams complete and gap-free ($bad bad)" eq "$bad" 0
# (the server closes its side just after the client saw the end: poll)
for _ in $(seq 1 50); do
	curl -s "http://$SRV/metrics" >"$TMP/m2"
	grep -q '^tanuki_sse_streams 0$' "$TMP/m2" && break
	sleep 0.1
done
check "no stream left open" grep -q '^tanuki_sse_streams 0$' "$TMP/m2"

srv_stop TERM
check "exit 0" eq "$SRV_RC" 0
finish
