#!/usr/bin/env bash
# engine_vs_llamacpp.sh — Tanuki's engine (`tanuki bench`) and llama.cpp's
# llama-bench side by side on the same GGUF files, same thread count, in one
# run, interleaved file by file so both see the same machine state. Prints
# one table (pp, tg, the ratio to llama.cpp, the bandwidth roofline of tg
# and each engine's % of it, aggregate tg with several sequences) and keeps
# every raw record. Prints numbers only; it never fails on speed.
#
# Roofline: for each file, `tanuki bench --membw` measures the read
# bandwidth right after Tanuki's runs, before llama-bench's (so the probe
# runs between the two engines' tg); roofline t/s = that best bandwidth /
# the bytes one decode step reads (tanuki's bytes_per_token: the weights,
# one embedding row, K/V at the tg run's mean position — the same for
# llama.cpp, whose tg reads the same file with the same f16 KV cache).
# Each engine's "% roof" is its tg t/s / roofline t/s; over 100% would mean
# the probe is no ceiling (see docs/benchmarks.md, "Read bandwidth probe").
# That probe and the tg it is compared with run minutes apart, and this
# VM's read bandwidth moves by a third or more within minutes; so Tanuki's
# figure is also given paired ("tanuki % paired"): `tanuki bench --membw`
# runs a short probe right before each timed tg repetition and after the
# last, and each repetition is compared with the mean of the two probes
# around it; the column is the mean over the repetitions (min-max in
# brackets), the probes are listed per file under the table. llama.cpp's
# tg is not bracketed by probes, so it has no paired figure.
#
#   bench/engine_vs_llamacpp.sh [TANUKI_BIN]
#
# Environment (defaults in brackets):
#   LLAMA_BENCH    llama-bench binary [/tmp/llama.cpp/build/bin/llama-bench]
#   LLAMA_QUANTIZE llama-quantize, for Q4_K_M when `tanuki model quantize`
#                  is absent [next to LLAMA_BENCH]
#   THREADS        [the physical cores]     REPS  repetitions [2]
#   NP, NG         pp and tg lengths [512, 128]
#   SEQS           sequence counts for aggregate tg [1,2,4]
#   SEQ_TYPES      types that get the --seqs run [Q4_K_M]
#   MODELS         [llama1b qwen15b]        TYPES [Q4_K_M Q8_0 F16]
#   DIR            where the models and results go [/tmp/tanuki-bench]
#   BUDGET_S       wall-clock budget of the runs [840]: a run that would start
#                  past it is skipped (and listed), and each run is killed at
#                  the budget's end, so the whole script stays under 15 min
#                  once the model files exist
#   MAKE_ONLY=1    make the model files and stop (they take a few minutes
#                  and ~10 GB the first time)
#
# The models (random weights; speed does not depend on values) are made in
# $DIR when missing, never committed:
#   llama1b  llama, TinyLlama-1.1B's shapes: n_embd 2048, 22 layers, 32 heads,
#            4 KV heads, n_ff 5632, vocab 32000
#   qwen15b  qwen2, Qwen2.5-Coder-1.5B's shapes: n_embd 1536, 28 layers, 12
#            heads, 2 KV heads, n_ff 8960, vocab 151936
# F16 and Q8_0 come from `tanuki model synth`; Q4_K_M from the F16 file by
# `tanuki model quantize` if this build has it, else by llama-quantize. The
# vocabularies are generated here (SentencePiece-style token list: only its
# size matters to speed).
#
# llama.cpp is built from its public source outside this repository
# (nothing of it is committed):
#   git clone --depth 1 https://github.com/ggml-org/llama.cpp /tmp/llama.cpp
#   cmake -S /tmp/llama.cpp -B /tmp/llama.cpp/build -DCMAKE_BUILD_TYPE=Release \
#         -DLLAMA_CURL=OFF -DGGML_NATIVE=ON
#   cmake --build /tmp/llama.cpp/build --target llama-bench llama-quantize -j"$(nproc)"
# and Tanuki in Release:
#   cmake -S . -B /tmp/b-rel -DCMAKE_BUILD_TYPE=Release && cmake --build /tmp/b-rel --target tanuki
#
# Budget: BUDGET_S caps the runs (files made beforehand: MAKE_ONLY=1). The
# cost is dominated by pp512 and the --seqs runs. Measured once on the
# 2-core development VM under load 5-10: llama1b Q4_K_M alone with REPS=1
# and --seqs 1,2,4 took 10.6 minutes for both engines; so on 2 cores the
# full table needs more cores or a longer BUDGET_S (or fewer TYPES/MODELS);
# with BUDGET_S the script still ends in time and lists what it skipped.
set -uo pipefail
T="${1:-$(command -v tanuki || echo ./build/src/cli/tanuki)}"
LB="${LLAMA_BENCH:-/tmp/llama.cpp/build/bin/llama-bench}"
LQ="${LLAMA_QUANTIZE:-$(dirname "$LB")/llama-quantize}"
DIR="${DIR:-/tmp/tanuki-bench}"
REPS="${REPS:-2}"; NP="${NP:-512}"; NG="${NG:-128}"; SEQS="${SEQS:-1,2,4}"
SEQ_TYPES="${SEQ_TYPES:-Q4_K_M}"; MODELS="${MODELS:-llama1b qwen15b}"; TYPES="${TYPES:-Q4_K_M Q8_0 F16}"
[ -x "$T" ] || { echo "tanuki binary not found: $T" >&2; exit 2; }
have_llama=1; [ -x "$LB" ] || { echo "note: no llama-bench at $LB: Tanuki's figures only" >&2; have_llama=0; }
THREADS="${THREADS:-$("$T" bench --membw --membw-mib 2 --json -r 1 2>/dev/null | python3 -c 'import json,sys; print(json.load(sys.stdin)["threads"])' 2>/dev/null || nproc)}"
mkdir -p "$DIR"
RES="$DIR/results-$(date -u +%Y%m%dT%H%M%SZ)"; mkdir -p "$RES"
t_start=$(date +%s); BUDGET_S="${BUDGET_S:-840}"; skipped=()
log() { echo "[$(( $(date +%s) - t_start ))s] $*" >&2; }
left() { echo $(( BUDGET_S - ($(date +%s) - t_start) )); }

# --- models -----------------------------------------------------------------
vocab() { # vocab N -> $DIR/vocab-N.gguf: a vocabulary-only GGUF (SentencePiece style)
  local n="$1" f="$DIR/vocab-$1.gguf"
  [ -s "$f" ] && { echo "$f"; return; }
  python3 - "$n" "$f" <<'PY'
import struct, sys
n, path = int(sys.argv[1]), sys.argv[2]
toks = ["<unk>", "<s>", "</s>"] + ["<0x%02X>" % b for b in range(256)]
toks += ["\u2581t%d" % i for i in range(n - len(toks))]
types = [2, 3, 3] + [6] * 256 + [1] * (n - 259)  # unknown, control, byte, normal
def s(x):
    b = x.encode(); return struct.pack("<Q", len(b)) + b
kv = []
kv.append(s("general.architecture") + struct.pack("<I", 8) + s("llama"))
kv.append(s("tokenizer.ggml.model") + struct.pack("<I", 8) + s("llama"))
kv.append(s("tokenizer.ggml.tokens") + struct.pack("<IIQ", 9, 8, n) + b"".join(s(t) for t in toks))
kv.append(s("tokenizer.ggml.scores") + struct.pack("<IIQ", 9, 6, n) + struct.pack("<%df" % n, *[-float(i) for i in range(n)]))
kv.append(s("tokenizer.ggml.token_type") + struct.pack("<IIQ", 9, 5, n) + struct.pack("<%di" % n, *types))
for k, v in (("unknown_token_id", 0), ("bos_token_id", 1), ("eos_token_id", 2)):
    kv.append(s("tokenizer.ggml." + k) + struct.pack("<II", 4, v))
with open(path + ".tmp", "wb") as f:
    f.write(b"GGUF" + struct.pack("<IQQ", 3, 0, len(kv)) + b"".join(kv))
import os; os.replace(path + ".tmp", path)
PY
  echo "$f"
}

shape_args() {
  case "$1" in
    llama1b) echo "--arch llama --n-embd 2048 --n-layer 22 --n-head 32 --n-head-kv 4 --n-ff 5632 --ctx 2048" ;;
    qwen15b) echo "--arch qwen2 --n-embd 1536 --n-layer 28 --n-head 12 --n-head-kv 2 --n-ff 8960 --ctx 4096" ;;
    *) return 1 ;;
  esac
}
vocab_size() { case "$1" in llama1b) echo 32000 ;; qwen15b) echo 151936 ;; esac; }

model_file() { # model_file NAME TYPE -> path (made when missing), or nothing
  local name="$1" type="$2" f="$DIR/$1-$2.gguf"
  [ -s "$f" ] && { echo "$f"; return; }
  local v; v="$(vocab "$(vocab_size "$name")")" || return 1
  case "$type" in
    F16|Q8_0)
      log "synth $f"
      # shellcheck disable=SC2046
      "$T" model synth $(shape_args "$name") --type "${type,,}" --vocab-from "$v" \
        --name "synth-$name-$type" -o "$f.tmp" >/dev/null && mv "$f.tmp" "$f" || { rm -f "$f.tmp"; return 1; } ;;
    Q4_K_M)
      local src; src="$(model_file "$name" F16)" || return 1
      log "quantize $f"
      if "$T" model quantize --help >/dev/null 2>&1; then
        "$T" model quantize "$src" "$f.tmp" Q4_K_M >/dev/null 2>"$RES/quantize.err"
      fi
      if [ ! -s "$f.tmp" ] && [ -x "$LQ" ]; then
        "$LQ" "$src" "$f.tmp" Q4_K_M >/dev/null 2>>"$RES/quantize.err"
      fi
      [ -s "$f.tmp" ] && mv "$f.tmp" "$f" || { rm -f "$f.tmp"; return 1; } ;;
    *) return 1 ;;
  esac
  echo "$f"
}

if [ "${MAKE_ONLY:-0}" = 1 ]; then
  for name in $MODELS; do for type in $TYPES; do
    f="$(model_file "$name" "$type")" && ls -la "$f" || log "cannot make $name $type (see $RES/quantize.err)"
  done; done
  exit 0
fi

# --- runs ---------------------------------------------------------------------
echo "machine: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), $(nproc) CPUs, load $(cut -d' ' -f1-3 /proc/loadavg)"
echo "tanuki: $T ($("$T" --version 2>/dev/null | head -1)); llama-bench: $([ $have_llama = 1 ] && echo "$LB" || echo none)"
echo "threads $THREADS, reps $REPS, pp$NP, tg$NG, seqs $SEQS; results in $RES"
for name in $MODELS; do
  shape_args "$name" >/dev/null || { echo "unknown model $name" >&2; continue; }
  for type in $TYPES; do
    f="$(model_file "$name" "$type")" || { log "cannot make $name $type (see $RES/quantize.err)"; continue; }
    seqs=(); [[ " $SEQ_TYPES " == *" $type "* ]] && seqs=(--seqs "$SEQS")
    if [ "$(left)" -le 10 ]; then skipped+=("$name $type"); continue; fi
    log "tanuki bench $name $type"
    timeout "$(left)" "$T" bench --model "$f" -p "$NP" -n "$NG" -r "$REPS" -t "$THREADS" --membw "${seqs[@]}" --json \
      >"$RES/$name-$type.tanuki.json" 2>"$RES/$name-$type.tanuki.err" || log "tanuki bench failed: $(tail -1 "$RES/$name-$type.tanuki.err")"
    if [ $have_llama = 1 ]; then
      if [ "$(left)" -le 10 ]; then skipped+=("$name $type (llama.cpp)"); continue; fi
      log "llama-bench $name $type"
      timeout "$(left)" "$LB" -m "$f" -p "$NP" -n "$NG" -r "$REPS" -t "$THREADS" -o json \
        >"$RES/$name-$type.llama.json" 2>"$RES/$name-$type.llama.err" || log "llama-bench failed: $(tail -1 "$RES/$name-$type.llama.err")"
    fi
  done
done

# --- table --------------------------------------------------------------------
python3 - "$RES" "$MODELS" "$TYPES" "$NP" "$NG" <<'PY'
import json, os, sys
res, models, types, np_, ng = sys.argv[1], sys.argv[2].split(), sys.argv[3].split(), sys.argv[4], sys.argv[5]
def load(p):
    try:
        with open(p) as f: return json.load(f)
    except Exception: return None
def fmt(m, sd): return "%.2f ± %.2f" % (m, sd) if m is not None else "-"
def ratio(a, b): return "%.2fx" % (a / b) if a and b else "-"
rows, seqrows, bws = [], [], []
for name in models:
    for t in types:
        tk = load(os.path.join(res, f"{name}-{t}.tanuki.json")) or {}
        ll = load(os.path.join(res, f"{name}-{t}.llama.json")) or []
        lpp = next((r for r in ll if r.get("n_prompt", 0) > 0 and r.get("n_gen", 0) == 0), {})
        ltg = next((r for r in ll if r.get("n_gen", 0) > 0 and r.get("n_prompt", 0) == 0), {})
        pp, tg = tk.get("pp", {}), tk.get("tg", {})
        roof = tk.get("roofline", {})
        paired = tk.get("roofline_paired")
        bw = tk.get("membw")
        if bw: bws.append((name, t, bw, paired))
        rtps = roof.get("tokens_per_s")
        def pct(x): return "%.0f%%" % (100.0 * x / rtps) if x and rtps else "-"
        rows.append([name, t, "%.0f" % (tk["size_bytes"] / 2**20) if "size_bytes" in tk else "-",
                     fmt(pp.get("mean"), pp.get("stddev", 0)), fmt(lpp.get("avg_ts"), lpp.get("stddev_ts", 0)),
                     ratio(pp.get("mean"), lpp.get("avg_ts")),
                     fmt(tg.get("mean"), tg.get("stddev", 0)), fmt(ltg.get("avg_ts"), ltg.get("stddev_ts", 0)),
                     ratio(tg.get("mean"), ltg.get("avg_ts")),
                     "%.1f" % bw["best_gbps"] if bw else "-",
                     "%.1f" % rtps if rtps else "-",
                     pct(tg.get("mean")),
                     "%.0f%% (%.0f-%.0f)" % (paired["achieved_pct_mean"], paired["achieved_pct_min"],
                                             paired["achieved_pct_max"]) if paired else "-",
                     pct(ltg.get("avg_ts"))])
        if tk.get("seqs"):
            base = tk["seqs"][0]["mean"]
            seqrows.append([name, t] + ["%d: %.2f (%.2fx; %s)" % (s["n_seq"], s["mean"], s["mean"] / base,
                                                                  "%.2fx per round" % s["ratio_paired"]
                                                                  if "ratio_paired" in s else "-")
                                        for s in tk["seqs"]])
hdr = ["model", "type", "MiB", f"tanuki pp{np_}", f"llama.cpp pp{np_}", "pp ratio",
       f"tanuki tg{ng}", f"llama.cpp tg{ng}", "tg ratio", "GB/s", "roofline t/s",
       "tanuki % roof", "tanuki % paired", "llama.cpp % roof"]
print()
print("| " + " | ".join(hdr) + " |")
print("|" + "|".join("---" for _ in hdr) + "|")
for r in rows: print("| " + " | ".join(r) + " |")
if bws:
    b0 = bws[0][2]
    print(f"\nread bandwidth per file (GB/s column: the best; `tanuki bench --membw`, {b0.get('method', 'plain')}, "
          f"{b0.get('streams', 1)} streams, prefetch {b0.get('prefetch_bytes', 0)}, {b0['threads']} threads, "
          f"{b0['bytes'] >> 20} MiB), best / mean:")
    print("  " + "; ".join(f"{n} {t} {b['best_gbps']:.2f} / {b['mean_gbps']:.2f}" for n, t, b, _ in bws))
    pr = [(n, t, p) for n, t, _, p in bws if p]
    if pr:
        print(f"paired probes ({pr[0][2]['passes']} passes each, before each tanuki tg repetition and after "
              "the last; GB/s, best pass of each, in order) and what they cost next to the tg time:")
        for n, t, p in pr:
            print(f"  {n} {t}: " + " | ".join("%.2f" % q["best_gbps"] for q in p["probes"])
                  + "; per repetition %s %%" % ", ".join("%.0f" % r["achieved_pct"] for r in p["reps"])
                  + "; %.0f ms each, %.1f%% of the tg time" % (p["probe_ms_mean"], p["probe_cost_pct"]))
if seqrows:
    print(f"\naggregate tg{ng} with N sequences decoded together, t/s (x of 1 sequence):")
    for r in seqrows: print("| " + " | ".join(r) + " |")
PY
[ ${#skipped[@]} -gt 0 ] && echo "skipped (past BUDGET_S=$BUDGET_S s): ${skipped[*]}"
log "done"
