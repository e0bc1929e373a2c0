#!/usr/bin/env bash
# Submit a job file's W sweep as a Slurm array (slurm/sweep_W.sh, one task per W) and its figures
# (slurm/figures.sh, --dependency=afterok on the whole array). Run on the login node from the
# directory where results and logs should go (usually the checkout):
#
#   slurm/submit.sh JOB.toml [run args]          e.g. slurm/submit.sh jobs/fig3_cube.toml --samples 4000
#
# Run args go to `python -m anderson_mpi run` in every task (--N, --W, --samples, --out, ...).
# The job file is validated first (`plan`): bad input stops here with status 2, nothing submitted.
# Prints both job ids; the last line is machine-readable: "jobs: <array job id> <figures job id>".
#
# Variables (all optional; empty = the #SBATCH defaults of the scripts or the cluster's defaults):
#   ACCOUNT, PARTITION, TIME (sweep tasks' time limit), NTASKS (MPI ranks per task), CPUS_PER_TASK,
#   SBATCH_ARGS (extra sbatch options for the sweep), FIGURES_SBATCH_ARGS (for the figures job),
#   ARRAY_LIMIT (max tasks running at once, the %N of --array), NO_FIGURES=1 (sweep only),
#   DRY_RUN=1 (print the sbatch commands, submit nothing), PYTHON, LAUNCHER, SRUN_MPI, APP and
#   MAX_REQUEUES (passed on to the jobs, see slurm/sweep_W.sh).
# Outputs: the job's `output` directory (or --out), relative to the current directory.
# Logs: logs/anderson-W_<arrayjobid>_<taskid>.out and logs/anderson-figures_<jobid>.out.
set -euo pipefail

die() { echo "submit: $1" >&2; exit "${2:-1}"; }
[ $# -ge 1 ] || die "usage: slurm/submit.sh JOB.toml [run args]" 2
JOB=$1; shift
[ -f "$JOB" ] || die "job file '$JOB' not found" 2

HERE=$(cd "$(dirname "$(readlink -f "${BASH_SOURCE[0]}")")" && pwd)
export ANDERSON_ROOT=${ANDERSON_ROOT:-$(dirname "$HERE")}
if [ -z "${PYTHON:-}" ]; then
  if [ -x "$ANDERSON_ROOT/.venv/bin/python" ]; then PYTHON=$ANDERSON_ROOT/.venv/bin/python; else PYTHON=python3; fi
fi
export PYTHON
APP=${APP:-"$PYTHON -m anderson_mpi"}
read -r -a APP_CMD <<< "$APP"

PLAN_ARGS=(); sel=""     # everything `plan` accepts too: --W, --N, --samples, --out
for a in "$@"; do
  case $a in
    --overwrite) die "--overwrite is refused: the sweep always resumes; delete the outputs instead" 2 ;;
    --resume) sel="" ;;
    --W|--N|--samples|--out) sel=$a; PLAN_ARGS+=("$a") ;;
    --W=*|--N=*|--samples=*|--out=*) sel=""; PLAN_ARGS+=("$a") ;;
    -*) sel="" ;;
    *) if [ -n "$sel" ]; then PLAN_ARGS+=("$a"); fi ;;
  esac
done

# Validate the job (exit 2 on bad input), count its W values (= the array size), find the output dir.
PLAN=$("${APP_CMD[@]}" plan "$JOB" "${PLAN_ARGS[@]}" --json) ||
  die "'plan $JOB ${PLAN_ARGS[*]}' rejected the job; nothing submitted" 2
WLIST=$("${APP_CMD[@]}" plan "$JOB" "${PLAN_ARGS[@]}" --field W)
NW=$(grep -c . <<< "$WLIST" || true)
[ "$NW" -ge 1 ] || die "the job has no W values" 2
OUT=$("$PYTHON" -c 'import json, os, sys; print(os.path.dirname(json.loads(sys.stdin.readline())["path"]))' <<< "$PLAN")

COMMON=()
[ -n "${ACCOUNT:-}" ]   && COMMON+=("--account=$ACCOUNT")
[ -n "${PARTITION:-}" ] && COMMON+=("--partition=$PARTITION")
SWEEP_OPTS=("${COMMON[@]}")
[ -n "${TIME:-}" ]          && SWEEP_OPTS+=("--time=$TIME")
[ -n "${NTASKS:-}" ]        && SWEEP_OPTS+=("--ntasks=$NTASKS")
[ -n "${CPUS_PER_TASK:-}" ] && SWEEP_OPTS+=("--cpus-per-task=$CPUS_PER_TASK")
read -r -a EXTRA <<< "${SBATCH_ARGS:-}"
read -r -a FEXTRA <<< "${FIGURES_SBATCH_ARGS:-}"
ARRAY="0-$((NW - 1))${ARRAY_LIMIT:+%$ARRAY_LIMIT}"

SWEEP=(sbatch --parsable --array="$ARRAY" "${SWEEP_OPTS[@]}" "${EXTRA[@]}" "$HERE/sweep_W.sh" "$JOB" "$@")
if [ "${DRY_RUN:-0}" = 1 ]; then
  echo "W values: $(echo $WLIST)  -> array $ARRAY; results in $OUT"
  echo "${SWEEP[*]}"
  [ "${NO_FIGURES:-0}" = 1 ] || echo "sbatch --parsable --dependency=afterok:<array job id> ${COMMON[*]} ${FEXTRA[*]} $HERE/figures.sh $OUT"
  exit 0
fi
mkdir -p logs
ARRAY_ID=$("${SWEEP[@]}")
ARRAY_ID=${ARRAY_ID%%;*}
echo "sweep   : job $ARRAY_ID, array $ARRAY over W = $(echo $WLIST); results in $OUT; logs/anderson-W_${ARRAY_ID}_<task>.out"
FIG_ID=none
if [ "${NO_FIGURES:-0}" != 1 ]; then
  FIG_ID=$(sbatch --parsable --dependency="afterok:$ARRAY_ID" "${COMMON[@]}" "${FEXTRA[@]}" "$HERE/figures.sh" "$OUT")
  FIG_ID=${FIG_ID%%;*}
  echo "figures : job $FIG_ID, after the whole array succeeds (afterok:$ARRAY_ID); logs/anderson-figures_${FIG_ID}.out"
fi
echo "jobs: $ARRAY_ID $FIG_ID"
