#!/usr/bin/env python3
"""ops_metric_names.py: checks that every metric the Prometheus rules and the
Grafana dashboards query is one Tanuki exports. Used by ops_prometheus.sh.

usage: ops_metric_names.py SCRAPE_FILE SRC_DIR RULES.yml DASHBOARD.json...

A queried name is accepted when it is
  - a sample or family name in SCRAPE_FILE (expositions of a running server's
    /metrics and of `tanuki llm chat --metrics-out`), or
  - on LAZY: registered by a module serve does not run yet, or only on first
    use (the name must appear as a string literal under SRC_DIR, so a typo
    still fails), or
  - on PLANNED: a metric DESIGN.md promises for a subsystem that has not
    landed; the rules and panels using it activate when it is exported, or
  - a recording rule of RULES.yml, or one of Prometheus' own series.
Anything else fails the check and is named.
"""
import json
import os
import re
import sys

import yaml

# Registered by modules `tanuki serve` does not run yet, or on first use, so
# absent from the scrapes; each name must still be registered under SRC_DIR.
LAZY = {
    "tanuki_sandbox_runs_total": "src/sandbox/run.c, on the first sandbox run (the server's noop runner never runs one)",
    "tanuki_sandbox_wall_seconds": "src/sandbox/run.c, on the first sandbox run",
    "tanuki_sandbox_cpu_seconds": "src/sandbox/run.c, on the first sandbox run",
    "tanuki_sandbox_peak_memory_bytes": "src/sandbox/run.c, on the first sandbox run",
    "tanuki_metrics_label_overflow_total": "src/obs/metrics.c, on the first label-cap overflow",
    "tanuki_adapter_evictions_total": "src/engine/adapter_cache.c, when an adapter cache is created (not by serve yet)",
    "tanuki_adapter_resident": "src/engine/adapter_cache.c, with the adapter cache",
    "tanuki_adapter_resident_bytes": "src/engine/adapter_cache.c, with the adapter cache",
    "tanuki_adapter_budget_bytes": "src/engine/adapter_cache.c, with the adapter cache",
    "tanuki_adapter_hits_total": "src/engine/adapter_cache.c, with the adapter cache",
    "tanuki_adapter_misses_total": "src/engine/adapter_cache.c, with the adapter cache",
    "tanuki_adapter_load_seconds": "src/engine/adapter_cache.c, with the adapter cache",
}
# Planned by DESIGN.md but not registered anywhere yet: rules and panels using
# them activate when they are exported. Empty since the LLM backends and the
# adapter cache landed; keep it explicit so an addition is a reviewed choice.
PLANNED = {}
PROMETHEUS_OWN = {"up", "ALERTS", "ALERTS_FOR_STATE", "scrape_duration_seconds"}
KEYWORDS = {"by", "without", "on", "ignoring", "group_left", "group_right", "bool",
            "and", "or", "unless", "offset", "inf", "nan", "Inf", "NaN", "atan2"}
HIST_SUFFIXES = ("_bucket", "_sum", "_count")


def names_in_promql(expr):
    """Metric names an expression selects (functions, keywords, labels left out)."""
    e = re.sub(r'"(?:[^"\\]|\\.)*"' + r"|'(?:[^'\\]|\\.)*'", '""', expr)   # strings
    e = re.sub(r"\{[^}]*\}", "", e)                                       # matchers
    e = re.sub(r"\[[^\]]*\]", "", e)                                      # ranges
    e = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", " ", e)
    e = re.sub(r"\boffset\s+\S+", " ", e)
    out = set()
    for m in re.finditer(r"(?<![\w.$])([A-Za-z_:][A-Za-z0-9_:]*)(\s*\()?", e):
        name, call = m.group(1), m.group(2)
        if call or name in KEYWORDS:
            continue
        out.add(name)
    return out


def dashboard_exprs(node):
    if isinstance(node, dict):
        for k, v in node.items():
            if k in ("expr", "query") and isinstance(v, str) and k == "expr":
                yield v
            elif k == "query" and isinstance(v, str) and v.startswith("label_values("):
                inner = v[len("label_values("):].rsplit(",", 1)[0]
                yield inner
            else:
                yield from dashboard_exprs(v)
    elif isinstance(node, list):
        for v in node:
            yield from dashboard_exprs(v)


def base_names(name):
    yield name
    for s in HIST_SUFFIXES:
        if name.endswith(s):
            yield name[: -len(s)]


def main(argv):
    if len(argv) < 4:
        print(__doc__, file=sys.stderr)
        return 2
    scrape_file, src_dir, rules_file, dashboards = argv[0], argv[1], argv[2], argv[3:]
    exported = set()
    with open(scrape_file, encoding="utf-8") as f:
        for line in f:
            if line.startswith("# TYPE "):
                exported.add(line.split()[2])
            elif line.strip() and not line.startswith("#"):
                exported.add(re.match(r"[A-Za-z_:][A-Za-z0-9_:]*", line).group(0))
    if not any(n.startswith("tanuki_") for n in exported):
        print(f"FAIL: {scrape_file} holds no tanuki_ metric", file=sys.stderr)
        return 1
    sources = ""
    for root, _, files in os.walk(src_dir):
        for fn in files:
            if fn.endswith((".c", ".h")):
                with open(os.path.join(root, fn), encoding="utf-8", errors="replace") as f:
                    sources += f.read()

    with open(rules_file, encoding="utf-8") as f:
        rules = yaml.safe_load(f)
    recorded = set()
    queries = []  # (where, expr)
    for g in rules["groups"]:
        for r in g["rules"]:
            if "record" in r:
                recorded.add(r["record"])
            queries.append((f"{rules_file}: {r.get('record') or r.get('alert')}", r["expr"]))
    for d in dashboards:
        with open(d, encoding="utf-8") as f:
            dash = json.load(f)
        for e in dashboard_exprs(dash):
            queries.append((d, e))

    bad = 0
    used = set()
    for where, expr in queries:
        names = names_in_promql(expr)
        if not names:
            print(f"FAIL: {where}: no metric found in {expr!r}", file=sys.stderr)
            bad += 1
        for n in names:
            used.add(n)
            bases = list(base_names(n))
            if any(b in exported for b in bases) or n in recorded or n in PROMETHEUS_OWN:
                continue
            lazy = next((b for b in bases if b in LAZY), None)
            if lazy:
                if f'"{lazy}"' not in sources:
                    print(f"FAIL: {where}: {n}: on the lazy list but no longer registered under {src_dir}",
                          file=sys.stderr)
                    bad += 1
                continue
            if any(b in PLANNED for b in bases):
                continue
            print(f"FAIL: {where}: {n} is not exported by tanuki (not in the scrape, "
                  f"not a recording rule, not on the documented lists)", file=sys.stderr)
            bad += 1
    for lst, label in ((LAZY, "lazy"), (PLANNED, "planned")):
        for n in lst:
            if not any(b in used for b in [n] + [n + s for s in HIST_SUFFIXES]):
                print(f"FAIL: {n} is on the {label} list but nothing queries it: drop it", file=sys.stderr)
                bad += 1
    for n in PLANNED:
        if n in exported:
            print(f"note: planned metric {n} is exported now: move it off the PLANNED list")
    print(f"ops_metric_names: {len(queries)} queries, {len(used)} names, {len(exported)} exported, "
          f"{bad} problems")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
