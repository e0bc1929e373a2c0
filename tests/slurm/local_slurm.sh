# shellcheck shell=bash
# A throw-away single-node Slurm on localhost (munge + slurmctld + slurmd), for tests.
# Source it, then:  local_slurm_install; local_slurm_up STATE_DIR; ...; local_slurm_down
# local_slurm_down stops only the daemons local_slurm_up started, by the PIDs it recorded, cancels the
# jobs submitted meanwhile, and puts /etc/slurm/slurm.conf back as it was. Needs root.
# Recipe: ../shared/ENVIRONMENT.md, "A real Slurm on localhost" (Slurm 22.05, Debian 12).

LS_CONF=/etc/slurm/slurm.conf
LS_MARK="# written by anderson_mpi tests/slurm/local_slurm.sh"
LS_CPUS=${LS_CPUS:-4}            # declared CPUs (config_overrides): 4-task jobs fit on a 2-core machine
LS_MUNGE_PID="" LS_CTLD_PID="" LS_SLURMD_PID="" LS_CONF_BACKUP="" LS_CONF_WRITTEN=0
LS_STEPD_BEFORE="" LS_STATE=""

ls_say() { echo "[local-slurm $(date +%T)] $*"; }

local_slurm_install() {
  if command -v slurmctld >/dev/null && command -v slurmd >/dev/null && command -v munged >/dev/null \
     && command -v sbatch >/dev/null; then
    ls_say "slurm-wlm and munge present: $(slurmd -V 2>&1), $(munged -V 2>&1 | awk '{print $1}')"
    return 0
  fi
  [ "$(id -u)" = 0 ] || { ls_say "ERROR: slurm-wlm/munge missing and not root: cannot apt-get install" >&2; return 1; }
  ls_say "installing slurm-wlm munge (apt-get)"
  local t0=$SECONDS
  apt-get update -qq >/dev/null || true
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends slurm-wlm munge >/dev/null || return 1
  ls_say "installed in $((SECONDS - t0)) s: $(slurmd -V 2>&1), $(munged -V 2>&1 | awk '{print $1}')"
}

_ls_pid_alive() { [ -n "$1" ] && kill -0 "$1" 2>/dev/null; }

_ls_stop_pid() {   # name pid: SIGTERM, wait up to 15 s, then SIGKILL
  local name=$1 pid=$2
  _ls_pid_alive "$pid" || return 0
  kill -TERM "$pid" 2>/dev/null || true
  for _ in $(seq 1 30); do _ls_pid_alive "$pid" || { ls_say "stopped $name (pid $pid)"; return 0; }; sleep 0.5; done
  kill -KILL "$pid" 2>/dev/null || true
  ls_say "killed $name (pid $pid) after 15 s"
}

local_slurm_up() {   # STATE_DIR
  LS_STATE=$1
  local host; host=$(hostname)
  [ "$(id -u)" = 0 ] || { ls_say "ERROR: needs root (daemons, /etc/slurm)" >&2; return 1; }
  if pgrep -x slurmctld >/dev/null || pgrep -x slurmd >/dev/null; then
    ls_say "ERROR: a slurmctld/slurmd is already running here (pids: $( (pgrep -x slurmctld; pgrep -x slurmd) | xargs)); not touching it" >&2
    return 1
  fi
  if [ -f "$LS_CONF" ] && ! grep -qF "$LS_MARK" "$LS_CONF"; then
    if [ "${SLURM_TEST_FORCE:-0}" != 1 ]; then
      ls_say "ERROR: $LS_CONF exists and was not written by this test; set SLURM_TEST_FORCE=1 to back it up and restore it afterwards" >&2
      return 1
    fi
    LS_CONF_BACKUP=$LS_STATE/slurm.conf.orig
  fi
  mkdir -p "$LS_STATE"/{ctld,slurmd,log,run}
  [ -n "$LS_CONF_BACKUP" ] && cp -p "$LS_CONF" "$LS_CONF_BACKUP"
  LS_STEPD_BEFORE=" $( (pgrep -x slurmstepd || true) | xargs) "

  # munge: use a running munged, else start one (and stop it at the end)
  if munge -n </dev/null 2>/dev/null | unmunge >/dev/null 2>&1; then
    ls_say "munged already running: using it"
  else
    install -d -o munge -g munge -m 0755 /run/munge
    install -d -o munge -g munge -m 0700 /var/lib/munge /var/log/munge
    [ -s /etc/munge/munge.key ] || { mungekey --create --keyfile=/etc/munge/munge.key && chown munge:munge /etc/munge/munge.key; }
    runuser -u munge -- /usr/sbin/munged || { ls_say "ERROR: munged did not start" >&2; return 1; }
    for _ in $(seq 1 20); do [ -s /run/munge/munged.pid ] && break; sleep 0.1; done
    LS_MUNGE_PID=$(cat /run/munge/munged.pid 2>/dev/null || true)
    ls_say "started munged (pid $LS_MUNGE_PID)"
  fi

  mkdir -p /etc/slurm
  cat > "$LS_CONF" <<EOF
$LS_MARK (state in $LS_STATE)
ClusterName=local
SlurmctldHost=$host
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
# a requeued job may start again after cred_expire seconds (default 120)
AuthInfo=cred_expire=10
StateSaveLocation=$LS_STATE/ctld
SlurmdSpoolDir=$LS_STATE/slurmd
SlurmctldPidFile=$LS_STATE/run/slurmctld.pid
SlurmdPidFile=$LS_STATE/run/slurmd.pid
SlurmctldLogFile=$LS_STATE/log/slurmctld.log
SlurmdLogFile=$LS_STATE/log/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
MpiDefault=pmix
MailProg=/bin/true
ReturnToService=2
SlurmdParameters=config_overrides
# keep finished jobs visible to scontrol (no accounting here), drop jobs whose dependency failed
MinJobAge=3600
DependencyParameters=kill_invalid_depend
KillWait=15
SchedulerParameters=sched_interval=5
NodeName=$host NodeAddr=127.0.0.1 CPUs=$LS_CPUS RealMemory=4000 State=UNKNOWN
PartitionName=debug Nodes=ALL Default=YES MaxTime=INFINITE State=UP
EOF
  LS_CONF_WRITTEN=1

  slurmctld || { ls_say "ERROR: slurmctld did not start; log:" >&2; tail -20 "$LS_STATE/log/slurmctld.log" >&2; return 1; }
  for _ in $(seq 1 50); do [ -s "$LS_STATE/run/slurmctld.pid" ] && break; sleep 0.1; done
  LS_CTLD_PID=$(cat "$LS_STATE/run/slurmctld.pid")
  slurmd || { ls_say "ERROR: slurmd did not start; log:" >&2; tail -20 "$LS_STATE/log/slurmd.log" >&2; return 1; }
  for _ in $(seq 1 50); do [ -s "$LS_STATE/run/slurmd.pid" ] && break; sleep 0.1; done
  LS_SLURMD_PID=$(cat "$LS_STATE/run/slurmd.pid")
  ls_say "started slurmctld (pid $LS_CTLD_PID) and slurmd (pid $LS_SLURMD_PID); state in $LS_STATE"

  local st=""
  for _ in $(seq 1 60); do
    st=$(sinfo -h -n "$host" -o %T 2>/dev/null || true)
    case $st in idle*|mix*|alloc*) break ;; esac
    sleep 0.5
  done
  case $st in idle*|mix*|alloc*) ;; *)
    ls_say "ERROR: node $host is '$st' after 30 s" >&2; scontrol show node "$host" >&2; return 1 ;;
  esac
  ls_say "node $host: $st, $(sinfo -h -o '%c CPUs, partition %P')"
}

local_slurm_down() {
  local ids
  if [ -n "$LS_CTLD_PID" ] && _ls_pid_alive "$LS_CTLD_PID"; then
    ids=$(squeue -h -o %A 2>/dev/null | sort -u | xargs || true)
    if [ -n "$ids" ]; then
      ls_say "cancelling jobs still queued/running: $ids"
      # shellcheck disable=SC2086
      scancel $ids 2>/dev/null || true
      for _ in $(seq 1 40); do [ -z "$(squeue -h 2>/dev/null)" ] && break; sleep 0.5; done
    fi
  fi
  _ls_stop_pid slurmd "$LS_SLURMD_PID"
  _ls_stop_pid slurmctld "$LS_CTLD_PID"
  # job step daemons our slurmd started (none were running before local_slurm_up)
  local p
  for p in $(pgrep -x slurmstepd || true); do
    case $LS_STEPD_BEFORE in *" $p "*) continue ;; esac
    ls_say "WARNING: leftover slurmstepd pid $p (started by our slurmd): stopping it"
    _ls_stop_pid slurmstepd "$p"
  done
  _ls_stop_pid munged "$LS_MUNGE_PID"
  if [ -n "$LS_CONF_BACKUP" ]; then
    cp -p "$LS_CONF_BACKUP" "$LS_CONF" && ls_say "restored the original $LS_CONF"
  elif [ "$LS_CONF_WRITTEN" = 1 ]; then
    rm -f "$LS_CONF" && ls_say "removed $LS_CONF"
  fi
  LS_MUNGE_PID="" LS_CTLD_PID="" LS_SLURMD_PID="" LS_CONF_WRITTEN=0 LS_CONF_BACKUP=""
}
