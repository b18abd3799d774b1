#!/usr/bin/env bash
# engine_vs_llamacpp.sh — Tanuki's engine and llama.cpp's llama-bench on the
# same GGUF file, same thread count, interleaved in one run so both see the
# same machine state. Prints numbers only; never fails on time.
#
#   bench/engine_vs_llamacpp.sh TANUKI_BIN LLAMA_BENCH_BIN MODEL.gguf [THREADS] [N_PROMPT] [N_GEN] [REPS]
#
# llama-bench is built from llama.cpp's public source outside this
# repository (nothing of it is committed), e.g.
#   cmake -S llama.cpp -B llama.cpp/build -DCMAKE_BUILD_TYPE=Release -DLLAMA_CURL=OFF
#   cmake --build llama.cpp/build --target llama-bench llama-perplexity -j2
set -euo pipefail
T="${1:?tanuki binary}"; LB="${2:?llama-bench binary}"; M="${3:?model}"
TH="${4:-2}"; NP="${5:-64}"; NG="${6:-16}"; R="${7:-2}"
here="$(cd "$(dirname "$0")" && pwd)"
echo "model: $M ($(du -h "$M" | cut -f1)), threads $TH, prompt $NP, generate $NG, reps $R"
echo "machine: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), $(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg)"
for i in $(seq 1 "$R"); do
  echo "--- rep $i"
  echo -n "tanuki:    "; bash "$here/model_forward.sh" "$T" "$M" "$TH" "$NP" "$NG"
  echo -n "llama.cpp: "
  "$LB" -m "$M" -t "$TH" -p "$NP" -n "$NG" -r 1 -o csv 2>/dev/null | python3 -c '
import csv, sys
rows = list(csv.DictReader(sys.stdin))
out = []
for r in rows:
    kind = "prefill" if int(r["n_prompt"]) > 0 else "decode"
    out.append("%s %.2f tok/s" % (kind, float(r["avg_ts"])))
print(", ".join(out))'
done
