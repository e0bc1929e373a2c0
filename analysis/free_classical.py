"""Free against classical cumulants at fourth order, on the cut-pair maps (docs/theory.md §7.3).

A cut-pair map is ``Re g4(a, b, c, d)`` for fixed slices (c, d) and all (a, b): the cumulant of
the loop ``a -> b -> c -> d -> a``, arguments ``(x_a, x_b, x_c, x_d)``. The two hypotheses give
two shapes of the same moments ``dn^n min(x)`` (`analysis.qssep`): the free one (QSSEP, `qssep.g`,
which depends on the loop arrangement) and the classical one (`qssep.g_classical`, symmetric).
Everything here is dn-free or has one amplitude ``t = dn^4``:

* `fit_g4` (`fit_g4_free`, `fit_g4_classical`): ``Re g4 = t shape`` by ordinary least squares
  over the window's points (`analysis.windows.g4_pair_mask`), all cut pairs together;
  ``dn4 = sign(t) |t|^(1/4)`` and the relative residual. `run_g4_fits` does both at the headline
  window and on the K, D grid, jackknifed (`analysis.estimators.Replicated.map`).
* The loop-order asymmetry (`arrangement_map`, `asymmetry_pairs`, `loop_asymmetry`): on the
  map of (c, d), the point (a, b) and its transpose (b, a) hold the same four positions in the
  two loop orders a -> b -> c -> d and b -> a -> c -> d. Swapping a and b exchanges the loop's
  opposite pairs {a, c}, {b, d} for {b, c}, {a, d}; the third pairing {a, b}, {c, d} is never
  opposite on the map. Hence (with positions increasing with the slice index):

  - a and b both below min(c, d) or both above max(c, d): the two smallest positions are
    {a, b} or {c, d}, both points are "adjacent" and every shape (free or classical) takes
    the same value at both: no asymmetry;
  - otherwise exactly one of the two is "adjacent": for c < d the point with a > b, for
    c > d the point with a < b (the other one is "opposite").

  Free predicts ``g4(adjacent) - g4(opposite) = -t p (1-s) (r - q) < 0`` for sorted positions
  p < q < r < s, classical predicts 0.
* Zero lines (`predicted_zero_line`, `zero_crossings`, `jk_zero_line`) and the figure
  `fig_zero_lines` (data map, its zero line, the free and classical zero lines).

The ratio (`loop_asymmetry`). Free is classical plus the crossing product,
``g4^Q = C + X`` with ``X = g2(x_a, x_c) g2(x_b, x_d)``; the data is compared with the family
``g4 = alpha C + beta X`` (classical: beta = 0, free: beta = alpha = dn^4), in two steps that
keep the asymmetry alone in charge of beta::

    beta   = sum Delta delta / sum delta^2      Delta = g4(adj) - g4(opp) (data), over the
                                                asymmetric pairs; delta = -p (1-s) (r-q)
                                                (C is symmetric, so X's asymmetry is delta)
    alpha  = sum (S - beta X_s) C / sum C^2     S = (g4(a,b) + g4(b,a)) / 2 (data), X_s the
                                                same of X, over every unordered window pair
    R      = beta / alpha

(all cut pairs together). R is the measured asymmetry in units of the asymmetry the free shape
predicts at the data's own amplitude: no fitted dn enters, and

* R = 1 exactly for any free map (any dn, any sign of dn^4);
* R = 0 exactly for any map symmetric under a <-> b (beta is the antisymmetric part's
  projection; the window is symmetric under a <-> b, so symmetric and antisymmetric parts are
  orthogonal): the classical shape at any amplitude, and any loop-order-blind distortion of it;
* R = lambda exactly on ``t (C + lambda X)``.

Why not ``beta / t`` with t from a one-shape fit: with the free fit of the whole map, t mixes
the asymmetry into its own normalisation; with the free shape's symmetric part alone
(``sym_amplitude``; ``ratio_sym = beta / sym_amplitude`` is kept as a secondary key) the
normaliser is a near-cancellation (``C + X_s``, with X_s nearly anti-parallel to C), so any
symmetric misfit of finite-N data moves it a lot. Dividing by the classical amplitude alpha
uses the large, well-determined part of the map. (``ratio_sym`` is 1 and 0 at the two shapes
too, but ``lambda / (kappa - lambda (kappa - 1))`` on the family, ``kappa = <C, S_f> / <S_f,
S_f>``.)

Pure numpy (matplotlib only in `fig_zero_lines`); no MPI, no files except `write_figure`.
"""
from __future__ import annotations

import numpy as np

from . import qssep
from .windows import DEFAULT, GRID, g4_pair_mask

__all__ = ["pair_points", "shape_map", "arrangement_map", "asymmetry_pairs", "design_g4",
           "fit_g4", "fit_g4_free", "fit_g4_classical", "jk_fit_g4", "loop_asymmetry",
           "jk_loop_asymmetry", "asymmetry_points", "run_g4_fits", "g4_window_rows",
           "predicted_zero_line", "zero_crossings", "crossing_positions", "jk_zero_line",
           "fig_zero_lines", "write_figure", "KINDS"]

# Shapes of g4 on a cut-pair map; "free_swapped" is the free shape in the other loop order
# of the same positions, g4^Q(x_b, x_a, x_c, x_d) (the map's transpose).
KINDS = ("free", "classical", "free_swapped")


# --- shapes and the loop arrangement ---------------------------------------------------------

def _shape_at(kind, pts):
    """The g4 shape ``kind`` (`KINDS`) at dn = 1 at the points ``(..., 4)``."""
    if kind == "free":
        return qssep.g(4, pts, 1.0)
    if kind == "classical":
        return qssep.g_classical(4, pts, 1.0)
    if kind == "free_swapped":
        return qssep.g(4, pts[..., [1, 0, 2, 3]], 1.0)
    raise ValueError(f"kind must be one of {KINDS}, got {kind!r}")


def pair_points(x, c, d):
    """(Nx, Nx, 4) points ``(x_a, x_b, x_c, x_d)`` of the cut pair (c, d)."""
    x = np.asarray(x, float)
    return np.stack(np.broadcast_arrays(x[:, None], x[None, :], x[c], x[d]), axis=-1)


def shape_map(x, c, d, kind="free"):
    """(Nx, Nx) g4 shape at dn = 1 on the map of the cut pair (c, d).

    kind : "free" (`qssep.g`, n = 4), "classical" (`qssep.g_classical`) or "free_swapped"
    (``g4^Q(x_b, x_a, x_c, x_d)``, the free shape of the other loop order).
    """
    return _shape_at(kind, pair_points(x, c, d))


def arrangement_map(nx, c, d):
    """(Nx, Nx) int8: +1 where the two smallest of the slices (a, b, c, d) are adjacent on the
    loop a -> b -> c -> d -> a, -1 where they are opposite, 0 where two slices coincide.
    Positions increase with the slice index, so slices are compared directly."""
    idx = np.arange(nx, dtype=float)
    pts = np.stack(np.broadcast_arrays(idx[:, None], idx[None, :], float(c), float(d)), axis=-1)
    arr = qssep.loop_arrangement4(pts)
    a, b = np.meshgrid(np.arange(nx), np.arange(nx), indexing="ij")
    distinct = (a != b) & (a != c) & (a != d) & (b != c) & (b != d) & (c != d)
    return np.where(distinct, arr, 0).astype(np.int8)


def asymmetry_pairs(nx, c, d, window=DEFAULT):
    """The pairs of points of one cut-pair map that hold the same four positions in the two
    loop arrangements.

    Returns
    -------
    (a, b) : two (n,) int arrays
        The "adjacent" points (a, b); the "opposite" partner of each is its transpose (b, a).
        These are the points where a and b are not both below min(c, d) nor both above
        max(c, d); for c < d they are the points with a > b, for c > d those with a < b.
        Only points whose (a, b) and (b, a) are in the window (the window is symmetric under
        a <-> b, so either both are or neither).
    """
    keep = g4_pair_mask(nx, c, d, window)
    arr = arrangement_map(nx, c, d)
    sel = keep & (arr == 1) & (arr.T == -1)
    a, b = np.nonzero(sel)
    return a, b


# --- one-amplitude fits ----------------------------------------------------------------------

def design_g4(x, pair_slices, window=DEFAULT, kind="free"):
    """``(mask (n_pairs, Nx, Nx), A (n, 1))``: the window's points of every cut pair and the
    shape ``kind`` (see `shape_map`) there."""
    x = np.asarray(x, float)
    nx = len(x)
    pairs = np.asarray(pair_slices, dtype=np.int64).reshape(-1, 2)
    keep = np.zeros((len(pairs), nx, nx), dtype=bool)
    shape = np.zeros((len(pairs), nx, nx))
    for i, (c, d) in enumerate(pairs):
        keep[i] = g4_pair_mask(nx, int(c), int(d), window)
        if keep[i].any():
            shape[i] = shape_map(x, int(c), int(d), kind)
    return keep, shape[keep][:, None]


def fit_g4(x, g4, pair_slices, window=DEFAULT, kind="free"):
    """``Re g4(a, b, c, d) = t shape(x_a, x_b, x_c, x_d)``, ordinary least squares (every
    window point once, equal weights), all cut pairs together.

    Parameters
    ----------
    x : (Nx,) slice coordinates
    g4 : (n_pairs, Nx, Nx) real part of the rescaled cumulant
    pair_slices : (n_pairs, 2) the (c, d) of every map
    window : analysis.windows.Window
    kind : "free" or "classical" (or "free_swapped")

    Returns
    -------
    dict
        ``dn4_pow4`` (t), ``dn4`` (``sign(t) |t|^(1/4)``), ``rel_residual``
        (``||g4 - t shape|| / ||g4||`` over the window points), ``n_points``; nan values
        when the window holds no point or the shape vanishes on it.
    """
    keep, A = design_g4(x, pair_slices, window, kind)
    y = np.asarray(g4, float)[keep]
    f = A[:, 0]
    ff = float(f @ f)
    if len(y) == 0 or ff == 0.0 or not np.all(np.isfinite(y)):
        return {"dn4": np.nan, "dn4_pow4": np.nan, "rel_residual": np.nan,
                "n_points": float(len(y))}
    t = float(f @ y) / ff
    norm = float(np.linalg.norm(y))
    return {"dn4": float(np.sign(t) * abs(t) ** 0.25), "dn4_pow4": t,
            "rel_residual": float(np.linalg.norm(y - t * f)) / norm if norm > 0 else np.nan,
            "n_points": float(len(y))}


def fit_g4_free(x, g4, pair_slices, window=DEFAULT):
    """`fit_g4` with the free (QSSEP) shape."""
    return fit_g4(x, g4, pair_slices, window, "free")


def fit_g4_classical(x, g4, pair_slices, window=DEFAULT):
    """`fit_g4` with the classical shape."""
    return fit_g4(x, g4, pair_slices, window, "classical")


def jk_fit_g4(est, x, pair_slices, window=DEFAULT, kind="free"):
    """`fit_g4` of one run from its `Replicated` estimates (key ``g4``): bias-corrected values
    and jackknife errors."""
    return est["g4"].map(lambda g4: fit_g4(x, g4, pair_slices, window, kind))


# --- the loop-order asymmetry ----------------------------------------------------------------

def asymmetry_points(x, g4, c, d, window=DEFAULT):
    """The asymmetric pairs of one cut-pair map, point by point.

    Returns
    -------
    dict of (n,) arrays
        ``a``, ``b``: the adjacent point (its opposite partner is (b, a)); ``p``, ``q``,
        ``r``, ``s``: the sorted positions; ``delta``: the data's ``g4[a, b] - g4[b, a]``
        (adjacent minus opposite); ``delta_free``: ``-p (1-s) (r-q)`` (free at t = 1);
        classical predicts 0.
    """
    x = np.asarray(x, float)
    g4 = np.asarray(g4, float)
    a, b = asymmetry_pairs(len(x), c, d, window)
    pos = np.sort(np.stack([x[a], x[b], np.full(len(a), x[c]), np.full(len(a), x[d])], -1), -1)
    p, q, r, s = pos.T
    return {"a": a, "b": b, "p": p, "q": q, "r": r, "s": s, "delta": g4[a, b] - g4[b, a],
            "delta_free": -p * (1.0 - s) * (r - q)}


def loop_asymmetry(x, g4, pair_slices, window=DEFAULT):
    """The dn-free test of the loop-order asymmetry (module docstring: R = beta / alpha).

    Parameters
    ----------
    x : (Nx,)
    g4 : (n_pairs, Nx, Nx) real part of the rescaled cumulant
    pair_slices : (n_pairs, 2)
    window : Window (the points; pairs of points are kept when both are in the window)

    Returns
    -------
    dict
        ``ratio`` (R = beta / alpha: 1 for the free shape, 0 for the classical one),
        ``asym_amplitude`` (beta: the asymmetry in units of the free prediction at t = 1),
        ``classical_amplitude`` (alpha), ``sym_amplitude`` (t of the symmetric part with the
        free shape) and ``ratio_sym`` (beta / sym_amplitude), ``sym_amplitude_classical`` (t
        of the symmetric part with the classical shape), ``frac_negative`` (fraction of the
        asymmetric pairs with Delta < 0; free: all when dn^4 > 0), ``asym_rel_deviation``
        (``||Delta - alpha delta|| / ||alpha delta||``: the asymmetry point by point against
        the free prediction at the data's amplitude; 0 for free, 1 for classical), ``n_asym``,
        ``n_sym`` (numbers of pairs of points). nan where undefined.
    """
    x = np.asarray(x, float)
    g4 = np.asarray(g4, float)
    nx = len(x)
    pairs = np.asarray(pair_slices, dtype=np.int64).reshape(-1, 2)
    deltas, deltas_f = [], []
    sym, sym_f, sym_c, cross_s = [], [], [], []
    for i, (c, d) in enumerate(pairs):
        c, d = int(c), int(d)
        pts = asymmetry_points(x, g4[i], c, d, window)
        deltas.append(pts["delta"])
        deltas_f.append(pts["delta_free"])
        upper = np.triu(g4_pair_mask(nx, c, d, window), 1)
        if not upper.any():
            continue
        free, clas = shape_map(x, c, d, "free"), shape_map(x, c, d, "classical")
        cross = free - clas
        sym.append(0.5 * (g4[i] + g4[i].T)[upper])
        sym_f.append(0.5 * (free + free.T)[upper])
        sym_c.append(clas[upper])
        cross_s.append(0.5 * (cross + cross.T)[upper])
    cat = (lambda parts: np.concatenate(parts) if parts else np.zeros(0))
    delta, delta_f = cat(deltas), cat(deltas_f)
    S, S_f, C_s, X_s = cat(sym), cat(sym_f), cat(sym_c), cat(cross_s)
    keys = ("ratio", "asym_amplitude", "classical_amplitude", "sym_amplitude", "ratio_sym",
            "sym_amplitude_classical", "frac_negative", "asym_rel_deviation")
    out = dict.fromkeys(keys, np.nan)
    out.update(n_asym=float(len(delta)), n_sym=float(len(S)))
    if not (np.all(np.isfinite(delta)) and np.all(np.isfinite(S))):
        return out
    dd, ff, cc = float(delta_f @ delta_f), float(S_f @ S_f), float(C_s @ C_s)
    if ff > 0:
        out["sym_amplitude"] = float(S_f @ S) / ff
    if cc > 0:
        out["sym_amplitude_classical"] = float(C_s @ S) / cc
    if dd == 0:
        return out
    beta = float(delta_f @ delta) / dd
    out["asym_amplitude"] = beta
    out["frac_negative"] = float(np.mean(delta < 0))
    if ff > 0 and out["sym_amplitude"] != 0:
        out["ratio_sym"] = beta / out["sym_amplitude"]
    if cc > 0:
        alpha = float(C_s @ (S - beta * X_s)) / cc
        out["classical_amplitude"] = alpha
        if alpha != 0:
            out["ratio"] = beta / alpha
            out["asym_rel_deviation"] = float(np.linalg.norm(delta - alpha * delta_f)
                                              / np.linalg.norm(alpha * delta_f))
    return out


def jk_loop_asymmetry(est, x, pair_slices, window=DEFAULT):
    """`loop_asymmetry` of one run from its `Replicated` estimates (key ``g4``)."""
    return est["g4"].map(lambda g4: loop_asymmetry(x, g4, pair_slices, window))


# --- the protocol over the window grid -------------------------------------------------------

def run_g4_fits(est, x, pair_slices, window=DEFAULT, grid=GRID):
    """Both one-amplitude fits and the asymmetry of one run, at ``window`` and on ``grid``.

    Parameters
    ----------
    est : Replicated dict with ``g4`` (n_pairs, Nx, Nx)
    x : (Nx,)
    pair_slices : (n_pairs, 2)
    window : the headline window; grid : the sensitivity windows (K, D in {0, 1, 2})

    Returns
    -------
    dict
        ``free``, ``classical`` (`Replicated` of `fit_g4`), ``asymmetry`` (`Replicated` of
        `loop_asymmetry`), and ``grid``: Window -> the same three (the headline window's
        entry is the headline objects).
    """
    x = np.asarray(x, float)

    def at(w):
        return {"free": jk_fit_g4(est, x, pair_slices, w, "free"),
                "classical": jk_fit_g4(est, x, pair_slices, w, "classical"),
                "asymmetry": jk_loop_asymmetry(est, x, pair_slices, w)}

    out = at(window)
    out["grid"] = {w: ({k: out[k] for k in ("free", "classical", "asymmetry")} if w == window
                       else at(w)) for w in grid}
    return out


def _num(v):
    v = float(v)
    return v if np.isfinite(v) else None


def g4_window_rows(fits):
    """Rows of the window grid of `run_g4_fits` and their ranges (report conventions).

    Returns
    -------
    (rows, ranges)
        ``rows``: one dict per window, ``drop_slices``, ``drop_diagonal``, ``dn4_free``,
        ``dn4_classical``, ``asym_ratio`` (each with ``_err``), ``rel_residual_free``,
        ``rel_residual_classical``, ``n_points``; ``ranges``: ``<name>_window_range`` =
        ``[min, max]`` of ``dn4_free``, ``dn4_classical`` and ``asym_ratio`` over the rows (None
        without a finite value). Non-finite numbers are None.
    """
    rows = []
    for w, g in fits["grid"].items():
        row = w.as_dict()
        for name, rep, key in (("dn4_free", g["free"], "dn4"),
                               ("dn4_classical", g["classical"], "dn4"),
                               ("asym_ratio", g["asymmetry"], "ratio")):
            row[name] = _num(rep.value[key])
            row[f"{name}_err"] = _num(rep.error[key])
        row["rel_residual_free"] = _num(g["free"].full["rel_residual"])
        row["rel_residual_classical"] = _num(g["classical"].full["rel_residual"])
        row["n_points"] = int(g["free"].full["n_points"])
        rows.append(row)
    ranges = {}
    for name in ("dn4_free", "dn4_classical", "asym_ratio"):
        vals = [r[name] for r in rows if r[name] is not None]
        ranges[f"{name}_window_range"] = [min(vals), max(vals)] if vals else None
    return rows, ranges


# --- zero lines ------------------------------------------------------------------------------

def predicted_zero_line(xc, xd, kind="free", n_grid=400):
    """Zero set of a g4 shape in the (x_a, x_b) plane at fixed (x_c, x_d), exactly.

    Every shape is multilinear in the positions on each ordering of them (products of minima),
    so along a line x_a = const it is linear in x_b between the breakpoints {0, x_a, x_c, x_d,
    1}: its roots there follow exactly from the values at the breakpoints. Roots at x_b = 0, 1
    (where every shape vanishes) are left out.

    Parameters
    ----------
    xc, xd : float
        Positions of the pair's slices.
    kind : "free", "classical" or "free_swapped" (`shape_map`)
    n_grid : int
        Number of lines per scan direction, at ``(k + 1/2) / n_grid``.

    Returns
    -------
    dict
        ``rows``: (n, 2) points (x_a, x_b) of the scan along x_b at fixed x_a; ``cols``: the
        same scanning x_a at fixed x_b (steep parts of the zero line show up there).
    """
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {KINDS}, got {kind!r}")
    lines = (np.arange(n_grid) + 0.5) / n_grid
    out = {}
    for name, axis in (("rows", 1), ("cols", 0)):
        found = []
        for u in lines:
            brk = np.unique(np.clip([0.0, u, xc, xd, 1.0], 0.0, 1.0))
            pts = np.empty((len(brk), 4))
            pts[:, 2], pts[:, 3] = xc, xd
            pts[:, 1 - axis], pts[:, axis] = u, brk
            v = _shape_at(kind, pts)
            v[(brk == 0.0) | (brk == 1.0)] = 0.0  # exact zeros there, not rounding noise
            for k in range(len(brk) - 1):
                lo, hi = v[k], v[k + 1]
                if lo * hi < 0:
                    root = brk[k] + lo * (brk[k + 1] - brk[k]) / (lo - hi)
                elif lo == 0 and 0.0 < brk[k] < 1.0 and v[k - 1] * hi < 0:
                    root = brk[k]  # a zero exactly at a breakpoint, crossed there
                else:
                    continue
                found.append((u, root) if axis == 1 else (root, u))
        out[name] = np.array(found, float).reshape(-1, 2)
    return out


def zero_crossings(x, g4_map, keep, axis=1):
    """Sign changes of a measured map along its rows (``axis=1``: x_b varies at fixed a) or
    columns (``axis=0``), between consecutive points of ``keep``, by linear interpolation.

    Parameters
    ----------
    x : (Nx,)
    g4_map : (Nx, Nx)
    keep : (Nx, Nx) bool, the points that count (e.g. `analysis.windows.g4_pair_mask`)
    axis : 1 or 0

    Returns
    -------
    dict of (n,) arrays
        ``line``: the fixed index (a for rows, b for columns); ``lo``, ``hi``: the bracketing
        indices along the scan; ``position``: the interpolated coordinate of the zero. A zero
        value counts as positive.
    """
    x = np.asarray(x, float)
    m = np.asarray(g4_map, float)
    keep = np.asarray(keep, bool)
    if axis == 0:
        m, keep = m.T, keep.T
    elif axis != 1:
        raise ValueError(f"axis must be 0 or 1, got {axis!r}")
    line, lo, hi = [], [], []
    for i in range(m.shape[0]):
        idx = np.nonzero(keep[i] & np.isfinite(m[i]))[0]
        if len(idx) < 2:
            continue
        pos = m[i, idx] >= 0
        for k in np.nonzero(pos[:-1] != pos[1:])[0]:
            line.append(i)
            lo.append(idx[k])
            hi.append(idx[k + 1])
    line, lo, hi = (np.array(v, dtype=np.int64) for v in (line, lo, hi))
    brackets = {"line": line, "lo": lo, "hi": hi}
    brackets["position"] = crossing_positions(x, g4_map, brackets, axis)
    return brackets


def crossing_positions(x, g4_map, brackets, axis=1):
    """Linear-interpolation zeros of ``g4_map`` in the fixed brackets of `zero_crossings`
    (a smooth function of the map, so that it can be jackknifed; a replicate without a sign
    change in a bracket gives the linear extrapolation)."""
    x = np.asarray(x, float)
    m = np.asarray(g4_map, float)
    if axis == 0:
        m = m.T
    line, lo, hi = brackets["line"], brackets["lo"], brackets["hi"]
    v_lo, v_hi = m[line, lo], m[line, hi]
    with np.errstate(divide="ignore", invalid="ignore"):
        return x[lo] + v_lo * (x[hi] - x[lo]) / (v_lo - v_hi)


def jk_zero_line(g4_rep, x, keep, axis=1, min_jump=0.0):
    """Measured zero line of one cut-pair map with jackknife errors on its positions.

    Parameters
    ----------
    g4_rep : Replicated of one (Nx, Nx) map (e.g. ``est["g4"].map(lambda g: g[i])``)
    x, keep, axis : as `zero_crossings`
    min_jump : float
        Keep only the crossings whose sign change is significant, ``|v_lo - v_hi| >= min_jump
        sqrt(err_lo^2 + err_hi^2)`` (0: keep all; where the map is flat near zero, e.g. close
        to x = 0 or 1 where every shape vanishes, noise alone makes sign changes).

    Returns
    -------
    dict
        The brackets of `zero_crossings` found on the bias-corrected map, ``jump_z`` (the
        significance above), ``x_fixed`` (the coordinate of each line), ``position``
        (bias-corrected) and ``position_err`` (jackknife), ``points`` (n, 2) as (x_a, x_b),
        ``axis``.
    """
    x = np.asarray(x, float)
    value = np.asarray(g4_rep.value, float)
    err = np.asarray(g4_rep.error, float)
    found = zero_crossings(x, value, keep, axis)
    v, e = (value, err) if axis == 1 else (value.T, err.T)
    line, lo, hi = found["line"], found["lo"], found["hi"]
    with np.errstate(divide="ignore", invalid="ignore"):
        jump = np.abs(v[line, lo] - v[line, hi]) / np.hypot(e[line, lo], e[line, hi])
    sel = ~(jump < min_jump)
    found = {k: np.asarray(val)[sel] for k, val in found.items()}
    rep = g4_rep.map(lambda m: crossing_positions(x, m, found, axis))
    out = dict(found)
    out["jump_z"] = jump[sel]
    out["axis"] = axis
    out["position"] = np.asarray(rep.value, float).reshape(-1)
    out["position_err"] = np.asarray(rep.error, float).reshape(-1)
    out["x_fixed"] = x[found["line"]]
    pts = (out["x_fixed"], out["position"]) if axis == 1 else (out["position"], out["x_fixed"])
    out["points"] = np.stack(pts, axis=-1).reshape(-1, 2)
    return out


# --- figure ----------------------------------------------------------------------------------

def fig_zero_lines(x, g4_map, c, d, measured=None, rec=None, title=None, n_grid=400):
    """Data map of one cut pair, its measured zero line and the predicted ones.

    Parameters
    ----------
    x : (Nx,)
    g4_map : (Nx, Nx) Re g4 of the pair (shown where the four slices are distinct)
    c, d : the pair's slices
    measured : list of `jk_zero_line` dicts (e.g. rows and columns), optional
    rec : analysis.figures.FigureData, optional; receives every drawn point (kind ``map``,
        ``zero_data`` with its error, ``zero_free``, ``zero_free_swapped``, ``zero_classical``)
    n_grid : lines per scan of the predicted zero lines

    Returns
    -------
    matplotlib.figure.Figure
    """
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    x = np.asarray(x, float)
    nx = len(x)
    arr = np.where(arrangement_map(nx, c, d) != 0, np.asarray(g4_map, float), np.nan)
    h = 0.5 / nx
    fig, ax = plt.subplots(figsize=(6.4, 5.4))
    vmax = float(np.nanmax(np.abs(arr))) if np.isfinite(arr).any() else 1.0
    im = ax.imshow(arr.T, origin="lower", extent=[x[0] - h, x[-1] + h, x[0] - h, x[-1] + h],
                   cmap="RdBu_r", vmin=-vmax, vmax=vmax, interpolation="nearest")
    fig.colorbar(im, ax=ax, shrink=0.85, label="Re $g_4$")
    if rec is not None:
        a, b = np.meshgrid(np.arange(nx), np.arange(nx), indexing="ij")
        rec.add(panel="map", series="data", kind="map", x_a=x[a], x_b=x[b], value=arr, error=np.nan)
    # drawn in this order, so that free is on top where the lines coincide
    styles = {"free_swapped": dict(color="0.6", label="free, other loop order"),
              "classical": dict(color="tab:orange", label="classical"),
              "free": dict(color="k", label="free (QSSEP)")}
    for kind, style in styles.items():
        pred = predicted_zero_line(x[c], x[d], kind, n_grid)
        pts = np.concatenate([pred["rows"], pred["cols"]])
        ax.plot(pts[:, 0], pts[:, 1], ls="none", marker=".", ms=1.2, color=style["color"])
        ax.plot([], [], color=style["color"], lw=1.5, label=style["label"] + " zero line")
        if rec is not None and len(pts):
            rec.add(panel="map", series=kind, kind=f"zero_{kind}", x_a=pts[:, 0], x_b=pts[:, 1],
                    value=0.0, error=np.nan)
    for k, line in enumerate(measured or ()):
        pts = np.asarray(line["points"], float).reshape(-1, 2)
        err = np.asarray(line["position_err"], float)
        along_b = line["axis"] == 1  # the position varies along x_b
        ax.errorbar(pts[:, 0], pts[:, 1], xerr=None if along_b else err, yerr=err if along_b else None,
                    ls="none", marker="o", ms=3, color="tab:green", mec="k", mew=0.4,
                    label="data zero line" if k == 0 else None)
        if rec is not None and len(pts):
            rec.add(panel="map", series="data", kind="zero_data", x_a=pts[:, 0], x_b=pts[:, 1],
                    value=0.0, error=err)
    for z in (x[c], x[d]):
        ax.axhline(z, color="k", lw=0.5, ls=":")
        ax.axvline(z, color="k", lw=0.5, ls=":")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.set_xlabel("$x_a$")
    ax.set_ylabel("$x_b$")
    ax.legend(fontsize=7, loc="upper left")
    ax.set_title(title or f"$g_4$ zero lines at the cut pair $(x_c, x_d) = ({x[c]:.2f}, {x[d]:.2f})$",
                 fontsize=10)
    fig.tight_layout()
    return fig


def write_figure(fig, rec, stem):
    """Write ``<stem>.png``, ``<stem>.pdf`` and (with ``rec``) ``<stem>.csv``; returns the paths."""
    from pathlib import Path
    stem = Path(stem)
    paths = []
    for ext in ("png", "pdf"):
        fig.savefig(stem.with_suffix(f".{ext}"), dpi=150)
        paths.append(stem.with_suffix(f".{ext}"))
    if rec is not None:
        paths.append(rec.write(stem.with_suffix(".csv")))
    return paths
