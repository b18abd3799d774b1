#!/usr/bin/env bash
# release.sh — cuts a Tanuki release (owner: operations). Procedure around
# it: docs/operations/release-process.md.
#
#   scripts/release.sh VERSION [--no-commit]   e.g. scripts/release.sh 0.2.0
#     1. checks VERSION is MAJOR.MINOR.PATCH and greater than the version in
#        CMakeLists.txt, that the tag vVERSION does not exist, and that the
#        "## [Unreleased]" section of CHANGELOG.md has entries;
#     2. sets project(tanuki VERSION ...) in CMakeLists.txt, turns the
#        Unreleased section into "## [VERSION] - YYYY-MM-DD" (a new empty
#        Unreleased section above it), and points the production and canary
#        kustomizations at the image tag vVERSION;
#     3. commits exactly those files and creates the annotated tag vVERSION
#        (skipped with --no-commit). Pushing is left to you:
#        git push origin main vVERSION  (CI then builds, tests, publishes).
#   scripts/release.sh notes VERSION   prints that version's CHANGELOG section.
#
# RELEASE_DATE (YYYY-MM-DD) overrides today's date (tests, re-runs).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
CHANGELOG=CHANGELOG.md
KUSTOMIZATIONS=(deploy/k8s/overlays/production/kustomization.yaml deploy/k8s/canary/kustomization.yaml)
die() { echo "release.sh: $*" >&2; exit 1; }
semver_re='^(0|[1-9][0-9]*)\.(0|[1-9][0-9]*)\.(0|[1-9][0-9]*)$'

# section VERSION|Unreleased: the body of that CHANGELOG section.
section() {
	awk -v want="$1" '
		/^## \[/ { inside = (index($0, "## [" want "]") == 1); next }
		inside { print }' "$CHANGELOG"
}

[ $# -ge 1 ] || die "usage: release.sh VERSION [--no-commit] | release.sh notes VERSION"
if [ "$1" = notes ]; then
	[ $# -eq 2 ] || die "usage: release.sh notes VERSION"
	body=$(section "$2")
	[ -n "$(printf '%s' "$body" | tr -d '[:space:]')" ] || die "no CHANGELOG section for $2"
	printf '%s\n' "$body" | sed -e '/./,$!d'
	exit 0
fi

version=$1
commit=1
[ "${2:-}" = "--no-commit" ] && commit=0
[[ $version =~ $semver_re ]] || die "version '$version' is not MAJOR.MINOR.PATCH"
current=$(sed -n 's/^project(tanuki VERSION \([0-9][0-9.]*\).*/\1/p' CMakeLists.txt)
[ -n "$current" ] || die "no 'project(tanuki VERSION x.y.z' line in CMakeLists.txt"
newest=$(printf '%s\n%s\n' "$current" "$version" | sort -V | tail -n 1)
if [ "$newest" != "$version" ] || { [ "$current" = "$version" ] && git rev-parse -q --verify "refs/tags/v$current" >/dev/null; }; then
	die "version $version is not greater than the current $current"
fi
git rev-parse -q --verify "refs/tags/v$version" >/dev/null && die "tag v$version exists already"
grep -q '^## \[Unreleased\]' "$CHANGELOG" || die "$CHANGELOG has no '## [Unreleased]' section"
[ -n "$(section Unreleased | grep -E '^\s*[-*] ' || true)" ] ||
	die "the Unreleased section of $CHANGELOG lists no change: write the entries first"
if [ $commit -eq 1 ]; then
	dirty=$(git status --porcelain -- CMakeLists.txt "$CHANGELOG" "${KUSTOMIZATIONS[@]}")
	[ -z "$dirty" ] || die "uncommitted changes in the files a release edits: $dirty"
fi
date=${RELEASE_DATE:-$(date -u +%Y-%m-%d)}
[[ $date =~ ^[0-9]{4}-[0-9]{2}-[0-9]{2}$ ]] || die "RELEASE_DATE '$date' is not YYYY-MM-DD"

sed -i "s/^project(tanuki VERSION [0-9][0-9.]*/project(tanuki VERSION $version/" CMakeLists.txt
awk -v v="$version" -v d="$date" '
	!done && /^## \[Unreleased\]/ { print; print ""; print "## [" v "] - " d; done = 1; next }
	{ print }' "$CHANGELOG" >"$CHANGELOG.tmp" && mv "$CHANGELOG.tmp" "$CHANGELOG"
for k in "${KUSTOMIZATIONS[@]}"; do
	[ -f "$k" ] || continue
	sed -i "s/^\(    newTag: \)v[0-9][0-9.]*$/\1v$version/" "$k"
done
echo "release.sh: $current -> $version ($date)"
if [ $commit -eq 1 ]; then
	files=(CMakeLists.txt "$CHANGELOG")
	for k in "${KUSTOMIZATIONS[@]}"; do [ -f "$k" ] && files+=("$k"); done
	git add -- "${files[@]}"
	git commit -q -m "Release v$version" -- "${files[@]}"
	section "$version" | git tag -a "v$version" -F -
	echo "release.sh: committed and tagged v$version; push with: git push origin HEAD v$version"
fi
