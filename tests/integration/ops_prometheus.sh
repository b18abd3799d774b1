#!/usr/bin/env bash
# ops_prometheus.sh — the monitoring artifacts of deploy/ are valid and honest:
#  1. promtool check rules / test rules (deploy/prometheus/rules_test.yml) and
#     check config on the example Prometheus configuration;
#  2. amtool check-config on the Alertmanager configuration, and its routing:
#     critical -> pagerduty, warning -> slack-and-email;
#  3. every alert has severity, summary, description and a runbook_url whose
#     file exists in docs/operations/runbooks/, every alert the issue asks for
#     exists, and every alert is exercised by rules_test.yml; the Grafana
#     dashboards are well-formed and use the provisioned datasource;
#  4. every metric the rules and the Grafana dashboards query is exported by a
#     running `tanuki serve` (scraped after driving each labelled family) or
#     by `tanuki llm chat` (scripted backend), or is on the documented lazy
#     list of ops_metric_names.py (registered in src/, not run by serve yet);
#  5. the name check itself rejects a misspelt metric.
# Owner: operations. Tools: promtool (Debian prometheus), amtool (Debian
# prometheus-alertmanager), python3-yaml, curl, jq.
source "$(dirname "$0")/server_lib.bash"
: "${TK_SOURCE_DIR:?}"
D=$TK_SOURCE_DIR/deploy
for t in promtool amtool python3 curl jq; do
	command -v "$t" >/dev/null || { echo "FAIL: $t missing: run scripts/install-deps.sh" >&2; exit 1; }
done

# 1. Prometheus
check "promtool check rules" promtool check rules "$D/prometheus/rules.yml"
check "promtool test rules" promtool test rules "$D/prometheus/rules_test.yml"
check "promtool check config" promtool check config "$D/prometheus/prometheus.yml"

# 2. Alertmanager
check "amtool check-config" amtool check-config "$D/alertmanager/alertmanager.yml"
route() { amtool config routes test --config.file="$D/alertmanager/alertmanager.yml" "$@" 2>/dev/null; }
check "critical pages" eq "$(route severity=critical alertname=TanukiInstanceDown)" pagerduty
check "warning goes to chat and mail" eq "$(route severity=warning alertname=TanukiHighP99Latency)" slack-and-email

# 3. Alert metadata, runbooks, coverage by the rule tests
check "alert metadata" python3 - "$D/prometheus/rules.yml" "$D/prometheus/rules_test.yml" "$TK_SOURCE_DIR" <<'PY'
import os, sys, yaml
rules, tests, root = sys.argv[1:4]
want = {"critical": {"TanukiInstanceDown", "TanukiHigh5xxRate", "TanukiHighTaskFailureRate",
                     "TanukiSandboxInternalErrors", "TanukiMemoryNearLimit", "TanukiLLMBackendDown"},
        "warning": {"TanukiHighP99Latency", "TanukiQueueNearCapacity", "TanukiAdapterThrashing",
                    "TanukiFrequentRestarts", "TanukiUnusualTraffic"}}
prefix = "https://github.com/tanuki/tanuki/blob/main/"
bad = 0
def fail(msg):
    global bad
    print("  " + msg, file=sys.stderr); bad += 1
alerts = {}
for g in yaml.safe_load(open(rules))["groups"]:
    for r in g["rules"]:
        if "alert" in r:
            alerts[r["alert"]] = r
tested = set()
for t in yaml.safe_load(open(tests))["tests"]:
    for a in t.get("alert_rule_test", []):
        if a.get("exp_alerts"):
            tested.add(a["alertname"])
for sev, names in want.items():
    for n in names:
        if n not in alerts:
            fail(f"missing alert {n}")
        elif alerts[n]["labels"].get("severity") != sev:
            fail(f"{n}: severity should be {sev}")
for n, r in alerts.items():
    sev = r.get("labels", {}).get("severity")
    if sev not in ("critical", "warning"):
        fail(f"{n}: severity {sev!r}")
    ann = r.get("annotations", {})
    for k in ("summary", "description", "runbook_url"):
        if not ann.get(k):
            fail(f"{n}: no {k}")
    url = ann.get("runbook_url", "")
    if not url.startswith(prefix):
        fail(f"{n}: runbook_url must start with {prefix}")
    else:
        path = url[len(prefix):].split("#")[0]
        if path != f"docs/operations/runbooks/{n}.md":
            fail(f"{n}: runbook_url should name docs/operations/runbooks/{n}.md, names {path}")
        elif not os.path.isfile(os.path.join(root, path)):
            fail(f"{n}: runbook {path} does not exist")
    if n not in tested:
        fail(f"{n}: no firing case in rules_test.yml")
sys.exit(1 if bad else 0)
PY

# 3b. Grafana: panels well-formed, datasource and provisioning paths agree with compose.
check "grafana dashboard and provisioning" python3 - "$D" <<'PY'
import glob, json, os, sys, yaml
D = sys.argv[1]
bad = []
ds = yaml.safe_load(open(os.path.join(D, "grafana/provisioning/datasources/prometheus.yml")))["datasources"]
uids = {d["uid"] for d in ds}
prov = yaml.safe_load(open(os.path.join(D, "grafana/provisioning/dashboards/tanuki.yml")))["providers"]
compose = yaml.safe_load(open(os.path.join(D, "compose.yaml")))
mounts = compose["services"]["grafana"]["volumes"]
for p in prov:
    path = p["options"]["path"]
    if not any(m.split(":")[1] == path and m.startswith("./grafana/dashboards") for m in mounts):
        bad.append(f"provider path {path} is not where compose mounts deploy/grafana/dashboards")
want = ["HTTP", "Tasks", "LLM", "Adapter", "Sandbox", "Process"]
for f in glob.glob(os.path.join(D, "grafana/dashboards/*.json")):
    d = json.load(open(f))
    if not d.get("uid") or not d.get("title"): bad.append(f"{f}: no uid/title")
    ids = [p["id"] for p in d["panels"]]
    if len(ids) != len(set(ids)): bad.append(f"{f}: duplicate panel ids")
    rows = [p["title"] for p in d["panels"] if p["type"] == "row"]
    for w in want:
        if not any(r.startswith(w) for r in rows): bad.append(f"{f}: no row for {w}")
    for p in d["panels"]:
        g = p.get("gridPos", {})
        if not all(k in g for k in "hwxy") or g["x"] + g["w"] > 24: bad.append(f"{f}: panel {p['id']} gridPos {g}")
        if p["type"] == "row": continue
        if not p.get("targets"): bad.append(f"{f}: panel {p['title']} has no query")
        for t in [p] + p.get("targets", []):
            u = t.get("datasource", {}).get("uid")
            if u not in uids: bad.append(f"{f}: panel {p['title']} uses datasource {u}, provisioned: {uids}")
for b in bad: print("  " + b, file=sys.stderr)
sys.exit(1 if bad else 0)
PY

# 4. Queried metrics against a running server's /metrics
DIR=$TMP/srv
mkdir -p "$DIR"
KEY=$(mkkey "$DIR" ops admin)
srv_start "$DIR" --auth-failures-per-min 1 --workers 1
api POST /run_task "$KEY" '{"task_description":"ops metrics","wait":30}'
check "task completes" eq "$RESP_CODE" 200
api POST /admin/drain "$KEY" ""
api POST /run_task "$KEY" '{"task_description":"after drain"}'
check "draining refuses" eq "$RESP_CODE" 503
# Last: past the limit the address is refused even with a valid key.
api GET /tasks "" ""                         # missing key -> auth failure
api GET /tasks "tk_not_a_key" ""             # second failure -> 429 auth_failure
check "auth failure limit answers 429" eq "$RESP_CODE" 429
curl -s --max-time 10 "http://$SRV/metrics" >"$TMP/scrape"
srv_stop
for fam in tanuki_http_auth_failures_total tanuki_http_rate_limited_total tanuki_tasks_rejected_total tanuki_tasks_total; do
	check "$fam in the scrape" grep -q "^$fam{" "$TMP/scrape"
done
# The LLM metrics: one call of the scripted backend, exposition written after it.
printf '{"responses":[{"chunks":["o","k"],"usage":{"prompt_tokens":5,"completion_tokens":2},"model":"m"}]}' >"$TMP/script.json"
check "llm chat (scripted)" "$TANUKI_BIN" llm chat --backend scripted --script "$TMP/script.json" -m hi \
	--metrics-out "$TMP/llm.prom" >/dev/null 2>&1
check "backend_up has the backend label the alert names" grep -Eq '^tanuki_backend_up\{backend="scripted"\} [01]$' "$TMP/llm.prom"
check "completion tokens counted" grep -q '^tanuki_llm_completion_tokens_total{.*} 2$' "$TMP/llm.prom"
cat "$TMP/llm.prom" >>"$TMP/scrape"
DASH=("$D"/grafana/dashboards/*.json)
check "queried metrics are exported" python3 "$TK_SOURCE_DIR/tests/integration/ops_metric_names.py" \
	"$TMP/scrape" "$TK_SOURCE_DIR/src" "$D/prometheus/rules.yml" "${DASH[@]}"

# 5. The check can fail: a misspelt metric in a copy of the rules.
sed 's/tanuki_tasks_queue_depth/tanuki_task_queue_depht/' "$D/prometheus/rules.yml" >"$TMP/typo.yml"
if python3 "$TK_SOURCE_DIR/tests/integration/ops_metric_names.py" "$TMP/scrape" \
	"$TK_SOURCE_DIR/src" "$TMP/typo.yml" "${DASH[@]}" 2>"$TMP/typo.err"; then
	fail "a misspelt metric was accepted"
fi
check "the typo is named" grep -q tanuki_task_queue_depht "$TMP/typo.err"
finish
