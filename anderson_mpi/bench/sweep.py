"""Sweep benchmark: samples per second of a whole job under mpirun, from the progress records.

The job file is written by the benchmark (no path into the checkout); the rates come from the
run's structured records (`anderson_mpi.io.progress`), not from its log.
"""
from __future__ import annotations

from ..io.progress import progress_path, read_records
from .common import mpirun, temporary_directory, write_job

__all__ = ["sweep_rates", "bench_sweep"]

DEMO = {"name": "demo", "geometry": "cube", "W": [6.0], "block_size": 24, "seed": 20240601,
        "cuts": [0.23, 0.5]}


def sweep_rates(np_, sizes, samples, directory):
    """``{N: samples/s}`` of ``mpirun -n np_``, one job per size (start to complete record)."""
    rates = {}
    for N in sizes:
        job = write_job(directory, dict(DEMO, sizes=[N], samples=samples))
        out = directory / f"np{np_}"
        mpirun(np_, ["run", job, "--out", out, "--overwrite"])
        records = read_records(progress_path(str(out / f"cube_N{N}_W6.h5")))
        start = [r for r in records if r["event"] == "start"][-1]
        done = [r for r in records if r["event"] == "complete"][-1]
        rates[N] = done["samples"] / (done["time"] - start["time"])
    return rates


def bench_sweep(sizes=(6, 8, 10), samples=96):
    from pathlib import Path
    print("\n== Sweep: samples per second of the demo job (cube W = 6), 1 and 2 ranks ==")
    with temporary_directory() as tmp:
        one = sweep_rates(1, sizes, samples, Path(tmp))
        two = sweep_rates(2, sizes, samples, Path(tmp))
    print(f"{'N':>4} {'1 rank /s':>10} {'2 ranks /s':>11} {'efficiency':>11} {'samples/core-hour':>18}")
    for N in sizes:
        print(f"{N:4d} {one[N]:10.2f} {two[N]:11.2f} {two[N] / (2 * one[N]):11.2f} {3600 * two[N] / 2:18.0f}")
