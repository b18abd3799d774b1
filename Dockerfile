# Dockerfile — Tanuki's container image (owner: operations, issue 10).
# Two stages: a Debian 12 build stage that runs scripts/build.sh release, and
# a slim Debian 12 runtime holding the tanuki binary, its shared libraries,
# tini (PID 1: forwards signals, reaps orphans) and curl (HEALTHCHECK).
# The server runs as the unprivileged user "tanuki" (uid 10001); what the
# sandbox needs from the container runtime is in docs/operations/README.md
# ("Sandbox in a container"), and deploy/docker-entrypoint.sh prints
# `tanuki sandbox doctor` at start-up.
#
#   docker build --build-arg VERSION=0.1.0 --build-arg COMMIT=$(git rev-parse HEAD) \
#                -t tanuki:v0.1.0 .
#   docker run -p 8080:8080 -e TANUKI_SERVER_ADMIN_KEY=... tanuki:v0.1.0
# Checked (not built: no Docker engine on the build machine) by
# tests/integration/ops_deploy.sh.

# Base image: one pinned Debian 12 point release for both stages; bump both
# lines together (docs/operations/security-updates.md).
FROM debian:12.8-slim AS build
# Build dependencies: the library list of scripts/install-deps.sh, plus
# libcurl for the LLM backends and cmocka, which the CMake tree requires.
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
      build-essential cmake pkg-config git ca-certificates \
      libjansson-dev libseccomp-dev libsqlite3-dev libssl-dev libmicrohttpd-dev \
      libcurl4-openssl-dev libcmocka-dev \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY . .
# .git stays out of the context (.dockerignore): the commit comes in as a
# build argument and is embedded in the binary (tanuki --version).
ARG COMMIT=unknown
RUN scripts/build.sh release -DTANUKI_COMMIT="${COMMIT}" \
 && install -D -m 0755 build-release/src/cli/tanuki /out/usr/local/bin/tanuki \
 && install -D -m 0755 deploy/docker-entrypoint.sh /out/usr/local/bin/docker-entrypoint.sh

FROM debian:12.8-slim AS runtime
ARG VERSION=0.0.0-dev
ARG COMMIT=unknown
ARG BUILD_DATE=unknown
LABEL org.opencontainers.image.title="tanuki" \
      org.opencontainers.image.description="Self-hosted AI programming service" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${COMMIT}" \
      org.opencontainers.image.created="${BUILD_DATE}" \
      org.opencontainers.image.licenses="NOASSERTION" \
      org.opencontainers.image.source="https://github.com/tanuki/tanuki"
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
      libjansson4 libseccomp2 libsqlite3-0 libssl3 libmicrohttpd12 libcurl4 \
      ca-certificates curl tini \
 && rm -rf /var/lib/apt/lists/* \
 && groupadd --system --gid 10001 tanuki \
 && useradd --system --uid 10001 --gid tanuki --home-dir /var/lib/tanuki \
      --shell /usr/sbin/nologin tanuki \
 && install -d -o tanuki -g tanuki -m 0750 /var/lib/tanuki
COPY --from=build /out/ /
ENV TANUKI_SERVER_LISTEN=0.0.0.0:8080 \
    TANUKI_SERVER_DATA_DIR=/var/lib/tanuki
USER 10001:10001
WORKDIR /var/lib/tanuki
VOLUME ["/var/lib/tanuki"]
EXPOSE 8080
# The probe assumes the image's listen address; override it together with
# TANUKI_SERVER_LISTEN (or rely on the orchestrator's probes, as k8s does).
HEALTHCHECK --interval=15s --timeout=3s --retries=3 \
  CMD curl -fsS --max-time 2 http://127.0.0.1:8080/livez || exit 1
STOPSIGNAL SIGTERM
ENTRYPOINT ["/usr/bin/tini", "--", "/usr/local/bin/docker-entrypoint.sh"]
CMD ["serve"]
