"""Command line: ``anderson-mpi run | plan | sample | info`` (also ``python -m anderson_mpi``).

What the user typed is validated before MPI starts, identically on every rank; what the file
system decides (existing outputs, their schema and physics on --resume, the output
directories, the free space) is checked on rank 0 once MPI runs and its outcome broadcast. A
problem stops every rank with one line naming the field and exit status 2, and nothing is
written.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from .errors import BadInput, PlanError, SchemaError
from .run.config import load_job, make_plan

EXIT_BAD_INPUT = 2


def _launcher_rank():
    """This process's rank as the launcher tells it, read before MPI is initialized."""
    for var in ("OMPI_COMM_WORLD_RANK", "PMIX_RANK", "PMI_RANK", "SLURM_PROCID"):
        if os.environ.get(var, "").isdigit():
            return int(os.environ[var])
    return 0


def _fail(message, rank=None):
    """One line on stderr (from rank 0 only), exit status 2. ``rank``: MPI's, once it runs."""
    if (_launcher_rank() if rank is None else rank) == 0:
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
    run.add_argument("--memory-per-rank", metavar="SIZE",
                     help="memory a rank may use, e.g. 16G (default: detected from the node, its "
                          "cgroup and Slurm; the job key memory_per_rank does the same)")
    run.add_argument("--break-lock", action="store_true",
                     help="take over the output locks even if their job may still run (after a lost node)")

    plan = sub.add_parser("plan", help="print the resolved runs of a job")
    plan_options(plan)
    plan.add_argument("--json", action="store_true", help="one JSON object per run")
    plan.add_argument("--field", help="print the distinct values of one run field, one per line")
    plan.add_argument("--ranks", type=int, metavar="P",
                      help="expected utilization of P ranks and the job's wall time (cost model), "
                           "and a block_size suggestion when it is below 90%%")

    sample = sub.add_parser("sample", help="write the potential of one sample of a run (.npy)")
    sample.add_argument("job", help="job file (TOML)")
    sample.add_argument("--W", type=float, nargs="+", help="select the run's W (one value)")
    sample.add_argument("--N", type=int, nargs="+", dest="sizes", help="select the run's size (one value)")
    sample.add_argument("--index", type=int, required=True, help="global sample index s of the run")
    sample.add_argument("--out", required=True, help="output .npy file (refused if it exists)")

    info = sub.add_parser("info", help="summarize a result file")
    info.add_argument("file", help="result file (.h5)")
    info.add_argument("--json", action="store_true")
    return parser


def _plan(args):
    job, text = load_job(args.job)
    overrides = {"W": args.W, "sizes": args.sizes, "samples": args.samples, "output": args.output,
                 "memory_per_rank": getattr(args, "memory_per_rank", None)}
    return make_plan(job, Path(args.job).stem, overrides), text


def _check_outputs(runs, resume, overwrite):
    """Refuse to overwrite by accident, and refuse a resume whose schema or physics differs."""
    from .io.store import read_physics
    for run in runs:
        path = Path(run.path)
        if path.exists() and not (resume or overwrite):
            raise PlanError(f"output: {path} exists (use --resume to continue it or --overwrite)")
        if path.exists() and resume:
            try:
                stored = read_physics(path)
            except SchemaError as err:
                raise PlanError(f"--resume: {err}") from None
            except Exception as err:  # noqa: BLE001 - an unreadable file is bad input here
                raise PlanError(f"--resume: cannot read {path}: {err}") from None
            wanted = run.physics()
            for key in sorted(set(stored) | set(wanted)):
                if stored.get(key) != wanted.get(key):
                    raise PlanError(f"--resume: {key} differs from {path} "
                                    f"(file: {stored.get(key)!r}, job: {wanted.get(key)!r})")


def _bytes(n):
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if n < 1024 or unit == "TiB":
            return f"{n:.1f} {unit}" if unit != "B" else f"{int(n)} B"
        n /= 1024


def _make_directories(directories):
    """Create the output directories; return the ones this call created (parents first)."""
    created = []
    for directory in directories:
        missing = [d for d in [directory, *directory.parents] if not d.exists()][::-1]
        try:
            directory.mkdir(parents=True, exist_ok=True)
        except OSError as err:
            raise PlanError(f"output: cannot create directory {directory}: {err.strerror or err}") from None
        created += missing
        if not os.access(directory, os.W_OK | os.X_OK):
            raise PlanError(f"output: directory {directory} is not writable")
    return created


def _prepare_outputs(runs, resume, overwrite, job_text, locks):
    """Everything the file system decides, on one rank: directories, the output locks (before
    anything is read or written: a file another job writes is refused naming that job), existing
    files, free space.

    Raises `BadInput`; on a refusal nothing is left behind (the locks are released, directories
    this call created are removed again, and they are empty).
    """
    import shutil
    from .io.schema import file_bytes
    from .run.cost import run_layout
    created = _make_directories(list(dict.fromkeys(Path(run.path).parent for run in runs)))
    try:
        locks.acquire()
        _check_outputs(runs, resume, overwrite)
        needed = {}  # device -> [directory, bytes, files]: the new files' final sizes
        for run in runs:
            if resume and Path(run.path).exists():
                continue  # a resumed file already has its full size on disk
            directory = Path(run.path).parent
            entry = needed.setdefault(os.stat(directory).st_dev, [directory, 0, 0])
            entry[1] += file_bytes(run_layout(run), run.n_blocks, job_text)
            entry[2] += 1
        for directory, size, count in needed.values():
            free = shutil.disk_usage(directory).free
            if size > free:
                raise PlanError(f"output: {directory} has {_bytes(free)} free, the job's {count} new "
                                f"result file(s) need {_bytes(size)} (free space or choose another --out)")
    except BadInput:
        locks.release()
        for directory in reversed(created):
            directory.rmdir()
        raise


def cmd_run(args):
    # Validation that reads only the job file and the arguments runs on every rank alike, before
    # MPI starts; what depends on the machine (memory) is decided collectively, what depends on
    # the file system (locks, existing outputs, space) on rank 0 and broadcast (below).
    try:
        runs, text = _plan(args)
    except PlanError as err:
        _fail(str(err))

    threads = int(os.environ.get("ANDERSON_MPI_BLAS_THREADS", "1"))
    from .run.mpi import abort_on_error, get_logger, install_stop_handlers, limit_blas_threads
    limit_blas_threads(threads)  # one BLAS thread per rank unless told otherwise

    from mpi4py import MPI
    from .io.lock import JobLocks
    from .io.store import require_parallel_h5py
    from .run.executor import execute_job
    from .run.memory import available_per_rank, check_memory

    comm = MPI.COMM_WORLD
    locks = JobLocks([run.path for run in runs], break_locks=args.break_lock) if comm.rank == 0 else None
    install_stop_handlers(comm, on_stop=locks.release if locks else None)
    problem = None
    for run in runs:
        if run.engine == "petsc" and comm.size % run.petsc_group_size:
            problem = (f"petsc_group_size: {run.petsc_group_size} does not divide the number of "
                       f"ranks ({comm.size})")
    # before anything of a run's size is allocated: the same decision on every rank
    available, why = available_per_rank(comm, runs[0].memory_per_rank)
    if problem is None:
        try:
            check_memory(runs, available, why)
        except BadInput as err:
            problem = str(err)
    if problem is None and comm.rank == 0:
        try:
            _prepare_outputs(runs, args.resume, args.overwrite, text, locks)
        except BadInput as err:
            problem = str(err)
    problem = comm.bcast(problem, root=0)
    if problem is not None:
        _fail(problem, comm.rank)

    log = get_logger(comm)
    on_abort = locks.release if locks else None
    abort_on_error(comm, require_parallel_h5py, on_abort=on_abort)
    resumes = [bool(args.resume and Path(run.path).exists()) for run in runs]
    abort_on_error(comm, execute_job, runs, comm, text, resumes, log, threads,
                   resume_flag=args.resume, on_abort=on_abort)
    if locks:
        locks.release()
    return 0


def utilization_report(runs, ranks, target=0.9):
    """What ``plan --ranks P`` prints: the expected utilization of P ranks, whole job and per W.

    The whole job is one pool when it runs as one ``anderson-mpi run``; slurm/sweep_W.sh runs
    one array task per W, each a pool of that W's runs on its own ranks.
    """
    from .run.scheduler import suggest_block_size, utilization_of_plan
    group = runs[0].petsc_group_size if runs[0].engine == "petsc" else 1
    pools = {"whole job": runs}
    by_w = {}
    for run in runs:
        by_w.setdefault(run.W, []).append(run)
    if len(by_w) > 1:
        pools.update({f"W = {w:g} (one Slurm array task)": rs for w, rs in by_w.items()})
    report = {"ranks": ranks, "workers": max(ranks // group, 1), "target": target, "pools": []}
    for name, pool in pools.items():
        makespan, utilization = utilization_of_plan(pool, ranks, group, makespan=True)
        entry = {"pool": name, "runs": len(pool), "blocks": sum(r.n_blocks for r in pool),
                 "utilization": utilization, "makespan": makespan,
                 "utilization_rounds": utilization_of_plan(pool, ranks, group, lockstep=True)}
        if entry["utilization"] < target:
            entry["suggested_block_size"], entry["suggested_utilization"] = suggest_block_size(
                pool, ranks, group, target)
        report["pools"].append(entry)
    return report


def run_costs(runs):
    """Per run: the cost model's seconds per sample and per block, and the memory per rank."""
    from .run.cost import memory_per_rank, mode_columns, sample_cost, sample_seconds
    out = []
    for run in runs:
        cost = sample_cost(run)
        seconds = sample_seconds(run)
        out.append({"run": run.label, "samples": run.samples, "blocks": run.n_blocks,
                    "block_size": run.block_size, "mode_columns": mode_columns(run),
                    "cost_per_sample": {"gemm": cost.gemm, "batched": cost.batched, "lu": cost.lu,
                                        "calls": cost.calls},
                    "seconds_per_sample": seconds, "seconds_per_block": seconds * run.samples / run.n_blocks,
                    "core_hours": seconds * run.samples / 3600, "memory_per_rank": memory_per_rank(run)})
    return out


def _print_costs(costs):
    from .run.memory import format_size
    print(f"{'run':34s} {'samples':>7s} {'blocks':>6s} {'s/sample':>9s} {'s/block':>9s} "
          f"{'core-h':>8s} {'memory/rank':>11s}")
    for c in costs:
        print(f"{c['run']:34s} {c['samples']:7d} {c['blocks']:6d} {c['seconds_per_sample']:9.3g} "
              f"{c['seconds_per_block']:9.3g} {c['core_hours']:8.3g} {format_size(c['memory_per_rank']):>11s}")
    print("(cost model at the reference machine's rates, one BLAS thread per rank; "
          "docs/architecture.md, \"Cost model\")")


def _print_utilization(report):
    hours = report["pools"][0]["makespan"] / 3600
    print(f"expected utilization of {report['ranks']} rank(s) ({report['workers']} worker(s)); "
          f"cost model: engine + observable groups per sample, blocks dealt largest first; "
          f"whole job about {hours:.3g} h wall:")
    for e in report["pools"]:
        print(f"  {e['pool']:34s} {e['runs']:3d} run(s) {e['blocks']:6d} block(s): "
              f"{100 * e['utilization']:5.1f}%  (runs one after the other in rounds: "
              f"{100 * e['utilization_rounds']:.1f}%)")
    for e in report["pools"]:
        if "suggested_block_size" in e:
            sys.stderr.write(
                f"anderson-mpi: warning: {e['pool']}: {100 * e['utilization']:.1f}% of {report['ranks']} "
                f"rank(s) busy (< {100 * report['target']:.0f}%): block_size = "
                f"{e['suggested_block_size']} would give {100 * e['suggested_utilization']:.1f}%\n")


def cmd_plan(args):
    try:
        runs, _ = _plan(args)
        if args.ranks is not None and args.ranks < 1:
            raise PlanError(f"--ranks: must be >= 1, got {args.ranks}")
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
        return 0
    costs = run_costs(runs)
    if args.ranks is not None:
        report = utilization_report(runs, args.ranks)
        report["runs"] = costs
        if args.json:
            print(json.dumps(report, sort_keys=True))
        else:
            _print_costs(costs)
            _print_utilization(report)
    elif args.json:
        for run, cost in zip(runs, costs):
            print(json.dumps(dict(json.loads(run.to_json()), **cost), sort_keys=True))
    else:
        for run in runs:
            print(f"{run.label:32s} samples={run.samples:<6d} blocks={run.n_blocks:<5d} -> {run.path}")
        _print_costs(costs)
    return 0


def cmd_sample(args):
    """The potential of sample ``--index`` of the job's one selected run, as the sweep draws it."""
    try:
        job, _ = load_job(args.job)
        overrides = {"W": args.W, "sizes": args.sizes}
        runs = make_plan(job, Path(args.job).stem, overrides)
        if len(runs) != 1:
            raise PlanError(f"--N/--W: the job has {len(runs)} runs ({', '.join(r.label for r in runs)}); "
                            "select one with --N and --W")
        run = runs[0]
        if run.model != "anderson":
            raise PlanError(f"model: {run.model!r} has no disorder potential (a sample is a "
                            "trajectory of its own seed); sample writes Anderson potentials only")
        if not 0 <= args.index < run.samples:
            raise PlanError(f"--index: must lie in [0, {run.samples}) for {run.label}, got {args.index}")
        out = Path(args.out)
        if out.suffix != ".npy":
            raise PlanError(f"--out: expected a .npy file name, got {out}")
        if out.exists():
            raise PlanError(f"--out: {out} exists (nothing is overwritten)")
        if not out.parent.is_dir():
            raise PlanError(f"--out: directory {out.parent} does not exist")
    except PlanError as err:
        _fail(str(err))
    import numpy as np
    from .run.executor import potential
    V = potential(run, args.index)
    np.save(out, V)
    block = args.index // run.block_size
    print(f"{out}: V of sample {args.index} (block {block}) of {run.label}, shape {V.shape}, "
          f"uniform in [-W/2, W/2] with W = {run.W:g}")
    return 0


def cmd_info(args):
    from .io.store import read_summary
    if not Path(args.file).is_file():
        _fail(f"file: {args.file} does not exist")
    try:
        summary = read_summary(args.file)
    except SchemaError as err:
        _fail(f"file: {err}")
    except (OSError, KeyError) as err:
        _fail(f"file: {args.file} is not an anderson_mpi result file ({err})")
    if args.json:
        print(json.dumps(summary, indent=1, sort_keys=True))
        return 0
    run = summary["run"]
    print(f"{summary['path']}")
    if summary["model"] == "anderson":
        print(f"  run        {run['geometry']} Nx={run['Nx']} Ny={run['Ny']} Nz={run['Nz']} W={run['W']:g} "
              f"hopping={tuple(run['hopping'])} E+={run['e_plus']:g} E-={run['e_minus']:g} "
              f"cuts={tuple(run['cuts'])}")
        n_plus, n_minus = summary["n_open"]
        print(f"  channels   open at E+: {n_plus}, at E-: {n_minus} of N_perp = {run['Ny'] * run['Nz']}"
              + ("" if n_plus == n_minus == run["Ny"] * run["Nz"] else " (the others evanescent)"))
    else:
        rates = (f"D={run['D']:g}" if run["model"] == "qssep"
                 else f"gamma={run['gamma']:g} hopping={tuple(run['hopping'])}")
        print(f"  run        {run['model']} {run['geometry']} Nx={run['Nx']} Ny={run['Ny']} Nz={run['Nz']} "
              f"{rates} n_left={run['n_left']:g} n_right={run['n_right']:g} "
              f"boundary_rate={run['boundary_rate']} dt={run['dt']:g} relax_time={run['relax_time']:g} "
              f"cuts={tuple(run['cuts'])}")
    print(f"  progress   blocks {summary['blocks_done']}/{summary['n_blocks']}, samples "
          f"{summary['samples_done']}/{summary['samples']}, complete={summary['complete']}")
    if summary["samples_done"]:
        print(f"  work       {summary['attempts']} attempt(s), {summary['compute_seconds']:.1f} s of compute, "
              f"{summary['seconds_per_sample']:.4g} s per sample")
    print(f"  version    code {summary['code_version']}, schema {summary['schema_version']}, "
          f"created {summary['created']}")
    if summary["samples_done"]:
        if "conductance_mean" in summary:
            print(f"  <g>        {summary['conductance_mean']:.6g}  (var {summary['conductance_var']:.4g}), "
                  f"Fano {summary['fano']:.4f}")
        print(f"  g1 fit     slope {summary['g1_slope']:.4f}, intercept {summary['g1_intercept']:.4f}")
        if summary["model"] == "anderson":
            print(f"  unitarity  worst {summary['unitarity_max']:.2e}")
    return 0


def main(argv=None):
    args = _parser().parse_args(argv)
    try:
        return {"run": cmd_run, "plan": cmd_plan, "info": cmd_info, "sample": cmd_sample}[args.command](args)
    except BrokenPipeError:  # `anderson-mpi plan ... | head`
        sys.stderr.close()
        return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
