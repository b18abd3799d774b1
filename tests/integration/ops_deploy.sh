#!/usr/bin/env bash
# ops_deploy.sh — the deployment artifacts are consistent and well-formed:
#  1. Dockerfile: dockerfilelint (npm, when installed) and our own rules:
#     multi-stage, builds with scripts/build.sh release, non-root USER,
#     HEALTHCHECK on /livez, OCI labels from VERSION/COMMIT build args, every
#     -dev library of scripts/install-deps.sh in the build stage, and a
#     runtime package for every shared library the tanuki binary needs;
#     .dockerignore keeps .git/build trees out but nothing the build needs;
#     the entrypoint prints the sandbox doctor before `serve` and runs other
#     commands as given (exercised with the real binary);
#  2. compose.yaml: services, every mounted file exists, memory limit;
#  3. Kubernetes: each kustomization renders (kubectl kustomize when
#     installed; else every referenced file must exist and parse), probes,
#     resources, securityContext, PDB, HPA, Service, ConfigMap, Secret;
#     each ConfigMap's tanuki.json passes `tanuki config check`;
#  4. constants the alerts rely on (4 GiB memory limit, queue_max 64) match
#     the manifests, compose and Cloud Run;
#  5. deploy/k8s/rollout.sh drives kubectl as documented (fake kubectl);
#  6. Cloud Build / Cloud Run: steps, tags, placeholders, gen2;
#  7. the log shipping examples (deploy/logging/) parse, and the fields and
#     timestamp format they rely on match a real line of `tanuki serve`.
# Owner: operations.
set -euo pipefail
: "${TANUKI_BIN:?}" "${TK_SOURCE_DIR:?}"
S=$TK_SOURCE_DIR
TMP=$(mktemp -d "${TMPDIR:-/tmp}/tk-ops-deploy.XXXXXX")
trap 'rm -rf "$TMP"' EXIT
FAILS=0
fail() { echo "FAIL: $*" >&2; FAILS=$((FAILS + 1)); }
check() { local what=$1; shift; "$@" || fail "$what"; }

# 1. Dockerfile
if command -v dockerfilelint >/dev/null; then
	check "dockerfilelint" dockerfilelint "$S/Dockerfile"
else
	echo "note: dockerfilelint not installed (npm i -g dockerfilelint): only our own Dockerfile rules run"
fi
# Shared libraries the binary needs -> Debian packages (this machine's dpkg).
: >"$TMP/runtime-pkgs"
if command -v objdump >/dev/null && command -v dpkg >/dev/null; then
	for so in $(objdump -p "$TANUKI_BIN" | awk '/NEEDED/ {print $2}'); do
		case "$so" in libc.so* | libm.so* | ld-linux* | libasan* | libubsan* | libpthread* | libdl* | libgcc_s*) continue ;; esac
		# (awk reads all input: an early exit would SIGPIPE ldconfig under pipefail)
		path=$(ldconfig -p | awk -v so="$so" '$1 == so && /x86-64|aarch64|64bit/ && !p {print $NF; p = 1}') || true
		[ -n "$path" ] || { fail "cannot resolve $so"; continue; }
		pkg=$(dpkg -S "$(readlink -f "$path")" 2>/dev/null | head -n 1 | cut -d: -f1) || true
		[ -n "$pkg" ] || pkg=$(dpkg -S "$path" 2>/dev/null | head -n 1 | cut -d: -f1) || true
		[ -n "$pkg" ] && echo "$so $pkg" >>"$TMP/runtime-pkgs" || fail "no Debian package owns $path"
	done
fi
R=$S/tests/integration/ops_dockerfile_rules.py
check "Dockerfile rules" python3 "$R" "$S" "$TMP/runtime-pkgs"
# The rules can fail: a Dockerfile running as root and without a HEALTHCHECK.
mkdir -p "$TMP/bad/scripts"
sed -e 's/^USER 10001:10001$/USER root/' -e '/^HEALTHCHECK/,/livez/d' "$S/Dockerfile" >"$TMP/bad/Dockerfile"
cp "$S/.dockerignore" "$TMP/bad/" && cp "$S/scripts/install-deps.sh" "$TMP/bad/scripts/"
python3 "$R" "$TMP/bad" "$TMP/runtime-pkgs" 2>"$TMP/bad.err" && fail "the rules accepted a root Dockerfile"
check "root USER named" grep -q "non-root USER" "$TMP/bad.err"
check "missing HEALTHCHECK named" grep -q "HEALTHCHECK" "$TMP/bad.err"
# Entrypoint, with the real binary as `tanuki`
mkdir -p "$TMP/bin" && ln -s "$TANUKI_BIN" "$TMP/bin/tanuki"
check "entrypoint is POSIX sh" sh -n "$S/deploy/docker-entrypoint.sh"
check "entrypoint is executable" test -x "$S/deploy/docker-entrypoint.sh"
PATH="$TMP/bin:$PATH" sh "$S/deploy/docker-entrypoint.sh" version >"$TMP/ver.out" 2>"$TMP/ver.err" || fail "entrypoint version exited $?"
check "entrypoint runs other commands as given" grep -q '^tanuki ' "$TMP/ver.out"
check "no doctor for other commands" test ! -s "$TMP/ver.err"
PATH="$TMP/bin:$PATH" timeout 60 sh "$S/deploy/docker-entrypoint.sh" serve --help >"$TMP/serve.out" 2>"$TMP/serve.err" || true
check "doctor report before serve" grep -q 'sandbox capabilities' "$TMP/serve.err"
check "doctor verdict printed" grep -q 'verdict' "$TMP/serve.err"
check "then tanuki serve runs" grep -qi 'serve' "$TMP/serve.out" "$TMP/serve.err"

# 2-4, 6: YAML artifacts
kubectl_ok=0
# TANUKI_TEST_NO_KUBECTL=1 exercises the structural fallback where kubectl is installed.
if [ "${TANUKI_TEST_NO_KUBECTL:-0}" != 1 ] && command -v kubectl >/dev/null &&
	kubectl kustomize --help >/dev/null 2>&1; then kubectl_ok=1; fi
[ $kubectl_ok -eq 1 ] || echo "note: kubectl not installed: kustomizations checked structurally only"
for k in base overlays/staging overlays/production canary bluegreen; do
	if [ $kubectl_ok -eq 1 ]; then
		kubectl kustomize "$S/deploy/k8s/$k" >"$TMP/k8s-${k//\//-}.yaml" 2>"$TMP/kerr" ||
			fail "kubectl kustomize deploy/k8s/$k: $(cat "$TMP/kerr")"
	fi
done
check "deploy YAML" python3 - "$S" "$TMP" "$kubectl_ok" "$TANUKI_BIN" <<'PY'
import os, re, subprocess, sys, json, yaml
root, tmp, kubectl_ok, tanuki = sys.argv[1], sys.argv[2], sys.argv[3] == "1", sys.argv[4]
D = os.path.join(root, "deploy")
bad = []
def fail(m): bad.append(m)
GIB4 = 4 * 1024 ** 3
def mem_bytes(v):
    m = re.fullmatch(r"(\d+)(Ki|Mi|Gi|k|m|g|M|G)?", str(v).strip())
    if not m: return None
    mult = {"Ki": 1024, "Mi": 1024**2, "Gi": 1024**3, "k": 1024, "m": 1024**2, "g": 1024**3, "M": 1024**2, "G": 1024**3, None: 1}
    return int(m.group(1)) * mult[m.group(2)]

# alert constants
rules = open(os.path.join(D, "prometheus/rules.yml")).read()
if f"0.9 * {GIB4}" not in rules: fail(f"TanukiMemoryNearLimit no longer compares with 0.9 * {GIB4}")
if "0.8 * 64" not in rules: fail("TanukiQueueNearCapacity no longer uses queue_max 64")

# compose
c = yaml.safe_load(open(os.path.join(D, "compose.yaml")))
svcs = c.get("services", {})
for s in ("tanuki", "prometheus", "alertmanager", "grafana", "ollama"):
    if s not in svcs: fail(f"compose: no service {s}")
if "ollama" in svcs and not svcs["ollama"].get("profiles"): fail("compose: ollama should be optional (profiles)")
for name, s in svcs.items():
    for v in s.get("volumes", []):
        src = v.split(":")[0]
        if src.startswith("."):
            p = os.path.normpath(os.path.join(D, src))
            if not os.path.exists(p): fail(f"compose: {name} mounts missing {src}")
    b = s.get("build")
    if b:
        ctx = os.path.normpath(os.path.join(D, b["context"]))
        if not os.path.isfile(os.path.join(ctx, b.get("dockerfile", "Dockerfile"))): fail(f"compose: {name}: no Dockerfile in {ctx}")
t = svcs.get("tanuki", {})
if mem_bytes(t.get("mem_limit")) != GIB4: fail(f"compose: tanuki mem_limit {t.get('mem_limit')} != 4 GiB (alert constant)")
if t.get("environment", {}).get("TANUKI_SERVER_QUEUE_MAX") != "64": fail("compose: TANUKI_SERVER_QUEUE_MAX != 64")
prom = yaml.safe_load(open(os.path.join(D, "prometheus/prometheus.yml")))
targets = [t for sc in prom["scrape_configs"] if sc["job_name"] == "tanuki" for st in sc["static_configs"] for t in st["targets"]]
if targets != ["tanuki:8080"]: fail(f"prometheus.yml: tanuki targets {targets} (compose service tanuki, port 8080)")
if "8080" not in open(os.path.join(root, "Dockerfile")).read(): fail("Dockerfile does not listen on 8080")

# kustomizations: structure
def load_all(p):
    with open(p) as f:
        return [d for d in yaml.safe_load_all(f) if d is not None]
def walk(kdir, seen):
    kf = os.path.join(kdir, "kustomization.yaml")
    if not os.path.isfile(kf): fail(f"{kdir}: no kustomization.yaml"); return []
    k = yaml.safe_load(open(kf))
    if k.get("kind") != "Kustomization": fail(f"{kf}: kind is not Kustomization")
    docs = []
    for r in k.get("resources", []):
        p = os.path.normpath(os.path.join(kdir, r))
        if os.path.isdir(p): docs += walk(p, seen)
        elif os.path.isfile(p):
            for d in load_all(p):
                for key in ("apiVersion", "kind", "metadata"):
                    if key not in d: fail(f"{p}: a document without {key}")
                if not d.get("metadata", {}).get("name"): fail(f"{p}: a document without metadata.name")
                docs.append(d)
        else: fail(f"{kf}: resource {r} does not exist")
    for pt in k.get("patches", []):
        if "path" in pt and not os.path.isfile(os.path.join(kdir, pt["path"])): fail(f"{kf}: patch {pt['path']} does not exist")
        if "patch" in pt:
            try: yaml.safe_load(pt["patch"])
            except yaml.YAMLError as e: fail(f"{kf}: inline patch: {e}")
    return docs
rendered = {}
for k in ("base", "overlays/staging", "overlays/production", "canary", "bluegreen"):
    docs = walk(os.path.join(D, "k8s", k), set())
    if kubectl_ok:
        docs = load_all(os.path.join(tmp, "k8s-" + k.replace("/", "-") + ".yaml"))
    rendered[k] = docs

def by_kind(docs, kind): return [d for d in docs if d["kind"] == kind]
for k, docs in rendered.items():
    kinds = {d["kind"] for d in docs}
    for need in ("Deployment", "Service", "ConfigMap", "Secret", "PodDisruptionBudget", "HorizontalPodAutoscaler"):
        if need not in kinds: fail(f"k8s {k}: no {need}")
    for dep in by_kind(docs, "Deployment"):
        name = dep["metadata"]["name"]; spec = dep["spec"]["template"]["spec"]
        psc = spec.get("securityContext", {})
        if not psc.get("runAsNonRoot") or psc.get("runAsUser") in (None, 0): fail(f"k8s {k}/{name}: not runAsNonRoot with a uid")
        for ctr in spec["containers"]:
            lp = ctr.get("livenessProbe", {}).get("httpGet", {}).get("path")
            rp = ctr.get("readinessProbe", {}).get("httpGet", {}).get("path")
            if lp != "/livez": fail(f"k8s {k}/{name}: liveness probe {lp}, want /livez")
            if rp != "/readyz": fail(f"k8s {k}/{name}: readiness probe {rp}, want /readyz")
            res = ctr.get("resources", {})
            for part in ("requests", "limits"):
                for r in ("cpu", "memory"):
                    if r not in res.get(part, {}): fail(f"k8s {k}/{name}: no {part}.{r}")
            if mem_bytes(res.get("limits", {}).get("memory")) != GIB4: fail(f"k8s {k}/{name}: memory limit != 4Gi (alert constant)")
            csc = ctr.get("securityContext", {})
            if csc.get("allowPrivilegeEscalation") is not False: fail(f"k8s {k}/{name}: allowPrivilegeEscalation not false")
            if "ALL" not in csc.get("capabilities", {}).get("drop", []): fail(f"k8s {k}/{name}: capabilities not dropped")
        if kubectl_ok:
            sel = dep["spec"]["selector"]["matchLabels"]
            labels = dep["spec"]["template"]["metadata"]["labels"]
            if any(labels.get(a) != b for a, b in sel.items()): fail(f"k8s {k}/{name}: selector does not match the pod labels")
    for s in by_kind(docs, "Secret"):
        if s.get("data") or s.get("stringData"): fail(f"k8s {k}: Secret {s['metadata']['name']} carries values (never commit secrets)")
    if kubectl_ok:
        for pdb in by_kind(docs, "PodDisruptionBudget"):
            if not pdb["spec"].get("selector", {}).get("matchLabels"): fail(f"k8s {k}: PDB without a selector")
    for i, cm in enumerate(by_kind(docs, "ConfigMap")):
        j = cm.get("data", {}).get("tanuki.json")
        if j is None: continue
        p = os.path.join(tmp, f"cm-{k.replace('/', '-')}-{i}.json")
        open(p, "w").write(j)
        r = subprocess.run([tanuki, "config", "check", p], capture_output=True, text=True, env={"PATH": os.environ.get("PATH", "")})
        if r.returncode != 0: fail(f"k8s {k}: ConfigMap tanuki.json rejected by tanuki config check: {r.stdout}{r.stderr}")
        if json.loads(j).get("server", {}).get("queue_max") != 64: fail(f"k8s {k}: server.queue_max != 64 (alert constant)")
if kubectl_ok:
    bg = rendered["bluegreen"]
    colours = {d["spec"]["template"]["metadata"]["labels"].get("track") for d in by_kind(bg, "Deployment")}
    if colours != {"blue", "green"}: fail(f"bluegreen: deployment colours {colours}")
    live = [s for s in by_kind(bg, "Service") if s["metadata"]["name"] == "tanuki-live"]
    if not live or live[0]["spec"]["selector"].get("track") not in ("blue", "green"): fail("bluegreen: no live Service selecting a colour")
    ing = [d for d in rendered["canary"] if d["kind"] == "Ingress"]
    if not ing or ing[0]["metadata"]["annotations"].get("nginx.ingress.kubernetes.io/canary") != "true": fail("canary: no canary ingress")
    elif ing[0]["spec"]["rules"][0]["http"]["paths"][0]["backend"]["service"]["name"] != "tanuki-canary": fail("canary: ingress does not route to tanuki-canary")

# Cloud Build / Cloud Run
cb = yaml.safe_load(open(os.path.join(D, "gcp/cloudbuild.yaml")))
ids = [s.get("id") for s in cb["steps"]]
if ids != ["test", "build", "push", "deploy"]: fail(f"cloudbuild: steps {ids}, want test, build, push, deploy")
cbtext = open(os.path.join(D, "gcp/cloudbuild.yaml")).read()
builtin = {"PROJECT_ID", "COMMIT_SHA", "SHORT_SHA", "BUILD_ID", "REPO_NAME", "BRANCH_NAME", "TAG_NAME", "REVISION_ID", "LOCATION"}
for v in set(re.findall(r"\$\{(_?[A-Z_]+)\}", cbtext)):
    if v not in builtin and v not in cb.get("substitutions", {}): fail(f"cloudbuild: ${{{v}}} is not defined")
if "dynamicSubstitutions" not in str(cb.get("options", {})) and any("${" in str(v) for v in cb.get("substitutions", {}).values()):
    fail("cloudbuild: substitutions refer to others without options.dynamicSubstitutions")
imgs = cb.get("images", [])
if not any(i.endswith(":v${_VERSION}") for i in imgs) or not any(i.endswith(":${COMMIT_SHA}") for i in imgs): fail(f"cloudbuild: images {imgs} lack the vVERSION and SHA tags")
crtext = open(os.path.join(D, "gcp/cloudrun_service.yaml")).read()
cr = yaml.safe_load(crtext)
for ph in set(re.findall(r"\b[A-Z_]+_PLACEHOLDER\b", "\n".join(l for l in crtext.splitlines() if not l.lstrip().startswith("#")))):
    if f"s#{ph}#" not in cbtext: fail(f"cloudrun: {ph} is never filled by cloudbuild.yaml")
tmpl = cr["spec"]["template"]
if tmpl["metadata"]["annotations"].get("run.googleapis.com/execution-environment") != "gen2": fail("cloudrun: not the gen2 execution environment")
ctr = tmpl["spec"]["containers"][0]
if mem_bytes(ctr["resources"]["limits"]["memory"]) != GIB4: fail("cloudrun: memory limit != 4Gi (alert constant)")
if ctr.get("livenessProbe", {}).get("httpGet", {}).get("path") != "/livez": fail("cloudrun: no /livez liveness probe")
for b in bad: print("  " + b, file=sys.stderr)
print(f"deploy YAML: {len(bad)} problems (kubectl: {'yes' if kubectl_ok else 'no'})")
sys.exit(1 if bad else 0)
PY

# 5. rollout.sh against a fake kubectl that records its arguments
cat >"$TMP/kubectl" <<'SH'
#!/bin/sh
echo "$*" >>"$FAKE_LOG"
case "$*" in
*"get deployment tanuki-"*"readyReplicas"*) echo "${FAKE_READY:-1}" ;;
*"get service tanuki-live"*) exit "${FAKE_NO_LIVE:-0}" ;;
esac
exit 0
SH
chmod +x "$TMP/kubectl"
R=$S/deploy/k8s/rollout.sh
run_rollout() { : >"$TMP/log"; KUBECTL="$TMP/kubectl" FAKE_LOG="$TMP/log" IMAGE_REPO=reg/tanuki "$R" "$@" 2>"$TMP/rerr"; }
check "rollout deploy" run_rollout deploy v1.2.3
check "deploy sets the image" grep -qx -- '-n tanuki set image deployment/tanuki tanuki=reg/tanuki:v1.2.3' "$TMP/log"
check "deploy waits" grep -q -- 'rollout status deployment/tanuki' "$TMP/log"
check "rollout by SHA" run_rollout deploy 0123456789abcdef0123456789abcdef01234567
run_rollout deploy 1.2.3 && fail "a tag without v was accepted"
run_rollout deploy 'v1.2.3;rm' && fail "a tag with junk was accepted"
check "nothing ran for bad tags" test ! -s "$TMP/log"
check "rollback" run_rollout rollback
check "rollback undoes" grep -qx -- '-n tanuki rollout undo deployment/tanuki' "$TMP/log"
check "canary" run_rollout canary v1.3.0
check "canary applies its kustomization" grep -q -- "apply -k $S/deploy/k8s/canary" "$TMP/log"
check "canary image" grep -qx -- '-n tanuki set image deployment/tanuki-canary tanuki=reg/tanuki:v1.3.0' "$TMP/log"
check "canary abort" run_rollout canary-abort
check "canary abort removes routing first" sh -c "head -n 1 '$TMP/log' | grep -q 'delete ingress/tanuki-canary'"
check "blue/green deploy" run_rollout bluegreen-deploy green v1.3.0
check "green image" grep -qx -- '-n tanuki set image deployment/tanuki-green tanuki=reg/tanuki:v1.3.0' "$TMP/log"
check "switch" run_rollout bluegreen-switch green
check "switch patches the live selector" grep -q -- 'patch service tanuki-live --type merge -p {"spec":{"selector":{"track":"green"}}}' "$TMP/log"
: >"$TMP/log"
if KUBECTL="$TMP/kubectl" FAKE_LOG="$TMP/log" FAKE_READY=0 "$R" bluegreen-switch blue 2>/dev/null; then fail "switched to a colour with no ready pod"; fi
check "no patch without ready pods" sh -c "! grep -q 'patch service' '$TMP/log'"
run_rollout bluegreen-switch purple && fail "a bad colour was accepted"

# 7. Log shipping examples against a real log line of `tanuki serve`
mkdir -p "$TMP/srv"
"$TANUKI_BIN" serve --listen 127.0.0.1:0 --data-dir "$TMP/srv" --addr-file "$TMP/srv/addr" 2>"$TMP/srv/log" &
spid=$!
for _ in $(seq 1 100); do [ -s "$TMP/srv/addr" ] && break; sleep 0.05; done
kill -TERM "$spid" 2>/dev/null || true
wait "$spid" 2>/dev/null || true
check "log shipping configs" python3 - "$S" "$TMP/srv/log" <<'PY'
import datetime, json, os, re, sys, yaml
root, logfile = sys.argv[1:3]
L = os.path.join(root, "deploy/logging")
bad = []
lines = [json.loads(l) for l in open(logfile) if l.startswith("{")]
if not lines: bad.append("tanuki serve wrote no JSON log line")
doc = open(os.path.join(root, "docs/logging.md")).read()
for f in ("ts", "level", "severity", "msg", "component"):
    if f"| `{f}` |" not in doc: bad.append(f"docs/logging.md no longer documents {f}")
    if lines and f not in lines[0]: bad.append(f"a real log line lacks {f}: {lines[0]}")
# fluent-bit: structure, and its time format reads a real ts
fb = yaml.safe_load(open(os.path.join(L, "fluent-bit.yaml")))
for part in ("inputs", "filters", "outputs"):
    if not fb.get("pipeline", {}).get(part): bad.append(f"fluent-bit.yaml: no pipeline.{part}")
parsers = open(os.path.join(L, "parsers.conf")).read()
if fb["service"].get("parsers_file") != "parsers.conf": bad.append("fluent-bit.yaml does not load parsers.conf")
tk = re.search(r"Time_Key\s+(\S+)", parsers).group(1)
tf = re.search(r"Time_Format\s+(.+)", parsers).group(1).strip().replace("%L", "%f")
if lines:
    try: datetime.datetime.strptime(lines[0][tk], tf)
    except (KeyError, ValueError) as e: bad.append(f"parsers.conf cannot read {tk} of a real line: {e}")
for o in fb["pipeline"]["outputs"]:
    if o.get("time_key") and lines and o["time_key"] not in lines[0]: bad.append(f"fluent-bit output time_key {o['time_key']} is not a log field")
# vector: every input names an existing component; fields it reads exist
v = yaml.safe_load(open(os.path.join(L, "vector.yaml")))
names = set(v.get("sources", {})) | set(v.get("transforms", {}))
for kind in ("transforms", "sinks"):
    for n, c in v.get(kind, {}).items():
        for i in c.get("inputs", []):
            if i not in names: bad.append(f"vector.yaml: {n} reads unknown input {i}")
types = {c["type"] for c in v.get("sinks", {}).values()}
if not {"elasticsearch", "gcp_stackdriver_logs"} <= types: bad.append(f"vector.yaml sinks {types}: want Elasticsearch and Cloud Logging")
for n, c in v.get("sinks", {}).items():
    if c.get("severity_key") and lines and c["severity_key"] not in lines[0]: bad.append(f"vector.yaml {n}: severity_key {c['severity_key']} is not a log field")
remap = "".join(c.get("source", "") for c in v["transforms"].values())
for f in re.findall(r"parse_timestamp\(\.(\w+)", remap):
    if lines and f not in lines[0]: bad.append(f"vector.yaml parses .{f}, not a log field")
for b in bad: print("  " + b, file=sys.stderr)
sys.exit(1 if bad else 0)
PY

if [ "$FAILS" -gt 0 ]; then echo "$FAILS check(s) failed" >&2; exit 1; fi
echo "all checks passed"
