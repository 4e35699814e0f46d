#!/usr/bin/env bash
# The global upload memory budget (issue 10, item 4): UPLOADS concurrent STORs of SIZE_MIB each
# with `limits.upload_memory_mib = BUDGET_MIB`, then the same without a budget (`0`), each on a
# fresh ftps-s3 against SeaweedFS on loopback; then every file is read back (RETR, every byte
# checked against what was sent). Per run: server peak RSS (VmHWM) and idle RSS, server
# CPU-seconds of the STOR phase (utime + stime from /proc), aggregate STOR MiB/s, errors.
# Checks that the budget run's peak RSS is at most BUDGET_MIB + idle + 40 MiB and that no
# transfer failed (exit 1 otherwise). Bounded: LIMIT_SECS per client run.
#
#   bench/budget.sh                                  40 x 64 MiB, budget 128 MiB, 1 run each
#   RUNS=3 bench/budget.sh                           interleaved: budget, none, budget, none, ...
#   UPLOADS=16 SIZE_MIB=32 BUDGET_MIB=64 bench/budget.sh
#
# Environment: UPLOADS (40), SIZE_MIB (64), BUDGET_MIB (128), RUNS (1), LIMIT_SECS (600),
# SKIP_INSTALL=1, KEEP_TMP=1.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# shellcheck source=bench/lib.sh
. "$ROOT/bench/lib.sh"

UPLOADS=${UPLOADS:-40}
SIZE_MIB=${SIZE_MIB:-64}
BUDGET_MIB=${BUDGET_MIB:-128}
RUNS=${RUNS:-1}
LIMIT_SECS=${LIMIT_SECS:-600}
positive_ints UPLOADS SIZE_MIB BUDGET_MIB RUNS LIMIT_SECS

bench_tmp budget

if [ "${SKIP_INSTALL:-0}" != 1 ]; then "$ROOT/scripts/install-test-deps.sh" >&2; fi
for c in cargo openssl python3 weed timeout getconf; do command -v "$c" >/dev/null || die "$c not found"; done
build
raise_fd_limit
start_seaweedfs
make_identity
TICKS=$(getconf CLK_TCK)

failed=0
rows=()
one_run() { # BUDGET (MiB, 0 = none) RUN
    local budget=$1 run=$2 name idle hwm t0 t1 rc=0
    name="b${budget}-r${run}"
    # Default settings but the budget, and room for UPLOADS sessions of one user.
    start_server "$name" "[limits]
upload_memory_mib = $budget
max_sessions_per_user = $((UPLOADS + 10))
max_sessions_per_ip = $((UPLOADS + 10))"
    sleep 0.5
    idle=$(status_kib "$SERVER_PID" VmRSS)
    t0=$(cpu_ticks "$SERVER_PID")
    timeout --kill-after=10 "$LIMIT_SECS" "$LOAD" transfer --port "$FTP_PORT" --user many \
        --password "$PASSWORD" --sessions "$UPLOADS" --transfers "$UPLOADS" \
        --size $((SIZE_MIB << 20)) --op stor --timeout-secs "$LIMIT_SECS" \
        >"$TMP/$name-stor.json" 2>"$TMP/$name-stor.log" || rc=$?
    t1=$(cpu_ticks "$SERVER_PID")
    hwm=$(status_kib "$SERVER_PID" VmHWM)
    timeout --kill-after=10 "$LIMIT_SECS" "$LOAD" transfer --port "$FTP_PORT" --user many \
        --password "$PASSWORD" --sessions "$UPLOADS" --transfers "$UPLOADS" \
        --size $((SIZE_MIB << 20)) --op retr --timeout-secs "$LIMIT_SECS" \
        >"$TMP/$name-retr.json" 2>"$TMP/$name-retr.log" || rc=$?
    stop_server
    [ -s "$TMP/$name-stor.json" ] || die "no STOR result ($name): $(tail -5 "$TMP/$name-stor.log")"
    [ -s "$TMP/$name-retr.json" ] || die "no RETR result ($name): $(tail -5 "$TMP/$name-retr.log")"
    [ "$rc" = 0 ] || failed=1
    rows+=("$(python3 - "$TMP/$name-stor.json" "$TMP/$name-retr.json" "$budget" "$idle" "$hwm" \
        "$((t1 - t0))" "$TICKS" "$SIZE_MIB" <<'PY'
import json, sys
stor, retr = (json.load(open(f)) for f in sys.argv[1:3])
budget, idle, hwm, ticks, hz, size = (int(x) for x in sys.argv[3:9])
s, r = stor["ops"]["stor"], retr["ops"]["retr"]
cpu = ticks / hz
gib = s["transfers"] * size / 1024
label = f"{budget} MiB" if budget else "none"
print(f"| {label} | {s['transfers']} | {s['errors'] + stor['errors'] - s['errors']} | "
      f"{r['transfers']} | {r['errors']} | {idle / 1024:.1f} | {hwm / 1024:.1f} | "
      f"{(hwm - idle) / 1024:.1f} | {cpu:.2f} | {cpu / gib if gib else 0:.2f} | "
      f"{s['aggregate_mib_per_s']:.1f} | {s['p99_seconds']:.1f} |")
PY
)")
    if [ "$budget" != 0 ]; then
        local bound=$((budget * 1024 + idle + 40 * 1024))
        if [ "$hwm" -gt "$bound" ]; then
            log "run $name: peak RSS $((hwm / 1024)) MiB above budget + idle + 40 MiB = $((bound / 1024)) MiB"
            failed=1
        fi
    fi
}

for run in $(seq 1 "$RUNS"); do
    log "run $run of $RUNS: $UPLOADS x $SIZE_MIB MiB STOR with upload_memory_mib = $BUDGET_MIB, then without"
    one_run "$BUDGET_MIB" "$run"
    one_run 0 "$run"
done

echo "| budget | STOR ok | STOR errors | RETR ok (checked) | RETR errors | idle RSS MiB | peak RSS MiB | peak − idle MiB | STOR server CPU-s | CPU-s / GiB | STOR MiB/s | STOR p99 s |"
echo "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"
printf '%s\n' "${rows[@]}"
log "command: UPLOADS=$UPLOADS SIZE_MIB=$SIZE_MIB BUDGET_MIB=$BUDGET_MIB RUNS=$RUNS bench/budget.sh, commit $(cd "$ROOT" && git rev-parse --short HEAD)"
[ "$failed" = 0 ] || die "a transfer failed or the peak RSS bound was exceeded"
