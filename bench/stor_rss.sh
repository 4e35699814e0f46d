#!/usr/bin/env bash
# Peak RSS of the ftps-s3 server during one large STOR and one large RETR over explicit FTPS
# (PROT P) against a local SeaweedFS, with throughput. See bench/README.md.
#
#   bench/stor_rss.sh
#   SIZE_MIB=1024 PART_SIZE_MIB=8 CONCURRENCY=4 bench/stor_rss.sh
#
# Environment: SIZE_MIB (file size, default 1024), PART_SIZE_MIB (s3.part_size_mib, default 8),
# CONCURRENCY (s3.upload_concurrency, default 4), KEEP_TMP=1 (keep the temp dir: logs, config,
# RSS samples). Needs cargo, curl, openssl, python3 and `weed` (scripts/install-test-deps.sh).
#
# Each operation runs against a freshly started server, so VmHWM (the kernel's peak RSS) read
# right after the transfer is the peak of that operation alone. Everything started here is
# stopped by PID on exit, including on failure.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# Shared helpers (start_server, stop_pid, status_kib, ...); this script defines its own log and
# RSS sampler (which records sample times).
# shellcheck source=bench/lib.sh
. "$ROOT/bench/lib.sh"
SIZE_MIB=${SIZE_MIB:-1024}
PART_SIZE_MIB=${PART_SIZE_MIB:-8}
CONCURRENCY=${CONCURRENCY:-4}
FTP_USER=bench
OBJECT=big.bin
HOME_PREFIX=bench/

for v in SIZE_MIB PART_SIZE_MIB CONCURRENCY; do
    [[ ${!v} =~ ^[1-9][0-9]*$ ]] || { echo "$v must be a positive integer, got '${!v}'" >&2; exit 2; }
done
for c in cargo curl openssl python3 weed sha256sum; do
    command -v "$c" >/dev/null || { echo "$c not found (weed: scripts/install-test-deps.sh)" >&2; exit 1; }
done

TMP=$(mktemp -d "${TMPDIR:-/tmp}/stor_rss.XXXXXX")
SW_STARTED=0
SERVER_PID=
SAMPLER_PID=
CURL_PID=

log() { echo "stor_rss: $*" >&2; }

cleanup() {
    local rc=$?
    trap - EXIT INT TERM
    local p
    for p in "$CURL_PID" "$SAMPLER_PID" "$SERVER_PID"; do
        if [ -n "$p" ]; then stop_pid "$p"; fi
    done
    if [ "$SW_STARTED" = 1 ]; then
        SW_STATE=$TMP/seaweedfs "$ROOT/scripts/start-seaweedfs.sh" stop || true
    fi
    if [ "$rc" != 0 ]; then
        for f in "$TMP"/server-*.log; do
            [ -f "$f" ] || continue
            log "failed (exit $rc); last lines of $f:"
            tail -30 "$f" >&2
        done
    fi
    if [ "${KEEP_TMP:-0}" = 1 ]; then log "kept $TMP"; else rm -rf "$TMP"; fi
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

mib() { awk -v k="$1" 'BEGIN { printf "%.1f", k / 1024 }'; }

s3_head() { # KEY -> headers of HEAD bucket/KEY
    curl -sS -I --fail --aws-sigv4 "aws:amz:us-east-1:s3" \
        --user "$AWS_ACCESS_KEY_ID:$AWS_SECRET_ACCESS_KEY" "$S3_ENDPOINT/$BUCKET/$1"
}

# --- build -------------------------------------------------------------------------------------
log "cargo build --release"
(cd "$ROOT" && cargo build --release)
[ -x "$BIN" ] || { log "$BIN missing after build"; exit 1; }

# --- SeaweedFS ---------------------------------------------------------------------------------
SW_STARTED=1
SW_ENV=$(SW_STATE=$TMP/seaweedfs SW_S3_PORT=0 "$ROOT/scripts/start-seaweedfs.sh" start "$BUCKET")
S3_ENDPOINT=$(sed -n 's/^S3_ENDPOINT=//p' <<<"$SW_ENV")
[ -n "$S3_ENDPOINT" ] || { log "no S3_ENDPOINT from start-seaweedfs.sh"; exit 1; }

# --- TLS certificate, users file ---------------------------------------------------------------
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 1 -subj /CN=localhost \
    -keyout "$TMP/tls.key" -out "$TMP/tls.crt" 2>/dev/null
PASSWORD=$(openssl rand -hex 12)
HASH=$(printf '%s' "$PASSWORD" | "$BIN" hash-password)
cat >"$TMP/users.toml" <<EOF
[[user]]
name = "$FTP_USER"
password_hash = "$HASH"
home = "$HOME_PREFIX"
permissions = ["list", "read", "write", "delete", "rename", "mkdir"]
EOF

# --- source file: deterministic pseudo-random bytes (AES-CTR keystream; /dev/urandom is slower) --
SRC=$TMP/src.bin
SIZE_BYTES=$((SIZE_MIB * 1024 * 1024))
log "writing $SIZE_MIB MiB test file"
head -c "$SIZE_BYTES" /dev/zero |
    openssl enc -aes-128-ctr -nosalt -K 000102030405060708090a0b0c0d0e0f -iv 00000000000000000000000000000000 >"$SRC"
[ "$(stat -c %s "$SRC")" = "$SIZE_BYTES" ] || { log "source file has the wrong size"; exit 1; }
SRC_SHA=$(sha256sum "$SRC" | cut -d' ' -f1)

# --- server ------------------------------------------------------------------------------------
# The [s3] settings under test; everything else is lib.sh's bench config (defaults otherwise).
S3_EXTRA="part_size_mib = $PART_SIZE_MIB
upload_concurrency = $CONCURRENCY"
PASSIVE_PORTS=16

sample_rss() { # PID OUT: every 0.1 s append "seconds VmRSS_KiB" until PID exits (or we are killed)
    local start=$EPOCHREALTIME v
    while v=$(status_kib "$1" VmRSS 2>/dev/null) && [ -n "$v" ]; do
        awk -v a="$start" -v b="$EPOCHREALTIME" -v v="$v" 'BEGIN { printf "%.2f %d\n", b - a, v }' >>"$2"
        sleep 0.1
    done
}

ROWS=()
CMDS=()
run_op() { # NAME CURL_ARGS...: fresh server, time the transfer, record peak RSS
    local name=$1
    shift
    start_server "$name"
    local idle url t0 t1 secs hwm max_sampled
    url=ftp://127.0.0.1:$FTP_PORT/$OBJECT
    idle=$(status_kib "$SERVER_PID" VmRSS)
    sample_rss "$SERVER_PID" "$TMP/rss-$name.txt" &
    SAMPLER_PID=$!
    CMDS+=("curl -sS -k --ssl-reqd -u $FTP_USER:$PASSWORD $* $url")
    t0=$EPOCHREALTIME
    # In the background so that a signal to this script is handled at once (bash runs traps
    # only after a foreground child ends, but interrupts `wait`).
    curl -sS -k --ssl-reqd -u "$FTP_USER:$PASSWORD" "$@" "$url" &
    CURL_PID=$!
    if ! wait "$CURL_PID"; then
        log "$name: curl failed"
        exit 1
    fi
    t1=$EPOCHREALTIME
    CURL_PID=
    hwm=$(status_kib "$SERVER_PID" VmHWM)
    stop_pid "$SAMPLER_PID"
    SAMPLER_PID=
    max_sampled=$(awk 'BEGIN { m = 0 } $2 > m { m = $2 } END { print m }' "$TMP/rss-$name.txt")
    secs=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.2f", b - a }')
    ROWS+=("$(printf '%-5s %6s %8s %8s %8s %10s %12s %10s %12s' "$name" "$SIZE_MIB" "$secs" \
        "$(awk -v s="$SIZE_MIB" -v t="$secs" 'BEGIN { printf "%.1f", s / t }')" \
        "$(mib "$idle")" "$(mib "$hwm")" "$(mib "$max_sampled")" "$PART_SIZE_MIB" "$CONCURRENCY")")
    stop_server
}

log "STOR $SIZE_MIB MiB (part ${PART_SIZE_MIB} MiB x $CONCURRENCY)"
run_op STOR -T "$SRC"

# The object as S3 sees it: size, and the multipart ETag's part count.
HEAD=$(s3_head "$HOME_PREFIX$OBJECT")
S3_SIZE=$(awk 'tolower($1) == "content-length:" { gsub("\r", "", $2); print $2 }' <<<"$HEAD")
ETAG=$(awk 'tolower($1) == "etag:" { gsub("[\r\"]", "", $2); print $2 }' <<<"$HEAD")
[ "$S3_SIZE" = "$SIZE_BYTES" ] || { log "S3 object size $S3_SIZE, expected $SIZE_BYTES"; exit 1; }

log "RETR $SIZE_MIB MiB"
DST=$TMP/dst.bin
run_op RETR -o "$DST"
DST_SHA=$(sha256sum "$DST" | cut -d' ' -f1)
[ "$DST_SHA" = "$SRC_SHA" ] || { log "RETR sha256 $DST_SHA differs from source $SRC_SHA"; exit 1; }

# --- report ------------------------------------------------------------------------------------
echo
printf '%-5s %6s %8s %8s %8s %10s %12s %10s %12s\n' op MiB seconds MiB/s "idle RSS" "peak RSS" \
    "max sampled" "part MiB" concurrency
printf '%s\n' "${ROWS[@]}"
echo
echo "RSS in MiB: idle = VmRSS after start; peak = VmHWM right after the transfer (fresh server"
echo "per operation); max sampled = largest VmRSS seen every 0.1 s during the transfer."
echo "S3 object s3://$BUCKET/$HOME_PREFIX$OBJECT: $S3_SIZE bytes, ETag $ETAG"
echo "sha256 source = RETR: $SRC_SHA"
echo "server: $BIN ($("$BIN" --version)), $(nproc) cores, curl $(curl --version | awk 'NR == 1 { print $2 }')"
echo "command: SIZE_MIB=$SIZE_MIB PART_SIZE_MIB=$PART_SIZE_MIB CONCURRENCY=$CONCURRENCY bench/stor_rss.sh"
printf 'transfer: %s\n' "${CMDS[@]}"
