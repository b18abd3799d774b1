#!/usr/bin/env bash
# agents_run_embedded.sh — the whole team on the embedded engine: the checks
# of tests/integration/agents_embedded.sh (a clear ending, no crash, every
# parsed tool call valid JSON under the schema-constrained decoding) with
# all six agents and a budget for about three model calls.
#
# Opt-in (tests/slow, -DTANUKI_SLOW_TESTS=ON); CI runs the two-agent cut.
# A briefing is ~2000 tokens; the token budget (agents.max_tokens=8000) ends
# the task after about three model calls. Measured in the debug build:
# ~90 s of CPU before packed weights and SIMD attention, 36 s of CPU (32 s
# wall, other jobs running) after; the time is the prefill of the
# briefings, not the grammar (docs/benchmarks.md, "Grammar masks").
set -euo pipefail
SRC="${TK_SOURCE_DIR:?TK_SOURCE_DIR not set}"
export TK_EMB_TEAM='[{"name":"planner-critic","max_tokens":48},
       {"name":"coder","max_tokens":48,"max_turns":2},
       {"name":"tester","max_tokens":48,"max_turns":1},
       {"name":"code-reviewer","max_tokens":48},
       {"name":"debugger","max_tokens":48,"max_turns":1},
       {"name":"documenter","max_tokens":48,"max_turns":1}]'
export TK_EMB_MAX_TOKENS=8000
exec bash "$SRC/tests/integration/agents_embedded.sh"
