"""anderson_mpi: coherence cumulants of the 3d Anderson model versus QSSEP.

Public API
----------
scattering_states(V, energy, lead, hopping)   renormalized transfer-matrix scattering states
g_neq(V, hopping, e_plus, e_minus)            full Gneq of a small sample
mode_matrices(V, hopping, e_plus, e_minus)    stacked Phi_a = [psi_R(E+), psi_L(E-)] per slice
lead_modes(Ny, Nz, energy, hopping)           transverse modes, kx, velocities (validates)
ScatteringSetup.build(shape, hopping, e_plus, e_minus)
                                              the run context both engines consume (built once)
make_engine(name, setup, comm)                an engine of the registry (`anderson_mpi.engines`)
petsc_scattering_states / petsc_mode_matrices the same from a distributed MUMPS solve (petsc4py)

Rooms (imports only point down; docs/architecture.md): `errors`, `contracts`, `system` (leaves);
`engines/`; `observables/`; `io/`; `run/`; `cli`.
"""
from ._version import __version__
from .system import (DEFAULT_HOPPING, LeadModes, ModeMatrices, ScatteringSetup, ScatteringStates,
                     lead_modes, transverse_hopping)
from .engines import make_engine
from .engines.transfer import mode_matrices, scattering_states
from .engines.dense import g_neq
from .engines.petsc import petsc_mode_matrices, petsc_scattering_states  # petsc4py imported lazily

__all__ = ["__version__", "DEFAULT_HOPPING", "LeadModes", "lead_modes", "transverse_hopping",
           "ScatteringSetup", "ScatteringStates", "scattering_states", "ModeMatrices",
           "mode_matrices", "g_neq", "make_engine", "petsc_scattering_states",
           "petsc_mode_matrices"]
