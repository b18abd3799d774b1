#!/usr/bin/env bash
# bench_cli.sh — `tanuki bench` on the tiny fixture model, one repetition:
# the table and the JSON record carry every figure asked for (pp, tg,
# several sequences, prefix reuse, membw, the roofline and the paired
# roofline, whose pairing of repetitions and probes is checked) with sane
# values; bad options are usage errors, a bad model a runtime failure.
# Speeds are never checked (no timing assertions).
set -euo pipefail
T="${TANUKI_BIN:?}"; M="$TK_FIXTURES/models/tiny-llama-f32.gguf"
tmp="$(mktemp -d)"; trap 'rm -rf "$tmp"' EXIT

out="$("$T" bench --model "$M" -p 16 -n 8 -r 1 -t 1 --seqs 1,2 --prefix --prefix-tokens 24 \
  --suffix-tokens 4 --membw --membw-mib 8)"
for want in '| pp16 ' '| tg8 ' 'tg8 x1 seq' 'tg8 x2 seq' 'membw:' 'roofline:' 'prefix reuse: 24 + 4' \
  'threads 1, kv f16' 'weights repacked: no (mode auto)'; do
  grep -qF -- "$want" <<<"$out" || { echo "table lacks '$want':"; echo "$out"; exit 1; }
done

"$T" bench --model "$M" -p 16 -n 8 -r 2 -t 1 --kv f32 --seqs 1,2 --prefix --prefix-tokens 24 \
  --suffix-tokens 4 --membw --membw-mib 8 --json >"$tmp/b.json"
jq -e '
  .model == $m and .kv == "f32" and .threads == 1 and .reps == 2 and .n_prompt == 16
  and .n_gen == 8 and .arch == "llama" and .type == "f32" and .params > 0
  and .size_bytes > 0 and .bytes_per_token > .size_bytes / 2
  and (.pp.samples | length) == 2 and .pp.mean > 0 and .pp.stddev >= 0
  and (.tg.samples | length) == 2 and .tg.mean > 0
  and ([.seqs[].n_seq] == [1, 2]) and all(.seqs[]; .mean > 0 and (.samples | length) == 2)
  and (.seqs[0].ratio_paired == 1)
  and ((.seqs[1].ratio_paired
        - (.seqs[1].samples[0] / .seqs[0].samples[0] + .seqs[1].samples[1] / .seqs[0].samples[1]) / 2)
       as $d | $d < 1e-9 and $d > -1e-9)
  and .prefix.prefix_tokens == 24 and .prefix.suffix_tokens == 4
  and .prefix.cold_ms.mean > 0 and .prefix.warm_ms.mean > 0
  and .membw.best_gbps > 0 and .membw.bytes == 8388608
  and .roofline.tokens_per_s > 0 and .roofline.achieved_pct > 0
  and (.isa | type) == "string" and (.cpu | type) == "string"
' --arg m "$M" "$tmp/b.json" >/dev/null || { echo "bad JSON record:"; cat "$tmp/b.json"; exit 1; }

# packed weights (model.h): an f32 model has no layout; TANUKI_NO_REPACK=1
# turns packing off and says so
jq -e '.repack.mode == "auto" and .repack.packed == false and .repack.weights == 0
  and .repack.load_ms > 0 and .repack.rss_kib > 0' "$tmp/b.json" >/dev/null ||
  { echo "bad repack record:"; cat "$tmp/b.json"; exit 1; }
TANUKI_NO_REPACK=1 "$T" bench --model "$TK_FIXTURES/models/tiny-llama-Q8_0.gguf" -p 8 -n 2 -r 1 \
  -t 1 --json | jq -e '.repack.mode == "env-off" and .repack.packed == false' >/dev/null

# the model figures and the bytes a decode step reads, from `model info`:
# every weight but the embedding table (one row of it), plus K and V (f32
# here) of every layer at the mean position of an 8-token decode ((8+1)/2)
"$T" model info --json "$M" >"$tmp/info.json"
jq -e --slurpfile i "$tmp/info.json" '$i[0] as $i
  | .params == $i.parameters and .size_bytes == $i.weights_bytes
  and .bytes_per_token == ($i.weights_bytes - $i.vocab_size * $i.n_embd * 4 + $i.n_embd * 4
      + 2 * $i.n_layer * $i.n_head_kv * $i.head_dim * 4 * (8 + 1) / 2)
  and (.roofline.tokens_per_s - .membw.best_gbps * 1e9 / .bytes_per_token | fabs) < 1e-3 * .roofline.tokens_per_s
  and (.roofline.tokens_per_s_mean - .membw.mean_gbps * 1e9 / .bytes_per_token | fabs) < 1e-3 * .roofline.tokens_per_s_mean
  and (.roofline.decode_gbps - .tg.mean * .bytes_per_token / 1e9 | fabs) < 1e-3 * .roofline.decode_gbps
  and (.roofline.achieved_pct - 100 * .roofline.decode_gbps / .membw.best_gbps | fabs) < 1e-3 * .roofline.achieved_pct
  and (.roofline.achieved_pct_mean - 100 * .roofline.decode_gbps / .membw.mean_gbps | fabs) < 1e-3 * .roofline.achieved_pct_mean
' "$tmp/b.json" >/dev/null || { echo "model figures or roofline wrong:"; cat "$tmp/info.json" "$tmp/b.json"; exit 1; }

# the paired roofline (--membw with tg): one short probe before each timed
# tg repetition and one after the last; repetition i against the mean of
# probes i and i + 1; the overall figures above are untouched
jq -e '.roofline_paired as $p | .tg.samples as $s | .bytes_per_token as $b
  | $p.passes == 3 and ($p.probes | length) == 3 and ($p.reps | length) == 2
  and all($p.probes[]; (.passes_gbps | length) == 3 and all(.passes_gbps[]; . > 0)
      and .best_gbps == (.passes_gbps | max)
      and ((.passes_gbps | add / length) - .mean_gbps | fabs) <= 1e-6 * .mean_gbps and .ms > 0)
  and ([range(0; 2) as $i | $p.reps[$i]
      | .tokens_per_s == $s[$i]
      and .before_gbps == $p.probes[$i].best_gbps and .after_gbps == $p.probes[$i + 1].best_gbps
      and (.ceiling_gbps - (.before_gbps + .after_gbps) / 2 | fabs) <= 1e-6 * .ceiling_gbps
      and (.decode_gbps - $s[$i] * $b / 1e9 | fabs) <= 1e-6 * .decode_gbps
      and (.achieved_pct - 100 * .decode_gbps / .ceiling_gbps | fabs) <= 1e-6 * .achieved_pct
      and .ms > 0] | all)
  and (($p.reps | map(.achieved_pct) | add / length) - $p.achieved_pct_mean | fabs) <= 1e-6 * $p.achieved_pct_mean
  and $p.achieved_pct_min == ($p.reps | map(.achieved_pct) | min)
  and $p.achieved_pct_max == ($p.reps | map(.achieved_pct) | max)
  and $p.ceiling_gbps_min == ($p.reps | map(.ceiling_gbps) | min)
  and $p.ceiling_gbps_max == ($p.reps | map(.ceiling_gbps) | max)
  and $p.probe_best_gbps == ($p.probes | map(.best_gbps) | max)
  and (($p.probes | map(.ms) | add / length) - $p.probe_ms_mean | fabs) <= 1e-6 * $p.probe_ms_mean
  and (($p.reps | map(.ms) | add / length) - $p.tg_rep_ms_mean | fabs) <= 1e-6 * $p.tg_rep_ms_mean
  and ($p.probe_cost_pct - 100 * ($p.probes | map(.ms) | add) / ($p.reps | map(.ms) | add) | fabs)
      <= 1e-6 * $p.probe_cost_pct
  and .membw.reps == 10
' "$tmp/b.json" >/dev/null || { echo "bad paired roofline:"; jq .roofline_paired "$tmp/b.json"; exit 1; }
grep -qF 'roofline, paired (a 3-pass probe before each tg rep' <<<"$out" &&
  grep -qE '^  rep 1: .* -> [0-9.]+%$' <<<"$out" && grep -qE '^  paired: [0-9.]+% of the roofline' <<<"$out" ||
  { echo "table lacks the paired roofline:"; echo "$out"; exit 1; }
# --membw-passes: the passes of each paired probe; 0 leaves only the overall
# figure; no tg (-n 0) or no model: nothing to pair
"$T" bench --model "$M" -p 0 -n 4 -r 3 -t 1 --membw --membw-mib 4 --membw-passes 1 --json |
  jq -e '.roofline_paired.passes == 1 and (.roofline_paired.probes | length) == 4
    and all(.roofline_paired.probes[]; (.passes_gbps | length) == 1)
    and (.roofline_paired.reps | length) == 3 and .membw.reps == 10' >/dev/null
"$T" bench --model "$M" -p 0 -n 4 -r 1 -t 1 --membw --membw-mib 4 --membw-passes 0 --json |
  jq -e '(has("roofline_paired") | not) and .roofline.achieved_pct > 0' >/dev/null
"$T" bench --model "$M" -p 4 -n 0 -r 1 -t 1 --membw --membw-mib 4 --json |
  jq -e '(has("roofline_paired") | not) and (has("roofline") | not) and .membw.best_gbps > 0' >/dev/null
"$T" bench --membw --membw-mib 4 -t 1 --json | jq -e 'has("roofline_paired") | not' >/dev/null
if "$T" bench --model "$M" -p 0 -n 4 -r 1 -t 1 --membw --membw-mib 4 --membw-passes 0 |
  grep -q 'paired'; then echo "--membw-passes 0 still printed a paired figure"; exit 1; fi

# the mean is the mean of the samples, the stddev their sample deviation
jq -e '.pp | ((.samples | add / length) - .mean | fabs) < 1e-3 * .mean' "$tmp/b.json" >/dev/null
jq -e '.tg | .samples as $s | ($s | length) as $n | ($s | add / $n) as $m
  | (((($s | map((. - $m) * (. - $m)) | add) / ($n - 1)) | sqrt) - .stddev | fabs)
    <= 1e-3 * .stddev + 1e-6' "$tmp/b.json" >/dev/null ||
  { echo "stddev does not match the samples"; cat "$tmp/b.json"; exit 1; }

# bandwidth alone, without a model; the probe's method and how it read
"$T" bench --membw --membw-mib 8 -t 1 --json | jq -e '.membw.best_gbps > 0 and (has("pp") | not)
  and .membw.method == "streams" and .membw.streams == 8 and .membw.prefetch_bytes == 4096
  and .membw.reps == 10 and .membw.best_gbps >= .membw.mean_gbps
  and (.membw.hugepages | type) == "boolean" and (.membw.isa | type) == "string"' >/dev/null
"$T" bench --membw --membw-mib 8 -t 2 --membw-method plain --json | jq -e '.membw.method == "plain"
  and .membw.streams == 1 and .membw.prefetch_bytes == 0 and .membw.hugepages == false
  and .membw.threads == 2' >/dev/null
"$T" bench --membw --membw-mib 8 -t 1 | grep -q 'membw: .* streams: 8 streams, prefetch 4096'

expect_rc() {
  local want="$1"; shift
  set +e; "$T" bench "$@" >/dev/null 2>"$tmp/err"; local rc=$?; set -e
  [ "$rc" = "$want" ] || { echo "bench $*: exit $rc, wanted $want"; cat "$tmp/err"; exit 1; }
}
expect_rc 2 -p 16                                  # no model
expect_rc 2 --model "$M" --kv q8                   # bad KV type
expect_rc 2 --model "$M" --seqs 1,,2               # bad list
expect_rc 2 --model "$M" --seqs 0                  # out of range
expect_rc 2 --model "$M" -r 0                      # no repetitions
expect_rc 2 --model "$M" --seqs 2 -n 0             # sequences need tokens
expect_rc 2 --membw --membw-method fast            # unknown probe method
expect_rc 2 --membw --membw-mib 1                  # buffer under 2 MiB
expect_rc 2 --membw --membw-passes -1              # passes out of range
expect_rc 2 --membw --membw-passes 101
expect_rc 2 --membw --membw-passes 2x
expect_rc 2 --model "$M" --membw-passes 2          # passes without --membw
expect_rc 1 --model "$tmp/none.gguf" -p 4 -n 4 -r 1
echo "garbage" >"$tmp/bad.gguf"
expect_rc 1 --model "$tmp/bad.gguf" -p 4 -n 4 -r 1
"$T" bench --help | grep -q -- '--membw'
echo "bench_cli: ok"
