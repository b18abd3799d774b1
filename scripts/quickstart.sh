#!/usr/bin/env bash
# Quickstart: installs dependencies, builds Tanuki (release), makes sure an
# admin API key exists, and runs the main job: the HTTP API server on
# 127.0.0.1:8080 (stop it with Ctrl-C; it drains and exits 0).
#
#   bash scripts/quickstart.sh            # as root on Debian 12 (or with sudo)
#   TANUKI_SERVER_LISTEN=127.0.0.1:9090 TANUKI_SERVER_DATA_DIR=./data bash scripts/quickstart.sh
# (those are the server.listen and server.data_dir settings, docs/configuration.md)
#
# Tasks run through the agents (server.runner=orchestrator) on the llm.*
# backend: Ollama at 127.0.0.1:11434 by default; set TANUKI_LLM_BACKEND,
# TANUKI_LLM_MODEL, TANUKI_LLM_URL for another server, or
#   TANUKI_MODEL=/path/model.gguf bash scripts/quickstart.sh
# for the embedded engine (docs/llm.md, docs/agents.md).
#
# A new admin key is printed once; keep it. Submit a task with it:
#   curl -s -H "X-API-Key: $KEY" -d '{"task_description":"hello","wait":10}' \
#        http://127.0.0.1:8080/run_task
set -euo pipefail
cd "$(dirname "$0")/.."
listen="${TANUKI_SERVER_LISTEN:-127.0.0.1:8080}"
data="${TANUKI_SERVER_DATA_DIR:-./tanuki-data}"
model="${TANUKI_MODEL:-}"
unset TANUKI_MODEL # not a setting: tanuki refuses unknown TANUKI_* variables
llm=()
[ -n "$model" ] && llm=(--set llm.backend=embedded --set "llm.model=$model")

bash scripts/install-deps.sh
dir=$(bash scripts/build.sh release | tail -n 1)
bin="$dir/src/cli/tanuki"
"$bin" --version

mkdir -p "$data"
admins=$("$bin" keys list --data-dir "$data" --json | jq '[.[] | select(.role == "admin" and (.revoked | not))] | length')
if [ "$admins" = 0 ]; then
  key=$("$bin" keys create --data-dir "$data" --name quickstart-admin --role admin | tail -n 1)
  echo
  echo "Created an admin API key (shown once, keep it):"
  echo "  $key"
  echo "Try:  curl -s -H \"X-API-Key: $key\" -d '{\"task_description\":\"hello\",\"wait\":10}' http://$listen/run_task"
  echo
fi
"$bin" sandbox doctor || echo "(sandbox: see above for what this host enforces)"
exec "$bin" serve --listen "$listen" --data-dir "$data" "${llm[@]}"
