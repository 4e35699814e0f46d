#!/usr/bin/env bash
# The bounded load test (issue 4): SESSIONS concurrent TLS sessions logged in to one ftps-s3
# against SeaweedFS on loopback, TRANSFERS of them each uploading then downloading a SIZE_MIB
# file at the same time. Prints errors (must be 0; exit 1 otherwise), server RSS and p50/p99 time
# per transfer. Stops itself: every step has a time limit and everything it started is stopped by
# PID on exit.
#
#   bench/load.sh                                   1,000 sessions, 100 x 10 MiB STOR + RETR
#   SESSIONS=200 TRANSFERS=20 SIZE_MIB=1 bench/load.sh
#
# Environment: SESSIONS (1000), TRANSFERS (100), SIZE_MIB (10), LIMIT_SECS (900: the whole
# client run), SKIP_INSTALL=1, KEEP_TMP=1.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# shellcheck source=bench/lib.sh
. "$ROOT/bench/lib.sh"

SESSIONS=${SESSIONS:-1000}
TRANSFERS=${TRANSFERS:-100}
SIZE_MIB=${SIZE_MIB:-10}
LIMIT_SECS=${LIMIT_SECS:-900}
positive_ints SESSIONS TRANSFERS SIZE_MIB LIMIT_SECS
[ "$TRANSFERS" -le "$SESSIONS" ] || die "TRANSFERS ($TRANSFERS) must not exceed SESSIONS ($SESSIONS)"

bench_tmp load

if [ "${SKIP_INSTALL:-0}" != 1 ]; then "$ROOT/scripts/install-test-deps.sh" >&2; fi
for c in cargo openssl python3 weed timeout; do command -v "$c" >/dev/null || die "$c not found"; done
build
raise_fd_limit
start_seaweedfs
make_identity

# Session limits raised to let SESSIONS in from one address as one user; a passive range wide
# enough for every transfer at once. Everything else is the default.
PASSIVE_PORTS=$((TRANSFERS + 100)) start_server load "[limits]
max_sessions = $((SESSIONS + 100))
max_sessions_per_ip = $((SESSIONS + 100))
max_sessions_per_user = $((SESSIONS + 100))"
idle=$(status_kib "$SERVER_PID" VmRSS)
sample_rss "$SERVER_PID" "$TMP/rss.txt" &
BENCH_PIDS+=("$!")

log "$SESSIONS sessions, $TRANSFERS x $SIZE_MIB MiB STOR then RETR (limit ${LIMIT_SECS} s)"
rc=0
timeout --kill-after=10 "$LIMIT_SECS" "$LOAD" transfer --port "$FTP_PORT" --user many \
    --password "$PASSWORD" --sessions "$SESSIONS" --transfers "$TRANSFERS" \
    --size $((SIZE_MIB << 20)) --op both --timeout-secs "$LIMIT_SECS" \
    >"$TMP/load.json" 2>"$TMP/load.log" || rc=$?
hwm=$(status_kib "$SERVER_PID" VmHWM)
now=$(status_kib "$SERVER_PID" VmRSS)
[ -s "$TMP/load.json" ] || die "no result from ftps_load (exit $rc): $(tail -5 "$TMP/load.log")"

python3 - "$TMP/load.json" "$idle" "$hwm" "$now" "$(max_of "$TMP/rss.txt")" <<'PY'
import json, sys
j = json.load(open(sys.argv[1]))
idle, hwm, now, sampled = (int(x) / 1024 for x in sys.argv[2:6])
print(f"sessions logged in: {j['sessions_logged_in']} of {j['sessions_requested']} "
      f"in {j['login_seconds']:.1f} s")
print(f"{'op':4} {'ok':>5} {'errors':>6} {'p50 s':>7} {'p99 s':>7} {'max s':>7} {'wall s':>7} {'MiB/s':>8}")
for op, r in j["ops"].items():
    print(f"{op:4} {r['transfers']:5} {r['errors']:6} {r['p50_seconds']:7.2f} {r['p99_seconds']:7.2f} "
          f"{r['max_seconds']:7.2f} {r['wall_seconds']:7.2f} {r['aggregate_mib_per_s']:8.1f}")
print(f"server RSS MiB: idle {idle:.1f}, peak (VmHWM) {hwm:.1f}, max sampled {sampled:.1f}, "
      f"after the run {now:.1f}")
print(f"errors: {j['errors']}")
for e in j["error_samples"]:
    print(f"  {e}")
PY
[ "$rc" = 0 ] || die "load test failed (ftps_load exit $rc): errors must be 0"
log "command: SESSIONS=$SESSIONS TRANSFERS=$TRANSFERS SIZE_MIB=$SIZE_MIB bench/load.sh, commit $(cd "$ROOT" && git rev-parse --short HEAD)"
