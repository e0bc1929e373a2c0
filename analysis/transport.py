"""Transport by-products: Ohm's-law fit of the mean conductance and a mean free path.

The conductance is ``g = Tr t^+ t`` of the right incomers at E+ (units of e^2/h, one spin).

Ohm's law with the sizes' own contact corrections, every size once (OLS over the sizes, the
jackknife across runs for the errors):

* cube (cross-section N^2, length N): ``g(N) = sigma N + c``;
* quasi-1d (cross-section A = Ny Nz, length Nx): ``1/g(Nx) = r0 + r1 Nx``, ``sigma = 1/(A r1)``.

Mean free path (``MFP_FORMULA``): the Landauer conductance of a diffusive conductor in series
with its contact resistance, ``1/g = 1/n_open + L / (n_open ell)``, defines ``ell`` through
``sigma = (n_open / A) ell``, i.e. ``ell = sigma A / n_open`` (lattice units, a = 1). With every
channel open (``n_open = A``, always the case for this suite's leads) ``ell = sigma``. This is
the Drude/Einstein relation ``sigma = e^2 nu D`` written with the Sharvin conductance
``n_open`` per area: for an isotropic 3d continuum band ``ell = (4/3) ell_tr`` (``ell_tr`` the
transport mean free path, ``D = v_F ell_tr / 3``). Assumptions: diffusive transport
(ell << L) and g >> 1 (no localization correction); the band here is anisotropic
(t_perp < t_x), so ``ell`` is the transport length along x that the conductance defines, not
an angular average of ``v_F tau``.

Pure functions (arrays in, dicts out).
"""
from __future__ import annotations

import numpy as np

from .estimators import combine
from .fits import lstsq

__all__ = ["fit_ohm", "jk_fit_ohm", "MFP_FORMULA"]

MFP_FORMULA = ("ell = sigma A / n_open (Landauer conductance with a series contact resistance, "
               "1/g = 1/n_open + L/(n_open ell); = sigma when every channel is open; "
               "isotropic 3d continuum: ell = (4/3) ell_tr)")


def fit_ohm(geometry, sizes, g, n_perp, n_open):
    """Ohm's law over the sizes (module docstring).

    Parameters
    ----------
    geometry : "cube" or "quasi1d"
    sizes : (n,) N (cube) or Nx (quasi-1d)
    g : (n,) mean conductances
    n_perp, n_open : (n,) cross-section A and open channels of each size

    Returns
    -------
    dict ``sigma``, ``offset`` (c of the cube, r0 of quasi-1d; 0 with one size),
    ``mean_free_path`` (``sigma A / n_open`` with the ratio of the largest size), ``n_params``.
    """
    N = np.asarray(sizes, float)
    g = np.asarray(g, float)
    n_params = 2 if len(set(N)) >= 2 else 1
    if geometry == "cube":
        cols = [N, np.ones_like(N)][:n_params]
        p = lstsq(cols, g)
        sigma = float(p[0])
    else:
        cols = [N, np.ones_like(N)][:n_params]
        p = lstsq(cols, 1.0 / g)
        area = float(np.asarray(n_perp, float)[-1])
        sigma = float(1.0 / (area * p[0]))
    offset = float(p[1]) if n_params == 2 else 0.0
    big = int(np.argmax(N))
    per_area = float(np.asarray(n_open, float)[big] / np.asarray(n_perp, float)[big])
    return {"sigma": sigma, "offset": offset, "mean_free_path": sigma / per_area,
            "n_params": float(n_params)}


def jk_fit_ohm(geometry, items):
    """items: list of (size, n_perp, n_open, Replicated conductance) from independent runs."""
    sizes = [s for s, *_ in items]
    n_perp = [a for _, a, _, _ in items]
    n_open = [o for _, _, o, _ in items]
    return combine([rep for *_, rep in items],
                   lambda *gs: fit_ohm(geometry, sizes, np.array(gs, float), n_perp, n_open))
