#!/usr/bin/env bash
# `make test-slurm`: the Slurm job suite on a real single-node Slurm on localhost.
#
#  1. installs munge + slurm-wlm if missing (apt, needs root), starts munged, slurmctld, slurmd
#     (tests/slurm/local_slurm.sh; /etc/slurm/slurm.conf for localhost with CPUs=4), and stops
#     them by PID on exit, also on failure or Ctrl-C;
#  2. submits jobs/demo.toml through slurm/submit.sh (array over W + figures job chained with
#     afterok), waits, checks every HDF5 result with `anderson_mpi info --json` (complete, all
#     samples) and the figures job (figure files listed and present);
#     then an array over two W values given on the command line (--W 4 8): task i runs W_i;
#  3. requeue: submits a longer run (DEMO N=10, REQUEUE_SAMPLES samples) into a fresh directory,
#     requeues the task part-way with `scontrol requeue` (external: SIGTERM, attempt 2 resumes),
#     then part-way through attempt 2 sends the batch script USR1 (what --signal=B:USR1@120 does
#     at the time limit: the script stops the run and requeues itself; attempt 3 resumes);
#     checks from the run's progress records and HDF5 block records (no log parsing) that every
#     attempt resumed with --resume and no finished block was computed again, and that /totals
#     equal those of the same run made without Slurm
#     (mpirun, uninterrupted, run meanwhile) to 1e-12 relative;
#  4. prints a summary (times, attempts, requeues) and leaves no daemon running.
#
# Variables: NTASKS (ranks per Slurm task, default 2), DEMO_ARGS (extra run args for the demo,
# default none: the full demo, ~2 min on 2 cores), REQUEUE_N (10), REQUEUE_SAMPLES (480),
# KEEP=1 (keep the work directory /tmp/anderson-slurm-test.* also on success; it is always kept on
# failure), PYTHON (default .venv/bin/python).
set -euo pipefail

ROOT=$(cd "$(dirname "$(readlink -f "${BASH_SOURCE[0]}")")/../.." && pwd)
cd "$ROOT"
PYTHON=${PYTHON:-$ROOT/.venv/bin/python}
PYTHON=$(realpath -ms "$PYTHON")   # absolute, symlinks kept (a venv's python is one)
export PYTHON ANDERSON_ROOT=$ROOT
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMPI_MCA_rmaps_base_oversubscribe=1
export OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 MKL_NUM_THREADS=1
NTASKS=${NTASKS:-2}
read -r -a DEMO_ARGS <<< "${DEMO_ARGS:-}"
REQUEUE_N=${REQUEUE_N:-10}
REQUEUE_SAMPLES=${REQUEUE_SAMPLES:-480}
JOB=$ROOT/jobs/demo.toml
CHECK=("$PYTHON" "$ROOT/tests/slurm/check_slurm_results.py")

T0=$SECONDS
WORK=$(mktemp -d /tmp/anderson-slurm-test.XXXXXX)
SUMMARY=()
FAILURES=()
REF_PID=""
note() { SUMMARY+=("$(printf '%-38s %s' "$1" "$2")"); }
say() { echo "[test-slurm $(date +%T) +$((SECONDS - T0))s] $*"; }
failed() { FAILURES+=("$*"); say "FAILED: $*"; }

# shellcheck source=tests/slurm/local_slurm.sh
source "$ROOT/tests/slurm/local_slurm.sh"

finish() {
  local rc=$?
  set +e
  trap - EXIT INT TERM
  if [ -n "$REF_PID" ] && kill -0 "$REF_PID" 2>/dev/null; then
    say "stopping the reference mpirun (pid $REF_PID)"; kill -TERM "$REF_PID"; wait "$REF_PID" 2>/dev/null
  fi
  local td=$SECONDS
  local_slurm_down
  note "daemons stopped" "$((SECONDS - td)) s"
  local left
  left=$( (pgrep -x slurmctld; pgrep -x slurmd; pgrep -x slurmstepd) | xargs)
  [ -n "$left" ] && { failed "Slurm processes still running after teardown: $left"; rc=1; }
  [ ${#FAILURES[@]} -gt 0 ] && [ "$rc" = 0 ] && rc=1
  echo
  echo "================ test-slurm summary ================"
  printf '%s\n' "${SUMMARY[@]}"
  note_total="$((SECONDS - T0)) s"
  printf '%-38s %s\n' "total" "$note_total"
  if [ ${#FAILURES[@]} -gt 0 ] || [ "$rc" != 0 ]; then
    printf '%-38s %s\n' "work directory (logs, results)" "$WORK (kept; daemon logs in state/log)"
    printf 'FAILED: %s\n' "${FAILURES[@]:-exit status $rc}"
  elif [ "${KEEP:-0}" = 1 ]; then
    printf '%-38s %s\n' "work directory (logs, results)" "$WORK (kept: KEEP=1)"
    echo "PASSED"
  else
    rm -rf "$WORK"
    printf '%-38s %s\n' "work directory (logs, results)" "$WORK (removed; KEEP=1 keeps it)"
    echo "PASSED"
  fi
  exit "$rc"
}
trap finish EXIT
trap 'say "interrupted"; exit 130' INT TERM

# ---- helpers --------------------------------------------------------------------------------
job_field() {   # JOBSPEC FIELD: FIELD=value of every record of `scontrol -o show job`
  scontrol -o show job "$1" 2>/dev/null | grep -o "\b$2=[^ ]*" | cut -d= -f2-
}
job_done() {    # JOBSPEC: true when every record is in a final state
  local s any=0
  for s in $(job_field "$1" JobState); do
    any=1
    case $s in COMPLETED|FAILED|CANCELLED|TIMEOUT|NODE_FAIL|OUT_OF_MEMORY|DEADLINE|BOOT_FAIL|PREEMPTED) ;;
      *) return 1 ;; esac
  done
  [ $any = 1 ]
}
wait_job() {    # JOBSPEC TIMEOUT_S
  local t=$SECONDS
  while ! job_done "$1"; do
    if [ $((SECONDS - t)) -ge "$2" ]; then
      say "timeout after $2 s waiting for job $1:"; squeue; scontrol show job "$1"; return 1
    fi
    sleep 2
  done
}
starts_of() {   # FILE.h5: how many attempts have started (start records of its progress file)
  "$PYTHON" -c "import sys; from anderson_mpi.io.progress import progress_path, read_records
try: print(len(read_records(progress_path(sys.argv[1]), 'start')))
except FileNotFoundError: print(0)" "$1"
}
info_field() {  # FILE KEY: a field of `info --json` (empty while unreadable)
  HDF5_USE_FILE_LOCKING=FALSE "$PYTHON" -m anderson_mpi info "$1" --json 2>/dev/null |
    "$PYTHON" -c "import json, sys; print(json.load(sys.stdin)['$2'])" 2>/dev/null || true
}
submit() {      # VAR=... submit.sh args; sets SUB_ARRAY SUB_FIG
  local out
  out=$("$ROOT/slurm/submit.sh" "$@") || { echo "$out"; return 1; }
  echo "$out" | sed 's/^/    /'
  read -r _ SUB_ARRAY SUB_FIG < <(grep '^jobs:' <<< "$out")
}

# ---- 1. Slurm on localhost ------------------------------------------------------------------
say "work directory $WORK; checkout $ROOT; python $PYTHON"
[ -f "$JOB" ] || { failed "$JOB missing"; exit 1; }
"$PYTHON" -c "import anderson_mpi.cli" || { failed "anderson_mpi.cli not importable with $PYTHON (make install)"; exit 1; }
t=$SECONDS
local_slurm_install || { failed "could not install slurm-wlm/munge (root and apt needed)"; exit 1; }
note "install slurm-wlm/munge" "$((SECONDS - t)) s"
t=$SECONDS
local_slurm_up "$WORK/state" || { failed "could not start munged/slurmctld/slurmd (see above, $WORK/state/log)"; exit 1; }
note "daemons up" "$((SECONDS - t)) s ($(sbatch --version), CPUs=$LS_CPUS declared, $(nproc --all) real)"
cd "$WORK"    # logs/ and results go here, not into the checkout

# ---- 2. the demo job through slurm/submit.sh ------------------------------------------------
say "demo: NTASKS=$NTASKS slurm/submit.sh jobs/demo.toml ${DEMO_ARGS[*]} --out $WORK/demo"
t=$SECONDS
NTASKS=$NTASKS TIME=00:30:00 submit "$JOB" "${DEMO_ARGS[@]}" --out "$WORK/demo" || { failed "submit.sh (demo)"; exit 1; }
DEMO_ARRAY=$SUB_ARRAY DEMO_FIG=$SUB_FIG
wait_job "$DEMO_ARRAY" 900 || failed "demo array $DEMO_ARRAY did not finish in 15 min"
t_demo=$((SECONDS - t))
states=$(job_field "$DEMO_ARRAY" JobState | xargs); codes=$(job_field "$DEMO_ARRAY" ExitCode | xargs)
say "demo array $DEMO_ARRAY: $states (exit $codes) in $t_demo s"
for f in logs/anderson-W_"${DEMO_ARRAY}"_*.out; do echo "---- $f"; cat "$f"; done
if [ -n "$states" ] && ! tr ' ' '\n' <<< "$states" | grep -qv '^COMPLETED$'; then
  note "demo sweep (array $DEMO_ARRAY)" "COMPLETED in $t_demo s ($(job_field "$DEMO_ARRAY" ArrayTaskId | wc -l) task(s), $NTASKS ranks)"
else
  failed "demo array $DEMO_ARRAY: states $states, exit codes $codes"
fi
say "checking the demo results (anderson_mpi info --json)"
if "${CHECK[@]}" complete "$PYTHON" "$JOB" "${DEMO_ARGS[@]}" --out "$WORK/demo"; then
  note "demo results" "complete (info --json: complete, samples_done = samples)"
else
  failed "demo results incomplete"
fi

t=$SECONDS
wait_job "$DEMO_FIG" 600 || failed "figures job $DEMO_FIG did not finish"
fstate=$(job_field "$DEMO_FIG" JobState); fcode=$(job_field "$DEMO_FIG" ExitCode)
flog=logs/anderson-figures_${DEMO_FIG}.out
say "figures job $DEMO_FIG: $fstate (exit $fcode)"
[ -f "$flog" ] && { echo "---- $flog"; cat "$flog"; }
if [ "$fstate" = COMPLETED ]; then
  mapfile -t figs < <(find "$WORK/demo/figures" -name '*.png' -newer "$WORK/demo" 2>/dev/null | sort)
  [ -s "$WORK/demo/summary.json" ] || failed "figures job wrote no $WORK/demo/summary.json"
  missing=0; for f in "${figs[@]}"; do [ -s "$f" ] || { missing=$((missing + 1)); say "missing figure $f"; }; done
  if [ ${#figs[@]} -gt 0 ] && [ $missing = 0 ]; then
    note "figures (job $DEMO_FIG, afterok)" "COMPLETED: ${#figs[@]} file(s) exist, e.g. ${figs[0]}"
  else
    failed "figures job: ${#figs[@]} PNG file(s) in $WORK/demo/figures, $missing empty"
  fi
else
  failed "figures job $DEMO_FIG: $fstate, exit $fcode (see $WORK/$flog)"
fi

# ---- 2b. an array of several W (task index -> W), W values given on the command line ---------
WS=(4.0 8.0)  # as `plan --field W` prints them (exact repr)
WARGS=(--W "${WS[@]}" --N 6 --samples 48)
say "W array: NO_FIGURES=1 slurm/submit.sh jobs/demo.toml ${WARGS[*]} --out $WORK/wsweep"
t=$SECONDS
NO_FIGURES=1 NTASKS=$NTASKS TIME=00:10:00 submit "$JOB" "${WARGS[@]}" --out "$WORK/wsweep" || { failed "submit.sh (W array)"; exit 1; }
WA=$SUB_ARRAY
wait_job "$WA" 300 || failed "W array $WA did not finish in 5 min"
states=$(job_field "$WA" JobState | xargs)
wok=1
[ "$(wc -w <<< "$states")" = ${#WS[@]} ] && ! tr ' ' '\n' <<< "$states" | grep -qv '^COMPLETED$' || { wok=0; failed "W array $WA: states '$states'"; }
for i in "${!WS[@]}"; do
  f=$("$PYTHON" -m anderson_mpi plan "$JOB" --W "${WS[$i]}" --N 6 --samples 48 --out "$WORK/wsweep" --json |
      "$PYTHON" -c "import json, sys; print(json.loads(sys.stdin.readline())['path'])")
  "${CHECK[@]}" array_task "$f" "$i" || { wok=0; failed "W array task $i did not compute W=${WS[$i]} ($f)"; }
done
"${CHECK[@]}" complete "$PYTHON" "$JOB" "${WARGS[@]}" --out "$WORK/wsweep" || { wok=0; failed "W array results incomplete"; }
[ $wok = 1 ] && note "W array (job $WA)" "${#WS[@]} tasks COMPLETED in $((SECONDS - t)) s, task i -> W=${WS[*]}, files complete"

# ---- 3. requeue part-way, resume, compare with an uninterrupted run -------------------------
RQ_ARGS=(--N "$REQUEUE_N" --samples "$REQUEUE_SAMPLES")
say "requeue test: reference run without Slurm (mpirun -n $NTASKS, in the background)"
t_ref0=$SECONDS
mpirun -n "$NTASKS" "$PYTHON" -m anderson_mpi run "$JOB" "${RQ_ARGS[@]}" --out "$WORK/reference" \
  > "$WORK/reference.log" 2>&1 &
REF_PID=$!
say "requeue test: NO_FIGURES=1 slurm/submit.sh jobs/demo.toml ${RQ_ARGS[*]} --out $WORK/requeue"
t=$SECONDS
NO_FIGURES=1 NTASKS=$NTASKS TIME=00:30:00 submit "$JOB" "${RQ_ARGS[@]}" --out "$WORK/requeue" || { failed "submit.sh (requeue)"; exit 1; }
RQ=${SUB_ARRAY}_0
RQLOG=logs/anderson-W_${SUB_ARRAY}_0.out
H5=$("$PYTHON" -m anderson_mpi plan "$JOB" "${RQ_ARGS[@]}" --out "$WORK/requeue" --json |
     "$PYTHON" -c "import json, sys; print(json.loads(sys.stdin.readline())['path'])")
NB=$("$PYTHON" -m anderson_mpi plan "$JOB" "${RQ_ARGS[@]}" --out "$WORK/requeue" --json |
     "$PYTHON" -c "import json, sys; r = json.loads(sys.stdin.readline()); print(-(-r['samples'] // r['block_size']))")

wait_blocks() {   # MIN_DONE TIMEOUT: wait until MIN_DONE <= blocks_done < NB; prints blocks_done
  local d t=$SECONDS
  while :; do
    d=$(info_field "$H5" blocks_done)
    if [ -n "$d" ] && [ "$d" -ge "$1" ]; then
      [ "$d" -lt "$NB" ] || { say "run finished ($d/$NB blocks) before it could be interrupted: raise REQUEUE_SAMPLES" >&2; return 1; }
      echo "$d"; return 0
    fi
    job_done "$RQ" && { say "task ended before $1 blocks were done" >&2; return 1; }
    [ $((SECONDS - t)) -lt "$2" ] || { say "timeout waiting for $1 blocks" >&2; return 1; }
    sleep 0.5
  done
}
rq_ok=1
if d1=$(wait_blocks 1 300); then
  say "attempt 1 has $d1/$NB blocks on disk: scontrol requeue $RQ"
  t_rq1=$SECONDS
  scontrol requeue "$RQ"
  note "requeue 1 (scontrol requeue)" "at $d1/$NB blocks, $((t_rq1 - t)) s after submission"
else
  rq_ok=0; failed "requeue test: no partial progress to interrupt"
fi
if [ $rq_ok = 1 ]; then
  tw=$SECONDS
  until [ "$(starts_of "$H5")" -ge 2 ]; do
    [ $((SECONDS - tw)) -lt 300 ] || { rq_ok=0; failed "attempt 2 did not start within 300 s"; break; }
    sleep 1
  done
  [ $rq_ok = 1 ] && say "attempt 2 started $((SECONDS - t_rq1)) s after the requeue"
fi
if [ $rq_ok = 1 ] && d2=$(wait_blocks $((d1 + 2)) 300); then
  say "attempt 2 has $d2/$NB blocks on disk: USR1 to the batch script (as --signal=B:USR1@120 at the time limit)"
  t_rq2=$SECONDS
  scancel --batch --signal=USR1 "$RQ"
  note "requeue 2 (USR1 -> self-requeue)" "at $d2/$NB blocks"
elif [ $rq_ok = 1 ]; then
  rq_ok=0; failed "requeue test: attempt 2 made no progress to interrupt"
fi
wait_job "$RQ" 900 || failed "requeued task $RQ did not finish"
t_rq=$((SECONDS - t))
rq_state=$(job_field "$RQ" JobState); rq_restarts=$(job_field "$RQ" Restarts); rq_exit=$(job_field "$RQ" ExitCode)
say "requeued task $RQ: $rq_state, Restarts=$rq_restarts, exit $rq_exit, $t_rq s from submission"
echo "---- $RQLOG"; cat "$RQLOG"
[ "$rq_state" = COMPLETED ] || failed "requeued task $RQ ended $rq_state (exit $rq_exit)"
note "requeued task $RQ" "$rq_state after Restarts=$rq_restarts, $t_rq s (N=$REQUEUE_N, $REQUEUE_SAMPLES samples, $NB blocks)"
say "checking the attempts of $H5 (progress records + HDF5)"
if "${CHECK[@]}" attempts "$H5"; then
  note "(a)+(b) requeued and resumed" "$("$PYTHON" -c "import h5py; print(int(h5py.File('$H5', 'r')['attempts'][()]))") attempts, no finished block computed again"
else
  failed "requeue check of $H5 (records)"
fi
say "waiting for the reference run (pid $REF_PID)"
if wait "$REF_PID"; then
  REF_PID=""
  note "reference run (mpirun, no Slurm)" "$((SECONDS - t_ref0)) s (ran alongside)"
  if "${CHECK[@]}" complete "$PYTHON" "$JOB" "${RQ_ARGS[@]}" --out "$WORK/requeue" &&
     "${CHECK[@]}" totals "$H5" "$WORK/reference/$(basename "$H5")" 1e-12; then
    note "(c) totals resumed == uninterrupted" "$("${CHECK[@]}" totals "$H5" "$WORK/reference/$(basename "$H5")" 1e-12 | tail -1 | cut -c7-)"
  else
    failed "requeued run's totals differ from the uninterrupted run's"
  fi
else
  REF_PID=""
  failed "reference mpirun failed: $(tail -3 "$WORK/reference.log")"
fi
say "done in $((SECONDS - T0)) s"
