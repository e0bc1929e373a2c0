"""Fourth order on cut pairs (docs/theory.md §7): the fields behind C4(a, b, c, d).

A run fixes cut pairs ``(c, d)`` (slice indices, `pair_slices`); every ``(a, b)`` is computed.
With ``X1 = G_ab, X2 = G_bc, X3 = G_cd, X4 = G_da`` (slice blocks of Gneq, ``G_xy = Phi_x S
Phi_y^+``) and ``M_xy = E G_xy``,

    Np^4 C4(a,b,c,d) = sum_perp kappa(X1, X2, X3, X4)
                     = sum over the 15 set partitions pi of {1,2,3,4} of
                       (-1)^(|pi|-1) (|pi|-1)!  prod_{B in pi} E[prod_{j in B} X_j]

and after the transverse sums every term is a trace around a -> b -> c -> d -> a. Everything is
computed in the transverse Fourier basis (``phi_k = U^+ Phi``, ``G~_xy = U^+ G_xy U =
phi_k[x] S phi_k[y]^+``), where every disorder mean of a product of consecutive blocks is
diagonal and constant on a k orbit (`anderson_mpi.observables.layout`). Gneq is never formed; nothing of
size ``(Nx N_perp)^2`` exists. The per-sample fields (`order4_field_shapes`; their block sums go
to the result file) and the route of each partition:

* ``{1234}``: ``c4_tr4 = Tr(G_ab G_bc G_cd G_da)``, per sample.
* 3+1 (``{123}{4}`` etc.): ``Tr(E[G_ab G_bc G_cd] M_da)`` from the k-orbit sums of the diagonal of
  the triple product (``c4_k123``, ``c4_k234``, ``c4_k341``, ``c4_k412``) and ``mean_k`` of
  the base group (the estimator reads both; this module does not duplicate ``mean_k``).
* consecutive 2+2 and 2+1+1: the k-orbit sums of ``G_ab G_bc`` (``c4_k2c``) and ``G_ab G_bd``
  (``c4_k2d``); the other two consecutive pairs are slices and conjugates of these:
  ``(G_bc G_cd)~ = c4_k2d[b, c]``, ``(G_cd G_da)~ = conj c4_k2c[a, d]``, ``(G_da G_ab)~ =
  conj c4_k2d[b, a]``.
* ``{13}{2}{4}`` and ``{24}{1}{3}``: ``E Tr(G_ab M_bc G_cd M_da) = sum_{k,k'} E[G~_ab[k',k]
  G~_cd[k,k']] m_bc(k) m_da(k')``; a mean is constant on an orbit, so the per-sample orbit-pair
  sums ``c4_p13[a,b,o,o'] = sum_{k in o, k' in o'} G~_ab[k',k] G~_cd[k,k']`` and
  ``c4_p24[a,b,o,o'] = sum_{k in o, k' in o'} G~_bc[k,k'] G~_da[k',k]`` (``o`` holds the k of
  ``M_bc`` resp. ``M_ab``) make the term exact for any mean.
* the crossing ``{13}{24}``: ``sum_perp E[X1 X3] E[X2 X4]`` is no product of k-diagonal means.
  Route: two distinct samples of one seed block. For consecutive samples ``s-1, s`` of a block
  (in the block's fixed sample order) ``c4_cross = Tr(G^{s-1}_ab G^s_bc G^{s-1}_cd G^s_da)``,
  whose expectation is exactly the crossing term (the samples are independent), so the pair
  mean ``sum c4_cross / sum c4_n_pairs`` is an **unbiased** estimator at every sample count
  (no 1/n bias, nothing for the jackknife to correct; a block of m samples holds m - 1 pairs,
  the first sample of a block contributes none). Why this route: the crossing tensor
  ``E[G~_ab[k1,k2] G~_cd[k3,k4]]`` is only momentum conserving, not diagonal, and storing it
  would take ``Nx^2 N_perp^3`` numbers per pair; a pair of samples costs three cut-sized
  products (about one recursion) and no storage. Consecutive pairing (not all ``m(m-1)``
  pairs) keeps it O(n) in time and needs one carried mode matrix; the price is a larger
  variance than the full U-statistic over all pairs of the block.

All other connected parts are products of sample means, so they carry the usual O(1/n) bias that
the delete-one-block jackknife of `analysis.estimators` removes (to O(1/n^2) for these cubic and
quartic functions of the means). The per-sample fields themselves are exact (no bias, no
approximation): `tests/test_order4.py` checks every one against dense Gneq matrices to 1e-10.

Cost and memory (`anderson_mpi.bench.order4`, ``make bench``): per cut pair, 11 complex products of the size
``Nx N_perp^2 M`` of one cut's work (each ~0.37 recursions at N = 16; 8 for the consecutive
terms, 3 for the crossing), plus ``1 + n_orb / N`` of them for ``c4_p13``, the one part that
grows like ``N^8`` in the cube (``n_orb ~ N^2 / 8``); the Grams over (a, b) and everything else
are ``O(N^6)``. ``low_memory=False`` holds ``G~_bc``, ``G~_ad`` (one more mode matrix) and saves
1.5 of the 11. All products are blocked over transverse momenta (rows), so the working memory is
a fraction of a mode matrix besides the outputs (``c4_p13``, ``c4_p24``: ``Nx^2 n_orb^2`` each);
the carry is the previous sample's ``phi_k`` (one mode matrix, a reference, not a copy).
Storage: ``c4_p13`` and ``c4_p24`` hold ``Nx^2 n_orb^2`` complex numbers each per pair and block
(cube N = 16: 8.3 MB, N = 20: 28 MB, N = 40: 1.4 GB; quasi-1d 8 x 8, Nx = 120: 52 MB), which
dominates the result file; every other field is at most ``Nx^2 n_orb``.

Pure numpy/scipy: arrays in, arrays out; no MPI, no files.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..contracts import COMPLEX_BYTES, Cost, Field

__all__ = ["CUT_PAIRS", "Carry", "order4_field_shapes", "order4_observables", "order4_block_sums"]

# Bound on the temporaries of one block of transverse momenta (bytes), relative to the mode
# matrix: chunks of rows make the working set about this fraction of one mode matrix.
_CHUNK_FRACTION = 0.5
_MIN_ROWS = 16
# k' blocks of the orbit-pair sums: bytes of one (Nx, k'-block, M) temporary (kept in cache
# while every orbit is processed).
_P13_CHUNK_BYTES = 4 * 2**20


@dataclass(frozen=True)
class Carry:
    """What the next sample of the same seed block needs: this sample's ``phi_k`` (a reference
    to the array passed in, not a copy: do not modify it in place afterwards) and signature."""

    phi_k: np.ndarray
    signature: np.ndarray


def order4_field_shapes(nx, n_orbits, n_pairs):
    """Name -> (shape, dtype) of every per-sample field (and so of every block sum).

    ``(c, d)`` = the pair's slices, ``(a, b)`` the free slices, ``o, o'`` k orbits,
    ``(X)~ = U^+ X U`` and ``sum_{k in o} (X)~_kk`` is written "k-orbit sum of X".

    ===========  ===============================  ===========================================
    name         shape                            per-sample value
    ===========  ===============================  ===========================================
    c4_tr4       (n_pairs, Nx, Nx)         c128   Tr(G_ab G_bc G_cd G_da)
    c4_k2c       (n_pairs, Nx, Nx, n_orb)  c128   k-orbit sum of G_ab G_bc
    c4_k2d       (n_pairs, Nx, Nx, n_orb)  c128   k-orbit sum of G_ab G_bd
    c4_k123      (n_pairs, Nx, Nx, n_orb)  c128   k-orbit sum of G_ab G_bc G_cd
    c4_k234      (n_pairs, Nx, Nx, n_orb)  c128   k-orbit sum of G_bc G_cd G_da
    c4_k341      (n_pairs, Nx, Nx, n_orb)  c128   k-orbit sum of G_cd G_da G_ab
    c4_k412      (n_pairs, Nx, Nx, n_orb)  c128   k-orbit sum of G_da G_ab G_bc
    c4_p13       (n_pairs, Nx, Nx, n_orb, n_orb)  sum_{k in o, k' in o'} G~_ab[k',k] G~_cd[k,k']
    c4_p24       (n_pairs, Nx, Nx, n_orb, n_orb)  sum_{k in o, k' in o'} G~_bc[k,k'] G~_da[k',k]
    c4_cross     (n_pairs, Nx, Nx)         c128   Tr(G'_ab G_bc G'_cd G_da), G' = the previous
                                                  sample of the same block (0 for the first)
    c4_n_pairs   ()                        f64    1 if the sample has a previous one, else 0
    ===========  ===============================  ===========================================

    Block sums: every field summed over the block's samples; ``c4_n_pairs`` then counts the
    sample pairs behind ``c4_cross`` (``n_samples - 1``). The estimator (`analysis.estimators.
    cumulants4`) also needs ``mean_k`` of the base group (`anderson_mpi.observables.base`).
    """
    c = np.complex128
    kd = (n_pairs, nx, nx, n_orbits)
    return {
        "c4_tr4": ((n_pairs, nx, nx), c),
        "c4_k2c": (kd, c),
        "c4_k2d": (kd, c),
        "c4_k123": (kd, c),
        "c4_k234": (kd, c),
        "c4_k341": (kd, c),
        "c4_k412": (kd, c),
        "c4_p13": ((n_pairs, nx, nx, n_orbits, n_orbits), c),
        "c4_p24": ((n_pairs, nx, nx, n_orbits, n_orbits), c),
        "c4_cross": ((n_pairs, nx, nx), c),
        "c4_n_pairs": ((), np.float64),
    }


def _chunk_rows(nx, n_perp, width, n_src):
    """k rows per block: the block's temporaries stay near _CHUNK_FRACTION of one mode matrix,
    but at least _MIN_ROWS rows (fewer rows make the source products memory bound)."""
    per_row = 16 * nx * (n_src * n_perp + n_perp + 9 * width)  # H rows, G_cb, objects, copies
    rows = int(_CHUNK_FRACTION * 16 * nx * n_perp * width // per_row)
    return int(max(1, min(n_perp, max(rows, _MIN_ROWS))))


def _kdiag_add(acc, left, right, indicator_ks, weight=None):
    """``acc[o, (a, b)] += conj(sum_{k in block, k in o} sum_m conj(left[a,k,m]) w_m right[b,k,m])``,
    i.e. the k-orbit sums of ``left_a W right_b^+`` on the diagonal. Only ``left`` is copied."""
    nk = left.shape[1]
    lhs = left.conj().transpose(1, 0, 2)
    if weight is not None:
        lhs *= weight
    block = np.matmul(lhs, right.transpose(1, 2, 0)).reshape(nk, -1)
    acc += indicator_ks @ block.conj()


def _pair_fields(P, s, c, d, orbits, previous, out, i, low_memory=True):
    # orbits: the run's Layout (orbit_matrix, orbit_order, orbit_starts, orbit_members)
    """All fields of cut pair i = (c, d) (module docstring) from the Fourier modes P, written
    into ``out[name][i]``."""
    nx, n_perp, width = P.shape
    no = orbits.n_orbits
    flat = P.reshape(nx * n_perp, width)
    Pc, Pd = P[c], P[d]
    Y = (Pc * s) @ Pd.conj().T                                   # G~_cd
    # Row sources F, each giving H_b = F S P_b^+ (N_perp x N_perp per slice b), f = 0..4:
    #   Pd -> G~_db,  Y^+ Pc -> G~_dc G~_cb,  Y Pd -> G~_cd G~_db,  Pc -> G~_cb,
    #   Y' Pd -> G~'_cd G~_db (crossing; ' = the previous sample). The rows of a block of
    #   momenta are formed when needed (Y[rows] Pd costs 1/Nx of one source product).
    crossing = previous is not None
    if crossing:
        Pp, sp = previous.phi_k, previous.signature
        Yp = (Pp[c] * sp) @ Pp[d].conj().T                       # G~'_cd
    Yh = np.ascontiguousarray(Y.conj().T)
    ns = 5 if crossing else 4
    if not low_memory:
        # hold G~_bc and G~_ad for all slices (one mode matrix): the rows of the H's then
        # follow from products with Y (N_perp^3 per slice instead of N_perp^2 M)
        g_bc = (flat @ (Pc * s).conj().T).reshape(nx, n_perp, n_perp)   # [b, j, q] = G~_bc[j, q]
        g_ad = (flat @ (Pd * s).conj().T).reshape(nx, n_perp, n_perp)   # [a, j, q] = G~_ad[j, q]
        Yph = np.ascontiguousarray(Yp.conj().T) if crossing else None

    tr4 = np.zeros((nx, nx), dtype=complex)
    cross = np.zeros((nx, nx), dtype=complex)
    acc = {name: np.zeros((no, nx * nx), dtype=complex)
           for name in ("c4_k2c", "c4_k2d", "c4_k123", "c4_k412", "c4_k341")}
    k234 = np.zeros((n_perp, nx, nx), dtype=complex)
    p24 = out["c4_p24"][i]                                       # [a, b, o (k), o' (k')]
    chunk = _chunk_rows(nx, n_perp, width, ns)
    for k0 in range(0, n_perp, chunk):
        ks = slice(k0, min(n_perp, k0 + chunk))
        nk = ks.stop - k0
        ind = orbits.orbit_matrix[:, ks]
        if low_memory:
            x = np.empty((ns, nk, width), dtype=complex)
            x[0], x[3] = Pd[ks], Pc[ks]
            np.matmul(Yh[ks], Pc, out=x[1])
            np.matmul(Y[ks], Pd, out=x[2])
            if crossing:
                np.matmul(Yp[ks], Pd, out=x[4])
            x *= s
            x = x.reshape(ns * nk, width).conj().T               # (M, ns nk)
            gh = (flat @ x).reshape(nx, n_perp, ns, nk)
            del x
        else:
            gh = np.empty((nx, n_perp, ns, nk), dtype=complex)
            gh[:, :, 0, :] = g_ad[:, :, ks]
            np.matmul(g_bc, Y[:, ks], out=gh[:, :, 1, :])
            np.matmul(g_ad, Yh[:, ks], out=gh[:, :, 2, :])
            gh[:, :, 3, :] = g_bc[:, :, ks]
            if crossing:
                np.matmul(g_ad, Yph[:, ks], out=gh[:, :, 4, :])
        np.conjugate(gh, out=gh)                     # gh[b, j, f, r] = H^f_b[k0 + r, j]
        gcb = gh[:, :, 3, :].conj()                  # [b, j, r] = conj G~_cb[k0 + r, j]
        # objects O^f_b[r, :] = H^f_b[r, :] P_b, f = 0..3: Rd, B' = G~_dc Rc, B = G~_cd Rd, Rc
        obj = np.matmul(gh[:, :, :4, :].reshape(nx, n_perp, 4 * nk).transpose(0, 2, 1), P)
        rd, bp = obj[:, :nk], obj[:, nk:2 * nk]
        bb, rc = obj[:, 2 * nk:3 * nk], obj[:, 3 * nk:]
        pk = P[:, ks, :]
        # Tr(G_ab G_bc G_cd G_da) = sum_{k, m} B_a[k,m] s_m conj(Rc_b[k,m])
        tr4 += (bb.reshape(nx, -1) * np.tile(s, nk)) @ rc.reshape(nx, -1).conj().T
        # k-orbit sums: (G_ab G_bc)~ = P_a S Rc_b^+, (G_ab G_bd)~ = P_a S Rd_b^+,
        # (G_ab G_bc G_cd)~ = P_a S B'_b^+, (G_da G_ab G_bc)~ = Rd_a S Rc_b^+,
        # (G_cd G_da G_ab)~ = B_a S P_b^+
        lhs = pk.conj().transpose(1, 0, 2) * s
        for name, right in (("c4_k2c", rc), ("c4_k2d", rd), ("c4_k123", bp)):
            block = np.matmul(lhs, right.transpose(1, 2, 0)).reshape(nk, -1)
            acc[name] += ind @ block.conj()
        del lhs, block
        _kdiag_add(acc["c4_k412"], rd, rc, ind, s)
        _kdiag_add(acc["c4_k341"], bb, pk, ind, s)
        del obj, rc, rd, bp, bb
        # (G_bc G_cd G_da)~_kk = sum_q conj(G~_cb[q,k]) (G~_cd G~_da)[q,k], q in this block
        k234 += np.matmul(gh[:, :, 2, :].transpose(1, 0, 2), gcb.transpose(1, 2, 0))
        # c4_p24: sum_{k in o, k' in o'} conj(G~_cb[k',k]) G~_da[k',k], k' in this block
        g_da = gh[:, orbits.orbit_order, 0, :]                         # [a, k (orbit order), r]
        g_cb = gcb[:, orbits.orbit_order, :]
        for o in range(no):
            j0, j1 = orbits.orbit_starts[o], orbits.orbit_starts[o + 1]
            blk = np.matmul(g_da[:, j0:j1, :].transpose(2, 0, 1), g_cb[:, j0:j1, :].transpose(2, 1, 0))
            p24[:, :, o, :] += (ind @ blk.reshape(nk, -1)).reshape(no, nx, nx).transpose(1, 2, 0)
        del g_da, g_cb, gcb
        if crossing:
            # Tr(G'_ab G_bc G'_cd G_da) = sum_{k, m} s'_m conj(Xb_b[k,m]) Xa_a[k,m],
            # Xb = G~_cb P'_b, Xa = G~'_cd G~_da P'_a
            xx = np.matmul(gh[:, :, 3:, :].reshape(nx, n_perp, 2 * nk).transpose(0, 2, 1), Pp)
            xb, xa = xx[:, :nk], xx[:, nk:]
            cross += (xa.reshape(nx, -1) * np.tile(sp, nk)) @ xb.reshape(nx, -1).conj().T
            del xx, xa, xb
        del gh

    out["c4_tr4"][i] = tr4
    out["c4_cross"][i] = cross
    for name, value in acc.items():
        out[name][i] = value.reshape(no, nx, nx).transpose(1, 2, 0)
    out["c4_k234"][i] = (orbits.orbit_matrix @ k234.reshape(n_perp, -1)).reshape(no, nx, nx).transpose(1, 2, 0)
    del k234
    _p13(P, s, Y, orbits, out["c4_p13"][i])


def _p13(P, s, Y, orbits, out):
    """``out[a, b, o, o'] = sum_{k in o, k' in o'} G~_ab[k',k] Y[k,k']``.

    ``= conj sum_{k' in o'} sum_m conj(P_a[k',m]) s_m V_b[k',m]`` with ``V_b[k', m] = sum_{k in o}
    conj(Y[k,k']) P_b[k,m]``: for each block of k' (outer loop, its rows of P stay in cache) and
    each orbit o, one product for V and one k'-diagonal Gram. The Gram costs ``Nx^2 N_perp M``
    per orbit: this is the part of the order-4 work that grows like N^8 in the cube.
    """
    nx, n_perp, width = P.shape
    no = orbits.n_orbits
    chunk = int(max(1, min(n_perp, _P13_CHUNK_BYTES // (16 * nx * width))))
    yc = Y.conj()
    out[...] = 0.0                                               # accumulates the conjugate
    for k0 in range(0, n_perp, chunk):
        ks = slice(k0, min(n_perp, k0 + chunk))
        nk = ks.stop - k0
        lhs = P[:, ks, :].conj().transpose(1, 0, 2) * s          # (nk, Nx, M)
        ind = orbits.orbit_matrix[:, ks]
        for o in range(no):
            idx = orbits.orbit_members[o]
            v = np.matmul(yc[idx, ks].T, P[:, idx, :])            # (Nx, nk, M) = V_b[k', m]
            block = np.matmul(lhs, v.transpose(1, 2, 0))         # (nk, Nx, Nx)
            out[:, :, o, :] += (ind @ block.reshape(nk, -1)).reshape(no, nx, nx).transpose(1, 2, 0)
    np.conjugate(out, out=out)


def order4_observables(phi_k, signature, layout, previous=None, low_memory=True):
    """Per-sample fourth-order observables on the layout's cut pairs (`order4_field_shapes`).

    Parameters
    ----------
    phi_k : ndarray (Nx, N_perp, M), complex
        The sample's mode matrices in the transverse Fourier basis (axis 1). ``M`` is any number
        of columns (2 N_perp when every channel is open, fewer otherwise).
    signature : ndarray (M,)
        +1 / -1 per column, in any order.
    layout : anderson_mpi.observables.layout.Layout
        Its ``pair_slices`` (c, d) (``c == d`` is allowed) and k orbits.
    previous : Carry or None
        The carry returned for the previous sample of the SAME seed block; None for the first
        sample of a block (its ``c4_cross`` is then 0 and ``c4_n_pairs`` 0).
    low_memory : bool
        True: every product blocked over momenta (working set a fraction of one mode matrix).
        False: hold ``G~_bc`` and ``G~_ad`` of all slices (one more mode matrix) and save 1.5 of
        the 11 cut-sized products. Same results to rounding.

    Returns
    -------
    obs : dict
        name -> array, shapes and meanings of `order4_field_shapes`.
    carry : Carry
        For the next sample of the block: a reference to ``phi_k`` and ``signature`` (one mode
        matrix, no copy).
    """
    P = np.ascontiguousarray(phi_k, dtype=np.complex128)
    if P.ndim != 3:
        raise ValueError(f"phi_k must have shape (Nx, N_perp, M), got {np.shape(phi_k)}")
    nx, n_perp, width = P.shape
    if (nx, n_perp) != (layout.Nx, layout.n_perp):
        raise ValueError(f"phi_k {P.shape} does not match the layout's (Nx, N_perp) = "
                         f"{(layout.Nx, layout.n_perp)}")
    s = np.asarray(signature, dtype=float).reshape(-1)
    if s.shape != (width,) or not np.all(np.abs(s) == 1.0):
        raise ValueError(f"signature must hold M = {width} entries +-1")
    pairs = np.asarray(layout.pair_slices, dtype=np.int64).reshape(-1, 2)
    if pairs.size and (pairs.min() < 0 or pairs.max() >= nx):
        raise ValueError(f"pair slices must lie in [0, Nx = {nx}), got {pairs.tolist()}")
    if previous is not None:
        pp = previous.phi_k
        if pp.ndim != 3 or pp.shape[:2] != (nx, n_perp) or previous.signature.shape != (pp.shape[2],):
            raise ValueError(f"previous sample's phi_k {pp.shape} does not match ({nx}, {n_perp}, *)")

    shapes = order4_field_shapes(nx, layout.n_orbits, len(pairs))
    obs = {name: np.zeros(shape, dtype) for name, (shape, dtype) in shapes.items()}
    for i, (c, d) in enumerate(pairs):
        _pair_fields(P, s, int(c), int(d), layout, previous, obs, i, low_memory)
    obs["c4_n_pairs"] = np.float64(0.0 if previous is None else 1.0)
    return obs, Carry(phi_k=P, signature=s)


def order4_block_sums(samples, layout):
    """Block sums of one seed block: ``samples`` yields ``(phi_k, signature)`` in the block's
    fixed sample order (global sample indices increasing). The carry starts empty at the block's
    first sample, so the sums depend only on the block's own samples and their order, never on
    which rank computes the block or what it computed before.

    Returns ``(sums, n_samples)``.
    """
    sums, carry, n = None, None, 0
    for phi_k, signature in samples:
        obs, carry = order4_observables(phi_k, signature, layout, previous=carry)
        sums = obs if sums is None else {k: sums[k] + v for k, v in obs.items()}
        n += 1
    return sums, n


MEANINGS = {
    "c4_tr4": "Tr(G_ab G_bc G_cd G_da)",
    "c4_k2c": "sum_{k in o} (U^+ G_ab G_bc U)_kk",
    "c4_k2d": "sum_{k in o} (U^+ G_ab G_bd U)_kk",
    "c4_k123": "sum_{k in o} (U^+ G_ab G_bc G_cd U)_kk",
    "c4_k234": "sum_{k in o} (U^+ G_bc G_cd G_da U)_kk",
    "c4_k341": "sum_{k in o} (U^+ G_cd G_da G_ab U)_kk",
    "c4_k412": "sum_{k in o} (U^+ G_da G_ab G_bc U)_kk",
    "c4_p13": "sum_{k in o, k' in o'} G~_ab[k',k] G~_cd[k,k']",
    "c4_p24": "sum_{k in o, k' in o'} G~_bc[k,k'] G~_da[k',k]",
    "c4_cross": "Tr(G'_ab G_bc G'_cd G_da), G' the previous sample of the block (0 for the first)",
    "c4_n_pairs": "1 if the sample has a previous one in its block (block sum: sample pairs)",
}


class CutPairsGroup:
    """C4 on the job's cut pairs (``cuts4``), with the previous sample of the block carried."""

    name = "cut_pairs"

    def active(self, layout):
        return layout.n_pairs > 0

    def fields(self, layout):
        shapes = order4_field_shapes(layout.Nx, layout.n_orbits, layout.n_pairs)
        return {name: Field(shape, dtype, MEANINGS[name]) for name, (shape, dtype) in shapes.items()}

    def steps(self, layout):
        return [(40, self.compute)]

    def compute(self, work, state):
        # the carry keeps this phi_k for the next sample of the block: nothing may overwrite it
        work.keep_phi_k = True
        obs, state[self.name] = order4_observables(work.phi_k, work.s, work.layout,
                                                   previous=state.get(self.name))
        return obs

    def cost(self, layout, width):
        nx, n_perp, no = layout.Nx, layout.n_perp, layout.n_orbits
        product = nx * n_perp**2 * width
        per_pair = Cost(gemm=11 * product + nx**2 * n_perp * width,
                        batched=(1 + no / max(nx, 1)) * product + nx**2 * n_perp**2,
                        calls=(2 + no) * max(1, n_perp // 64) + 30,
                        # blocks of momenta (half a mode matrix) and the orbit-pair outputs;
                        # the carried previous sample is one more mode matrix
                        memory=COMPLEX_BYTES * (nx * n_perp * width * 1.5 + 2 * nx**2 * no**2))
        return per_pair * layout.n_pairs
CUT_PAIRS = CutPairsGroup()
