"""Model parameters, transverse geometry and lead modes (SPEC section 1).

Everything here is pure numpy: arrays in, arrays out, no MPI and no files.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.fft

DEFAULT_HOPPING = (1.0, 0.4, 0.4)


def check_hopping(hopping):
    """Return ``(tx, ty, tz)`` as floats, or raise ``ValueError`` naming the problem."""
    try:
        values = tuple(float(t) for t in hopping)
    except (TypeError, ValueError):
        raise ValueError(f"hopping must be three numbers (tx, ty, tz), got {hopping!r}") from None
    if len(values) != 3:
        raise ValueError(f"hopping must have three entries (tx, ty, tz), got {len(values)}")
    if not all(np.isfinite(values)):
        raise ValueError(f"hopping must be finite, got {values}")
    if values[0] <= 0:
        raise ValueError(f"hopping tx must be > 0 (it sets the lead band), got tx={values[0]}")
    return values


def check_potential(V):
    """Return ``V`` as a C-contiguous float array ``(Nx, Ny, Nz)`` or raise ``ValueError``."""
    V = np.asarray(V)
    if V.ndim != 3:
        raise ValueError(f"V must have ndim 3 (Nx, Ny, Nz), got ndim {V.ndim}")
    if min(V.shape) < 1:
        raise ValueError(f"V: every size must be >= 1, got shape {V.shape}")
    if np.iscomplexobj(V):
        raise ValueError("V must be real (an on-site potential)")
    V = np.ascontiguousarray(V, dtype=float)
    if not np.all(np.isfinite(V)):
        raise ValueError("V contains non-finite values (nan or inf)")
    return V


def _ring_hopping(n, t):
    """Hopping matrix (positive entries) of a periodic ring of n sites.

    A ring of 2 sites has one bond, not two; a single site has none.
    """
    ring = np.zeros((n, n))
    if n == 2:
        ring[0, 1] = ring[1, 0] = t
    elif n >= 3:
        idx = np.arange(n)
        ring[idx, (idx + 1) % n] = t
        ring[(idx + 1) % n, idx] = t
    return ring


def _ring_band(n, t):
    """Eigenvalues of `_ring_hopping` for the plane waves exp(2 pi i m j / n), m = 0..n-1."""
    q = 2 * np.pi * np.arange(n) / n
    factor = {1: 0.0, 2: 1.0}.get(n, 2.0)
    return factor * t * np.cos(q)


def _ring_waves(n):
    j = np.arange(n)
    return np.exp(2j * np.pi * np.outer(j, j) / n) / np.sqrt(n)


def transverse_hopping(Ny, Nz, hopping=DEFAULT_HOPPING):
    """Transverse hopping matrix ``T_perp`` (N_perp x N_perp, real symmetric, positive entries).

    Site order is ``iy * Nz + iz``.
    """
    _, ty, tz = check_hopping(hopping)
    return np.kron(_ring_hopping(Ny, ty), np.eye(Nz)) + np.kron(np.eye(Ny), _ring_hopping(Nz, tz))


@dataclass(frozen=True)
class LeadModes:
    """Propagating modes of a clean lead at one energy.

    Attributes
    ----------
    U : ndarray (N_perp, N_perp), complex
        Transverse plane waves as columns, ``U[iy*Nz+iz, n*Nz+m] = exp(i k.r)/sqrt(N_perp)``.
    eps : ndarray (N_perp,)
        Transverse band energies ``eps_k`` (eigenvalues of ``T_perp``).
    kx : ndarray (N_perp,)
        Longitudinal momenta in (0, pi) with ``cos kx = -(E + eps_k) / (2 tx)``.
    velocity : ndarray (N_perp,)
        ``v_k = 2 tx sin kx`` (> 0).
    """

    U: np.ndarray
    eps: np.ndarray
    kx: np.ndarray
    velocity: np.ndarray

    @property
    def phase(self):
        """``exp(i kx)`` per mode: the outgoing-wave factor per slice."""
        return np.exp(1j * self.kx)


def lead_modes(Ny, Nz, energy, hopping=DEFAULT_HOPPING):
    """Lead modes at ``energy``; raise ``ValueError`` if a channel is evanescent.

    Every mode must propagate: ``|E + eps_k| < 2 tx`` for all k. A marginal or evanescent
    channel is rejected rather than handled, since the unit-current normalization
    ``1/sqrt(v_k)`` is singular there.
    """
    tx, ty, tz = check_hopping(hopping)
    if int(Ny) < 1 or int(Nz) < 1:
        raise ValueError(f"transverse sizes must be >= 1, got Ny={Ny}, Nz={Nz}")
    energy = float(energy)
    if not np.isfinite(energy):
        raise ValueError(f"energy must be finite, got {energy}")
    eps = np.add.outer(_ring_band(Ny, ty), _ring_band(Nz, tz)).ravel()
    cos_kx = -(energy + eps) / (2 * tx)
    worst = np.max(np.abs(cos_kx))
    if worst >= 1.0:
        raise ValueError(
            f"evanescent channel: energy={energy:g} with hopping=(tx={tx:g}, ty={ty:g}, tz={tz:g}) "
            f"and Ny={Ny}, Nz={Nz} has max|E + eps_k| = {worst * 2 * tx:g} >= 2 tx = {2 * tx:g}; "
            "need |E| + max|eps_k| < 2 tx")
    kx = np.arccos(cos_kx)
    U = np.kron(_ring_waves(Ny), _ring_waves(Nz))
    return LeadModes(U=U, eps=eps, kx=kx, velocity=2 * tx * np.sin(kx))


def transverse_fft(arr, Ny, Nz, axis=0, overwrite=False):
    """``U^+`` applied along ``axis`` (a transverse site index ``iy*Nz+iz``) of ``arr``.

    ``U`` is the transverse Fourier matrix, so this costs ``O(N_perp log N_perp)`` per
    column instead of a matrix product. ``overwrite=True`` lets it reuse ``arr``'s memory.
    """
    shape = arr.shape
    split = shape[:axis] + (Ny, Nz) + shape[axis + 1:]
    out = scipy.fft.fft2(arr.reshape(split), axes=(axis, axis + 1), norm="ortho", overwrite_x=overwrite)
    return out.reshape(shape)


def transverse_ifft(arr, Ny, Nz, axis=0):
    """``U`` applied along ``axis`` of ``arr`` (so ``arr U`` for ``axis`` = the last one, as U = U^T)."""
    shape = arr.shape
    split = shape[:axis] + (Ny, Nz) + shape[axis + 1:]
    return scipy.fft.ifft2(arr.reshape(split), axes=(axis, axis + 1), norm="ortho").reshape(shape)
