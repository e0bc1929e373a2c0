"""``python -m anderson_mpi.bench [--sizes 8 12 16 20] [--skip-<section> ...]``: every section
prints its table (engine, observables, small sizes, sweep, scheduling, order four, interval sums,
the stochastic models' chains, the cost model)."""
from __future__ import annotations

import argparse

from ..run.mpi import limit_blas_threads
from .common import blas_line
from .cost import bench_cost
from .engine import bench_engine, bench_observables, bench_small_sizes
from .chains import bench_chains
from .cutpairs import bench_cutpairs
from .intervals import bench_intervals
from .scheduling import bench_scheduling
from .sweep import bench_sweep


def main(argv=None):
    parser = argparse.ArgumentParser(description="anderson_mpi benchmarks (print tables)")
    parser.add_argument("--sizes", type=int, nargs="+", default=[8, 12, 16, 20])
    parser.add_argument("--skip-engine", action="store_true")
    parser.add_argument("--skip-observables", action="store_true")
    parser.add_argument("--skip-small", action="store_true")
    parser.add_argument("--skip-sweep", action="store_true")
    parser.add_argument("--skip-scheduling", action="store_true")
    parser.add_argument("--skip-order4", action="store_true")
    parser.add_argument("--skip-intervals", action="store_true")
    parser.add_argument("--skip-chains", action="store_true")
    parser.add_argument("--skip-cost", action="store_true")
    parser.add_argument("--jobs", default="jobs", help="directory of job files for the cost-model table")
    args = parser.parse_args(argv)
    limit_blas_threads(1)
    print(blas_line())
    if not args.skip_engine:
        bench_engine(args.sizes)
    if not args.skip_observables:
        bench_observables()
    if not args.skip_small:
        bench_small_sizes()
    if not args.skip_sweep:
        bench_sweep()
    if not args.skip_scheduling:
        bench_scheduling(jobs_dir=args.jobs)
    if not args.skip_order4:
        bench_cutpairs()
    if not args.skip_intervals:
        bench_intervals()
    if not args.skip_chains:
        bench_chains()
    if not args.skip_cost:
        bench_cost()


if __name__ == "__main__":
    main()
