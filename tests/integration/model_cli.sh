#!/usr/bin/env bash
# model_cli.sh — `tanuki logits | generate | perplexity` driven as a user
# would, checked against llama.cpp's goldens and against independent
# arithmetic in Python (perplexity recomputed from `tanuki logits` output).
set -euo pipefail

T="${TANUKI_BIN:?}"
FX="${TK_FIXTURES:?}"
M="$FX/models/tiny-llama-f32.gguf"
G="$FX/golden/tiny-llama-f32.story.json"
W="$(mktemp -d)"
trap 'rm -rf "$W"' EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }

prompt="$(python3 -c 'import json,sys; print(" ".join(map(str, json.load(open(sys.argv[1]))["prompt"])))' "$G")"

# 1. logits --json of the story prompt equal llama.cpp's within 1e-3
"$T" logits --model "$M" --tokens "$prompt" --json > "$W/logits.json"
python3 - "$W/logits.json" "$G" <<'EOF'
import json, sys
ours = json.load(open(sys.argv[1])); gold = json.load(open(sys.argv[2]))
assert ours["n_vocab"] == 512, ours["n_vocab"]
assert len(ours["logits"]) == len(gold["prompt"])
d = max(abs(a - b) for ro, rg in zip(ours["logits"], gold["logits"]) for a, b in zip(ro, rg))
print("logits --json max abs diff vs llama.cpp:", d)
assert d < 1e-3, d
EOF
# the text form has the same numbers, one line per position
"$T" logits --model "$M" --tokens "$prompt" > "$W/logits.txt"
[ "$(wc -l < "$W/logits.txt")" -eq 8 ] || fail "logits text: expected 8 lines"
[ "$(head -1 "$W/logits.txt" | wc -w)" -eq 512 ] || fail "logits text: expected 512 numbers"

# 2. greedy generation equals llama.cpp's greedy continuation
"$T" generate --model "$M" --tokens "$prompt" --temp 0 -n 16 --json > "$W/gen.json"
python3 - "$W/gen.json" "$G" <<'EOF'
import json, sys
ours = json.load(open(sys.argv[1])); gold = json.load(open(sys.argv[2]))
assert ours["tokens"] == gold["greedy"], (ours["tokens"], gold["greedy"])
assert ours["usage"] == {"prompt_tokens": 8, "completion_tokens": 16}, ours["usage"]
assert ours["finish_reason"] == "length"
for k in ("prompt_ms", "decode_ms", "prompt_tokens_per_s", "decode_tokens_per_s"):
    assert ours["timings"][k] >= 0, k
EOF

# 3. sampling is reproducible by seed; text mode streams the same text
a="$("$T" generate --model "$M" -p "Once upon a time" -n 24 --seed 7 --json)"
b="$("$T" generate --model "$M" -p "Once upon a time" -n 24 --seed 7 --json)"
c="$("$T" generate --model "$M" -p "Once upon a time" -n 24 --seed 8 --json)"
python3 - "$a" "$b" "$c" <<'EOF'
import json, sys
a, b, c = (json.loads(x) for x in sys.argv[1:4])
assert a["tokens"] == b["tokens"], "same seed, different tokens"
assert a["tokens"] != c["tokens"], "different seeds gave the same 24 tokens"
assert a["usage"]["completion_tokens"] == len(a["tokens"])
EOF
txt="$("$T" generate --model "$M" -p "Once upon a time" -n 24 --seed 7)"
python3 - "$a" "$txt" <<'EOF'
import json, sys
a = json.loads(sys.argv[1])
assert sys.argv[2] == a["text"], (sys.argv[2], a["text"])
EOF

# 4. a stop string cuts the text before it and ends the generation
full="$("$T" generate --model "$M" --tokens "$prompt" --temp 0 -n 16 --json)"
stop="$(python3 -c 'import json,sys; t=json.loads(sys.argv[1])["text"]; print(t[6:9])' "$full")"
cut="$("$T" generate --model "$M" --tokens "$prompt" --temp 0 -n 16 --stop "$stop" --json)"
python3 - "$full" "$cut" "$stop" <<'EOF'
import json, sys
full, cut, stop = json.loads(sys.argv[1]), json.loads(sys.argv[2]), sys.argv[3]
i = full["text"].find(stop)
assert i >= 0
assert cut["text"] == full["text"][:i], (cut["text"], full["text"][:i])
assert cut["finish_reason"] == "stop"
assert len(cut["tokens"]) < 16
EOF

# 5. perplexity: recompute from `tanuki tokenize` + `tanuki logits` in Python
TXT="$FX/vocab/ggml-vocab-llama-spm.gguf.inp"
"$T" perplexity --model "$M" --file "$TXT" --ctx 32 --chunks 3 > "$W/ppl.txt" 2> "$W/ppl.err"
grep -q "^Final estimate: PPL = " "$W/ppl.txt" || fail "perplexity: no final line"
grep -q "^\[1\][0-9.]*,\[2\][0-9.]*,\[3\][0-9.]*," "$W/ppl.txt" || fail "perplexity: chunk lines"
ids="$("$T" tokenize --model "$M" --file "$TXT")"
python3 - "$T" "$M" "$ids" "$W/ppl.txt" <<'EOF'
import json, math, subprocess, sys, re
T, M, ids, out = sys.argv[1], sys.argv[2], [int(x) for x in sys.argv[3].split()], sys.argv[4]
N, first, nll, nll2, cnt = 32, 16, 0.0, 0.0, 0
for ch in range(3):
    toks = ids[ch * N:(ch + 1) * N]
    toks = [1] + toks[1:]  # BOS replaces the chunk's first token
    L = json.loads(subprocess.check_output([T, "logits", "--model", M, "--tokens",
                                            " ".join(map(str, toks)), "--json"]))["logits"]
    for j in range(first, N - 1):
        row = L[j]; m = max(row)
        lse = m + math.log(sum(math.exp(v - m) for v in row))
        v = lse - row[toks[j + 1]]
        nll += v; nll2 += v * v; cnt += 1
mean = nll / cnt; ppl = math.exp(mean)
err = math.sqrt((nll2 / cnt - mean * mean) / (cnt - 1)) * ppl
got = re.search(r"PPL = ([0-9.]+) \+/- ([0-9.]+)", open(out).read())
print("perplexity: ours", got.group(1), got.group(2), "python", ppl, err)
assert abs(float(got.group(1)) - ppl) < 1e-3 * ppl
assert abs(float(got.group(2)) - err) < 1e-3 * err + 1e-4
EOF

# threads split rows only: the same numbers with 2 threads
"$T" perplexity --model "$M" --file "$TXT" --ctx 32 --chunks 3 --threads 2 > "$W/ppl2.txt" 2>/dev/null
cmp -s "$W/ppl.txt" "$W/ppl2.txt" || fail "perplexity differs with --threads 2"

# --chat wraps the text in the (fallback chatml) template before tokenizing
"$T" generate --model "$M" --chat "hi" -n 4 --temp 0 --json > "$W/chat.json"
"$T" generate --model "$M" -p "hi" -n 4 --temp 0 --json > "$W/plain.json"
python3 - "$W/chat.json" "$W/plain.json" <<'EOF2'
import json, sys
chat, plain = (json.load(open(p)) for p in sys.argv[1:3])
assert chat["usage"]["prompt_tokens"] > plain["usage"]["prompt_tokens"] + 10, (chat, plain)
assert chat["usage"]["completion_tokens"] <= 4
EOF2

# 6. errors: usage (2) and runtime (1) with a clear message
set +e
"$T" logits --model "$M" --tokens "1 x 3" 2> "$W/e1"; rc=$?
[ $rc -eq 2 ] || fail "bad --tokens: exit $rc"
"$T" logits --model "$M" --tokens "1 2 3" --ctx 2 2> "$W/e2"; rc=$?
[ $rc -eq 1 ] && grep -q "exceed the context size 2" "$W/e2" || fail "context overflow: exit $rc"
"$T" logits --model "$M" --tokens "1 999" 2> "$W/e3"; rc=$?
[ $rc -eq 1 ] && grep -q "outside the vocabulary" "$W/e3" || fail "token out of range: exit $rc"
"$T" generate --model "$W/none.gguf" -p hi 2> "$W/e4"; rc=$?
[ $rc -eq 1 ] && grep -q "none.gguf" "$W/e4" || fail "missing model: exit $rc"
"$T" generate --model "$M" -p hi --tokens "1" 2> /dev/null; rc=$?
[ $rc -eq 2 ] || fail "two prompts: exit $rc"
"$T" perplexity --model "$M" --file "$TXT" --ctx 4096 2> "$W/e5"; rc=$?
[ $rc -eq 1 ] && grep -q "needs at least 8192" "$W/e5" || fail "short text: exit $rc"
set -e
echo "model_cli: ok"
