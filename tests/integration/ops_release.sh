#!/usr/bin/env bash
# ops_release.sh — scripts/release.sh and the CI workflow:
#  1. in a scratch git repository holding copies of the files a release edits,
#     `release.sh 0.2.0` bumps CMakeLists.txt, turns CHANGELOG's Unreleased
#     section into "## [0.2.0] - date", points the production and canary
#     kustomizations at v0.2.0, commits exactly those files and tags v0.2.0
#     with the section as message; `release.sh notes 0.2.0` prints it;
#     bad, equal-and-tagged or lower versions, an existing tag, an empty
#     Unreleased section and uncommitted changes are refused, changing nothing;
#  2. .github/workflows/ci.yml parses, has the jobs the issue asks for, every
#     repository script it runs exists, and the release job runs on tags only;
#  3. the operations docs exist and every repository path or link they name exists.
# Owner: operations.
set -euo pipefail
: "${TK_SOURCE_DIR:?}"
S=$TK_SOURCE_DIR
TMP=$(mktemp -d "${TMPDIR:-/tmp}/tk-ops-release.XXXXXX")
trap 'rm -rf "$TMP"' EXIT
FAILS=0
fail() { echo "FAIL: $*" >&2; FAILS=$((FAILS + 1)); }
check() { local what=$1; shift; "$@" || fail "$what"; }

R=$TMP/repo
mkdir -p "$R/scripts" "$R/deploy/k8s/overlays/production" "$R/deploy/k8s/canary"
cp "$S/scripts/release.sh" "$R/scripts/"
cp "$S/deploy/k8s/overlays/production/kustomization.yaml" "$R/deploy/k8s/overlays/production/"
cp "$S/deploy/k8s/canary/kustomization.yaml" "$R/deploy/k8s/canary/"
cat >"$R/CMakeLists.txt" <<'CM'
cmake_minimum_required(VERSION 3.25)
project(tanuki VERSION 0.1.3 LANGUAGES C)
CM
cat >"$R/CHANGELOG.md" <<'MD'
# Changelog

## [Unreleased]

### Fixed
- the widget no longer wobbles

## [0.1.3] - 2026-01-02

### Added
- the widget
MD
sed -i 's/newTag: v[0-9.]*/newTag: v0.1.3/' "$R"/deploy/k8s/*/kustomization.yaml "$R"/deploy/k8s/overlays/production/kustomization.yaml
g() { git -C "$R" "$@"; }
g init -q && g config user.email ops@test && g config user.name ops && g add -A && g commit -q -m init && g tag -a v0.1.3 -m v0.1.3
rel() { (cd "$R" && RELEASE_DATE=2026-11-28 scripts/release.sh "$@") >"$TMP/out" 2>"$TMP/err"; }
unchanged() { [ -z "$(g status --porcelain)" ] && [ "$(g rev-parse HEAD)" = "$1" ]; }
head0=$(g rev-parse HEAD)

for bad in 0.2 v0.2.0 0.2.0-rc1 01.2.0 0.1.3 0.1.2; do
	rel "$bad" && fail "release.sh accepted version $bad"
	check "refusing $bad changes nothing" unchanged "$head0"
done
check "lower version named" grep -q 'not greater' "$TMP/err"   # from 0.1.2, the last one
# Uncommitted change in an edited file
echo "# local" >>"$R/CMakeLists.txt"
rel 0.2.0 && fail "release.sh ran with uncommitted changes"
check "uncommitted changes named" grep -q uncommitted "$TMP/err"
g checkout -q -- CMakeLists.txt

check "release 0.2.0" rel 0.2.0
check "version bumped" grep -q '^project(tanuki VERSION 0.2.0 LANGUAGES C)$' "$R/CMakeLists.txt"
check "section dated" grep -qx '## \[0.2.0\] - 2026-11-28' "$R/CHANGELOG.md"
check "new Unreleased on top" sh -c "grep -n '^## ' '$R/CHANGELOG.md' | head -n 3 | tr '\n' ' ' | grep -q '^3:## \[Unreleased\] 5:## \[0.2.0\] - 2026-11-28 .*## \[0.1.3\]'"
check "production image tag" grep -q 'newTag: v0.2.0' "$R/deploy/k8s/overlays/production/kustomization.yaml"
check "canary image tag" grep -q 'newTag: v0.2.0' "$R/deploy/k8s/canary/kustomization.yaml"
check "tagged" sh -c "git -C '$R' rev-parse -q --verify refs/tags/v0.2.0 >/dev/null"
check "tag points at the release commit" test "$(g rev-list -n 1 v0.2.0)" = "$(g rev-parse HEAD)"
check "release commit holds exactly the edited files" test \
	"$(g show --name-only --format= HEAD | sort | tr '\n' ' ')" = \
	"CHANGELOG.md CMakeLists.txt deploy/k8s/canary/kustomization.yaml deploy/k8s/overlays/production/kustomization.yaml "
check "tag message is the section" sh -c "git -C '$R' tag -l --format='%(contents)' v0.2.0 | grep -q 'wobbles'"
check "notes" rel notes 0.2.0
check "notes hold the entries" grep -q 'the widget no longer wobbles' "$TMP/out"
check "notes hold only that section" sh -c "! grep -q '^- the widget$' '$TMP/out'"
rel notes 9.9.9 && fail "notes for an unknown version"
head1=$(g rev-parse HEAD)
rel 0.3.0 && fail "released with an empty Unreleased section"
check "empty Unreleased named" grep -q 'lists no change' "$TMP/err"
check "refusal changes nothing" unchanged "$head1"
rel 0.2.0 && fail "released an existing version again"
# The repository's own CHANGELOG has entries and a version that can be released.
check "own CHANGELOG has an Unreleased entry" sh -c "awk '/^## \[Unreleased\]/{u=1;next} /^## \[/{u=0} u && /^- /{n++} END{exit !n}' '$S/CHANGELOG.md'"

# 2. CI workflow
check "ci.yml" python3 - "$S" <<'PY'
import os, re, sys, yaml
root = sys.argv[1]
wf = yaml.safe_load(open(os.path.join(root, ".github/workflows/ci.yml")))
bad = []
on = wf.get(True, wf.get("on"))   # YAML 1.1 reads the key `on` as true
if "pull_request" not in on or "push" not in on: bad.append("not run on push and pull_request")
if not any("v" in t for t in on["push"].get("tags", [])): bad.append("not run on version tags")
jobs = wf["jobs"]
text = open(os.path.join(root, ".github/workflows/ci.yml")).read()
for j in ("build-test", "static-analysis", "fuzz", "image", "release"):
    if j not in jobs: bad.append(f"no job {j}")
m = jobs.get("build-test", {}).get("strategy", {}).get("matrix", {})
if set(m.get("kind", [])) != {"debug", "asan"} or set(m.get("cc", [])) != {"gcc", "clang"}: bad.append("build-test matrix is not {gcc,clang} x {debug,asan}")
for word in ("clang-tidy", "cppcheck", "trivy", "-max_total_time", "docker build", "docker push", "SHA256SUMS", "scripts/release.sh notes"):
    if word not in text: bad.append(f"ci.yml never mentions {word}")
if not jobs.get("release", {}).get("if", "").startswith("startsWith(github.ref, 'refs/tags/v')"): bad.append("release job not limited to tags")
for s in set(re.findall(r"(?<![\w/.-])((?:scripts|tests|deploy|\.github)/[\w./-]+)", text)):
    s = s.rstrip(".")
    if "*" in s: continue
    if not os.path.exists(os.path.join(root, s)): bad.append(f"ci.yml refers to missing {s}")
for name, job in jobs.items():
    for st in job.get("steps", []):
        if "uses" in st and not re.search(r"@v?\d", st["uses"]): bad.append(f"{name}: action {st['uses']} not pinned to a version")
for b in bad: print("  " + b, file=sys.stderr)
sys.exit(1 if bad else 0)
PY

# 3. Operations docs: every repository path and relative link they name exists.
check "docs/operations references" python3 - "$S" <<'PY'
import os, re, sys, glob
root = sys.argv[1]
bad = []
files = glob.glob(os.path.join(root, "docs/operations/**/*.md"), recursive=True) + [os.path.join(root, "deploy/logging/README.md")]
need = {"README.md", "incident-response.md", "postmortem-template.md", "release-process.md", "model-updates.md", "security-updates.md"}
have = {os.path.basename(f) for f in files}
for n in need - have: bad.append(f"docs/operations/{n} missing")
for f in files:
    text = open(f).read()
    for m in re.finditer(r"(?<![\w/.-])((?:docs|deploy|scripts|tests|src|config|\.github)/[\w./-]*[\w/])", text):
        p = m.group(1)
        if any(x in text[m.end():m.end()+1] for x in "{*") or "YYYY" in p or "postmortems/" in p: continue
        if p.startswith("deploy/alertmanager/secrets/") and p != "deploy/alertmanager/secrets/README.md": continue  # made by the operator, never committed
        if not os.path.exists(os.path.join(root, p.rstrip("/"))): bad.append(f"{os.path.relpath(f, root)}: {p} does not exist")
    for m in re.finditer(r"\]\(([^)#:]+)(#[^)]*)?\)", text):
        p = os.path.normpath(os.path.join(os.path.dirname(f), m.group(1)))
        if not os.path.exists(p): bad.append(f"{os.path.relpath(f, root)}: link {m.group(1)} does not exist")
for b in bad: print("  " + b, file=sys.stderr)
sys.exit(1 if bad else 0)
PY

if [ "$FAILS" -gt 0 ]; then echo "$FAILS check(s) failed" >&2; exit 1; fi
echo "all checks passed"
