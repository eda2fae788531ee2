# scripts/slurm/pids.sh - sourced by start.sh and stop.sh (needs $REC): the PID records
# "<pid> <starttime>" under $REC, and whether a recorded daemon is still that process.

# starttime PID: field 22 of /proc/PID/stat; fails if no such process or it is a zombie.
starttime() {
  local s
  s=$(cat "/proc/$1/stat" 2>/dev/null) || return 1
  s=${s##*) }
  set -- $s
  [ "$1" != Z ] || return 1
  echo "${20}"
}
# pid_of NAME: print the recorded pid if that very process is still alive.
pid_of() {
  local pid st
  [ -f "$REC/$1.pid" ] || return 1
  read -r pid st < "$REC/$1.pid" || return 1
  [ "$(starttime "$pid" 2>/dev/null)" = "$st" ] || return 1
  echo "$pid"
}
# running NAME: true if the process recorded as NAME is alive and is the same process.
running() { pid_of "$1" >/dev/null; }
