#!/usr/bin/env bash
# demo.sh — the main command: sets up, builds (release) and runs a real
# programming task with `tanuki run`: implement wc_words() in C so that the
# given tests pass (examples/demo/). The build, the tests, the review loop
# and the sandbox are real in every mode; what answers for the agents is:
#
#   bash scripts/demo.sh                      OFFLINE DEMO: the agents' replies
#                                             are replayed from
#                                             examples/demo/replies.json
#                                             (scripted backend), no model
#   TANUKI_MODEL=/path/model.gguf bash scripts/demo.sh
#                                             the embedded engine on your GGUF
#                                             model (MODEL=... works too)
#   TANUKI_LLM_BACKEND=ollama TANUKI_LLM_MODEL=qwen2.5-coder:7b bash scripts/demo.sh
#   TANUKI_LLM_BACKEND=openai TANUKI_LLM_URL=http://127.0.0.1:8080/v1 \
#       TANUKI_LLM_MODEL=any TANUKI_LLM_API_KEY=... bash scripts/demo.sh
#                                             an Ollama or OpenAI-compatible
#                                             server (the llm.* settings)
#
# Extra arguments go to `tanuki run` (e.g. --json, --set agents.wall_s=600).
# The final files land in ./demo-out (TANUKI_DEMO_OUT). TANUKI_DEMO_SKIP_SETUP=1
# skips installing packages and building when TANUKI_BIN names a binary.
# Exit status: tanuki run's (0 when the task completed).
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
demo="$root/examples/demo"
out="${TANUKI_DEMO_OUT:-$root/demo-out}"
model="${TANUKI_MODEL:-${MODEL:-}}"

skip_setup="${TANUKI_DEMO_SKIP_SETUP:-0}"
given_bin="${TANUKI_BIN:-}"
# Every other TANUKI_* variable is a setting to tanuki, which refuses
# unknown ones: these are the script's own.
unset TANUKI_MODEL TANUKI_DEMO_OUT TANUKI_DEMO_SKIP_SETUP TANUKI_BIN

if [ "$skip_setup" = 1 ] && [ -n "$given_bin" ]; then
	bin=$given_bin
else
	bash scripts/install-deps.sh
	dir=$(bash scripts/build.sh release | tail -n 1)
	bin="$root/$dir/src/cli/tanuki"
	[ -x "$bin" ] || bin="$dir/src/cli/tanuki"
fi

# The task's input files, by their paths relative to examples/demo/files.
work=$(mktemp -d "${TMPDIR:-/tmp}/tanuki-demo.XXXXXX")
trap 'rm -rf "$work"' EXIT
cp -R "$demo/files/." "$work/"
args=(run "$(cat "$demo/task.txt")" --test-command "$(cat "$demo/test_command.txt")"
	--out "$out")
while IFS= read -r f; do
	args+=(--file "${f#./}")
done < <(cd "$work" && find . -type f | sort)

rc=0
if [ -n "$model" ]; then
	echo "== tanuki run on your model: $model (embedded engine)" >&2
	(cd "$work" && "$bin" "${args[@]}" --set llm.backend=embedded --set "llm.model=$model" \
		--set llm.embedded_ctx=8192 --set "llm.embedded_threads=$(nproc)" "$@") || rc=$?
elif [ -n "${TANUKI_LLM_BACKEND:-}" ]; then
	echo "== tanuki run on the configured backend: $TANUKI_LLM_BACKEND ${TANUKI_LLM_MODEL:-}" >&2
	(cd "$work" && "$bin" "${args[@]}" "$@") || rc=$?
else
	echo "== OFFLINE DEMO: no model; the agents' replies are replayed from" >&2
	echo "== examples/demo/replies.json (scripted backend). Building, testing and" >&2
	echo "== reviewing in the sandbox are real. With a model:" >&2
	echo "==   TANUKI_MODEL=/path/model.gguf bash scripts/demo.sh" >&2
	(cd "$work" && "$bin" "${args[@]}" --set llm.backend=scripted \
		--set "llm.script=$demo/replies.json" "$@") || rc=$?
fi
echo "== the files are in $out" >&2
exit "$rc"
