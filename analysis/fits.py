"""QSSEP fits of the rescaled cumulants: dn per order, N -> infinity, scaling exponents.

Pure least-squares functions (arrays in, dicts out) and their jackknifed versions: a fit is
one more function of the sample means, so `analysis.estimators.Replicated.map` (one run) or
`analysis.estimators.combine` (independent runs) gives every fitted parameter a
bias-corrected value and a jackknife error. The weights are the inverse squared jackknife
errors of the data points, held fixed across replicates; chi^2/dof is that of the fit to the
full data. The data points of one run are correlated (same samples), so chi^2/dof is a
goodness-of-shape indicator, not a calibrated p-value.

Which points enter (coinciding slice indices carry contact terms that QSSEP does not model):

* dn^(1): all slices, ``g1 = intercept + dn1 x``;
* dn^(2): pairs ``a < b`` (g2 is symmetric), ``g2 = dn^2 (min(x,y) - x y)``, ``dn^2 >= 0``;
* N -> infinity: ``g2 = s f + beta f / N + gamma f / N^2`` with ``f = min(x,y) - x y`` and
  ``s = dn^2`` -- the SPEC ansatz ``g2^Q (1 + beta/(dn^2 N) + gamma/(dn^2 N^2))`` is linear in
  ``(s, beta, gamma)``. It needs 3 sizes; with 2, gamma = 0; with 1, beta = gamma = 0;
* dn^(3): per cut slice c, pairs ``a < b`` with ``a, b, c`` distinct,
  ``Re g3 = dn^3 g3^Q(x_a, x_b, x_c; 1)``, any sign (``dn = cbrt``);
* exponents: ``log|m| = log A + p log N`` with errors ``err / |m|``; the sign of m is reported.
"""
from __future__ import annotations

import numpy as np

from . import qssep
from .estimators import combine

__all__ = ["weighted_lstsq", "fit_dn1", "fit_dn2", "fit_dn2_extrapolated", "fit_dn3",
           "fit_power_law", "pairs_upper", "g2_shape", "g3_shape_on_cut"]


def _sigma(err):
    """Usable error bars: non-finite or zero errors are floored at a tiny positive value."""
    err = np.abs(np.asarray(err, float))
    good = np.isfinite(err) & (err > 0)
    floor = 1e-6 * (np.median(err[good]) if good.any() else 1.0)
    return np.where(good, np.maximum(err, floor), floor if good.any() else 1.0)


def weighted_lstsq(columns, y, err):
    """Weighted linear least squares ``y ~ sum_k p_k columns[k]``.

    Returns
    -------
    params : (K,) ndarray
    chi2_dof : float
        ``sum(((y - model) / err)^2) / (len(y) - K)``; nan when there are no degrees of freedom.
        Underdetermined or rank-deficient problems give nan parameters.
    """
    A = np.column_stack([np.asarray(c, float).ravel() for c in columns])
    y = np.asarray(y, float).ravel()
    if len(y) < A.shape[1]:  # underdetermined (e.g. a single slice): no fit
        return np.full(A.shape[1], np.nan), np.nan
    s = _sigma(err).ravel()
    params, _, rank, _ = np.linalg.lstsq(A / s[:, None], y / s, rcond=None)
    if rank < A.shape[1]:  # e.g. the QSSEP shape vanishes at every point: dn undetermined
        return np.full(A.shape[1], np.nan), np.nan
    dof = len(y) - A.shape[1]
    chi2 = float(np.sum(((y - A @ params) / s) ** 2))
    return params, (chi2 / dof if dof > 0 else np.nan)


def pairs_upper(nx):
    """Index arrays of the pairs ``a < b``."""
    return np.triu_indices(nx, k=1)


def g2_shape(x):
    """``f(a, b) = min(x_a, x_b) - x_a x_b`` on the grid (g2^Q at dn = 1)."""
    x = np.asarray(x, float)
    return np.minimum.outer(x, x) - np.outer(x, x)


def g3_shape_on_cut(x, c):
    """``g3^Q(x_a, x_b, x_c; dn = 1)`` for all (a, b) at the cut slice ``c``."""
    x = np.asarray(x, float)
    pts = np.stack(np.broadcast_arrays(x[:, None], x[None, :], x[c]), axis=-1)
    return qssep.g(3, pts, 1.0)


# --- single fits on arrays -------------------------------------------------------------------

def fit_dn1(x, g1, err):
    """``g1 = intercept + dn1 x``: dict ``dn1``, ``intercept``, ``chi2_dof``."""
    x = np.asarray(x, float)
    (b, a), chi2 = weighted_lstsq([np.ones_like(x), x], g1, err)
    return {"dn1": a, "intercept": b, "chi2_dof": chi2}


def fit_dn2(x, g2, err):
    """``g2(a, b) = dn^2 f(a, b)`` over ``a < b``, ``dn^2 >= 0``: dict ``dn2``, ``dn2_sq``, ``chi2_dof``."""
    iu = pairs_upper(len(x))
    f = g2_shape(x)[iu]
    y, e = np.asarray(g2)[iu], np.asarray(err)[iu]
    (s,), _ = weighted_lstsq([f], y, e)
    if not np.isfinite(s):
        return {"dn2": np.nan, "dn2_sq": np.nan, "chi2_dof": np.nan}
    s = max(float(s), 0.0)
    sig = _sigma(e)
    dof = len(y) - 1
    chi2 = float(np.sum(((y - s * f) / sig) ** 2)) / dof if dof > 0 else np.nan
    return {"dn2": np.sqrt(s), "dn2_sq": s, "chi2_dof": chi2}


def fit_dn2_extrapolated(datasets):
    """Joint N -> infinity fit of ``g2 = s f (1 + beta/(s N) + gamma/(s N^2))``.

    Parameters
    ----------
    datasets : list of (N, x, g2, err)
        One entry per size (``N`` = the size that enters the ansatz: N for the cube, Nx
        for quasi-1d).

    Returns
    -------
    dict
        ``dn2``, ``dn2_sq``, ``beta``, ``gamma``, ``chi2_dof``, ``n_params`` (3, 2 or 1:
        gamma and beta are fixed at 0 with fewer distinct sizes), ``constrained`` (1.0 when
        ``s < 0`` was clipped to 0).
    """
    sizes = sorted({float(N) for N, *_ in datasets})
    n_params = min(3, len(sizes))
    cols = [[] for _ in range(n_params)]
    ys, es = [], []
    for N, x, g2, err in datasets:
        iu = pairs_upper(len(x))
        f = g2_shape(x)[iu]
        powers = [f, f / N, f / N**2][:n_params]
        for k in range(n_params):
            cols[k].append(powers[k])
        ys.append(np.asarray(g2)[iu])
        es.append(np.asarray(err)[iu])
    cols = [np.concatenate(c) for c in cols]
    y, e = np.concatenate(ys), np.concatenate(es)
    params, chi2 = weighted_lstsq(cols, y, e)
    constrained = 0.0
    if params[0] < 0:  # dn^2 >= 0: refit the corrections alone
        constrained = 1.0
        if n_params > 1:
            rest, _ = weighted_lstsq(cols[1:], y, e)
            params = np.concatenate([[0.0], rest])
        else:
            params = np.array([0.0])
        model = sum(p * c for p, c in zip(params, cols))
        dof = len(y) - n_params
        chi2 = float(np.sum(((y - model) / _sigma(e)) ** 2)) / dof if dof > 0 else np.nan
    params = np.concatenate([params, np.zeros(3 - n_params)])
    s, beta, gamma = (float(p) for p in params)
    return {"dn2": np.sqrt(max(s, 0.0)), "dn2_sq": s, "beta": beta, "gamma": gamma,
            "chi2_dof": chi2, "n_params": float(n_params), "constrained": constrained}


def fit_dn3(x, g3, err, cut_slices):
    """``Re g3(a, b, c) = dn^3 g3^Q(x_a, x_b, x_c; 1)`` on the cuts, a < b, a, b, c distinct.

    Parameters
    ----------
    x : (Nx,)
    g3, err : (n_cut, Nx, Nx)
    cut_slices : (n_cut,)

    Returns
    -------
    dict
        ``dn3`` (signed cube root), ``dn3_cubed``, ``chi2_dof``, ``n_points``.
    """
    ys, es, fs = [], [], []
    nx = len(x)
    ia, ib = pairs_upper(nx)
    for i, c in enumerate(np.asarray(cut_slices).reshape(-1)):
        keep = (ia != c) & (ib != c)
        shape = g3_shape_on_cut(x, int(c))
        fs.append(shape[ia[keep], ib[keep]])
        ys.append(np.asarray(g3[i])[ia[keep], ib[keep]])
        es.append(np.asarray(err[i])[ia[keep], ib[keep]])
    f, y, e = np.concatenate(fs), np.concatenate(ys), np.concatenate(es)
    if len(y) == 0:
        return {"dn3": np.nan, "dn3_cubed": np.nan, "chi2_dof": np.nan, "n_points": 0.0}
    (t,), chi2 = weighted_lstsq([f], y, e)
    return {"dn3": float(np.cbrt(t)), "dn3_cubed": float(t), "chi2_dof": chi2,
            "n_points": float(len(y))}


def fit_power_law(N, m, err):
    """``|m| = A N^p`` by a weighted line in log-log: dict ``exponent``, ``amplitude``,
    ``chi2_dof``, ``sign`` (+1/-1: the sign of sum(m), or 0)."""
    N = np.asarray(N, float)
    m = np.asarray(m, float)
    a = np.abs(m)
    with np.errstate(divide="ignore", invalid="ignore"):
        logm = np.log(np.where(a > 0, a, np.nan))
        sig = np.asarray(err, float) / a
    good = np.isfinite(logm)
    if good.sum() < 2:
        return {"exponent": np.nan, "amplitude": np.nan, "chi2_dof": np.nan, "sign": 0.0}
    (c0, p), chi2 = weighted_lstsq([np.ones(good.sum()), np.log(N[good])], logm[good], sig[good])
    return {"exponent": float(p), "amplitude": float(np.exp(c0)), "chi2_dof": chi2,
            "sign": float(np.sign(m.sum()))}


# --- jackknifed fits ---------------------------------------------------------------------------

def jk_fit_dn1(est, x):
    """dn^(1) of one run from its `Replicated` estimates (a `Replicated` dict)."""
    err = est["g1"].error
    return est["g1"].map(lambda g1: fit_dn1(x, g1, err))


def jk_fit_dn2(est, x):
    err = est["g2"].error
    return est["g2"].map(lambda g2: fit_dn2(x, g2, err))


def jk_fit_dn3(est, x, cut_slices):
    err = est["g3"].error
    return est["g3"].map(lambda g3: fit_dn3(x, g3, err, cut_slices))


def jk_fit_dn2_extrapolated(items):
    """items: list of (N, x, Replicated g2) from independent runs."""
    errs = [rep.error for _, _, rep in items]

    def func(*g2s):
        return fit_dn2_extrapolated([(N, x, g2, e) for (N, x, _), g2, e in zip(items, g2s, errs)])

    return combine([rep for _, _, rep in items], func)


def jk_fit_power_law(items):
    """items: list of (N, Replicated scalar m) from independent runs."""
    N = np.array([n for n, _ in items], float)
    err = np.array([rep.error for _, rep in items], float)
    return combine([rep for _, rep in items], lambda *ms: fit_power_law(N, np.array(ms, float), err))
