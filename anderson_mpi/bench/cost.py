"""The cost model against measurement: seconds per sample predicted and measured, and the rates.

For cube runs of N = 6 ... 16 with and without cuts, the m3 split and a cut pair (one BLAS
thread), the CPU seconds of the engine and of the observables per sample are measured (best of a
few samples after a warm-up) and compared with `anderson_mpi.run.cost` at the reference rates;
then the four rates of the Anderson pipeline (gemm, batched, lu, call; the chains' kernel rate
comes from the chains section) are refitted to these measurements (non-negative least squares on relative
errors), which is how `DEFAULT_RATES` were obtained. Prints tables; asserts nothing.
"""
from __future__ import annotations

import time

import numpy as np
from scipy.optimize import nnls

from ..engines import engine_cost
from ..observables import BlockState, observables_cost, sample_observables
from ..run.config import make_plan
from ..run.cost import DEFAULT_RATES, Rates, mode_columns, run_layout
from ..run.executor import make_context, observables_seed, potential

__all__ = ["bench_cost", "CONFIGS"]

CONFIGS = {  # name -> job keys of the observables
    "no cut": {"cuts": []},
    "2 cuts": {"cuts": [0.23, 0.5]},
    "m3 split": {"cuts": [], "m3_split": True},
    "cut pair": {"cuts": [], "cuts4": [[0.25, 0.75]]},
    "intervals": {"cuts": [], "intervals": [round(0.1 * i, 1) for i in range(1, 11)]},
}


def _measure(run, samples):
    ctx = make_context(run)
    state = BlockState()
    potentials = [potential(run, s) for s in range(samples + 1)]
    rngs = [np.random.default_rng(observables_seed(run, s)) if ctx.random else None
            for s in range(samples + 1)]
    sample_observables(ctx.engine.solve(potentials[0]), ctx.layout, state, rngs[0])  # warm up, a carry
    engine = observables = np.inf
    for V, rng in zip(potentials[1:], rngs[1:]):
        t0 = time.process_time()
        modes = ctx.engine.solve(V)
        t1 = time.process_time()
        sample_observables(modes, ctx.layout, state, rng)
        t2 = time.process_time()
        engine, observables = min(engine, t1 - t0), min(observables, t2 - t1)
    return engine, observables


def _units(cost):
    return [cost.gemm, cost.batched, cost.lu, cost.calls]


def bench_cost(sizes=(6, 8, 10, 12, 14, 16), configs=CONFIGS, max_pair_size=14):
    print("\n== Cost model: CPU seconds per sample, measured and predicted (cube, W = 6, 1 BLAS thread) ==")
    print(f"{'N':>3} {'observables':>12} {'engine s':>9} {'model':>9} {'obs s':>9} {'model':>9} {'ratio':>6}")
    rows = []
    for N in sizes:
        for name, keys in configs.items():
            if "cuts4" in keys and N > max_pair_size:
                continue
            run = make_plan(dict(geometry="cube", sizes=[N], W=[6.0], samples=8, block_size=8, **keys),
                            "bench")[0]
            width = mode_columns(run)
            ce = engine_cost(run.solver, run.Nx, run.Ny * run.Nz, width)
            co = observables_cost(run_layout(run), width)
            engine, observables = _measure(run, 2 if N >= 14 else 4)
            pe, po = DEFAULT_RATES.seconds(ce), DEFAULT_RATES.seconds(co)
            rows.append((ce, engine))
            rows.append((co, observables))
            print(f"{N:3d} {name:>12} {engine:9.4f} {pe:9.4f} {observables:9.4f} {po:9.4f} "
                  f"{(pe + po) / (engine + observables):6.2f}")
    A = np.array([_units(c) for c, _ in rows])
    y = np.array([t for _, t in rows])
    rates, _ = nnls(A / y[:, None], np.ones(len(y)))
    fitted = Rates(*rates)
    worst = max(abs(fitted.seconds(c) / t - 1) for c, t in rows)
    print(f"refitted rates (seconds per complex multiply-add: gemm {fitted.gemm:.3g}, batched "
          f"{fitted.batched:.3g}, lu {fitted.lu:.3g}; per call {fitted.call:.3g} s): worst relative "
          f"error {100 * worst:.0f}% (reference rates: gemm {DEFAULT_RATES.gemm:.3g}, batched "
          f"{DEFAULT_RATES.batched:.3g}, lu {DEFAULT_RATES.lu:.3g}, call {DEFAULT_RATES.call:.3g})")
    return fitted
