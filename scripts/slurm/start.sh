#!/usr/bin/env bash
# scripts/slurm/start.sh - a real single-node Slurm cluster on loopback, without systemd,
# for the Slurm executor tests (`.ci/run` starts it, runs tests/slurm/, stops it).
# Target: Debian 12 (bookworm), Debian packages slurm-wlm 22.05 + munge 0.5.15, run as root.
#
# Idempotent: installs the packages if missing, writes the config (only while no Slurm
# daemon of ours is running), starts munged / slurmctld / slurmd only if the process
# recorded by an earlier run is not alive any more, waits until the node is idle
# (or fails after $SLURM_LOCAL_TIMEOUT s), prints sinfo.
#
# Everything lives under $SLURM_LOCAL_DIR (default /tmp/xp-slurm). Outside it, the
# script only (a) installs packages, (b) creates /usr/sbin/policy-rc.d for the duration
# of apt-get if there is none, (c) symlinks /etc/slurm/slurm.conf -> our config if that
# path is free (SLURM_LOCAL_LINK_ETC=0 to skip; then export SLURM_CONF, see env.sh).
#
# Knobs (environment):
#   SLURM_LOCAL_DIR=/tmp/xp-slurm   SLURM_LOCAL_TIMEOUT=60 (s to wait for node idle)
#   SLURM_LOCAL_CPUS=<n>   advertise n CPUs (n > real cores => SlurmdParameters=config_overrides)
#   SLURM_LOCAL_MEM_MB=<m> RealMemory (default 95% of what `slurmd -C` reports)
#   SLURM_LOCAL_CTLD_PORT=6817  SLURM_LOCAL_SLURMD_PORT=6818
#   SLURM_LOCAL_KEEP_STATE=0    1 = do not pass -c to slurmctld (keep jobs/job ids across restarts)
#   SLURM_LOCAL_LINK_ETC=1
set -euo pipefail

BASE=${SLURM_LOCAL_DIR:-/tmp/xp-slurm}
TIMEOUT=${SLURM_LOCAL_TIMEOUT:-60}
CTLD_PORT=${SLURM_LOCAL_CTLD_PORT:-6817}
SLURMD_PORT=${SLURM_LOCAL_SLURMD_PORT:-6818}
KEEP_STATE=${SLURM_LOCAL_KEEP_STATE:-0}
LINK_ETC=${SLURM_LOCAL_LINK_ETC:-1}
PKGS="slurmctld slurmd slurm-client munge"
NODE=localhost                       # Slurm special-cases "localhost": no DNS/hostname needed

CONF=$BASE/etc/slurm.conf
MDIR=$BASE/munge
MSOCK=$MDIR/run/munge.socket.2
REC=$BASE/run/started                # our PID records: "<pid> <starttime-in-ticks>"
export SLURM_CONF=$CONF
export PATH=/usr/sbin:/usr/bin:/sbin:/bin:$PATH

log() { printf '[slurm/start.sh %s] %s\n' "$(date +%T)" "$*" >&2; }
now() { date +%s.%N; }
elapsed() { awk -v a="$1" -v b="$(now)" 'BEGIN{printf "%.2f", b-a}'; }
tails() { for f in "$@"; do [ -f "$f" ] && { echo "---- tail $f" >&2; tail -n 15 "$f" >&2; }; done; return 0; }
die() { log "ERROR: $*"; tails "$BASE/log/slurmctld.log" "$BASE/log/slurmd.log" "$BASE/log/daemons.stderr" "$MDIR/log/munged.log"; exit 1; }

[ "$(id -u)" = 0 ] || { log "ERROR: must run as root (slurmd has to be root)"; exit 1; }

. "$(dirname "$0")/pids.sh"
# record NAME PIDFILE: wait for the daemon's own pidfile, remember pid + start time.
record() {
  local pid st
  for _ in $(seq 1 150); do
    if [ -s "$2" ] && read -r pid < "$2" && st=$(starttime "$pid"); then
      echo "$pid $st" > "$REC/$1.pid"
      log "$1 started (pid $pid)"
      return 0
    fi
    sleep 0.1
  done
  return 1
}
wait_for() { # SECONDS DESCRIPTION COMMAND...
  local t=$1 what=$2 end; shift 2
  end=$(( $(date +%s) + t ))
  until "$@" >/dev/null 2>&1; do
    [ "$(date +%s)" -lt "$end" ] || die "timed out after ${t}s waiting for $what"
    sleep 0.1
  done
}

# ---------------------------------------------------------------- 1. packages
mkdir -p "$BASE"/etc "$BASE"/log "$BASE"/run "$BASE"/state/slurmctld "$BASE"/state/slurmd "$REC"
chmod 755 "$BASE" "$BASE"/etc "$BASE"/log "$BASE"/run
exec 9>"$BASE/run/.lock"        # serialize concurrent start/stop calls; daemons get 9>&-
flock -w 300 9 || { log "ERROR: could not get $BASE/run/.lock"; exit 1; }
# slurmstepd exec()s the batch script from SlurmdSpoolDir: a noexec mount makes every job FAIL
mntopts=$(findmnt -no OPTIONS --target "$BASE/state/slurmd" 2>/dev/null || true)
if [ "${mntopts#*noexec}" != "$mntopts" ]; then
  log "ERROR: $BASE is on a noexec filesystem; use e.g. SLURM_LOCAL_DIR=/var/tmp/xp-slurm"; exit 1
fi

missing=""
for p in $PKGS; do
  st=$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null || true)
  [ "$st" = "install ok installed" ] || missing="$missing $p"
done
if [ -n "$missing" ]; then
  log "installing:$missing"
  t=$(now); made_policy=0; rc=0
  if [ ! -e /usr/sbin/policy-rc.d ]; then
    # keep postinst from starting the stock munge/slurm services (init.d or systemd)
    printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d; chmod 755 /usr/sbin/policy-rc.d; made_policy=1
  fi
  { DEBIAN_FRONTEND=noninteractive apt-get update -qq &&
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $missing; } \
    > "$BASE/log/apt.log" 2>&1 || rc=$?
  [ "$made_policy" = 1 ] && rm -f /usr/sbin/policy-rc.d
  [ "$rc" = 0 ] || { tail -n 30 "$BASE/log/apt.log" >&2; log "ERROR: apt-get failed"; exit 1; }
  log "install took $(elapsed "$t")s"
fi

# ---------------------------------------------------------------- 2. config
hw=$(slurmd -C | sed -n 1p)   # NodeName=vm CPUs=2 Boards=1 SocketsPerBoard=1 CoresPerSocket=2 ThreadsPerCore=1 RealMemory=24105
hwget() { printf '%s\n' $hw | sed -n "s/^$1=//p"; }
CPUS=$(hwget CPUs); SOCK=$(hwget SocketsPerBoard); CORES=$(hwget CoresPerSocket)
THREADS=$(hwget ThreadsPerCore); HWMEM=$(hwget RealMemory)
EXTRA=""
if [ -n "${SLURM_LOCAL_CPUS:-}" ] && [ "$SLURM_LOCAL_CPUS" != "$CPUS" ]; then
  CPUS=$SLURM_LOCAL_CPUS; SOCK=1; CORES=$CPUS; THREADS=1
  EXTRA="SlurmdParameters=config_overrides   # trust the node line below, not the hardware"
fi
MEM=${SLURM_LOCAL_MEM_MB:-$(( HWMEM * 95 / 100 ))}   # must be <= reported, else node -> INVAL/DRAIN
DEFMEM=$(( MEM / CPUS ))

render_conf() {
cat <<EOF
# Generated by scripts/slurm/start.sh. Single node, loopback only, no accounting, no cgroups.
ClusterName=localci
SlurmctldHost=$NODE
SlurmctldPort=$CTLD_PORT
SlurmdPort=$SLURMD_PORT
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket=$MSOCK
StateSaveLocation=$BASE/state/slurmctld
SlurmdSpoolDir=$BASE/state/slurmd
SlurmctldPidFile=$BASE/run/slurmctld.pid
SlurmdPidFile=$BASE/run/slurmd.pid
SlurmctldLogFile=$BASE/log/slurmctld.log
SlurmdLogFile=$BASE/log/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/filetxt
JobCompLoc=$BASE/log/jobcomp.log
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
DefMemPerCPU=$DEFMEM
SchedulerType=sched/backfill
SchedulerParameters=batch_sched_delay=0
MpiDefault=none
ReturnToService=2
MinJobAge=3600
KillWait=10
MailProg=/bin/true
$EXTRA
NodeName=$NODE NodeAddr=127.0.0.1 CPUs=$CPUS Sockets=$SOCK CoresPerSocket=$CORES ThreadsPerCore=$THREADS RealMemory=$MEM State=UNKNOWN
PartitionName=debug Nodes=ALL Default=YES MaxTime=INFINITE State=UP
EOF
}
# slurmd 22.05 loads a cgroup plugin even with proctrack/linuxproc + task/none. "autodetect"
# picks cgroup/v2 whenever /sys/fs/cgroup is cgroup2, which then wants systemd/dbus or aborts
# ("Hybrid mode is not supported"). cgroup/v1 loads without touching any cgroup, and nothing
# in this config uses cgroups, so pin it.
CGCONF=$BASE/etc/cgroup.conf
new_cg="# Generated by scripts/slurm/start.sh (see comment there).
CgroupPlugin=cgroup/v1"
new_conf=$(render_conf)
if [ -f "$CONF" ] && [ "$new_conf" = "$(cat "$CONF")" ] &&
   [ -f "$CGCONF" ] && [ "$new_cg" = "$(cat "$CGCONF")" ]; then
  :
elif running slurmctld || running slurmd; then
  log "WARNING: rendered config differs from $CONF but daemons are running; keeping the old one (run scripts/slurm/stop.sh, then scripts/slurm/start.sh, to apply)"
else
  printf '%s\n' "$new_cg" > "$CGCONF.tmp" && chmod 644 "$CGCONF.tmp" && mv "$CGCONF.tmp" "$CGCONF"
  printf '%s\n' "$new_conf" > "$CONF.tmp" && chmod 644 "$CONF.tmp" && mv "$CONF.tmp" "$CONF"
  log "wrote $CONF (CPUs=$CPUS RealMemory=$MEM) and $CGCONF"
fi
printf 'export SLURM_CONF=%s\n' "$CONF" > "$BASE/env.sh"

if [ "$LINK_ETC" = 1 ]; then
  if [ -L /etc/slurm/slurm.conf ] && [ "$(readlink /etc/slurm/slurm.conf)" = "$CONF" ]; then
    :
  elif [ -e /etc/slurm/slurm.conf ] || [ -L /etc/slurm/slurm.conf ]; then
    log "WARNING: /etc/slurm/slurm.conf exists and is not ours; clients need: export SLURM_CONF=$CONF"
  else
    mkdir -p /etc/slurm && ln -s "$CONF" /etc/slurm/slurm.conf
  fi
fi

# ---------------------------------------------------------------- 3. daemons
t_daemons=$(now); started=0

if ! running munged; then
  mkdir -p "$MDIR"/etc "$MDIR"/run "$MDIR"/lib "$MDIR"/log
  chown -R munge:munge "$MDIR"
  chmod 700 "$MDIR"/etc "$MDIR"/lib "$MDIR"/log; chmod 755 "$MDIR" "$MDIR"/run
  [ -s "$MDIR/etc/munge.key" ] || runuser -u munge -- mungekey --create --keyfile="$MDIR/etc/munge.key"
  # our munged is not running, so a socket/pidfile left here is stale (e.g. after SIGKILL)
  rm -f "$MSOCK" "$MSOCK.lock" "$MDIR/run/munged.pid"
  # munged refuses to run as root with the stock dirs -> run it as user munge.
  # --origin avoids the hostname lookup (warning when the hostname does not resolve).
  runuser -u munge -- /usr/sbin/munged --origin=127.0.0.1 \
      --key-file="$MDIR/etc/munge.key" --socket="$MSOCK" --pid-file="$MDIR/run/munged.pid" \
      --log-file="$MDIR/log/munged.log" --seed-file="$MDIR/lib/munged.seed" \
      </dev/null >>"$BASE/log/daemons.stderr" 2>&1 9>&- || die "munged failed to start"
  record munged "$MDIR/run/munged.pid" || die "munged wrote no pidfile"
  started=1
fi
wait_for 15 "munge socket" bash -c "munge -n -S '$MSOCK' | unmunge -S '$MSOCK'"

if ! running slurmctld; then
  rm -f "$BASE/run/slurmctld.pid"
  args=(-f "$CONF"); [ "$KEEP_STATE" = 1 ] || args+=(-c)   # -c: start with an empty queue
  /usr/sbin/slurmctld "${args[@]}" </dev/null >>"$BASE/log/daemons.stderr" 2>&1 9>&- || die "slurmctld failed to start"
  record slurmctld "$BASE/run/slurmctld.pid" || die "slurmctld wrote no pidfile"
  started=1
fi
wait_for "$TIMEOUT" "slurmctld to answer ping" bash -c "scontrol ping | grep -q 'is UP'"

if ! running slurmd; then
  rm -f "$BASE/run/slurmd.pid"
  # -N: do not derive the node name from the hostname (an unresolvable hostname costs ~10 s of retries)
  /usr/sbin/slurmd -f "$CONF" -N "$NODE" </dev/null >>"$BASE/log/daemons.stderr" 2>&1 9>&- || die "slurmd failed to start"
  record slurmd "$BASE/run/slurmd.pid" || die "slurmd wrote no pidfile"
  started=1
fi

# ---------------------------------------------------------------- 4. wait for the node
end=$(( $(date +%s) + TIMEOUT ))
while :; do
  st=$(sinfo -h -N -n "$NODE" -o '%T' 2>/dev/null | head -n 1 || true)
  case "$st" in
    idle|mixed|allocated|completing) break ;;
    *drain*|inval*|fail*)
      die "node is '$st': $(scontrol show node "$NODE" | grep -o 'Reason=.*')  (fix the cause, then: scontrol update nodename=$NODE state=resume)" ;;
  esac
  [ "$(date +%s)" -lt "$end" ] || die "node not ready after ${TIMEOUT}s (state '$st')"
  sleep 0.1
done
for d in munged slurmctld slurmd; do running "$d" || die "$d is not running (another Slurm on the same ports?)"; done

if [ "$started" = 1 ]; then
  log "daemons started -> node '$st' in $(elapsed "$t_daemons")s"
  # End-to-end probe (munge creds, spool dir, slurmstepd, completion). It also absorbs the
  # ~3 s until slurmctld's first scheduling pass, which would otherwise delay the first job.
  if [ "${SLURM_LOCAL_PROBE:-1}" = 1 ]; then
    t=$(now)
    pj=$(sbatch --parsable --job-name=xp-slurm-probe --chdir="$BASE" --output=/dev/null --wrap true) ||
      die "probe sbatch failed"
    end=$(( $(date +%s) + TIMEOUT ))
    while :; do
      s=$(scontrol show job -o "$pj" 2>/dev/null | grep -oE 'JobState=[A-Z_]+' | cut -d= -f2 || true)
      case "$s" in
        COMPLETED) break ;;
        FAILED|CANCELLED|NODE_FAIL|TIMEOUT|BOOT_FAIL|OUT_OF_MEMORY) die "probe job $pj ended $s" ;;
      esac
      [ "$(date +%s)" -lt "$end" ] || die "probe job $pj not done after ${TIMEOUT}s (state '$s')"
      sleep 0.1
    done
    log "probe batch job $pj completed in $(elapsed "$t")s (total since daemon start $(elapsed "$t_daemons")s)"
  fi
else
  log "already running (node '$st')"
fi
[ -L /etc/slurm/slurm.conf ] && [ "$(readlink /etc/slurm/slurm.conf)" = "$CONF" ] ||
  log "clients need: export SLURM_CONF=$CONF   (or: . $BASE/env.sh)"
sinfo
