"""Numerical building blocks shared by the observable groups (BLAS-level, memory-bounded).

``G_ab = Phi_a S Phi_b^+`` is never formed for all (a, b): these helpers compute traces, Grams
and k-diagonal orbit sums of products of slice blocks from the mode matrices, blocked so that
their temporaries stay within `CHUNK_BYTES`.

Pure numpy/scipy: arrays in, arrays out.
"""
from __future__ import annotations

import numpy as np
from scipy.linalg import blas

__all__ = ["CHUNK_BYTES", "kdiag_orbit_sums", "gram", "slice_grams_lower", "n_leading_plus",
           "hermitian_from_lower", "lower_gram", "trace_hermitian_product"]

# Bound on the temporary arrays of the k-batched products (bytes).
CHUNK_BYTES = 64 * 2**20


def kdiag_orbit_sums(left, right, layout, weight=None):
    """``out[a, b, o] = sum_{k in o} sum_m left[a, k, m] w_m conj(right[b, k, m])``.

    ``left``, ``right``: (Nx, N_perp, M). Batched over k in chunks that bound the memory.
    """
    nx, n_perp, width = left.shape
    indicator = layout.orbit_matrix
    out = np.zeros((layout.n_orbits, nx * nx), dtype=complex)
    chunk = max(1, CHUNK_BYTES // (16 * nx * width * 3))
    for k0 in range(0, n_perp, chunk):
        ks = slice(k0, min(n_perp, k0 + chunk))
        lhs = left[:, ks, :].transpose(1, 0, 2)
        if weight is not None:
            lhs = lhs * weight
        rhs = right[:, ks, :].conj().transpose(1, 2, 0)
        block = np.matmul(lhs, rhs).reshape(-1, nx * nx)
        out += indicator[:, ks] @ block
    return np.ascontiguousarray(out.reshape(layout.n_orbits, nx, nx).transpose(1, 2, 0))


def gram(rows_left, rows_right, weight=None):
    """``out[a, b] = sum_j rows_left[a, j] w_j conj(rows_right[b, j])``.

    Blocked over both row sets so that the temporaries (weighted rows, conjugated rows)
    stay within `CHUNK_BYTES` instead of copying whole arrays of the size of Phi.
    """
    out = np.empty((rows_left.shape[0], rows_right.shape[0]), dtype=complex)
    chunk = max(1, CHUNK_BYTES // (16 * rows_left.shape[1]))
    for b0 in range(0, rows_right.shape[0], chunk):
        rhs = rows_right[b0:b0 + chunk].conj().T
        for a0 in range(0, rows_left.shape[0], chunk):
            lhs = rows_left[a0:a0 + chunk]
            if weight is not None:
                lhs = lhs * weight
            out[a0:a0 + chunk, b0:b0 + chunk] = lhs @ rhs
    return out


def slice_grams_lower(phi):
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


def checked_modes(phi_k, signature):
    """``phi_k`` as a C-contiguous complex (Nx, N_perp, M) array and the signature as M floats
    +-1 (ValueError otherwise): the inputs of the kernels that take one sample's modes."""
    P = np.ascontiguousarray(phi_k, dtype=np.complex128)
    if P.ndim != 3:
        raise ValueError(f"phi_k must have shape (Nx, N_perp, M), got {np.shape(phi_k)}")
    width = P.shape[2]
    s = np.asarray(signature, dtype=float).reshape(-1)
    if s.shape != (width,) or not np.all(np.abs(s) == 1.0):
        raise ValueError(f"signature must hold M = {width} entries +-1")
    return P, s


def n_leading_plus(s):
    """Number of +1 entries of the signature, which must all come before its -1 entries."""
    n_plus = int(np.count_nonzero(s > 0))
    if not (np.all(s[:n_plus] == 1) and np.all(s[n_plus:] == -1)):
        raise ValueError("signature must be +1 (right incomers) followed by -1 (left incomers)")
    return n_plus


def hermitian_from_lower(lower):
    return lower + np.tril(lower, -1).conj().T


def lower_gram(plus, minus=None):
    """Lower triangle (C order, zeros above) of ``plus plus^+ - minus minus^+``, by zherk.

    zherk on the Fortran view of a C-ordered block computes the conjugate of what is
    wanted in its upper triangle, which read back in C order is the lower triangle.
    """
    c = blas.zherk(1.0, plus.T, trans=2, lower=0)
    if minus is not None and minus.shape[1]:
        c = blas.zherk(-1.0, minus.T, beta=1.0, c=c, trans=2, lower=0, overwrite_c=1)
    return np.tril(c.T)


def trace_hermitian_product(lower_a, lower_b):
    """``Tr(A B)`` of two Hermitian matrices from their lower triangles (a real number)."""
    both = np.sum(lower_a * lower_b.conj()).real
    return float(2 * both - np.sum(np.diagonal(lower_a).real * np.diagonal(lower_b).real))
