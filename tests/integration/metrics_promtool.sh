#!/usr/bin/env bash
# metrics_promtool.sh — `tanuki metrics` must print an exposition that
# promtool (the Prometheus project's own checker, an independent parser and
# linter) accepts without a single complaint; and promtool must reject a
# deliberately broken exposition, so this test can fail.
set -euo pipefail

: "${TANUKI_BIN:?TANUKI_BIN must point at the tanuki binary}"
if ! command -v promtool >/dev/null; then
  echo "FAIL: promtool not found (Debian package 'prometheus', see scripts/install-deps.sh)" >&2
  exit 1
fi

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }

# 1. The real exposition passes promtool's parser and linter, silently.
"$TANUKI_BIN" metrics >"$tmp/expo" 2>"$tmp/err" || fail "tanuki metrics exited $?: $(cat "$tmp/err")"
[ -s "$tmp/err" ] && fail "tanuki metrics wrote to stderr: $(cat "$tmp/err")"
rc=0
promtool check metrics <"$tmp/expo" >"$tmp/check" 2>&1 || rc=$?
[ "$rc" -eq 0 ] || fail "promtool rejected the exposition (exit $rc): $(cat "$tmp/check")"
[ -s "$tmp/check" ] && fail "promtool complained: $(cat "$tmp/check")"

# 2. It holds what it promises.
for name in process_cpu_seconds_total process_resident_memory_bytes \
            process_virtual_memory_bytes process_open_fds process_max_fds \
            process_start_time_seconds; do
  grep -q "^# TYPE $name " "$tmp/expo" || fail "no $name in: $(cat "$tmp/expo")"
  grep -Eq "^$name [0-9.e+]+\$" "$tmp/expo" || fail "$name has no numeric sample"
done
grep -Eq '^tanuki_build_info\{version="[^"]+",commit="[^"]+"\} 1$' "$tmp/expo" \
  || fail "no tanuki_build_info sample"
rss=$(awk '$1 == "process_resident_memory_bytes" { print $2 }' "$tmp/expo")
awk -v v="$rss" 'BEGIN { exit !(v > 0) }' || fail "resident memory is $rss"

# 3. promtool does reject broken expositions (the check above can fail).
printf '# TYPE bad counter\nbad{a="unterminated} 1\n' >"$tmp/broken1"
printf '# HELP t_seconds x\n# TYPE t_seconds counter\nt_seconds 1\n' >"$tmp/broken2" # lint: no _total
for f in "$tmp/broken1" "$tmp/broken2"; do
  rc=0
  promtool check metrics <"$f" >"$tmp/check" 2>&1 || rc=$?
  [ "$rc" -ne 0 ] || fail "promtool accepted a broken exposition: $(cat "$f")"
  [ -s "$tmp/check" ] || fail "promtool rejected $(basename "$f") without saying why"
done

# 4. The command line follows the CLI conventions.
"$TANUKI_BIN" metrics --help | grep -q '^usage: tanuki metrics' || fail "--help"
rc=0; "$TANUKI_BIN" metrics --bogus >/dev/null 2>&1 || rc=$?
[ "$rc" -eq 2 ] || fail "unknown option exited $rc, want 2"
rc=0; "$TANUKI_BIN" metrics extra >/dev/null 2>&1 || rc=$?
[ "$rc" -eq 2 ] || fail "extra argument exited $rc, want 2"

echo "metrics_promtool: ok"
