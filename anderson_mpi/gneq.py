"""The non-equilibrium two-point function Gneq (SPEC eq. 7 and section 3).

``Gneq = G^R(E+) - G^L(E-)`` with ``G^alpha(E)_ij = sum_k psi_k(i) conj(psi_k(j))``.
Production code never forms Gneq: it works with the stacked mode matrices
``Phi_a = [Psi^R_a(E+), Psi^L_a(E-)]`` and the signature ``S = diag(+1.., -1..)``,
``G_ab = Phi_a S Phi_b^+``.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .model import DEFAULT_HOPPING, check_hopping, check_potential, lead_modes
from .transfer import right_incoming

__all__ = ["ModeMatrices", "mode_matrices", "g_neq", "E_PLUS", "E_MINUS"]

E_PLUS = 0.2
E_MINUS = -0.2


@dataclass
class ModeMatrices:
    """Both leads' scattering states of one sample, stacked for Gneq.

    Attributes
    ----------
    phi : ndarray (Nx, N_perp, 2 N_perp), complex
        ``phi[a] = [psi_right(E+)[a], psi_left(E-)[a]]``.
    signature : ndarray (2 N_perp,)
        +1 for the right incomers, -1 for the left incomers.
    transmission_right, reflection_right : ndarray (N_perp, N_perp)
        Scattering amplitudes of the right incomers at E+.
    unitarity_error : float
        Worst ``max|t^+ t + r^+ r - 1|`` of the two leads.
    """

    phi: np.ndarray
    signature: np.ndarray
    transmission_right: np.ndarray
    reflection_right: np.ndarray
    unitarity_error: float


def _flux_error(t, r):
    flux = t.conj().T @ t + r.conj().T @ r
    return float(np.max(np.abs(flux - np.eye(len(flux)))))


def check_energies(Ny, Nz, hopping, e_plus, e_minus):
    """Raise ``ValueError`` if either energy opens an evanescent channel."""
    for name, energy in (("e_plus", e_plus), ("e_minus", e_minus)):
        try:
            lead_modes(Ny, Nz, energy, hopping)
        except ValueError as err:
            raise ValueError(f"{name}: {err}") from None


def mode_matrices(V, hopping=DEFAULT_HOPPING, e_plus=E_PLUS, e_minus=E_MINUS, check=True):
    """Stacked mode matrices ``Phi_a`` of sample ``V`` (right incomers at E+, left at E-).

    Parameters
    ----------
    V : array_like (Nx, Ny, Nz)
    hopping : (tx, ty, tz)
    e_plus, e_minus : float
        Energies of the right and left incomers (SPEC: +0.2 and -0.2).
    check : bool
        Validate the inputs (skip only for inputs already validated by a run plan).

    Returns
    -------
    ModeMatrices
    """
    if check:
        V = check_potential(V)
        hopping = check_hopping(hopping)
        check_energies(V.shape[1], V.shape[2], hopping, e_plus, e_minus)
    Nx, Ny, Nz = V.shape
    n_perp = Ny * Nz
    phi = np.empty((Nx, n_perp, 2 * n_perp), dtype=complex)
    psi_r, t_r, r_r = right_incoming(V, e_plus, hopping)
    phi[:, :, :n_perp] = psi_r
    del psi_r
    psi_mirror, t_l, r_l = right_incoming(np.ascontiguousarray(V[::-1]), e_minus, hopping)
    phi[:, :, n_perp:] = psi_mirror[::-1]
    del psi_mirror
    signature = np.concatenate([np.ones(n_perp), -np.ones(n_perp)])
    error = max(_flux_error(t_r, r_r), _flux_error(t_l, r_l))
    return ModeMatrices(phi=phi, signature=signature, transmission_right=t_r,
                        reflection_right=r_r, unitarity_error=error)


def g_neq(V, hopping=DEFAULT_HOPPING, e_plus=E_PLUS, e_minus=E_MINUS):
    """The full two-point function ``Gneq = G^R(E+) - G^L(E-)`` of sample ``V``.

    For small systems and tests only: the result has ``(Nx Ny Nz)^2`` entries. The
    production path (`anderson_mpi.moments`) works with the mode matrices instead.

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
    modes = mode_matrices(V, hopping, e_plus, e_minus)
    flat = modes.phi.reshape(-1, modes.phi.shape[-1])
    return ((flat * modes.signature) @ flat.conj().T).reshape(V.shape + V.shape)
