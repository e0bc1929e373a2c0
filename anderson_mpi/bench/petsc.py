"""Benchmark: transfer matrix (one rank) against the distributed PETSc/MUMPS solver (issue 6).

For cubes ``N x N x N`` at ``W = 6``: seconds per sample and peak memory per rank of both
solvers, each computing the production quantity, the mode matrices of both leads
(``mode_matrices`` / ``petsc_mode_matrices``: right incomers at E+ = 0.2, left at E- = -0.2),
and the largest cube each could hold in a memory budget (20 GB), extrapolated from a power law
fitted to the measured peaks.

    mpirun -n 2 python -m anderson_mpi.bench.petsc [--sizes 8 12 16 20] [--budget-s 120]

Memory is `anderson_mpi.bench.common.PeakRSS`, the method of every benchmark: the resident-set
peak of each process during the call minus its resident set just before; it counts numpy, MPI
buffers and MUMPS's own allocations alike. MUMPS's own count of its factorization memory
(INFOG(21)) is printed next to it. Prints tables; asserts nothing.

What the numbers showed on the 2-core Debian 12 machine (PETSc 3.18.5, MUMPS 5.5.1 on Debian's
reference BLAS, numpy on OpenBLAS): the PETSc solver takes 4-5x the transfer matrix's time on
one rank and gains no time from a second rank at N <= 24; its per-rank peak memory is
dominated by the ``N^5`` solution arrays, not by the factors (~N^4), so the gathered result
(a full copy of ``phi`` on every rank) bounds the public functions, while the distributed core
(``local_surface_solve``) shrinks per rank with more ranks (N = 24: 584 MB on 1 rank, 352 MB
per rank on 4).
"""
from __future__ import annotations

import argparse
import sys
import time

import numpy as np

from ..engines.petsc import local_surface_solve, petsc_mode_matrices
from ..system import ScatteringSetup, check_hopping
from ..engines.transfer import mode_matrices
from .common import MB, PeakRSS, best_of

__all__ = ["bench_solvers", "main"]

GB = 1e9


# --- fits ------------------------------------------------------------------------------------

def power_law(sizes, values, last=3):
    """Fit ``value = c N^p`` (log-log least squares) to the ``last`` largest sizes.

    The small sizes are left out because fixed costs dominate there; the law is only meant
    for extrapolating upwards. Returns ``(c, p)`` or ``None`` with fewer than 2 points.
    """
    pairs = [(n, v) for n, v in zip(sizes, values) if v > 0][-last:]
    if len(pairs) < 2:
        return None
    n, v = np.log(np.array(pairs, dtype=float)).T
    p, log_c = np.polyfit(n, v, 1)
    return float(np.exp(log_c)), float(p)


def largest_cube(law, limit_mb):
    """Largest integer N with ``c N^p <= limit_mb`` (``None`` without a law)."""
    if law is None or law[1] <= 0:
        return None
    return int(np.floor((limit_mb / law[0]) ** (1 / law[1])))


def largest_cube_fifth_power(N_last, mb_last, limit_mb):
    """Largest N if memory grows like N^5 from the largest measured point (``N_last``).

    N^5 is the asymptotic growth of both solvers (the mode matrices are ``2 N^5`` complex
    numbers; MUMPS's factors grow more slowly, ~N^4), so where the fitted exponent is below 5
    this is the conservative estimate.
    """
    if mb_last <= 0:
        return None
    return int(np.floor(N_last * (limit_mb / mb_last) ** 0.2))


def _again_if_short(func, first, comm=None, repeats=2, short=1.0):
    """``first`` (s), improved by `best_of` ``repeats`` more calls when it was short (noisy)."""
    return min(first, best_of(func, repeats, comm)[0]) if first < short else first


def _predict(sizes, seconds, N):
    law = power_law(sizes, seconds, last=2)
    return None if law is None else law[0] * N ** law[1]


# --- the benchmark ---------------------------------------------------------------------------

def bench_solvers(sizes=(8, 12, 16, 20, 24), comm=None, W=6.0, hopping=(1.0, 0.4, 0.4),
                  budget_s=120.0, limit_gb=20.0, out=None):
    """Time and peak memory per rank of the transfer-matrix and PETSc solvers on cubes.

    Collective over ``comm``: the transfer matrix runs on rank 0 of ``comm`` while the others
    wait (it holds a whole sample on one rank by design); the PETSc solver runs on all ranks.
    A size whose predicted time (power law through the two previous sizes) exceeds
    ``budget_s`` for either solver is skipped, and so are all larger ones.

    Parameters
    ----------
    sizes : sequence of int
        Cube sizes N, increasing.
    comm : mpi4py communicator, optional
        ``None`` means ``MPI.COMM_WORLD``.
    W : float
        Disorder strength of the samples.
    hopping : (tx, ty, tz)
    budget_s : float
        Largest predicted time per sample to attempt.
    limit_gb : float
        Memory budget for the extrapolated "largest cube".
    out : file, optional
        Where rank 0 prints (default ``sys.stdout``).

    Returns
    -------
    list of dict
        One row per measured size (on every rank): seconds, MB, agreement.
    """
    from mpi4py import MPI
    from threadpoolctl import threadpool_limits

    comm = MPI.COMM_WORLD if comm is None else comm
    out = out or sys.stdout
    hopping = check_hopping(hopping)
    root = comm.rank == 0
    nproc = comm.size
    probe = PeakRSS()

    def say(*lines):
        if root:
            print(*lines, sep="\n", file=out, flush=True)

    rows = []
    with threadpool_limits(1):  # one BLAS thread per rank, as one rank per core would run
        # warm-up: imports, PETSc initialisation, first MUMPS instance
        V = np.random.default_rng(0).uniform(-W / 2, W / 2, (4, 4, 4))
        if root:
            mode_matrices(V, hopping)
        petsc_mode_matrices(V, hopping, comm=comm)

        say(f"== transfer matrix (1 rank) vs PETSc/MUMPS ({nproc} rank{'s' * (nproc > 1)}): "
            f"cube N^3, W = {W:g}, mode matrices of both leads (E+ = 0.2 R, E- = -0.2 L), "
            "1 BLAS thread per rank ==",
            f"memory: {probe.method}, peak RSS minus RSS before the call, MB",
            "  petsc     = petsc_mode_matrices (solution gathered on every rank)",
            "  petsc-dist = factor + solve only, solution left distributed (local_surface_solve)",
            "  MUMPS     = MUMPS's own count of factorization memory, max per rank (INFOG(21))",
            "time: seconds per sample (both leads), best of 3 when under 1 s, petsc = slowest rank",
            f"{'N':>4} {'sites':>7} | {'transfer s':>10} {'MB':>8} | {'petsc s':>8} "
            f"{'MB/rank':>8} {'MB sum':>8} | {'dist MB/rank':>12} {'MUMPS MB':>9} | "
            f"{'rel diff':>8}")
        done_sizes, t_transfer, t_petsc = [], [], []
        for N in sizes:
            guess = [_predict(done_sizes, t, N) for t in (t_transfer, t_petsc)]
            if any(g is not None and g > budget_s for g in guess):
                say(f"{N:4d}  skipped: predicted {max(g for g in guess if g):.0f} s per sample "
                    f"> budget {budget_s:g} s (and larger sizes too)")
                break
            V = np.random.default_rng(N).uniform(-W / 2, W / 2, (N, N, N))
            row = {"N": N}

            # transfer matrix on rank 0 of comm
            comm.Barrier()
            if root:
                with probe:
                    start = time.perf_counter()
                    reference = mode_matrices(V, hopping)
                    row["transfer_s"] = time.perf_counter() - start
                row["transfer_mb"] = probe.mb
                row["transfer_s"] = _again_if_short(lambda: mode_matrices(V, hopping), row["transfer_s"])
            comm.Barrier()

            # PETSc, public path (gathers phi everywhere); time = slowest rank
            with probe:
                start = time.perf_counter()
                modes = petsc_mode_matrices(V, hopping, comm=comm)
                elapsed = time.perf_counter() - start
            row["petsc_s"] = comm.allreduce(elapsed, op=MPI.MAX)
            row["petsc_s"] = _again_if_short(lambda: petsc_mode_matrices(V, hopping, comm=comm),
                                             row["petsc_s"], comm)
            mbs = comm.allgather(probe.mb)
            row["petsc_mb"], row["petsc_mb_sum"] = max(mbs), sum(mbs)
            if root:
                row["rel_diff"] = float(np.abs(modes.phi - reference.phi).max()
                                        / np.abs(reference.phi).max())
                del reference
            del modes

            # PETSc, distributed core only (what a memory-scalable consumer would hold)
            with probe:
                local = local_surface_solve(V, [("R", 0.2), ("L", -0.2)],
                                            ScatteringSetup.build(V.shape, hopping), comm)
            mbs = comm.allgather(probe.mb)
            row["dist_mb"], row["dist_mb_sum"] = max(mbs), sum(mbs)
            row["mumps_mb"] = max(info[1] for info in local.mumps_mb)
            del local

            row = comm.bcast(row if root else None, root=0)
            rows.append(row)
            done_sizes.append(N)
            t_transfer.append(row["transfer_s"])
            t_petsc.append(row["petsc_s"])
            say(f"{N:4d} {N ** 3:7d} | {row['transfer_s']:10.3f} {row['transfer_mb']:8.1f} | "
                f"{row['petsc_s']:8.3f} {row['petsc_mb']:8.1f} {row['petsc_mb_sum']:8.1f} | "
                f"{row['dist_mb']:12.1f} {row['mumps_mb']:9d} | {row['rel_diff']:8.1e}")

    if root and rows:
        _report_extrapolation(rows, nproc, limit_gb, out)
    return rows


def _report_extrapolation(rows, nproc, limit_gb, out):
    sizes = [r["N"] for r in rows]
    limit_mb = limit_gb * GB / MB
    lines = [f"largest cube in {limit_gb:g} GB, EXTRAPOLATED from memory ~ c N^p fitted to the "
             f"largest measured sizes ({', '.join(map(str, sizes[-3:]))}):"]
    cases = [
        ("transfer, 1 rank", [r["transfer_mb"] for r in rows], "peak of the one rank"),
        (f"petsc, {nproc} rank(s), gathered", [r["petsc_mb_sum"] for r in rows],
         "sum over the ranks (one machine)"),
        (f"petsc, {nproc} rank(s), gathered", [r["petsc_mb"] for r in rows],
         f"per rank ({limit_gb:g} GB for each rank)"),
        (f"petsc-dist, {nproc} rank(s)", [r["dist_mb_sum"] for r in rows],
         "sum over the ranks (one machine)"),
        (f"petsc-dist, {nproc} rank(s)", [r["dist_mb"] for r in rows],
         f"per rank ({limit_gb:g} GB for each rank)"),
    ]
    for name, values, what in cases:
        law = power_law(sizes, values)
        if law is None:
            lines.append(f"  {name:32s} (need two sizes for a fit)")
            continue
        conservative = largest_cube_fifth_power(sizes[-1], values[-1], limit_mb)
        lines.append(f"  {name:32s} {what:34s} MB ~ {law[0]:.3g} N^{law[1]:.2f} -> N_max ~ "
                     f"{largest_cube(law, limit_mb)}  (N^5 from N={sizes[-1]}: {conservative})")
    times = [("transfer", [r["transfer_s"] for r in rows]), ("petsc", [r["petsc_s"] for r in rows])]
    for name, values in times:
        law = power_law(sizes, values)
        if law is not None:
            lines.append(f"  time {name:10s} s ~ {law[0]:.3g} N^{law[1]:.2f}")
    print(*lines, sep="\n", file=out, flush=True)


def main(argv=None):
    """Command line: ``python -m anderson_mpi.bench_petsc [--sizes ...]`` (under mpirun)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[8, 12, 16, 20, 24])
    parser.add_argument("--W", type=float, default=6.0)
    parser.add_argument("--budget-s", type=float, default=120.0,
                        help="skip sizes predicted to take longer per sample (default 120)")
    parser.add_argument("--limit-gb", type=float, default=20.0)
    args = parser.parse_args(argv)
    bench_solvers(sorted(args.sizes), W=args.W, budget_s=args.budget_s, limit_gb=args.limit_gb)


if __name__ == "__main__":
    main()
