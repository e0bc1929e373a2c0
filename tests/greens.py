"""Independent reference solver: Green's functions of the Anderson sample by sparse LU.

This module is deliberately separate from the transfer-matrix code (``transfer.py``): it is
derived from the physics of docs/theory.md §1-§5 only and is used by the tests to check the
production recursion against a completely different route to the same quantities,

    G^r       = (E - H - Sigma_L - Sigma_R)^{-1},
    G^alpha   = G^r Gamma_alpha G^a,          Gamma_alpha = i (Sigma_alpha - Sigma_alpha^+),

with ``G^alpha`` the spectral density of the scattering states incoming from lead ``alpha``
(unit incoming current; Fisher-Lee).  Sum rule: ``G^L + G^R = i (G^r - G^a)``.

Conventions (docs/theory.md §1-§2)
----------------------------
Site ``(ix, iy, iz)`` has flat index ``i = (ix * Ny + iy) * Nz + iz`` (the order of
``V.ravel()``), so slice ``ix`` occupies indices ``ix * N_perp ... (ix + 1) * N_perp - 1`` with
transverse index ``p = iy * Nz + iz``.  ``H_ij = -t_nu`` for nearest neighbours, ``H_ii = V_i``.
The x direction is open (the leads are attached there); y and z are periodic, where a size of 1
has no bond, a size of 2 exactly one bond and a size ``n >= 3`` has ``n`` bonds (with wrap-around).

Lead self-energy (derivation)
-----------------------------
A clean lead is a stack of identical slices, ``H_perp = -T_perp`` on each slice and ``-tx`` between
neighbouring slices.  ``H_perp`` is diagonal in the transverse plane waves
``u_k(r) = exp(i k.r) / sqrt(N_perp)``: ``H_perp u_k = -eps_k u_k``, with per direction of size ``n``
and hopping ``t``: ``eps = 0`` (n = 1), ``t cos k`` (n = 2, k in {0, pi}; one bond only),
``2 t cos k`` (n >= 3).  Mode ``k`` is then a 1d chain with on-site energy ``-eps_k`` and hopping
``-tx``, whose surface Green's function ``g`` obeys ``g = 1 / (E + eps_k - tx^2 g)``.  With
``E + eps_k = -2 tx cos kx`` the roots are ``g = -exp(+-i kx) / tx``; the retarded one has
``Im g < 0``, i.e. ``g = -exp(i kx) / tx`` for ``kx in (0, pi)``.  Hence

    Sigma = tx^2 U diag(g_k) U^+ = -tx U diag(exp(i kx)) U^+,   Im Sigma_k = -tx sin kx = -v_k / 2,

so ``Gamma = U diag(v_k) U^+``.  Equivalently: the outgoing wave ``psi_{x+1} = exp(i kx) psi_x``
in the lead turns the bond term ``-tx psi_{x+1}`` into ``Sigma psi_x``.  ``Sigma`` is the same for
both leads (they have the same cross-section) and is complex symmetric (``eps_k`` is even in k).

Evanescent channels (docs/theory.md §1-§2, ``|E + eps_k| > 2 tx``).  Writing ``z = E + eps_k``, the
two roots of ``tx^2 g^2 - z g + 1 = 0`` are real, with product ``1 / tx^2``; the physical one
(the limit of ``E + i 0``, whose lead wave function ``(tx g)^n`` decays into the lead) is the
smaller, ``|tx g| < 1``:

    g = (z - sign(z) sqrt(z^2 - 4 tx^2)) / (2 tx^2) = 2 / (z + sign(z) sqrt(z^2 - 4 tx^2)),

the second form free of cancellation.  Such a channel gives a real ``Sigma_k = tx^2 g``, no
broadening (``Gamma_k = 0``) and no scattering state; ``Gamma`` has rank ``n_open``.  At a
band edge (``|z| = 2 tx``, zero velocity) the two roots meet: refused, as is an energy where
no channel is open.
"""
from __future__ import annotations

import numpy as np
import scipy.sparse as sp
from scipy.sparse.linalg import splu

__all__ = [
    "hamiltonian",
    "transverse_energies",
    "lead_modes",
    "surface_green",
    "lead_self_energy",
    "retarded_green",
    "lead_spectral",
    "clean_lead_spectral",
]

DEFAULT_HOPPING = (1.0, 0.4, 0.4)


# --------------------------------------------------------------------------------------------
# Hamiltonian
# --------------------------------------------------------------------------------------------
def _periodic_bonds(n):
    """Bonds ``(j, j')`` of a periodic ring of ``n`` sites, without double counting.

    Parameters
    ----------
    n : int
        Number of sites in the direction.

    Returns
    -------
    list of tuple of int
        ``[]`` for ``n = 1``, ``[(0, 1)]`` for ``n = 2`` (the wrap-around bond would be the same
        bond again), and ``n`` bonds including ``(n - 1, 0)`` for ``n >= 3``.
    """
    bonds = [(j, j + 1) for j in range(n - 1)]
    if n >= 3:
        bonds.append((n - 1, 0))
    return bonds


def _check_hopping(hopping):
    tx, ty, tz = (float(t) for t in hopping)
    if not tx > 0:
        raise ValueError(f"longitudinal hopping tx must be > 0, got hopping={hopping!r}")
    return tx, ty, tz


def hamiltonian(V, hopping=DEFAULT_HOPPING):
    """Sparse Hamiltonian of the sample, docs/theory.md §1.1, without the leads.

    Parameters
    ----------
    V : array_like of float, shape (Nx, Ny, Nz)
        On-site potential ``V[ix, iy, iz]``.
    hopping : tuple of float, optional
        ``(tx, ty, tz)``; ``H_ij = -t_nu`` for neighbours along ``nu``.

    Returns
    -------
    scipy.sparse.csr_matrix, shape (Nx*Ny*Nz, Nx*Ny*Nz)
        Real symmetric ``H`` with site index ``i = (ix*Ny + iy)*Nz + iz``. The x direction is
        open; y and z are periodic (size 1: no bond, size 2: one bond, size >= 3: wrap-around).
    """
    V = np.asarray(V, dtype=float)
    if V.ndim != 3:
        raise ValueError(f"V must have shape (Nx, Ny, Nz), got shape {V.shape}")
    tx, ty, tz = _check_hopping(hopping)
    Nx, Ny, Nz = V.shape
    idx = np.arange(V.size).reshape(V.shape)

    rows, cols, vals = [], [], []

    def add(a, b, t):
        # One entry per bond and direction; the transpose is added below (Hermitian, real).
        rows.append(a.ravel())
        cols.append(b.ravel())
        vals.append(np.full(a.size, -t))

    for j in range(Nx - 1):  # open in x: leads take over beyond the sample
        add(idx[j], idx[j + 1], tx)
    for a, b in _periodic_bonds(Ny):
        add(idx[:, a, :], idx[:, b, :], ty)
    for a, b in _periodic_bonds(Nz):
        add(idx[:, :, a], idx[:, :, b], tz)

    if rows:
        r = np.concatenate(rows)
        c = np.concatenate(cols)
        v = np.concatenate(vals)
    else:
        r = c = np.zeros(0, dtype=int)
        v = np.zeros(0)
    diag = np.arange(V.size)
    H = sp.coo_matrix(
        (np.concatenate([v, v, V.ravel()]),
         (np.concatenate([r, c, diag]), np.concatenate([c, r, diag]))),
        shape=(V.size, V.size),
    )
    return H.tocsr()


# --------------------------------------------------------------------------------------------
# Lead modes
# --------------------------------------------------------------------------------------------
def _ring_modes(n, t):
    """Momenta, Fourier matrix and band energies of one periodic transverse direction.

    Returns ``k`` (``2 pi m / n``), ``F[r, m] = exp(i k_m r) / sqrt(n)`` and ``eps`` such that
    the hopping part ``-T`` of that direction satisfies ``-T F[:, m] = -eps[m] F[:, m]``.
    """
    k = 2.0 * np.pi * np.arange(n) / n
    F = np.exp(1j * np.outer(np.arange(n), k)) / np.sqrt(n)
    if n == 1:
        eps = np.zeros(1)  # no bond
    elif n == 2:
        eps = t * np.cos(k)  # a single bond: eigenvalues -t (k=0), +t (k=pi) of -T
    else:
        eps = 2.0 * t * np.cos(k)  # two neighbours each
    return k, F, eps


def transverse_energies(Ny, Nz, hopping=DEFAULT_HOPPING):
    """Transverse momenta, plane-wave basis and ``eps_k`` of the lead cross-section.

    Parameters
    ----------
    Ny, Nz : int
        Transverse sizes.
    hopping : tuple of float, optional
        ``(tx, ty, tz)``.

    Returns
    -------
    ky, kz : ndarray, shape (N_perp,)
        Momenta of mode ``p = n*Nz + m``: ``ky = 2 pi n / Ny``, ``kz = 2 pi m / Nz``.
    U : ndarray, shape (N_perp, N_perp)
        Unitary, ``U[(iy*Nz + iz), (n*Nz + m)] = exp(i (ky iy + kz iz)) / sqrt(N_perp)``.
    eps : ndarray, shape (N_perp,)
        ``eps_k`` such that the transverse Hamiltonian of one slice is ``-U diag(eps) U^+``.
    """
    _, ty, tz = _check_hopping(hopping)
    ky1, Fy, ey = _ring_modes(int(Ny), ty)
    kz1, Fz, ez = _ring_modes(int(Nz), tz)
    # Mode index (n, m) -> n*Nz + m, matching the site index (iy, iz) -> iy*Nz + iz.
    U = np.kron(Fy, Fz)
    eps = np.add.outer(ey, ez).ravel()
    ky = np.repeat(ky1, Nz)
    kz = np.tile(kz1, Ny)
    return ky, kz, U, eps


# Relative distance of |E + eps_k| from 2 tx below which a channel is at a band edge (docs/theory.md §2.3: ~1e-9).
EDGE_TOL = 1e-9


def _open_channels(Ny, Nz, energy, hopping):
    """``z_k = E + eps_k`` of every mode and the mask of the open ones (``|z_k| < 2 tx``).

    Raises ``ValueError`` at a band edge or when no channel is open.
    """
    tx = _check_hopping(hopping)[0]
    _, _, _, eps = transverse_energies(Ny, Nz, hopping)
    z = float(energy) + eps
    gap = np.abs(np.abs(z) - 2.0 * tx) / (2.0 * tx)
    if np.any(gap < EDGE_TOL):
        k = int(np.argmin(gap))
        raise ValueError(f"band edge: energy={energy!r} puts channel {k} of Ny={Ny}, Nz={Nz} at "
                         f"|E + eps_k| = 2 tx (hopping={tuple(hopping)!r}): zero velocity")
    is_open = np.abs(z) < 2.0 * tx
    if not np.any(is_open):
        raise ValueError(f"no open channel at energy={energy!r}, hopping={tuple(hopping)!r}, "
                         f"Ny={Ny}, Nz={Nz}: |E + eps_k| > 2 tx for every k")
    return z, is_open


def lead_modes(Ny, Nz, energy, hopping=DEFAULT_HOPPING):
    """Longitudinal momenta and velocities of the open (propagating) lead channels at ``energy``.

    Parameters
    ----------
    Ny, Nz : int
        Transverse sizes.
    energy : float
        Energy E.
    hopping : tuple of float, optional
        ``(tx, ty, tz)``.

    Returns
    -------
    kx : ndarray, shape (n_open,)
        ``cos kx = -(E + eps_k) / (2 tx)``, ``kx in (0, pi)``, for the modes with ``|E + eps_k| < 2 tx``
        in increasing mode index.
    v : ndarray, shape (n_open,)
        Velocities ``v_k = 2 tx sin kx > 0``.
    U : ndarray, shape (N_perp, n_open)
        The transverse plane waves of those modes (columns of :func:`transverse_energies`' U).

    Raises
    ------
    ValueError
        At a band edge (``|E + eps_k| = 2 tx``) or if no channel is open.
    """
    tx = _check_hopping(hopping)[0]
    _, _, U, _ = transverse_energies(Ny, Nz, hopping)
    z, is_open = _open_channels(Ny, Nz, energy, hopping)
    kx = np.arccos(-z[is_open] / (2.0 * tx))  # in (0, pi)
    v = 2.0 * tx * np.sin(kx)
    return kx, v, U[:, is_open]


def surface_green(Ny, Nz, energy, hopping=DEFAULT_HOPPING):
    """Retarded surface Green's function ``g_k`` of every mode's semi-infinite chain.

    Returns ``g`` (N_perp,), complex: ``Im g < 0`` for open channels, real with ``|tx g| < 1``
    for evanescent ones (module docstring).
    """
    tx = _check_hopping(hopping)[0]
    z, is_open = _open_channels(Ny, Nz, energy, hopping)
    g = np.empty(z.size, dtype=complex)
    zo = z[is_open]
    g[is_open] = (zo - 1j * np.sqrt(4.0 * tx ** 2 - zo ** 2)) / (2.0 * tx ** 2)
    zc = z[~is_open]
    g[~is_open] = 2.0 / (zc + np.sign(zc) * np.sqrt(zc ** 2 - 4.0 * tx ** 2))
    return g


def lead_self_energy(Ny, Nz, energy, hopping=DEFAULT_HOPPING):
    """Retarded self-energy of one semi-infinite clean lead on its adjacent surface slice.

    Parameters
    ----------
    Ny, Nz : int
        Transverse sizes (same cross-section as the sample).
    energy : float
        Energy E.
    hopping : tuple of float, optional
        ``(tx, ty, tz)``.

    Returns
    -------
    ndarray of complex, shape (N_perp, N_perp)
        ``Sigma = tx^2 U diag(g_k) U^+`` in the transverse site basis ``iy*Nz + iz``, with
        `surface_green` (``= -tx U diag(exp(i kx)) U^+`` when every channel is open;
        derivation in the module docstring). Its anti-Hermitian part
        ``(Sigma - Sigma^+)/(2i) = -U diag(v/2) U^+`` is negative semidefinite, of rank n_open.

    Raises
    ------
    ValueError
        At a band edge or if no channel is open.
    """
    tx = _check_hopping(hopping)[0]
    _, _, U, _ = transverse_energies(Ny, Nz, hopping)
    g = surface_green(Ny, Nz, energy, hopping)
    return (U * (tx ** 2 * g)) @ U.conj().T


# --------------------------------------------------------------------------------------------
# Green's functions
# --------------------------------------------------------------------------------------------
def _slice_indices(ix, Ny, Nz):
    n_perp = Ny * Nz
    return np.arange(ix * n_perp, (ix + 1) * n_perp)


def _inverse_operator(V, energy, hopping):
    """LU factorization of ``E - H - Sigma_L - Sigma_R`` (complex, sparse) and the self-energy."""
    V = np.asarray(V, dtype=float)
    Nx, Ny, Nz = V.shape
    n = V.size
    sigma = lead_self_energy(Ny, Nz, energy, hopping)
    H = hamiltonian(V, hopping)
    # Sigma_L acts on slice 0, Sigma_R on slice Nx-1 (for Nx = 1 both on the same slice: summed).
    rows, cols, vals = [], [], []
    for ix in (0, Nx - 1):
        s = _slice_indices(ix, Ny, Nz)
        rows.append(np.repeat(s, s.size))
        cols.append(np.tile(s, s.size))
        vals.append(sigma.ravel())
    S = sp.coo_matrix((np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))),
                      shape=(n, n))  # duplicates are summed on conversion
    M = (float(energy) * sp.identity(n, dtype=complex, format="csc") - H - S).tocsc()
    return splu(M), sigma


def retarded_green(V, energy, hopping=DEFAULT_HOPPING):
    """Dense retarded Green's function of the sample between two clean leads.

    ``G^r = (E - H - Sigma_L - Sigma_R)^{-1}`` by a sparse LU factorization solved against the
    identity. Memory and time grow like ``(Nx Ny Nz)^2``: for small systems only (tests,
    a few thousand sites at most).

    Parameters
    ----------
    V : array_like of float, shape (Nx, Ny, Nz)
        On-site potential.
    energy : float
        Energy E.
    hopping : tuple of float, optional
        ``(tx, ty, tz)``.

    Returns
    -------
    ndarray of complex, shape (Nx, Ny, Nz, Nx, Ny, Nz)
        ``G[ix, iy, iz, jx, jy, jz] = G^r_ij``.

    Raises
    ------
    ValueError
        At a band edge or if no lead channel is open.
    """
    V = np.asarray(V, dtype=float)
    lu, _ = _inverse_operator(V, energy, hopping)
    G = lu.solve(np.eye(V.size, dtype=complex))
    return G.reshape(V.shape + V.shape)


def lead_spectral(V, energy, lead, hopping=DEFAULT_HOPPING):
    """Spectral density of the scattering states from one lead, ``G^r Gamma G^a``.

    Only the ``N_perp`` columns of ``G^r`` on the lead's surface slice are needed, since
    ``Gamma_alpha`` lives there: ``G^alpha = G^r[:, s] Gamma G^r[:, s]^+``. Dense output, so small
    systems only.

    Parameters
    ----------
    V : array_like of float, shape (Nx, Ny, Nz)
        On-site potential.
    energy : float
        Energy E.
    lead : {"L", "R"}
        ``"L"``: states incoming from ``x < 0`` (surface slice ``ix = 0``);
        ``"R"``: from ``x >= Nx`` (surface slice ``ix = Nx - 1``).
    hopping : tuple of float, optional
        ``(tx, ty, tz)``.

    Returns
    -------
    ndarray of complex, shape (Nx, Ny, Nz, Nx, Ny, Nz)
        ``G^alpha_ij = sum_k psi_{alpha,E,k}(i) conj(psi_{alpha,E,k}(j))`` (unit incoming
        current); Hermitian and positive semidefinite.

    Raises
    ------
    ValueError
        For an unknown ``lead``, a band edge or no open channel.
    """
    if lead not in ("L", "R"):
        raise ValueError(f"lead must be 'L' or 'R', got {lead!r}")
    V = np.asarray(V, dtype=float)
    Nx, Ny, Nz = V.shape
    lu, sigma = _inverse_operator(V, energy, hopping)
    s = _slice_indices(0 if lead == "L" else Nx - 1, Ny, Nz)
    rhs = np.zeros((V.size, s.size), dtype=complex)
    rhs[s, np.arange(s.size)] = 1.0
    Gs = lu.solve(rhs)  # G^r[:, s]
    gamma = 1j * (sigma - sigma.conj().T)
    Ga = Gs @ gamma @ Gs.conj().T
    return Ga.reshape(V.shape + V.shape)


def clean_lead_spectral(Nx, Ny, Nz, energy, lead, hopping=DEFAULT_HOPPING):
    """Closed form of ``G^alpha`` for the clean sample (W = 0), docs/theory.md §4.3.

    Every scattering state is a transmitted plane wave ``exp(-+ i kx x) u_k(r) / sqrt(v_k)``, so

        G^R_ij = N_perp^-1 sum_k exp(-i kx (xi - xj)) exp(i k.(r_i - r_j)) / v_k,

    and ``G^L`` the same with ``exp(+i kx (xi - xj))``; ``k = (2 pi n / Ny, 2 pi m / Nz)`` with
    ``eps_k`` from the actual transverse bonds of each size. The sum runs over the open
    channels only: nothing comes in through an evanescent one, and a clean sample scatters no
    open channel into another.

    Parameters
    ----------
    Nx, Ny, Nz : int
        Sample size.
    energy : float
        Energy E.
    lead : {"L", "R"}
        Incoming lead.
    hopping : tuple of float, optional
        ``(tx, ty, tz)``.

    Returns
    -------
    ndarray of complex, shape (Nx, Ny, Nz, Nx, Ny, Nz)

    Raises
    ------
    ValueError
        For an unknown ``lead``, a band edge or no open channel.
    """
    if lead not in ("L", "R"):
        raise ValueError(f"lead must be 'L' or 'R', got {lead!r}")
    kx, v, _ = lead_modes(Ny, Nz, energy, hopping)
    ky, kz, _, _ = transverse_energies(Ny, Nz, hopping)
    _, is_open = _open_channels(Ny, Nz, energy, hopping)
    ky, kz = ky[is_open], kz[is_open]
    sign = -1.0 if lead == "R" else 1.0  # R-incomers travel towards -x
    x = np.arange(Nx)
    # Per mode: psi_k(ix, iy, iz) = exp(sign i kx ix) exp(i (ky iy + kz iz)) / sqrt(N_perp v_k)
    px = np.exp(sign * 1j * np.outer(kx, x))                    # (K, Nx)
    py = np.exp(1j * np.outer(ky, np.arange(Ny)))               # (K, Ny)
    pz = np.exp(1j * np.outer(kz, np.arange(Nz)))               # (K, Nz)
    psi = (px[:, :, None, None] * py[:, None, :, None] * pz[:, None, None, :])
    psi = psi.reshape(kx.size, -1) / np.sqrt(Ny * Nz * v)[:, None]
    G = psi.T @ psi.conj()
    return G.reshape((Nx, Ny, Nz) * 2)
