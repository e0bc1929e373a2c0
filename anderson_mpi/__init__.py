"""anderson_mpi: coherence cumulants of the 3d Anderson model versus QSSEP.

Public API
----------
scattering_states(V, energy, lead, hopping)   renormalized transfer-matrix scattering states
g_neq(V, hopping, e_plus, e_minus)            full Gneq of a small sample
mode_matrices(V, hopping, e_plus, e_minus)    stacked Phi_a = [psi_R(E+), psi_L(E-)] per slice
lead_modes(Ny, Nz, energy, hopping)           transverse modes, kx, velocities (validates)
"""
from ._version import __version__
from .model import DEFAULT_HOPPING, LeadModes, lead_modes, transverse_hopping
from .transfer import ScatteringStates, scattering_states
from .gneq import ModeMatrices, mode_matrices, g_neq

__all__ = ["__version__", "DEFAULT_HOPPING", "LeadModes", "lead_modes", "transverse_hopping",
           "ScatteringStates", "scattering_states", "ModeMatrices", "mode_matrices", "g_neq"]
