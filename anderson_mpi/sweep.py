"""The main job: disorder samples in seed blocks over MPI ranks, into one result file per run.

Sample ``s`` of a run draws its unit-width numbers from
``default_rng(SeedSequence([seed, run_key(geometry, size), s]))`` and scales them by W, so a
W sweep uses common random numbers, and every number is independent of the rank count,
of the dealing of blocks and of interruptions.

Per run, what every sample shares is built once (`RunContext`: the `ScatteringSetup`, the
observables' `Layout`, the solver); per sample: potential -> engine -> mode matrices ->
observables, summed over the block.
"""
from __future__ import annotations

import platform
import time
from dataclasses import dataclass

import numpy as np

from . import faults
from .config import run_key
from .moments import layout_for, sample_observables
from .parallel import OneLineError, blas_info, deal_rounds, limit_blas_threads, worker_groups
from .progress import ProgressLog, slurm_info
from .schema import block_fields
from .store import BlockResult, StoreError
from .system import ScatteringSetup

__all__ = ["SampleError", "potential", "RunContext", "make_context", "compute_block",
           "execute_run"]


class SampleError(OneLineError, RuntimeError):
    """A sample that must not be summed (non-finite numbers, unitarity violated)."""


def potential(run, sample):
    """The disorder potential of sample ``sample`` of ``run`` (uniform in [-W/2, W/2])."""
    seq = np.random.SeedSequence([run.seed, run_key(run.geometry, run.Nx, run.Ny, run.Nz), sample])
    unit = np.random.default_rng(seq).random((run.Nx, run.Ny, run.Nz)) - 0.5
    return unit * run.W


@dataclass(frozen=True)
class RunContext:
    """What every sample of a run shares, built once: setup, layout, solver, block fields."""

    run: object
    setup: ScatteringSetup
    layout: object
    solve: object          # V -> ModeMatrices
    fields: dict
    group_comm: object = None
    observe: bool = True   # False on the non-leading ranks of a PETSc group


def make_context(run, group_comm=None, blas_threads=1):
    """The `RunContext` of ``run`` (``group_comm``: the ranks sharing one PETSc sample)."""
    setup = ScatteringSetup.build(run.shape, run.hopping, run.e_plus, run.e_minus)
    layout = layout_for(setup, run.cuts, run.m3_split)
    if run.solver == "petsc":
        from . import petsc_solver
        petsc_solver._petsc()            # loads PETSc and with it the system BLAS ...
        limit_blas_threads(blas_threads)  # ... which gets the same thread limit
        solve = lambda V: petsc_solver.solve_mode_matrices(V, setup, comm=group_comm)  # noqa: E731
        observe = group_comm.rank == 0
    else:
        from .transfer import solve_mode_matrices
        solve = lambda V: solve_mode_matrices(V, setup)  # noqa: E731
        observe = True
    return RunContext(run=run, setup=setup, layout=layout, solve=solve,
                      fields=block_fields(layout), group_comm=group_comm, observe=observe)


def compute_block(ctx, block, rank=0):
    """Sum the observables of the samples of one block.

    Returns
    -------
    BlockResult
        ``sums`` is None where ``ctx.observe`` is false (a non-leading rank of a PETSc group).

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
    for s in samples:
        V = potential(run, s)
        if s in faults.planned("nan"):
            V[0, 0, 0] = np.nan
        if s in faults.planned("sleep"):
            time.sleep(2.0)
        if s in faults.planned("hang"):
            time.sleep(600.0)
        try:
            modes = ctx.solve(V)
            error = modes.unitarity_error
            if not np.isfinite(error) or not np.all(np.isfinite(modes.phi)):
                raise SampleError("non-finite scattering states")
            if error > run.unitarity_tol:
                raise SampleError(f"unitarity error {error:.3e} > unitarity_tol {run.unitarity_tol:g}")
            if ctx.observe:
                obs = sample_observables(modes, ctx.layout)
                bad = [name for name, value in obs.items() if not np.all(np.isfinite(value))]
                if bad:
                    raise SampleError(f"non-finite observables {bad}")
                for name, value in obs.items():
                    sums[name] += value
        except Exception as err:  # name the run and the sample, whatever went wrong
            raise SampleError(f"run {run.label} sample {s} (block {block}): {err}") from err
        worst = max(worst, error)
    return BlockResult(block=block, sums=sums if ctx.observe else None, n_samples=len(samples),
                       unitarity_max=worst, seconds=time.perf_counter() - start, rank=rank)


def execute_run(run, comm, job_text, resume, log, blas_threads=1, resume_flag=None):
    """Compute every pending block of ``run`` over the ranks of ``comm`` and finalize its file.

    Parameters
    ----------
    run : anderson_mpi.config.Run
    comm : mpi4py.MPI.Comm
    job_text : str
    resume : bool
        Continue an existing file (skip its done blocks) instead of creating it.
    log : logging.Logger
    blas_threads : int
    resume_flag : bool, optional
        Whether the user asked for ``--resume`` (recorded; a first attempt under ``--resume``
        finds no file and creates it). Defaults to ``resume``.

    Returns
    -------
    dict
        The totals (sums over all blocks) and ``n_samples``.
    """
    from .store import RunFile

    group_size = run.petsc_group_size if run.solver == "petsc" else 1
    group_comm, group, n_groups = worker_groups(comm, group_size)
    ctx = make_context(run, group_comm, blas_threads)
    n_open = (ctx.setup.lead_plus.n_open, ctx.setup.lead_minus.n_open)

    # No try/finally around the file: closing it is collective, and a rank that fails must
    # go straight to MPI_Abort (parallel.abort_on_error) instead of waiting in H5Fclose.
    store = RunFile(run, ctx.layout, comm, job_text=job_text, resume=resume, n_open=n_open)
    progress = ProgressLog(run.path, active=comm.rank == 0, warn=log.warning)
    done = set(store.counted_blocks().tolist())
    pending = [b for b in range(run.n_blocks) if b not in done]
    progress.write("start", run=run.label, attempt=store.attempt, host=platform.node(),
                   ranks=comm.size, groups=n_groups, n_blocks=run.n_blocks, done=len(done),
                   n_open=list(n_open),
                   pending=len(pending), resume=bool(resume),
                   resume_flag=bool(resume if resume_flag is None else resume_flag), solver=run.solver,
                   blas=blas_info(), slurm=slurm_info())
    log.info("run %s: %d samples in %d blocks of %d, %d done, %d pending, %d rank(s), %d group(s), "
             "attempt %d, open channels %d (E+) and %d (E-) of %d", run.label, run.samples,
             run.n_blocks, run.block_size, len(done), len(pending), comm.size, n_groups,
             store.attempt, n_open[0], n_open[1], ctx.setup.n_perp)
    start, computed = time.perf_counter(), 0
    n_done = sum(len(run.block_samples(b)) for b in done)
    blocks_done = len(done)
    for blocks in deal_rounds(pending, n_groups):
        if comm.rank in faults.planned("raise"):
            raise RuntimeError("injected fault (ANDERSON_MPI_FAULT)")
        mine = blocks[group]
        finished = []
        if mine is not None:
            result = compute_block(ctx, mine, rank=comm.rank)
            if ctx.observe:
                finished.append(result)
        store.write_round(finished)
        records = comm.gather([(r.block, r.rank, r.n_samples, r.seconds, r.unitarity_max)
                               for r in finished], root=0)
        for block, rank, n, seconds, worst in sorted(sum(records or [], [])):
            progress.write("block", run=run.label, attempt=store.attempt, block=block, rank=rank,
                           samples=n, seconds=seconds, unitarity_max=worst)
        ours = [b for b in blocks if b is not None]
        n_round = sum(len(run.block_samples(b)) for b in ours)
        computed += n_round
        n_done += n_round
        blocks_done += len(ours)
        rate = computed / (time.perf_counter() - start)
        eta = (run.samples - n_done) / rate if rate > 0 else float("nan")
        log.info("run %s: blocks %d/%d, samples %d/%d, %.2f samples/s, ETA %s",
                 run.label, blocks_done, run.n_blocks, n_done, run.samples, rate, _hms(eta))
    totals, n_total = store.finalize()
    mean_g = totals["g"] / max(n_total, 1)
    progress.write("complete", run=run.label, attempt=store.attempt, samples=n_total,
                   conductance_mean=float(mean_g))
    log.info("run %s: complete, %d samples, <g> = %.4f -> %s", run.label, n_total, mean_g, run.path)
    store.close()
    group_comm.Free()
    return {**totals, "n_samples": n_total}


# Errors that explain themselves in one line when they end a job (no traceback).
ONE_LINE_ERRORS = (SampleError, StoreError)


def _hms(seconds):
    if not np.isfinite(seconds):
        return "?"
    seconds = int(round(seconds))
    return f"{seconds // 3600:d}:{seconds % 3600 // 60:02d}:{seconds % 60:02d}"
