#!/usr/bin/env bash
# llm_grammar.sh — decode speed of the embedded LLM backend with and without
# a grammar / JSON schema (docs/llm.md, docs/benchmarks.md "LLM backends").
# Prints numbers; never fails on time.
#
# usage: bench/llm_grammar.sh TANUKI_BIN [MODEL.gguf] [TOKENS] [RUNS]
# Decode tokens/s = (completion_tokens - 1) / (total - time to first token):
# the first token's time includes the prompt prefill.
set -euo pipefail
B=${1:?usage: llm_grammar.sh TANUKI_BIN [MODEL.gguf] [TOKENS] [RUNS]}
M=${2:-$(dirname "$0")/../tests/fixtures/models/tiny-llama-f32.gguf}
N=${3:-128}
RUNS=${4:-5}
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
# Free text under a grammar, so that every case can run to N tokens.
printf 'root ::= [a-zA-Z .,]+\n' >"$T/text.gbnf"
# A list of strings (runs on to N tokens).
printf '{"type":"array","items":{"type":"string"}}' >"$T/list.json"
printf '{"type":"object","properties":{"story":{"type":"string"}},"required":["story"]}' >"$T/story.json"

run() { # label, extra args...
  local label=$1; shift
  local rates=()
  for seed in $(seq 1 "$RUNS"); do
    "$B" llm chat --backend embedded --model "$M" -m "Tell me a story" --max-tokens "$N" \
      --temperature 0.8 --seed "$seed" --json "$@" >"$T/out.json" 2>/dev/null
    rates+=("$(jq -r '((.usage.completion_tokens - 1) / ((.timings.total_ms - .timings.ttft_ms) / 1000)) as $r |
               "\($r) \(.usage.completion_tokens)"' "$T/out.json")")
  done
  printf '%s\n' "${rates[@]}" | sort -n | awk -v l="$label" '
    { r[NR] = $1; t += $2 }
    END { printf "%-28s median %8.1f tok/s  (min %.1f, max %.1f; %.0f tokens/run, %d runs)\n",
          l, r[int((NR + 1) / 2)], r[1], r[NR], t / NR, NR }'
}

echo "model: $M, up to $N tokens, temperature 0.8"
run "no grammar"
run "grammar [a-zA-Z .,]+" --grammar "$T/text.gbnf"
run "json schema [string]" --json-schema "$T/list.json"
run "json schema {story}" --json-schema "$T/story.json"
