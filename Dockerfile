# syntax=docker/dockerfile:1
#
# ftps-s3 container image: built with the official Rust image, run on distroless (glibc, CA
# certificates, no shell, no package manager) as the non-root user 65532.
#
#   docker build -t ftps-s3:0.1.0 .
#   docker run --read-only -v "$PWD/deploy:/etc/ftps-s3:ro" \
#     -p 21:2121 -p 990:9990 -p 30000-30019:30000-30019 -p 9090:9090 ftps-s3:0.1.0
#
# The process is unprivileged, so its config listens on 2121 (explicit) and 9990 (implicit) and
# whatever publishes the container maps 21 and 990 to them (the Helm chart's Service does). It needs
# /etc/ftps-s3/config.toml, the certificate and the users file mounted (paths in README), and writes
# nothing to its filesystem: run it with a read-only root filesystem. Probes: GET /healthz and
# /readyz on the admin listener (9090).

# Base images are pinned by digest (a tag can move; a digest is the exact bytes reviewed).
# scripts/update-base-images.sh resolves the tags again and rewrites the digests (run it where a
# registry is reachable, e.g. monthly or from Renovate/Dependabot); lint-deploy fails on any FROM
# without a digest. The tag stays in the reference for people and update tools.

FROM rust:1.95-bookworm@sha256:6258907abe69656e41cd992e0b705cdcfabcbbe3db374f92ed2d47121282d4a1 AS build
# Cargo.toml's release profile keeps debug info for profiling (81 MB binary); the image drops it
# (17 MB, symbols kept). --build-arg KEEP_DEBUG_INFO=true keeps it.
ARG KEEP_DEBUG_INFO=false
WORKDIR /src
# Only what the build reads (.dockerignore allows nothing else into the context).
COPY Cargo.toml Cargo.lock build.rs ./
COPY src ./src
# `ftps-s3 --version` names the commit; the context has no .git, so it comes in as an argument:
# docker build --build-arg GIT_COMMIT=$(git rev-parse --short=12 HEAD) .
ARG GIT_COMMIT=unknown
# BuildKit caches keep the registry and target/ between builds; the binary is copied out of the
# cache mount. --locked: exactly the dependency versions of Cargo.lock.
RUN --mount=type=cache,target=/usr/local/cargo/registry,sharing=locked \
    --mount=type=cache,target=/src/target,sharing=locked \
    FTPS_BUILD_COMMIT=$GIT_COMMIT cargo build --release --locked --bin ftps-s3 \
    && install -D -m 0755 target/release/ftps-s3 /out/ftps-s3 \
    && if [ "$KEEP_DEBUG_INFO" != true ]; then objcopy --strip-debug /out/ftps-s3; fi

# Debian 12 like the build stage, so the glibc the binary was linked against is present.
FROM gcr.io/distroless/cc-debian12:nonroot@sha256:9dac0a79194e45a7da0158a9c6da57b217585af0786db3845d1f0ec1a0dd182f
ARG VERSION=0.1.0
LABEL org.opencontainers.image.title="ftps-s3" \
      org.opencontainers.image.description="FTPS server (explicit and implicit) storing files in S3" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.licenses="Apache-2.0"
COPY --from=build /out/ftps-s3 /usr/local/bin/ftps-s3
# distroless' "nonroot" user; numeric so that runAsNonRoot can verify it.
USER 65532:65532
# explicit FTPS, implicit FTPS, admin (/healthz /readyz /metrics), the default passive range.
EXPOSE 2121/tcp 9990/tcp 9090/tcp 30000-30099/tcp
# Orchestrators probe the admin listener over HTTP (the chart's liveness/readiness probes); the
# image has no shell or HTTP client for a Docker HEALTHCHECK command to run.
HEALTHCHECK NONE
STOPSIGNAL SIGTERM
ENTRYPOINT ["/usr/local/bin/ftps-s3"]
CMD ["serve", "--config", "/etc/ftps-s3/config.toml"]
