#!/usr/bin/env bash
# Installs every Debian package Tanuki needs to build, test and run.
# Idempotent: packages already present are left as they are. Run as root
# (or with sudo) on Debian 12.
set -euo pipefail

PACKAGES=(
  # toolchain and build system
  build-essential cmake pkg-config clang git
  # libFuzzer and sanitizer runtimes for clang
  libclang-rt-14-dev
  # libraries
  libjansson-dev      # JSON
  libseccomp-dev      # sandbox system-call filter
  bubblewrap          # bwrap: the sandbox benchmark's point of comparison
  libsqlite3-dev      # store: task/key database (src/store/)
  libssl-dev          # store: SHA-256 of API key secrets (libcrypto)
  libmicrohttpd-dev   # server: HTTP (src/server/)
  libcurl4-openssl-dev # llm: HTTP client of the ollama/openai backends (src/llm/)
  sqlite3             # store tests: integrity checks from the shell
  # tests
  libcmocka-dev       # unit-test framework
  prometheus          # promtool checks the metrics exposition
  prometheus-alertmanager  # amtool checks deploy/alertmanager/alertmanager.yml (ops tests)
  python3-yaml        # ops tests parse the deploy/ YAML (rules, k8s, compose, CI)
  python3             # test helpers that compare numbers with goldens
  curl jq             # server integration tests drive the API over HTTP
  wrk                 # bench/server_wrk.sh: HTTP load generator
)
# From npm (not packaged in Debian): the Dockerfile linter that
# tests/integration/ops_deploy.sh runs. Installed below when npm is there;
# without it that test still runs its own Dockerfile rules.
NPM_PACKAGES=(dockerfilelint@1.8.0)

missing=()
for p in "${PACKAGES[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done

install_npm() {
  command -v npm >/dev/null || { echo "install-deps: npm not found; skipping ${NPM_PACKAGES[*]}"; return 0; }
  for p in "${NPM_PACKAGES[@]}"; do
    if ! npm ls -g "${p%@*}" >/dev/null 2>&1; then
      echo "install-deps: npm install -g $p"
      timeout 300 npm install -g --no-audit --no-fund "$p" >/dev/null 2>&1 \
        || echo "install-deps: warning: npm install $p failed; continuing without it"
    fi
  done
}

if [ ${#missing[@]} -eq 0 ]; then
  echo "install-deps: all ${#PACKAGES[@]} packages present"
  install_npm
  exit 0
fi

SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
echo "install-deps: installing ${missing[*]}"
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
install_npm
