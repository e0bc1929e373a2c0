"""Checks for tests/slurm/run_slurm_test.sh (real CLI output, real HDF5 files; no mocks).

    check_slurm_results.py complete  PYTHON JOB [plan args]   every planned file complete, all samples
    check_slurm_results.py attempts  LOG                      requeued task: attempts, no block redone
    check_slurm_results.py totals    A.h5 B.h5 [RTOL]         /totals of A equal those of B

Exit status 0 when the check passes, 1 when it fails (the reason is printed).
"""
from __future__ import annotations

import json
import re
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


RE_ATTEMPT = re.compile(r"\] attempt (\d+): SLURM_RESTART_COUNT=(\d+)")
RE_START = re.compile(r"run (\S+): (\d+) samples in (\d+) blocks of (\d+), (\d+) done, (\d+) pending")
RE_COMPUTE = re.compile(r"run (\S+): computing blocks \[([\d, ]*)\]")
RE_PROGRESS = re.compile(r"run (\S+): blocks (\d+)/(\d+), samples")
RE_COMPLETE = re.compile(r"run (\S+): complete, (\d+) samples")
RE_USR1 = re.compile(r"USR1 \(time limit near\)")
RE_REQUEUED = re.compile(r"requeued; the next attempt resumes")
RE_TERM = re.compile(r"SIGTERM \(scancel, external requeue")


def attempts(log):
    """Split a requeued task's log into attempts and check the blocks of each run.

    A round ("computing blocks [...]") is finished when its progress line ("blocks d/n") follows:
    its blocks are then written and marked done. Checks: each attempt after the first starts with
    --resume from the blocks finished before (its "D done" >= blocks finished so far), it never
    computes a block finished in an earlier attempt, finished rounds are disjoint, and the last
    attempt completes every run. Blocks of a round cut by the interruption (in flight) were never
    written; they are recomputed once, in the next attempt.
    """
    text = open(log, errors="replace").read().splitlines()
    att = []
    for line in text:
        m = RE_ATTEMPT.search(line)
        if m:
            att.append({"n": int(m[1]), "restart": int(m[2]), "runs": {}, "pending_round": {},
                        "usr1": False, "requeued_self": False, "term": False, "resume": "--resume" in line,
                        "lines": []})
            continue
        if not att:
            continue
        a = att[-1]
        a["lines"].append(line)
        if "running:" in line:
            a["resume"] = "--resume" in line
        if RE_USR1.search(line):
            a["usr1"] = True
        if RE_REQUEUED.search(line):
            a["requeued_self"] = True
        if RE_TERM.search(line):
            a["term"] = True
        if m := RE_START.search(line):
            a["runs"][m[1]] = {"samples": int(m[2]), "n_blocks": int(m[3]), "done_at_start": int(m[5]),
                               "pending": int(m[6]), "computed": [], "finished": [], "complete": False}
        elif m := RE_COMPUTE.search(line):
            blocks = [int(b) for b in m[2].replace(",", " ").split()]
            a["runs"][m[1]]["computed"].extend(blocks)
            a["pending_round"][m[1]] = blocks
        elif m := RE_PROGRESS.search(line):
            a["runs"][m[1]]["finished"].extend(a["pending_round"].pop(m[1], []))
        elif m := RE_COMPLETE.search(line):
            a["runs"][m[1]]["complete"] = True
    if not att:
        fail(f"no 'attempt N: SLURM_RESTART_COUNT=k' line in {log}")
    print(f"  {len(att)} attempt(s) in {log}")
    problems = []
    restarts = [a["restart"] for a in att]
    if restarts != list(range(len(att))):
        problems.append(f"SLURM_RESTART_COUNT sequence {restarts}, expected 0..{len(att) - 1}")
    finished_before = {}   # label -> set of blocks finished in earlier attempts
    for a in att:
        how = ("self-requeue at USR1" if a["requeued_self"] else "SIGTERM (external requeue/scancel)"
               if a["term"] else "ran to the end")
        if not a["resume"]:
            problems.append(f"attempt {a['n']} did not run with --resume")
        for label, r in a["runs"].items():
            before = finished_before.setdefault(label, set())
            computed, finished = r["computed"], r["finished"]
            inflight = sorted(set(computed) - set(finished))
            redone = sorted(set(computed) & before)
            dup = sorted({b for b in computed if computed.count(b) > 1})
            print(f"  attempt {a['n']} (SLURM_RESTART_COUNT={a['restart']}, {how}) {label}: "
                  f"{r['done_at_start']}/{r['n_blocks']} blocks done at start, computed {len(computed)} "
                  f"{_ranges(computed)}, finished {len(finished)}"
                  + (f", in flight when stopped {inflight}" if inflight else "")
                  + (", run complete" if r["complete"] else ""))
            if a["n"] > 1 and r["done_at_start"] < len(before):
                problems.append(f"attempt {a['n']} {label}: started with {r['done_at_start']} blocks done, "
                                f"but {len(before)} were finished before (checkpoint lost)")
            if r["done_at_start"] + r["pending"] != r["n_blocks"]:
                problems.append(f"attempt {a['n']} {label}: done + pending != n_blocks")
            if redone:
                problems.append(f"attempt {a['n']} {label}: recomputed blocks finished earlier: {redone}")
            if dup:
                problems.append(f"attempt {a['n']} {label}: computed blocks twice within the attempt: {dup}")
            before.update(finished)
    last = att[-1]
    for label, r in last["runs"].items():
        if not r["complete"]:
            problems.append(f"last attempt: run {label} not complete")
        n = r["n_blocks"]
        if len(finished_before[label]) < n:
            missing = sorted(set(range(n)) - finished_before[label])
            # finished on disk but killed before the progress line: the next attempt's "done" counts it
            print(f"  note: {label}: blocks {missing} were written without a progress line (killed in between)")
    for a, b in zip(att, att[1:]):
        for label in a["runs"]:
            if label in b["runs"]:
                print(f"  resume {a['n']}->{b['n']} {label}: {b['runs'][label]['done_at_start']} blocks kept, "
                      f"{len(set(a['runs'][label]['computed']) - set(a['runs'][label]['finished']))} in-flight lost")
    summary = {"attempts": len(att), "restart_counts": restarts,
               "self_requeues": sum(a["requeued_self"] for a in att),
               "sigterm_stops": sum(a["term"] for a in att)}
    print("  summary: " + json.dumps(summary))
    if problems:
        for p in problems:
            print(f"  problem: {p}")
        fail(f"{len(problems)} problem(s) in the requeued task's log")
    if len(att) < 2:
        fail("the task was never requeued (one attempt)")
    print(f"PASS: {len(att)} attempts, each resumed from the checkpoint, no finished block computed again")


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
    funcs = {"complete": complete, "attempts": attempts, "totals": totals}
    if cmd not in funcs:
        print(__doc__)
        sys.exit(2)
    funcs[cmd](*rest)
