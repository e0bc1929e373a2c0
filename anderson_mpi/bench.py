"""Benchmarks (``make bench``): speed against the LAPACK floor, memory, parallel efficiency.

Prints tables; asserts nothing. One BLAS thread throughout (as one rank per core would run).

    python -m anderson_mpi.bench [--sizes 8 12 16 20] [--skip-sweep] [--skip-petsc]
"""
from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path

import numpy as np
from scipy.linalg import lapack
from threadpoolctl import threadpool_info, threadpool_limits

from .gneq import mode_matrices
from .moments import make_layout, sample_observables
from .transfer import _lapack_workspace

ROOT = Path(__file__).resolve().parents[1]


def _best(func, repeats):
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        func()
        times.append(time.perf_counter() - start)
    return min(times), float(np.median(times))


def lapack_floor(n_slices, n_perp, repeats=3, rng=None):
    """Seconds of the work the recursion cannot avoid, per lead: n_slices inversions
    (zgetrf + zgetri) and n_slices products of n_perp x n_perp complex matrices."""
    rng = rng or np.random.default_rng(0)
    a = rng.standard_normal((n_perp, n_perp)) + 1j * rng.standard_normal((n_perp, n_perp))
    a = a + a.T + 4 * np.sqrt(n_perp) * np.eye(n_perp)
    b = np.asfortranarray(a.copy())
    work = np.empty_like(b)
    out = np.empty((n_perp, n_perp), dtype=complex)
    lwork = _lapack_workspace(n_perp)

    def one_lead():
        for _ in range(n_slices):
            work[...] = b
            lu, piv, _ = lapack.zgetrf(work, overwrite_a=1)
            lapack.zgetri(lu, piv, lwork=lwork, overwrite_lu=1)
            np.matmul(a, b, out=out)

    best, _ = _best(one_lead, repeats)
    return best


def bench_engine(sizes, W=6.0, samples=3):
    print("\n== Engine: renormalized transfer matrix, cube, W = %g, both leads, 1 BLAS thread ==" % W)
    print(f"{'N':>4} {'N_perp':>7} {'s/sample':>10} {'floor s':>10} {'ratio':>7} {'peak MB':>9} {'GFLOP/s':>8}")
    rng = np.random.default_rng(1)
    times = []
    for N in sizes:
        V = rng.uniform(-W / 2, W / 2, (N, N, N))
        mode_matrices(V)  # warm up
        best, _ = _best(lambda: mode_matrices(V), samples)
        floor = 2 * lapack_floor(N, N * N)
        tracemalloc.start()
        mode_matrices(V)
        peak = tracemalloc.get_traced_memory()[1] / 2**20
        tracemalloc.stop()
        # 8 n^3 flops for an inversion (getrf + getri) and 8 n^3 for a product, per slice and lead
        gflops = 2 * N * 16 * (N * N) ** 3 / best / 1e9
        times.append(best)
        print(f"{N:4d} {N * N:7d} {best:10.4f} {floor:10.4f} {best / floor:7.2f} {peak:9.1f} {gflops:8.1f}")
    if len(sizes) >= 2:
        slope = np.polyfit(np.log(sizes), np.log(times), 1)[0]
        tail = np.polyfit(np.log(sizes[-2:]), np.log(times[-2:]), 1)[0]
        print(f"time ~ N^{slope:.2f} over N = {sizes[0]}..{sizes[-1]} (last two sizes: N^{tail:.2f}; "
              "asymptotically N^7)")


def bench_observables(sizes=(12, 16), cuts_list=((), (0.23,), (0.23, 0.5)), repeats=5):
    print("\n== Observables per sample versus the recursion (cube, W = 6, 1 BLAS thread) ==")
    print("(recursion and observables timed alternately, best of %d each: robust to a noisy machine)" % repeats)
    print(f"{'N':>4} {'cuts':>5} {'recursion s':>12} {'observables s':>14} {'ratio':>7}")
    rng = np.random.default_rng(2)
    for N in sizes:
        V = rng.uniform(-3, 3, (N, N, N))
        modes = mode_matrices(V)
        for cuts in cuts_list:
            layout = make_layout(N, N, N, (1.0, 0.4, 0.4), cuts)
            sample_observables(modes, layout)
            rec, obs = [], []
            for _ in range(repeats):
                rec.append(_best(lambda: mode_matrices(V), 1)[0])
                obs.append(_best(lambda: sample_observables(modes, layout), 1)[0])
            print(f"{N:4d} {len(cuts):5d} {min(rec):12.4f} {min(obs):14.4f} {min(obs) / min(rec):7.2f}")


def _sweep_rate(np_, sizes, samples, out):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OMPI_COMM", "PMIX_"))}
    env.update(OMPI_ALLOW_RUN_AS_ROOT="1", OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1",
               OMPI_MCA_rmaps_base_oversubscribe="1", OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1")
    cmd = ["mpirun", "-n", str(np_), sys.executable, "-m", "anderson_mpi", "run",
           str(ROOT / "jobs" / "demo.toml"), "--out", str(out), "--overwrite",
           "--samples", str(samples), "--N"] + [str(n) for n in sizes]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, check=True)
    rates = {}
    for line in proc.stdout.splitlines():
        m = re.search(r"run cube_N(\d+)_W\S+: blocks (\d+)/(\d+), .* ([\d.]+) samples/s", line)
        if m and m.group(2) == m.group(3):
            rates[int(m.group(1))] = float(m.group(4))
    return rates


def bench_sweep(sizes=(6, 8, 10), samples=96):
    print("\n== Sweep: samples per second of the demo job (cube W = 6), 1 and 2 ranks ==")
    with tempfile.TemporaryDirectory() as tmp:
        one = _sweep_rate(1, sizes, samples, Path(tmp) / "np1")
        two = _sweep_rate(2, sizes, samples, Path(tmp) / "np2")
    print(f"{'N':>4} {'1 rank /s':>10} {'2 ranks /s':>11} {'efficiency':>11} {'samples/core-hour':>18}")
    for N in sizes:
        print(f"{N:4d} {one[N]:10.2f} {two[N]:11.2f} {two[N] / (2 * one[N]):11.2f} {3600 * two[N] / 2:18.0f}")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[8, 12, 16, 20])
    parser.add_argument("--skip-sweep", action="store_true")
    parser.add_argument("--skip-petsc", action="store_true")
    args = parser.parse_args(argv)
    threadpool_limits(1)
    blas = [f"{i['internal_api']} {i.get('version')} ({i.get('architecture')})" for i in threadpool_info()
            if i["user_api"] == "blas"]
    print("BLAS:", "; ".join(blas), "| OPENBLAS_CORETYPE =", os.environ.get("OPENBLAS_CORETYPE", "unset"))
    bench_engine(args.sizes)
    bench_observables()
    if not args.skip_sweep:
        bench_sweep()
    if not args.skip_petsc:
        try:
            from .bench_petsc import bench_solvers
        except ImportError as err:  # pragma: no cover
            print(f"\n(petsc bench unavailable: {err})")
        else:
            bench_solvers()


if __name__ == "__main__":
    main()
