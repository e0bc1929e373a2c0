"""Interval sums m_n(x), n = 2, 3, 4: connected cumulants summed over all slices of [0, x Nx).

Group ``intervals`` (job key ``intervals``, the grid of x; docs/theory.md §8). The assembly of
m_n(x) from the block sums is `analysis.intervals.interval_sums`. For the interval ``I`` of the first ``L``
slices (`interval_lengths`: ``L = round(x Nx)``, at least 1; the interval covers
``[0, L/Nx)`` in the suite's coordinate ``x = (ix + 1/2)/Nx``)::

    m_n(I) = sum_{a_1..a_n in I} C_n(a_1, .., a_n)
    Np^n C_n = sum over the set partitions pi of the n factors of the loop
               G_{a1 a2} G_{a2 a3} .. G_{an a1} of w(pi) prod_{B in pi} E[prod_{j in B} X_j]

with the classical weights ``w(pi) = (-1)^(|pi|-1) (|pi|-1)!`` and ``G_ab = Phi_a S Phi_b^+``.
Summed over ``I^n`` every partition term is a trace over the restriction ``G_I`` of Gneq to
the interval, and partitions related by a rotation of the loop give equal sums, so::

    Np^2 m2 = E Tr G_I^2 - Tr(Gb Gb)
    Np^3 m3 = E Tr G_I^3 - 3 Tr(E[G_I^2] Gb) + 2 Tr Gb^3
    Np^4 m4 = E Tr G_I^4 - 4 Tr(E[G_I^3] Gb) - 2 Tr(E[G_I^2]^2) - X + 8 Tr(E[G_I^2] Gb^2)
              + 4 E Tr(G_I Gb G_I Gb) - 6 Tr Gb^4,

``Gb = E G_I`` (k-diagonal, constant on k orbits), ``X = sum E[G_{i1 i2} G_{i3 i4}]
E[G_{i2 i3} G_{i4 i1}]`` the crossing partition. The *distinct* part restricts the sum to
pairwise distinct slices ``a_1..a_n`` (QSSEP's ``I_n(x)`` describes it), the *coinciding*
part is the rest (contact terms, `interval_sums` returns it as the difference). Restricted to
distinct slices, every partition term is the same trace with the operators replaced by their
off-block-diagonal parts ``X' = X - bd(X)`` (``bd`` = the slice-diagonal blocks), which makes
neighbours on the loop distinct; at n = 4 the two non-neighbour coincidences ``a1 = a3`` and
``a2 = a4`` are then removed by inclusion-exclusion.

How each term is computed (per sample; the block sums go to the result file):

* ``E Tr G_I^3``, ``E Tr G_I^4`` (the moments, which carry most of the disorder noise of the
  totals): exactly, ``Tr G_I^n = Tr (S K_I)^n`` with ``K_I = sum_{a in I} Phi_a^+ Phi_a``
  (prefix sums of the slice Grams) and ``P_I = K_I S K_I`` from two Hermitian rank-k updates
  (``iv_tr3``, ``iv_tr4``; optional, ``exact_moments``).
* ``m2``: nothing new (``tr_gg`` and ``mean_k`` of the base group, restricted).
* products of means only (``Tr Gb^n``, all slices and distinct): at analysis time from
  ``mean_k`` (products of sample means with the jackknife bias correction, as m2, m3 today).
* every other term is the trace of a *word*, a product of four (three) operators around the
  loop, each the current sample's ``G``, the previous sample's ``G'`` (same seed block), or a
  k-diagonal mean estimated from *other* samples of the block (``R`` = mean of all previous
  samples; in the two-mean words ``R1`` = the previous sample, ``R2`` = the samples before
  it). The factors of a word are independent, so its expectation is the partition term
  exactly, with no 1/n bias: ``E[G^s G^s G^t G^t] = E[G^2] E[G^2]`` for s != t, and
  ``E[P(G^t)] = Gb`` (``P`` = the k-diagonal, orbit-averaged projection behind ``mean_k``).
  The trace itself is estimated with slice probes: for each probed slice ``a`` a random
  unit-modulus vector ``z_a`` (transverse Fourier basis, ``E[z z^+] = 1``) starts and ends
  the loop at slice ``a``::

      Tr W = sum_a E_z[ z_a^+ W_aa z_a ],

  unbiased for any probe distribution with ``E[z z^+] = 1``, and exact when the probes of a
  slice form an orthonormal basis (scaled by sqrt(N_perp)), which the tests use. Probing
  slice by slice (not one vector over the whole interval) removes the variance of the
  inter-slice blocks and makes the coincidence ``a1 = a3`` exact: it is the probed slice's
  block of the two half-loops. ``a2 = a4`` is either exact too (``G G G G``: a quadratic form
  with ``K_I`` accumulated over the pairs (b, a)) or the ``a1 = a3`` pattern of the word
  rotated by one, which has the same trace.

The words are rotated so that the two half-loops ``X2^+ X1^+ z`` and ``X3 X4 z`` apply the
same sample's ``G`` to vectors that do not depend on the interval (single columns ``G_{:,a}
z``, ``R_{:,a} z``): then every interval of the grid costs only prefix sums over slices and
``M x M`` quadratic forms with ``K_I``. The crossing and ``R2 G R1 G`` alternate samples (or
means) and are evaluated from explicit slice vectors instead.

===========  ===================  ========================================  =====
field        word X1 X2 X3 X4     partition term (sum over I^n)             count
===========  ===================  ========================================  =====
iv_p3        G G G                E Tr G^3 (probe)                          1
iv_p4        G G G G              E Tr G^4 (probe)                          1
iv_rgg       R G G                Tr(Gb E[G^2])                             n1
iv_rggg      R G G G              Tr(Gb E[G^3])                             n1
iv_ggtt      G G' G' G            Tr(E[G^2] E[G^2])                         n1
iv_gtgt      G G' G G'            the crossing X                            n1
iv_rggr      R2 G G R1            Tr(E[G^2] Gb Gb)                          n2
iv_rgrg      R2 G R1 G            E Tr(G Gb G Gb)                           n2
===========  ===================  ========================================  =====

``iv_d3``, ``iv_d4``, ``iv_d_*``: the same over pairwise distinct slices. ``iv_n1``, ``iv_n2``
are 1 when the sample has at least one (two) previous samples in its block, else 0 (and its
fields that need them are 0): a term's estimate is ``sum(field) / sum(count)``.

Cost (the group's `Cost` declaration; measured by `anderson_mpi.bench.intervals`): the probe
work scales like ``Nx^2 N_perp M`` per probe set (every slice's probe through every slice's
``Phi``), about 18 such sweeps per probed slice plus as many for the pair words on their
fraction of the slices (``interval_pair_fraction``); the exact moments add ``M^3 / 2`` per
distinct length. Cheap in the cube (``Nx/N_perp = 1/N`` of a recursion's ``Nx N_perp^3`` per
sweep), not in long quasi-1d samples: there ``slice_weights`` can probe a random subset of the
slices (the group itself probes every slice; no job key sets it yet).
Memory: the carry holds the previous sample's ``phi_k`` (a reference) and its ``K_I`` at the
grid's lengths (``n_x M^2``); temporaries a few times ``n_cols Nx M``.

Reproducibility: a sample's fields depend only on the sample, its probes and the samples
before it in its seed block (`IntervalCarry`, started empty at each block); the probes (and
any random slice weights) must be drawn from the sample's own seed (`draw_probes`).

Pure numpy/scipy: arrays in, arrays out; no MPI, no files.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.linalg import blas

from ..contracts import COMPLEX_BYTES, Cost, Field
from .kernels import checked_modes, slice_grams_lower

__all__ = ["DEFAULT_GRID", "interval_lengths", "field_shapes", "IntervalCarry", "draw_probes",
           "slice_subset_weights", "interval_observables", "interval_block_sums", "INTERVALS"]

DEFAULT_GRID = tuple(np.round(np.arange(1, 11) / 10, 10))


def interval_lengths(Nx, grid=DEFAULT_GRID):
    """Number of slices ``L`` of each interval ``[0, x Nx)`` of the grid.

    ``L = floor(x Nx + 1/2)`` (round half up), clipped to ``[1, Nx]``; the interval is slices
    ``0 .. L-1`` and covers ``[0, L/Nx)`` of the coordinate ``x = (ix + 1/2)/Nx``, so the
    QSSEP integrals are evaluated at ``L/Nx`` (`interval_sums` returns it as ``x``).
    Grid points may map to the same ``L`` (small Nx); they are computed once.

    Returns ``(n_x,)`` int64.
    """
    x = np.asarray(grid, dtype=float).reshape(-1)
    if x.size == 0 or not np.all(np.isfinite(x)) or np.any(x <= 0) or np.any(x > 1):
        raise ValueError(f"interval grid must hold fractions in (0, 1], got {list(x)}")
    if int(Nx) < 1:
        raise ValueError(f"Nx must be >= 1, got {Nx}")
    return np.clip(np.floor(x * int(Nx) + 0.5).astype(np.int64), 1, int(Nx))


def field_shapes(n_x, exact_moments=True):
    """Name -> (shape, dtype, meaning) of the per-sample interval fields (and block sums).

    ``I`` = the grid's interval, ``G`` the sample's Gneq, ``G'`` the previous sample's of the
    same block, ``R`` the k-diagonal mean of all previous samples of the block, ``R1`` that of
    the previous sample, ``R2`` that of the samples before it; "distinct" = the sum over
    pairwise distinct slices only. Traces marked (probe) are slice-probe estimates (module
    docstring); the block sum of a field divided by that of its count estimates the term.
    ``exact_moments`` False: without ``iv_tr3``, ``iv_tr4``.
    """
    c16, f8 = np.complex128, np.float64
    x = (n_x,)
    out = {
        "iv_tr3": (x, f8, "Tr G_I^3 (exact)"),
        "iv_tr4": (x, f8, "Tr G_I^4 (exact)"),
        "iv_p3": (x, c16, "Tr G_I^3 (probe; a diagnostic of the probe noise)"),
        "iv_p4": (x, c16, "Tr G_I^4 (probe; a diagnostic of the probe noise)"),
        "iv_d3": (x, c16, "Tr G_I^3, pairwise distinct slices (probe)"),
        "iv_d4": (x, c16, "Tr G_I^4, pairwise distinct slices (probe)"),
        "iv_rgg": (x, c16, "Tr(R G G) on I (probe; count iv_n1)"),
        "iv_d_rgg": (x, c16, "Tr(R G G), distinct slices (probe; count iv_n1)"),
        "iv_rggg": (x, c16, "Tr(R G G G) on I (probe; count iv_n1)"),
        "iv_d_rggg": (x, c16, "Tr(R G G G), distinct slices (probe; count iv_n1)"),
        "iv_ggtt": (x, c16, "Tr(G G G' G') on I (probe; count iv_n1)"),
        "iv_d_ggtt": (x, c16, "Tr(G G G' G'), distinct slices (probe; count iv_n1)"),
        "iv_gtgt": (x, c16, "Tr(G G' G G') on I, the crossing (probe; count iv_n1)"),
        "iv_d_gtgt": (x, c16, "Tr(G G' G G'), distinct slices (probe; count iv_n1)"),
        "iv_rggr": (x, c16, "Tr(R2 G G R1) on I (probe; count iv_n2)"),
        "iv_d_rggr": (x, c16, "Tr(R2 G G R1), distinct slices (probe; count iv_n2)"),
        "iv_rgrg": (x, c16, "Tr(R2 G R1 G) on I (probe; count iv_n2)"),
        "iv_d_rgrg": (x, c16, "Tr(R2 G R1 G), distinct slices (probe; count iv_n2)"),
        "iv_n1": ((), f8, "1 if the sample has a previous one in its block, else 0"),
        "iv_n2": ((), f8, "1 if the sample has two previous ones in its block, else 0"),
    }
    if not exact_moments:  # then the analysis takes the moments from the probes
        del out["iv_tr3"], out["iv_tr4"]
    return {name: (shape, np.dtype(dtype), meaning) for name, (shape, dtype, meaning) in out.items()}


@dataclass(frozen=True, eq=False)
class IntervalCarry:
    """What the next sample of the same seed block needs from the samples before it.

    Attributes
    ----------
    phi_k, signature : the previous sample's Fourier modes (a reference, not a copy) and signature
    k_prefix : (n_L, M, M) complex, its Hermitian ``K_I`` at the distinct grid lengths ``lengths``
    lengths : (n_L,) int, sorted distinct interval lengths of ``k_prefix``
    mean_k_last : (Nx, Nx, n_orb) its ``mean_k``
    mean_k_sum : (Nx, Nx, n_orb) the sum of ``mean_k`` over all previous samples of the block
    n_previous : number of previous samples of the block
    """

    phi_k: np.ndarray
    signature: np.ndarray
    k_prefix: np.ndarray
    lengths: np.ndarray
    mean_k_last: np.ndarray
    mean_k_sum: np.ndarray
    n_previous: int


def draw_probes(rng, Nx, n_perp, n_sets=1):
    """``(n_sets, Nx, n_perp)`` unit-modulus probe vectors with independent uniform phases.

    ``rng`` must be the sample's own generator (e.g. from its SeedSequence), never shared
    between samples, so that the fields stay reproducible under any dealing of the blocks.
    """
    phases = rng.uniform(0.0, 2.0 * np.pi, size=(int(n_sets), int(Nx), int(n_perp)))
    return np.exp(1j * phases)


# --- one sample's linear algebra ------------------------------------------------------------

class _Modes:
    """``P`` (Nx, Np, M) Fourier modes and signature ``s`` of one sample, with the few products
    every word is made of. Slice vectors are stored as rows: ``w[c, j, :]`` is the slice-c block
    of column j; M-space vectors likewise ``pi[c, j, :]``."""

    def __init__(self, P, s):
        self.P, self.s = P, s
        self.Pt = P.transpose(0, 2, 1)            # (Nx, M, Np) view: P[c]^T

    def columns(self, rows):
        """``out[c, j] = P_c rows[j]`` for every slice c: (Nx, ncol, Np)."""
        return np.matmul(rows, self.Pt)

    def project(self, w):
        """``out[c, j] = P_c^+ w[c, j]``: (Nx, ncol, M)."""
        return np.matmul(w.conj(), self.P).conj()


def _rowdot(x, y, s=None):
    """``sum_m conj(x[..., m]) s_m y[..., m]`` over the last axis."""
    return np.einsum("...m,...m->...", x.conj(), y if s is None else y * s)


class _Columns:
    """Probe columns, one per (probed slice, probe set), sorted by slice: the columns active on
    an interval of L slices are the first ``starts[L]``. ``weight`` = slice weight / n_sets."""

    def __init__(self, probes, weights):
        n_sets, nx, _ = probes.shape
        probed = np.flatnonzero(weights != 0)
        self.slice_of = np.repeat(probed, n_sets)
        self.z = probes[np.tile(np.arange(n_sets), len(probed)), self.slice_of]
        self.weight = weights[self.slice_of] / n_sets
        self.starts = np.searchsorted(self.slice_of, np.arange(nx + 1))
        self.groups = [(a, slice(self.starts[a], self.starts[a + 1])) for a in probed]
        self.index = np.arange(len(self.slice_of))

    def __len__(self):
        return len(self.slice_of)

    def excluding_own(self, values, L):
        """``sum_{c < L, c != a_j} values[c, j]`` for the active columns (values: (Nx, ncol))."""
        n = int(self.starts[L])
        return values[:L, :n].sum(axis=0) - values[self.slice_of[:n], self.index[:n]]


def _probe_columns(modes, cols):
    """``g_j = G_{:, a_j} z_j`` of the sample, as rows ``g[c, j]`` (Nx, ncol, Np)."""
    h = np.empty((len(cols), modes.P.shape[2]), dtype=complex)
    for a, sl in cols.groups:
        h[sl] = (cols.z[sl].conj() @ modes.P[a]).conj()          # P_a^+ z_j
    return modes.columns(h * modes.s)


class _Family:
    """A family of slice vectors ``w_j`` (one per probe column, independent of the interval) seen
    through one sample's ``G``: ``pi[c, j] = P_c^+ w_j[c]`` (the slice-c part of ``Phi^+ w``),
    ``bv[c, j] = G_cc w_j[c] = P_c S pi[c, j]``, ``q[c, j] = P_c^+ bv[c, j]``, and
    ``pe[b, j] = P_{a_j} S pi[b, j]`` (= ``G_{a_j b} w_j[b]``, for the ``a1 = a3, a2 = a4`` terms);
    prefix sums over slices (``cum_pi``, ``cum_q``) and the own-slice rows (``pi_a``, ``q_a``).
    Built by `_families`."""

    def __init__(self, modes, cols, pi, bv, q, pe):
        self.modes, self.pi, self.bv, self.pe = modes, pi, bv, pe
        self.cum_pi = np.cumsum(pi, axis=0)
        self.pi_a = pi[cols.slice_of, cols.index]
        if q is not None:
            self.q = q
            self.cum_q = np.cumsum(q, axis=0)
            self.q_a = q[cols.slice_of, cols.index]


def _families(modes, specs, also_project=None):
    """The `_Family` of each ``(w, cols, need_q)`` in ``specs``, all of one sample, computed
    together: each product runs once over the sample's ``Phi`` for every family (with few
    columns per family the products are bound by reading ``Phi``, not by arithmetic): the
    projection, then per slice ``a`` one product with ``P_a`` for ``bv[a]`` and ``pe`` of the
    columns at ``a``, then the projection of ``bv``. ``also_project``: slice vectors that need
    only their projection ``pi`` (returned after the families, in the same first pass)."""
    nx, n_perp, width = modes.P.shape
    bounds = np.cumsum([0] + [w.shape[1] for w, _, _ in specs])
    split = lambda arr: [arr[:, bounds[i]:bounds[i + 1]] for i in range(len(specs))]  # noqa: E731
    extra = [] if also_project is None else [also_project]
    pi_all = modes.project(np.concatenate([w for w, _, _ in specs] + extra, axis=1))
    pi = pi_all[:, :bounds[-1]]
    pis = split(pi)
    ncol = pi.shape[1]
    bv = np.empty((nx, ncol, n_perp), dtype=complex)
    pes = [np.empty((nx, w.shape[1], n_perp), dtype=complex) for w, _, _ in specs]
    for a in range(nx):
        parts = [(i, slice(cols.starts[a], cols.starts[a + 1])) for i, (_, cols, _) in enumerate(specs)]
        parts = [(i, sl) for i, sl in parts if sl.stop > sl.start]
        rows = np.concatenate([pi[a]] + [pis[i][:, sl].reshape(-1, width) for i, sl in parts]) * modes.s
        lifted = (modes.P[a] @ rows.T).T
        bv[a] = lifted[:ncol]
        start = ncol
        for i, sl in parts:
            size = nx * (sl.stop - sl.start)
            pes[i][:, sl] = lifted[start:start + size].reshape(nx, sl.stop - sl.start, n_perp)
            start += size
    bvs = split(bv)
    with_q = [i for i, (_, _, need_q) in enumerate(specs) if need_q]
    qs = [None] * len(specs)
    if with_q:
        q = modes.project(np.concatenate([bvs[i] for i in with_q], axis=1))
        offsets = np.cumsum([0] + [bvs[i].shape[1] for i in with_q])
        for k, i in enumerate(with_q):
            qs[i] = q[:, offsets[k]:offsets[k + 1]]
    families = [_Family(modes, cols, pis[i], bvs[i], qs[i], pes[i]) for i, (_, cols, _) in enumerate(specs)]
    if also_project is None:
        return families
    return families, pi_all[:, bounds[-1]:]


class _Prefix:
    """A family's sums over each interval of the grid (index i, L_i slices, n_i active columns):
    ``y[i] = sum_{c < L_i} pi_c`` and ``y'[i] = y[i] - pi_a`` (rows of the active columns),
    ``q'[i] = sum_{c < L_i, c != a} q_c``; `_finish` adds ``own[i]`` = rows ``P_{a_j} S y'_j``."""

    def __init__(self, family, cols, lengths):
        self.family, self.cols = family, cols
        self.n = [int(cols.starts[L]) for L in lengths]
        self.y = [family.cum_pi[L - 1, :n] for L, n in zip(lengths, self.n)]
        self.yp = [y - family.pi_a[:n] for y, n in zip(self.y, self.n)]
        if hasattr(family, "q"):
            self.qp = [family.cum_q[L - 1, :n] - family.q_a[:n] for L, n in zip(lengths, self.n)]
        self.own = None


def _own_vectors(modes, cols, prefixes):
    """Set ``own[i][j] = P_{a_j} S y'_j`` of every prefix (all of one sample and column set):
    one product per probed slice for every family and every interval (one pass over Phi)."""
    n_perp = modes.P.shape[1]
    for pre in prefixes:
        pre.own = [np.empty((n, n_perp), dtype=complex) for n in pre.n]
    for a, sl in cols.groups:
        parts = [(pre, i) for pre in prefixes for i, n in enumerate(pre.n) if n > sl.start]
        if not parts:
            continue
        rows = np.concatenate([pre.yp[i][sl] for pre, i in parts]) * modes.s
        lifted = (modes.P[a] @ rows.T).T
        size = sl.stop - sl.start
        for k, (pre, i) in enumerate(parts):
            pre.own[i][sl] = lifted[k * size:(k + 1) * size]


def _explicit_vectors(modes, every_slice, rows_per_interval, lengths, chunk_bytes=64 * 2**20):
    """``(P_c S v)`` as slice vectors, for the rows v of ``every_slice`` (all slices c:
    (Nx, n, Np)) and of ``rows_per_interval[i]`` (c < L_i: (L_i, n_i, Np) per interval), in few
    passes over Phi (the intervals are batched up to ``chunk_bytes`` of output)."""
    nx, n_perp, width = modes.P.shape
    out = [None] * len(lengths)
    per_row = 16 * nx * n_perp
    first = None
    i = 0
    while i < len(lengths) or first is None:
        j, rows = i, 0 if first is not None else len(every_slice)
        while j < len(lengths) and (j == i or (rows + len(rows_per_interval[j])) * per_row <= chunk_bytes):
            rows += len(rows_per_interval[j])
            j += 1
        blocks = ([every_slice] if first is None else []) + list(rows_per_interval[i:j])
        lifted = np.matmul(np.concatenate(blocks) * modes.s, modes.Pt)   # (Nx, rows, Np)
        start = 0
        if first is None:
            first = lifted[:, :len(every_slice)]
            start = len(every_slice)
        for k in range(i, j):
            n = len(rows_per_interval[k])
            out[k] = lifted[:lengths[k], start:start + n]
            start += n
        i = j
    return first, out


class _Word:
    """A word ``X1 G G X4`` whose middle ``G`` is the prefixes' sample (``w1 = X1^+ z`` in pre1,
    ``w2 = X4 z`` in pre2): per-column dot products that do not depend on the interval and, for
    ``true_middle``, the accumulated ``S Pi S`` of the ``a2 = a4`` term (`_same_middle`)."""

    def __init__(self, pre1, pre2, true_middle=True):
        f1, f2 = pre1.family, pre2.family
        self.pre1, self.pre2, self.cols, self.true_middle = pre1, pre2, pre1.cols, true_middle
        self.beta = np.einsum("cjk,cjk->cj", f1.bv.conj(), f2.bv)
        self.both = np.einsum("bjk,bjk->bj", f1.pe.conj(), f2.pe)
        width = f1.pi.shape[2]
        self.pi_t = np.zeros((width, width), dtype=complex) if true_middle else None
        self._L, self._n = 0, 0

    def advance(self, L, n):
        """Add the pairs (b, j), b < L, b != a_j, of the newly active slices and columns to
        ``(S Pi S)^T = sum w_j conj(S pi1_bj) (S pi2_bj)^T``."""
        cols, s = self.cols, self.pre1.family.modes.s
        new = [(np.arange(self._L, L), np.arange(n)), (np.arange(0, self._L), np.arange(self._n, n))]
        for b_range, j_range in new:
            if not (len(b_range) and len(j_range)):
                continue
            b, j = (x.ravel() for x in np.meshgrid(b_range, j_range, indexing="ij"))
            keep = b != cols.slice_of[j]
            b, j = b[keep], j[keep]
            r1 = (self.pre1.family.pi[b, j] * s).conj() * cols.weight[j, None]
            self.pi_t += r1.T @ (self.pre2.family.pi[b, j] * s)
        self._L, self._n = L, n
        return self.pi_t


def _same_middle(word, i, L, K, ky2, a2a4=None):
    """The word ``X1 G G X4`` on interval i (L slices, ``K = K_I`` of the middle's sample):
    ``(total, distinct)``, summed over the active probe columns with their weights. ``ky2`` =
    rows ``(K_I S y2, K_I S y2')`` of the second prefix.

    Loop:  <G_I w1, G_I w2> = y1^+ S K_I S y2, ``y = sum_{c in I} pi_c`` (prefix sum).
    Distinct (pairwise distinct a1..a4, a1 = the probed slice a):
        <G' w1', G' w2'> - [a1 = a3] - [a2 = a4] + [a1 = a3 and a2 = a4], with
        <G' w1', G' w2'> = y1'^+ S K_I S y2' - y1'^+ S Q2' - Q1'^+ S y2' + beta',
        y' = y - pi_a, Q' = sum_{c in I, c != a} q_c, beta' = sum_{c in I, c != a} bv1_c^+ bv2_c;
        [a1 = a3] = (P_a S y1')^+ (P_a S y2');
        [a2 = a4] = sum_{b in I, b != a} pi1_b^+ S (K_I - K_b) S pi2_b  (= tr(S K_I S Pi) - beta')
                    for ``true_middle``; else the given ``a2a4`` (per active column): the
                    a1 = a3 pattern of the word rotated by one, which has the same trace
                    (default conj([a1 = a3]), right when the rotated word's half-loops are this
                    one's, swapped);
        [both] = sum_{b in I, b != a} pe1_b^+ pe2_b.
    """
    p1, p2, cols = word.pre1, word.pre2, word.cols
    s, n = p1.family.modes.s, p1.n[i]
    wt = cols.weight[:n]
    ky_total, ky_distinct = ky2
    total = np.sum(wt * _rowdot(p1.y[i], ky_total, s))
    beta = cols.excluding_own(word.beta, L)
    loop = (_rowdot(p1.yp[i], ky_distinct, s) - _rowdot(p1.yp[i], p2.qp[i], s)
            - _rowdot(p1.qp[i], p2.yp[i], s) + beta)
    own = _rowdot(p1.own[i], p2.own[i])
    both = cols.excluding_own(word.both, L)
    if word.true_middle:
        middle = np.dot(K.ravel(), word.advance(L, n).ravel()) - np.sum(wt * beta)
        return total, np.sum(wt * (loop - own + both)) - middle
    return total, np.sum(wt * (loop - own - (own.conj() if a2a4 is None else a2a4) + both))


def _explicit_word(left, left_corr, left_bv, right, right_corr, right_bv, L, cols, pair_terms):
    """A word evaluated from explicit slice vectors: ``left``/``right`` (L, n, Np) are the
    half-loops ``X2^+ X1^+ z`` and ``X3 X4 z`` of the total; the distinct half-loops are
    ``half - corr - [c != a] bv``. Returns ``(total, distinct)`` with ``[a2 = a4] =
    conj([a1 = a3])`` (the rotated word's pattern, equal for the trace) and the given
    ``pair_terms[j]`` = ``[a1 = a3 and a2 = a4]``."""
    n = int(cols.starts[L])
    wt = cols.weight[:n]
    a, j = cols.slice_of[:n], cols.index[:n]
    total = np.sum(wt * np.einsum("cjk,cjk->j", left.conj(), right))
    lp = left - left_corr - left_bv
    lp[a, j] += left_bv[a, j]
    rp = right - right_corr - right_bv
    rp[a, j] += right_bv[a, j]
    loop = np.einsum("cjk,cjk->j", lp.conj(), rp)
    own = np.einsum("jk,jk->j", lp[a, j].conj(), rp[a, j])
    return total, np.sum(wt * (loop - own - own.conj() + pair_terms))


def _k_prefix(gram_lower, lengths):
    """Hermitian ``K_L = sum_{a < L} K_a`` for the sorted distinct lengths."""
    out = np.empty((len(lengths),) + gram_lower.shape[1:], dtype=complex)
    acc = np.zeros(gram_lower.shape[1:], dtype=complex)
    diag = np.arange(acc.shape[0])
    start = 0
    for i, L in enumerate(lengths):
        for a in range(start, L):
            acc += gram_lower[a]
        start = L
        np.add(acc, acc.T.conj(), out=out[i])        # lower + its adjoint: the diagonal twice
        out[i][diag, diag] = acc[diag, diag].real
    return out


def _exact_moments(K, s):
    """``(Tr (S K)^3, Tr (S K)^4)`` of a Hermitian ``K`` from ``P = K S K``.

    ``P = K_+^+ K_+ - K_-^+ K_-`` with ``K_+-`` the rows of K with ``s = +-1`` (K is Hermitian):
    two Hermitian rank-k updates (zherk), half the work of a product. With ``C`` the lower
    triangle of P (zeros above), ``Tr(S P S P) = 2 s^T |C|^2 s - sum_i C_ii^2`` and
    ``Tr(S P S K) = 2 Re s^T (C * conj K) s - sum_i C_ii K_ii``.
    """
    n_plus = int(np.count_nonzero(s > 0))
    if np.all(s[:n_plus] > 0):        # the usual order: rows are views
        rows_plus, rows_minus = K[:n_plus], K[n_plus:]
    else:
        rows_plus, rows_minus = np.ascontiguousarray(K[s > 0]), np.ascontiguousarray(K[s < 0])
    width = K.shape[0]
    # zherk on the Fortran view A = rows^T: A A^+ = conj(rows^+ rows), upper triangle; read back
    # in C order that is the lower triangle of rows^+ rows (no copies of K).
    lower = np.zeros((width, width), dtype=complex)
    for alpha, rows in ((1.0, rows_plus), (-1.0, rows_minus)):
        if rows.shape[0]:
            out = blas.zherk(alpha, rows.T, beta=1.0, c=lower.T, trans=0, lower=0, overwrite_c=1)
            if not np.shares_memory(out, lower):  # pragma: no cover - f2py copied
                lower = np.ascontiguousarray(out.T)
    diag = np.diagonal(lower).real
    tr4 = 2.0 * (s @ (lower.real ** 2 + lower.imag ** 2) @ s) - diag @ diag
    tr3 = 2.0 * (s @ np.real(lower * K.conj()) @ s) - diag @ np.diagonal(K).real
    return float(tr3), float(tr4)


def _orbit_means(mean_k, orbit_index, orbit_size):
    """``r[c, b, k] = R_cb(k)``: orbit-averaged k-diagonal mean blocks from ``mean_k`` sums,
    made exactly Hermitian (``R_bc = R_cb^+``; the disorder mean is)."""
    r = mean_k[:, :, orbit_index] / orbit_size[orbit_index]
    return 0.5 * (r + r.transpose(1, 0, 2).conj())


# --- the per-sample observables --------------------------------------------------------------

def interval_observables(phi_k, signature, lengths, probes, orbit_index, orbit_size, mean_k,
                         previous=None, gram_lower=None, slice_weights=None, pair_weights=None,
                         exact_moments=True):
    """Per-sample interval fields (`field_shapes`) and the carry for the next sample.

    Parameters
    ----------
    phi_k : (Nx, N_perp, M) complex
        The sample's mode matrices in the transverse Fourier basis (``U^+ Phi_a``).
    signature : (M,) +-1, in any order.
    lengths : (n_x,) int
        Interval lengths of the grid (`interval_lengths`).
    probes : (n_sets, Nx, N_perp) complex
        Probe vectors per set and slice (`draw_probes`); the estimates average over the sets.
    orbit_index : (N_perp,) int;  orbit_size : (n_orb,) int
        k orbits (`anderson_mpi.observables.layout.k_orbits`).
    mean_k : (Nx, Nx, n_orb) complex
        This sample's ``mean_k`` field (it enters only the carry: the sample's own fields use
        the means of the *previous* samples).
    previous : IntervalCarry or None
        The carry returned for the previous sample of the SAME seed block; None for the first.
    gram_lower : (Nx, M, M) complex or None
        Lower triangles of the slice Grams ``K_a`` (zeros above; the base observables compute
        them, `anderson_mpi.observables.kernels.slice_grams_lower`); None: computed here.
    slice_weights : (Nx,) float or None
        Probe only the slices with a nonzero weight, each scaled by it (1/inclusion
        probability when the probed slices are drawn at random); None: every slice, weight 1.
    pair_weights : (Nx,) float or None
        The same for the four words that pair the sample with others (``iv_ggtt``,
        ``iv_gtgt``, ``iv_rggr``, ``iv_rgrg``: small terms, much of the cost), on a subset of
        the slices that ``slice_weights`` probes; None: as ``slice_weights``.
    exact_moments : bool
        Compute ``iv_tr3``, ``iv_tr4`` exactly (``M^3/2`` per grid point); False: the fields
        are absent (the analysis then uses the probe estimates ``iv_p3``, ``iv_p4``).

    Returns
    -------
    fields : dict name -> array (`field_shapes`)
    carry : IntervalCarry for the next sample of the block
    """
    P, s = checked_modes(phi_k, signature)
    nx, n_perp, width = P.shape
    lengths = np.asarray(lengths, dtype=np.int64).reshape(-1)
    if lengths.size == 0 or lengths.min() < 1 or lengths.max() > nx:
        raise ValueError(f"interval lengths must lie in [1, Nx = {nx}], got {lengths.tolist()}")
    probes = np.asarray(probes, dtype=np.complex128)
    if probes.ndim != 3 or probes.shape[1:] != (nx, n_perp):
        raise ValueError(f"probes must have shape (n_sets, {nx}, {n_perp}), got {probes.shape}")
    orbit_index = np.asarray(orbit_index, dtype=np.int64).reshape(-1)
    orbit_size = np.asarray(orbit_size, dtype=float).reshape(-1)
    mean_k = np.asarray(mean_k, dtype=np.complex128)
    if mean_k.shape != (nx, nx, len(orbit_size)):
        raise ValueError(f"mean_k must have shape ({nx}, {nx}, {len(orbit_size)}), got {mean_k.shape}")
    weights = np.ones(nx) if slice_weights is None else np.asarray(slice_weights, float).reshape(-1)
    weights2 = weights if pair_weights is None else np.asarray(pair_weights, float).reshape(-1)
    if weights.shape != (nx,) or weights2.shape != (nx,):
        raise ValueError(f"slice_weights and pair_weights must have Nx = {nx} entries")
    if np.any((weights2 != 0) & (weights == 0)):
        raise ValueError("pair_weights may probe only slices that slice_weights probes")
    unique = np.unique(lengths)
    if previous is not None:
        if previous.phi_k.shape[:2] != (nx, n_perp) or not np.array_equal(previous.lengths, unique):
            raise ValueError("the carry belongs to another layout (shape or grid)")

    if gram_lower is None:
        gram_lower = slice_grams_lower(P)
    k_prefix = _k_prefix(gram_lower, unique)
    shapes = field_shapes(len(lengths), exact_moments)
    per_L = {name: np.zeros(len(unique), dtype=dtype) for name, (shape, dtype, _) in shapes.items()
             if shape}
    if exact_moments:
        for i, L in enumerate(unique):
            per_L["iv_tr3"][i], per_L["iv_tr4"][i] = _exact_moments(k_prefix[i], s)

    cur = _Modes(P, s)
    cols = _Columns(probes, weights)
    g = _probe_columns(cur, cols)
    n_prev = 0 if previous is None else int(previous.n_previous)
    if n_prev == 0:
        (fam_g,) = _families(cur, [(g, cols, True)])
    else:
        # the pair words' columns are a subset of the others': g restricted to them
        cols2 = cols if weights2 is weights else _Columns(probes, weights2)
        idx2 = np.flatnonzero(weights2[cols.slice_of] != 0)           # cols2 inside cols
        g2 = g if cols2 is cols else g[:, idx2]
        prev = _Modes(np.ascontiguousarray(previous.phi_k, dtype=np.complex128),
                      np.asarray(previous.signature, float))
        gt = _probe_columns(prev, cols2)                               # G'_{:, a_j} z_j
        r_all = _orbit_means(previous.mean_k_sum / n_prev, orbit_index, orbit_size)
        specs = [(g, cols, True), (r_all[:, cols.slice_of] * cols.z[None], cols, True),  # w = R z
                 (gt, cols2, False)]                                                     # G on g'
        if n_prev >= 2:
            r1 = _orbit_means(previous.mean_k_last, orbit_index, orbit_size)
            r2 = _orbit_means((previous.mean_k_sum - previous.mean_k_last) / (n_prev - 1),
                              orbit_index, orbit_size)
            specs += [(r1[:, cols2.slice_of] * cols2.z[None], cols2, True),
                      (r2[:, cols2.slice_of] * cols2.z[None], cols2, True)]
        fams = _families(cur, specs)
        fam_g, fam_r, fam_sgt = fams[:3]
        # G' seen on g; and G' on its own columns g' (only for the rotated pattern of G G' G' G)
        (fam_tg,), pi_tgt = _families(prev, [(g2, cols2, True)], also_project=gt)
    pre_g = _Prefix(fam_g, cols, unique)
    own_s, own_s2 = [pre_g], []
    self_gg = np.einsum("cjm,cjm->cj", fam_g.pi.conj(), fam_g.pi * s)
    word_gggg = _Word(pre_g, pre_g)
    if n_prev >= 1:
        pre_r = _Prefix(fam_r, cols, unique)
        pre_tg, pre_sgt = _Prefix(fam_tg, cols2, unique), _Prefix(fam_sgt, cols2, unique)
        own_s.append(pre_r)
        self_rg = np.einsum("cjm,cjm->cj", fam_r.pi.conj(), fam_g.pi * s)
        word_rggg = _Word(pre_r, pre_g, true_middle=False)
        word_ggtt = _Word(pre_tg, pre_tg, true_middle=False)
        pre_tgt = _Prefix(_Family(prev, cols2, pi_tgt, None, None, None), cols2, unique)
        _own_vectors(prev, cols2, [pre_tg, pre_tgt])
        corr_rows = [fam_sgt.pi_a]
        pair_cross = np.einsum("bjk,bjk->bj", fam_tg.pe.conj(), fam_sgt.pe)
        right_rows = [pre_sgt.y]
        if n_prev >= 2:
            fam_r1, fam_r2 = fams[3:]
            pre_r1, pre_r2 = _Prefix(fam_r1, cols2, unique), _Prefix(fam_r2, cols2, unique)
            own_s2 = [pre_r1, pre_r2]
            word_rggr = _Word(pre_r2, pre_r1, true_middle=False)       # w1 = R2 z, w2 = R1 z
            # its rotation G G R1 R2: the probed slice's block of R1' R2' z, per interval
            r12 = np.einsum("jbk,bjk->bjk", r1[cols2.slice_of], r2[:, cols2.slice_of])
            cum_r12 = np.cumsum(r12, axis=0)
            corr_rows.append(fam_r2.pi_a)
            right_rows.append(pre_r2.y)
            # pair term of R2 G R1 G: pe(R2 z)[b]^+ (R1_{a b} g[b])
            r1_ab = r1[cols2.slice_of].transpose(1, 0, 2)              # [b, j, k] = R1_{a_j b}(k)
            pair_rgrg = np.einsum("bjk,bjk->bj", fam_r2.pe.conj(), r1_ab * g2)
        # one pass over each Phi: P_c S pi_a (corrections, all c) and P_c S y (c in the
        # interval) for the explicit words
        n2 = pre_sgt.n
        corr, right = _explicit_vectors(cur, np.concatenate(corr_rows), [
            np.concatenate([rows[i] for rows in right_rows]) for i in range(len(unique))], unique)
        corr_s, corr_r2 = corr[:, :len(cols2)], corr[:, len(cols2):]
        corr_t, left_t = _explicit_vectors(prev, fam_tg.pi_a, pre_tg.y, unique)  # P'_c S' pi'_a(g)
    if own_s2 and cols2 is cols:
        _own_vectors(cur, cols, own_s + own_s2)
    else:
        _own_vectors(cur, cols, own_s)
        if own_s2:
            _own_vectors(cur, cols2, own_s2)

    for i, L in enumerate(unique):
        K = k_prefix[i]
        wt = cols.weight[:pre_g.n[i]]
        # K_I S y for the second prefixes of the words (one product per sample and interval)
        second = [pre_g] + ([pre_r1] if n_prev >= 2 else [])
        stacked = np.concatenate([x for pre in second for x in (pre.y[i], pre.yp[i])]) * s
        ky = stacked @ K.T
        ky_of, start = {}, 0
        for pre in second:
            ky_of[id(pre)] = (ky[start:start + pre.n[i]], ky[start + pre.n[i]:start + 2 * pre.n[i]])
            start += 2 * pre.n[i]
        # n = 3: G G G and R G G as (X1)(G X3): <w1, G_I w2> = y1^+ S y2
        y, yp = pre_g.y[i], pre_g.yp[i]
        per_L["iv_p3"][i] = np.sum(wt * _rowdot(y, y, s))
        per_L["iv_d3"][i] = np.sum(wt * (_rowdot(yp, yp, s) - cols.excluding_own(self_gg, L)))
        per_L["iv_p4"][i], per_L["iv_d4"][i] = _same_middle(word_gggg, i, L, K, ky_of[id(pre_g)])
        if n_prev >= 1:
            per_L["iv_rgg"][i] = np.sum(wt * _rowdot(pre_r.y[i], y, s))
            per_L["iv_d_rgg"][i] = np.sum(wt * (_rowdot(pre_r.yp[i], yp, s)
                                                - cols.excluding_own(self_rg, L)))
            per_L["iv_rggg"][i], per_L["iv_d_rggg"][i] = _same_middle(word_rggg, i, L, K,
                                                                       ky_of[id(pre_g)])
            Kt = previous.k_prefix[i]
            st = (np.concatenate([pre_tg.y[i], pre_tg.yp[i]]) * prev.s) @ Kt.T
            m = pre_tg.n[i]
            own_g2 = pre_g.own[i][idx2[:m]]
            # a2 = a4 of G G' G' G: the rotated word G' G' G G's a1 = a3 (G'^2 z and G^2 z blocks)
            per_L["iv_ggtt"][i], per_L["iv_d_ggtt"][i] = _same_middle(
                word_ggtt, i, L, Kt, (st[:m], st[m:]), a2a4=_rowdot(pre_tgt.own[i], own_g2))
            # crossing G G' G G': left = G' (G z), right = G (G' z), explicit on the interval
            m = n2[i]
            per_L["iv_gtgt"][i], per_L["iv_d_gtgt"][i] = _explicit_word(
                left_t[i], corr_t[:L, :m], fam_tg.bv[:L, :m], right[i][:, :m], corr_s[:L, :m],
                fam_sgt.bv[:L, :m], L, cols2, cols2.excluding_own(pair_cross, L))
        if n_prev >= 2:
            a, j = cols2.slice_of[:m], cols2.index[:m]
            block = (cum_r12[L - 1, :m] - r12[a, j]) * cols2.z[:m]       # (R1' R2' z)_a
            per_L["iv_rggr"][i], per_L["iv_d_rggr"][i] = _same_middle(
                word_rggr, i, L, K, ky_of[id(pre_r1)], a2a4=_rowdot(own_g2, block))
            # R2 G R1 G: left = G (R2 z) explicit, right = R1_I g (k-diagonal, cheap)
            left = right[i][:, m:2 * m]
            rr = r1[:L, :L]
            g_in = g2[:L, :m]
            right_tot = np.einsum("cbk,bjk->cjk", rr, g_in)
            a, j = cols2.slice_of[:m], cols2.index[:m]
            # distinct: R1'_I g' drops b = c and b = a (once when c = a)
            diag_term = rr[np.arange(L), np.arange(L)][:, None, :] * g_in
            right_p = right_tot - diag_term - rr[:, a] * g2[a, j][None]
            right_p[a, j] += diag_term[a, j]
            per_L["iv_rgrg"][i] = np.sum(cols2.weight[:m] * np.einsum("cjk,cjk->j", left.conj(), right_tot))
            _, per_L["iv_d_rgrg"][i] = _explicit_word(
                left, corr_r2[:L, :m], fam_r2.bv[:L, :m], right_p, 0.0, np.zeros_like(right_p),
                L, cols2, cols2.excluding_own(pair_rgrg, L))

    out = {name: np.zeros(shape, dtype) for name, (shape, dtype, _) in shapes.items()}
    where = np.searchsorted(unique, lengths)
    for name, values in per_L.items():
        out[name] = values[where].astype(out[name].dtype)
    out["iv_n1"] = np.float64(n_prev >= 1)
    out["iv_n2"] = np.float64(n_prev >= 2)
    mean_k_sum = mean_k.copy() if previous is None else previous.mean_k_sum + mean_k
    carry = IntervalCarry(phi_k=P, signature=s, k_prefix=k_prefix, lengths=unique,
                          mean_k_last=mean_k, mean_k_sum=mean_k_sum, n_previous=n_prev + 1)
    return out, carry


def interval_block_sums(samples, lengths, orbit_index, orbit_size, **options):
    """Block sums of one seed block: ``samples`` yields ``(phi_k, signature, mean_k, probes)`` in
    the block's fixed sample order; the carry starts empty at the block's first sample, so the
    sums depend only on the block's own samples, their order and their probes (never on which
    rank computes the block or what it computed before). ``options`` go to
    `interval_observables`. Returns ``(sums, n_samples)``."""
    sums, carry, n = None, None, 0
    for phi_k, signature, mean_k, probes in samples:
        obs, carry = interval_observables(phi_k, signature, lengths, probes, orbit_index, orbit_size,
                                          mean_k, previous=carry, **options)
        sums = obs if sums is None else {k: sums[k] + v for k, v in obs.items()}
        n += 1
    return sums, n


# --- the observable group ---------------------------------------------------------------------

def slice_subset_weights(rng, Nx, fraction):
    """Weights of a random subset of ``max(1, round(fraction Nx))`` slices: ``Nx / size`` on the
    subset (its inverse inclusion probability, so sums over the subset stay unbiased), 0 off it.
    ``fraction >= 1``: None (every slice, weight 1)."""
    if fraction >= 1:
        return None
    size = max(1, int(round(fraction * Nx)))
    weights = np.zeros(Nx)
    weights[rng.choice(Nx, size=size, replace=False)] = Nx / size
    return weights


@dataclass(frozen=True)
class IntervalState:
    """The group's per-block state: the grid's lengths and the carry of the previous sample."""

    lengths: np.ndarray
    carry: object = None


class IntervalsGroup:
    """m_n(x), n = 2..4, on the job's grid (``intervals``; ``interval_probes``,
    ``interval_pair_fraction``, ``interval_exact_moments``), one carry per seed block."""

    name = "intervals"

    def active(self, layout):
        return bool(layout.interval_grid)

    def fields(self, layout):
        return {name: Field(shape, dtype.type, meaning)
                for name, (shape, dtype, meaning) in field_shapes(
                    layout.n_intervals, layout.interval_exact_moments).items()}

    def steps(self, layout):
        # after mean_k (stage 20), before the g2 step (60) could overwrite phi_k, which the carry
        # keeps for the next sample of the block
        return [(25, self.compute)]

    @staticmethod
    def compute(work, state):
        layout = work.layout
        mine = state.get("intervals")
        if mine is None:
            mine = IntervalState(interval_lengths(layout.Nx, layout.interval_grid))
        # probes first, then the pair subset: a fixed order of draws from the sample's own stream
        probes = draw_probes(work.rng, layout.Nx, layout.n_perp, layout.interval_probes)
        pair_weights = slice_subset_weights(work.rng, layout.Nx, layout.interval_pair_fraction)
        work.keep_phi_k = True  # the carry holds a reference to this sample's phi_k
        fields, carry = interval_observables(
            work.phi_k, work.s, mine.lengths, probes, layout.orbit_index, layout.orbit_size,
            work.mean_k, previous=mine.carry, gram_lower=work.gram_lower, pair_weights=pair_weights,
            exact_moments=layout.interval_exact_moments)
        work.gram_lower = None
        state["intervals"] = IntervalState(mine.lengths, carry)
        return fields

    def cost(self, layout, width):
        nx, n_perp, m = layout.Nx, layout.n_perp, width
        n_len = min(layout.n_intervals, nx)
        sets, fraction = layout.interval_probes, min(1.0, layout.interval_pair_fraction)
        cols = sets * nx * (1 + fraction)               # probe columns of the single and pair words
        # every probe column through every slice's Phi (projections, images, explicit vectors,
        # in this and the previous sample: about 18 sweeps per probed slice, as many again for
        # the pair words; coefficients from `anderson_mpi.bench.intervals`), the K_I S y
        # products, and the exact moments (K S K and two traces: half a product per length)
        sweeps = sets * nx * 18 * (1 + fraction)
        gemm = (sweeps * nx * n_perp * m + n_len * 2 * cols * m * m
                + (n_len * m**3 / 2 if layout.interval_exact_moments else 0.0))
        batched = n_len * cols * nx * n_perp * 4 + nx * nx * n_perp * 4
        memory = COMPLEX_BYTES * (nx * m * m + 2 * n_len * m * m + 6 * cols * nx * m)
        return Cost(gemm=gemm, batched=batched, calls=n_len * 120 + 100, memory=memory)


INTERVALS = IntervalsGroup()
