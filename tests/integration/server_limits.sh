#!/usr/bin/env bash
# server_limits.sh — limits that need their own server settings: per-task
# deadline (timed_out), bounded queue (503 + Retry-After), connection
# timeout for a slow client (the server cuts it and keeps serving others),
# connection cap, and CORS when configured.
source "$(dirname "$0")/server_lib.bash"

D=$TMP/data
mkdir -p "$D"
K=$(mkkey "$D" u user)
srv_start "$D" --rate-limit-per-min 0 --workers 1 --queue-max 2 --task-timeout-ms 1500 \
	--noop-delay-ms 0 --set server.connection_timeout_s=1 --cors-origin https://app.example \
	--set server.max_connections=20

# ---- a second server on the same port fails clearly (exit 1), the first
# one is unharmed
rc=0
"$TANUKI_BIN" serve --listen "$SRV" --data-dir "$TMP/other" 2>"$TMP/second.err" || rc=$?
check "second server on a used port exits 1 ($rc)" eq "$rc" 1
check "it says why" grep -q 'cannot listen' "$TMP/second.err"
api GET /livez ""; check "first server unharmed" eq "$RESP_CODE" 200
rc=0
"$TANUKI_BIN" serve --listen nonsense --data-dir "$TMP/other" 2>/dev/null || rc=$?
check "bad --listen is a usage error (2)" eq "$rc" 2

# ---- deadline
api POST /run_task "$K" '{"task_description":"slow noop:delay_ms=20000","wait":15}'
check "deadline -> answered when the task ended" eq "$RESP_CODE" 200
check "timed_out" eq "$(jget .status)" timed_out
check "timeout reason" grep -q 'deadline of 1500 ms' <<<"$(jget .error)"

# ---- bounded queue: 1 worker busy (until its 1.5 s deadline), 2 queued, the
# next is 503
api POST /run_task "$K" '{"task_description":"busy noop:delay_ms=20000"}'; B=$(jget .task_id)
check "busy running" wait_status "$B" "$K" running
api POST /run_task "$K" '{"task_description":"q1"}'; check "q1 accepted" eq "$RESP_CODE" 202
api POST /run_task "$K" '{"task_description":"q2"}'; check "q2 accepted" eq "$RESP_CODE" 202
hdrs=$(curl -s -D - -o "$TMP/resp" -H "X-API-Key: $K" -d '{"task_description":"q3"}' "http://$SRV/run_task")
check "queue full 503" grep -q '^HTTP/1.1 503' <<<"$hdrs"
check "queue full Retry-After" grep -qi '^Retry-After: [1-9]' <<<"$hdrs"
check "queue full code" eq "$(jq -r .code "$TMP/resp")" queue_full
check "busy timed out" wait_status "$B" "$K" timed_out
api POST /run_task "$K" '{"task_description":"q4","wait":10}'
check "accepted again once the queue drains" eq "$RESP_CODE" 200

# ---- CORS when configured, with preflight
hdrs=$(curl -s -D - -o /dev/null "http://$SRV/livez")
check "CORS origin header" grep -qi '^Access-Control-Allow-Origin: https://app.example' <<<"$hdrs"
hdrs=$(curl -s -D - -o /dev/null -X OPTIONS -H 'Origin: https://app.example' \
	-H 'Access-Control-Request-Method: POST' "http://$SRV/run_task")
check "preflight 204" grep -q '^HTTP/1.1 204' <<<"$hdrs"
check "preflight allows X-API-Key" grep -qi '^Access-Control-Allow-Headers: .*X-API-Key' <<<"$hdrs"

# ---- slow client: sends half a request line and stalls; the server closes
# the connection after the 1 s timeout (python3 measures nothing, it only
# reports whether the server hung up within 10 s).
cat >"$TMP/slow.py" <<'PY'
import socket, sys
s = socket.create_connection((sys.argv[1], int(sys.argv[2])))
s.sendall(b"GET /livez HT")
s.settimeout(10)
try:
    data = s.recv(100)
    print("closed" if data == b"" else "data")
except socket.timeout:
    print("still-open")
PY
host=${SRV%:*}; port=${SRV##*:}
python3 "$TMP/slow.py" "$host" "$port" >"$TMP/slow.out" &
SLOW=$!
sleep 0.2
api GET /livez ""; check "others served while a client stalls" eq "$RESP_CODE" 200
wait "$SLOW" || true
check "slow client cut off ($(cat "$TMP/slow.out"))" grep -q closed "$TMP/slow.out"

# ---- connection cap: 30 idle connections against a cap of 20; the server
# stays up and serves again once they go.
cat >"$TMP/many.py" <<'PY'
import socket, sys, time
conns = []
for _ in range(30):
    try:
        conns.append(socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=2))
    except OSError:
        pass
time.sleep(0.5)
for c in conns:
    c.close()
PY
python3 "$TMP/many.py" "$host" "$port"
api GET /livez ""; check "serving after the connection flood" eq "$RESP_CODE" 200
srv_stop TERM
check "exit 0" eq "$SRV_RC" 0

# ---- /metrics on its own address (server.metrics_listen): served there
# without a key, and no longer on the API port
D3=$TMP/data3
mkdir -p "$D3"
srv_start "$D3" --set server.metrics_listen=127.0.0.1:0
MADDR=$(sed -n 2p "$D3/addr")
check "metrics address written" test -n "$MADDR"
RESP_CODE=$(curl -s -o "$TMP/m" -w '%{http_code}' "http://$MADDR/metrics")
check "metrics on its own port" eq "$RESP_CODE" 200
check "metrics there pass promtool" promtool check metrics <"$TMP/m"
api GET /metrics ""; check "metrics gone from the API port" eq "$RESP_CODE" 404
RESP_CODE=$(curl -s -o /dev/null -w '%{http_code}' "http://$MADDR/livez")
check "the metrics port serves nothing else" eq "$RESP_CODE" 404
srv_stop TERM
check "exit 0 with two listeners" eq "$SRV_RC" 0

# ---- guessing keys: after N failed authentications in a minute from one
# address (here 3, one token back every 20 s, so timing cannot blur the
# count), that address gets 429 (with Retry-After) before any key check —
# even with a valid key; other endpoints without a key stay open.
D4=$TMP/data4
mkdir -p "$D4"
GOOD=$(mkkey "$D4" g user)
ADM4=$(mkkey "$D4" a admin)
srv_start "$D4" --auth-failures-per-min 3 --read-rate-per-min 2 --admin-rate-per-min 2
# (first the per-key read and admin classes: 2 per minute each here)
codes=""
for i in 1 2 3; do api GET /health "$GOOD"; codes="$codes$RESP_CODE "; done
check "read class: 2 then 429 ($codes)" eq "$codes" "200 200 429 "
codes=""
for i in 1 2 3; do api GET /admin/keys "$ADM4"; codes="$codes$RESP_CODE "; done
check "admin class: 2 then 429 ($codes)" eq "$codes" "200 200 429 "
api GET /health "$ADM4"; check "admin key's read budget is its own" eq "$RESP_CODE" 200
api POST /run_task "$GOOD" '{"task_description":"x"}'
check "submit class unaffected by the read limit" eq "$RESP_CODE" 202
codes=""
for i in 1 2 3 4; do
	api GET /health "tk_0000000000000000_$(printf '%064d' "$i")"
	codes="$codes$RESP_CODE "
done
check "3 failures answered 401, then 429 ($codes)" eq "$codes" "401 401 401 429 "
hdrs=$(curl -s -D - -o /dev/null -H "X-API-Key: $GOOD" "http://$SRV/health")
check "locked-out address refused even with a good key" grep -q '^HTTP/1.1 429' <<<"$hdrs"
check "lockout carries Retry-After" grep -qi '^Retry-After: [1-9]' <<<"$hdrs"
api GET /livez ""; check "probes stay open" eq "$RESP_CODE" 200
curl -s "http://$SRV/metrics" >"$TMP/m4"
check "lockouts counted" grep -qE '^tanuki_http_rate_limited_total\{class="auth_failure"\} [1-9]' "$TMP/m4"
srv_stop TERM

# ---- bootstrap admin key from the environment on first start (and again:
# the second start finds it stored), never written to the log
D2=$TMP/data2
mkdir -p "$D2"
BOOT=$(python3 -c 'import secrets; print("tk_%s_%s" % (secrets.token_hex(8), secrets.token_hex(32)))')
TANUKI_SERVER_ADMIN_KEY=$BOOT srv_start "$D2"
api GET /admin/keys "$BOOT"; check "bootstrap admin key works" eq "$RESP_CODE" 200
check "bootstrap key listed as admin" eq "$(jget '.keys[0].role')" admin
srv_stop TERM
TANUKI_SERVER_ADMIN_KEY=$BOOT srv_start "$D2"
api GET /admin/keys "$BOOT"; check "bootstrap key after restart" eq "$(jget '.keys | length')" 1
srv_stop TERM
check "bootstrap key never logged" bash -c "! grep -q \"\${0##*_}\" \"\$1\"" "$BOOT" "$D2/server.log"
finish
