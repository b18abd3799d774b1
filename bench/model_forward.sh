#!/usr/bin/env bash
# model_forward.sh — prefill and decode speed of the reference forward pass.
#
#   bench/model_forward.sh TANUKI_BIN MODEL.gguf [THREADS] [N_PROMPT] [N_GEN]
#
# Evaluates N_PROMPT token ids (BOS, then ids spread over the vocabulary) as
# one batch, then generates N_GEN tokens greedily, and prints the timings
# `tanuki generate --json` reports. Prints numbers only; never fails on time.
set -euo pipefail
T="${1:?tanuki binary}"; M="${2:?model}"; TH="${3:-2}"; NP="${4:-64}"; NG="${5:-32}"
toks="$(python3 -c 'import sys
n = int(sys.argv[1])
print(" ".join(["1"] + [str(100 + (i * 7919) % 30000) for i in range(n - 1)]))' "$NP")"
out="$("$T" generate --model "$M" --tokens "$toks" --temp 0 -n "$NG" --threads "$TH" --ctx $((NP + NG)) --json)"
python3 - "$out" "$M" "$TH" <<'PY'
import json, sys
o = json.loads(sys.argv[1]); t = o["timings"]; u = o["usage"]
print(f"{sys.argv[2]} threads={sys.argv[3]} prompt={u['prompt_tokens']} gen={u['completion_tokens']} "
      f"prefill {t['prompt_tokens_per_s']:.2f} tok/s ({t['prompt_ms']:.0f} ms), "
      f"decode {t['decode_tokens_per_s']:.2f} tok/s ({t['decode_ms']:.0f} ms)")
PY
