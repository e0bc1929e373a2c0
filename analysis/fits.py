"""QSSEP fits of the rescaled cumulants: dn per order, N -> infinity, scaling exponents.

Protocol (docs/theory.md §10). The headline fits count every data point of a stated window once
(ordinary least squares, OLS). The QSSEP shapes do not describe finite-N data within their
errors, so inverse-variance weights would pull a fit towards whatever region happens to have
small errors (the boundary slices); their results are kept as secondary ``*_wls`` keys only.
A fit is one more function of the sample means, so `analysis.estimators.Replicated.map`
(one run) or `analysis.estimators.combine` (independent runs) gives every fitted parameter a
jackknife bias correction and error; the WLS weights are the inverse squared jackknife errors
of the full data, held fixed across replicates.

Fits and their points (`analysis.windows` defines the windows, K and D):

* dn^(1): ``g1 = intercept + dn1 x`` over the kept slices;
* dn^(2): ``g2 = dn^2 (min(x,y) - x y)`` over the pairs a < b with |a - b| > D, ``dn^2 >= 0``;
* dn^(3): ``Re g3 = dn^3 g3^Q(x_a, x_b, x_c; 1)`` on every cut c, pairs a < b, indices
  pairwise more than D apart, any sign (``dn = cbrt``); and on the single line the paper used
  (`fit_dn3_line`: one cut c, one slice b, all a);
* N -> infinity of g2 (the paper's ansatz): ``g2 = s f + beta f / N + gamma f / N^2`` with
  ``f = min(x,y) - x y``, ``s = dn^2``, linear in ``(s, beta, gamma)``, OLS over the window
  points of every size; 3 sizes or more for gamma, 2 for beta;
* N -> infinity of any dn^(n)(N): ``a + b/N (+ c/N^2)`` over the sizes (`fit_size_series`);
* exponents: ``log|m| = log A + p log N`` weighted by ``err / |m|`` (the sizes are independent
  runs, so these weights and chi^2 are legitimate here); the sign of m is reported.

Goodness of fit: the relative residual ``||g - fit|| / ||g||`` over the window (any number of
points), and a correlated chi^2 from the jackknife covariance of the window points
(`correlated_chi2`) where there are clearly more blocks than points.
"""
from __future__ import annotations

import numpy as np

from . import qssep, windows
from .estimators import combine
from .windows import DEFAULT, GRID

__all__ = ["lstsq", "weighted_lstsq", "relative_residual", "correlated_chi2", "g2_shape",
           "g3_shape_on_cut", "design_dn1", "design_dn2", "design_dn3", "design_dn3_line",
           "fit_dn1", "fit_dn2", "fit_dn3", "fit_dn3_line", "fit_dn2_extrapolated",
           "fit_size_series", "series_n_params", "fit_power_law", "paper_line",
           "run_fits", "group_fits", "CHI2_BLOCKS_PER_POINT"]

# A correlated chi^2 needs the inverse of the jackknife covariance of the window points;
# with g blocks and p points it exists for g > p but is noisy (Wishart) unless g >> p.
CHI2_BLOCKS_PER_POINT = 3
# The single line of the paper's dn^(3) (Fig. 3e): cut z ~ 0.23, slice y ~ 0.78.
PAPER_LINE = {"z": 0.23, "y": 0.78}


# --- least squares ---------------------------------------------------------------------------

def _sigma(err):
    """Usable error bars: non-finite or zero errors are floored at a tiny positive value."""
    err = np.abs(np.asarray(err, float))
    good = np.isfinite(err) & (err > 0)
    floor = 1e-6 * (np.median(err[good]) if good.any() else 1.0)
    return np.where(good, np.maximum(err, floor), floor if good.any() else 1.0)


def lstsq(A, y, err=None):
    """Least squares ``y ~ A p``: every point once (``err=None``) or weighted by ``1/err^2``.

    Parameters
    ----------
    A : (n, k) design matrix (or a list of k columns)
    y : (n,)
    err : (n,), optional

    Returns
    -------
    (k,) ndarray; nan when underdetermined or rank-deficient (e.g. the shape vanishes at
    every point, so dn is undetermined).
    """
    if isinstance(A, list):
        A = np.column_stack([np.asarray(c, float).ravel() for c in A])
    A = np.asarray(A, float)
    A = A[:, None] if A.ndim == 1 else A
    y = np.asarray(y, float).ravel()
    k = A.shape[1]
    if len(y) < k:
        return np.full(k, np.nan)
    if err is not None:
        s = _sigma(err).ravel()
        A, y = A / s[:, None], y / s
    params, _, rank, _ = np.linalg.lstsq(A, y, rcond=None)
    if rank < k:
        return np.full(k, np.nan)
    return params


def weighted_lstsq(columns, y, err):
    """Weighted least squares with its chi^2/dof (for independent points only, e.g. one
    value per size): ``(params, chi2_dof)``, chi2_dof nan without degrees of freedom."""
    A = np.column_stack([np.asarray(c, float).ravel() for c in columns])
    y = np.asarray(y, float).ravel()
    params = lstsq(A, y, err)
    dof = len(y) - A.shape[1]
    if not np.all(np.isfinite(params)) or dof <= 0:
        return params, np.nan
    chi2 = float(np.sum(((y - A @ params) / _sigma(err)) ** 2))
    return params, chi2 / dof


def relative_residual(y, model):
    """``||y - model|| / ||y||`` (nan when undefined)."""
    y = np.asarray(y, float).ravel()
    model = np.asarray(model, float).ravel()
    norm = np.linalg.norm(y)
    if len(y) == 0 or norm == 0 or not np.all(np.isfinite(model)):
        return np.nan
    return float(np.linalg.norm(y - model) / norm)


def correlated_chi2(A, y, cov, n_blocks, blocks_per_point=CHI2_BLOCKS_PER_POINT):
    """Minimum correlated chi^2 of the model ``y ~ A p`` with the jackknife covariance.

    ``chi2 = min_p (y - A p)^T C^-1 (y - A p)`` (generalized least squares), with the
    inverse covariance debiased by the Hartlap factor ``(g - n - 2) / (g - 1)`` for g blocks
    and n points. Computed only when ``g >= blocks_per_point * n``: a covariance estimated
    from few blocks has a noisy, biased inverse (rank < n when g <= n).

    Returns
    -------
    dict ``chi2``, ``dof`` (n - k), ``p_value`` (nan when omitted) and ``note`` (why it is
    omitted; empty otherwise).
    """
    A = np.asarray(A, float)
    y = np.asarray(y, float).ravel()
    n, k = A.shape
    out = {"chi2": np.nan, "dof": float(n - k), "p_value": np.nan, "note": ""}
    if n - k <= 0:
        out["note"] = f"omitted: {n} points for {k} parameters"
        return out
    if n_blocks < blocks_per_point * n:
        out["note"] = (f"omitted: {n_blocks} blocks for {n} points "
                       f"(needs >= {blocks_per_point} blocks per point)")
        return out
    cov = np.asarray(cov, float)
    try:
        L = np.linalg.cholesky(cov)
    except np.linalg.LinAlgError:
        out["note"] = "omitted: singular jackknife covariance"
        return out
    hartlap = (n_blocks - n - 2) / (n_blocks - 1)
    Aw = np.linalg.solve(L, A)
    yw = np.linalg.solve(L, y)
    p, *_ = np.linalg.lstsq(Aw, yw, rcond=None)
    chi2 = float(np.sum((yw - Aw @ p) ** 2) * hartlap)
    from scipy.stats import chi2 as chi2_dist
    out.update(chi2=chi2, p_value=float(chi2_dist.sf(chi2, n - k)))
    return out


# --- shapes and designs ----------------------------------------------------------------------

def g2_shape(x):
    """``f(a, b) = min(x_a, x_b) - x_a x_b`` on the grid (g2^Q at dn = 1)."""
    x = np.asarray(x, float)
    return np.minimum.outer(x, x) - np.outer(x, x)


def g3_shape_on_cut(x, c):
    """``g3^Q(x_a, x_b, x_c; dn = 1)`` for all (a, b) at the cut slice ``c``."""
    x = np.asarray(x, float)
    pts = np.stack(np.broadcast_arrays(x[:, None], x[None, :], x[c]), axis=-1)
    return qssep.g(3, pts, 1.0)


def design_dn1(x, window=DEFAULT):
    """``(mask (Nx,), A (n, 2))``: the g1 points of the window and the columns [1, x]."""
    x = np.asarray(x, float)
    keep = windows.g1_mask(len(x), window)
    return keep, np.column_stack([np.ones(keep.sum()), x[keep]])


def design_dn2(x, window=DEFAULT):
    """``(mask (Nx, Nx), A (n, 1))``: the g2 pairs of the window and the QSSEP shape."""
    keep = windows.g2_mask(len(x), window)
    return keep, g2_shape(x)[keep][:, None]


def design_dn3(x, cut_slices, window=DEFAULT):
    """``(mask (n_cut, Nx, Nx), A (n, 1))``: the g3 points of the window on every cut."""
    nx = len(x)
    cuts = np.asarray(cut_slices, dtype=np.int64).reshape(-1)
    keep = np.zeros((len(cuts), nx, nx), dtype=bool)
    shape = np.zeros((len(cuts), nx, nx))
    for i, c in enumerate(cuts):
        keep[i] = windows.g3_cut_mask(nx, int(c), window)
        shape[i] = g3_shape_on_cut(x, int(c))
    return keep, shape[keep][:, None]


def design_dn3_line(x, cut_slices, cut_index, b, window=DEFAULT):
    """``(mask (n_cut, Nx, Nx), A (n, 1))``: the line ``g3(x_a, x_b, x_c)`` (all a) of one cut."""
    nx = len(x)
    cuts = np.asarray(cut_slices, dtype=np.int64).reshape(-1)
    c = int(cuts[cut_index])
    keep = np.zeros((len(cuts), nx, nx), dtype=bool)
    keep[cut_index, :, b] = windows.g3_line_mask(nx, b, c, window)
    shape = np.zeros((len(cuts), nx, nx))
    shape[cut_index] = g3_shape_on_cut(x, c)
    return keep, shape[keep][:, None]


def paper_line(x, cut_slices):
    """The paper's Fig. 3e line: ``(cut index, b)`` of the cut nearest z = 0.23 and the
    slice nearest y = 0.78, or None without a cut within max(0.1, 1/Nx) of z = 0.23."""
    x = np.asarray(x, float)
    cuts = np.asarray(cut_slices, dtype=np.int64).reshape(-1)
    if len(cuts) == 0:
        return None
    i = int(np.argmin(np.abs(x[cuts] - PAPER_LINE["z"])))
    if abs(x[cuts[i]] - PAPER_LINE["z"]) > max(0.1, 1.0 / len(x)):
        return None
    return i, int(np.argmin(np.abs(x - PAPER_LINE["y"])))


# --- single fits on arrays -------------------------------------------------------------------

def _one_shape_fit(A, y, err, nonnegative=False):
    """OLS (and WLS when ``err`` is given) of ``y = t A[:, 0]``: (t, t_wls, rel_residual)."""
    (t,) = lstsq(A, y)
    if nonnegative and np.isfinite(t):
        t = max(float(t), 0.0)
    t_wls = np.nan
    if err is not None:
        (t_wls,) = lstsq(A, y, err)
        if nonnegative and np.isfinite(t_wls):
            t_wls = max(float(t_wls), 0.0)
    return float(t), float(t_wls), relative_residual(y, A[:, 0] * t)


def fit_dn1(x, g1, window=DEFAULT, err=None):
    """``g1 = intercept + dn1 x`` over the window: dict ``dn1``, ``intercept``,
    ``rel_residual``, ``n_points`` (+ ``dn1_wls``, ``intercept_wls`` when ``err`` is given)."""
    keep, A = design_dn1(x, window)
    y = np.asarray(g1, float)[keep]
    b, a = lstsq(A, y)
    out = {"dn1": float(a), "intercept": float(b), "rel_residual": relative_residual(y, A @ [b, a]),
           "n_points": float(len(y))}
    if err is not None:
        bw, aw = lstsq(A, y, np.asarray(err)[keep])
        out.update(dn1_wls=float(aw), intercept_wls=float(bw))
    return out


def fit_dn2(x, g2, window=DEFAULT, err=None):
    """``g2 = dn^2 f`` over the window's pairs, ``dn^2 >= 0``: dict ``dn2``, ``dn2_sq``,
    ``rel_residual``, ``n_points`` (+ ``dn2_wls``)."""
    keep, A = design_dn2(x, window)
    y = np.asarray(g2, float)[keep]
    s, s_wls, rel = _one_shape_fit(A, y, None if err is None else np.asarray(err)[keep],
                                   nonnegative=True)
    out = {"dn2": float(np.sqrt(s)), "dn2_sq": s, "rel_residual": rel, "n_points": float(len(y))}
    if err is not None:
        out["dn2_wls"] = float(np.sqrt(s_wls))
    return out


def fit_dn3(x, g3, cut_slices, window=DEFAULT, err=None):
    """``Re g3 = dn^3 g3^Q`` on every cut over the window: dict ``dn3`` (signed cube root),
    ``dn3_cubed``, ``rel_residual``, ``n_points`` (+ ``dn3_wls``)."""
    keep, A = design_dn3(x, cut_slices, window)
    y = np.asarray(g3, float)[keep]
    t, t_wls, rel = _one_shape_fit(A, y, None if err is None else np.asarray(err)[keep])
    out = {"dn3": float(np.cbrt(t)), "dn3_cubed": t, "rel_residual": rel, "n_points": float(len(y))}
    if err is not None:
        out["dn3_wls"] = float(np.cbrt(t_wls))
    return out


def fit_dn3_line(x, g3, cut_slices, cut_index, b, window=DEFAULT):
    """The paper's single-line dn^(3): ``Re g3(x_a, x_b, x_c) = dn^3 g3^Q`` over all a of one
    cut (minus the window's exclusions): dict ``dn3``, ``dn3_cubed``, ``rel_residual``,
    ``n_points``."""
    keep, A = design_dn3_line(x, cut_slices, cut_index, b, window)
    y = np.asarray(g3, float)[keep]
    t, _, rel = _one_shape_fit(A, y, None)
    return {"dn3": float(np.cbrt(t)), "dn3_cubed": t, "rel_residual": rel,
            "n_points": float(len(y))}


def fit_dn2_extrapolated(datasets, window=DEFAULT, with_wls=True):
    """Joint N -> infinity fit of ``g2 = s f (1 + beta/(s N) + gamma/(s N^2))`` (OLS).

    Parameters
    ----------
    datasets : list of (N, x, g2, err)
        One entry per run (``N`` = the size that enters the ansatz: N for the cube, Nx for
        quasi-1d); ``err`` is used only for the secondary WLS value.

    Returns
    -------
    dict
        ``dn2``, ``dn2_sq``, ``beta``, ``gamma``, ``rel_residual``, ``n_points``, ``n_params``
        (3, 2 or 1: gamma and beta are fixed at 0 with fewer distinct sizes), ``constrained``
        (1.0 when ``s < 0`` was clipped to 0) and ``dn2_wls``.
    """
    sizes = sorted({float(N) for N, *_ in datasets})
    n_params = min(3, len(sizes))
    cols, ys, es = [[] for _ in range(n_params)], [], []
    for N, x, g2, err in datasets:
        keep, A = design_dn2(x, window)
        f = A[:, 0]
        for k, col in enumerate([f, f / N, f / N**2][:n_params]):
            cols[k].append(col)
        ys.append(np.asarray(g2, float)[keep])
        es.append(np.asarray(err, float)[keep] if err is not None else np.ones(keep.sum()))
    A = np.column_stack([np.concatenate(c) for c in cols])
    y, e = np.concatenate(ys), np.concatenate(es)

    def solve(weights_err):
        params = lstsq(A, y, weights_err)
        clipped = 0.0
        if np.isfinite(params[0]) and params[0] < 0:  # dn^2 >= 0: refit the corrections alone
            clipped = 1.0
            rest = lstsq(A[:, 1:], y, weights_err) if n_params > 1 else np.zeros(0)
            params = np.concatenate([[0.0], rest])
        return params, clipped

    params, constrained = solve(None)
    rel = relative_residual(y, A @ params)
    params = np.concatenate([params, np.zeros(3 - n_params)])
    s, beta, gamma = (float(p) for p in params)
    out = {"dn2": float(np.sqrt(max(s, 0.0))) if np.isfinite(s) else np.nan, "dn2_sq": s,
           "beta": beta, "gamma": gamma, "rel_residual": rel, "n_points": float(len(y)),
           "n_params": float(n_params), "constrained": constrained}
    if with_wls:
        pw, _ = solve(e)
        out["dn2_wls"] = float(np.sqrt(max(pw[0], 0.0))) if np.isfinite(pw[0]) else np.nan
    return out


def series_n_params(n_sizes):
    """Parameters of ``a + b/N (+ c/N^2)`` for ``n_sizes`` sizes: c needs 4 sizes (so that
    one degree of freedom is left), b needs 2."""
    return 3 if n_sizes >= 4 else (2 if n_sizes >= 2 else 1)


def fit_size_series(N, values, n_params, err=None):
    """``values(N) = limit + b/N + c/N^2`` (the first ``n_params`` terms), every size once.

    Returns dict ``limit``, ``b``, ``c`` (0 when not fitted), ``n_params``, ``chi2``, ``dof``
    (chi^2 with ``err``, the sizes being independent runs; nan without ``err`` or dof).
    """
    N = np.asarray(N, float)
    v = np.asarray(values, float)
    A = np.column_stack([N**0, 1.0 / N, 1.0 / N**2][:n_params])
    p = lstsq(A, v)
    dof = len(v) - n_params
    chi2 = np.nan
    if err is not None and dof > 0 and np.all(np.isfinite(p)):
        chi2 = float(np.sum(((v - A @ p) / _sigma(err)) ** 2))
    p = np.concatenate([p, np.zeros(3 - n_params)])
    return {"limit": float(p[0]), "b": float(p[1]), "c": float(p[2]), "n_params": float(n_params),
            "chi2": chi2, "dof": float(dof)}


def fit_power_law(N, m, err):
    """``|m| = A N^p`` by a weighted line in log-log: dict ``exponent``, ``amplitude``,
    ``chi2_dof``, ``sign`` (+1/-1: the sign of sum(m), or 0). The sizes are independent runs,
    so the weights ``|m| / err`` and chi^2/dof are meaningful here."""
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

def jk_fit_dn1(est, x, window=DEFAULT, wls=True):
    """dn^(1) of one run from its `Replicated` estimates (a `Replicated` dict)."""
    err = est["g1"].error if wls else None
    return est["g1"].map(lambda g1: fit_dn1(x, g1, window, err))


def jk_fit_dn2(est, x, window=DEFAULT, wls=True):
    err = est["g2"].error if wls else None
    return est["g2"].map(lambda g2: fit_dn2(x, g2, window, err))


def jk_fit_dn3(est, x, cut_slices, window=DEFAULT, wls=True):
    err = est["g3"].error if wls else None
    return est["g3"].map(lambda g3: fit_dn3(x, g3, cut_slices, window, err))


def jk_fit_dn3_line(est, x, cut_slices, cut_index, b, window=DEFAULT):
    return est["g3"].map(lambda g3: fit_dn3_line(x, g3, cut_slices, cut_index, b, window))


def jk_fit_dn2_extrapolated(items, window=DEFAULT, wls=True):
    """items: list of (N, x, Replicated g2) from independent runs."""
    errs = [rep.error for _, _, rep in items]

    def func(*g2s):
        return fit_dn2_extrapolated([(N, x, g2, e) for (N, x, _), g2, e in zip(items, g2s, errs)],
                                    window, with_wls=wls)

    return combine([rep for _, _, rep in items], func)


def jk_fit_size_series(items, n_params=None):
    """items: list of (N, Replicated scalar) from independent runs; sizes whose value is not
    finite are left out. Returns (Replicated of `fit_size_series`, sizes used) or (None, [])."""
    items = [(N, rep) for N, rep in items
             if np.isfinite(rep.value) and np.isfinite(rep.error)]
    if not items:
        return None, []
    N = np.array([n for n, _ in items], float)
    err = np.array([rep.error for _, rep in items], float)
    k = series_n_params(len(set(N))) if n_params is None else n_params
    fit = combine([rep for _, rep in items],
                  lambda *vs: fit_size_series(N, np.array(vs, float), k, err))
    return fit, [int(n) for n in N]


def jk_fit_power_law(items):
    """items: list of (N, Replicated scalar m) from independent runs."""
    N = np.array([n for n, _ in items], float)
    err = np.array([rep.error for _, rep in items], float)
    return combine([rep for _, rep in items], lambda *ms: fit_power_law(N, np.array(ms, float), err))


# --- the protocol: every fit of one run, and of the runs of one geometry and W ---------------

def _chi2_of(rep, keep, A, n_blocks):
    """Correlated chi^2 of the points ``rep[keep]`` against the design ``A``."""
    if keep.sum() == 0:
        return {"chi2": np.nan, "dof": 0.0, "p_value": np.nan, "note": "omitted: no points"}
    points = rep.map(lambda v: np.asarray(v, float)[keep])
    return correlated_chi2(A, points.value, points.covariance(), n_blocks)


def run_fits(est, x, cut_slices, n_blocks, window=DEFAULT, grid=GRID):
    """Every fit of one run (`Replicated` estimates ``est`` with ``g1``, ``g2``, ``g3``).

    Returns
    -------
    dict
        ``dn1``, ``dn2``, ``dn3``: headline fits at ``window`` (`Replicated` dicts with the
        ``*_wls`` secondary keys); ``dn3_line`` (`Replicated` or None) and ``line`` (``(cut
        index, b)`` or None): the paper's single-line dn^(3); ``chi2``: name -> correlated
        chi^2 dict; ``grid``: Window -> {"dn1", "dn2", "dn3": Replicated} (OLS only).
    """
    x = np.asarray(x, float)
    out = {"dn1": jk_fit_dn1(est, x, window), "dn2": jk_fit_dn2(est, x, window),
           "dn3": jk_fit_dn3(est, x, cut_slices, window)}
    line = paper_line(x, cut_slices)
    out["line"] = line
    out["dn3_line"] = jk_fit_dn3_line(est, x, cut_slices, line[0], line[1], window) if line else None
    designs = {"dn1": ("g1",) + design_dn1(x, window), "dn2": ("g2",) + design_dn2(x, window),
               "dn3": ("g3",) + design_dn3(x, cut_slices, window)}
    if line:
        designs["dn3_line"] = ("g3",) + design_dn3_line(x, cut_slices, line[0], line[1], window)
    out["chi2"] = {name: _chi2_of(est[field], keep, A, n_blocks)
                   for name, (field, keep, A) in designs.items()}
    out["grid"] = {}
    for w in grid:
        if w == window:  # the headline fits already hold it
            out["grid"][w] = {k: out[k] for k in ("dn1", "dn2", "dn3")}
            continue
        out["grid"][w] = {"dn1": jk_fit_dn1(est, x, w, wls=False),
                          "dn2": jk_fit_dn2(est, x, w, wls=False),
                          "dn3": jk_fit_dn3(est, x, cut_slices, w, wls=False)}
    return out


def group_fits(members, window=DEFAULT, grid=GRID):
    """Fits across the runs of one geometry and W.

    Parameters
    ----------
    members : list of (N, x, est, run_fits dict)
        One entry per run (N = the size of the ansatz: N or Nx).

    Returns
    -------
    dict
        ``dn2_extrapolated`` (Replicated, the paper's ansatz at ``window``);
        ``series``: name -> (Replicated of `fit_size_series`, sizes) for ``dn1``, ``dn2``,
        ``dn3``, ``dn3_line`` (None when no size has a value); ``grid``: Window ->
        {"dn2_extrapolated": Replicated, "dn1": series, "dn3": series}.
    """
    items = [(N, x, est["g2"]) for N, x, est, _ in members]
    out = {"dn2_extrapolated": jk_fit_dn2_extrapolated(items, window), "series": {}}
    for name in ("dn1", "dn2", "dn3", "dn3_line"):
        series = [(N, rf[name][name.split("_")[0]]) for N, _, _, rf in members
                  if rf[name] is not None]
        out["series"][name] = jk_fit_size_series(series)
    out["grid"] = {}
    for w in grid:
        if w == window:
            ext = out["dn2_extrapolated"]
        else:
            ext = jk_fit_dn2_extrapolated(items, w, wls=False)
        out["grid"][w] = {
            "dn2_extrapolated": ext,
            "dn1": jk_fit_size_series([(N, rf["grid"][w]["dn1"]["dn1"]) for N, _, _, rf in members]),
            "dn3": jk_fit_size_series([(N, rf["grid"][w]["dn3"]["dn3"]) for N, _, _, rf in members]),
        }
    return out
