"""Orders one and two, the whole-sample sums, and transport (docs/theory.md §6.1-§6.5).

Group ``base`` (every run): ``tr_g``, ``tr_gg`` from the slice Gram matrices ``K_a = Phi_a^+ Phi_a``;
``tr_g3 = Tr (S K)^3`` with ``K = sum_a K_a``; the k-diagonal mean blocks ``mean_k``; and
``g2_kdiag``, the k-diagonal of ``(G^2)_ac`` behind m3. Group ``transport`` (samples with
scattering amplitudes): the conductance, its square and the Fano numerator of the right incomers.

Pure numpy/scipy: arrays in, arrays out.
"""
from __future__ import annotations

import numpy as np
import scipy.linalg
from scipy.linalg import blas

from ..contracts import COMPLEX_BYTES, Cost, Field
from .kernels import hermitian_from_lower, kdiag_orbit_sums, n_leading_plus, slice_grams_lower

__all__ = ["BASE", "TRANSPORT", "slice_gram_observables", "trace_g_cubed", "g2_step",
           "transport_observables", "transport_moments"]

F8, C16 = np.float64, np.complex128


def slice_gram_observables(phi, s, keep_grams=False):
    """``tr_g``, ``tr_gg`` from the slice Grams ``K_a``; also returns ``K = sum_a K_a``.

    The Grams (twice Phi's size) are freed on return unless ``keep_grams`` (the interval sums
    reuse them): then the lower triangles are returned third.
    """
    nx, n_perp, width = phi.shape
    # The columns are the n_open(E+) right incomers (s = +1), then the left incomers (s = -1);
    # n_open(E+) is N_perp only when every channel is open.
    n_plus = n_leading_plus(s)
    lower = slice_grams_lower(phi)
    tr_g = np.einsum("amm->am", lower).real @ s  # Tr G_aa = Tr(S K_a)
    # Tr(G_ab G_ba) = Tr(S K_b S K_a) = sum_mn s_m s_n Re(K_a[m,n] conj K_b[m,n]), K Hermitian:
    # over the stored lower triangles the weight is 1 on the diagonal, 2 below it in the RR and
    # LL blocks, -2 in the LR block. As real Grams without a weighted copy of the triangles:
    # 2 (all entries) - (diagonal) - 4 (LR block: rows of left, columns of right incomers).
    as_real = lower.reshape(nx, -1).view(np.float64)
    diagonal = np.einsum("amm->am", lower).real.copy()  # a copy: a view would keep `lower` alive
    cross = np.ascontiguousarray(lower[:, n_plus:, :n_plus]).reshape(nx, -1).view(np.float64)
    tr_gg = 2 * (as_real @ as_real.T) - diagonal @ diagonal.T - 4 * (cross @ cross.T)
    k_total = hermitian_from_lower(lower.sum(axis=0))
    if keep_grams:
        return {"tr_g": tr_g, "tr_gg": tr_gg}, k_total, lower
    return {"tr_g": tr_g, "tr_gg": tr_gg}, k_total


def trace_g_cubed(k_total, s):
    """``Tr G^3 = Tr (S K)^3`` over the whole sample."""
    sk = s[:, None] * k_total
    return float(np.sum((sk @ sk) * sk.T).real)


def g2_step(phi_k, k_total, s, layout, overwrite=True):
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
        return kdiag_orbit_sums(half, half, layout), half, half
    except np.linalg.LinAlgError:  # numerically singular K: fall back to the full product
        half = np.matmul(phi_k, s[:, None] * k_total * s[None, :])
        return kdiag_orbit_sums(half, phi_k, layout), half, phi_k


def transport_observables(transmission):
    """``g``, ``g_sq``, ``fano_num`` of the right incomers' transmission matrix."""
    tt = transmission @ transmission.conj().T
    g = float(np.trace(tt).real)
    return {"g": g, "g_sq": g * g, "fano_num": g - float(np.sum(np.abs(tt) ** 2))}


def transport_moments(g_mean, g_sq_mean, fano_num_mean, n):
    """Mean conductance, its variance (unbiased over ``n`` samples) and the Fano factor, from the
    sample means of the transport fields (one formula for ``info`` and the analysis)."""
    return {"conductance": g_mean,
            "conductance_var": (g_sq_mean - g_mean**2) * n / (n - 1) if n > 1 else np.nan,
            "fano": fano_num_mean / g_mean if g_mean != 0 else np.nan}


class BaseGroup:
    """Orders one and two and the whole-sample sums: present in every run."""

    name = "base"

    def active(self, layout):
        return True

    def fields(self, layout):
        nx, no = layout.Nx, layout.n_orbits
        return {
            "tr_g": Field((nx,), F8, "Tr G_aa"),
            "tr_gg": Field((nx, nx), F8, "Tr(G_ab G_ba)"),
            "mean_k": Field((nx, nx, no), C16, "sum_{k in o} (U^+ G_ab U)_kk"),
            "g2_kdiag": Field((nx, nx, no), C16, "sum_{k in o} (U^+ (G^2)_ab U)_kk"),
            "tr_g3": Field((), F8, "Tr G^3 = Tr (S K)^3"),
        }

    def steps(self, layout):
        return [(10, self.grams), (20, self.mean_k), (60, self.g2)]

    @staticmethod
    def grams(work, state):
        if work.layout.interval_grid:  # the interval sums reuse the Grams (`SampleWork.gram_lower`)
            obs, work.k_total, work.gram_lower = slice_gram_observables(work.phi, work.s, keep_grams=True)
        else:
            obs, work.k_total = slice_gram_observables(work.phi, work.s)
        obs["tr_g3"] = trace_g_cubed(work.k_total, work.s)
        return obs

    @staticmethod
    def mean_k(work, state):
        work.mean_k = kdiag_orbit_sums(work.phi_k, work.phi_k, work.layout, work.s)
        return {"mean_k": work.mean_k}

    @staticmethod
    def g2(work, state):
        # a later step or the next sample may still need phi_k: then the product works on a copy
        g2_kdiag, work.g2_left, work.g2_right = g2_step(work.release_phi_k(), work.k_total, work.s,
                                                        work.layout, overwrite=not work.keep_phi_k)
        return {"g2_kdiag": g2_kdiag}

    def cost(self, layout, width):
        nx, n_perp = layout.Nx, layout.n_perp
        phi = nx * n_perp * width
        return Cost(gemm=nx * n_perp * width**2 / 2        # slice Grams (zherk)
                    + nx**2 * width**2 / 2                  # tr_gg from real Grams
                    + width**3 * (1 + 1 / 3)                # Tr (SK)^3, Cholesky of K
                    + nx * n_perp * width**2 / 2,           # ztrmm of the g2 step
                    batched=2 * nx**2 * n_perp * width,     # mean_k and g2_kdiag orbit sums
                    calls=4 * nx + 40,
                    # the slice Grams (nx M^2) while they live, then the Fourier copy of Phi
                    memory=COMPLEX_BYTES * max(nx * width**2 + phi, 2 * phi))


class TransportGroup:
    """Conductance and shot noise of the right incomers (samples with scattering amplitudes)."""

    name = "transport"

    def active(self, layout):
        return layout.transport

    def fields(self, layout):
        return {
            "g": Field((), F8, "Tr t^+ t at E+ (right incomers)"),
            "g_sq": Field((), F8, "(Tr t^+ t)^2"),
            "fano_num": Field((), F8, "Tr[t t^+ (1 - t t^+)]"),
        }

    def steps(self, layout):
        return [(80, self.transport)]

    @staticmethod
    def transport(work, state):
        return transport_observables(work.modes.transmission_right)

    def cost(self, layout, width):
        n = width / 2
        return Cost(gemm=n**3, calls=5)


BASE = BaseGroup()
TRANSPORT = TransportGroup()
