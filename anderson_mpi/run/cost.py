"""The cost model: seconds and memory of one sample of a run, from the declarations.

A run's sample costs its engine's `anderson_mpi.contracts.Cost` plus that of every active
observable group (`anderson_mpi.observables.observables_cost`). Seconds follow from four machine
rates (`Rates`: seconds per complex multiply-add in large products, in batches of small
products, in LU/inversions, and per Python-level call); memory per rank from the mode matrices
the run holds plus the largest working set of a step. The scheduler deals blocks by this cost,
the ETA counts work in it, ``anderson-mpi plan`` prints it, and the memory preflight compares it
with what a rank has.

Everything here is arithmetic on the run's parameters: no lead modes, no layout arrays of the
run's size are built, so planning a job of any size is instant and allocates nothing.
"""
from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from functools import lru_cache

from ..contracts import COMPLEX_BYTES
from ..engines import engine_cost
from ..observables import block_fields, k_orbits, observables_cost
from ..observables.layout import LayoutSize
from ..system import open_channel_count

__all__ = ["Rates", "DEFAULT_RATES", "run_layout", "mode_columns", "sample_cost",
           "sample_seconds", "block_seconds", "memory_per_rank"]

# Above this many transverse momenta the k orbits are estimated instead of enumerated.
_ENUMERATE_ORBITS = 2**22


@dataclass(frozen=True)
class Rates:
    """Seconds per unit of each kind of work (`anderson_mpi.contracts.Cost`), one BLAS thread."""

    gemm: float
    batched: float
    lu: float
    call: float
    kernel: float = 0.0

    def seconds(self, cost):
        return (cost.gemm * self.gemm + cost.batched * self.batched + cost.lu * self.lu
                + cost.kernel * self.kernel + cost.calls * self.call)


# Fitted on the reference machine (2-core AMD EPYC, OpenBLAS 0.3.30/0.3.31 SkylakeX kernels, one
# thread): CPU seconds of the engine and of the observables per sample, cube N = 6 ... 16, with
# and without cuts, the m3 split and a cut pair, equal relative weights (`make bench`, "cost
# model", refits them on any machine and prints measured against predicted).
# The stochastic models' kernels: numba-compiled when numba is installed, numpy otherwise
# (QSSEP chain, N = 16 ... 64, `make bench`).
KERNEL_RATE = {"numba": 1.6e-9, "numpy": 6.3e-9}
DEFAULT_RATES = Rates(gemm=2.96e-10, batched=5.39e-10, lu=3.03e-10, call=8.9e-6,
                      kernel=KERNEL_RATE["numba" if importlib.util.find_spec("numba") else "numpy"])


def _orbit_count(Ny, Nz, hopping):
    if Ny * Nz <= _ENUMERATE_ORBITS:
        return len(k_orbits(Ny, Nz, hopping)[1])
    swap = 2 if (Ny == Nz and hopping[1] == hopping[2]) else 1
    return max(1, (Ny * Nz) // (4 * swap))


def run_layout(run):
    """The run's `LayoutSize`: sizes, options and the number of k orbits (estimated beyond
    `_ENUMERATE_ORBITS` momenta), what the groups' field and cost declarations need."""
    hopping = run.hopping if len(run.hopping or ()) == 3 else (1.0, 0.0, 0.0)
    return LayoutSize(Nx=run.Nx, Ny=run.Ny, Nz=run.Nz, n_orbits=_orbit_count(run.Ny, run.Nz, hopping),
                      n_cuts=len(run.cuts), n_pairs=len(run.cuts4), m3_split=run.m3_split,
                      transport=run.model == "anderson", pair_schedule=run.cuts4_schedule,
                      interval_grid=tuple(run.intervals), interval_probes=run.interval_probes,
                      interval_pair_fraction=run.interval_pair_fraction,
                      interval_exact_moments=run.interval_exact_moments)


def mode_columns(run):
    """Columns of the stacked mode matrices: open channels at E+ plus those at E- (Anderson), the
    sites of the sample (the stochastic models: G = Phi Phi^+, one column per eigenvalue)."""
    if run.model != "anderson":
        return run.Nx * run.Ny * run.Nz
    return (open_channel_count(run.Ny, run.Nz, run.e_plus, run.hopping)
            + open_channel_count(run.Ny, run.Nz, run.e_minus, run.hopping))


def _engine_cost(run, width):
    model = {}
    if run.model != "anderson":
        from ..engines import model_setup
        model["n_steps"] = model_setup(run).n_steps
    return engine_cost(run.engine, run.Nx, run.Ny * run.Nz, width, **model)


@lru_cache(maxsize=1024)  # runs are immutable; the scheduler asks once per block
def sample_cost(run):
    """`Cost` of one sample of ``run``: its engine and every active observable group."""
    width = mode_columns(run)
    return _engine_cost(run, width) + observables_cost(run_layout(run), width)


def sample_seconds(run, rates=DEFAULT_RATES):
    """Expected seconds of one sample on one rank (one BLAS thread)."""
    return rates.seconds(sample_cost(run))


def block_seconds(run, block, rates=DEFAULT_RATES):
    return len(run.block_samples(block)) * sample_seconds(run, rates)


def memory_per_rank(run):
    """Expected peak bytes of one rank computing ``run``'s samples.

    The stacked mode matrices of a sample, the largest working set of the engine or of a group
    on top of them, one block of sums of every field (and the file's buffers of one row), and
    the interpreter with its libraries. With a group of ranks sharing a sample (PETSc), every
    rank of the group holds the gathered mode matrices.
    """
    width = mode_columns(run)
    layout = run_layout(run)
    phi = COMPLEX_BYTES * run.Nx * run.Ny * run.Nz * width
    engine = _engine_cost(run, width).memory
    groups = observables_cost(layout, width).memory
    sums = sum(spec.nbytes for spec in block_fields(layout).values())
    baseline = 150 * 2**20   # Python, numpy, scipy, mpi4py, h5py
    return int(phi + max(engine, groups) + 2 * sums + baseline)
