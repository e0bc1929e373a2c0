"""Scattering states by the renormalized transfer matrix (docs/theory.md §3).

Forward pass: only the ratios ``X_x = Psi_x Psi_{x+1}^{-1}`` are propagated,
``X_x = (A_x - X_{x-1})^{-1}``, one LAPACK inversion per slice. Backward pass:
``Psi_x = X_x Psi_{x+1}`` from the right lead, which is stable because errors shrink
in that direction (the paper's forward rebuild diverged for long samples).
Left incomers are right incomers of the mirrored sample.

Evanescent lead channels (docs/theory.md §2.4, §3.4) need no special pass: the recursion always works
with all ``N_perp`` transverse modes, the leads enter through the outgoing factor per mode
``mu`` (``exp(i kx)`` or the decaying ``lambda_<``) in ``X_{-1}`` and in the right-lead
matching, and only the ``n_open`` propagating modes get incoming waves, so the states have
``n_open`` columns and t, r are ``n_open x n_open``.

The engine consumes a `anderson_mpi.system.ScatteringSetup` (built once per run) and
returns the result types of `anderson_mpi.system`. Pure numpy/scipy: arrays in, arrays out.
"""
from __future__ import annotations

from functools import lru_cache

import numpy as np
from scipy.linalg import lapack

from ..system import (DEFAULT_HOPPING, E_MINUS, E_PLUS, ModeMatrices, ScatteringSetup,
                     ScatteringStates, check_potential, flux_error, transverse_fft, transverse_ifft)

__all__ = ["right_incoming", "solve_states", "solve_mode_matrices", "scattering_states",
           "mode_matrices"]


@lru_cache(maxsize=64)
def inversion_workspace(n):
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


def right_incoming(V, modes, t_perp):
    """Right-incoming states by the renormalized recursion, without input checks.

    Parameters
    ----------
    V : ndarray (Nx, Ny, Nz), float, C-contiguous
    modes : anderson_mpi.system.LeadModes
        The lead modes at the energy of the states (open and evanescent).
    t_perp : ndarray (N_perp, N_perp)
        Transverse hopping matrix.

    Returns
    -------
    psi : ndarray (Nx, N_perp, n_open), complex
        One column per open incoming mode; a view into the recursion's storage when some
        channels are evanescent.
    transmission, reflection : ndarray (n_open, n_open), complex
    """
    tx, energy = modes.tx, modes.energy
    Nx, Ny, Nz = V.shape
    n_perp = Ny * Nz
    n_open, open_modes = modes.n_open, modes.open_modes
    mu = modes.mu
    # X_{-1} = U diag(mu) U^+: the left lead carries only outgoing (left-moving) waves in the
    # open modes and waves decaying to the left in the evanescent ones.
    x_prev = modes.surface_ratio
    # -(E + T_perp)/tx is the same on every slice; the potential only shifts the diagonal.
    base = -(t_perp + energy * np.eye(n_perp)) / tx
    onsite = V.reshape(Nx, n_perp) / tx
    diag = np.arange(n_perp)
    lwork = inversion_workspace(n_perp)

    # Forward pass; psi doubles as the storage of the X_x, overwritten by the backward pass.
    psi = np.empty((Nx, n_perp, n_perp), dtype=complex)
    for ix in range(Nx):
        slab = psi[ix]
        np.subtract(base, x_prev, out=slab)
        slab[diag, diag] += onsite[ix]
        _invert_inplace(slab, lwork)
        x_prev = slab

    # Right lead (docs/theory.md §3.4): Psi_{Nx-1} = U (a + b), Psi_{Nx} = U (Lbar a + M b), M = diag(mu),
    # Lbar = exp(-i kx) on the open rows; a (N_perp x n_open) is 1/sqrt(v) on the open rows and
    # zero on the evanescent ones (nothing comes in there), b has every row (an evanescent
    # outgoing part decays into the lead). Psi_{Nx-1} = X Psi_{Nx} fixes
    # b = (I - Xt M)^{-1} (Xt Lbar - I) a, Xt = U^+ X_{Nx-1} U.
    # The open rows/columns: a slice (views, no copies) when every channel is open.
    open_rows = slice(None) if n_open == n_perp else open_modes
    inv_sqrt_v = 1 / np.sqrt(modes.velocity)
    amp_in = np.zeros((n_perp, n_open))
    amp_in[open_modes, np.arange(n_open)] = inv_sqrt_v
    x_modes = transverse_ifft(transverse_fft(psi[Nx - 1], Ny, Nz, axis=0), Ny, Nz, axis=1)
    identity = np.eye(n_perp)
    lhs = identity - x_modes * mu
    rhs = (x_modes[:, open_rows] * modes.phase.conj() - identity[:, open_rows]) * inv_sqrt_v
    amp_out = np.linalg.solve(lhs, rhs)
    # conj(mu) = Lbar on the open rows; the evanescent rows of amp_in are zero
    psi_next = transverse_ifft(mu.conj()[:, None] * amp_in + mu[:, None] * amp_out, Ny, Nz)

    # Backward rebuild Psi_x = X_x Psi_{x+1}: stable, errors shrink towards the left. The
    # n_open columns of Psi_x overwrite the first columns of X_x's slot once X_x is used.
    buffer = np.empty((n_perp, n_open), dtype=complex)
    for ix in range(Nx - 1, -1, -1):
        np.matmul(psi[ix], psi_next, out=buffer)
        psi[ix, :, :n_open] = buffer
        psi_next = psi[ix, :, :n_open]
    if n_open < n_perp:
        psi = psi[:, :, :n_open]

    sqrt_v = np.sqrt(modes.velocity)[:, None]
    transmission = sqrt_v * transverse_fft(psi[0], Ny, Nz)[open_rows]
    reflection = sqrt_v * amp_out[open_rows]
    return psi, transmission, reflection


def _incoming(V, modes, t_perp, lead):
    if lead == "R":
        return right_incoming(V, modes, t_perp)
    # A left incomer is a right incomer of the mirrored sample, mirrored back.
    psi, t, r = right_incoming(np.ascontiguousarray(V[::-1]), modes, t_perp)
    return psi[::-1], t, r


def solve_states(V, setup, energy, lead):
    """`ScatteringStates` of a validated ``V`` at one of the setup's energies."""
    if lead not in ("L", "R"):
        raise ValueError(f"lead must be 'L' or 'R', got {lead!r}")
    psi, t, r = _incoming(V, setup.lead_at(energy), setup.t_perp, lead)
    return ScatteringStates(psi=psi, transmission=t, reflection=r, lead=lead, energy=float(energy))


def solve_mode_matrices(V, setup):
    """Stacked mode matrices of a validated ``V`` (right incomers at E+, left at E-).

    Parameters
    ----------
    V : ndarray (Nx, Ny, Nz), float, C-contiguous, of the setup's shape
    setup : anderson_mpi.system.ScatteringSetup

    Returns
    -------
    anderson_mpi.system.ModeMatrices
    """
    Nx, Ny, Nz = V.shape
    n_perp = Ny * Nz
    n_plus = setup.lead_plus.n_open  # columns of the right incomers; then n_open(E-) left ones
    phi = np.empty((Nx, n_perp, n_plus + setup.lead_minus.n_open), dtype=complex)
    psi_r, t_r, r_r = right_incoming(V, setup.lead_plus, setup.t_perp)
    phi[:, :, :n_plus] = psi_r
    del psi_r
    psi_mirror, t_l, r_l = right_incoming(np.ascontiguousarray(V[::-1]), setup.lead_minus, setup.t_perp)
    phi[:, :, n_plus:] = psi_mirror[::-1]
    del psi_mirror
    error = max(flux_error(t_r, r_r), flux_error(t_l, r_l))
    return ModeMatrices(phi=phi, signature=setup.signature, transmission_right=t_r,
                        reflection_right=r_r, unitarity_error=error)


def scattering_states(V, energy, lead, hopping=DEFAULT_HOPPING):
    """Scattering states of sample ``V`` at ``energy`` incoming from ``lead``.

    Parameters
    ----------
    V : array_like (Nx, Ny, Nz), float
        On-site potential of the sample; the leads are clean (V = 0) with the same
        periodic cross-section.
    energy : float
        Any energy with at least one open lead channel and none at a band edge; evanescent
        channels are taken into account (they carry no current and have no incomers).
    lead : {"L", "R"}
        The lead the states come in from.
    hopping : (tx, ty, tz)

    Returns
    -------
    ScatteringStates
        ``psi`` (Nx, Ny*Nz, n_open) with unit incoming current, one column per open mode
        (`LeadModes.open_modes`), ``transmission``, ``reflection`` (n_open x n_open),
        ``conductance``, ``unitarity_error``, ``fano``.

    Raises
    ------
    ValueError
        Wrong ndim, a size < 1, non-finite V, an unknown lead, a channel at a band edge, or no
        open channel.
    """
    V = check_potential(V)
    if lead not in ("L", "R"):
        raise ValueError(f"lead must be 'L' or 'R', got {lead!r}")
    setup = ScatteringSetup.build(V.shape, hopping, energy, energy)
    return solve_states(V, setup, setup.e_plus, lead)


def mode_matrices(V, hopping=DEFAULT_HOPPING, e_plus=E_PLUS, e_minus=E_MINUS, check=True):
    """Stacked mode matrices ``Phi_a`` of sample ``V`` (right incomers at E+, left at E-).

    Parameters
    ----------
    V : array_like (Nx, Ny, Nz)
    hopping : (tx, ty, tz)
    e_plus, e_minus : float
        Energies of the right and left incomers (+0.2 and -0.2 by default, docs/theory.md §5.1).
    check : bool
        Validate ``V`` (the hopping and energies are always validated: they build the
        `ScatteringSetup`). A run builds its setup once and calls `solve_mode_matrices`.

    Returns
    -------
    ModeMatrices
    """
    V = check_potential(V) if check else V
    return solve_mode_matrices(V, ScatteringSetup.build(V.shape, hopping, e_plus, e_minus))
