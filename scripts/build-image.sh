#!/usr/bin/env bash
# Build the container image from the Dockerfile with whatever builder this machine has:
# docker (BuildKit), podman or buildah. CI runs it; where none exists it says SKIPPED loudly and
# exits 0, or 1 with FTPS_S3_REQUIRE_IMAGE_BUILD=1 (set it on runners that have a builder).
#
#   scripts/build-image.sh [TAG]        default tag: ftps-s3:<version from Cargo.toml>
#
# No builder here (e.g. this project's offline machines): the image cannot be built, but
# everything it contains is checked: `cargo build --release --locked` is what its build stage
# runs, lint-deploy lints the Dockerfile (hadolint, checkov, digest pins, .dockerignore). Build on
# any machine with one of the builders above (only the two pinned base images are pulled), or
# in-cluster with kaniko: `--dockerfile Dockerfile --context git://...`.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
version=$(sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -n1)
tag=${1:-ftps-s3:$version}

if command -v docker >/dev/null && docker info >/dev/null 2>&1; then
    set -x
    DOCKER_BUILDKIT=1 docker build --build-arg "VERSION=$version" -t "$tag" .
elif command -v podman >/dev/null; then
    set -x
    podman build --build-arg "VERSION=$version" -t "$tag" .
elif command -v buildah >/dev/null; then
    set -x
    buildah bud --build-arg "VERSION=$version" -t "$tag" .
else
    echo "SKIPPED: no container image builder (docker with a running daemon, podman, buildah) on this machine;"
    echo "         the image was NOT built. See the header of scripts/build-image.sh for the offline path."
    if [ "${FTPS_S3_REQUIRE_IMAGE_BUILD:-0}" = 1 ]; then
        exit 1
    fi
    exit 0
fi
