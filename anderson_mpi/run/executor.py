"""The main job: samples in seed blocks over MPI ranks, into one result file per run.

Sample ``s`` of a run draws its numbers from ``SeedSequence([seed, run_key(model, geometry,
size), s])``: the Anderson model's unit-width potential, scaled by W (so a W sweep uses common
random numbers), or a stochastic model's trajectory (`sample_input`). Every number is independent
of the rank count, of the dealing of blocks and of interruptions.

Per run, what every sample shares is built once (`RunContext`: the model's setup, the observables'
`Layout`, the engine); per sample: input -> engine -> mode matrices -> observables, summed over
the block (engines that advance a block's samples together get them at once). The pending blocks
of all runs of a job form one pool (`anderson_mpi.run.scheduler`), dealt to the ranks largest
first.
"""
from __future__ import annotations

import platform
import time
from dataclasses import dataclass

import numpy as np

from ..engines import make_engine, model_setup
from ..errors import SampleError
from ..io.progress import ProgressLog, slurm_info
from ..io.store import BlockResult
from ..observables import (BlockState, block_fields, layout_for, make_layout, needs_rng,
                           sample_observables)
from ..system import ScatteringSetup
from . import faults
from .config import run_key
from .mpi import blas_info, limit_blas_threads, worker_groups
from .scheduler import Coordinator, block_cost, work_items

# a fourth word of the seed: the observables' random numbers never reuse the sample's stream
OBSERVABLES_STREAM = 1

__all__ = ["seed_sequence", "observables_seed", "potential", "sample_input", "RunContext", "make_context",
           "compute_block", "execute_job"]


def seed_sequence(run, sample):
    """The seed of sample ``sample`` of ``run``: fixed by the job's seed, the model, geometry and
    size, and the sample's global index."""
    return np.random.SeedSequence([run.seed, run_key(run.geometry, run.Nx, run.Ny, run.Nz, run.model),
                                   sample])


def observables_seed(run, sample):
    """The seed of the random numbers the observables of sample ``sample`` draw (the interval
    sums' probes): a stream of its own, independent of the sample's disorder or trajectory."""
    return np.random.SeedSequence([run.seed, run_key(run.geometry, run.Nx, run.Ny, run.Nz, run.model),
                                   sample, OBSERVABLES_STREAM])


def potential(run, sample):
    """The disorder potential of sample ``sample`` of ``run`` (uniform in [-W/2, W/2])."""
    unit = np.random.default_rng(seed_sequence(run, sample)).random((run.Nx, run.Ny, run.Nz)) - 0.5
    return unit * run.W


def sample_input(run, sample):
    """What the engine of ``run`` needs for one sample: the potential (Anderson model) or the seed
    sequence of the trajectory (the stochastic models)."""
    return potential(run, sample) if run.model == "anderson" else seed_sequence(run, sample)


@dataclass(frozen=True)
class RunContext:
    """What every sample of a run shares, built once: setup, layout, engine, block fields."""

    run: object
    setup: object          # ScatteringSetup, or the stochastic model's setup
    layout: object
    engine: object         # anderson_mpi.engines.Engine: V -> ModeMatrices
    fields: dict

    @property
    def random(self):
        """Whether the observables draw random numbers (each sample then gets its own stream)."""
        return needs_rng(self.layout)


def make_context(run, group_comm=None, blas_threads=1):
    """The `RunContext` of ``run`` (``group_comm``: the ranks sharing one sample)."""
    if run.model == "anderson":
        setup = ScatteringSetup.build(run.shape, run.hopping, run.e_plus, run.e_minus)
        layout = layout_for(setup, run.cuts, **run.observable_options())
    else:
        setup = model_setup(run)
        hopping = run.hopping if len(run.hopping or ()) == 3 else (1.0, 0.0, 0.0)
        layout = make_layout(*run.shape, hopping, run.cuts, transport=False, **run.observable_options())
    engine = make_engine(run.engine, setup, group_comm)
    limit_blas_threads(blas_threads)  # an engine may load a BLAS of its own (PETSc: the system one)
    return RunContext(run=run, setup=setup, layout=layout, engine=engine, fields=block_fields(layout))


def compute_block(ctx, block, rank=0, between_samples=None):
    """Sum the observables of the samples of one block.

    Parameters
    ----------
    ctx : RunContext
    block : int
    rank : int
        Recorded with the block.
    between_samples : callable, optional
        Called after every sample (rank 0 answers scheduling requests there when MPI has no
        thread support).

    Returns
    -------
    BlockResult
        ``sums`` is None where the engine does not observe (a non-leading rank of a PETSc group).

    Raises
    ------
    SampleError
        Naming the run and the sample, for a non-finite result or a unitarity error above
        ``run.unitarity_tol``; the block is then never written.
    """
    run = ctx.run
    start = time.perf_counter()
    sums = {name: np.zeros(spec.shape, spec.dtype) for name, spec in ctx.fields.items()}
    worst = 0.0
    samples = run.block_samples(block)
    state = BlockState()  # consecutive samples of this block only (fourth-order pairs)
    inputs = [sample_input(run, s) for s in samples]
    # engines that advance a block's samples together get them at once; the others one by one
    solved = ctx.engine.solve_block(inputs) if ctx.engine.solve_block else None
    for j, s in enumerate(samples):
        if s in faults.planned("sleep"):
            time.sleep(2.0)
        if s in faults.planned("hang"):
            time.sleep(600.0)
        try:
            if solved is not None:
                modes = solved[j]
            else:
                V = inputs[j]
                if s in faults.planned("nan"):
                    V[0, 0, 0] = np.nan
                modes = ctx.engine.solve(V)
            if s in faults.planned("nan") and solved is not None:
                modes.phi[0, 0, 0] = np.nan
            error = modes.unitarity_error
            if not np.isfinite(error) or not np.all(np.isfinite(modes.phi)):
                raise SampleError("non-finite mode matrices")
            if error > run.unitarity_tol:
                raise SampleError(f"unitarity error {error:.3e} > unitarity_tol {run.unitarity_tol:g}")
            if ctx.engine.observes:
                rng = np.random.default_rng(observables_seed(run, s)) if ctx.random else None
                obs = sample_observables(modes, ctx.layout, state, rng)
                bad = [name for name, value in obs.items() if not np.all(np.isfinite(value))]
                if bad:
                    raise SampleError(f"non-finite observables {bad}")
                for name, value in obs.items():
                    sums[name] += value
        except Exception as err:  # name the run and the sample, whatever went wrong
            raise SampleError(f"run {run.label} sample {s} (block {block}): {err}") from err
        worst = max(worst, error)
        if solved is not None:
            solved[j] = None  # done with this sample's mode matrices
        if between_samples is not None:
            between_samples()
    return BlockResult(block=block, sums=sums if ctx.engine.observes else None, n_samples=len(samples),
                       unitarity_max=worst, seconds=time.perf_counter() - start, rank=rank)


class _Progress:
    """Rank 0's account of the job: structured records per run, and throttled log lines.

    The ETA counts work in the cost model's units (`anderson_mpi.run.scheduler.block_cost`), not
    samples: the pool computes the most expensive blocks first, so samples per second rise
    through a job.
    """

    def __init__(self, runs, files, log, pending):
        self.runs, self.log = runs, log
        self.logs = [ProgressLog(run.path, active=True, warn=log.warning) for run in runs]
        self.attempts = [f.attempt for f in files]
        self.total = sum(r.samples for r in runs)
        self.todo_samples = sum(len(runs[i].block_samples(b)) for i, bs in pending.items() for b in bs)
        self.done = self.total - self.todo_samples
        self.work = sum(block_cost(runs[i], b) for i, bs in pending.items() for b in bs)
        self.work_done = 0.0
        self.start = self.last = time.perf_counter()

    def block(self, record):
        i = record.pop("run_index")
        self.logs[i].write("block", run=self.runs[i].label, attempt=self.attempts[i], **record)
        self.done += record["samples"]
        self.work_done += block_cost(self.runs[i], record["block"])
        now = time.perf_counter()
        if now - self.last >= 5.0 or self.done == self.total:
            self.last = now
            elapsed = now - self.start
            eta = elapsed * (self.work - self.work_done) / self.work_done if self.work_done else float("nan")
            self.log.info("job: samples %d/%d, %.2f samples/s, %.0f%% of the work, ETA %s",
                          self.done, self.total, (self.done - self.total + self.todo_samples) / elapsed,
                          100 * self.work_done / self.work if self.work else 100.0, _hms(eta))


def execute_job(runs, comm, job_text, resumes, log, blas_threads=1, resume_flag=False):
    """Compute every pending block of every run over the ranks of ``comm``; finalize the files.

    All runs' files are opened (collectively, in plan order), their pending blocks go into one
    pool dealt by `anderson_mpi.run.scheduler.Coordinator`, largest first; each block is written
    by the rank that computed it; at the end each file gets its totals (collective).

    Parameters
    ----------
    runs : list of anderson_mpi.run.config.Run
        Same solver settings (job-level keys).
    comm : mpi4py.MPI.Comm
    job_text : str
    resumes : list of bool
        Per run: continue its existing file instead of creating it.
    log : logging.Logger
    blas_threads : int
    resume_flag : bool
        Whether ``--resume`` was given (recorded).

    Returns
    -------
    list of dict
        Per run: the totals and ``n_samples``.
    """
    from ..io.store import RunFile

    group_size = runs[0].petsc_group_size if runs[0].engine == "petsc" else 1
    group_comm, _, n_groups = worker_groups(comm, group_size)
    leader = group_comm.rank == 0
    contexts = [make_context(run, group_comm, blas_threads) for run in runs]

    # No try/finally around the files: closing them is collective, and a rank that fails must
    # go straight to MPI_Abort (parallel.abort_on_error) instead of waiting in H5Fclose.
    files, pending = [], {}
    for i, (run, ctx, resume) in enumerate(zip(runs, contexts, resumes)):
        n_open = ((ctx.setup.lead_plus.n_open, ctx.setup.lead_minus.n_open) if run.model == "anderson"
                  else None)  # the stochastic models have no leads
        files.append(RunFile(run, ctx.layout, comm, job_text=job_text, resume=resume, n_open=n_open))
        done = set(files[-1].counted_blocks().tolist())
        pending[i] = [b for b in range(run.n_blocks) if b not in done]
        if comm.rank == 0:
            ProgressLog(run.path, active=True, warn=log.warning).write(
                "start", run=run.label, attempt=files[-1].attempt, host=platform.node(),
                ranks=comm.size, groups=n_groups, n_blocks=run.n_blocks, done=len(done),
                n_open=list(n_open) if n_open else None, pending=len(pending[i]), resume=bool(resume),
                resume_flag=bool(resume_flag), solver=run.engine, blas=blas_info(),
                slurm=slurm_info())
        channels = (f", open channels {n_open[0]} (E+) and {n_open[1]} (E-) of {ctx.layout.n_perp}"
                    if n_open else "")
        log.info("run %s: %d samples in %d blocks of %d, %d done, %d pending, attempt %d%s", run.label,
                 run.samples, run.n_blocks, run.block_size, len(done), len(pending[i]),
                 files[-1].attempt, channels)

    items = work_items(runs, pending) if comm.rank == 0 else []
    progress = None
    if comm.rank == 0:
        progress = _Progress(runs, files, log, pending)
        log.info("job: %d pending block(s) of %d run(s) dealt to %d worker(s) of %d rank(s), "
                 "largest first", len(items), len(runs), n_groups, comm.size)
    coordinator = Coordinator(comm, list(range(0, comm.size, group_size)), items,
                              on_report=progress.block if progress else None)
    serve = coordinator.serve_pending if comm.rank == 0 and not coordinator.threaded else None

    record, first = None, True
    while True:
        item = coordinator.next_item(record) if leader else None
        if group_size > 1:
            item = group_comm.bcast(item, root=0)
        if item is None:
            break
        if first and comm.rank in faults.planned("raise"):
            raise RuntimeError("injected fault (ANDERSON_MPI_FAULT)")
        first = False
        result = compute_block(contexts[item.run_index], item.block, rank=comm.rank,
                               between_samples=serve)
        record = None
        if leader:
            files[item.run_index].write_block(result)
            record = {"run_index": item.run_index, "block": item.block, "rank": comm.rank,
                      "samples": result.n_samples, "seconds": result.seconds,
                      "unitarity_max": result.unitarity_max}
    coordinator.finish()

    out = []
    for run, store in zip(runs, files):
        totals, n_total = store.finalize()
        mean_g = float(totals["g"] / max(n_total, 1)) if "g" in totals else None
        if comm.rank == 0:
            ProgressLog(run.path, active=True, warn=log.warning).write(
                "complete", run=run.label, attempt=store.attempt, samples=n_total,
                conductance_mean=mean_g)
        log.info("run %s: complete, %d samples%s -> %s", run.label, n_total,
                 f", <g> = {mean_g:.4f}" if mean_g is not None else "", run.path)
        store.close()
        out.append({**totals, "n_samples": n_total})
    group_comm.Free()
    return out


def _hms(seconds):
    if not np.isfinite(seconds):
        return "?"
    seconds = int(round(seconds))
    return f"{seconds // 3600:d}:{seconds % 3600 // 60:02d}:{seconds % 60:02d}"
