"""Sums over a sub-interval: QSSEP's (free) and the classical predictions for m_n(x), n = 2, 3, 4
(docs/theory.md §8).

``m_n(x)`` sums the connected ``C_n(a_1..a_n)`` over every slice of ``[0, xN)``; divided by
`interval_scale` (N in the cube, ``Nx^(2n-1)`` in quasi-1d) it tends to::

    I_n(x) = int over [0, x]^n of g_n
    I2(x)   = dn^2 x^3 (4 - 3x) / 12
    I3(x)   = dn^3 x^4 (1 - x)^2 / 4
    I4(x)   = -dn^4 x^5 (225 x^3 - 600 x^2 + 520 x - 144) / 720     free (QSSEP)
    I4cl(x) = -dn^4 x^5 (45 x^3 - 120 x^2 + 100 x - 24) / 120        classical

(free and classical agree for n <= 3; ``I4cl - I4 = -I2^2``, the integral of the crossing
product.) I4 changes sign once in (0, 1), from + to -, at `INTERVAL_ZEROS` (free 0.586843,
classical 0.412927): a dn-free discriminator.

At finite N the data is a sum over the slices ``x_i = (i + 1/2)/N``, not an integral, and the
coinciding slices carry contact terms QSSEP does not model; `interval_sums_qssep` gives the
prediction for the distinct-slice part at the data's N:
``N^-n sum_{i_1..i_n in [0, M), pairwise distinct} g_n(x_i1, ..., x_in)`` for every M.

Measured curves: `interval_zero` / `fit_interval_zero` / `jk_interval_zero` locate the zero of
a measured m4(x), `fit_interval_amplitude` fits ``m_n(x) = t I_n(x; 1)``, and `m3_sign`
reports the sign of m3(x) point by point (I3 > 0 for any real dn > 0 in QSSEP; the paper's
dn^(3) < 0 would make it negative).

Pure numpy; no MPI, no files.
"""
from __future__ import annotations

import itertools
import math

import numpy as np

from . import qssep

__all__ = ["interval_integral", "interval_zero_theory", "INTERVAL_ZEROS", "interval_scale",
           "interval_sums_qssep", "interval_zero", "fit_interval_zero", "jk_interval_zero",
           "fit_interval_amplitude", "jk_fit_interval_amplitude", "m3_sign", "interval_sums",
           "finite_n_shape", "fit_interval_shape", "run_interval_fits", "INTERVAL_FIT_ORDERS"]

# Cubic factors of I4 (free) and I4cl (classical), highest power first:
# I4 = -dn^4 x^5 P(x) / 720, I4cl = -dn^4 x^5 Pcl(x) / 120.
_I4_CUBIC = {"free": ((225.0, -600.0, 520.0, -144.0), 720.0),
             "classical": ((45.0, -120.0, 100.0, -24.0), 120.0)}


def _check_kind(kind):
    if kind not in ("free", "classical"):
        raise ValueError(f"kind must be 'free' or 'classical', got {kind!r}")


def interval_integral(n, x, dn=1.0, kind="free"):
    """``I_n(x) = int_[0,x]^n g_n`` in closed form (module docstring).

    Parameters
    ----------
    n : {1, 2, 3, 4}
    x : array_like, entries in [0, 1]
    dn : float
    kind : "free" (QSSEP) or "classical" (differs from free only at n = 4)

    Returns
    -------
    ndarray, the shape of ``x``. (``I1 = dn x^2 / 2``.)
    """
    _check_kind(kind)
    x = np.asarray(x, float)
    if n == 1:
        return dn * x**2 / 2.0
    if n == 2:
        return dn**2 * x**3 * (4.0 - 3.0 * x) / 12.0
    if n == 3:
        return dn**3 * x**4 * (1.0 - x) ** 2 / 4.0
    if n == 4:
        coef, den = _I4_CUBIC[kind]
        return -dn**4 * x**5 * np.polyval(coef, x) / den
    raise ValueError(f"closed forms exist here for n = 1..4, got {n!r}")


def interval_zero_theory(kind="free"):
    """The zero of ``I_4(x)`` in (0, 1) (the only one: the cubic factor has one real root there),
    to machine precision (a root of the cubic polished by Newton steps)."""
    _check_kind(kind)
    coef, _ = _I4_CUBIC[kind]
    roots = np.roots(coef)
    real = [r.real for r in roots if abs(r.imag) < 1e-9 and 0.0 < r.real < 1.0]
    if len(real) != 1:
        raise RuntimeError(f"expected one real root in (0, 1), got {roots}")
    x = real[0]
    deriv = np.polyder(coef)
    for _ in range(3):
        x -= np.polyval(coef, x) / np.polyval(deriv, x)
    return float(x)


INTERVAL_ZEROS = {kind: interval_zero_theory(kind) for kind in ("free", "classical")}


def interval_scale(geometry, N, n):
    """What ``m_n(x)`` is divided by to compare with ``I_n(x)``: ``N`` (cube and the stochastic
    models' chain; ``C_n = N^(1-n) g_n`` times ``(xN)^n`` terms) or ``Nx^(2n-1)`` (quasi-1d;
    ``C_n = Nx^(n-1) g_n``)."""
    if geometry in ("cube", "chain"):
        return float(N)
    if geometry == "quasi1d":
        return float(N) ** (2 * n - 1)
    raise ValueError(f"geometry must be 'cube' or 'quasi1d', got {geometry!r}")


def _orbit_representatives(n, kind):
    """Orderings of n distinct sorted positions, one per orbit of the symmetry of the shape,
    with the orbit sizes: the free g_n is invariant under the dihedral group of the loop
    (orbits of size 2n for n >= 3), the classical one under every permutation."""
    if kind == "classical" or n <= 2:
        return [tuple(range(n))], [math.factorial(n)]
    reps = [(0,) + p for p in itertools.permutations(range(1, n)) if p[0] < p[-1]]
    return reps, [2 * n] * len(reps)


def interval_sums_qssep(n, N, dn=1.0, kind="free"):
    """Finite-N prediction for the distinct-slice part of ``m_n(x) / interval_scale``.

    ``D_n(M) = N^-n sum g_n(x_i1, ..., x_in)`` over the pairwise distinct slices of [0, M),
    ``x_i = (i + 1/2)/N``, for every M = 0..N (x = M/N); ``D_n -> I_n(x)`` as N -> infinity
    with an O(1/N) difference (the left-out coinciding slices).

    Parameters
    ----------
    n : int, 1 <= n <= 6
    N : int, the number of slices (N or Nx); the cost grows like N^n / n! (N <= 80 at n = 4
        takes about a second)
    dn : float
    kind : "free" (`qssep.g`) or "classical" (`qssep.g_classical`)

    Returns
    -------
    (x, values) : two (N + 1,) arrays, ``x = M / N``.

    Notes
    -----
    Every n-set of distinct slices is visited once, sorted; its n! orderings fall into orbits
    of the shape's symmetry (dihedral for free: at n = 4, 16 orderings with the two smallest
    positions adjacent on the loop and 8 with them opposite; all n! for classical), each
    evaluated once with its orbit size. Sets are binned by their largest slice and summed
    cumulatively, which gives every M at once.
    """
    _check_kind(kind)
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or not 1 <= n <= 6:
        raise ValueError(f"n must be an integer in 1..6, got {n!r}")
    if isinstance(N, bool) or not isinstance(N, (int, np.integer)) or N < 1:
        raise ValueError(f"N must be a positive integer, got {N!r}")
    x_slice = (np.arange(N) + 0.5) / N
    func = qssep.g if kind == "free" else qssep.g_classical
    per_max = np.zeros(N)
    if N >= n:
        sets = np.fromiter(itertools.chain.from_iterable(itertools.combinations(range(N), n)),
                           dtype=np.int64).reshape(-1, n)
        pos = x_slice[sets]
        total = np.zeros(len(sets))
        for order, weight in zip(*_orbit_representatives(n, kind)):
            total += weight * func(n, pos[:, list(order)], dn)
        per_max = np.bincount(sets[:, -1], weights=total, minlength=N)
    values = np.concatenate([[0.0], np.cumsum(per_max)]) / float(N) ** n
    return np.arange(N + 1) / N, values


# --- the zero of a measured m4(x) -----------------------------------------------------------

def _bracket(x, m):
    """Indices of the last + -> - sign change, and the number of sign changes of either
    direction; points with x <= 0, non-finite m or m exactly 0 (a finite-N prediction below n
    slices: no term) are left out."""
    x = np.asarray(x, float)
    m = np.asarray(m, float)
    idx = np.nonzero((x > 0) & np.isfinite(m) & (m != 0))[0]
    pos = m[idx] > 0
    change = np.nonzero(pos[:-1] != pos[1:])[0]
    down = [k for k in change if pos[k] and not pos[k + 1]]
    if not down:
        return None, len(change)
    k = down[-1]
    return (int(idx[k]), int(idx[k + 1])), len(change)


def _interp(x, m, lo, hi):
    x = np.asarray(x, float)
    m = np.asarray(m, float)
    with np.errstate(divide="ignore", invalid="ignore"):
        return float(x[lo] + m[lo] * (x[hi] - x[lo]) / (m[lo] - m[hi]))


def interval_zero(x, m):
    """Zero of a measured ``m_4(x)``: the last sign change from + to - (the predicted shape is
    positive below its zero and negative up to x = 1), by linear interpolation between the two
    grid points around it (points where m is exactly 0 are skipped).

    Returns
    -------
    dict
        ``x0`` (nan without a + -> - change), ``lo``, ``hi`` (the bracketing indices, -1
        without), ``n_crossings`` (sign changes of either direction: more than one means noise
        or a different shape).
    """
    br, n_cross = _bracket(x, m)
    if br is None:
        return {"x0": np.nan, "lo": -1, "hi": -1, "n_crossings": float(n_cross)}
    return {"x0": _interp(x, m, *br), "lo": br[0], "hi": br[1], "n_crossings": float(n_cross)}


def fit_interval_zero(x, m4, err=None):
    """`interval_zero` of arrays, with an error bound from the errors of the two bracketing
    values.

    ``x0 = x1 - m1 (x2 - x1) / (m2 - m1)`` has ``dx0/dm1 = -m2 (x2 - x1) / (m2 - m1)^2`` and
    ``dx0/dm2 = m1 (x2 - x1) / (m2 - m1)^2``; ``x0_err = |dx0/dm1| e1 + |dx0/dm2| e2`` bounds the
    standard error for any correlation of m1 and m2 (cumulative sums are strongly correlated;
    `jk_interval_zero` gives the jackknife error itself).

    Returns
    -------
    dict: the keys of `interval_zero` and ``x0_err`` (nan without ``err`` or a zero).
    """
    out = interval_zero(x, m4)
    out["x0_err"] = np.nan
    if err is None or out["lo"] < 0:
        return out
    x = np.asarray(x, float)
    m = np.asarray(m4, float)
    e = np.abs(np.asarray(err, float))
    lo, hi = out["lo"], out["hi"]
    gap = (m[hi] - m[lo]) ** 2
    d1 = abs(m[hi]) * (x[hi] - x[lo]) / gap
    d2 = abs(m[lo]) * (x[hi] - x[lo]) / gap
    out["x0_err"] = float(d1 * e[lo] + d2 * e[hi])
    return out


def jk_interval_zero(m_rep, x):
    """Jackknifed zero of a measured m4(x) (`Replicated` of an array over x): the bracket is
    found on the bias-corrected curve and kept fixed in every replicate (so that the zero is a
    smooth function of the data; a replicate without a sign change there gives the linear
    extrapolation). Returns a `Replicated` dict ``x0``, ``lo``, ``hi``, ``n_crossings`` (of
    the bias-corrected curve)."""
    found = interval_zero(x, m_rep.value)

    def func(m):
        out = dict(found)
        if found["lo"] >= 0:
            out["x0"] = _interp(x, m, found["lo"], found["hi"])
        return {k: float(v) for k, v in out.items()}

    return m_rep.map(func)


# --- amplitudes and the sign of m3 ----------------------------------------------------------

def fit_interval_amplitude(n, x, m, kind="free"):
    """``m_n(x) = t I_n(x; dn = 1)``, ordinary least squares over the given x (every point
    once): `fit_interval_shape` against the closed form `interval_integral`."""
    return fit_interval_shape(n, m, interval_integral(n, np.asarray(x, float), 1.0, kind))


def jk_fit_interval_amplitude(m_rep, n, x, kind="free"):
    """`fit_interval_amplitude` through the replicates of ``m_rep`` (`Replicated` array)."""
    return m_rep.map(lambda m: fit_interval_amplitude(n, x, m, kind))


def m3_sign(x, m3, err, threshold=2.0):
    """Sign of a measured ``m_3(x)`` point by point, against the two readings.

    QSSEP gives ``I3(x) = dn^3 x^4 (1-x)^2 / 4``: positive on (0, 1) for dn > 0, negative for
    the paper's dn^(3) < 0.

    Parameters
    ----------
    x, m3, err : (n,) arrays (m3 divided by `interval_scale`, its jackknife error)
    threshold : float, the |m3| / err beyond which a sign counts

    Returns
    -------
    dict
        ``z`` (m3 / err), ``sign`` (of m3), ``verdict`` (+1: positive beyond the threshold, as
        QSSEP with dn > 0; -1: negative beyond it, as dn^(3) < 0; 0: neither), ``shape``
        (``I3(x; 1)``, > 0 inside (0, 1)), ``n_positive``, ``n_negative`` (counts of verdicts
        +1 and -1). Values at different x are correlated (nested intervals): the counts are
        not independent tests; `fit_interval_amplitude` (n = 3) gives one signed dn^3.
    """
    x = np.asarray(x, float)
    m3 = np.asarray(m3, float)
    err = np.abs(np.asarray(err, float))
    with np.errstate(divide="ignore", invalid="ignore"):
        z = np.where(err > 0, m3 / err, np.sign(m3) * np.inf)
    verdict = np.where(z > threshold, 1, np.where(z < -threshold, -1, 0)).astype(np.int8)
    return {"z": z, "sign": np.sign(m3), "verdict": verdict,
            "shape": interval_integral(3, x, 1.0), "n_positive": int(np.sum(verdict == 1)),
            "n_negative": int(np.sum(verdict == -1))}


# --- m_n(x) from the block sums of the group `intervals` -----------------------------------

def _mean_products(mean_k, orbit_size, L):
    """Products of k-diagonal means on the first L slices: ``sum_k Tr(A_k^n)`` (n = 2, 3, 4), all
    slices and pairwise distinct slices, ``A_k[a, b] = mean_k[a, b, o(k)] / |o|`` (constant on o).

    Distinct sums by inclusion-exclusion on the scalar loop ``A_ab A_bc ...`` with ``A'`` = A off
    its diagonal: n = 2, 3: ``Tr A'^n``; n = 4: ``Tr A'^4 - 2 sum_a ((A'^2)_aa)^2 +
    sum_{a != b} (A_ab A_ba)^2``.
    """
    size = np.asarray(orbit_size, float)
    A = np.moveaxis(np.asarray(mean_k)[:L, :L], 2, 0) / size[:, None, None]
    Ad = A.copy()
    idx = np.arange(L)
    Ad[:, idx, idx] = 0.0
    A2, Ad2 = A @ A, Ad @ Ad
    tr = lambda X: np.einsum("oaa->o", X)  # noqa: E731
    ab_ba = A * A.transpose(0, 2, 1)
    ab_ba[:, idx, idx] = 0.0
    dist4 = (np.einsum("oab,oba->o", Ad2, Ad2) - 2 * np.sum(np.einsum("oaa->oa", Ad2) ** 2, axis=1)
             + np.sum(ab_ba ** 2, axis=(1, 2)))
    return {2: (size @ tr(A2), size @ tr(Ad2)),
            3: (size @ np.einsum("oab,oba->o", A2, A), size @ np.einsum("oab,oba->o", Ad2, Ad)),
            4: (size @ np.einsum("oab,oba->o", A2, A2), size @ dist4)}


def interval_sums(M, n_perp, orbit_size, lengths, exact_moments=True):
    """``m_n(x)`` (n = 2, 3, 4) with their distinct and coinciding parts, from sample means.

    Parameters
    ----------
    M : mapping (e.g. `analysis.estimators.Means`)
        Sample means of ``tr_gg``, ``mean_k`` (base group) and of the fields of
        `anderson_mpi.observables.intervals.field_shapes` (a word field's term is ``M[field] / M[its count]``).
    n_perp : int
    orbit_size : (n_orb,) int
    lengths : (n_x,) int, the grid's interval lengths (``/layout/interval_lengths``)
    exact_moments : bool
        The moments ``E Tr G_I^3``, ``E Tr G_I^4`` from the exact fields ``iv_tr3``, ``iv_tr4``
        (as the run computed them), else from the probe estimates ``iv_p3``, ``iv_p4``.

    Returns
    -------
    dict of (n_x,) arrays
        ``x`` (= L/Nx, where the QSSEP integrals are evaluated), ``m2``, ``m3``, ``m4`` (real
        parts) and for each ``mN``: ``mN_distinct`` (pairwise distinct slices),
        ``mN_coinciding`` (= mN - mN_distinct), and ``mN_imag``, ``mN_distinct_imag`` (zero up to
        noise: a check). Terms that need sample pairs (triples) are nan without any.
        ``terms4`` / ``terms4_distinct``: (7, n_x) complex, ``Np^-4`` x the partition classes
        ``[1234, 123|4, 12|34, 13|24, 12|3|4, 13|2|4, 1|2|3|4]`` (one rotation each) before the
        weights ``(1, -4, -2, -1, 8, 4, -6)``.
    """
    npp = float(n_perp)
    lengths = np.asarray(lengths, dtype=np.int64).reshape(-1)
    mk = np.asarray(M["mean_k"])
    nx = mk.shape[0]
    tr_gg = np.real(np.asarray(M["tr_gg"]))
    n1, n2 = float(np.real(M["iv_n1"])), float(np.real(M["iv_n2"]))

    def term(name, count):
        value = np.asarray(M[name], dtype=complex)
        return value / count if count > 0 else np.full(value.shape, np.nan, dtype=complex)

    nxg = len(lengths)
    out = {"x": lengths / nx}
    mm = {n: (np.empty(nxg, complex), np.empty(nxg, complex)) for n in (2, 3, 4)}
    s2, s2d = np.empty(nxg), np.empty(nxg)
    for i, L in enumerate(lengths):
        values = _mean_products(mk, orbit_size, L)
        for n in (2, 3, 4):
            mm[n][0][i], mm[n][1][i] = values[n]
        block = tr_gg[:L, :L]
        s2[i] = block.sum()
        s2d[i] = s2[i] - np.trace(block)
    m2 = (s2 - mm[2][0]) / npp**2
    m2d = (s2d - mm[2][1]) / npp**2
    out["m2"], out["m2_distinct"] = m2.real, m2d.real
    out["m2_coinciding"] = out["m2"] - out["m2_distinct"]

    tr3 = np.asarray(M["iv_tr3" if exact_moments else "iv_p3"], dtype=complex)
    tr4 = np.asarray(M["iv_tr4" if exact_moments else "iv_p4"], dtype=complex)
    m3 = (tr3 - 3 * term("iv_rgg", n1) + 2 * mm[3][0]) / npp**3
    m3d = (np.asarray(M["iv_d3"], complex) - 3 * term("iv_d_rgg", n1) + 2 * mm[3][1]) / npp**3
    t4 = np.array([tr4, term("iv_rggg", n1), term("iv_ggtt", n1), term("iv_gtgt", n1),
                   term("iv_rggr", n2), term("iv_rgrg", n2), mm[4][0]]) / npp**4
    t4d = np.array([np.asarray(M["iv_d4"], complex), term("iv_d_rggg", n1), term("iv_d_ggtt", n1),
                    term("iv_d_gtgt", n1), term("iv_d_rggr", n2), term("iv_d_rgrg", n2),
                    mm[4][1]]) / npp**4
    weights4 = np.array([1, -4, -2, -1, 8, 4, -6], float)
    m4, m4d = weights4 @ t4, weights4 @ t4d
    for name, total, dist in (("m3", m3, m3d), ("m4", m4, m4d)):
        out[name], out[name + "_distinct"] = total.real, dist.real
        out[name + "_coinciding"] = total.real - dist.real
        out[name + "_imag"], out[name + "_distinct_imag"] = total.imag, dist.imag
    out["terms4"], out["terms4_distinct"] = t4, t4d
    return out


# --- the fits of one run ----------------------------------------------------------------------

# (order, kind) of the shape fits of the distinct parts: free and classical agree below n = 4
INTERVAL_FIT_ORDERS = ((2, "free"), (3, "free"), (4, "free"), (4, "classical"))


def finite_n_shape(n, N, lengths, kind="free"):
    """QSSEP's distinct-slice sum at ``dn = 1`` (`interval_sums_qssep`) at the grid's lengths."""
    _, values = interval_sums_qssep(n, int(N), 1.0, kind)
    return values[np.asarray(lengths, np.int64)]


def fit_interval_shape(n, y, shape):
    """``y = t shape``, ordinary least squares over the finite points (every point once):
    dict ``t``, ``dn`` (signed real n-th root of t), ``rel_residual`` (|y - t shape| / |y|),
    ``n_points``."""
    y = np.asarray(y, float)
    f = np.asarray(shape, float)
    good = np.isfinite(y) & np.isfinite(f)
    f, y = f[good], y[good]
    ff = float(f @ f)
    if ff == 0.0:
        return {"t": np.nan, "dn": np.nan, "rel_residual": np.nan, "n_points": float(len(y))}
    t = float(f @ y) / ff
    norm = float(np.linalg.norm(y))
    return {"t": t, "dn": float(np.sign(t) * abs(t) ** (1.0 / n)),
            "rel_residual": float(np.linalg.norm(y - t * f)) / norm if norm > 0 else np.nan,
            "n_points": float(len(y))}


def run_interval_fits(est, geometry, N, lengths):
    """The interval fits of one run from its `Replicated` estimates (``iv_*`` keys).

    * ``m{n}_{kind}``: the distinct part ``m_n^dist(x) / interval_scale`` against QSSEP's
      finite-N distinct sum (`finite_n_shape`; free, and classical at n = 4), one amplitude
      over every grid point with at least n slices (`fit_interval_shape`);
    * ``m4_zero``, ``m4_distinct_zero``: the zero of the measured m4(x) (total and distinct
      parts, the latter over the grid points with at least 4 slices; `jk_interval_zero`),
      against `INTERVAL_ZEROS` (free 0.587, classical 0.413).

    Returns a dict of `Replicated` (each with a dict value).
    """
    lengths = np.asarray(lengths, np.int64)
    x = lengths / float(N)
    out = {}
    for n, kind in INTERVAL_FIT_ORDERS:
        # below n slices there are no n distinct ones: the prediction is 0 and the data only noise
        keep = lengths >= n
        shape = finite_n_shape(n, N, lengths[keep], kind)
        scale = interval_scale(geometry, N, n)
        out[f"m{n}_{kind}"] = est[f"iv_m{n}_distinct"].map(
            lambda m, n=n, keep=keep, shape=shape, scale=scale:
            fit_interval_shape(n, np.asarray(m)[keep] / scale, shape))
    out["m4_zero"] = jk_interval_zero(est["iv_m4"], x)
    # the distinct part below 4 slices is 0 up to probe noise, whose sign changes are no zero
    four = lengths >= 4
    distinct = est["iv_m4_distinct"].map(lambda m: np.asarray(m)[four])
    out["m4_distinct_zero"] = jk_interval_zero(distinct, x[four])
    return out
