"""The split of m3 into coinciding and distinct slices (docs/theory.md §6.3).

Group ``m3_split`` (job key ``m3_split``): ``Tr(G_aa^3)``, ``sum_a Tr(G_aa (G^2)_aa)`` and the
k-orbit sums of the diagonal of ``G_aa G_ac``, from which the estimator forms
``S2 = sum_{a,c} C3(a,a,c)``, ``S3 = sum_a C3(a,a,a)`` and by inclusion-exclusion the part of m3
with two coinciding indices. Two steps: the Fourier blocks ``G~_aa`` before the base group's g2
step, ``Tr(G_aa (G^2)_aa)`` from that step's factors after it.

Pure numpy/scipy: arrays in, arrays out.
"""
from __future__ import annotations

import numpy as np

from ..contracts import COMPLEX_BYTES, Cost, Field
from .kernels import hermitian_from_lower, kdiag_orbit_sums, lower_gram, trace_hermitian_product

__all__ = ["M3_SPLIT", "diagonal_blocks", "trace_g_g2_diagonal"]

F8, C16 = np.float64, np.complex128


def diagonal_blocks(phi_k, s, layout):
    """Coinciding-slice fields for the split of m3.

    Returns the fields ``diag_tr_g3`` (Tr G_aa^3) and ``diag_kdiag_aa_ac`` (orbit sums of
    (U^+ G_aa G_ac U)_kk), and the lower triangles of the Fourier blocks ``G~_aa``
    (Nx, N_perp, N_perp) that ``diag_tr_g_g2`` needs once (G^2)_aa is known.
    The Hermitian blocks come from zherk, half the work of a product.
    """
    nx, n_perp, width = phi_k.shape
    n_plus = int(np.count_nonzero(s > 0))  # the right incomers come first (ScatteringSetup)
    g_lower = np.empty((nx, n_perp, n_perp), dtype=complex)
    tr_cube = np.empty(nx)
    lifted = np.empty_like(phi_k)  # G~_aa Phi~_a S, so that (G_aa G_ac)~ = lifted_a Phi~_c^+
    for a in range(nx):
        g_lower[a] = lower_gram(phi_k[a, :, :n_plus], phi_k[a, :, n_plus:])
        g_aa = hermitian_from_lower(g_lower[a])
        np.matmul(g_aa, phi_k[a] * s, out=lifted[a])
        tr_cube[a] = trace_hermitian_product(lower_gram(g_aa), g_lower[a])  # Tr(G^2 G)
    kdiag = kdiag_orbit_sums(lifted, phi_k, layout)
    return {"diag_tr_g3": tr_cube, "diag_kdiag_aa_ac": kdiag}, g_lower


def trace_g_g2_diagonal(g_lower, left, right):
    """``sum_a Tr(G_aa (G^2)_aa)`` from the Fourier blocks (both Hermitian: a real number)."""
    total = 0.0
    for a in range(len(g_lower)):
        if left is right:  # (G^2)~_aa = half_a half_a^+: a zherk
            total += trace_hermitian_product(g_lower[a], lower_gram(left[a]))
        else:
            g2_aa = left[a] @ right[a].conj().T
            total += float(np.sum(hermitian_from_lower(g_lower[a]) * g2_aa.T).real)
    return total


class M3SplitGroup:
    """The coinciding-slice part of m3 (``m3_split = true``)."""

    name = "m3_split"

    def active(self, layout):
        return layout.m3_split

    def fields(self, layout):
        nx, no = layout.Nx, layout.n_orbits
        return {
            "diag_tr_g3": Field((nx,), F8, "Tr(G_aa^3)"),
            "diag_tr_g_g2": Field((), F8, "sum_a Tr(G_aa (G^2)_aa)"),
            "diag_kdiag_aa_ac": Field((nx, nx, no), C16, "[a, c, o]: sum_{k in o} (U^+ G_aa G_ac U)_kk"),
        }

    def steps(self, layout):
        return [(50, self.diagonal), (70, self.g_g2)]

    @staticmethod
    def diagonal(work, state):
        obs, work.g_aa_lower = diagonal_blocks(work.phi_k, work.s, work.layout)
        return obs

    @staticmethod
    def g_g2(work, state):
        total = trace_g_g2_diagonal(work.g_aa_lower, work.g2_left, work.g2_right)
        work.g_aa_lower = None
        return {"diag_tr_g_g2": total}

    def cost(self, layout, width):
        nx, n_perp = layout.Nx, layout.n_perp
        return Cost(gemm=nx * (n_perp**2 * width / 2 + n_perp**2 * width + n_perp**3 / 2)
                    + nx * n_perp**2 * width / 2,
                    batched=nx**2 * n_perp * width,
                    calls=8 * nx + 10,
                    memory=COMPLEX_BYTES * (nx * n_perp**2 + nx * n_perp * width))


M3_SPLIT = M3SplitGroup()
