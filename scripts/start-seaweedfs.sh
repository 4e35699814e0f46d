#!/usr/bin/env bash
# Manual dev helper: run a local SeaweedFS S3 server (`weed mini`) for trying ftps-s3 by hand.
# The test suite starts its own instance; this script is not used by tests or CI.
#
#   scripts/start-seaweedfs.sh start [BUCKET...]   start (if not running), create buckets, print env
#   scripts/start-seaweedfs.sh stop                stop the instance this script started (by PID)
#   scripts/start-seaweedfs.sh env                 print the S3 settings of the running instance
#
# Binds 127.0.0.1 only. S3 port: $SW_S3_PORT (default 8333; 0 = any free port). Every other port
# weed mini opens (master, volume, filer, admin, their gRPC ports) is taken free from the OS, so it
# never collides with the test suite's instance. Credentials: $AWS_ACCESS_KEY_ID /
# $AWS_SECRET_ACCESS_KEY (default testkey / testsecret). Data and log: $SW_STATE
# (default ${TMPDIR:-/tmp}/ftps-s3-seaweedfs). Needs `weed` (scripts/install-test-deps.sh).
# With $SW_S3_TLS_CERT and $SW_S3_TLS_KEY (PEM files) S3 is also served over HTTPS on a free port,
# printed as S3_HTTPS_ENDPOINT (bench/run.sh's S3_TLS=1).
set -euo pipefail

# The venv scripts/install-test-deps.sh fills, after whatever PATH has.
PATH="$PATH:$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)/.venv/bin"

STATE=${SW_STATE:-${TMPDIR:-/tmp}/ftps-s3-seaweedfs}
PIDFILE=$STATE/weed.pid
ENVFILE=$STATE/env
KEY=${AWS_ACCESS_KEY_ID:-testkey}
SECRET=${AWS_SECRET_ACCESS_KEY:-testsecret}

free_ports() { # N -> N distinct free loopback TCP ports
    python3 - "$1" <<'PY'
import socket, sys
socks = []
for _ in range(int(sys.argv[1])):
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    socks.append(s)
print(" ".join(str(s.getsockname()[1]) for s in socks))
PY
}

running() { [ -f "$PIDFILE" ] && kill -0 "$(cat "$PIDFILE")" 2>/dev/null; }

s3() { # METHOD PATH: signed S3 request, prints the HTTP status
    curl -sS -o /dev/null -w '%{http_code}' --aws-sigv4 "aws:amz:us-east-1:s3" \
        --user "$KEY:$SECRET" -X "$1" "$(sed -n 's/^S3_ENDPOINT=//p' "$ENVFILE")/$2"
}

start() {
    if running; then
        echo "seaweedfs already running (pid $(cat "$PIDFILE"))" >&2
    else
        command -v weed >/dev/null || { echo "weed not found (PATH, .venv/bin): run scripts/install-test-deps.sh" >&2; exit 1; }
        mkdir -p "$STATE/data"
        local m mg v vg f fg sg a ag s h tls=()
        read -r m mg v vg f fg sg a ag s h <<<"$(free_ports 11)"
        if [ "${SW_S3_PORT:-8333}" != 0 ]; then s=${SW_S3_PORT:-8333}; fi
        if [ -n "${SW_S3_TLS_CERT:-}" ]; then
            tls=(-s3.port.https="$h" -s3.cert.file="$SW_S3_TLS_CERT" -s3.key.file="$SW_S3_TLS_KEY")
        fi
        AWS_ACCESS_KEY_ID=$KEY AWS_SECRET_ACCESS_KEY=$SECRET setsid weed mini -dir="$STATE/data" \
            -ip=127.0.0.1 -ip.bind=127.0.0.1 -admin.ui=false -webdav=false \
            -master.port="$m" -master.port.grpc="$mg" -volume.port="$v" -volume.port.grpc="$vg" \
            -filer.port="$f" -filer.port.grpc="$fg" -s3.port="$s" -s3.port.grpc="$sg" \
            -admin.port="$a" -admin.port.grpc="$ag" -s3.port.iceberg=0 -s3.port.lance=0 \
            "${tls[@]}" >"$STATE/weed.log" 2>&1 </dev/null &
        echo $! >"$PIDFILE"
        printf 'S3_ENDPOINT=http://127.0.0.1:%s\nAWS_ACCESS_KEY_ID=%s\nAWS_SECRET_ACCESS_KEY=%s\nAWS_REGION=us-east-1\n' \
            "$s" "$KEY" "$SECRET" >"$ENVFILE"
        if [ ${#tls[@]} -gt 0 ]; then echo "S3_HTTPS_ENDPOINT=https://127.0.0.1:$h" >>"$ENVFILE"; fi
        local i
        for i in $(seq 1 100); do
            if ! running; then echo "weed exited; log:" >&2; tail -20 "$STATE/weed.log" >&2; exit 1; fi
            [ "$(s3 GET "" 2>/dev/null || true)" = 200 ] && break
            sleep 0.1
        done
        [ "$(s3 GET "")" = 200 ] || { echo "S3 API not ready; log: $STATE/weed.log" >&2; exit 1; }
        echo "seaweedfs pid $(cat "$PIDFILE"), S3 on 127.0.0.1:$s after ${i}x0.1s (log: $STATE/weed.log)" >&2
    fi
    local b code
    for b in "$@"; do
        code=$(s3 PUT "$b")
        case $code in
            200 | 409) echo "bucket $b ready" >&2 ;;
            *) echo "creating bucket $b: HTTP $code" >&2; exit 1 ;;
        esac
    done
    cat "$ENVFILE"
}

stop() {
    if running; then
        local p
        p=$(cat "$PIDFILE")
        kill "$p"
        for _ in $(seq 1 50); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
        if kill -0 "$p" 2>/dev/null; then kill -9 "$p"; fi
        echo "stopped seaweedfs ($p)" >&2
    else
        echo "seaweedfs not running" >&2
    fi
    rm -f "$PIDFILE"
}

cmd=${1:-start}
[ $# -gt 0 ] && shift
case $cmd in
    start) start "$@" ;;
    stop) stop ;;
    env)
        if running; then cat "$ENVFILE"; else echo "seaweedfs not running" >&2; exit 1; fi
        ;;
    *) echo "usage: $0 start [BUCKET...] | stop | env" >&2; exit 2 ;;
esac
