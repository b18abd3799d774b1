#!/bin/bash
# pack_load_ab.sh — model load time, binaries alternated: for each round, each
# model, each binary in turn, `tanuki bench --model M -p 0 -n 0 -t THREADS`
# (load and exit), printing the packing and load ms it reports and the
# process's wall time. Prints numbers only.
#
#   BINS="old=/path/tanuki new=/path/tanuki" [THREADS=2] [DIR=/tmp/tanuki-bench] \
#     flock -x /tmp/tk-bench.lock bench/pack_load_ab.sh ROUNDS MODEL...
#
# MODEL is a file name without .gguf under DIR (e.g. qwen15b-Q4_K_M). Read the
# files once before (cat M.gguf >/dev/null) for warm page-cache loads.
set -euo pipefail
[ $# -ge 2 ] || { sed -n '2,12p' "$0"; exit 2; }
T=${THREADS:-2}
D=${DIR:-/tmp/tanuki-bench}
R=$1
shift
echo "round model binary pack_ms load_ms process_s"
for r in $(seq 1 "$R"); do
	for m in "$@"; do
		for b in ${BINS:?set BINS}; do
			name=${b%%=*}
			bin=${b#*=}
			s=$(date +%s.%N)
			line=$("$bin" bench --model "$D/$m.gguf" -p 0 -n 0 -t "$T" 2>/dev/null |
				grep 'weights repacked' || true)
			e=$(date +%s.%N)
			pk=$(echo "$line" | sed -n 's/.* in \([0-9]*\) ms of a \([0-9]*\) ms load.*/\1 \2/p')
			echo "$r $m $name ${pk:-? ?} $(awk -v s="$s" -v e="$e" 'BEGIN { printf "%.3f", e - s }')"
		done
	done
done
