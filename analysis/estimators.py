"""Connected cumulants of Gneq from block sums, bias-corrected, with jackknife errors.

Every estimator is a function of the sample means ``M[f] = (sum of the done blocks of f) / n``
of the stored per-sample observables (`anderson_mpi.observables.block_fields`). Connected parts
are products of means and carry an O(1/n) bias; the delete-one-*block* jackknife removes it
and gives the error bars. The machinery is generic:

* `jackknife(block_sums, n_per_block, func)` evaluates ``func`` on the full means and on the
  delete-one-block means ``(total - block_j) / (n - n_j)`` and returns a `Replicated`;
* `Replicated.value` is the bias-corrected estimate, `Replicated.error` its jackknife error;
* `Replicated.map` / `combine` push any further function (a fit, a ratio, a fit across
  independent runs) through the same replicates, so derived quantities get errors and bias
  corrections for free.

Blocks may hold different numbers of samples (an interrupted run, a last short block): the
delete-m_j jackknife of Busing, Meijer & van der Leeden (Stat. Comput. 9, 3 (1999)) is used,
with ``h_j = n / m_j``::

    theta_J   = g theta - sum_j (1 - 1/h_j) theta_(j)                    (bias-corrected)
    var_J     = (1/g) sum_j (h_j theta - (h_j - 1) theta_(j) - theta_J)^2 / (h_j - 1)

(equal blocks: the textbook ``g theta - (g-1) mean_j theta_(j)`` and
``(g-1)/g sum_j (theta_(j) - mean)^2``). It is exactly unbiased for any quadratic function
of the means (such as C2 or a variance); cubic terms (C3, m3) keep an O(1/n^2) bias.

Independent runs (different sizes or W) enter a joint fit through `combine`: the replicates
of each run are varied one run at a time, the bias corrections add and the variances add.

The cumulant formulas (docs/theory.md §6.1) in terms of the means, with ``Np = Ny Nz``,
``|o|`` the orbit sizes and ``c`` a cut slice::

    C1(a)   = M[tr_g][a] / Np
    C2(a,b) = Np^-2 [M[tr_gg][a,b] - sum_o M[mean_k][a,b,o] M[mean_k][b,a,o] / |o|]
    C3(a,b,c) = Np^-3 [M[cut_tr_ggg][a,b]
                       - sum_o M[ab_bc][a,b,o] M[mean_k][c,a,o] / |o|
                       - sum_o M[bc_ca][a,b,o] M[mean_k][a,b,o] / |o|
                       - sum_o conj(M[ab_bc][b,a,o]) M[mean_k][b,c,o] / |o|
                       + 2 sum_o M[mean_k][a,b,o] M[mean_k][b,c,o] M[mean_k][c,a,o] / |o|^2]
    m2 = sum_ab C2(a,b)
    m3 = Np^-3 [M[tr_g3] - 3 sum_{a,c,o} M[g2_kdiag][a,c,o] M[mean_k][c,a,o] / |o|
                + 2 sum_o Tr(Cbar_o^3) / |o|^2],     Cbar_o = M[mean_k][:, :, o]

(the disorder mean of a k-diagonal quantity is constant on a k orbit, hence the ``/|o|``).

m3 split by coinciding indices (`m3_split`, when the result files hold the optional fields
``diag_tr_g_g2`` = sum_a Tr(G_aa (G^2)_aa), ``diag_tr_g3[a]`` = Tr G_aa^3 and
``diag_kdiag_aa_ac[a, c, o]`` = sum_{k in o} (U^+ G_aa G_ac U)_kk). Setting b = a in C3 and
summing over c (sum_c G_ac G_ca = (G^2)_aa, and (U^+ G_ca G_aa U)_kk = conj (U^+ G_aa G_ac U)_kk
since G is Hermitian)::

    S2 = sum_{a,c} C3(a,a,c)
       = Np^-3 [M[diag_tr_g_g2] - sum_{a,c,o} M[aa_ac][a,c,o] M[mean_k][c,a,o] / |o|
                - sum_{a,o} M[g2_kdiag][a,a,o] M[mean_k][a,a,o] / |o|
                - sum_{a,c,o} conj(M[aa_ac][a,c,o]) M[mean_k][a,c,o] / |o|
                + 2 sum_{a,c,o} M[mean_k][a,a,o] M[mean_k][a,c,o] M[mean_k][c,a,o] / |o|^2]
    S3 = sum_a C3(a,a,a)
       = Np^-3 [sum_a M[diag_tr_g3][a] - 3 sum_{a,o} M[aa_ac][a,a,o] M[mean_k][a,a,o] / |o|
                + 2 sum_{a,o} M[mean_k][a,a,o]^3 / |o|^2]

C3 is cyclic, so sum_{a,b} C3(a,b,b) = sum_{a,b} C3(a,b,a) = S2, and inclusion-exclusion over
the three coincidences a = b, b = c, c = a gives the part of m3 with any two indices equal,
``m3_coinciding = 3 S2 - 2 S3``, and ``m3_distinct = m3 - m3_coinciding``.
"""
from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from anderson_mpi.observables import transport_moments

from .intervals import interval_sums

__all__ = ["Means", "Replicated", "jackknife", "combine", "cumulants", "m3_split",
           "rescale_power", "run_estimates", "M3_SPLIT_FIELDS"]

# Optional per-sample fields (present when the job enables them) behind `m3_split`.
M3_SPLIT_FIELDS = ("diag_tr_g_g2", "diag_tr_g3", "diag_kdiag_aa_ac")


class Means(dict):
    """Sample means of the stored fields, with the number of samples ``n`` behind them."""

    def __init__(self, values, n):
        super().__init__(values)
        self.n = n


# --- pytrees: an array (or scalar) or a flat dict of them -----------------------------------

def _stack(trees):
    first = trees[0]
    if isinstance(first, Mapping):
        return {k: np.stack([np.asarray(t[k]) for t in trees]) for k in first}
    return np.stack([np.asarray(t) for t in trees])


def _take(tree, j):
    if isinstance(tree, Mapping):
        return {k: v[j] for k, v in tree.items()}
    return tree[j]


class Replicated:
    """An estimate evaluated on the full data and on delete-one-block replicates.

    Attributes
    ----------
    full : array or dict of arrays
        The plain (uncorrected) estimate from all samples.
    groups : dict
        ``key -> (reps, h)``: for each independent run ``key``, the estimate with one block of
        that run deleted (``reps``: same pytree with a leading replicate axis) and
        ``h_j = n / n_j`` of that run's blocks.
    """

    def __init__(self, full, groups):
        self.full = full
        self.groups = groups

    # bias-corrected value and error, leaf by leaf
    def _leaf_stats(self, path):
        full = np.asarray(self._get(self.full, path))
        bias = np.zeros(full.shape, dtype=np.result_type(full, float))
        var = np.zeros(full.shape, dtype=float)
        for reps, h in self.groups.values():
            r = np.asarray(self._get(reps, path))
            hh = np.asarray(h, float).reshape((-1,) + (1,) * full.ndim)
            g = len(h)
            theta_j = g * full - np.sum((1.0 - 1.0 / hh) * r, axis=0)
            pseudo = hh * full - (hh - 1.0) * r
            bias = bias + (theta_j - full)
            var = var + np.sum(np.abs(pseudo - theta_j) ** 2 / (hh - 1.0), axis=0) / g
        return full + bias, np.sqrt(var)

    @staticmethod
    def _get(tree, path):
        return tree[path] if path is not None else tree

    def _paths(self):
        return list(self.full) if isinstance(self.full, Mapping) else [None]

    def _collect(self, which):
        out = {p: self._leaf_stats(p)[which] for p in self._paths()}
        return out if isinstance(self.full, Mapping) else out[None]

    @property
    def value(self):
        """Jackknife bias-corrected estimate (same structure as ``full``)."""
        return self._collect(0)

    @property
    def error(self):
        """Jackknife standard error (same structure as ``full``; real)."""
        return self._collect(1)

    def __getitem__(self, key):
        """The leaf ``key`` of a dict-valued estimate, as a `Replicated`."""
        return Replicated(self.full[key], {k: (reps[key], h) for k, (reps, h) in self.groups.items()})

    def covariance(self):
        """Jackknife covariance matrix ``(n, n)`` of a real array leaf (flattened), from the
        same pseudo-values as `error` (its diagonal is ``error**2``); independent data sets
        (groups) add."""
        full = np.asarray(self.full, float).ravel()
        cov = np.zeros((len(full), len(full)))
        for reps, h in self.groups.values():
            hh = np.asarray(h, float)[:, None]
            r = np.asarray(reps, float).reshape(len(hh), -1)
            g = len(hh)
            theta_j = g * full - np.sum((1.0 - 1.0 / hh) * r, axis=0)
            dev = (hh * full - (hh - 1.0) * r - theta_j) / np.sqrt(hh - 1.0)
            cov += dev.T @ dev / g
        return cov

    def replicate(self, key, j):
        reps, _ = self.groups[key]
        return _take(reps, j)

    def map(self, func):
        """``func`` applied to the full estimate and to every replicate."""
        return combine([self], func)


def jackknife(block_sums, n_per_block, func, key=0):
    """Bias-corrected value and jackknife error of any function of the sample means.

    Parameters
    ----------
    block_sums : array_like or mapping of name -> array_like
        Per-block sums over samples, leading axis = block (only ``x[j]`` and ``len(x)`` are
        used, so lazy views of a file work).
    n_per_block : array_like of int
        Samples in each block (all > 0; they may differ).
    func : callable
        ``func(means)``: for an array input ``means`` is the array of sample means; for a
        mapping it is a `Means` dict (with the sample count ``means.n``). Returns an array,
        a scalar or a flat dict of them.
    key : hashable
        Name of this independent data set, for `combine`.

    Returns
    -------
    Replicated
        ``.value`` (bias-corrected), ``.error``, ``.full`` (uncorrected).
    """
    n_b = np.asarray(n_per_block, dtype=np.int64).reshape(-1)
    g = len(n_b)
    if g < 2:
        raise ValueError(f"the jackknife needs at least 2 blocks, got {g}")
    if np.any(n_b <= 0):
        raise ValueError("every block must hold at least one sample")
    is_map = isinstance(block_sums, Mapping)
    sources = dict(block_sums) if is_map else {None: block_sums}
    for name, src in sources.items():
        if len(src) != g:
            raise ValueError(f"block_sums{'' if name is None else '[' + repr(name) + ']'} has "
                             f"{len(src)} blocks, n_per_block has {g}")
    n = int(n_b.sum())
    totals = {}
    for name, src in sources.items():
        total = np.array(src[0], dtype=np.result_type(np.asarray(src[0]).dtype, float), copy=True)
        for j in range(1, g):
            total += src[j]
        totals[name] = total

    def evaluate(values, count):
        if is_map:
            return func(Means(values, count))
        return func(values[None])

    full = evaluate({k: t / n for k, t in totals.items()}, n)
    reps = []
    for j in range(g):
        m = n - int(n_b[j])
        reps.append(evaluate({k: (t - sources[k][j]) / m for k, t in totals.items()}, m))
    return Replicated(full, {key: (_stack(reps), n / n_b.astype(float))})


def combine(inputs, func):
    """``func(*estimates)`` as a `Replicated`, for estimates from independent data sets.

    Replicates vary one data set (group key) at a time: an input that does not depend on the
    group enters at its full value. Inputs sharing a key must come from the same blocks.
    """
    inputs = list(inputs)
    full = func(*(i.full for i in inputs))
    groups = {}
    keys = []
    for inp in inputs:
        for key, (_, h) in inp.groups.items():
            if key not in keys:
                keys.append(key)
                groups[key] = np.asarray(h, float)
            elif len(groups[key]) != len(h) or not np.allclose(groups[key], h):
                raise ValueError(f"inputs disagree on the blocks of data set {key!r}")
    out = {}
    for key in keys:
        h = groups[key]
        reps = []
        for j in range(len(h)):
            args = [inp.replicate(key, j) if key in inp.groups else inp.full for inp in inputs]
            reps.append(func(*args))
        out[key] = (_stack(reps), h)
    return Replicated(full, out)


# --- the cumulants ---------------------------------------------------------------------------

def cumulants(M, n_perp, orbit_size, cut_slices):
    """Connected cumulants and companions from the sample means (module docstring).

    Parameters
    ----------
    M : Means
        Sample means of the fields (and ``M.n``).
    n_perp : int
        ``Ny * Nz``.
    orbit_size : (n_orb,) int
    cut_slices : (n_cut,) int

    Returns
    -------
    dict
        ``C1`` (Nx,), ``C2`` (Nx, Nx), ``m2``, ``m3``, ``m3_imag``, ``C3`` (n_cut, Nx, Nx)
        real part, ``C3_imag``, ``map1`` (Nx, Nx) complex ``Np^-1 E Tr G_ab``, ``map2``
        (n_cut, Nx, Nx) complex ``Nx Np^-2 E Tr(G_ac G_cb)``, ``conductance``,
        ``conductance_var`` (unbiased), ``fano``.
    """
    npp = float(n_perp)
    inv_o = 1.0 / np.asarray(orbit_size, float)
    mk = np.asarray(M["mean_k"])
    nx = mk.shape[0]
    out = {"C1": np.asarray(M["tr_g"]).real / npp}
    disc2 = np.einsum("abo,bao,o->ab", mk, mk, inv_o)
    out["C2"] = (np.asarray(M["tr_gg"]).real - disc2.real) / npp**2
    out["m2"] = out["C2"].sum()

    cb = np.moveaxis(mk, 2, 0)  # (o, a, b)
    cube_tr = np.einsum("oab,oba->o", cb @ cb, cb)  # Tr(Cbar_o^3), by BLAS products
    m3 = (np.asarray(M["tr_g3"]) - 3.0 * np.einsum("aco,cao,o->", M["g2_kdiag"], mk, inv_o)
          + 2.0 * np.sum(cube_tr * inv_o**2)) / npp**3
    out["m3"], out["m3_imag"] = np.real(m3), np.imag(m3)

    cuts = np.asarray(cut_slices, dtype=np.int64).reshape(-1)
    c3 = np.empty((len(cuts), nx, nx), dtype=complex)
    for i, c in enumerate(cuts):
        ab_bc = np.asarray(M["cut_kdiag_ab_bc"][i])
        bc_ca = np.asarray(M["cut_kdiag_bc_ca"][i])
        m_ca = mk[c]        # [a, o] = mean_k[c, a, o]
        m_bc = mk[:, c]     # [b, o] = mean_k[b, c, o]
        t1 = np.einsum("abo,ao,o->ab", ab_bc, m_ca, inv_o)
        t2 = np.einsum("abo,abo,o->ab", bc_ca, mk, inv_o)
        t3 = np.einsum("bao,bo,o->ab", ab_bc.conj(), m_bc, inv_o)
        t4 = np.einsum("abo,bo,ao,o->ab", mk, m_bc, m_ca, inv_o**2)
        c3[i] = (np.asarray(M["cut_tr_ggg"][i]) - t1 - t2 - t3 + 2.0 * t4) / npp**3
    out["C3"], out["C3_imag"] = c3.real, c3.imag

    if all(name in M for name in M3_SPLIT_FIELDS):
        out.update(m3_split(M, n_perp, orbit_size, out["m3"]))

    out["map1"] = mk.sum(axis=2) / npp
    out["map2"] = nx * np.asarray(M["cut_pair"]) / npp**2

    if "g" in M:  # transport: samples with leads (the Anderson model)
        out.update(transport_moments(*(float(np.real(M[name])) for name in ("g", "g_sq", "fano_num")), M.n))
    return out


def m3_split(M, n_perp, orbit_size, m3):
    """The parts of ``m3`` from coinciding and from distinct slice indices (module docstring).

    Parameters
    ----------
    M : Means with ``mean_k``, ``g2_kdiag`` and the `M3_SPLIT_FIELDS`
    n_perp : int
    orbit_size : (n_orb,) int
    m3 : float
        ``sum_abc C3(a,b,c)`` from the same means.

    Returns
    -------
    dict
        ``c3_sum_aac`` (S2 = sum_{a,c} C3(a,a,c)), ``c3_sum_aaa`` (S3 = sum_a C3(a,a,a)),
        ``m3_coinciding`` = 3 S2 - 2 S3, ``m3_distinct`` = m3 - m3_coinciding (real parts).
    """
    npp3 = float(n_perp) ** 3
    inv_o = 1.0 / np.asarray(orbit_size, float)
    mk = np.asarray(M["mean_k"])
    kd = np.asarray(M["diag_kdiag_aa_ac"])          # [a, c, o]
    mk_aa = np.einsum("aao->ao", mk)
    kd_aa = np.einsum("aao->ao", kd)
    g2k_aa = np.einsum("aao->ao", np.asarray(M["g2_kdiag"]))
    s2 = (np.real(M["diag_tr_g_g2"])
          - np.einsum("aco,cao,o->", kd, mk, inv_o)
          - np.einsum("ao,ao,o->", g2k_aa, mk_aa, inv_o)
          - np.einsum("aco,aco,o->", kd.conj(), mk, inv_o)
          + 2.0 * np.einsum("ao,aco,cao,o->", mk_aa, mk, mk, inv_o**2)) / npp3
    s3 = (np.sum(np.real(M["diag_tr_g3"]))
          - 3.0 * np.einsum("ao,ao,o->", kd_aa, mk_aa, inv_o)
          + 2.0 * np.einsum("ao,o->", mk_aa**3, inv_o**2)) / npp3
    s2, s3 = float(np.real(s2)), float(np.real(s3))
    coinciding = 3.0 * s2 - 2.0 * s3
    return {"c3_sum_aac": s2, "c3_sum_aaa": s3, "m3_coinciding": coinciding,
            "m3_distinct": float(m3) - coinciding}


def rescale_power(geometry, Nx, order):
    """Factor turning ``C_n`` into ``g_n``: ``N^(n-1)`` (cube, and the chain of the stochastic
    models: QSSEP's eq. (4)) or ``Nx^-(n-1)`` (quasi-1d)."""
    if geometry == "quasi1d":
        return float(Nx) ** (-(order - 1))
    return float(Nx) ** (order - 1)


def run_estimates(data):
    """All estimators of one run (`analysis.io.RunData`) as one `Replicated` dict.

    Adds the rescaled ``g1``, ``g2``, ``g3`` (real part), ``g3_imag`` and the magnitudes
    ``map1_abs``, ``map2_abs`` to the keys of `cumulants`; with fourth-order cut pairs also the
    keys of `cumulants4` and ``g4``, ``g4_imag``, ``g4_cross``, ``g4_free`` (rescaled as
    `rescale_power` at order 4); with interval sums ``iv_m2`` ... ``iv_m4_distinct_imag``
    (`analysis.intervals.interval_sums`, over the grid's lengths ``/layout/interval_lengths``).
    """
    geometry, nx = data.geometry, data.Nx

    def func(M):
        est = cumulants(M, data.n_perp, data.orbit_size, data.cut_slices)
        est["g1"] = est["C1"] * rescale_power(geometry, nx, 1)
        est["g2"] = est["C2"] * rescale_power(geometry, nx, 2)
        est["g3"] = est["C3"] * rescale_power(geometry, nx, 3)
        est["g3_imag"] = est["C3_imag"] * rescale_power(geometry, nx, 3)
        est["map1_abs"] = np.abs(est["map1"])
        est["map2_abs"] = np.abs(est["map2"])
        pairs = getattr(data, "pair_slices", np.zeros((0, 2)))
        if len(pairs):  # fourth order on the job's cut pairs
            est.update(cumulants4(M, data.n_perp, pairs))
            scale = rescale_power(geometry, nx, 4)
            for key in ("C4", "C4_imag", "C4_cross", "C4_free"):
                est["g4" + key[2:]] = est[key] * scale
        lengths = getattr(data, "interval_lengths", ())
        if len(lengths):  # m_n(x) on the job's grid of intervals (docs/theory.md §8)
            sums = interval_sums(M, data.n_perp, data.orbit_size, lengths,
                                 exact_moments=bool(data.run.get("interval_exact_moments", True)))
            for key, value in sums.items():
                if key != "x" and not key.startswith("terms4"):
                    est["iv_" + key] = value
        return est

    return jackknife(data.blocks, data.n_per_block, func, key=str(data.path))


# --- fourth order on cut pairs (docs/theory.md §7; fields of anderson_mpi.observables.cutpairs) ----

# The 15 set partitions of the factors (X1, X2, X3, X4) = (G_ab, G_bc, G_cd, G_da), 0-based,
# with the labels of C4_terms (factors numbered 1..4 around the cycle); "13|24" is the one
# crossing partition (not in NC(4)).
PARTITIONS4 = (
    ("1234", ((0, 1, 2, 3),)),
    ("123|4", ((0, 1, 2), (3,))), ("234|1", ((1, 2, 3), (0,))),
    ("341|2", ((0, 2, 3), (1,))), ("412|3", ((0, 1, 3), (2,))),
    ("12|34", ((0, 1), (2, 3))), ("23|41", ((1, 2), (0, 3))), ("13|24", ((0, 2), (1, 3))),
    ("12|3|4", ((0, 1), (2,), (3,))), ("23|1|4", ((1, 2), (0,), (3,))),
    ("34|1|2", ((2, 3), (0,), (1,))), ("41|2|3", ((0, 3), (1,), (2,))),
    ("13|2|4", ((0, 2), (1,), (3,))), ("24|1|3", ((1, 3), (0,), (2,))),
    ("1|2|3|4", ((0,), (1,), (2,), (3,))),
)


def partition_weights4():
    """Classical weights (-1)^(|pi|-1) (|pi|-1)! and free ones mu_NC(pi, 1_4) (0 if crossing)."""
    from math import factorial

    from .qssep import moebius_nc
    classical, free = [], []
    for label, blocks in PARTITIONS4:
        k = len(blocks)
        classical.append((-1) ** (k - 1) * factorial(k - 1))
        free.append(0 if label == "13|24" else moebius_nc(blocks, 4))
    return np.array(classical, float), np.array(free, float)


def _distinct4(nx, c, d):
    """(a, b) with a, b, c, d pairwise distinct (the bulk of a cut pair)."""
    a, b = np.meshgrid(np.arange(nx), np.arange(nx), indexing="ij")
    return (a != b) & (a != c) & (a != d) & (b != c) & (b != d) & (c != d)


SEPARATIONS = (1, 2, 3, 4)


def _min_separation(nx, c, d):
    """(Nx, Nx): the smallest distance between two of the slices a, b, c, d of each point (a, b)."""
    a, b = np.meshgrid(np.arange(nx), np.arange(nx), indexing="ij")
    dist = [np.abs(a - b), np.abs(a - c), np.abs(a - d), np.abs(b - c), np.abs(b - d),
            np.full_like(a, abs(c - d))]
    return np.min(dist, axis=0)


def cumulants4(M, n_perp, pair_slices):
    """Fourth cumulant C4(a, b, c, d) on the cut pairs, its partition terms and diagnostics.

    Parameters
    ----------
    M : mapping
        Means (or sums: only their ratio enters) over whole seed blocks of ``c4_terms``
        (n_pairs, 15, Nx, Nx) and ``c4_counts`` (15,): each partition term's unbiased block sum and
        the number of sample tuples behind it (`anderson_mpi.observables.cutpairs`, docs/theory.md
        §7.4). The term is their ratio: exactly unbiased (the counts are deterministic).
    n_perp : int
    pair_slices : (n_pairs, 2) int

    Returns
    -------
    dict
        ``C4_terms`` (15, n_pairs, Nx, Nx) complex: ``Np^-4 T_pi`` in the order of `PARTITIONS4`
        (nan where a term has no sample tuples, e.g. the crossing of one-sample blocks);
        ``C4`` / ``C4_imag``: the joint cumulant, ``sum_pi (-1)^(|pi|-1) (|pi|-1)! Np^-4 T_pi``;
        ``C4_cross`` / ``_imag``: the crossing term {13}{24} alone (C4 holds it with weight -1);
        ``C4_free`` / ``_imag``: the free cumulant of the same moments (NC(4) Moebius weights,
        ``C4 + [13|24] - [13|2|4] - [24|1|3] + [1|2|3|4]``); ``cross_ratio``, ``free_ratio``
        (n_pairs,): ``||C4_cross|| / ||C4||`` and ``||C4_free - C4|| / ||C4||`` over the points with
        a, b, c, d pairwise distinct, a U(1) / contact diagnostic (docs/theory.md §7.2): both
        vanish there for any U(1)-invariant ensemble, free or not; ``cross_ratio_by_separation``
        (n_pairs, len(SEPARATIONS)): the crossing ratio over the points whose four slices are at
        least 1, 2, 3, 4 apart.
    """
    values = np.asarray(M["c4_terms"])
    counts = np.asarray(np.real(M["c4_counts"]), dtype=float).reshape(-1)
    with np.errstate(invalid="ignore", divide="ignore"):
        terms = values / np.where(counts > 0, counts, np.nan)[None, :, None, None]
    terms = np.moveaxis(terms, 1, 0) / float(n_perp) ** 4
    classical, free = partition_weights4()
    c4 = np.tensordot(classical, terms, axes=1)
    c4_free = np.tensordot(free, terms, axes=1)
    cross = terms[[label for label, _ in PARTITIONS4].index("13|24")]
    out = {"C4": c4.real, "C4_imag": c4.imag, "C4_cross": cross.real, "C4_cross_imag": cross.imag,
           "C4_free": c4_free.real, "C4_free_imag": c4_free.imag, "C4_terms": terms}
    pairs = np.asarray(pair_slices, dtype=np.int64).reshape(-1, 2)
    nx = values.shape[-1]
    ratio_cross, ratio_free = np.full(len(pairs), np.nan), np.full(len(pairs), np.nan)
    for i, (c, d) in enumerate(pairs):
        bulk = _distinct4(nx, c, d)
        norm = np.linalg.norm(c4.real[i][bulk])
        if bulk.any() and norm > 0:
            ratio_cross[i] = np.linalg.norm(cross.real[i][bulk]) / norm
            ratio_free[i] = np.linalg.norm((c4_free - c4).real[i][bulk]) / norm
    out["cross_ratio"], out["free_ratio"] = ratio_cross, ratio_free
    # the same diagnostic against the smallest separation of the four slices (1, 2, ...,
    # SEPARATIONS): it must fall once the separation exceeds the mean free path
    by_sep = np.full((len(pairs), len(SEPARATIONS)), np.nan)
    for i, (c, d) in enumerate(pairs):
        sep = _min_separation(nx, c, d)
        for j, minimum in enumerate(SEPARATIONS):
            points = sep >= minimum
            norm = np.linalg.norm(c4.real[i][points])
            if points.any() and norm > 0:
                by_sep[i, j] = np.linalg.norm(cross.real[i][points]) / norm
    out["cross_ratio_by_separation"] = by_sep
    return out


__all__ += ["PARTITIONS4", "partition_weights4", "cumulants4"]
