"""Engine benchmarks: speed against the LAPACK floor, memory, observables, small-size throughput.

One BLAS thread throughout (as one rank per core would run). Prints tables; asserts nothing.
"""
from __future__ import annotations

from dataclasses import replace

import numpy as np
from scipy.linalg import lapack

from ..run.config import make_plan
from ..observables import make_layout, sample_observables
from ..run.executor import compute_block, make_context
from ..engines.transfer import inversion_workspace, mode_matrices
from .common import PeakRSS, best_of, interleaved

__all__ = ["lapack_floor", "bench_engine", "bench_observables", "bench_small_sizes"]


def lapack_floor(n_slices, n_perp, repeats=3, rng=None):
    """Seconds of the work the recursion cannot avoid, per lead: n_slices inversions
    (zgetrf + zgetri) and n_slices products of n_perp x n_perp complex matrices."""
    rng = rng or np.random.default_rng(0)
    a = rng.standard_normal((n_perp, n_perp)) + 1j * rng.standard_normal((n_perp, n_perp))
    a = a + a.T + 4 * np.sqrt(n_perp) * np.eye(n_perp)
    b = np.asfortranarray(a.copy())
    work = np.empty_like(b)
    out = np.empty((n_perp, n_perp), dtype=complex)
    lwork = inversion_workspace(n_perp)

    def one_lead():
        for _ in range(n_slices):
            work[...] = b
            lu, piv, _ = lapack.zgetrf(work, overwrite_a=1)
            lapack.zgetri(lu, piv, lwork=lwork, overwrite_lu=1)
            np.matmul(a, b, out=out)

    return best_of(one_lead, repeats)[0]


def bench_engine(sizes, W=6.0, samples=3):
    probe = PeakRSS()
    print("\n== Engine: renormalized transfer matrix, cube, W = %g, both leads, 1 BLAS thread ==" % W)
    print(f"memory: {probe.method}, MB above the RSS before the call")
    print(f"{'N':>4} {'N_perp':>7} {'s/sample':>10} {'floor s':>10} {'ratio':>7} {'peak MB':>9} {'GFLOP/s':>8}")
    rng = np.random.default_rng(1)
    times = []
    for N in sizes:
        V = rng.uniform(-W / 2, W / 2, (N, N, N))
        mode_matrices(V)  # warm up
        best, _ = best_of(lambda: mode_matrices(V), samples)
        floor = 2 * lapack_floor(N, N * N)
        with probe:
            mode_matrices(V)
        # 8 n^3 flops for an inversion (getrf + getri) and 8 n^3 for a product, per slice and lead
        gflops = 2 * N * 16 * (N * N) ** 3 / best / 1e9
        times.append(best)
        print(f"{N:4d} {N * N:7d} {best:10.4f} {floor:10.4f} {best / floor:7.2f} {probe.mb:9.1f} {gflops:8.1f}")
    if len(sizes) >= 2:
        slope = np.polyfit(np.log(sizes), np.log(times), 1)[0]
        tail = np.polyfit(np.log(sizes[-2:]), np.log(times[-2:]), 1)[0]
        print(f"time ~ N^{slope:.2f} over N = {sizes[0]}..{sizes[-1]} (last two sizes: N^{tail:.2f}; "
              "asymptotically N^7)")


def bench_observables(sizes=(12, 16), cuts_list=((), (0.23,), (0.23, 0.5)), repeats=5):
    probe = PeakRSS()
    print("\n== Observables per sample versus the recursion (cube, W = 6, 1 BLAS thread) ==")
    print("(recursion and observables timed alternately, best of %d each: robust to a noisy machine;" % repeats)
    print(f" memory: {probe.method} of the observables, MB; m3 split = the coinciding-slice fields)")
    print(f"{'N':>4} {'cuts':>5} {'m3 split':>8} {'recursion s':>12} {'observables s':>14} {'ratio':>7} {'peak MB':>8}")
    rng = np.random.default_rng(2)
    for N in sizes:
        V = rng.uniform(-3, 3, (N, N, N))
        modes = mode_matrices(V)
        cases = [(cuts, False) for cuts in cuts_list] + [((), True)]
        for cuts, split in cases:
            layout = make_layout(N, N, N, (1.0, 0.4, 0.4), cuts, m3_split=split)
            with probe:
                sample_observables(modes, layout)
            best = interleaved({"recursion": lambda: mode_matrices(V),
                                "observables": lambda: sample_observables(modes, layout)}, repeats)
            rec, obs = best["recursion"], best["observables"]
            print(f"{N:4d} {len(cuts):5d} {'yes' if split else 'no':>8} {rec:12.4f} {obs:14.4f} "
                  f"{obs / rec:7.2f} {probe.mb:8.1f}")


SMALL_CASES = {
    "cube N = 6": {"geometry": "cube", "sizes": [6], "W": [6.0]},
    "quasi-1d 8 x 8, Nx = 60": {"geometry": "quasi1d", "sizes": [60], "transverse": [8, 8], "W": [5.0]},
}


def bench_small_sizes(repeats=5):
    """Samples per second of the sweep's per-sample path (potential, engine, observables, sums).

    "setup once" is what a run does (one `RunContext`); "setup per sample" builds the
    `ScatteringSetup` (lead modes at both energies, transverse hopping) for every sample, as the
    public functions with plain arguments do and as every sample did before the run context.
    """
    print("\n== Small sizes: samples/s of one rank's per-sample path (2 cuts, 1 BLAS thread) ==")
    print(f"{'case':>26} {'samples/block':>14} {'setup once /s':>14} {'per sample /s':>14} {'gain':>6}")
    for name, job in SMALL_CASES.items():
        run = make_plan(dict(job, samples=400, block_size=20 if "cube" in name else 4), "bench")[0]
        ctx = make_context(run)
        per_sample = replace(ctx, solve=lambda V: mode_matrices(V, run.hopping, run.e_plus, run.e_minus,
                                                                 check=False))
        compute_block(ctx, 0)
        best = interleaved({"once": lambda: compute_block(ctx, 1),
                            "per sample": lambda: compute_block(per_sample, 1)}, repeats)
        n = len(run.block_samples(1))
        once, each = n / best["once"], n / best["per sample"]
        print(f"{name:>26} {n:14d} {once:14.1f} {each:14.1f} {once / each:6.2f}")
