#!/usr/bin/env bash
# scripts/s3/stop.sh - stop the SeaweedFS server that scripts/s3/start.sh started, and
# nothing else: the PID recorded in $XP_S3_DIR/run/weed.pid, signalled only while
# /proc/PID still has the recorded start time (a recycled PID is never hit). Idempotent.
# The data stays in $XP_S3_DIR/data (remove the directory to start afresh).
set -uo pipefail

BASE=${XP_S3_DIR:-/tmp/xp-s3}
REC=$BASE/run
log() { printf '[s3/stop.sh %s] %s\n' "$(date +%T)" "$*" >&2; }
. "$(dirname "$0")/../slurm/pids.sh"

if ! pid=$(pid_of weed); then
  log "no weed of ours is running"
  rm -f "$REC/weed.pid"
  exit 0
fi
read -r _ st < "$REC/weed.pid"
kill -TERM "$pid" 2>/dev/null
for _ in $(seq 1 50); do                       # up to 10 s
  [ "$(starttime "$pid" 2>/dev/null)" = "$st" ] || break
  sleep 0.2
done
if [ "$(starttime "$pid" 2>/dev/null)" = "$st" ]; then
  log "weed (pid $pid) ignored SIGTERM for 10 s, sending SIGKILL"
  kill -KILL "$pid" 2>/dev/null
fi
rm -f "$REC/weed.pid"
log "weed (pid $pid) stopped"
exit 0
