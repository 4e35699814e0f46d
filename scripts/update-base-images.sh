#!/usr/bin/env bash
# Re-resolve the Dockerfile's base image tags to their current digests and rewrite the pins
# (`FROM name:tag@sha256:...` lines). Needs a registry: run it where one is
# reachable (a workstation, a scheduled CI job), review the diff, rebuild, commit.
#
#   scripts/update-base-images.sh          rewrite the Dockerfile
#   scripts/update-base-images.sh --check  exit 1 if a pin is not the tag's current digest
#
# Resolves with the first tool found: crane, skopeo, docker buildx imagetools, or plain curl
# against the registry's v2 API (Docker Hub and gcr.io allow anonymous pulls). The digest is the
# multi-platform index's, so the pin works on every architecture the tag supports.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
DOCKERFILE=Dockerfile
CHECK=false
[ "${1:-}" = --check ] && CHECK=true

ACCEPT='application/vnd.oci.image.index.v1+json,application/vnd.docker.distribution.manifest.list.v2+json,application/vnd.oci.image.manifest.v1+json,application/vnd.docker.distribution.manifest.v2+json'

# name:tag -> registry, repository, tag (Docker Hub names get registry-1.docker.io, library/).
split_ref() {
    local ref=$1 name tag registry repo
    name=${ref%:*}
    tag=${ref##*:}
    if [[ $name == */* && ${name%%/*} == *.* ]]; then
        registry=${name%%/*}
        repo=${name#*/}
    else
        registry="registry-1.docker.io"
        repo=$name
        [[ $repo == */* ]] || repo=library/$repo
    fi
    printf '%s %s %s\n' "$registry" "$repo" "$tag"
}

resolve_curl() {
    local registry repo tag token=""
    read -r registry repo tag < <(split_ref "$1")
    if [ "$registry" = registry-1.docker.io ]; then
        token=$(curl -fsSL "https://auth.docker.io/token?service=registry.docker.io&scope=repository:$repo:pull" |
            sed -n 's/.*"token":"\([^"]*\)".*/\1/p')
    else
        # gcr.io / ghcr.io style anonymous token (empty when the registry needs none).
        token=$(curl -fsSL "https://$registry/token?scope=repository:$repo:pull&service=$registry" 2>/dev/null |
            sed -n 's/.*"token":"\([^"]*\)".*/\1/p' || true)
    fi
    curl -fsSI -H "Accept: $ACCEPT" ${token:+-H "Authorization: Bearer $token"} \
        "https://$registry/v2/$repo/manifests/$tag" |
        tr -d '\r' | sed -n 's/^[Dd]ocker-[Cc]ontent-[Dd]igest: //p'
}

resolve() {
    local ref=$1
    if command -v crane >/dev/null; then
        crane digest "$ref"
    elif command -v skopeo >/dev/null; then
        skopeo inspect --raw "docker://$ref" | sha256sum | sed 's/^\([0-9a-f]*\).*/sha256:\1/'
    elif command -v docker >/dev/null && docker buildx version >/dev/null 2>&1; then
        docker buildx imagetools inspect "$ref" --format '{{json .Manifest.Digest}}' | tr -d '"'
    else
        resolve_curl "$ref"
    fi
}

stale=0
while read -r value; do
    ref=${value%@*}
    pinned=${value#*@}
    digest=$(resolve "$ref")
    if [[ ! $digest =~ ^sha256:[0-9a-f]{64}$ ]]; then
        echo "could not resolve $ref (got '$digest')" >&2
        exit 1
    fi
    if [ "$digest" = "$pinned" ]; then
        echo "ok      $ref@$digest"
        continue
    fi
    stale=1
    echo "update  $ref: $pinned -> $digest"
    if ! $CHECK; then
        sed -i "s|^FROM $ref@$pinned|FROM $ref@$digest|" "$DOCKERFILE"
    fi
done < <(sed -n 's/^FROM \([^ ]*@sha256:[0-9a-f]*\).*$/\1/p' "$DOCKERFILE")

if $CHECK && [ "$stale" -ne 0 ]; then
    exit 1
fi
