#!/usr/bin/env bash
# Data connections per minute one ftps-s3 sustains with a 20-port passive range (issue 10):
# CONCURRENCY sessions from 127.0.0.1, each doing RETR of a small file back to back for SECS
# seconds (every RETR is EPSV + a data connection + TLS resumption + 226). Every port is reused
# within seconds of its last data connection, so TIME_WAIT must not exhaust the range: PASV
# refusals (425) are counted and must be 0. Against SeaweedFS on loopback; stops everything it
# started, by PID.
#
#   bench/passive_rate.sh
#   SECS=60 CONCURRENCY=16 PASSIVE_PORTS=20 bench/passive_rate.sh
#
# Environment: SECS (30), CONCURRENCY (8), SIZE (1024 bytes), PASSIVE_PORTS (20),
# SKIP_INSTALL=1, KEEP_TMP=1.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# shellcheck source=bench/lib.sh
. "$ROOT/bench/lib.sh"

SECS=${SECS:-30}
CONCURRENCY=${CONCURRENCY:-8}
SIZE=${SIZE:-1024}
PASSIVE_PORTS=${PASSIVE_PORTS:-20}
positive_ints SECS CONCURRENCY SIZE PASSIVE_PORTS

bench_tmp prate

if [ "${SKIP_INSTALL:-0}" != 1 ]; then "$ROOT/scripts/install-test-deps.sh" >&2; fi
for c in cargo openssl python3 weed timeout; do command -v "$c" >/dev/null || die "$c not found"; done
build
start_seaweedfs
make_identity

export PASSIVE_PORTS
start_server rate "[limits]
max_sessions_per_ip = $((CONCURRENCY + 10))
max_sessions_per_user = $((CONCURRENCY + 10))"

log "$CONCURRENCY sessions, RETR of $SIZE bytes back to back for $SECS s, $PASSIVE_PORTS passive ports"
rc=0
timeout --kill-after=10 $((SECS + 120)) "$LOAD" datarate --port "$FTP_PORT" --user many \
    --password "$PASSWORD" --secs "$SECS" --concurrency "$CONCURRENCY" --size "$SIZE" \
    >"$TMP/rate.json" 2>"$TMP/rate.log" || rc=$?
[ -s "$TMP/rate.json" ] || die "no result from ftps_load (exit $rc): $(tail -5 "$TMP/rate.log")"
python3 - "$TMP/rate.json" <<'PY'
import json, sys
j = json.load(open(sys.argv[1]))
print(f"data connections: {j['data_connections']} in {j['seconds']:.1f} s = "
      f"{j['per_minute']:.0f} per minute ({j['concurrency']} sessions, {j['size_bytes']} B each)")
print(f"PASV refused (425): {j['refused_425']}; other errors: {len(j['error_samples'])}")
for e in j["error_samples"]:
    print(f"  {e}")
PY
[ "$rc" = 0 ] || die "passive rate bench failed (ftps_load exit $rc): refusals and errors must be 0"
log "command: BENCH_PROFILE=$BENCH_PROFILE SECS=$SECS CONCURRENCY=$CONCURRENCY PASSIVE_PORTS=$PASSIVE_PORTS bench/passive_rate.sh, commit $(cd "$ROOT" && git rev-parse --short HEAD)"
