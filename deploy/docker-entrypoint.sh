#!/bin/sh
# docker-entrypoint.sh — the container's entry point (owner: operations).
# Before `tanuki serve` it prints what the sandbox can use in this container
# (`tanuki sandbox doctor`, no self-test) to stderr, so the first lines of the
# container's log say whether untrusted code can run here and why not; a
# missing capability does not stop the server (tasks that need the sandbox
# fail with the doctor's reason). Any other command runs as given:
#   docker run IMAGE sandbox doctor      docker run IMAGE version
set -eu
if [ "${1:-}" = "serve" ] && [ "${TANUKI_SKIP_SANDBOX_DOCTOR:-0}" != "1" ]; then
	echo "tanuki: sandbox capabilities in this container:" >&2
	if ! tanuki sandbox doctor --no-selftest >&2; then
		echo "tanuki: WARNING: the sandbox lacks the minimum for untrusted code here;" \
			"see docs/operations/README.md (Sandbox in a container)" >&2
	fi
fi
exec tanuki "$@"
