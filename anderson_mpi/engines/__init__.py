"""The engines: one description of the system in, mode matrices out, by name.

``make_engine(name, setup, comm=None)`` returns an `Engine` whose ``solve(sample_input)`` gives the
`anderson_mpi.system.ModeMatrices` of one sample (the potential V for the Anderson engines). Every
engine consumes the same description (a `anderson_mpi.system.ScatteringSetup`) and returns the same
result type, so the observables, the tests of invariants and the job executor never ask which
engine ran. Engines are registered here in the style of a solver registry: a new engine is one
module and one `EngineSpec`, with its cost (`anderson_mpi.contracts.Cost` of one sample) so that
the scheduler and the memory preflight know it.

- ``transfer``: the renormalized transfer matrix (`anderson_mpi.engines.transfer`), one rank.
- ``petsc``: the distributed sparse direct solve (`anderson_mpi.engines.petsc`; petsc4py loaded
  when the engine is made), one sample over the ranks of ``comm``.
- ``qssep``, ``dephasing``: the stochastic models (`anderson_mpi.engines.chains`, the dephasing
  lattice `anderson_mpi.engines.lattice_dephasing`): a sample is one trajectory's correlation
  matrix G, factored as ``G = Phi Phi^+`` (signature all +1). Their engines solve a whole block of
  samples at once (``solve_block``: the trajectories advance together), each from its own seed.

Engines know nothing of files; the only MPI they see is the communicator passed in.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np

from ..contracts import COMPLEX_BYTES, Cost

__all__ = ["Engine", "EngineSpec", "ENGINES", "make_engine", "engine_cost", "model_setup"]


@dataclass(frozen=True)
class Engine:
    """A ready engine of one run.

    Attributes
    ----------
    name : str
    setup : object
        The description it was built for.
    solve : callable
        ``solve(sample_input) -> ModeMatrices`` (collective over the engine's communicator).
    observes : bool
        Whether this rank computes the observables of the samples (False on the non-leading
        ranks of a group that shares one sample).
    solve_block : callable or None
        ``solve_block([sample_input, ...]) -> [ModeMatrices, ...]``: the samples of a block
        together (engines that advance them at once); None: one `solve` per sample.
    """

    name: str
    setup: object
    solve: Callable
    observes: bool = True
    solve_block: Callable = None


@dataclass(frozen=True)
class EngineSpec:
    name: str
    build: Callable      # (setup, comm) -> Engine
    cost: Callable       # (Nx, N_perp, width) -> Cost of one sample
    description: str
    model: str = "anderson"  # the model whose samples it computes (scattering engines: anderson)


def _transfer_build(setup, comm=None):
    from .transfer import solve_mode_matrices
    return Engine("transfer", setup, lambda V: solve_mode_matrices(V, setup))


def _transfer_cost(Nx, n_perp, width, **_):
    """Per lead and slice one inversion (zgetrf + zgetri: n^3) and one product n^2 n_open."""
    nx, n = Nx, n_perp
    return Cost(lu=2 * nx * n**3 + 2 * n**3,     # the slices, and the right-lead matching
                gemm=nx * n**2 * width,
                calls=2 * (6 * nx + 30),
                # the recursion's storage of one lead (all X_x) next to the stacked result
                memory=COMPLEX_BYTES * (nx * n * n + nx * n * width + 4 * n * n))


def _petsc_build(setup, comm=None):
    from . import petsc
    if comm is None:
        from mpi4py import MPI
        comm = MPI.COMM_SELF
    petsc.load_petsc()
    return Engine("petsc", setup, lambda V: petsc.solve_mode_matrices(V, setup, comm=comm),
                  observes=comm.rank == 0)


def _petsc_cost(Nx, n_perp, width, **_):
    # measured within 1.0-1.3x of the transfer matrix per sample on one rank at N = 20-24, with
    # every rank of the group holding the gathered states
    return _transfer_cost(Nx, n_perp, width) * 1.3


def _chain_modes(phi):
    from ..system import ModeMatrices
    # no leads: no scattering amplitudes (the transport fields are absent, not zero)
    return ModeMatrices(phi=phi, signature=np.ones(phi.shape[-1]), transmission_right=None,
                        reflection_right=None, unitarity_error=0.0)


def _stochastic_build(setup, comm=None):
    """An engine of a stochastic model: seed sequences in, one trajectory's mode matrices out."""
    from .chains import ChainSetup, mode_matrices_from_G, simulate_block
    from .lattice_dephasing import lattice_mode_matrices, simulate_lattice_block
    name = setup.model if isinstance(setup, ChainSetup) else "dephasing"
    if isinstance(setup, ChainSetup):
        def block(seeds):
            return [_chain_modes(phi) for phi in mode_matrices_from_G(simulate_block(setup, seeds))]
    else:
        def block(seeds):
            G = simulate_lattice_block(setup, seeds)
            return [_chain_modes(lattice_mode_matrices(g, setup.shape)) for g in G]
    return Engine(name, setup, lambda seed: block([seed])[0], solve_block=block)


def _stochastic_cost(Nx, n_perp, width, n_steps=0, per_site=0.0):
    """Per step two layers of 2x2 rotations on the rows and columns of G (n = Nx N_perp sites) and
    ``per_site`` units of random numbers per site, then one eigendecomposition of G."""
    n = Nx * n_perp
    return Cost(kernel=(4.0 * n * n + per_site * n) * n_steps, lu=3.0 * n**3, calls=n_steps / 64 + 20,
                memory=COMPLEX_BYTES * 4 * n * n)


def _dephasing_cost(Nx, n_perp, width, n_steps=0):
    # the Brownian phases: normal numbers for every site at every half step (measured: about 45
    # kernel units per site and step on top of the rotations)
    return _stochastic_cost(Nx, n_perp, width, n_steps, per_site=45.0)


def model_setup(run):
    """The description of a stochastic model's run (`ChainSetup`, or `LatticeSetup` in the cube),
    validated: ``ValueError`` whose one line starts with the offending key."""
    params = run.chain_parameters()
    if run.geometry == "chain":
        from .chains import ChainSetup
        return ChainSetup.build(run.model, run.Nx, **params)
    from .lattice_dephasing import LatticeSetup
    params.pop("model", None)
    return LatticeSetup.build(run.shape, **params)


ENGINES = {
    "transfer": EngineSpec("transfer", _transfer_build, _transfer_cost,
                           "renormalized transfer matrix, one rank per sample"),
    "petsc": EngineSpec("petsc", _petsc_build, _petsc_cost,
                        "PETSc/MUMPS sparse direct solve, one sample over a group of ranks"),
    "qssep": EngineSpec("qssep", _stochastic_build, _stochastic_cost,
                        "QSSEP chain: independent trajectories, G = Phi Phi^+", model="qssep"),
    "dephasing": EngineSpec("dephasing", _stochastic_build, _dephasing_cost,
                            "dephasing model (chain or cube): independent trajectories",
                            model="dephasing"),
}


def _spec(name):
    try:
        return ENGINES[name]
    except KeyError:
        raise ValueError(f"unknown engine {name!r} (known: {', '.join(ENGINES)})") from None


def make_engine(name, setup, comm=None):
    """The engine ``name`` for ``setup``; ``comm``: the ranks that share one sample (PETSc)."""
    return _spec(name).build(setup, comm)


def engine_cost(name, Nx, n_perp, width, **model):
    """`Cost` of one sample of engine ``name`` (``width``: the number of mode columns; ``model``:
    the stochastic models' ``n_steps``)."""
    return _spec(name).cost(Nx, n_perp, width, **model)
