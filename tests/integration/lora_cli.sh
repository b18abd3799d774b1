#!/usr/bin/env bash
# lora_cli.sh — `--adapter FILE[:SCALE]` on tanuki logits and generate, and
# `tanuki adapters` where present: logits match llama.cpp's LoRA goldens,
# greedy generation follows the golden continuation, bad specs and
# mismatched adapters fail with a message.
set -euo pipefail
: "${TANUKI_BIN:?}" "${TK_FIXTURES:?}"
M="$TK_FIXTURES/models/tiny-llama-f32.gguf"
CODER="$TK_FIXTURES/models/tiny-llama-lora-coder.gguf"
REV="$TK_FIXTURES/models/tiny-llama-lora-reviewer.gguf"
W="$(mktemp -d)"
trap 'rm -rf "$W"' EXIT

for spec in "coder@1.0:$CODER" "coder@0.5:$CODER:0.5" "reviewer@1.0:$REV:1"; do
	tag="${spec%%:*}"
	arg="${spec#*:}"
	G="$TK_FIXTURES/golden/tiny-llama-f32.story.tiny-llama-lora-$tag.json"
	prompt="$(python3 -c 'import json,sys; print(" ".join(map(str, json.load(open(sys.argv[1]))["prompt"])))' "$G")"
	"$TANUKI_BIN" logits --model "$M" --adapter "$arg" --tokens "$prompt" --json >"$W/l.json"
	python3 - "$W/l.json" "$G" "$tag" <<'PY'
import json, sys
ours = json.load(open(sys.argv[1]))["logits"]
g = json.load(open(sys.argv[2]))
theirs = g["logits"]
assert len(ours) == len(theirs), (len(ours), len(theirs))
m = max(abs(a - b) for ra, rb in zip(ours, theirs) for a, b in zip(ra, rb))
print("logits --adapter", sys.argv[3], "max_abs", m)
assert m < 6e-3, m
PY
	"$TANUKI_BIN" generate --model "$M" --adapter "$arg" --tokens "$prompt" --temp 0 -n 16 \
		--json >"$W/g.json"
	python3 - "$W/g.json" "$G" <<'PY'
import json, sys
ours = json.load(open(sys.argv[1]))["tokens"]
want = json.load(open(sys.argv[2]))["greedy"]
n = len(ours)
assert n > 0 and ours == want[:n], (ours, want)
PY
done

# two adapters at once differ from either alone
prompt="1 45 99 17 300"
"$TANUKI_BIN" logits --model "$M" --adapter "$CODER" --tokens "$prompt" >"$W/a"
"$TANUKI_BIN" logits --model "$M" --adapter "$CODER" --adapter "$REV:0.5" --tokens "$prompt" >"$W/ab"
"$TANUKI_BIN" logits --model "$M" --adapter "$CODER:0" --tokens "$prompt" >"$W/zero"
"$TANUKI_BIN" logits --model "$M" --tokens "$prompt" >"$W/none"
! cmp -s "$W/a" "$W/ab"
cmp -s "$W/zero" "$W/none"

# failures: bad file, mismatched adapter (qwen2 model), bad scale
if "$TANUKI_BIN" logits --model "$M" --adapter "$W/nope.gguf" --tokens 1 2>"$W/err"; then
	echo "missing adapter accepted" >&2; exit 1
fi
grep -q "nope.gguf" "$W/err"
Q="$TK_FIXTURES/models/tiny-qwen2-f32.gguf"
if "$TANUKI_BIN" logits --model "$Q" --adapter "$CODER" --tokens 1 2>"$W/err"; then
	echo "llama adapter on qwen2 accepted" >&2; exit 1
fi
grep -q "expected 'qwen2'" "$W/err"
if "$TANUKI_BIN" logits --model "$M" --adapter "$CODER:inf" --tokens 1 2>"$W/err"; then
	echo "infinite scale accepted" >&2; exit 1
fi

# adapter by name from a directory
D="$W/adapters"
mkdir "$D"
cp "$CODER" "$D/coder.gguf"
cp "$REV" "$D/reviewer.gguf"
"$TANUKI_BIN" logits --model "$M" --adapter-dir "$D" --adapter coder --tokens "$prompt" >"$W/byname"
cmp -s "$W/byname" "$W/a"

# tanuki adapters: list, info, load under a budget (evicts), unload, merge
export TANUKI_LOG_LEVEL=warning
"$TANUKI_BIN" adapters list --model "$M" --dir "$D" >"$W/list"
grep -q "^coder .*sha256 $(sha256sum "$CODER" | cut -c1-64)" "$W/list"
grep -q "^reviewer " "$W/list"
"$TANUKI_BIN" adapters info --model "$M" --dir "$D" coder >"$W/info"
grep -q "rank 8  alpha 16  pairs 14" "$W/info"
cb="$(grep -o 'loaded *[0-9]* B' "$W/list" | head -1 | tr -dc 0-9)"
"$TANUKI_BIN" adapters load --model "$M" --dir "$D" --budget "$((cb + 1))" coder reviewer >"$W/load"
grep -q "loaded reviewer: .*(evicted 1)" "$W/load"
grep -q "^resident: 1 adapters" "$W/load"
if "$TANUKI_BIN" adapters load --model "$M" --dir "$D" --budget 1000 coder 2>"$W/err"; then
	echo "adapter over the budget accepted" >&2; exit 1
fi
grep -q "more than the whole budget" "$W/err"
"$TANUKI_BIN" adapters unload --model "$M" --dir "$D" coder | grep -q "^unloaded coder"
"$TANUKI_BIN" adapters merge --model "$M" --adapter "$CODER:0.5" -o "$W/merged.gguf" >/dev/null
G="$TK_FIXTURES/golden/tiny-llama-f32.story.tiny-llama-lora-coder@0.5.json"
prompt="$(python3 -c 'import json,sys; print(" ".join(map(str, json.load(open(sys.argv[1]))["prompt"])))' "$G")"
"$TANUKI_BIN" logits --model "$W/merged.gguf" --tokens "$prompt" --json >"$W/m.json"
python3 - "$W/m.json" "$G" <<'PY'
import json, sys
ours = json.load(open(sys.argv[1]))["logits"]
theirs = json.load(open(sys.argv[2]))["logits"]
m = max(abs(a - b) for ra, rb in zip(ours, theirs) for a, b in zip(ra, rb))
print("merged coder@0.5 max_abs", m)
assert m < 6e-3, m
PY
echo ok
