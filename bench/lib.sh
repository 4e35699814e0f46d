# shellcheck shell=bash
# Helpers shared by bench/run.sh and bench/load.sh (sourced, not run). The caller sets ROOT and
# TMP, sets `set -euo pipefail`, and calls bench_cleanup from its EXIT trap; every process
# started through these helpers is recorded in BENCH_PIDS and stopped by PID there.

# shellcheck disable=SC2034 # used by the scripts that source this file
# BENCH_PROFILE=debug: the debug build (a smoke run; figures are not comparable).
BENCH_PROFILE=${BENCH_PROFILE:-release}
# FTPS_BIN: another server binary (e.g. a copy of an older build, for a before/after run).
BIN=${FTPS_BIN:-$ROOT/target/$BENCH_PROFILE/ftps-s3}
LOAD=$ROOT/target/$BENCH_PROFILE/examples/ftps_load
S3_DIRECT=$ROOT/target/$BENCH_PROFILE/examples/s3_direct
BUCKET=bench
# The credentials scripts/start-seaweedfs.sh gives SeaweedFS; the server and s3_direct use them.
export AWS_ACCESS_KEY_ID=testkey AWS_SECRET_ACCESS_KEY=testsecret AWS_REGION=us-east-1
BENCH_PIDS=()
SW_STARTED=0

log() { echo "bench: $*" >&2; }
die() { log "$*"; exit 1; }

stop_pid() { # PID: TERM, wait up to 10 s, then KILL
    local p=$1
    kill -0 "$p" 2>/dev/null || return 0
    kill "$p" 2>/dev/null || true
    for _ in $(seq 1 100); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
    if kill -0 "$p" 2>/dev/null; then kill -9 "$p" 2>/dev/null || true; fi
    wait "$p" 2>/dev/null || true
}

bench_cleanup() { # stop everything started here, newest first
    local i
    for ((i = ${#BENCH_PIDS[@]} - 1; i >= 0; i--)); do stop_pid "${BENCH_PIDS[i]}"; done
    BENCH_PIDS=()
    if [ "$SW_STARTED" = 1 ]; then
        SW_STATE=$TMP/seaweedfs "$ROOT/scripts/start-seaweedfs.sh" stop || true
        SW_STARTED=0
    fi
}

bench_tmp() { # NAME: TMP = a fresh temp dir; on exit everything started here is stopped, the
    # two newest logs in TMP are shown if the script failed, and TMP is removed (KEEP_TMP=1 keeps it)
    TMP=$(mktemp -d "${TMPDIR:-/tmp}/ftps-$1.XXXXXX")
    trap bench_exit EXIT
    trap 'exit 130' INT
    trap 'exit 143' TERM
}

bench_exit() {
    local rc=$? f
    trap - EXIT INT TERM
    bench_cleanup
    if [ "$rc" != 0 ]; then
        # The two newest logs belong to the step that failed.
        # shellcheck disable=SC2012 # our own file names: no spaces
        for f in $(ls -t "$TMP"/*.log 2>/dev/null | head -2); do
            log "failed (exit $rc); last lines of $f:"
            tail -15 "$f" >&2
        done
    fi
    if [ "${KEEP_TMP:-0}" = 1 ]; then log "kept $TMP"; else rm -rf "$TMP"; fi
    exit "$rc"
}

positive_ints() { # VAR...: each variable named must hold a positive integer
    local v
    for v in "$@"; do
        [[ ${!v} =~ ^[1-9][0-9]*$ ]] || die "$v must be a positive integer, got '${!v}'"
    done
}

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

free_range() { # N -> "first-last": N consecutive free loopback TCP ports
    python3 - "$1" <<'PY'
import random, socket, sys
n = int(sys.argv[1])
for _ in range(200):
    base = random.randrange(20000, 32000 - n)  # below the ephemeral range (32768+)
    socks = []
    try:
        for p in range(base, base + n):
            s = socket.socket()
            socks.append(s)
            s.bind(("127.0.0.1", p))
    except OSError:
        continue
    finally:
        for s in socks:
            s.close()
    print(f"{base}-{base + n - 1}")
    sys.exit(0)
sys.exit("no free port range")
PY
}

status_kib() { # PID FIELD -> value in KiB from /proc/PID/status (VmRSS, VmHWM)
    awk -v f="$2:" '$1 == f { print $2 }' "/proc/$1/status"
}

wait_port() { # PID PORT: until PORT accepts, or fail if PID exits / 20 s pass
    local i
    for i in $(seq 1 200); do
        kill -0 "$1" 2>/dev/null || return 1
        if (exec 3<>"/dev/tcp/127.0.0.1/$2") 2>/dev/null; then return 0; fi
        sleep 0.1
    done
    return 1
}

raise_fd_limit() { # as many descriptors as 10,000 sessions need (client and server inherit it)
    local want=65536
    ulimit -Hn "$want" 2>/dev/null || true
    ulimit -n "$want" 2>/dev/null || ulimit -n "$(ulimit -Hn)"
    log "fd limit $(ulimit -n)"
    [ "$(ulimit -n)" -ge 10100 ] || log "warning: fewer descriptors than 10,000 sessions need"
}

build() { # release server and the two bench clients
    local profile=--release
    [ "$BENCH_PROFILE" = release ] || profile=
    log "cargo build $profile (server, examples s3_direct and ftps_load)"
    # shellcheck disable=SC2086 # empty for the debug profile
    (cd "$ROOT" && cargo build $profile --bin ftps-s3 --example s3_direct --example ftps_load)
}

start_seaweedfs() { # -> S3_ENDPOINT; bucket $BUCKET. S3_TLS=1: the endpoint is HTTPS (a
    # throw-away CA, trusted by the server and s3_direct through SSL_CERT_FILE)
    local env tls=()
    SW_STARTED=1
    if [ "${S3_TLS:-0}" = 1 ]; then
        openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 1 \
            -subj /CN=bench-s3-ca -keyout "$TMP/s3-ca.key" -out "$TMP/s3-ca.crt" 2>/dev/null
        openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj /CN=127.0.0.1 \
            -keyout "$TMP/s3.key" -out "$TMP/s3.csr" 2>/dev/null
        openssl x509 -req -in "$TMP/s3.csr" -CA "$TMP/s3-ca.crt" -CAkey "$TMP/s3-ca.key" \
            -CAcreateserial -days 1 -out "$TMP/s3.crt" \
            -extfile <(printf 'subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\n') 2>/dev/null
        tls=(SW_S3_TLS_CERT="$TMP/s3.crt" SW_S3_TLS_KEY="$TMP/s3.key")
        export SSL_CERT_FILE=$TMP/s3-ca.crt
    fi
    env=$(env "${tls[@]}" SW_STATE="$TMP/seaweedfs" SW_S3_PORT=0 "$ROOT/scripts/start-seaweedfs.sh" start "$BUCKET")
    S3_ENDPOINT=$(sed -n 's/^S3_ENDPOINT=//p' <<<"$env")
    if [ "${S3_TLS:-0}" = 1 ]; then S3_ENDPOINT=$(sed -n 's/^S3_HTTPS_ENDPOINT=//p' <<<"$env"); fi
    [ -n "$S3_ENDPOINT" ] || die "no S3_ENDPOINT from start-seaweedfs.sh"
}

make_identity() { # throw-away certificate, password, users file: user bench (the default
    # argon2 parameters) and user many (cheap parameters, for thousands of logins)
    openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 1 \
        -subj /CN=localhost -keyout "$TMP/tls.key" -out "$TMP/tls.crt" 2>/dev/null
    PASSWORD=$(openssl rand -hex 12)
    local hash cheap
    hash=$(printf '%s' "$PASSWORD" | "$BIN" hash-password)
    cheap=$("$LOAD" hash --password "$PASSWORD")
    cat >"$TMP/users.toml" <<EOF
[[user]]
name = "bench"
password_hash = "$hash"
home = "bench/"
permissions = ["list", "read", "write", "overwrite", "delete", "rename", "mkdir"]

[[user]]
name = "many"
password_hash = "$cheap"
home = "bench/"
permissions = ["list", "read", "write", "overwrite", "delete", "rename", "mkdir"]
EOF
}

write_source() { # FILE MIB: deterministic pseudo-random bytes (AES-CTR keystream; fast)
    [ -f "$1" ] && [ "$(stat -c %s "$1")" = $(($2 << 20)) ] && return 0
    head -c $(($2 << 20)) /dev/zero | openssl enc -aes-128-ctr -nosalt \
        -K 000102030405060708090a0b0c0d0e0f -iv 00000000000000000000000000000000 >"$1"
}

# start_server NAME [TOML...]: a fresh ftps-s3 with default settings except listeners,
# certificate, passive ports, storage and users (plus any extra TOML lines, which must be whole
# sections). Sets SERVER_PID, FTP_PORT (explicit), FTPS_PORT (implicit). SERVER_WRAP (e.g.
# "taskset -c 0") prefixes the command; S3_EXTRA adds lines to the [s3] section.
start_server() {
    local name=$1 cfg=$TMP/config-$1.toml range
    shift
    read -r FTP_PORT FTPS_PORT <<<"$(free_ports 2)"
    range=$(free_range "${PASSIVE_PORTS:-100}")
    {
        cat <<EOF
[listeners]
explicit = "127.0.0.1:$FTP_PORT"
implicit = "127.0.0.1:$FTPS_PORT"

[tls]
cert_file = "$TMP/tls.crt"
key_file = "$TMP/tls.key"

[passive]
ports = "$range"

[storage]
backend = "s3"

[s3]
bucket = "$BUCKET"
endpoint = "$S3_ENDPOINT"
force_path_style = true
${S3_EXTRA:-}

[auth]
users_file = "$TMP/users.toml"

[shutdown]
grace_seconds = 5
EOF
        local extra
        for extra in "$@"; do printf '\n%s\n' "$extra"; done
    } >"$cfg"
    # shellcheck disable=SC2086 # SERVER_WRAP is a command prefix, split on purpose
    ${SERVER_WRAP:-} "$BIN" serve --config "$cfg" >"$TMP/server-$name.log" 2>&1 </dev/null &
    SERVER_PID=$!
    BENCH_PIDS+=("$SERVER_PID")
    wait_port "$SERVER_PID" "$FTP_PORT" || { tail -20 "$TMP/server-$name.log" >&2; die "server $name did not start"; }
}

evict_page_cache() { # FILE: drop FILE's pages from the page cache (written back first), so the
    # next start reads it from disk as on a fresh node: how much of a program's text is resident
    # depends on how its pages came into the cache (bench/README.md, "Peak RSS")
    python3 -c 'import os, sys
fd = os.open(sys.argv[1], os.O_RDONLY)
os.fsync(fd)
os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)' "$1"
}

stop_server() {
    stop_pid "$SERVER_PID"
    SERVER_PID=
}

sample_rss() { # PID OUT: every 0.1 s append VmRSS (KiB) until PID exits or we are stopped
    local v
    while v=$(status_kib "$1" VmRSS 2>/dev/null) && [ -n "$v" ]; do
        echo "$v" >>"$2"
        sleep 0.1
    done
}

cpu_ticks() { # PID -> its utime + stime so far, in clock ticks (fields 14, 15 of /proc/PID/stat)
    awk '{ sub(/^.*\) /, ""); print $12 + $13 }' "/proc/$1/stat"
}

sw_pid() { cat "$TMP/seaweedfs/weed.pid"; } # the SeaweedFS start_seaweedfs started

cpu_per_gib() { # TICKS MIB -> CPU-seconds per GiB moved
    awk -v t="$1" -v hz="$(getconf CLK_TCK)" -v m="$2" 'BEGIN { printf "%.3f", t / hz / (m / 1024) }'
}

max_of() { awk 'BEGIN { m = 0 } $1 > m { m = $1 } END { print m }' "$1"; }

secs_since() { awk -v a="$1" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.3f", b - a }'; }

json_get() { # FILE EXPR: python expression on the parsed JSON `j`
    python3 -c 'import json, sys; j = json.load(open(sys.argv[1])); print(eval(sys.argv[2]))' "$1" "$2"
}
