"""Samples per second of the chain models (`anderson_mpi.engines.chains`).

    python -m anderson_mpi.bench.chains [--block 16] [--steps 400]

A trajectory's cost is exactly proportional to its number of steps, so each case is timed on
``--steps`` steps and scaled to the default ``relax_time / dt`` of a real run. The backends
(numba when installed, numpy) are timed in turn on the same block; the numba kernels are
compiled (or loaded from numba's cache) before timing, and that first call is reported.
"""
from __future__ import annotations

import argparse
import time

import numpy as np

from ..engines.chains import ChainSetup, jit_kernels, simulate_block
from .common import interleaved

__all__ = ["bench_chains"]

CASES = (("qssep", 16, {}), ("qssep", 32, {}), ("qssep", 64, {}), ("dephasing", 32, {"gamma": 1.0}))


def bench_chains(cases=CASES, block=16, steps=400, repeats=3):
    backends = ["numpy"] + (["numba"] if jit_kernels() is not None else [])
    print(f"\nChain models: samples/s per core (block of {block} trajectories, timed on {steps} "
          f"steps, scaled to the default steps of a run); backends: {', '.join(backends)}")
    if "numba" in backends:
        start = time.perf_counter()
        for model in ("qssep", "dephasing"):
            simulate_block(ChainSetup.build(model, 4, relax_time=1.0), np.random.SeedSequence(0).spawn(1),
                           backend="numba")
        print(f"  numba first call (compile, or load from cache): {time.perf_counter() - start:.2f} s")
    header = f"  {'model':<10} {'N':>3} {'dt':>7} {'steps':>7}"
    for name in backends:
        header += f" | {name + ' us/step':>13} {name + ' samples/s':>15}"
    print(header)
    for model, N, keys in cases:
        run = ChainSetup.build(model, N, **keys)
        timed = ChainSetup.build(model, N, relax_time=steps * run.dt, dt=run.dt, **keys)
        seeds = np.random.SeedSequence([1, N]).spawn(block)
        best = interleaved({name: (lambda name=name: simulate_block(timed, seeds, backend=name))
                            for name in backends}, repeats=repeats)
        line = f"  {model:<10} {N:>3} {run.dt:>7.4f} {run.n_steps:>7}"
        for name in backends:
            per_step = best[name] / (timed.n_steps * block)
            line += f" | {per_step * 1e6:>13.2f} {1.0 / (per_step * run.n_steps):>15.2f}"
        print(line)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--block", type=int, default=16)
    parser.add_argument("--steps", type=int, default=400)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args(argv)
    from ..run.mpi import limit_blas_threads
    limit_blas_threads(1)
    bench_chains(block=args.block, steps=args.steps, repeats=args.repeats)


if __name__ == "__main__":
    main()
