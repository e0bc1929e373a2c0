"""Third order on cuts (docs/theory.md §6.1): the fixed slice c of each cut, every (a, b).

Group ``cuts`` (every run; ``n_cut`` may be 0): ``Tr(G_ac G_cb)`` (the U(1) map),
``Tr(G_ab G_bc G_ca)`` and the k-orbit sums of the diagonals of ``G_ab G_bc`` and ``G_bc G_ca``,
from which the estimator forms C3(a, b, c).

Pure numpy/scipy: arrays in, arrays out.
"""
from __future__ import annotations

import numpy as np
from scipy.linalg import blas

from ..contracts import COMPLEX_BYTES, Cost, Field
from ..system import transverse_fft, transverse_ifft
from .kernels import gram, kdiag_orbit_sums

__all__ = ["CUTS", "cut_observables"]

C16 = np.complex128


def cut_observables(phi, phi_k, s, layout):
    """The third-order fields on the cuts (fixed slice c, all a and b)."""
    nx, n_perp, width = phi.shape
    Ny, Nz = layout.Ny, layout.Nz
    n_cut = layout.n_cuts
    obs = {name: np.empty((n_cut, nx, nx), dtype=complex) for name in ("cut_pair", "cut_tr_ggg")}
    for name in ("cut_kdiag_ab_bc", "cut_kdiag_bc_ca"):
        obs[name] = np.empty((n_cut, nx, nx, layout.n_orbits), dtype=complex)
    flat_phi = phi.reshape(nx * n_perp, width)
    tiled_signs = np.tile(s, n_perp)
    for i, c in enumerate(layout.cut_slices):
        g_to_c = (flat_phi @ (s[:, None] * phi[c].conj().T)).reshape(nx, n_perp, n_perp)  # G_bc
        g_flat = g_to_c.reshape(nx, -1)
        obs["cut_pair"][i] = gram(g_flat, g_flat)  # Tr(G_ac G_cb)
        # L_a = G_ca Phi_a = Phi_c S K_a, so that Tr(G_ab G_bc G_ca) = Tr(S L_b^+ L_a)
        lam = np.empty_like(phi)
        for a in range(nx):  # L_a^T = Phi_a^T conj(G_ac): BLAS conjugates, no copies
            out = blas.zgemm(1.0, phi[a].T, g_to_c[a].T, trans_b=2, c=lam[a].T, overwrite_c=1)
            if not np.shares_memory(out, lam):  # pragma: no cover - f2py copied
                lam[a] = out.T
        obs["cut_tr_ggg"][i] = gram(lam.reshape(nx, -1), lam.reshape(nx, -1), tiled_signs)
        # G_ab G_bc = Phi_a S L_b^+; the Fourier copy reuses lam's memory
        lam_k = transverse_fft(lam, Ny, Nz, axis=1, overwrite=True)
        del lam
        obs["cut_kdiag_ab_bc"][i] = kdiag_orbit_sums(phi_k, lam_k, layout, s)
        del lam_k
        # (G_bc G_ca)~_kk = sum_q G~_bc(k,q) conj(G~_ac(k,q))
        g_tilde = transverse_ifft(transverse_fft(g_to_c, Ny, Nz, axis=1), Ny, Nz, axis=2)
        del g_to_c
        obs["cut_kdiag_bc_ca"][i] = kdiag_orbit_sums(g_tilde, g_tilde, layout).transpose(1, 0, 2)
        del g_tilde
    return obs


class CutsGroup:
    """C3 on the job's cuts (``cuts``; the fields exist with ``n_cut = 0`` too)."""

    name = "cuts"

    def active(self, layout):
        return True

    def fields(self, layout):
        nx, no, nc = layout.Nx, layout.n_orbits, layout.n_cuts
        return {
            "cut_pair": Field((nc, nx, nx), C16, "Tr(G_ac G_cb)"),
            "cut_tr_ggg": Field((nc, nx, nx), C16, "Tr(G_ab G_bc G_ca)"),
            "cut_kdiag_ab_bc": Field((nc, nx, nx, no), C16, "sum_{k in o} (U^+ G_ab G_bc U)_kk"),
            "cut_kdiag_bc_ca": Field((nc, nx, nx, no), C16, "sum_{k in o} (U^+ G_bc G_ca U)_kk"),
        }

    def steps(self, layout):
        return [(30, self.compute)]  # n_cut = 0 gives the empty fields

    @staticmethod
    def compute(work, state):
        return cut_observables(work.phi, work.phi_k, work.s, work.layout)

    def cost(self, layout, width):
        nx, n_perp, nc = layout.Nx, layout.n_perp, layout.n_cuts
        per_cut = Cost(gemm=2 * nx * n_perp**2 * width + nx**2 * n_perp * width + nx**2 * n_perp**2,
                       batched=nx**2 * n_perp * (width + n_perp),
                       calls=nx + 20,
                       # G_bc for all b, L (the size of Phi), then the Fourier copies
                       memory=COMPLEX_BYTES * (nx * n_perp**2 + nx * n_perp * width))
        return per_cut * nc if nc else Cost()


CUTS = CutsGroup()
