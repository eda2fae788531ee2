#!/usr/bin/env bash
# scripts/s3/stop.sh - stop the SeaweedFS server that scripts/s3/start.sh started, and
# nothing else: the PID recorded in $XP_S3_DIR/run/weed.pid, signalled only while
# /proc/PID still has the recorded start time (a recycled PID is never hit). Idempotent.
# The data in $XP_S3_DIR/data is test data (start.sh empties it).
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
# weed's graceful shutdown takes 10-30 s; its data is test data, so 3 s then SIGKILL.
kill -TERM "$pid" 2>/dev/null
for _ in $(seq 1 15); do                       # up to 3 s
  [ "$(starttime "$pid" 2>/dev/null)" = "$st" ] || break
  sleep 0.2
done
if [ "$(starttime "$pid" 2>/dev/null)" = "$st" ]; then
  log "weed (pid $pid) still running 3 s after SIGTERM, sending SIGKILL"
  kill -KILL "$pid" 2>/dev/null
fi
rm -f "$REC/weed.pid"
log "weed (pid $pid) stopped"
exit 0
