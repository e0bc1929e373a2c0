#!/usr/bin/env bash
#SBATCH --job-name=anderson-W
#SBATCH --output=logs/%x_%A_%a.out
#SBATCH --open-mode=append
#SBATCH --ntasks=4
#SBATCH --cpus-per-task=1
#SBATCH --time=04:00:00
#SBATCH --requeue
#SBATCH --signal=B:USR1@120
#
# One Slurm array task per disorder strength W of a job file; requeue-safe.
#
#   slurm/submit.sh JOB.toml [run args]                  # recommended: sizes the array, chains the figures
#   sbatch --array=0-$(( $(python -m anderson_mpi plan JOB.toml --field W | wc -l) - 1 )) \
#          slurm/sweep_W.sh JOB.toml [run args]           # the same by hand (mkdir -p logs first)
#
# Run args are passed to `python -m anderson_mpi run` (e.g. --N 6 8 --samples 400 --out DIR);
# --W/--N restrict the sweep (pass the same ones to `plan` when sizing the array by hand).
#
# Work split: array task i takes line i+1 of `python -m anderson_mpi plan JOB --field W` and runs
# every size of the job at that W, one after the other, with all the task's MPI ranks (seed blocks
# are dealt over the ranks). Each (geometry, size, W) is one HDF5 file in the job's `output`
# directory (or --out), relative to the submission directory. Without --array (a plain `sbatch
# slurm/sweep_W.sh JOB`), the single job runs all W values one after the other.
#
# Checkpoint / requeue: the run is ALWAYS started with --resume, so an attempt continues from the
# seed blocks already in the HDF5 files (a fresh output directory just starts from zero).
# --signal=B:USR1@120 asks Slurm to signal this script 120 s before the time limit: the script then
# sends SIGTERM to the run (at most the blocks in flight are lost) and requeues its own task with
# `scontrol requeue`; the next attempt resumes. When Slurm requeues the task itself (preemption with
# PreemptMode=REQUEUE, node failure, an admin's `scontrol requeue`: --requeue allows it), the script
# gets SIGTERM, stops the run and the next attempt resumes the same way; scancel also sends SIGTERM
# (no requeue then). At most MAX_REQUEUES self-requeues (default 20), so a task that cannot finish a block
# within the time limit does not loop forever. Each attempt prints an "attempt" line with
# SLURM_RESTART_COUNT; logs are appended (--open-mode=append), one file per task:
# logs/<job-name>_<arrayjobid>_<taskid>.out in the submission directory.
#
# Resources: the #SBATCH lines above are defaults; override on the command line
#   sbatch --account=ACC --partition=PART --time=1-00:00:00 --ntasks=64 --cpus-per-task=1 ...
# or in the environment read by sbatch (SBATCH_ACCOUNT, SBATCH_PARTITION, SBATCH_TIMELIMIT), or via
# slurm/submit.sh's variables ACCOUNT, PARTITION, TIME, NTASKS, CPUS_PER_TASK, SBATCH_ARGS.
# When changing --time on a short queue, keep the USR1 lead time (--signal=B:USR1@SECONDS) below it.
#
# Variables read by this script (export them before sbatch; sbatch passes the environment on):
#   LAUNCHER     srun (default: srun --mpi=$SRUN_MPI, one rank per Slurm task) | mpirun (Open MPI's
#                mpirun inside the allocation) | any other launcher command, used verbatim
#   SRUN_MPI     MPI plugin for srun (default pmix; Debian's Open MPI needs pmix, not pmi2)
#   PYTHON       interpreter with anderson_mpi installed (default: $ANDERSON_ROOT/.venv/bin/python
#                if it exists, else python3 from PATH, e.g. after `module load` + your venv)
#   ANDERSON_ROOT  project checkout (default: the submission directory; submit.sh sets it)
#   APP          the suite's command (default: "$PYTHON -m anderson_mpi")
#   MAX_REQUEUES limit on self-requeues at the time limit (default 20)
#   STOP_GRACE   seconds the run gets after SIGTERM before SIGKILL (default 60; keep it < the USR1 lead)
# Threads: OMP/OPENBLAS/MKL_NUM_THREADS and ANDERSON_MPI_BLAS_THREADS are set to --cpus-per-task
# (default 1: one BLAS thread per rank).
set -uo pipefail

stamp() { date '+%Y-%m-%d %H:%M:%S'; }
say() { echo "[sweep_W $(stamp)] $*"; }
die() { say "ERROR: $1" >&2; exit "${2:-1}"; }

[ $# -ge 1 ] || die "usage: sbatch --array=0-<nW-1> slurm/sweep_W.sh JOB.toml [run args]" 2
JOB=$1; shift
RUN_ARGS=()
PLAN_ARGS=()       # the --W/--N restrictions, also given to `plan` so the array index maps right
sel=""
for a in "$@"; do
  case $a in
    --overwrite) die "--overwrite is refused here: a requeued task would wipe its own checkpoint; delete the outputs instead" 2 ;;
    --resume) continue ;;                     # always added below
    --W|--N) sel=$a; PLAN_ARGS+=("$a") ;;
    --W=*|--N=*) sel=""; PLAN_ARGS+=("$a") ;;
    -*) sel="" ;;
    *) if [ -n "$sel" ]; then PLAN_ARGS+=("$a"); fi ;;
  esac
  RUN_ARGS+=("$a")
done

ANDERSON_ROOT=${ANDERSON_ROOT:-${SLURM_SUBMIT_DIR:-$PWD}}
if [ -z "${PYTHON:-}" ]; then
  if [ -x "$ANDERSON_ROOT/.venv/bin/python" ]; then PYTHON=$ANDERSON_ROOT/.venv/bin/python; else PYTHON=python3; fi
fi
APP=${APP:-"$PYTHON -m anderson_mpi"}
read -r -a APP_CMD <<< "$APP"
LAUNCHER=${LAUNCHER:-srun}
SRUN_MPI=${SRUN_MPI:-pmix}
MAX_REQUEUES=${MAX_REQUEUES:-20}
STOP_GRACE=${STOP_GRACE:-60}
NT=${SLURM_NTASKS:-1}
CPT=${SLURM_CPUS_PER_TASK:-1}
export OMP_NUM_THREADS=$CPT OPENBLAS_NUM_THREADS=$CPT MKL_NUM_THREADS=$CPT ANDERSON_MPI_BLAS_THREADS=$CPT
export PYTHONUNBUFFERED=1      # rank 0's progress lines reach the log before a kill

case $LAUNCHER in
  srun)   LAUNCH=(srun "--mpi=$SRUN_MPI" --ntasks="$NT" --cpus-per-task="$CPT" --kill-on-bad-exit=1) ;;
  mpirun) LAUNCH=(mpirun -n "$NT") ;;
  *)      read -r -a LAUNCH <<< "$LAUNCHER" ;;
esac

RESTARTS=${SLURM_RESTART_COUNT:-0}
say "attempt $((RESTARTS + 1)): SLURM_RESTART_COUNT=$RESTARTS job=${SLURM_JOB_ID:-none}" \
    "array=${SLURM_ARRAY_JOB_ID:-none}_${SLURM_ARRAY_TASK_ID:-none} host=$(hostname) ntasks=$NT cpus-per-task=$CPT"
[ -f "$JOB" ] || die "job file '$JOB' not found (relative to $PWD)" 2

# Which W: line SLURM_ARRAY_TASK_ID+1 of `plan --field W` (all of them outside an array).
WLIST=$("${APP_CMD[@]}" plan "$JOB" "${PLAN_ARGS[@]}" --field W) || die "'plan $JOB --field W' failed" 2
W=""
if [ -n "${SLURM_ARRAY_TASK_ID:-}" ]; then
  W=$(sed -n "$((SLURM_ARRAY_TASK_ID + 1))p" <<< "$WLIST")
  [ -n "$W" ] || die "array index $SLURM_ARRAY_TASK_ID but the job has only $(grep -c . <<< "$WLIST") W values" 2
fi
if [ "${W:-}" = None ]; then
  # a stochastic model (qssep, dephasing) has no W: one task runs every run of the job
  [ "${SLURM_ARRAY_TASK_ID:-0}" = 0 ] || die "the job has no W values: submit it without --array" 2
  W_ARGS=()
  say "the job has no W (a model without disorder strength): all its runs in this task"
elif [ -n "${SLURM_ARRAY_TASK_ID:-}" ]; then
  # the printed W must be exactly one of the job's W values (a rounded one would change the physics)
  "${APP_CMD[@]}" plan "$JOB" "${PLAN_ARGS[@]}" --json |
    "$PYTHON" -c 'import json, sys; w = float(sys.argv[1]); ws = {json.loads(l)["W"] for l in sys.stdin if l.strip()}
sys.exit(w not in ws)' "$W" ||
    die "plan --field W printed W=$W, which is not exactly a W of the job (rounded?): not running" 2
  W_ARGS=(--W "$W")
  say "task ${SLURM_ARRAY_TASK_ID} -> W=$W (all sizes of the job at this W)"
else
  W_ARGS=()
  say "not an array job: running all W values ($(echo $WLIST)) in this job"
fi

CMD=("${LAUNCH[@]}" "${APP_CMD[@]}" run "$JOB" "${RUN_ARGS[@]}" "${W_ARGS[@]}" --resume)
say "running: ${CMD[*]}"

CHILD=""
REQUEUE_ASKED=0
stop_child() {   # SIGTERM to the ranks, wait up to STOP_GRACE s for the launcher to end, then SIGKILL
  [ -n "$CHILD" ] && kill -0 "$CHILD" 2>/dev/null || return 0
  if [ "$LAUNCHER" = srun ] && [ -n "${SLURM_JOB_ID:-}" ]; then
    scancel --signal=TERM "$SLURM_JOB_ID" 2>/dev/null || kill -TERM "$CHILD" 2>/dev/null  # the steps, not this script
  else
    kill -TERM "$CHILD" 2>/dev/null    # mpirun forwards SIGTERM to its ranks
  fi
  local t
  for t in $(seq 1 "$STOP_GRACE"); do kill -0 "$CHILD" 2>/dev/null || break; sleep 1; done
  kill -0 "$CHILD" 2>/dev/null && { say "run still alive after ${STOP_GRACE} s: SIGKILL"; kill -KILL "$CHILD" 2>/dev/null; }
  wait "$CHILD" 2>/dev/null
  say "run stopped"
}
on_usr1() {
  REQUEUE_ASKED=1
  say "USR1 (time limit near): stopping the run and requeueing task ${SLURM_JOB_ID:-?}"
  stop_child
  if [ "$RESTARTS" -ge "$MAX_REQUEUES" ]; then
    die "already requeued $RESTARTS times (MAX_REQUEUES=$MAX_REQUEUES): not requeueing again" 1
  fi
  if scontrol requeue "${SLURM_JOB_ID:?}"; then
    say "requeued; the next attempt resumes from the HDF5 checkpoint"
    sleep 300 &   # Slurm ends this attempt now; wait for it without holding the trap
    wait $!
    exit 0
  fi
  die "scontrol requeue failed: resubmit with the same arguments to resume" 1
}
on_term() {
  [ "$REQUEUE_ASKED" = 1 ] && exit 0
  say "SIGTERM (scancel, external requeue or preemption): stopping the run"
  stop_child
  exit 143
}
trap on_usr1 USR1
trap on_term TERM INT

# The run in the background + wait, so that the traps fire at once rather than after it ends.
"${CMD[@]}" &
CHILD=$!
wait "$CHILD"
rc=$?
while [ $rc -gt 128 ] && kill -0 "$CHILD" 2>/dev/null; do   # wait interrupted by a trap
  wait "$CHILD"; rc=$?
done
say "run finished with status $rc (attempt $((RESTARTS + 1)))"
exit $rc
