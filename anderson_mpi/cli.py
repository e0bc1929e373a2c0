"""Command line: ``anderson-mpi run | info | plan`` (also ``python -m anderson_mpi``).

Everything the user typed is validated before MPI starts: a bad job file, a bad option or
an output that would be overwritten stops every rank with one line naming the field and
exit status 2, and nothing is written.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from .config import PlanError, load_job, make_plan

EXIT_BAD_INPUT = 2


def _launcher_rank():
    """This process's rank as the launcher tells it, read before MPI is initialized."""
    for var in ("OMPI_COMM_WORLD_RANK", "PMIX_RANK", "PMI_RANK", "SLURM_PROCID"):
        if os.environ.get(var, "").isdigit():
            return int(os.environ[var])
    return 0


def _launcher_size():
    for var in ("OMPI_COMM_WORLD_SIZE", "PMIX_SIZE", "PMI_SIZE", "SLURM_NTASKS"):
        if os.environ.get(var, "").isdigit():
            return int(os.environ[var])
    return 1


def _fail(message):
    if _launcher_rank() == 0:
        sys.stderr.write(f"anderson-mpi: error: {message}\n")
        sys.stderr.flush()
    sys.exit(EXIT_BAD_INPUT)


class _Parser(argparse.ArgumentParser):
    def error(self, message):  # one line, exit status 2
        _fail(message)


def _parser():
    parser = _Parser(prog="anderson-mpi", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    def plan_options(p):
        p.add_argument("job", help="job file (TOML)")
        p.add_argument("--W", type=float, nargs="+", help="disorder strengths (replace the job's)")
        p.add_argument("--N", type=int, nargs="+", dest="sizes", help="sizes N or Nx (replace the job's)")
        p.add_argument("--samples", type=int, help="samples per run")
        p.add_argument("--out", dest="output", help="output directory (default: the job's `output`)")

    run = sub.add_parser("run", help="compute the job's runs (under mpirun/srun)")
    plan_options(run)
    mode = run.add_mutually_exclusive_group()
    mode.add_argument("--resume", action="store_true", help="continue existing result files")
    mode.add_argument("--overwrite", action="store_true", help="replace existing result files")

    plan = sub.add_parser("plan", help="print the resolved runs of a job")
    plan_options(plan)
    plan.add_argument("--json", action="store_true", help="one JSON object per run")
    plan.add_argument("--field", help="print the distinct values of one run field, one per line")

    info = sub.add_parser("info", help="summarize a result file")
    info.add_argument("file", help="result file (.h5)")
    info.add_argument("--json", action="store_true")
    return parser


def _plan(args):
    job, text = load_job(args.job)
    overrides = {"W": args.W, "sizes": args.sizes, "samples": args.samples, "output": args.output}
    return make_plan(job, Path(args.job).stem, overrides), text


def _check_outputs(runs, resume, overwrite):
    """Refuse to overwrite by accident, and refuse a resume whose physics differs."""
    from .store import read_physics
    for run in runs:
        path = Path(run.path)
        if path.exists() and not (resume or overwrite):
            raise PlanError(f"output: {path} exists (use --resume to continue it or --overwrite)")
        if path.exists() and resume:
            try:
                stored = read_physics(path)
            except Exception as err:  # noqa: BLE001 - an unreadable file is bad input here
                raise PlanError(f"--resume: cannot read {path}: {err}") from None
            wanted = run.physics()
            for key in sorted(set(stored) | set(wanted)):
                if stored.get(key) != wanted.get(key):
                    raise PlanError(f"--resume: {key} differs from {path} "
                                    f"(file: {stored.get(key)!r}, job: {wanted.get(key)!r})")


def cmd_run(args):
    try:
        runs, text = _plan(args)
        _check_outputs(runs, args.resume, args.overwrite)
        ranks = _launcher_size()
        for run in runs:
            if run.solver == "petsc" and ranks % run.petsc_group_size:
                raise PlanError(f"petsc_group_size: {run.petsc_group_size} does not divide the "
                                f"number of ranks ({ranks})")
    except PlanError as err:
        _fail(str(err))

    threads = int(os.environ.get("ANDERSON_MPI_BLAS_THREADS", "1"))
    from threadpoolctl import threadpool_limits
    threadpool_limits(threads)  # one BLAS thread per rank unless told otherwise

    from mpi4py import MPI
    from .parallel import abort_on_error, get_logger
    from .store import require_parallel_h5py
    from .sweep import execute_run

    comm = MPI.COMM_WORLD
    log = get_logger(comm)
    abort_on_error(comm, require_parallel_h5py)
    if comm.rank == 0:
        for run in runs:
            Path(run.path).parent.mkdir(parents=True, exist_ok=True)
    comm.Barrier()
    for run in runs:
        resume = args.resume and Path(run.path).exists()
        abort_on_error(comm, execute_run, run, comm, text, resume, log)
    return 0


def cmd_plan(args):
    try:
        runs, _ = _plan(args)
    except PlanError as err:
        _fail(str(err))
    if args.field:
        values = []
        for run in runs:
            if not hasattr(run, args.field):
                _fail(f"--field: unknown run field {args.field!r}")
            value = getattr(run, args.field)
            if value not in values:
                values.append(value)
        # exact values (repr): they are passed back as --W by the Slurm array
        print("\n".join(repr(v) if isinstance(v, float) else str(v) for v in values))
    elif args.json:
        for run in runs:
            print(run.to_json())
    else:
        for run in runs:
            print(f"{run.label:32s} samples={run.samples:<6d} blocks={run.n_blocks:<5d} -> {run.path}")
    return 0


def cmd_info(args):
    from .store import read_summary
    if not Path(args.file).is_file():
        _fail(f"file: {args.file} does not exist")
    try:
        summary = read_summary(args.file)
    except (OSError, KeyError) as err:
        _fail(f"file: {args.file} is not an anderson_mpi result file ({err})")
    if args.json:
        print(json.dumps(summary, indent=1, sort_keys=True))
        return 0
    run = summary["run"]
    print(f"{summary['path']}")
    print(f"  run        {run['geometry']} Nx={run['Nx']} Ny={run['Ny']} Nz={run['Nz']} W={run['W']:g} "
          f"hopping={tuple(run['hopping'])} E+={run['e_plus']:g} E-={run['e_minus']:g} cuts={tuple(run['cuts'])}")
    print(f"  progress   blocks {summary['blocks_done']}/{summary['n_blocks']}, samples "
          f"{summary['samples_done']}/{summary['samples']}, complete={summary['complete']}")
    print(f"  version    code {summary['code_version']}, schema {summary['schema_version']}, "
          f"created {summary['created']}")
    if summary["samples_done"]:
        print(f"  <g>        {summary['conductance_mean']:.6g}  (var {summary['conductance_var']:.4g}), "
              f"Fano {summary['fano']:.4f}")
        print(f"  g1 fit     slope {summary['g1_slope']:.4f}, intercept {summary['g1_intercept']:.4f}")
        print(f"  unitarity  worst {summary['unitarity_max']:.2e}")
    return 0


def main(argv=None):
    args = _parser().parse_args(argv)
    try:
        return {"run": cmd_run, "plan": cmd_plan, "info": cmd_info}[args.command](args)
    except BrokenPipeError:  # `anderson-mpi plan ... | head`
        sys.stderr.close()
        return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
