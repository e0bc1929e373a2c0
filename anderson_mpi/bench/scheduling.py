"""Scheduling benchmark: how busy the ranks are, from the per-block records of real runs.

A job of three runs of different sizes whose block count (3 x 13) is not a multiple of the
ranks runs under ``mpirun -n P`` (P = 2 on the real cores; 4 and 8 oversubscribed, where the
records still show the dealing). Measured utilization = sum of the blocks' compute seconds
(``/blocks/seconds``) / (P x wall time of the job, first start record to last complete record).
"Rounds" replays the same measured block times in the dealing used before the pool (runs one
after the other, one block per rank per round, each round as long as its slowest block), so
both columns come from one measurement. The cost model's prediction for the shipped jobs
follows (what ``anderson-mpi plan JOB --ranks P`` prints).
"""
from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np

from ..run.config import load_job, make_plan
from ..io.progress import progress_path, read_records
from ..run.scheduler import utilization_of_plan
from .common import mpirun, temporary_directory, write_job

__all__ = ["bench_scheduling", "measured_utilization", "predicted_table"]

JOB = {"name": "sched", "geometry": "cube", "sizes": [6, 8, 10], "W": [6.0], "samples": 50,
       "block_size": 4, "seed": 11, "cuts": [0.23, 0.5]}


def measured_utilization(out, runs, ranks):
    """Utilization of a finished job from its records: a dict of

    ``compute``: sum of block seconds / (P x the compute phase, first block started to last
    block written, from /blocks/finished - /blocks/seconds); ``job``: the same over the whole
    job's wall time (start to complete records: files, totals included); ``rounds``: the
    same block seconds replayed in the old rounds (compute phase only); ``wall`` seconds.
    """
    seconds, began, finished, starts, ends = [], [], [], [], []
    for run in runs:
        path = Path(out) / Path(run.path).name
        with h5py.File(path, "r") as f:
            s = np.asarray(f["blocks/seconds"][...])
            t = np.asarray(f["blocks/finished"][...])
        seconds.append(s)
        began.append((t - s).min())
        finished.append(t.max())
        records = read_records(progress_path(str(path)))
        starts.append(min(r["time"] for r in records if r["event"] == "start"))
        ends.append(max(r["time"] for r in records if r["event"] == "complete"))
    busy = sum(s.sum() for s in seconds)
    phase = max(finished) - min(began)
    wall = max(ends) - min(starts)
    rounds = sum(s[i:i + ranks].max() for s in seconds for i in range(0, len(s), ranks))
    return {"compute": busy / (ranks * phase), "job": busy / (ranks * wall),
            "rounds": busy / (ranks * rounds), "wall": wall}


def predicted_table(jobs_dir="jobs", ranks=(64, 128, 512)):
    rows = []
    for path in sorted(Path(jobs_dir).glob("*.toml")):
        job, _ = load_job(path)
        runs = make_plan(job, path.stem)
        by_w = {}
        for run in runs:
            by_w.setdefault(run.W, []).append(run)
        group = runs[0].petsc_group_size if runs[0].solver == "petsc" else 1
        rows.append((path.name, [(utilization_of_plan(runs, p, group),
                                  min(utilization_of_plan(rs, p, group) for rs in by_w.values()),
                                  utilization_of_plan(runs, p, group, lockstep=True)) for p in ranks]))
    return ranks, rows


def bench_scheduling(sizes=(2, 4, 8), jobs_dir="jobs"):
    print("\n== Scheduling: utilization from the per-block records (cube W = 6, N = 6, 8, 10; "
          "3 x 13 blocks) ==")
    print("pool: measured over the compute phase / over the whole job (files, totals); rounds: the")
    print("same block times replayed in the old lockstep rounds (compute phase)")
    print(f"{'ranks':>5} {'wall s':>8} {'pool compute':>13} {'pool job':>9} {'rounds':>7}")
    with temporary_directory() as tmp:
        job = write_job(tmp, JOB)
        runs = make_plan(JOB, "sched")
        for p in sizes:
            out = Path(tmp) / f"np{p}"
            mpirun(p, ["run", job, "--out", out])
            u = measured_utilization(out, runs, p)
            note = "" if p <= 2 else "  (oversubscribed: 2 cores)"
            print(f"{p:5d} {u['wall']:8.2f} {100 * u['compute']:12.1f}% {100 * u['job']:8.1f}% "
                  f"{100 * u['rounds']:6.1f}%{note}")
    if Path(jobs_dir).is_dir():
        ranks, rows = predicted_table(jobs_dir)
        print("\nCost model, shipped jobs: whole job in one pool / worst Slurm array task (one W) / "
              "the old rounds")
        print(f"{'job':>24} " + " ".join(f"{f'{p} ranks':>22}" for p in ranks))
        for name, cells in rows:
            print(f"{name:>24} " + " ".join(f"{100 * a:6.1f}/{100 * b:5.1f}/{100 * c:5.1f}%" for a, b, c in cells))
