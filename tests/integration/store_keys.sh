#!/usr/bin/env bash
# store_keys.sh — `tanuki keys create|list|revoke` against a fresh data
# directory: the key is the last stdout line, list never shows a secret,
# revoke marks the key, and the database holds no secret and passes
# SQLite's integrity check.
set -euo pipefail

: "${TANUKI_BIN:?TANUKI_BIN must point at the tanuki binary}"
work=$(mktemp -d "${TMPDIR:-/tmp}/tanuki-it-keys-XXXXXX")
trap 'rm -rf "$work"' EXIT
data="$work/data"

fail() { echo "FAIL: $*" >&2; exit 1; }

# create: last line of stdout is the key.
"$TANUKI_BIN" keys create --data-dir "$data" --name "ci bot" --role admin >"$work/out1" 2>"$work/err1" \
  || fail "create admin exited $?: $(cat "$work/err1")"
key1=$(tail -n 1 "$work/out1")
[[ "$key1" =~ ^tk_([0-9a-f]{16})_([0-9a-f]{64})$ ]] || fail "last line is not a key: '$key1'"
id1=${BASH_REMATCH[1]}
secret1=${BASH_REMATCH[2]}

"$TANUKI_BIN" keys create --data-dir "$data" --name user-one --role user >"$work/out2" 2>/dev/null
key2=$(tail -n 1 "$work/out2")
[[ "$key2" =~ ^tk_([0-9a-f]{16})_([0-9a-f]{64})$ ]] || fail "second key malformed: '$key2'"
id2=${BASH_REMATCH[1]}
[ "$id1" != "$id2" ] || fail "two keys share id $id1"
[ "$key1" != "$key2" ] || fail "two identical keys"

# The database file is owner-only.
mode=$(stat -c %a "$data/tanuki.db")
[ "$mode" = 600 ] || fail "tanuki.db has mode $mode, want 600"

# list: both ids, names and roles; no secret anywhere.
"$TANUKI_BIN" keys list --data-dir "$data" >"$work/list"
grep -q "^$id1 .*admin .*ci bot\$" "$work/list" || fail "list lacks admin key: $(cat "$work/list")"
grep -q "^$id2 .*user .*user-one\$" "$work/list" || fail "list lacks user key"
if grep -q "$secret1" "$work/list"; then fail "list shows a secret"; fi

"$TANUKI_BIN" keys list --data-dir "$data" --json >"$work/list.json"
python3 - "$work/list.json" "$id1" "$id2" <<'PY'
import json, sys
keys = json.load(open(sys.argv[1]))
by = {k["id"]: k for k in keys}
assert set(by) == {sys.argv[2], sys.argv[3]}, by
assert by[sys.argv[2]]["role"] == "admin" and by[sys.argv[2]]["name"] == "ci bot"
assert by[sys.argv[3]]["role"] == "user"
assert all(k["revoked"] is False and k["revoked_at"] is None for k in keys)
for k in keys:
    assert set(k) == {"id", "name", "role", "created", "last_used", "revoked_at", "revoked"}, k
PY

# revoke by id: the list shows a revocation time for it only.
"$TANUKI_BIN" keys revoke --data-dir "$data" "$id1" >"$work/rev" || fail "revoke exited $?"
grep -q "revoked API key $id1" "$work/rev" || fail "revoke output: $(cat "$work/rev")"
"$TANUKI_BIN" keys list --data-dir "$data" --json >"$work/list2.json"
python3 - "$work/list2.json" "$id1" "$id2" <<'PY'
import json, sys
by = {k["id"]: k for k in json.load(open(sys.argv[1]))}
assert by[sys.argv[2]]["revoked"] is True and by[sys.argv[2]]["revoked_at"], by
assert by[sys.argv[3]]["revoked"] is False, by
PY
# Revoking again is fine; an unknown id is a runtime failure (1); a
# malformed id is a usage error (2).
"$TANUKI_BIN" keys revoke --data-dir "$data" "$id1" >/dev/null || fail "second revoke failed"
set +e
"$TANUKI_BIN" keys revoke --data-dir "$data" 0000000000000000 2>/dev/null; rc=$?
[ $rc -eq 1 ] || fail "revoke unknown: exit $rc, want 1"
"$TANUKI_BIN" keys revoke --data-dir "$data" not-an-id 2>/dev/null; rc=$?
[ $rc -eq 2 ] || fail "revoke malformed: exit $rc, want 2"
"$TANUKI_BIN" keys create --data-dir "$data" --name x --role root >/dev/null 2>&1; rc=$?
[ $rc -eq 2 ] || fail "bad role: exit $rc, want 2"
"$TANUKI_BIN" keys create --data-dir "$data" --role user >/dev/null 2>&1; rc=$?
[ $rc -eq 2 ] || fail "missing name: exit $rc, want 2"
"$TANUKI_BIN" keys list >/dev/null 2>&1 </dev/null; rc=$?
[ $rc -eq 2 ] || fail "missing data dir: exit $rc, want 2"
"$TANUKI_BIN" keys frobnicate --data-dir "$data" >/dev/null 2>&1; rc=$?
[ $rc -eq 2 ] || fail "unknown subcommand: exit $rc, want 2"
set -e
TANUKI_DATA_DIR="$data" "$TANUKI_BIN" keys list >/dev/null || fail "TANUKI_DATA_DIR not used"
"$TANUKI_BIN" keys --help | grep -q "tanuki keys create" || fail "help"

# No secret in the database files, and the database is intact.
if grep -q -a -e "$secret1" "$data"/tanuki.db*; then fail "secret found in the database"; fi
if command -v sqlite3 >/dev/null; then
  [ "$(sqlite3 "$data/tanuki.db" 'PRAGMA integrity_check')" = ok ] || fail "integrity_check"
  [ "$(sqlite3 "$data/tanuki.db" 'SELECT count(*) FROM api_keys')" = 2 ] || fail "row count"
fi
echo "store_keys: ok"
