"""Scattering states by the renormalized transfer matrix (SPEC section 2).

Forward pass: only the ratios ``X_x = Psi_x Psi_{x+1}^{-1}`` are propagated,
``X_x = (A_x - X_{x-1})^{-1}``, one LAPACK inversion per slice. Backward pass:
``Psi_x = X_x Psi_{x+1}`` from the right lead, which is stable because errors shrink
in that direction (the paper's forward rebuild diverged for long samples).
Left incomers are right incomers of the mirrored sample.

Pure numpy/scipy: arrays in, arrays out.
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np
from scipy.linalg import lapack

from .model import (DEFAULT_HOPPING, check_hopping, check_potential, lead_modes, transverse_fft,
                    transverse_hopping, transverse_ifft)

__all__ = ["ScatteringStates", "scattering_states", "right_incoming"]


@dataclass
class ScatteringStates:
    """Scattering states of one sample at one energy, incoming from one lead.

    Attributes
    ----------
    psi : ndarray (Nx, N_perp, N_perp), complex
        ``psi[ix, iy*Nz+iz, k]``: the state incoming in mode ``k``, unit incoming current.
    transmission : ndarray (N_perp, N_perp)
        ``t[k_out, k_in]``, amplitudes into the other lead, current-normalized.
    reflection : ndarray (N_perp, N_perp)
        ``r[k_out, k_in]``, amplitudes back into the incoming lead.
    lead : str
        ``"L"`` or ``"R"``.
    energy : float
    """

    psi: np.ndarray
    transmission: np.ndarray
    reflection: np.ndarray
    lead: str
    energy: float

    @property
    def conductance(self):
        """Dimensionless conductance ``g = Tr t^+ t``."""
        return float(np.sum(np.abs(self.transmission) ** 2))

    @property
    def unitarity_error(self):
        """``max |t^+ t + r^+ r - 1|``: the built-in accuracy check of the recursion."""
        t, r = self.transmission, self.reflection
        flux = t.conj().T @ t + r.conj().T @ r
        return float(np.max(np.abs(flux - np.eye(len(flux)))))

    @property
    def fano(self):
        """Shot-noise Fano factor ``Tr[t t^+ (1 - t t^+)] / Tr[t t^+]``."""
        tt = self.transmission @ self.transmission.conj().T
        g = np.trace(tt).real
        return float((g - np.sum(np.abs(tt) ** 2)) / g)


@lru_cache(maxsize=64)
def _lapack_workspace(n):
    return int(lapack.zgetri_lwork(n)[0].real)


def _invert_inplace(m, lwork):
    """Invert the square complex array ``m`` in place (zgetrf + zgetri, no copies).

    ``m`` is C-contiguous; LAPACK sees its transpose, whose inverse is the transpose of
    the inverse, so the result in ``m`` is ``m^{-1}`` either way.
    """
    lu, piv, info = lapack.zgetrf(m.T, overwrite_a=1)
    if info > 0:
        raise np.linalg.LinAlgError(f"singular slice matrix (zgetrf info={info})")
    inv, info = lapack.zgetri(lu, piv, lwork=lwork, overwrite_lu=1)
    if info != 0:
        raise np.linalg.LinAlgError(f"zgetri failed (info={info})")
    if not np.shares_memory(inv, m):  # f2py had to copy (not expected for this layout)
        m[...] = inv.T


def right_incoming(V, energy, hopping=DEFAULT_HOPPING):
    """Right-incoming states by the renormalized recursion, without input checks.

    Parameters
    ----------
    V : ndarray (Nx, Ny, Nz), float
    energy : float
    hopping : (tx, ty, tz)

    Returns
    -------
    psi : ndarray (Nx, N_perp, N_perp), complex
    transmission, reflection : ndarray (N_perp, N_perp), complex
    """
    tx = hopping[0]
    Nx, Ny, Nz = V.shape
    n_perp = Ny * Nz
    modes = lead_modes(Ny, Nz, energy, hopping)
    U, phase = modes.U, modes.phase
    # X_{-1} = U diag(exp(i kx)) U^+: the left lead carries only outgoing (left-moving) waves.
    # U is the transverse Fourier matrix: FFTs instead of products.
    x_prev = transverse_ifft(phase[:, None] * U.conj().T, Ny, Nz, axis=0)
    # -(E + T_perp)/tx is the same on every slice; the potential only shifts the diagonal.
    base = -(transverse_hopping(Ny, Nz, hopping) + energy * np.eye(n_perp)) / tx
    onsite = V.reshape(Nx, n_perp) / tx
    diag = np.arange(n_perp)
    lwork = _lapack_workspace(n_perp)

    # Forward pass; psi doubles as the storage of the X_x, overwritten by the backward pass.
    psi = np.empty((Nx, n_perp, n_perp), dtype=complex)
    for ix in range(Nx):
        slab = psi[ix]
        np.subtract(base, x_prev, out=slab)
        slab[diag, diag] += onsite[ix]
        _invert_inplace(slab, lwork)
        x_prev = slab

    # Right lead: Psi_{Nx-1} = U (a + b), Psi_{Nx} = U (L* a + L b), Psi_{Nx-1} = X Psi_{Nx}.
    amp_in = np.diag(1 / np.sqrt(modes.velocity))
    x_modes = transverse_ifft(transverse_fft(psi[Nx - 1], Ny, Nz, axis=0), Ny, Nz, axis=1)
    lhs = np.eye(n_perp) - x_modes * phase
    rhs = (x_modes * phase.conj() - np.eye(n_perp)) * amp_in.diagonal()
    amp_out = np.linalg.solve(lhs, rhs)
    psi_next = transverse_ifft(phase.conj()[:, None] * amp_in + phase[:, None] * amp_out, Ny, Nz)

    # Backward rebuild Psi_x = X_x Psi_{x+1}: stable, errors shrink towards the left.
    buffer = np.empty((n_perp, n_perp), dtype=complex)
    for ix in range(Nx - 1, -1, -1):
        np.matmul(psi[ix], psi_next, out=buffer)
        psi[ix] = buffer
        psi_next = psi[ix]

    sqrt_v = np.sqrt(modes.velocity)[:, None]
    transmission = sqrt_v * transverse_fft(psi[0], Ny, Nz)
    reflection = sqrt_v * amp_out
    return psi, transmission, reflection


def scattering_states(V, energy, lead, hopping=DEFAULT_HOPPING):
    """Scattering states of sample ``V`` at ``energy`` incoming from ``lead``.

    Parameters
    ----------
    V : array_like (Nx, Ny, Nz), float
        On-site potential of the sample; the leads are clean (V = 0) with the same
        periodic cross-section.
    energy : float
        Must lie where every lead channel propagates (``|E + eps_k| < 2 tx``).
    lead : {"L", "R"}
        The lead the states come in from.
    hopping : (tx, ty, tz)

    Returns
    -------
    ScatteringStates
        ``psi`` (Nx, Ny*Nz, Ny*Nz) with unit incoming current, ``transmission``,
        ``reflection``, ``conductance``, ``unitarity_error``, ``fano``.

    Raises
    ------
    ValueError
        Wrong ndim, a size < 1, non-finite V, an unknown lead, or evanescent channels.
    """
    V = check_potential(V)
    hopping = check_hopping(hopping)
    if lead not in ("L", "R"):
        raise ValueError(f"lead must be 'L' or 'R', got {lead!r}")
    energy = float(energy)
    if lead == "R":
        psi, t, r = right_incoming(V, energy, hopping)
    else:
        # A left incomer is a right incomer of the mirrored sample, mirrored back.
        psi, t, r = right_incoming(np.ascontiguousarray(V[::-1]), energy, hopping)
        psi = psi[::-1]
    return ScatteringStates(psi=psi, transmission=t, reflection=r, lead=lead, energy=energy)
