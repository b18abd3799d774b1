#!/usr/bin/env python3
"""ops_dockerfile_rules.py ROOT PKGFILE: our rules for ROOT/Dockerfile and
ROOT/.dockerignore (used by ops_deploy.sh; dockerfilelint covers the generic
ones). PKGFILE lists "soname debian-package" lines the runtime stage must
install. Exit 0 when every rule holds; otherwise each broken rule is named."""
import re, sys, os
root, pkgfile = sys.argv[1:3]
src = open(os.path.join(root, "Dockerfile")).read()
text = re.sub(r"\\\n", " ", src)
lines = [l.strip() for l in text.splitlines() if l.strip() and not l.strip().startswith("#")]
bad = []
stages, cur = [], None
for l in lines:
    word = l.split()[0].upper()
    if word == "FROM":
        cur = {"from": l, "lines": []}; stages.append(cur)
    elif cur is not None:
        cur["lines"].append(l)
if len(stages) < 2: bad.append("not multi-stage")
if any(":latest" in s["from"] or re.match(r"FROM\s+[^:\s]+(\s|$)", s["from"]) for s in stages):
    bad.append("a base image without a pinned tag")
build, final = stages[0], stages[-1]
final_text = "\n".join(final["lines"])
if not any("scripts/build.sh release" in l for l in build["lines"]): bad.append("build stage does not run scripts/build.sh release")
users = [l.split()[1] for l in final["lines"] if l.upper().startswith("USER ")]
if not users or users[-1].split(":")[0] in ("root", "0"): bad.append("final stage does not switch to a non-root USER")
hc = [l for l in final["lines"] if l.upper().startswith("HEALTHCHECK")]
if not hc or "/livez" not in hc[0]: bad.append("no HEALTHCHECK on /livez")
for arg in ("VERSION", "COMMIT"):
    if not re.search(rf"^ARG {arg}\b", final_text, re.M): bad.append(f"final stage lacks ARG {arg}")
if not re.search(r'org\.opencontainers\.image\.version="\$\{VERSION\}"', final_text): bad.append("no OCI version label from VERSION")
if not re.search(r'org\.opencontainers\.image\.revision="\$\{COMMIT\}"', final_text): bad.append("no OCI revision label from COMMIT")
if not any(l.startswith("COPY --from=") for l in final["lines"]): bad.append("final stage copies nothing from the build stage")
if not re.search(r'ENTRYPOINT .*docker-entrypoint\.sh', final_text) or not re.search(r'CMD \["serve"\]', final_text):
    bad.append("entrypoint/cmd are not docker-entrypoint.sh + serve")
# build stage has every -dev library install-deps.sh installs
deps = open(os.path.join(root, "scripts/install-deps.sh")).read()
build_text = "\n".join(build["lines"])
for dev in sorted(set(re.findall(r"\b(lib[a-z0-9+.-]+-dev)\b", deps))):
    if dev.startswith("libclang-rt"): continue   # fuzzing only
    if not re.search(rf"(?<![\w.-]){re.escape(dev)}(?![\w.-])", build_text): bad.append(f"build stage lacks {dev} (scripts/install-deps.sh has it)")
# runtime stage has a package for every shared library of the binary
for line in open(pkgfile):
    so, pkg = line.split()
    if not re.search(rf"(?<![\w.-]){re.escape(pkg)}(?![\w.-])", final_text):
        bad.append(f"runtime stage lacks {pkg} (provides {so})")
# .dockerignore: .git and build trees out; nothing the build reads excluded
ign = [l.strip() for l in open(os.path.join(root, ".dockerignore")) if l.strip() and not l.startswith("#")]
for must in (".git", "build", "build-*"):
    if must not in ign: bad.append(f".dockerignore lacks {must}")
for need in ("src", "scripts", "cmake", "CMakeLists.txt", "tests", "deploy", "config"):
    if need in ign: bad.append(f".dockerignore excludes {need}, which the build needs")
for b in bad: print("  " + b, file=sys.stderr)
sys.exit(1 if bad else 0)
