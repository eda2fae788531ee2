#!/usr/bin/env bash
# scripts/slurm/stop.sh - stop the daemons that scripts/slurm/start.sh started, and nothing else.
# Uses only the PID records written by scripts/slurm/start.sh ($SLURM_LOCAL_DIR/run/started/*.pid,
# "<pid> <starttime>"); a PID is signalled only if /proc/PID still has the recorded start
# time, so a recycled PID is never hit. No pkill/killall. Idempotent.
# Jobs still queued/running are cancelled through Slurm (scancel) first, so that no
# slurmstepd / job processes outlive slurmd. Config, key, logs and state stay on disk.
set -uo pipefail

BASE=${SLURM_LOCAL_DIR:-/tmp/xp-slurm}
CONF=$BASE/etc/slurm.conf
REC=$BASE/run/started
export SLURM_CONF=$CONF
export PATH=/usr/sbin:/usr/bin:/sbin:/bin:$PATH

log() { printf '[slurm/stop.sh %s] %s\n' "$(date +%T)" "$*" >&2; }
. "$(dirname "$0")/pids.sh"
stop_one() {
  local name=$1 pid st
  if [ ! -f "$REC/$name.pid" ]; then log "$name: no PID record, nothing to stop"; return 0; fi
  read -r pid st < "$REC/$name.pid"
  if ! pid_of "$name" >/dev/null; then
    log "$name: recorded pid $pid is gone, dropping the record"; rm -f "$REC/$name.pid"; return 0
  fi
  kill -TERM "$pid" 2>/dev/null
  for _ in $(seq 1 100); do                      # up to 20 s
    [ "$(starttime "$pid" 2>/dev/null)" = "$st" ] || break
    sleep 0.2
  done
  if [ "$(starttime "$pid" 2>/dev/null)" = "$st" ]; then
    log "$name (pid $pid) ignored SIGTERM for 20 s, sending SIGKILL"; kill -KILL "$pid" 2>/dev/null; sleep 0.5
  fi
  rm -f "$REC/$name.pid"
  log "$name (pid $pid) stopped"
}

if [ -d "$BASE/run" ]; then
  exec 9>"$BASE/run/.lock"; flock -w 300 9 || { log "ERROR: could not get $BASE/run/.lock"; exit 1; }
fi

# 1. cancel whatever is still in the queue, while slurmctld and slurmd are still ours and alive
if pid_of slurmctld >/dev/null; then
  ids=$(squeue -h -o '%A' 2>/dev/null | tr '\n' ' ')
  if [ -n "${ids// /}" ]; then
    log "cancelling jobs: $ids"
    scancel $ids 2>/dev/null
    for _ in $(seq 1 150); do                    # up to 30 s (KillWait=10 in our slurm.conf)
      [ -z "$(squeue -h -o '%A' 2>/dev/null)" ] && break
      sleep 0.2
    done
    [ -z "$(squeue -h -o '%A' 2>/dev/null)" ] || log "WARNING: jobs still listed: $(squeue -h -o '%A:%T' | tr '\n' ' ')"
  fi
fi

# 2. stop the daemons, node daemon first
for d in slurmd slurmctld munged; do stop_one "$d"; done

# 3. leftovers we only report (they were forked by slurmd, not by the start script)
left=""
for p in /proc/[0-9]*; do
  case "$(readlink "$p/exe" 2>/dev/null)" in */slurmstepd*) left="$left ${p#/proc/}" ;; esac
done
[ -z "$left" ] || log "WARNING: slurmstepd still running (pids:$left); they end with their jobs"

# 4. drop the /etc/slurm/slurm.conf symlink if scripts/slurm/start.sh made it
if [ -L /etc/slurm/slurm.conf ] && [ "$(readlink /etc/slurm/slurm.conf)" = "$CONF" ]; then
  rm -f /etc/slurm/slurm.conf
fi
exit 0
