#!/usr/bin/env bash
# STOR CPU per GiB, A/B (issue 14 target 1): one SeaweedFS, then for each round every server
# binary given in turn (fresh server per transfer, default settings as in run.sh), one curl STOR
# of SIZE_MIB (explicit FTPS, PROT P, TLS 1.3). Per binary: server CPU-seconds per GiB (utime +
# stime from /proc over the transfer), context switches per GiB (voluntary + involuntary, summed
# over the server's threads: wake-ups), peak RSS (VmHWM), MiB/s; medians, and each binary's
# median CPU against the first one's. A binary may be a script that execs one (to set an
# environment variable for it alone).
#
#   bench/stor_cpu.sh BIN_A [BIN_B ...]        e.g. a copy of the baseline build, then the change
#   S3_TLS=1 ROUNDS=5 SIZE_MIB=512 bench/stor_cpu.sh /tmp/base target/release/ftps-s3
#
# Environment: ROUNDS 3, SIZE_MIB 512, S3_TLS (HTTPS S3 endpoint), PERF_OUT (a directory: perf
# record -g of the last binary's last transfer goes there), KEEP_TMP=1. Builds nothing.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# shellcheck source=bench/lib.sh
. "$ROOT/bench/lib.sh"
[ $# -ge 1 ] || die "usage: bench/stor_cpu.sh BIN [BIN...]"
ROUNDS=${ROUNDS:-3}
SIZE_MIB=${SIZE_MIB:-512}
BINS=("$@")
for b in "${BINS[@]}"; do [ -x "$b" ] || die "$b is not an executable"; done

bench_tmp storcpu

raise_fd_limit
start_seaweedfs
BIN=${BINS[0]}
make_identity
SRC=$TMP/src.bin
write_source "$SRC" "$SIZE_MIB"
SIZE=$((SIZE_MIB << 20))
log "S3 at $S3_ENDPOINT; $(uptime)"

switches() { # PID -> context switches of its threads so far
    cat "/proc/$1/task/"*/status 2>/dev/null | awk '/ctxt_switches/ { s += $2 } END { print s + 0 }'
}
mibps() { awk -v m="$1" -v s="$2" 'BEGIN { printf "%.1f", m / s }'; }
declare -A CPU RSS MBS CSW
for r in $(seq 1 "$ROUNDS"); do
    for i in "${!BINS[@]}"; do
        BIN=${BINS[i]}
        start_server "ab$i"
        url="ftp://127.0.0.1:$FTP_PORT/ab$i.bin"
        c0=$(cpu_ticks "$SERVER_PID")
        s0=$(switches "$SERVER_PID")
        perf_pid=
        if [ -n "${PERF_OUT:-}" ] && [ "$r" = "$ROUNDS" ] && [ "$i" = $((${#BINS[@]} - 1)) ]; then
            mkdir -p "$PERF_OUT"
            perf record -g -o "$PERF_OUT/perf.data" -p "$SERVER_PID" >"$TMP/perf.log" 2>&1 &
            perf_pid=$!
            sleep 0.5
        fi
        t0=$EPOCHREALTIME
        moved=$(curl -sS -k --tlsv1.3 --ssl-reqd -u "bench:$PASSWORD" -T "$SRC" "$url" -w '%{size_upload}')
        t=$(secs_since "$t0")
        [ "$moved" = "$SIZE" ] || die "STOR moved $moved bytes"
        c1=$(cpu_ticks "$SERVER_PID")
        s1=$(switches "$SERVER_PID")
        if [ -n "$perf_pid" ]; then kill -INT "$perf_pid"; wait "$perf_pid" || true; fi
        CPU[$i]+=" $(cpu_per_gib $((c1 - c0)) "$SIZE_MIB")"
        CSW[$i]+=" $(((s1 - s0) * 1024 / SIZE_MIB))"
        RSS[$i]+=" $(($(status_kib "$SERVER_PID" VmHWM) / 1024))"
        MBS[$i]+=" $(mibps "$SIZE_MIB" "$t")"
        log "round $r $BIN: cpu ${CPU[$i]##* } s/GiB, ${CSW[$i]##* } switches/GiB, rss ${RSS[$i]##* } MiB, ${MBS[$i]##* } MiB/s"
        stop_server
    done
done

med() { tr ' ' '\n' | sed '/^$/d' | sort -g | awk '{ a[NR] = $1 } END { print (NR % 2) ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2 }'; }
base=$(med <<<"${CPU[0]}")
echo "| binary | CPU-s/GiB median (runs) | vs first | switches/GiB | peak RSS MiB | MiB/s |"
echo "| --- | --- | ---: | ---: | ---: | ---: |"
for i in "${!BINS[@]}"; do
    m=$(med <<<"${CPU[$i]}")
    printf '| %s | %s (%s) | %s | %s | %s | %s |\n' "${BINS[i]}" "$m" "${CPU[$i]# }" \
        "$(awk -v a="$m" -v b="$base" 'BEGIN { printf "%.3f", a / b }')" \
        "$(med <<<"${CSW[$i]}")" "$(med <<<"${RSS[$i]}")" "$(med <<<"${MBS[$i]}")"
done
echo "uptime: $(uptime)"
