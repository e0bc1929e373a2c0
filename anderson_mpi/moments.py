"""Per-sample observables of SPEC section 3, from the mode matrices only.

Gneq is never formed. With ``Phi_a`` the stacked mode matrix of slice ``a`` (``n_open(E+) +
n_open(E-)`` columns, fewer than ``2 N_perp`` when some channels are evanescent) and ``S`` the
signature, ``G_ab = Phi_a S Phi_b^+``, ``K_a = Phi_a^+ Phi_a`` and ``Phi~_a = U^+ Phi_a``
(transverse Fourier transform). Every quantity below is a per-sample value whose sum over
samples (the block sums) is all the estimators need; the connected cumulants are formed
afterwards from these sums (`analysis.estimators`). The names, shapes and meanings of the
values are those of `anderson_mpi.schema.block_fields`.

k-resolved means are stored summed over the orbits of the transverse momenta under the
point symmetries of the ensemble (k -> -k per direction, y <-> z when equivalent). The
disorder mean of any k-diagonal quantity is constant on an orbit, so nothing is lost, and
the files shrink by up to 8x.

`sample_observables` runs the named steps in an order that bounds the peak memory: the
slice Gram matrices (twice the size of Phi) are gone before the Fourier copy of Phi is made,
and the last step overwrites that copy in place.

Pure numpy/scipy: arrays in, arrays out.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import scipy.linalg
from scipy.linalg import blas

from .system import transverse_fft, transverse_ifft

__all__ = ["Layout", "make_layout", "layout_for", "k_orbits", "cut_slices", "cut_pair_slices",
           "BlockState", "sample_observables"]

# Bound on the temporary arrays of the k-batched products (bytes).
_CHUNK_BYTES = 64 * 2**20


def k_orbits(Ny, Nz, hopping):
    """Orbits of the transverse momenta under the point symmetries of the disorder ensemble.

    Parameters
    ----------
    Ny, Nz : int
    hopping : (tx, ty, tz)

    Returns
    -------
    orbit_index : ndarray (Ny*Nz,), int
        Orbit of mode ``n*Nz + m`` (k = 2 pi (n/Ny, m/Nz)).
    orbit_size : ndarray (n_orbits,), int
    """
    n, m = np.meshgrid(np.arange(Ny), np.arange(Nz), indexing="ij")
    images = [(n, m), ((-n) % Ny, m), (n, (-m) % Nz), ((-n) % Ny, (-m) % Nz)]
    if Ny == Nz and hopping[1] == hopping[2]:
        images += [(b, a) for a, b in images]
    canonical = np.min([a * Nz + b for a, b in images], axis=0).ravel()
    representatives, orbit_index = np.unique(canonical, return_inverse=True)
    return orbit_index.astype(np.int64), np.bincount(orbit_index).astype(np.int64)


def cut_slices(Nx, cuts):
    """Slice index of each cut fraction z: the slice whose cell [ix/Nx, (ix+1)/Nx) holds z."""
    cuts = np.asarray(cuts, dtype=float).reshape(-1)
    return np.clip(np.floor(cuts * Nx).astype(np.int64), 0, Nx - 1)


def cut_pair_slices(Nx, cuts4):
    """``(n_pairs, 2)`` slice indices ``(c, d)`` of the fourth-order cut pairs (same rule as
    `cut_slices` for each fraction)."""
    cuts = np.asarray(cuts4, dtype=float).reshape(-1, 2)
    return cut_slices(Nx, cuts.reshape(-1)).reshape(-1, 2)


@dataclass(frozen=True, eq=False)
class Layout:
    """What the observables of a run need besides the sample: sizes, k orbits, cut slices.

    Attributes
    ----------
    Nx, Ny, Nz : int
    orbit_index, orbit_size : ndarray
        See `k_orbits`.
    cut_slices : ndarray (n_cut,), int
        The fixed slice c of each third-order cut (indices, from the run's cut fractions).
    m3_split : bool
        Also compute the coinciding-slice part of m3 (fields ``diag_*``).
    pair_slices : ndarray (n_pairs, 2), int
        The fixed slices (c, d) of each fourth-order cut pair (fields ``c4_*``; none by default).
    """

    Nx: int
    Ny: int
    Nz: int
    orbit_index: np.ndarray
    orbit_size: np.ndarray
    cut_slices: np.ndarray
    m3_split: bool = False
    pair_slices: np.ndarray = field(default_factory=lambda: np.zeros((0, 2), dtype=np.int64))
    orbit_matrix: np.ndarray = field(init=False, repr=False, compare=False)

    def __post_init__(self):
        # (n_orbits, N_perp) indicator: sums a k-resolved array over orbits by one product.
        indicator = np.zeros((len(self.orbit_size), self.Ny * self.Nz))
        indicator[self.orbit_index, np.arange(self.Ny * self.Nz)] = 1.0
        object.__setattr__(self, "orbit_matrix", indicator)

    @property
    def n_perp(self):
        return self.Ny * self.Nz

    @property
    def n_orbits(self):
        return len(self.orbit_size)

    @property
    def n_cuts(self):
        return len(self.cut_slices)

    @property
    def n_pairs(self):
        return len(self.pair_slices)


def make_layout(Nx, Ny, Nz, hopping, cuts, m3_split=False, cuts4=()):
    orbit_index, orbit_size = k_orbits(Ny, Nz, hopping)
    return Layout(Nx, Ny, Nz, orbit_index, orbit_size, cut_slices(Nx, cuts), bool(m3_split),
                  cut_pair_slices(Nx, cuts4))


def layout_for(setup, cuts, m3_split=False, cuts4=()):
    """The `Layout` of a `anderson_mpi.system.ScatteringSetup` (built once per run)."""
    return make_layout(*setup.shape, setup.hopping, cuts, m3_split, cuts4)


class BlockState:
    """What consecutive samples of one seed block share: the fourth-order crossing terms pair
    each sample with the previous one of its block (`anderson_mpi.order4`). A fresh state per
    block makes the sums depend only on the block's own samples, in their fixed order."""

    def __init__(self):
        self.carry = None


# --- building blocks ------------------------------------------------------------------------

def _transverse_fft(arr, layout, axis=1):
    return transverse_fft(arr, layout.Ny, layout.Nz, axis)


def _transverse_ifft(arr, layout, axis):
    return transverse_ifft(arr, layout.Ny, layout.Nz, axis)


def _kdiag_orbit_sums(left, right, layout, weight=None):
    """``out[a, b, o] = sum_{k in o} sum_m left[a, k, m] w_m conj(right[b, k, m])``.

    ``left``, ``right``: (Nx, N_perp, M). Batched over k in chunks that bound the memory.
    """
    nx, n_perp, width = left.shape
    indicator = layout.orbit_matrix
    out = np.zeros((layout.n_orbits, nx * nx), dtype=complex)
    chunk = max(1, _CHUNK_BYTES // (16 * nx * width * 3))
    for k0 in range(0, n_perp, chunk):
        ks = slice(k0, min(n_perp, k0 + chunk))
        lhs = left[:, ks, :].transpose(1, 0, 2)
        if weight is not None:
            lhs = lhs * weight
        rhs = right[:, ks, :].conj().transpose(1, 2, 0)
        block = np.matmul(lhs, rhs).reshape(-1, nx * nx)
        out += indicator[:, ks] @ block
    return np.ascontiguousarray(out.reshape(layout.n_orbits, nx, nx).transpose(1, 2, 0))


def _gram(rows_left, rows_right, weight=None):
    """``out[a, b] = sum_j rows_left[a, j] w_j conj(rows_right[b, j])``.

    Blocked over both row sets so that the temporaries (weighted rows, conjugated rows)
    stay within ``_CHUNK_BYTES`` instead of copying whole arrays of the size of Phi.
    """
    out = np.empty((rows_left.shape[0], rows_right.shape[0]), dtype=complex)
    chunk = max(1, _CHUNK_BYTES // (16 * rows_left.shape[1]))
    for b0 in range(0, rows_right.shape[0], chunk):
        rhs = rows_right[b0:b0 + chunk].conj().T
        for a0 in range(0, rows_left.shape[0], chunk):
            lhs = rows_left[a0:a0 + chunk]
            if weight is not None:
                lhs = lhs * weight
            out[a0:a0 + chunk, b0:b0 + chunk] = lhs @ rhs
    return out


def _slice_grams_lower(phi):
    """Lower triangles of ``K_a = Phi_a^+ Phi_a`` (zeros above), by zherk in place.

    zherk does half the work of a product; handing it the Fortran view of the C-ordered
    slot makes it write conj(K_a)'s upper triangle, which is K_a's lower triangle in C order.
    """
    nx, n_perp, width = phi.shape
    lower = np.zeros((nx, width, width), dtype=complex)
    for a in range(nx):
        out = blas.zherk(1.0, phi[a].T, beta=0.0, c=lower[a].T, trans=0, lower=0, overwrite_c=1)
        if not np.shares_memory(out, lower):  # pragma: no cover - f2py copied
            lower[a] = out.T
    return lower


def _n_leading_plus(s):
    """Number of +1 entries of the signature, which must all come before its -1 entries."""
    n_plus = int(np.count_nonzero(s > 0))
    if not (np.all(s[:n_plus] == 1) and np.all(s[n_plus:] == -1)):
        raise ValueError("signature must be +1 (right incomers) followed by -1 (left incomers)")
    return n_plus


def _hermitian_from_lower(lower):
    return lower + np.tril(lower, -1).conj().T


# --- the steps --------------------------------------------------------------------------------

def _slice_gram_observables(phi, s):
    """``tr_g``, ``tr_gg`` from the slice Grams ``K_a``; also returns ``K = sum_a K_a``.

    The Grams (twice Phi's size) are freed on return.
    """
    nx, n_perp, width = phi.shape
    # The columns are the n_open(E+) right incomers (s = +1), then the left incomers (s = -1);
    # n_open(E+) is N_perp only when every channel is open.
    n_plus = _n_leading_plus(s)
    lower = _slice_grams_lower(phi)
    tr_g = np.einsum("amm->am", lower).real @ s  # Tr G_aa = Tr(S K_a)
    # Tr(G_ab G_ba) = Tr(S K_b S K_a) = sum_mn s_m s_n Re(K_a[m,n] conj K_b[m,n]), K Hermitian:
    # over the stored lower triangles the weight is 1 on the diagonal, 2 below it in the RR and
    # LL blocks, -2 in the LR block. As real Grams without a weighted copy of the triangles:
    # 2 (all entries) - (diagonal) - 4 (LR block: rows of left, columns of right incomers).
    as_real = lower.reshape(nx, -1).view(np.float64)
    diagonal = np.einsum("amm->am", lower).real.copy()  # a copy: a view would keep `lower` alive
    cross = np.ascontiguousarray(lower[:, n_plus:, :n_plus]).reshape(nx, -1).view(np.float64)
    tr_gg = 2 * (as_real @ as_real.T) - diagonal @ diagonal.T - 4 * (cross @ cross.T)
    k_total = _hermitian_from_lower(lower.sum(axis=0))
    return {"tr_g": tr_g, "tr_gg": tr_gg}, k_total


def _trace_g_cubed(k_total, s):
    """``Tr G^3 = Tr (S K)^3`` over the whole sample."""
    sk = s[:, None] * k_total
    return float(np.sum((sk @ sk) * sk.T).real)


def _cut_observables(phi, phi_k, s, layout):
    """The third-order fields on the cuts (fixed slice c, all a and b)."""
    nx, n_perp, width = phi.shape
    n_cut = layout.n_cuts
    obs = {name: np.empty((n_cut, nx, nx), dtype=complex) for name in ("cut_pair", "cut_tr_ggg")}
    for name in ("cut_kdiag_ab_bc", "cut_kdiag_bc_ca"):
        obs[name] = np.empty((n_cut, nx, nx, layout.n_orbits), dtype=complex)
    flat_phi = phi.reshape(nx * n_perp, width)
    tiled_signs = np.tile(s, n_perp)
    for i, c in enumerate(layout.cut_slices):
        g_to_c = (flat_phi @ (s[:, None] * phi[c].conj().T)).reshape(nx, n_perp, n_perp)  # G_bc
        g_flat = g_to_c.reshape(nx, -1)
        obs["cut_pair"][i] = _gram(g_flat, g_flat)  # Tr(G_ac G_cb)
        # L_a = G_ca Phi_a = Phi_c S K_a, so that Tr(G_ab G_bc G_ca) = Tr(S L_b^+ L_a)
        lam = np.empty_like(phi)
        for a in range(nx):  # L_a^T = Phi_a^T conj(G_ac): BLAS conjugates, no copies
            out = blas.zgemm(1.0, phi[a].T, g_to_c[a].T, trans_b=2, c=lam[a].T, overwrite_c=1)
            if not np.shares_memory(out, lam):  # pragma: no cover - f2py copied
                lam[a] = out.T
        obs["cut_tr_ggg"][i] = _gram(lam.reshape(nx, -1), lam.reshape(nx, -1), tiled_signs)
        # G_ab G_bc = Phi_a S L_b^+; the Fourier copy reuses lam's memory
        lam_k = transverse_fft(lam, layout.Ny, layout.Nz, axis=1, overwrite=True)
        del lam
        obs["cut_kdiag_ab_bc"][i] = _kdiag_orbit_sums(phi_k, lam_k, layout, s)
        del lam_k
        # (G_bc G_ca)~_kk = sum_q G~_bc(k,q) conj(G~_ac(k,q))
        g_tilde = _transverse_ifft(_transverse_fft(g_to_c, layout, axis=1), layout, axis=2)
        del g_to_c
        obs["cut_kdiag_bc_ca"][i] = _kdiag_orbit_sums(g_tilde, g_tilde, layout).transpose(1, 0, 2)
        del g_tilde
    return obs


def _lower_gram(plus, minus=None):
    """Lower triangle (C order, zeros above) of ``plus plus^+ - minus minus^+``, by zherk.

    zherk on the Fortran view of a C-ordered block computes the conjugate of what is
    wanted in its upper triangle, which read back in C order is the lower triangle.
    """
    c = blas.zherk(1.0, plus.T, trans=2, lower=0)
    if minus is not None and minus.shape[1]:
        c = blas.zherk(-1.0, minus.T, beta=1.0, c=c, trans=2, lower=0, overwrite_c=1)
    return np.tril(c.T)


def _trace_hermitian_product(lower_a, lower_b):
    """``Tr(A B)`` of two Hermitian matrices from their lower triangles (a real number)."""
    both = np.sum(lower_a * lower_b.conj()).real
    return float(2 * both - np.sum(np.diagonal(lower_a).real * np.diagonal(lower_b).real))


def _diagonal_blocks(phi_k, s, layout):
    """Coinciding-slice fields for the split of m3 (``layout.m3_split``).

    Returns the fields ``diag_tr_g3`` (Tr G_aa^3) and ``diag_kdiag_aa_ac`` (orbit sums of
    (U^+ G_aa G_ac U)_kk), and the lower triangles of the Fourier blocks ``G~_aa``
    (Nx, N_perp, N_perp) that ``diag_tr_g_g2`` needs once (G^2)_aa is known (`_g2_step`).
    The Hermitian blocks come from zherk, half the work of a product.
    """
    nx, n_perp, width = phi_k.shape
    n_plus = int(np.count_nonzero(s > 0))  # the right incomers come first (ScatteringSetup)
    g_lower = np.empty((nx, n_perp, n_perp), dtype=complex)
    tr_cube = np.empty(nx)
    lifted = np.empty_like(phi_k)  # G~_aa Phi~_a S, so that (G_aa G_ac)~ = lifted_a Phi~_c^+
    for a in range(nx):
        g_lower[a] = _lower_gram(phi_k[a, :, :n_plus], phi_k[a, :, n_plus:])
        g_aa = _hermitian_from_lower(g_lower[a])
        np.matmul(g_aa, phi_k[a] * s, out=lifted[a])
        tr_cube[a] = _trace_hermitian_product(_lower_gram(g_aa), g_lower[a])  # Tr(G^2 G)
    kdiag = _kdiag_orbit_sums(lifted, phi_k, layout)
    return {"diag_tr_g3": tr_cube, "diag_kdiag_aa_ac": kdiag}, g_lower


def _g2_step(phi_k, k_total, s, layout, overwrite=True):
    """``g2_kdiag`` (orbit sums of (U^+ (G^2)_ac U)_kk) and the factors of (G^2)~_ac.

    (G^2)_ac = Phi_a (S K S) Phi_c^+; with S K S = F F^+, F = S R^+ (K = R^+ R), the
    k-diagonal is a Gram of Phi~ F, and Phi~ F costs half a product by ztrmm, which overwrites
    ``phi_k`` in place (``overwrite``; else a copy). Returns ``(g2_kdiag, left, right)`` with
    (G^2)~_ac = left_a right_c^+.
    """
    nx, n_perp, width = phi_k.shape
    if not overwrite:
        phi_k = phi_k.copy()
    try:
        chol = scipy.linalg.cholesky(k_total, lower=False, check_finite=False)
        # (Phi~ S R^+)^T = conj(R) S Phi~^T: a left triangular product on the Fortran view
        half_t = blas.ztrmm(1.0, np.asfortranarray(chol.conj() * s), phi_k.reshape(-1, width).T,
                            side=0, lower=0, trans_a=0, overwrite_b=1)
        half = half_t.T.reshape(nx, n_perp, width)
        return _kdiag_orbit_sums(half, half, layout), half, half
    except np.linalg.LinAlgError:  # numerically singular K: fall back to the full product
        half = np.matmul(phi_k, s[:, None] * k_total * s[None, :])
        return _kdiag_orbit_sums(half, phi_k, layout), half, phi_k


def _trace_g_g2_diagonal(g_lower, left, right):
    """``sum_a Tr(G_aa (G^2)_aa)`` from the Fourier blocks (both Hermitian: a real number)."""
    total = 0.0
    for a in range(len(g_lower)):
        if left is right:  # (G^2)~_aa = half_a half_a^+: a zherk
            total += _trace_hermitian_product(g_lower[a], _lower_gram(left[a]))
        else:
            g2_aa = left[a] @ right[a].conj().T
            total += float(np.sum(_hermitian_from_lower(g_lower[a]) * g2_aa.T).real)
    return total


def transport_observables(transmission):
    """``g``, ``g_sq``, ``fano_num`` of the right incomers' transmission matrix."""
    tt = transmission @ transmission.conj().T
    g = float(np.trace(tt).real)
    return {"g": g, "g_sq": g * g, "fano_num": g - float(np.sum(np.abs(tt) ** 2))}


def sample_observables(modes, layout, block=None):
    """All per-sample observables of one disorder sample.

    Parameters
    ----------
    modes : anderson_mpi.system.ModeMatrices
    layout : Layout
    block : BlockState, optional
        The state of the sample's seed block (needed with fourth-order cut pairs: the crossing
        terms pair the sample with the previous one of its block). None: a block of its own.

    Returns
    -------
    dict
        name -> array, with the names, shapes and meanings of
        `anderson_mpi.schema.block_fields` for this layout.
    """
    phi, s = modes.phi, modes.signature
    obs, k_total = _slice_gram_observables(phi, s)
    obs["tr_g3"] = _trace_g_cubed(k_total, s)
    phi_k = _transverse_fft(phi, layout)
    obs["mean_k"] = _kdiag_orbit_sums(phi_k, phi_k, layout, s)
    obs.update(_cut_observables(phi, phi_k, s, layout))
    if layout.n_pairs:
        from .order4 import order4_observables
        block = block if block is not None else BlockState()
        fourth, block.carry = order4_observables(None, phi_k, s, layout.pair_slices,
                                                 layout.orbit_index, layout.n_orbits,
                                                 previous=block.carry)
        obs.update(fourth)
    g_aa = None
    if layout.m3_split:
        diag, g_aa = _diagonal_blocks(phi_k, s, layout)
        obs.update(diag)
    # the carry keeps this phi_k for the next sample: then the last step works on a copy
    obs["g2_kdiag"], left, right = _g2_step(phi_k, k_total, s, layout, overwrite=not layout.n_pairs)
    del phi_k
    if g_aa is not None:
        obs["diag_tr_g_g2"] = _trace_g_g2_diagonal(g_aa, left, right)
    del left, right, g_aa
    obs.update(transport_observables(modes.transmission_right))
    return obs
