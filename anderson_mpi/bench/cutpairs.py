"""Order four on cut pairs (`anderson_mpi.observables.cutpairs`): recursions per pair, bytes per
block and pair.

Cube, W = 6, one BLAS thread, one cut pair (0.25, 0.75). Timed alternately (best of ``repeats``):
the recursion (`mode_matrices`) and one pair's fields at every position of each schedule's period
(a schedule's cost per sample is their mean). The base observables (``mean_k``) are not part of a
pair's cost and are computed once, outside the timing. Memory: `common.PeakRSS` of the most
expensive call, in mode matrices (the carry of the previous sample is held besides). Bytes: the
block sums of one pair, and for comparison those of the schema-2 fields this estimator replaced
(``Nx^2`` traces, six k-resolved ``Nx^2 n_orb`` fields and two orbit-pair ``Nx^2 n_orb^2`` fields).
"""
from __future__ import annotations

import copy

import numpy as np

from ..engines.transfer import mode_matrices
from ..observables import make_layout
from ..observables.cutpairs import SCHEDULES, CutPairState, cutpair_fields, field_shapes
from ..observables.kernels import kdiag_orbit_sums
from ..system import DEFAULT_HOPPING, transverse_fft
from .common import MB, PeakRSS

__all__ = ["bench_cutpairs", "bytes_per_block_and_pair"]


def _clone(state):
    """A state that can take the next sample without changing ``state`` (the running sums are
    replaced, never modified in place, so shallow copies suffice; the carry is shared)."""
    new = copy.copy(state)
    new.counts = copy.copy(state.counts)
    new.counts.sums = dict(state.counts.sums)
    new.pairs = []
    for run in state.pairs:
        r = copy.copy(run)
        r.power = copy.copy(run.power)
        r.power.sums = dict(run.power.sums)
        new.pairs.append(r)
    return new


def bytes_per_block_and_pair(N):
    """(schema 2, now) bytes of the block sums of one cut pair, cube N (the counts are shared by
    all pairs and left out)."""
    no = make_layout(N, N, N, DEFAULT_HOPPING, ()).n_orbits
    old = 16 * N * N * (2 + 6 * no + 2 * no * no)
    new = sum(int(np.prod(shape[1:])) * np.dtype(dtype).itemsize
              for name, (shape, dtype, _) in field_shapes(N, 1).items() if len(shape) > 1)
    return old, new


def _interleaved(funcs, repeats, clock):
    best = {name: np.inf for name in funcs}
    for _ in range(repeats):
        for name, func in funcs.items():
            start = clock()
            func()
            best[name] = min(best[name], clock() - start)
    return best


def bench_cutpairs(sizes=(8, 12, 16), W=6.0, repeats=5, cuts4=((0.25, 0.75),),
                      schedules=("half", "quarter", "full"), clock="wall"):
    """Print the table; ``clock``: "wall" (`time.perf_counter`) or "process" (`time.process_time`,
    steadier on a shared machine). Returns the rows."""
    import time
    timer = {"wall": time.perf_counter, "process": time.process_time}[clock]
    probe = PeakRSS()
    print("\n== Order four, cut pairs: block-local unbiased estimators (cube, W = %g, 1 BLAS "
          "thread) ==" % W)
    print(f"(recursions per pair = seconds per sample and pair / seconds of one recursion; timed "
          f"alternately, {clock} clock, best of {repeats}; a schedule's cost per sample is the mean over the "
          f"positions of its period, each timed on its own; peak: {probe.method} of the most "
          f"expensive new call, in mode matrices)")
    print(f"{'N':>4} {'recursion s':>11} " + " ".join(f"{s:>8}" for s in schedules)
          + "   per position" + f" {'peak /Phi':>9}")
    rng = np.random.default_rng(3)
    rows = []
    for N in sizes:
        V = [rng.uniform(-W / 2, W / 2, (N, N, N)) for _ in range(3)]
        modes = [mode_matrices(v) for v in V]
        phik = [transverse_fft(m.phi, N, N, axis=1) for m in modes]
        sig = [m.signature for m in modes]
        layout = make_layout(N, N, N, DEFAULT_HOPPING, (), cuts4=cuts4)
        oi, osz, pairs = layout.orbit_index, layout.orbit_size, layout.pair_slices
        mk = [kdiag_orbit_sums(p, p, layout, s) for p, s in zip(phik, sig)]

        def new_call(state, j):
            return cutpair_fields(phik[j % 3], sig[j % 3], mk[j % 3], oi, osz, pairs, state)

        # a state at each position p .. 2p - 1 of every schedule (position >= 1: a crossing is possible)
        prepared = {}
        for schedule in schedules:
            period = len(SCHEDULES[schedule])
            st = CutPairState(schedule)
            for j in range(2 * period):
                if j >= period:
                    prepared[(schedule, j)] = _clone(st)
                new_call(st, j)

        funcs = {"rec": lambda: mode_matrices(V[1])}
        for key in prepared:
            funcs[key] = (lambda key=key: new_call(_clone(prepared[key]), key[1]))
        for f in funcs.values():
            f()  # warm up
        best = _interleaved(funcs, repeats, timer)
        rec = best["rec"]
        per = {}
        detail = []
        for schedule in schedules:
            keys = [k for k in prepared if k[0] == schedule]
            costs = [best[k] / len(pairs) / rec for k in keys]
            per[schedule] = float(np.mean(costs))
            detail.append("/".join(f"{x:.2f}" for x in costs))
        worst = max(prepared, key=lambda k: best[k])
        with probe:
            new_call(_clone(prepared[worst]), worst[1])
        peak = probe.mb / (phik[1].nbytes / MB)
        rows.append({"N": N, "recursion_s": rec, **per, "peak_modes": peak})
        print(f"{N:4d} {rec:11.4f} " + " ".join(f"{per[s]:8.2f}" for s in schedules)
              + "   " + "  ".join(detail) + f" {peak:9.2f}")
    print("bytes per block and pair (block sums of one pair):")
    for N in sorted(set(sizes) | {20, 40}):
        old, new = bytes_per_block_and_pair(N)
        print(f"  N = {N:3d}: {new / 2**10:8.1f} KiB (15 Nx^2 complex; the schema-2 fields it replaced: "
              f"{old / MB:.2f} MB)")
    return rows


if __name__ == "__main__":
    import argparse

    from ..run.mpi import limit_blas_threads
    from .common import blas_line
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[8, 12, 16])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--clock", choices=("wall", "process"), default="wall")
    args = parser.parse_args()
    limit_blas_threads(1)
    print(blas_line())
    bench_cutpairs(args.sizes, repeats=args.repeats, clock=args.clock)
