"""Checks for tests/slurm/run_slurm_test.sh (real HDF5 files and progress records; no log parsing).

    check_slurm_results.py complete  PYTHON JOB [plan args]   every planned file complete, all samples
    check_slurm_results.py attempts  RUN.h5                   requeued run: attempts, no block redone
    check_slurm_results.py array_task RUN.h5 I                the run was computed by array task I
    check_slurm_results.py totals    A.h5 B.h5 [RTOL]         /totals of A equal those of B

Exit status 0 when the check passes, 1 when it fails (the reason is printed).
"""
from __future__ import annotations

import json
import subprocess
import sys


def fail(msg):
    print(f"FAIL: {msg}")
    sys.exit(1)


def complete(python, job, *plan_args):
    """`plan --json` lists the runs; `info --json` of each must say complete with all samples."""
    out = subprocess.run([python, "-m", "anderson_mpi", "plan", job, *plan_args, "--json"],
                         check=True, capture_output=True, text=True).stdout
    runs = [json.loads(line) for line in out.splitlines() if line.strip()]
    if not runs:
        fail("plan --json listed no runs")
    bad = 0
    for run in runs:
        res = subprocess.run([python, "-m", "anderson_mpi", "info", run["path"], "--json"],
                             capture_output=True, text=True)
        if res.returncode != 0:
            print(f"  {run['path']}: info failed: {res.stderr.strip()}")
            bad += 1
            continue
        s = json.loads(res.stdout)
        ok = s["complete"] and s["samples_done"] == run["samples"] and s["blocks_done"] == s["n_blocks"]
        bad += not ok
        print(f"  {'ok  ' if ok else 'BAD '} {run['path']}: complete={s['complete']} "
              f"samples_done={s['samples_done']}/{run['samples']} blocks={s['blocks_done']}/{s['n_blocks']}"
              + (f" <g>={s['conductance_mean']:.4f}" if s.get("conductance_mean") is not None else ""))
    if bad:
        fail(f"{bad} of {len(runs)} result files incomplete")
    print(f"PASS: {len(runs)} result file(s) complete")


def _records(h5):
    sys.path.insert(0, str(__import__("pathlib").Path(__file__).resolve().parents[2]))
    from anderson_mpi.io.progress import progress_path, read_records
    return read_records(progress_path(h5))


def attempts(h5):
    """A requeued task's run, from its structured records (progress file and HDF5), no logs.

    Checks: the attempts are 1, 2, ... with SLURM_RESTART_COUNT 0, 1, ...; each attempt after
    the first ran with --resume and started from at least the blocks finished before (no
    checkpoint lost); no block has a "block" record in two attempts or twice in one (no
    finished block computed again); the last attempt completed the run; the HDF5 file has
    every block done, /attempts equal to the number of attempts, and each block's /blocks/attempt
    equal to the attempt of its record. Blocks in flight at an interruption have no record
    (their row was never flagged done); they are computed once, in the next attempt.
    """
    import h5py
    import numpy as np
    records = _records(h5)
    starts = [r for r in records if r["event"] == "start"]
    if not starts:
        fail(f"no start record for {h5}")
    print(f"  {len(starts)} attempt(s) of {h5}")
    problems = []
    numbers = [r["attempt"] for r in starts]
    if numbers != list(range(1, len(starts) + 1)):
        problems.append(f"attempt numbers {numbers}, expected 1..{len(starts)}")
    restarts = [int((r.get("slurm") or {}).get("restart_count") or 0) for r in starts]
    if restarts != list(range(len(starts))):
        problems.append(f"SLURM_RESTART_COUNT sequence {restarts}, expected 0..{len(starts) - 1}")
    finished_by = {}  # block -> attempt whose record says it was written
    for start in starts:
        k = start["attempt"]
        blocks = [r["block"] for r in records if r["event"] == "block" and r["attempt"] == k]
        dup = sorted({b for b in blocks if blocks.count(b) > 1})
        redone = sorted(b for b in blocks if b in finished_by)
        before = len(finished_by)
        print(f"  attempt {k} (SLURM_RESTART_COUNT={restarts[k - 1]}, --resume={start['resume_flag']}): "
              f"{start['done']}/{start['n_blocks']} blocks done at start, wrote {len(blocks)} "
              f"{_ranges(blocks)}")
        if not start["resume_flag"]:
            problems.append(f"attempt {k} did not run with --resume")
        if k > 1 and start["done"] < before:
            problems.append(f"attempt {k}: started with {start['done']} blocks done, but {before} "
                            "were finished before (checkpoint lost)")
        if start["done"] + start["pending"] != start["n_blocks"]:
            problems.append(f"attempt {k}: done + pending != n_blocks")
        if redone:
            problems.append(f"attempt {k}: recomputed blocks finished earlier: {redone}")
        if dup:
            problems.append(f"attempt {k}: wrote blocks twice: {dup}")
        finished_by.update({b: k for b in blocks})
    completes = [r for r in records if r["event"] == "complete"]
    if not completes or completes[-1]["attempt"] != len(starts):
        problems.append("the last attempt did not complete the run")
    with h5py.File(h5, "r") as f:
        done = f["blocks/done"][...]
        stored_attempt = f["blocks/attempt"][...]
        if not np.all(done == 1):
            problems.append(f"{int((done != 1).sum())} block(s) not done in {h5}")
        if int(f["attempts"][()]) != len(starts):
            problems.append(f"/attempts = {int(f['attempts'][()])}, {len(starts)} start records")
        wrong = [b for b, k in finished_by.items() if stored_attempt[b] != k]
        if wrong:
            problems.append(f"/blocks/attempt disagrees with the records for blocks {wrong}")
        unrecorded = sorted(set(range(len(done))) - set(finished_by))
        if unrecorded:  # flagged done, killed before its record: the next attempt kept it
            print(f"  note: blocks {unrecorded} were written without a record (killed in between)")
    summary = {"attempts": len(starts), "restart_counts": restarts,
               "blocks_per_attempt": [sum(1 for k in finished_by.values() if k == a)
                                      for a in range(1, len(starts) + 1)]}
    print("  summary: " + json.dumps(summary))
    if problems:
        for p in problems:
            print(f"  problem: {p}")
        fail(f"{len(problems)} problem(s) in the requeued run's records")
    if len(starts) < 2:
        fail("the task was never requeued (one attempt)")
    print(f"PASS: {len(starts)} attempts, each resumed from the checkpoint, no finished block computed again")


def array_task(h5, task):
    """The run in ``h5`` was computed by Slurm array task ``task`` (its start records say so)."""
    starts = [r for r in _records(h5) if r["event"] == "start"]
    tasks = {(r.get("slurm") or {}).get("array_task_id") for r in starts}
    if tasks != {str(task)}:
        fail(f"{h5}: computed by array task(s) {sorted(map(str, tasks))}, expected {task}")
    print(f"PASS: {h5} computed by array task {task}")


def _ranges(blocks):
    s = sorted(set(blocks))
    if not s:
        return "[]"
    out, lo, prev = [], s[0], s[0]
    for b in s[1:] + [None]:
        if b is not None and b == prev + 1:
            prev = b
            continue
        out.append(f"{lo}" if lo == prev else f"{lo}-{prev}")
        if b is not None:
            lo = prev = b
    return "[" + ",".join(out) + "]"


def totals(a, b, rtol="1e-12"):
    """Every dataset under /totals of A equals B's to rtol (relative to the dataset's largest entry)."""
    import h5py
    import numpy as np
    rtol = float(rtol)
    worst, n, identical = 0.0, 0, True
    with h5py.File(a, "r") as fa, h5py.File(b, "r") as fb:
        for f, name in ((fa, a), (fb, b)):
            if "totals" not in f:
                fail(f"{name} has no /totals")
        ka, kb = set(fa["totals"]), set(fb["totals"])
        if ka != kb:
            fail(f"/totals datasets differ: only in A {sorted(ka - kb)}, only in B {sorted(kb - ka)}")
        for key in sorted(ka):
            x, y = np.asarray(fa["totals"][key][()]), np.asarray(fb["totals"][key][()])
            if x.shape != y.shape:
                fail(f"/totals/{key}: shapes {x.shape} vs {y.shape}")
            identical &= bool(np.array_equal(x, y))
            scale = float(np.max(np.abs(y))) if y.size else 0.0
            diff = float(np.max(np.abs(x.astype(complex) - y.astype(complex)))) if y.size else 0.0
            rel = diff / scale if scale > 0 else diff
            worst = max(worst, rel)
            n += 1
            if rel > rtol:
                fail(f"/totals/{key}: relative difference {rel:.3e} > {rtol:g}")
        for f, name in ((fa, a), (fb, b)):
            if not np.all(f["blocks/done"][...] == 1):
                fail(f"{name}: not every block done")
    print(f"PASS: {n} /totals datasets agree, worst relative difference {worst:.2e} (tolerance {rtol:g})"
          f"{', bitwise identical' if identical else ''}")


if __name__ == "__main__":
    cmd, *rest = sys.argv[1:] or ["help"]
    funcs = {"complete": complete, "attempts": attempts, "array_task": array_task, "totals": totals}
    if cmd not in funcs:
        print(__doc__)
        sys.exit(2)
    funcs[cmd](*rest)
