#!/usr/bin/env bash
#SBATCH --job-name=anderson-figures
#SBATCH --output=logs/%x_%j.out
#SBATCH --ntasks=1
#SBATCH --cpus-per-task=1
#SBATCH --time=00:30:00
#
# Figures from a results directory, as a 1-task job: `make figures RESULTS=DIR` in the checkout.
#
#   sbatch slurm/figures.sh RESULTS_DIR
#   sbatch --dependency=afterok:<sweep array job id> slurm/figures.sh RESULTS_DIR   (what submit.sh does)
#
# RESULTS_DIR is relative to the submission directory. Log: logs/anderson-figures_<jobid>.out.
# Lists the figure files (png/pdf/svg) that `make figures` wrote and fails if there are none.
# Exit status 3 (with a one-line reason) when the checkout has no `make figures` / analysis entry
# point yet; the results are untouched and the job can be resubmitted later.
#
# Variables: ANDERSON_ROOT (checkout with the Makefile; default: the submission directory),
#            PYTHON (default: $ANDERSON_ROOT/.venv/bin/python if present, else python3),
#            MAKE (default make). Account/partition/time: sbatch options as for sweep_W.sh.
set -uo pipefail

say() { echo "[figures $(date '+%Y-%m-%d %H:%M:%S')] $*"; }
die() { say "ERROR: $1" >&2; exit "${2:-1}"; }

[ $# -eq 1 ] || die "usage: sbatch slurm/figures.sh RESULTS_DIR" 2
RESULTS=$(realpath -m -- "$1")
ANDERSON_ROOT=$(realpath -m -- "${ANDERSON_ROOT:-${SLURM_SUBMIT_DIR:-$PWD}}")
MAKE=${MAKE:-make}
if [ -z "${PYTHON:-}" ]; then
  if [ -x "$ANDERSON_ROOT/.venv/bin/python" ]; then PYTHON=$ANDERSON_ROOT/.venv/bin/python; else PYTHON=python3; fi
fi
export MPLBACKEND=${MPLBACKEND:-Agg} OMP_NUM_THREADS=${SLURM_CPUS_PER_TASK:-1}
say "job=${SLURM_JOB_ID:-none} results=$RESULTS checkout=$ANDERSON_ROOT"

[ -d "$RESULTS" ] || die "results directory $RESULTS does not exist" 2
ls "$RESULTS"/*.h5 >/dev/null 2>&1 || die "no .h5 result files in $RESULTS" 2
[ -f "$ANDERSON_ROOT/Makefile" ] || die "no Makefile in $ANDERSON_ROOT (set ANDERSON_ROOT to the checkout)" 2
"$MAKE" -C "$ANDERSON_ROOT" -n figures RESULTS="$RESULTS" >/dev/null 2>&1 ||
  die "FIGURES UNAVAILABLE: the checkout has no 'make figures' target yet" 3
"$PYTHON" -c "import importlib.util as u, sys; sys.exit(u.find_spec('analysis.__main__') is None)" 2>/dev/null ||
  die "FIGURES UNAVAILABLE: the analysis package has no entry point yet ('$PYTHON -m analysis' cannot run: analysis/__main__.py missing); results are in $RESULTS, rerun this job once it lands" 3

stampf=$(mktemp "${TMPDIR:-/tmp}/figures-stamp.XXXXXX")
trap 'rm -f "$stampf"' EXIT
t0=$SECONDS
"$MAKE" -C "$ANDERSON_ROOT" --no-print-directory figures RESULTS="$RESULTS" PYTHON="$PYTHON" VPY="$PYTHON"
rc=$?
[ $rc -eq 0 ] || die "'make figures RESULTS=$RESULTS' failed with status $rc" 1
mapfile -t figs < <(find "$ANDERSON_ROOT" "$RESULTS" -path "$ANDERSON_ROOT/.venv" -prune -o -type f \
                     \( -name '*.png' -o -name '*.pdf' -o -name '*.svg' \) -newer "$stampf" -print | sort -u)
[ ${#figs[@]} -gt 0 ] || die "'make figures' succeeded but wrote no png/pdf/svg file" 1
say "${#figs[@]} figure file(s) in $((SECONDS - t0)) s:"
printf '  %s\n' "${figs[@]}"
