#!/usr/bin/env bash
# rollout.sh — canary, blue/green and rollback of Tanuki on Kubernetes
# (owner: operations). Thin, explicit wrappers around kubectl; every command
# it runs is echoed first. Procedures: docs/operations/release-process.md.
#
#   rollout.sh deploy TAG               production Deployment -> TAG, wait
#   rollout.sh rollback                 production Deployment -> previous revision
#   rollout.sh canary TAG               start/update the canary at TAG (header-routed)
#   rollout.sh canary-promote TAG       production -> TAG, then remove the canary
#   rollout.sh canary-abort             remove the canary (its routing first)
#   rollout.sh bluegreen-deploy COLOUR TAG   colour (blue|green) -> TAG, wait
#   rollout.sh bluegreen-switch COLOUR  the live Service -> COLOUR (after a readiness check)
#   rollout.sh status                   images, live colour, rollout history
#
# TAG: vMAJOR.MINOR.PATCH or a commit SHA (7..40 hex digits), the two tags
# every image gets. Environment: KUBECTL (kubectl), NAMESPACE (tanuki),
# IMAGE_REPO (ghcr.io/tanuki/tanuki), TIMEOUT (300s).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
KUBECTL=${KUBECTL:-kubectl}
NAMESPACE=${NAMESPACE:-tanuki}
IMAGE_REPO=${IMAGE_REPO:-ghcr.io/tanuki/tanuki}
TIMEOUT=${TIMEOUT:-300s}

usage() { sed -n '6,15p' "$0" | sed 's/^# \{0,1\}//' >&2; exit 2; }
die() { echo "rollout.sh: $*" >&2; exit 1; }
k() { echo "+ kubectl -n $NAMESPACE $*" >&2; "$KUBECTL" -n "$NAMESPACE" "$@"; }

check_tag() {
	[[ $1 =~ ^v(0|[1-9][0-9]*)\.(0|[1-9][0-9]*)\.(0|[1-9][0-9]*)$ || $1 =~ ^[0-9a-f]{7,40}$ ]] ||
		die "bad image tag '$1': want vMAJOR.MINOR.PATCH or a commit SHA"
}
check_colour() {
	[[ $1 == blue || $1 == green ]] || die "bad colour '$1': blue or green"
}
set_image() { # DEPLOYMENT TAG
	k set image "deployment/$1" "tanuki=$IMAGE_REPO:$2"
	k rollout status "deployment/$1" --timeout "$TIMEOUT"
}

cmd=${1:-}
[ -n "$cmd" ] || usage
shift
case "$cmd" in
deploy)
	[ $# -eq 1 ] || usage
	check_tag "$1"
	set_image tanuki "$1"
	;;
rollback)
	[ $# -eq 0 ] || usage
	k rollout undo deployment/tanuki
	k rollout status deployment/tanuki --timeout "$TIMEOUT"
	;;
canary)
	[ $# -eq 1 ] || usage
	check_tag "$1"
	k apply -f "$here/canary/ingress-stable.yaml"
	k apply -k "$here/canary"
	set_image tanuki-canary "$1"
	echo "canary at $1: send 'X-Tanuki-Canary: always' to reach it; watch the dashboard, then canary-promote or canary-abort" >&2
	;;
canary-promote)
	[ $# -eq 1 ] || usage
	check_tag "$1"
	set_image tanuki "$1"
	k delete ingress/tanuki-canary --ignore-not-found
	k delete -k "$here/canary" --ignore-not-found
	;;
canary-abort)
	[ $# -eq 0 ] || usage
	k delete ingress/tanuki-canary --ignore-not-found
	k delete -k "$here/canary" --ignore-not-found
	;;
bluegreen-deploy)
	[ $# -eq 2 ] || usage
	check_colour "$1"
	check_tag "$2"
	k apply -k "$here/bluegreen/$1"
	if ! "$KUBECTL" -n "$NAMESPACE" get service tanuki-live >/dev/null 2>&1; then
		k apply -f "$here/bluegreen/service-live.yaml"
	fi
	set_image "tanuki-$1" "$2"
	;;
bluegreen-switch)
	[ $# -eq 1 ] || usage
	check_colour "$1"
	k rollout status "deployment/tanuki-$1" --timeout "$TIMEOUT"
	ready=$("$KUBECTL" -n "$NAMESPACE" get deployment "tanuki-$1" -o 'jsonpath={.status.readyReplicas}')
	[ "${ready:-0}" -ge 1 ] || die "tanuki-$1 has no ready pod: not switching"
	k patch service tanuki-live --type merge -p "{\"spec\":{\"selector\":{\"track\":\"$1\"}}}"
	echo "live -> $1. Roll back: rollout.sh bluegreen-switch $([ "$1" = blue ] && echo green || echo blue)" >&2
	;;
status)
	[ $# -eq 0 ] || usage
	k get deployments -l app.kubernetes.io/name=tanuki \
		-o 'custom-columns=NAME:.metadata.name,IMAGE:.spec.template.spec.containers[0].image,READY:.status.readyReplicas'
	k get service tanuki-live -o 'jsonpath={.spec.selector.track}{"\n"}' 2>/dev/null || true
	k rollout history deployment/tanuki || true
	;;
*) usage ;;
esac
