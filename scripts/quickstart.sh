#!/usr/bin/env bash
# From nothing to a partner uploading into a real bucket, on this machine, in one command:
#
#   1. starts a local S3 store (SeaweedFS, `weed` from scripts/install-test-deps.sh) with a bucket
#   2. makes a TLS certificate for 127.0.0.1 / localhost (self-signed; production: README)
#   3. writes a users file with one user and a random password (`ftps-s3 hash-password`)
#   4. writes a minimal config: explicit FTPS on 2121, implicit on 9990, no root needed
#   5. runs `ftps-s3 check-config` (S3 reachable, bucket there, keys right, ports free)
#   6. starts `ftps-s3 serve`, uploads one file with curl as the partner would, shows it in S3,
#      prints the client commands, and serves until Ctrl-C; then stops the server and SeaweedFS.
#
# Everything lives in $QUICKSTART_DIR (default ./quickstart, kept between runs: the same
# certificate, password and bucket contents). `scripts/quickstart.sh --once` stops after the upload
# check instead of serving. Ports: QUICKSTART_EXPLICIT_PORT (2121), QUICKSTART_IMPLICIT_PORT
# (9990); the S3 store takes any free port. Builds the server with cargo unless QUICKSTART_BIN names
# a binary (QUICKSTART_PROFILE=release for an optimised build; the default debug build is faster
# to make).
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
ROOT=$PWD
DIR=${QUICKSTART_DIR:-$ROOT/quickstart}
EXPLICIT_PORT=${QUICKSTART_EXPLICIT_PORT:-2121}
IMPLICIT_PORT=${QUICKSTART_IMPLICIT_PORT:-9990}
PROFILE=${QUICKSTART_PROFILE:-debug}
BUCKET=ftps-quickstart
USER_NAME=partner
ONCE=false
[ "${1:-}" = "--once" ] && ONCE=true

say() { printf '\n\033[1m==> %s\033[0m\n' "$*"; }
[ -t 1 ] || say() { printf '\n==> %s\n' "$*"; }

SERVER_PID=
stop_all() {
    trap - EXIT INT TERM
    if [ -n "$SERVER_PID" ] && kill -0 "$SERVER_PID" 2>/dev/null; then
        say "stopping ftps-s3 (pid $SERVER_PID)"
        kill -TERM "$SERVER_PID"
        wait "$SERVER_PID" 2>/dev/null || true
    fi
    SW_STATE=$DIR/seaweedfs scripts/start-seaweedfs.sh stop || true
}
trap stop_all EXIT
trap 'exit 130' INT TERM

mkdir -p "$DIR"

say "1. S3: SeaweedFS with bucket $BUCKET"
if ! command -v weed >/dev/null && [ ! -x "$ROOT/.venv/bin/weed" ]; then
    echo "SeaweedFS (weed) is not installed: run scripts/install-test-deps.sh first" >&2
    exit 1
fi
SW_STATE=$DIR/seaweedfs SW_S3_PORT=0 scripts/start-seaweedfs.sh start "$BUCKET" >"$DIR/s3.env"
# S3_ENDPOINT, AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_REGION: for check-config and serve.
set -a
# shellcheck source=/dev/null
. "$DIR/s3.env"
set +a
echo "endpoint $S3_ENDPOINT, access key $AWS_ACCESS_KEY_ID"

if [ -n "${QUICKSTART_BIN:-}" ]; then
    BIN=$QUICKSTART_BIN
else
    say "building ftps-s3 ($PROFILE)"
    if [ "$PROFILE" = release ]; then cargo build --locked --release --bin ftps-s3; else cargo build --locked --bin ftps-s3; fi
    BIN=${CARGO_TARGET_DIR:-$ROOT/target}/$PROFILE/ftps-s3
fi
"$BIN" --version

say "2. certificate: $DIR/tls/tls.crt (self-signed, for 127.0.0.1 and localhost)"
mkdir -p "$DIR/tls"
if [ ! -s "$DIR/tls/tls.crt" ]; then
    openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 90 \
        -subj /CN=localhost -addext "subjectAltName=DNS:localhost,IP:127.0.0.1" \
        -keyout "$DIR/tls/tls.key" -out "$DIR/tls/tls.crt" 2>/dev/null
    chmod 600 "$DIR/tls/tls.key"
fi
openssl x509 -in "$DIR/tls/tls.crt" -noout -subject -enddate

say "3. users: $DIR/users.toml (user $USER_NAME)"
if [ ! -s "$DIR/password" ]; then
    (umask 077 && openssl rand -hex 12 >"$DIR/password")
fi
PASSWORD=$(cat "$DIR/password")
if [ ! -s "$DIR/users.toml" ]; then
    hash=$(printf '%s' "$PASSWORD" | "$BIN" hash-password)
    cat >"$DIR/users.toml" <<USERS
[[user]]
name = "$USER_NAME"
password_hash = "$hash"
home = "partners/$USER_NAME/"
permissions = ["list", "read", "write", "overwrite", "delete", "rename", "mkdir"]
USERS
fi
cat "$DIR/users.toml"

say "4. config: $DIR/config.toml"
cat >"$DIR/config.toml" <<CONFIG
[listeners]
explicit = "127.0.0.1:$EXPLICIT_PORT"
implicit = "127.0.0.1:$IMPLICIT_PORT"

[tls]
cert_file = "$DIR/tls/tls.crt"
key_file = "$DIR/tls/tls.key"

[passive]
ports = "30000-30019"

[s3]
bucket = "$BUCKET"
endpoint = "$S3_ENDPOINT"
force_path_style = true

[auth]
users_file = "$DIR/users.toml"
CONFIG
cat "$DIR/config.toml"

say "5. check-config"
"$BIN" check-config --config "$DIR/config.toml"

say "6. serve (log: $DIR/server.log)"
"$BIN" serve --config "$DIR/config.toml" >"$DIR/server.log" 2>&1 &
SERVER_PID=$!
for _ in $(seq 1 100); do
    grep -q 'listening.*implicit' "$DIR/server.log" 2>/dev/null && break
    kill -0 "$SERVER_PID" 2>/dev/null || { cat "$DIR/server.log" >&2; exit 1; }
    sleep 0.1
done
grep -E 'starting:|listening|s3: bucket' "$DIR/server.log" | sed 's/^/  /'

say "a partner uploads hello.txt (curl, explicit FTPS, certificate verified)"
echo "hello from ftps-s3 quickstart, $(date -u +%FT%TZ)" >"$DIR/hello.txt"
curl -sS --ssl-reqd --cacert "$DIR/tls/tls.crt" -u "$USER_NAME:$PASSWORD" \
    -T "$DIR/hello.txt" "ftp://127.0.0.1:$EXPLICIT_PORT/hello.txt"
curl -sS --ssl-reqd --cacert "$DIR/tls/tls.crt" -u "$USER_NAME:$PASSWORD" \
    "ftps://127.0.0.1:$IMPLICIT_PORT/"
echo "read back from S3 directly (GetObject s3://$BUCKET/partners/$USER_NAME/hello.txt):"
curl -sS --fail --aws-sigv4 "aws:amz:us-east-1:s3" --user "$AWS_ACCESS_KEY_ID:$AWS_SECRET_ACCESS_KEY" \
    "$S3_ENDPOINT/$BUCKET/partners/$USER_NAME/hello.txt" | sed 's/^/  /'

cat <<CLIENTS

==> ftps-s3 is serving. Connect as $USER_NAME / $PASSWORD
  curl:   curl --ssl-reqd --cacert $DIR/tls/tls.crt -u $USER_NAME:$PASSWORD ftp://127.0.0.1:$EXPLICIT_PORT/
          curl --ssl-reqd --cacert $DIR/tls/tls.crt -u $USER_NAME:$PASSWORD -T FILE ftps://127.0.0.1:$IMPLICIT_PORT/
  lftp:   lftp -u $USER_NAME,$PASSWORD -e 'set ssl:ca-file $DIR/tls/tls.crt; set ftp:ssl-force yes; set ftp:ssl-protect-data yes' ftp://127.0.0.1:$EXPLICIT_PORT
  FileZilla / WinSCP: host 127.0.0.1, port $EXPLICIT_PORT, "Require explicit FTP over TLS" (or implicit, port $IMPLICIT_PORT)
  Python: README, "Connecting" (FTP_TLS with TLS session reuse)
  files land in s3://$BUCKET/partners/$USER_NAME/ at $S3_ENDPOINT
CLIENTS

if $ONCE; then
    exit 0
fi
echo "Ctrl-C stops the server and SeaweedFS."
wait "$SERVER_PID"
