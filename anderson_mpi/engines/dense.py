"""The non-equilibrium two-point function Gneq (paper eq. (7); docs/theory.md §5).

``Gneq = G^R(E+) - G^L(E-)`` with ``G^alpha(E)_ij = sum_k psi_k(i) conj(psi_k(j))``.
Production code never forms Gneq: it works with the stacked mode matrices
``Phi_a = [Psi^R_a(E+), Psi^L_a(E-)]`` and the signature ``S = diag(+1.., -1..)``,
``G_ab = Phi_a S Phi_b^+`` (`anderson_mpi.observables`). This module forms the full matrix of a
small sample, for tests and for looking at one sample.
"""
from __future__ import annotations

from ..system import DEFAULT_HOPPING, E_MINUS, E_PLUS, check_potential
from .transfer import mode_matrices

__all__ = ["g_neq", "g_neq_from_modes"]


def g_neq_from_modes(modes, shape):
    """``Gneq`` as an ``shape + shape`` array from the mode matrices of any engine."""
    flat = modes.phi.reshape(-1, modes.phi.shape[-1])
    return ((flat * modes.signature) @ flat.conj().T).reshape(tuple(shape) * 2)


def g_neq(V, hopping=DEFAULT_HOPPING, e_plus=E_PLUS, e_minus=E_MINUS):
    """The full two-point function ``Gneq = G^R(E+) - G^L(E-)`` of sample ``V``.

    For small systems and tests only: the result has ``(Nx Ny Nz)^2`` entries. The
    production path (`anderson_mpi.observables`) works with the mode matrices instead.

    Parameters
    ----------
    V : array_like (Nx, Ny, Nz), float
    hopping : (tx, ty, tz)
    e_plus, e_minus : float

    Returns
    -------
    ndarray (Nx, Ny, Nz, Nx, Ny, Nz), complex
        ``G[ix, iy, iz, jx, jy, jz] = Gneq_ij``; Hermitian as a matrix.
    """
    V = check_potential(V)
    return g_neq_from_modes(mode_matrices(V, hopping, e_plus, e_minus), V.shape)
