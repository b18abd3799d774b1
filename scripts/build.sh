#!/usr/bin/env bash
# Configures and builds one configuration of Tanuki.
#   scripts/build.sh [debug|release|asan] [extra cmake args...]
# Build trees: build/ (debug), build-release/, build-asan/.
# CC selects the compiler (gcc by default; CC=clang works too).
set -euo pipefail
cd "$(dirname "$0")/.."
kind="${1:-debug}"; shift || true
case "$kind" in
  debug)   dir=build;         args=(-DCMAKE_BUILD_TYPE=Debug) ;;
  release) dir=build-release; args=(-DCMAKE_BUILD_TYPE=Release) ;;
  asan)    dir=build-asan;    args=(-DCMAKE_BUILD_TYPE=Debug -DTANUKI_SANITIZE=ON) ;;
  *) echo "usage: $0 [debug|release|asan] [cmake args...]" >&2; exit 2 ;;
esac
if [ -n "${CC:-}" ] && [ "$CC" != "cc" ] && [ "$CC" != "gcc" ]; then dir="$dir-$(basename "$CC")"; fi
# cmake --build output goes to stderr so that stdout's last line is the
# build directory, for scripts that call this one.
cmake -S . -B "$dir" "${args[@]}" "$@" >/dev/null
cmake --build "$dir" -j "$(nproc)" >&2
echo "$dir"
