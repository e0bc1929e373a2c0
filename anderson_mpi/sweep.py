"""The main job: disorder samples in seed blocks over MPI ranks, into one result file per run.

Sample ``s`` of a run draws its unit-width numbers from
``default_rng(SeedSequence([seed, run_key(geometry, size), s]))`` and scales them by W, so a
W sweep uses common random numbers, and every number is independent of the rank count,
of the dealing of blocks and of interruptions.
"""
from __future__ import annotations

import os
import time

import numpy as np

from .config import run_key
from .gneq import mode_matrices
from .moments import field_shapes, make_layout, sample_observables
from .parallel import deal_rounds, worker_groups

__all__ = ["SampleError", "potential", "compute_block", "execute_run"]


class SampleError(RuntimeError):
    """A sample that must not be summed (non-finite numbers, unitarity violated)."""


def potential(run, sample):
    """The disorder potential of sample ``sample`` of ``run`` (uniform in [-W/2, W/2])."""
    seq = np.random.SeedSequence([run.seed, run_key(run.geometry, run.Nx, run.Ny, run.Nz), sample])
    unit = np.random.default_rng(seq).random((run.Nx, run.Ny, run.Nz)) - 0.5
    return unit * run.W


def _fault():
    """Fault injection for the robustness tests: ANDERSON_MPI_FAULT = "raise@RANK" or "nan@SAMPLE"."""
    spec = os.environ.get("ANDERSON_MPI_FAULT", "")
    kind, _, where = spec.partition("@")
    return (kind, int(where)) if kind in ("raise", "nan") and where.lstrip("-").isdigit() else (None, None)


def block_samples(run, block):
    return range(block * run.block_size, min((block + 1) * run.block_size, run.samples))


def make_solver(run, group_comm=None):
    """``V -> ModeMatrices`` for the run's solver."""
    if run.solver == "petsc":
        from .petsc_solver import petsc_mode_matrices
        return lambda V: petsc_mode_matrices(V, run.hopping, run.e_plus, run.e_minus, comm=group_comm)
    return lambda V: mode_matrices(V, run.hopping, run.e_plus, run.e_minus, check=False)


def compute_block(run, layout, block, solve, observe=True):
    """Sum the observables of the samples of one block.

    Returns
    -------
    sums : dict or None
        Block sums (None where ``observe`` is false: a non-leading rank of a PETSc group).
    n : int
    worst : float
        Largest unitarity error in the block.

    Raises
    ------
    SampleError
        Naming the run and the sample, for a non-finite result or a unitarity error above
        ``run.unitarity_tol``; the block is then never written.
    """
    fault, where = _fault()
    sums = {name: np.zeros(shape, dtype) for name, (shape, dtype) in field_shapes(layout).items()}
    worst = 0.0
    samples = block_samples(run, block)
    for s in samples:
        V = potential(run, s)
        if fault == "nan" and where == s:
            V[0, 0, 0] = np.nan
        try:
            modes = solve(V)
            error = modes.unitarity_error
            if not np.isfinite(error) or not np.all(np.isfinite(modes.phi)):
                raise SampleError("non-finite scattering states")
            if error > run.unitarity_tol:
                raise SampleError(f"unitarity error {error:.3e} > unitarity_tol {run.unitarity_tol:g}")
            if observe:
                obs = sample_observables(modes, layout)
                bad = [name for name, value in obs.items() if not np.all(np.isfinite(value))]
                if bad:
                    raise SampleError(f"non-finite observables {bad}")
                for name, value in obs.items():
                    sums[name] += value
        except Exception as err:  # name the run and the sample, whatever went wrong
            raise SampleError(f"run {run.label} sample {s} (block {block}): {err}") from err
        worst = max(worst, error)
    return (sums if observe else None), len(samples), worst


def execute_run(run, comm, job_text, resume, log):
    """Compute every pending block of ``run`` over the ranks of ``comm`` and finalize its file.

    Parameters
    ----------
    run : anderson_mpi.config.Run
    comm : mpi4py.MPI.Comm
    job_text : str
    resume : bool
        Continue an existing file (skip its done blocks) instead of creating it.
    log : logging.Logger

    Returns
    -------
    dict
        The totals (sums over all blocks) and ``n_samples``.
    """
    from .store import RunFile

    layout = make_layout(run.Nx, run.Ny, run.Nz, run.hopping, run.cuts)
    group_size = run.petsc_group_size if run.solver == "petsc" else 1
    group_comm, group, n_groups = worker_groups(comm, group_size)
    leader = group_comm.rank == 0
    solve = make_solver(run, group_comm)
    fault, where = _fault()

    # No try/finally around the file: closing it is collective, and a rank that fails must
    # go straight to MPI_Abort (parallel.abort_on_error) instead of waiting in H5Fclose.
    store = RunFile(run.path, run, layout, comm, job_text=job_text, resume=resume)
    done = set(store.done_blocks().tolist())
    pending = [b for b in range(run.n_blocks) if b not in done]
    log.info("run %s: %d samples in %d blocks of %d, %d done, %d pending, %d rank(s), %d group(s)",
             run.label, run.samples, run.n_blocks, run.block_size, len(done), len(pending),
             comm.size, n_groups)
    start, computed = time.perf_counter(), 0
    n_done = sum(len(block_samples(run, b)) for b in done)
    blocks_done = len(done)
    for blocks in deal_rounds(pending, n_groups):
        log.info("run %s: computing blocks %s", run.label, [b for b in blocks if b is not None])
        if fault == "raise" and where == comm.rank:
            raise RuntimeError("injected fault (ANDERSON_MPI_FAULT)")
        mine = blocks[group]
        finished = []
        if mine is not None:
            sums, n, worst = compute_block(run, layout, mine, solve, observe=leader)
            if leader:
                finished.append((mine, sums, n, worst))
        store.write_round(finished)
        log.info("run %s: wrote blocks %s", run.label, [b for b in blocks if b is not None])
        ours = [b for b in blocks if b is not None]
        n_round = sum(len(block_samples(run, b)) for b in ours)
        computed += n_round
        n_done += n_round
        blocks_done += len(ours)
        elapsed = time.perf_counter() - start
        rate = computed / elapsed
        eta = (run.samples - n_done) / rate if rate > 0 else float("nan")
        log.info("run %s: blocks %d/%d, samples %d/%d, %.2f samples/s, ETA %s",
                 run.label, blocks_done, run.n_blocks, n_done, run.samples, rate, _hms(eta))
    totals, n_total = store.finalize()
    log.info("run %s: complete, %d samples, <g> = %.4f -> %s", run.label, n_total,
             totals["g"] / max(n_total, 1), run.path)
    store.close()
    group_comm.Free()
    return {**totals, "n_samples": n_total}


def _hms(seconds):
    if not np.isfinite(seconds):
        return "?"
    seconds = int(round(seconds))
    return f"{seconds // 3600:d}:{seconds % 3600 // 60:02d}:{seconds % 60:02d}"
