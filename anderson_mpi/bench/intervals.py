"""Interval sums: what the group ``intervals`` adds to a sample, in recursions.

Cube, W = 6, one BLAS thread, through the pipeline (`sample_observables` with a block's carry:
the timed sample has two previous samples, so every word is computed). For each size the CPU
seconds (``process_time``, best of ``repeats``, variants timed in turn) of

* the recursion (the engine's ``solve``);
* the observables without intervals (``base``), and with a 10-point grid: the pair words on a
  quarter of the slices (the default), on every slice, and without the exact moments;

and the interval part (with - without) divided by the recursion, next to what the cost model
(`anderson_mpi.run.cost`) predicts for it. Prints a table; asserts nothing.
"""
from __future__ import annotations

import time

import numpy as np

from ..observables import BlockState, observables_cost, sample_observables
from ..run.config import make_plan
from ..run.cost import DEFAULT_RATES, mode_columns, run_layout
from ..run.executor import make_context, observables_seed, potential

__all__ = ["bench_intervals", "VARIANTS"]

GRID = [round(0.1 * i, 1) for i in range(1, 11)]
VARIANTS = {  # name -> job keys
    "base": {},
    "pairs 1/4": {"intervals": GRID},
    "pairs all": {"intervals": GRID, "interval_pair_fraction": 1.0},
    "no exact": {"intervals": GRID, "interval_exact_moments": False},
}


def _prepared(N, keys):
    run = make_plan(dict(geometry="cube", sizes=[N], W=[6.0], samples=4, block_size=4, cuts=[],
                         **keys), "bench")[0]
    ctx = make_context(run)
    modes = [ctx.engine.solve(potential(run, s)) for s in range(3)]
    state = BlockState()
    for s in range(2):  # the carry of two previous samples of the block
        sample_observables(modes[s], ctx.layout, state, np.random.default_rng(observables_seed(run, s)))

    def timed():
        # a copy of the state: every repeat sees the same two previous samples
        sample_observables(modes[2], ctx.layout, BlockState(state),
                           np.random.default_rng(observables_seed(run, 2)))

    def recursion():
        ctx.engine.solve(potential(run, 2))

    width = mode_columns(run)
    predicted = DEFAULT_RATES.seconds(observables_cost(run_layout(run), width))
    return timed, recursion, predicted


def bench_intervals(sizes=(8, 12, 16), repeats=3):
    print("\n== Interval sums (10-point grid): added CPU seconds per sample in recursions, measured "
          "(model) (cube, W = 6, 1 BLAS thread) ==")
    print(f"{'N':>3} {'recursion s':>12} " + " ".join(f"{name:>17}" for name in VARIANTS if name != "base"))
    for N in sizes:
        prepared = {name: _prepared(N, keys) for name, keys in VARIANTS.items()}
        funcs = {name: p[0] for name, p in prepared.items()}
        funcs["recursion"] = prepared["base"][1]
        best = {name: np.inf for name in funcs}
        for _ in range(repeats):
            for name, func in funcs.items():
                start = time.process_time()
                func()
                best[name] = min(best[name], time.process_time() - start)
        rec = best["recursion"]
        cells = []
        for name in VARIANTS:
            if name == "base":
                continue
            measured = (best[name] - best["base"]) / rec
            model = (prepared[name][2] - prepared["base"][2]) / rec
            cells.append(f"{measured:8.2f} ({model:6.2f})")
        print(f"{N:3d} {rec:12.4f} " + " ".join(f"{c:>17}" for c in cells))
