#!/usr/bin/env bash
# llm_grammar.sh — constrained decoding on the embedded LLM backend
# (docs/llm.md, docs/benchmarks.md "LLM backends" and "Grammar masks"):
#  1. the cost of one whole-vocabulary mask, per-token check vs trie walk,
#     state by state (bench_llm_grammar, when built next to TANUKI_BIN:
#     BUILD/bench/bench_llm_grammar; or set BENCH_LLM_GRAMMAR), on the
#     model's vocabulary and the fixtures' llama-spm and gpt-2;
#  2. decode speed with and without a grammar / JSON schema, each grammar
#     case twice, interleaved: masks by the trie (default) and token by token
#     (TANUKI_NO_GRAMMAR_TRIE=1).
# Prints numbers; never fails on time. Run it under the benchmark lock:
#   flock -x /tmp/tk-bench.lock bench/llm_grammar.sh BUILD/src/cli/tanuki [MODEL]
#
# usage: bench/llm_grammar.sh TANUKI_BIN [MODEL.gguf] [TOKENS] [RUNS]
# Decode tokens/s = (completion_tokens - 1) / (total - time to first token):
# the first token's time includes the prompt prefill.
set -euo pipefail
B=${1:?usage: llm_grammar.sh TANUKI_BIN [MODEL.gguf] [TOKENS] [RUNS]}
HERE=$(cd "$(dirname "$0")" && pwd)
M=${2:-$HERE/../tests/fixtures/models/tiny-llama-f32.gguf}
N=${3:-128}
RUNS=${4:-5}
MB=${BENCH_LLM_GRAMMAR:-$(dirname "$B")/../../bench/bench_llm_grammar}
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
# Free text under a grammar, so that every case can run to N tokens.
printf 'root ::= [a-zA-Z .,]+\n' >"$T/text.gbnf"
# A list of strings (runs on to N tokens).
printf '{"type":"array","items":{"type":"string"}}' >"$T/list.json"
printf '{"type":"object","properties":{"story":{"type":"string"}},"required":["story"]}' >"$T/story.json"

if [ -x "$MB" ]; then
  echo "== one whole-vocabulary mask (bench_llm_grammar)"
  "$MB" "$M" "$HERE/../tests/fixtures/vocab/ggml-vocab-llama-spm.gguf" \
    "$HERE/../tests/fixtures/vocab/ggml-vocab-gpt-2.gguf"
else
  echo "(no $MB: build the bench_llm_grammar target for the per-mask numbers)"
fi

run() { # label, env assignment or "-", extra args...
  local label=$1 env=$2; shift 2
  local rates=()
  for seed in $(seq 1 "$RUNS"); do
    if [ "$env" = - ]; then
      "$B" llm chat --backend embedded --model "$M" -m "Tell me a story" --max-tokens "$N" \
        --temperature 0.8 --seed "$seed" --json "$@" >"$T/out.json" 2>/dev/null
    else
      env "$env" "$B" llm chat --backend embedded --model "$M" -m "Tell me a story" \
        --max-tokens "$N" --temperature 0.8 --seed "$seed" --json "$@" >"$T/out.json" 2>/dev/null
    fi
    rates+=("$(jq -r '((.usage.completion_tokens - 1) / ((.timings.total_ms - .timings.ttft_ms) / 1000)) as $r |
               "\($r) \(.usage.completion_tokens)"' "$T/out.json")")
  done
  printf '%s\n' "${rates[@]}" | sort -n | awk -v l="$label" '
    { r[NR] = $1; t += $2 }
    END { printf "%-40s median %8.1f tok/s  (min %.1f, max %.1f; %.0f tokens/run, %d runs)\n",
          l, r[int((NR + 1) / 2)], r[1], r[NR], t / NR, NR }'
}

echo "== decode: model $M, up to $N tokens, temperature 0.8"
run "no grammar" -
for c in "grammar [a-zA-Z .,]+|--grammar|$T/text.gbnf" \
         "json schema [string]|--json-schema|$T/list.json" \
         "json schema {story}|--json-schema|$T/story.json"; do
  IFS='|' read -r label flag file <<<"$c"
  run "$label, trie" - "$flag" "$file"
  run "$label, per-token" TANUKI_NO_GRAMMAR_TRIE=1 "$flag" "$file"
done
