#!/usr/bin/env bash
# server_api.sh — every endpoint and error code of the HTTP API against the
# real binary: probes, auth x role x rate limit, validation (oversize,
# malformed, non-UTF-8, bad paths), task life cycle (wait, cancel queued and
# running, deadline, failure), SSE with Last-Event-ID resume, admin
# endpoints, drain, /metrics through promtool, the `tanuki tasks` client.
source "$(dirname "$0")/server_lib.bash"

D=$TMP/data
mkdir -p "$D"
ADMIN=$(mkkey "$D" admin admin)
U1=$(mkkey "$D" alice user)
U2=$(mkkey "$D" bob user)
# Submissions are limited before validation, so most of this test runs with
# a generous limit from the config file; the rate-limit section lowers it to
# the original API's 5/minute through SIGHUP (reload).
echo '{"server":{"rate_limit_per_min":1000}}' >"$TMP/cfg.json"
srv_start "$D" --config "$TMP/cfg.json" --noop-delay-ms 0 --workers 2 --queue-max 50 \
	--sse-heartbeat-ms 200 --set server.max_body_bytes=65536

# ---- probes and public endpoints
api GET /livez ""; check "livez 200" eq "$RESP_CODE" 200
check "livez body" eq "$(jget .status)" alive
api GET /readyz ""; check "readyz 200" eq "$RESP_CODE" 200
check "readyz store check" eq "$(jget .checks.store)" true
api GET /version ""; check "version 200" eq "$RESP_CODE" 200
check "version matches the binary" eq "$(jget .version)" \
	"$("$TANUKI_BIN" version | head -n 1 | grep -o '[0-9][0-9.]*[0-9]' | head -n 1)"
api GET /nope ""; check "unknown route 404" eq "$RESP_CODE" 404
check "404 has detail" eq "$(jget .code)" not_found
api DELETE /livez ""; check "wrong method 405" eq "$RESP_CODE" 405
hdrs=$(curl -s -D - -o /dev/null -X PUT "http://$SRV/run_task")
check "405 names allowed methods" grep -qi '^Allow: POST' <<<"$hdrs"

# ---- headers: request id generated / passed through, security headers, no CORS
hdrs=$(curl -s -D - -o /dev/null "http://$SRV/livez")
check "generated X-Request-ID" grep -qiE '^X-Request-ID: [0-9a-f-]{36}' <<<"$hdrs"
check "nosniff header" grep -qi '^X-Content-Type-Options: nosniff' <<<"$hdrs"
check "no CORS by default" bash -c "! grep -qi '^Access-Control' <<<\"\$0\"" "$hdrs"
hdrs=$(curl -s -D - -o /dev/null -H 'X-Request-ID: my-req.42' "http://$SRV/livez")
check "X-Request-ID passed through" grep -qi '^X-Request-ID: my-req.42' <<<"$hdrs"
hdrs=$(curl -s -D - -o /dev/null -H 'X-Request-ID: bad id!' "http://$SRV/livez")
check "bad X-Request-ID replaced" bash -c "! grep -qi 'bad id' <<<\"\$0\"" "$hdrs"

# ---- auth matrix: missing / invalid / revoked key, user vs admin
api GET /health ""; check "health without key 401" eq "$RESP_CODE" 401
api GET /health "tk_0000000000000000_$(printf '0%.0s' $(seq 64))"
check "health with unknown key 401" eq "$RESP_CODE" 401
api GET /health "garbage"; check "health with garbage key 401" eq "$RESP_CODE" 401
api GET /health "$U1"; check "health with user key 200" eq "$RESP_CODE" 200
check "health body as the original" eq "$(jget .status)" ok
RESP_CODE=$(curl -s -o /dev/null -w '%{http_code}' -H "Authorization: Bearer $U1" "http://$SRV/health")
check "Bearer key accepted" eq "$RESP_CODE" 200
for p in /admin/keys /admin/log-level /admin/models /admin/adapters; do
	api GET "$p" "$U1"; check "user on $p 403" eq "$RESP_CODE" 403
	api GET "$p" ""; check "nobody on $p 401" eq "$RESP_CODE" 401
	api GET "$p" "$ADMIN"; check "admin on $p 200" eq "$RESP_CODE" 200
done
api POST /run_task "" '{"task_description":"x"}'; check "submit without key 401" eq "$RESP_CODE" 401

# ---- validation
bad_bodies=(
	'not json'
	'[1,2]'
	'{}'
	'{"task_description":""}'
	'{"task_description":5}'
	'{"task_description":"x","surprise":1}'
	'{"task_description":"x","task_description":"y"}'
	'{"task_description":"x","wait":-1}'
	'{"task_description":"x","wait":"soon"}'
	'{"task_description":"x","files":[{"path":"/etc/passwd","content":"x"}]}'
	'{"task_description":"x","files":[{"path":"a/../../b","content":"x"}]}'
	'{"task_description":"x","files":[{"path":"a//b","content":"x"}]}'
	'{"task_description":"x","files":[{"path":"ok.txt"}]}'
	'{"task_description":"x","files":[{"path":"a","content":"1"},{"path":"a","content":"2"}]}'
	'{"task_description":"x","file_paths":["../x"]}'
	'{"task_description":"x","language":"c; rm -rf"}'
	'{"task_description":"x\u0000y"}'
)
for b in "${bad_bodies[@]}"; do
	api POST /run_task "$ADMIN" "$b"
	check "400 for $b" eq "$RESP_CODE" 400
	check "detail for $b" test -n "$(jget .detail)"
done
api POST /run_task "$ADMIN" '{"task_description":"x","files":[{"path":"../evil","content":"x"}]}'
check "detail names the field" grep -q 'files\[0\].path' <<<"$(jget .detail)"
printf '{"task_description":"\xff\xfe"}' >"$TMP/nonutf8"
RESP_CODE=$(curl -s -o "$TMP/resp" -w '%{http_code}' -H "X-API-Key: $ADMIN" \
	--data-binary @"$TMP/nonutf8" "http://$SRV/run_task")
check "non-UTF-8 body 400" eq "$RESP_CODE" 400
head -c 70000 /dev/zero | tr '\0' 'a' >"$TMP/big"
RESP_CODE=$(curl -s -o /dev/null -w '%{http_code}' -H "X-API-Key: $ADMIN" \
	--data-binary @"$TMP/big" "http://$SRV/run_task")
check "oversize body 413" eq "$RESP_CODE" 413
RESP_CODE=$(curl -s -o /dev/null -w '%{http_code}' -H "X-API-Key: $ADMIN" \
	-H 'Transfer-Encoding: chunked' --data-binary @"$TMP/big" "http://$SRV/run_task")
check "oversize chunked body 413" eq "$RESP_CODE" 413
# A chunked body far past the cap is not read to its end: the server answers
# 413 and closes (curl, still sending, may only see the close).
n413=$(grep -c '"status":413' "$D/server.log" || true)
head -c 20000000 /dev/zero | curl -s -o /dev/null --max-time 20 -H "X-API-Key: $ADMIN" \
	-H 'Transfer-Encoding: chunked' --data-binary @- "http://$SRV/run_task" || true
for _ in $(seq 1 50); do
	[ "$(grep -c '"status":413' "$D/server.log")" -gt "$n413" ] && break
	sleep 0.1
done
check "endless chunked body cut with 413" test "$(grep -c '"status":413' "$D/server.log")" -gt "$n413"
api GET /livez ""; check "server fine after the endless body" eq "$RESP_CODE" 200
RESP_CODE=$(curl -s -o /dev/null -w '%{http_code}' -H "X-Big: $(head -c 40000 /dev/zero | tr '\0' b)" \
	"http://$SRV/livez")
check "oversize headers refused (431/413)" grep -qE '^(431|413)$' <<<"$RESP_CODE"

# ---- rate limit: back to 5 submissions per minute per key, via SIGHUP
echo '{"server":{"rate_limit_per_min":5}}' >"$TMP/cfg.json"
kill -HUP "$SRV_PID"
for _ in $(seq 1 100); do grep -q 'settings reloaded' "$D/server.log" && break; sleep 0.05; done
check "SIGHUP reloaded" grep -q 'settings reloaded' "$D/server.log"
R=$(mkkey "$D" ratey user)
codes=""
for i in 1 2 3 4 5 6; do
	api POST /run_task "$R" '{"task_description":"rate '"$i"'"}'
	codes="$codes $RESP_CODE"
done
check "5 submissions pass, the 6th is 429 ($codes)" eq "$codes" " 202 202 202 202 202 429"
hdrs=$(curl -s -D - -o /dev/null -H "X-API-Key: $R" -d '{"task_description":"r"}' "http://$SRV/run_task")
check "429 carries Retry-After" grep -qiE '^Retry-After: [1-9]' <<<"$hdrs"
api GET /health "$R"; check "reads are a separate class" eq "$RESP_CODE" 200
api POST /run_task "$U2" '{"task_description":"other key"}'
check "another key is not limited" eq "$RESP_CODE" 202

# ---- task life cycle
api POST /run_task "$U1" '{"task_description":"hello","files":[{"path":"src/a.c","content":"int x;"}],"wait":10}'
check "wait -> 200" eq "$RESP_CODE" 200
check "completed" eq "$(jget .status)" completed
T1=$(jget .task_id)
check "result echoes" eq "$(jget .result)" "noop: hello"
check "output file" eq "$(jget '.files[0].path')" NOOP_RESULT.txt
check "events_url" eq "$(jget .events_url)" "/tasks/$T1/events"
api GET "/tasks/$T1" "$U1"; check "owner sees task" eq "$RESP_CODE" 200
api GET "/tasks/$T1" "$U2"; check "other user gets 404" eq "$RESP_CODE" 404
api GET "/tasks/$T1" "$ADMIN"; check "admin sees task" eq "$RESP_CODE" 200
api GET "/tasks/not-an-id" "$U1"; check "bad id 404" eq "$RESP_CODE" 404
api GET "/tasks/$T1/events" "$U2"; check "other user's events 404" eq "$RESP_CODE" 404
api POST "/tasks/$T1/cancel" "$U1"; check "cancel finished task 409" eq "$RESP_CODE" 409

api POST /run_task "$U2" '{"task_description":"boom noop:fail"}'
T2=$(jget .task_id)
check "failing task fails" wait_status "$T2" "$U2" failed
check "failure reason" eq "$(jget .error)" "noop: asked to fail"

# list: user sees own only; admin all; filters; pagination
api GET "/tasks?limit=100" "$U1"
check "user lists own tasks only" eq "$(jget '[.tasks[].owner_key_id] | unique | length')" 1
api GET "/tasks?status=failed" "$ADMIN"
check "status filter" eq "$(jget '[.tasks[].status] | unique | join(",")')" failed
api GET "/tasks?limit=1" "$ADMIN"; C=$(jget .next_cursor)
check "page 1 has one task" eq "$(jget '.tasks | length')" 1
api GET "/tasks?limit=1&cursor=$C" "$ADMIN"
check "page 2 continues" test "$(jget '.tasks[0].task_id')" \< "$C" -o "$(jget '.tasks[0].task_id')" = "$C"
api GET "/tasks?status=bogus" "$ADMIN"; check "bad status filter 400" eq "$RESP_CODE" 400
api GET "/tasks?limit=0" "$ADMIN"; check "bad limit 400" eq "$RESP_CODE" 400

# cancel a running task (slow noop task)
api POST /run_task "$U2" '{"task_description":"slow noop:delay_ms=20000"}'
T3=$(jget .task_id)
check "slow task runs" wait_status "$T3" "$U2" running
api POST "/tasks/$T3/cancel" "$U1"; check "other user cannot cancel (404)" eq "$RESP_CODE" 404
api POST "/tasks/$T3/cancel" "$U2"
check "cancel running -> 200" eq "$RESP_CODE" 200
check "cancelled" eq "$(jget .status)" cancelled

# ---- SSE: full stream, then resume after Last-Event-ID
curl -sN --max-time 20 -H "X-API-Key: $U1" "http://$SRV/tasks/$T1/events" >"$TMP/sse1"
ids=$(grep '^id: ' "$TMP/sse1" | cut -d' ' -f2 | tr '\n' ' ')
n=$(grep -c '^id: ' "$TMP/sse1")
check "sse ids are 1..n ($ids)" eq "$ids" "$(seq -s ' ' 1 "$n") "
check "sse ends with the terminal status" eq "$(grep '^data: ' "$TMP/sse1" | tail -n 1)" 'data: {"status":"completed"}'
curl -sN --max-time 20 -H "X-API-Key: $U1" -H "Last-Event-ID: 3" "http://$SRV/tasks/$T1/events" >"$TMP/sse2"
ids2=$(grep '^id: ' "$TMP/sse2" | cut -d' ' -f2 | tr '\n' ' ')
check "resume after 3 ($ids2)" eq "$ids2" "$(seq -s ' ' 4 "$n") "
api GET "/tasks/$T1/events" "$U1" "" -H "Last-Event-ID: x"
check "bad Last-Event-ID 400" eq "$RESP_CODE" 400
# live stream with heartbeats: a 1.5 s task, heartbeat every 200 ms
api POST /run_task "$U2" '{"task_description":"live noop:delay_ms=1500"}'
T4=$(jget .task_id)
curl -sN --max-time 20 -H "X-API-Key: $U2" "http://$SRV/tasks/$T4/events" >"$TMP/sse3"
check "live stream has heartbeats" grep -q '^: keepalive' "$TMP/sse3"
check "live stream saw progress" grep -q '^event: progress' "$TMP/sse3"
check "live stream ended completed" grep -q '"status":"completed"' "$TMP/sse3"

# ---- admin: keys, log level
api POST /admin/keys "$ADMIN" '{"name":"carol","role":"user"}'
check "admin creates key 201" eq "$RESP_CODE" 201
K=$(jget .key); KID=$(jget .id)
api GET /health "$K"; check "new key works" eq "$RESP_CODE" 200
api POST /admin/keys "$ADMIN" '{"name":"x","role":"root"}'; check "bad role 400" eq "$RESP_CODE" 400
api POST /admin/keys "$ADMIN" '{"role":"user"}'; check "missing name 400" eq "$RESP_CODE" 400
api GET /admin/keys "$ADMIN"
check "key listed" eq "$(jget "[.keys[] | select(.id==\"$KID\")] | length")" 1
check "no secrets in list" bash -c "! grep -q 'tk_' <<<\"\$0\" || ! grep -q '\"key\"' <<<\"\$0\"" "$RESP_BODY"
api POST "/admin/keys/$KID/revoke" "$ADMIN"; check "revoke 200" eq "$RESP_CODE" 200
check "revoked stamped" test "$(jget .revoked)" != null
api GET /health "$K"; check "revoked key 401" eq "$RESP_CODE" 401
api POST "/admin/keys/0000000000000000/revoke" "$ADMIN"; check "revoke unknown 404" eq "$RESP_CODE" 404
api PUT /admin/log-level "$ADMIN" '{"level":"debug"}'; check "set log level" eq "$(jget .level)" debug
api PUT /admin/log-level "$ADMIN" '{"level":"loud"}'; check "bad level 400" eq "$RESP_CODE" 400
api PUT /admin/log-level "$ADMIN" '{"level":"info"}'

# ---- the key never reaches the log; access lines carry route templates
check "no key text in the log" bash -c "! grep -q \"\$0\" \"\$1\"" "${U1#tk_*_}" "$D/server.log"
check "access line with template" grep -q '"route":"/tasks/{id}"' "$D/server.log"
check "access line with key id" grep -q '"key_id":"' "$D/server.log"

# ---- tanuki tasks (API client)
out=$("$TANUKI_BIN" tasks show "$T1" --url "http://$SRV" --key "$U1")
check "tasks show" eq "$(jq -r .status <<<"$out")" completed
out=$("$TANUKI_BIN" tasks list --url "http://$SRV" --key "$ADMIN" --status cancelled)
check "tasks list" eq "$(jq -r '.tasks[0].task_id' <<<"$out")" "$T3"
out=$("$TANUKI_BIN" tasks events "$T1" --url "http://$SRV" --key "$U1" --last-event-id 2)
check "tasks events resumes" eq "$(grep '^id: ' <<<"$out" | head -n 1)" "id: 3"
check "tasks show of another's task fails" bash -c "! \"\$0\" tasks show \"\$1\" --url http://\$2 --key \"\$3\" 2>/dev/null" \
	"$TANUKI_BIN" "$T1" "$SRV" "$U2"

# ---- metrics
curl -s "http://$SRV/metrics" >"$TMP/metrics"
check "promtool accepts /metrics" promtool check metrics <"$TMP/metrics"
check "request counter by template" grep -q 'tanuki_http_requests_total{route="/tasks/{id}",method="GET",code="200"}' "$TMP/metrics"
check "no raw task id in labels" bash -c "! grep -q \"\$0\" \"\$1\"" "$T1" "$TMP/metrics"
check "rate limited counted" grep -qE '^tanuki_http_rate_limited_total\{class="submit"\} [1-9]' "$TMP/metrics"
check "auth failures counted" grep -qE '^tanuki_http_auth_failures_total\{reason="missing"\} [1-9]' "$TMP/metrics"
check "outcomes counted" grep -qE '^tanuki_tasks_total\{outcome="cancelled"\} [1-9]' "$TMP/metrics"

# ---- docs/openapi.yaml and the route table agree: every documented path
# exists (PATCH is never allowed, so a known path answers 405 rather than 404)
# and its Allow header lists exactly the documented methods.
awk '/^  \/[^ ]*:$/ { if (p) print p, m; p = substr($1, 1, length($1) - 1); m = "" }
     /^    (get|post|put|delete):/ { sub(":", "", $1); m = m toupper($1) "," }
     END { print p, m }' "$TK_SOURCE_DIR/docs/openapi.yaml" >"$TMP/paths"
check "openapi lists the endpoints" test "$(wc -l <"$TMP/paths")" -ge 15
while read -r path methods; do
	url=${path//\{id\}/$T1}
	url=${url//\{key_id\}/$KID}
	hdrs=$(curl -s -D - -o /dev/null -X PATCH "http://$SRV$url")
	check "PATCH $path is 405" grep -q '^HTTP/1.1 405' <<<"$hdrs"
	allow=$(grep -i '^Allow:' <<<"$hdrs" | cut -d' ' -f2- | tr -d '\r ' | tr ',' '\n' | sort | tr '\n' ',')
	want=$(tr ',' '\n' <<<"$methods" | grep . | sort | tr '\n' ',')
	check "Allow of $path ($allow) is the documented ($want)" eq "$allow" "$want"
done <"$TMP/paths"

# ---- drain through the admin endpoint: submissions 503, readyz 503
api POST /admin/drain "$ADMIN"; check "drain 200" eq "$RESP_CODE" 200
api POST /run_task "$U1" '{"task_description":"late"}'; check "submit while draining 503" eq "$RESP_CODE" 503
check "503 code" eq "$(jget .code)" draining
api GET /readyz ""; check "readyz 503 while draining" eq "$RESP_CODE" 503
api GET /livez ""; check "livez still 200" eq "$RESP_CODE" 200
srv_stop TERM
check "exit 0 after SIGTERM" eq "$SRV_RC" 0
finish
