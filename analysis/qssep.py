"""QSSEP predictions g_n^Q for the cyclic coherence cumulants (docs/theory.md §9).

The QSSEP functions are defined for every order ``n`` by the non-crossing
moment-cumulant relation (paper eq. (6), docs/theory.md §9.2)::

    sum_{pi in NC(n)} prod_{p in pi} g_|p|(x_p) = dn^n min(x_1, ..., x_n)

i.e. ``g_n`` are the *free cumulants* of the "moments"
``m(x_S) = dn^|S| min(x_S)``.  (These moments are those of the commuting
projections ``P_x = 1_[0, x]`` on ``[0, 1]`` with Lebesgue measure, scaled by
``dn``: ``int P_x1 ... P_xk = min(x_1..x_k)``.)  They are obtained here by
Moebius inversion on the lattice NC(n)::

    g_n(x) = sum_{pi in NC(n)} mu(pi, 1_n) prod_{p in pi} dn^|p| min(x_p),
    mu(pi, 1_n) = prod_{b in K(pi)} (-1)^(|b|-1) Cat_(|b|-1),

with ``K`` the Kreweras complement and ``Cat_k`` the Catalan numbers.  Because
every term carries ``dn^n`` in total, ``g_n(x; dn) = dn^n g_n(x; 1)`` exactly.

Only ``min`` of the arguments in each block enters the moments, so the order of
the arguments inside a block is irrelevant for the moments; the order of the
``n`` arguments matters through which partitions are non-crossing: ``g_n`` is
invariant under the dihedral group (rotations and reversal of ``x_1..x_n``)
but, for ``n >= 4``, not under arbitrary permutations.

Next to them, `g_classical` gives the *classical* cumulants of the same moments
(Moebius inversion over all set partitions, weights ``(-1)^(k-1) (k-1)!`` for
``k`` blocks): the alternative statistics the fourth order can be tested against
(docs/theory.md, "Fourth order"). Classical and free cumulants agree for
``n <= 3``; at ``n = 4`` they differ by the crossing product
``g2(x_1, x_3) g2(x_2, x_4)`` (free = classical + crossing), and `g4_closed`
writes both out for sorted positions ``p <= q <= r <= s``::

    free, p and q adjacent on the loop:  dn^4 p (1-s) (1 - 3q - 2r + 5qr)
    free, p and q opposite on the loop:  dn^4 p (1-s) (1 - 4q - r + 5qr)
    classical (any arrangement):         dn^4 p (1-s) (1 - 4q - 2r + 6qr)

Pure numpy; no MPI, no files.
"""

from __future__ import annotations

import functools
import math
import numbers

import numpy as np

__all__ = [
    "g",
    "g_closed",
    "g_classical",
    "g4_closed",
    "loop_arrangement4",
    "set_partitions",
    "noncrossing_partitions",
    "kreweras_complement",
    "moebius_nc",
    "catalan",
]

# Entries of x may overshoot [0, 1] by rounding (e.g. (ix + 1/2)/Nx computed in
# floating point); anything beyond this is a caller error.
_X_TOL = 1e-12

# Upper bound on the number of float64 temporaries per chunk of points
# (about 32 MB per array), so that large point sets do not blow up memory for larger n.
_CHUNK_ELEMENTS = 4_000_000


# ---------------------------------------------------------------------------
# Combinatorics of NC(n)
# ---------------------------------------------------------------------------


def catalan(k: int) -> int:
    """Catalan number ``Cat_k = binom(2k, k) / (k + 1)``.

    Parameters
    ----------
    k : int
        Non-negative integer.

    Returns
    -------
    int
        ``Cat_k`` (exact integer).
    """
    k = _check_int(k, "k", minimum=0)
    return math.comb(2 * k, k) // (k + 1)


def _nc_of_sequence(seq):
    """Yield the non-crossing partitions of the ordered tuple ``seq``.

    The block containing ``seq[0]`` splits the remaining elements into the
    gaps between its consecutive elements (and after its last element); a
    partition is non-crossing iff each gap is partitioned on its own, without
    crossing, which gives the recursion below.
    """
    if not seq:
        yield ()
        return
    first, rest = seq[0], seq[1:]
    m = len(rest)
    # Choose the other members of first's block as a subset of `rest`
    # (bit mask over positions in `rest`).
    for mask in range(1 << m):
        members = [i for i in range(m) if mask >> i & 1]
        block = (first,) + tuple(rest[i] for i in members)
        cuts = [-1] + members + [m]
        gaps = [rest[a + 1:b] for a, b in zip(cuts[:-1], cuts[1:])]
        for parts in _product_nc(gaps):
            yield (block,) + parts


def _product_nc(gaps):
    """Yield concatenations of one non-crossing partition per gap."""
    if not gaps:
        yield ()
        return
    for head in _nc_of_sequence(gaps[0]):
        for tail in _product_nc(gaps[1:]):
            yield head + tail


@functools.lru_cache(maxsize=None)
def noncrossing_partitions(n: int) -> tuple:
    """All non-crossing partitions of ``{0, ..., n-1}``.

    Parameters
    ----------
    n : int
        Number of elements, ``n >= 1``.

    Returns
    -------
    tuple of tuple of tuple of int
        ``Cat_n`` partitions; each partition is a tuple of blocks sorted by
        their smallest element, each block a sorted tuple of 0-based indices.
    """
    n = _check_int(n, "n", minimum=1)
    parts = []
    for p in _nc_of_sequence(tuple(range(n))):
        parts.append(tuple(sorted(tuple(sorted(b)) for b in p)))
    return tuple(sorted(parts))


def _check_partition(partition, n):
    """Return ``partition`` as a tuple of sorted blocks; ValueError if it is not
    a partition of ``{0..n-1}``."""
    blocks = tuple(tuple(sorted(int(i) for i in b)) for b in partition)
    flat = sorted(i for b in blocks for i in b)
    if any(len(b) == 0 for b in blocks) or flat != list(range(n)):
        raise ValueError(
            f"partition {partition!r} is not a set partition of {{0..{n - 1}}}")
    return blocks


def kreweras_complement(partition, n: int) -> tuple:
    """Kreweras complement ``K(pi)`` of a non-crossing partition.

    Uses the permutation form ``K(pi) = pi^{-1} gamma`` (Nica & Speicher,
    Lecture 18), with ``gamma = (0 1 ... n-1)`` and ``pi`` the permutation whose
    cycles are the blocks, each traversed in increasing order.

    Parameters
    ----------
    partition : iterable of iterable of int
        A non-crossing partition of ``{0, ..., n-1}``.
    n : int
        Number of elements.

    Returns
    -------
    tuple of tuple of int
        The blocks of ``K(pi)`` (sorted), with ``|pi| + |K(pi)| = n + 1``.
    """
    n = _check_int(n, "n", minimum=1)
    blocks = _check_partition(partition, n)
    # pi^{-1}: each element maps to its predecessor in its block (cyclically).
    pi_inv = [0] * n
    for b in blocks:
        for j, i in enumerate(b):
            pi_inv[i] = b[j - 1]
    perm = [pi_inv[(i + 1) % n] for i in range(n)]  # pi^{-1}(gamma(i))
    seen = [False] * n
    cycles = []
    for start in range(n):
        if seen[start]:
            continue
        cyc, i = [], start
        while not seen[i]:
            seen[i] = True
            cyc.append(i)
            i = perm[i]
        cycles.append(tuple(sorted(cyc)))
    cycles = tuple(sorted(cycles))
    # For a crossing partition pi^{-1} gamma is not a non-crossing complement;
    # the block count identity detects it.
    if len(blocks) + len(cycles) != n + 1:
        raise ValueError(f"partition {partition!r} is crossing")
    return cycles


def moebius_nc(partition, n: int) -> int:
    """Moebius function ``mu(pi, 1_n)`` of the lattice NC(n).

    The interval ``[pi, 1_n]`` is isomorphic to ``[0, K(pi)]``, a product of
    lattices ``NC(|b|)`` over the blocks ``b`` of ``K(pi)``, and
    ``mu(0_k, 1_k) = (-1)^(k-1) Cat_(k-1)``.

    Parameters
    ----------
    partition : iterable of iterable of int
        A non-crossing partition of ``{0, ..., n-1}``.
    n : int
        Number of elements.

    Returns
    -------
    int
        ``prod_{b in K(pi)} (-1)^(|b|-1) Cat_(|b|-1)``.
    """
    mu = 1
    for b in kreweras_complement(partition, n):
        k = len(b)
        mu *= (-1) ** (k - 1) * catalan(k - 1)
    return mu


@functools.lru_cache(maxsize=None)
def _nc_tables(n: int):
    """Index table and Moebius weights for vectorized evaluation of g_n.

    Returns ``(idx, mu)``: ``idx[j, :]`` lists the bit masks of the blocks of
    the j-th partition of NC(n), padded with 0 (the empty set, whose row of
    minima is 1, so padding does not change the product); ``mu[j]`` is
    ``mu(pi_j, 1_n)``.
    """
    parts = noncrossing_partitions(n)
    idx = np.zeros((len(parts), n), dtype=np.intp)
    mu = np.empty(len(parts), dtype=float)
    for j, p in enumerate(parts):
        for k, b in enumerate(p):
            idx[j, k] = sum(1 << i for i in b)
        mu[j] = moebius_nc(p, n)
    idx.setflags(write=False)
    mu.setflags(write=False)
    return idx, mu


def _set_partitions_of(elems):
    """Yield the set partitions of the list ``elems`` (lists of lists)."""
    if not elems:
        yield []
        return
    first, rest = elems[0], elems[1:]
    for part in _set_partitions_of(rest):
        yield [[first]] + part
        for i in range(len(part)):
            yield part[:i] + [[first] + part[i]] + part[i + 1:]


@functools.lru_cache(maxsize=None)
def set_partitions(n: int) -> tuple:
    """All set partitions of ``{0, ..., n-1}`` (crossing ones included).

    Parameters
    ----------
    n : int
        Number of elements, ``n >= 1``.

    Returns
    -------
    tuple of tuple of tuple of int
        Bell(n) partitions in the format of `noncrossing_partitions` (blocks sorted
        by their smallest element, each block a sorted tuple), sorted.
    """
    n = _check_int(n, "n", minimum=1)
    parts = {tuple(sorted(tuple(sorted(b)) for b in p))
             for p in _set_partitions_of(list(range(n)))}
    return tuple(sorted(parts))


@functools.lru_cache(maxsize=None)
def _classical_tables(n: int):
    """As `_nc_tables` over all set partitions, with the Moebius function of the full
    partition lattice, ``mu(pi, 1_n) = (-1)^(k-1) (k-1)!`` for ``k`` blocks."""
    parts = set_partitions(n)
    idx = np.zeros((len(parts), n), dtype=np.intp)
    mu = np.empty(len(parts), dtype=float)
    for j, p in enumerate(parts):
        for k, b in enumerate(p):
            idx[j, k] = sum(1 << i for i in b)
        mu[j] = (-1) ** (len(p) - 1) * math.factorial(len(p) - 1)
    idx.setflags(write=False)
    mu.setflags(write=False)
    return idx, mu


# ---------------------------------------------------------------------------
# Validation
# ---------------------------------------------------------------------------


def _check_int(value, name, minimum):
    # bool is an Integral but g(True, ...) is almost certainly a bug.
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise ValueError(f"{name} must be an integer, got {value!r}")
    value = int(value)
    if value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value}")
    return value


def _check_dn(dn):
    # 0-d arrays (e.g. from a fitter) are unwrapped; strings, arrays, complex
    # and bool are refused rather than silently converted.
    if isinstance(dn, np.ndarray) and dn.ndim == 0:
        dn = dn.item()
    if isinstance(dn, (bool, np.bool_)) or not isinstance(dn, numbers.Real):
        raise ValueError(f"dn must be a real scalar, got {dn!r}")
    dn = float(dn)
    if not math.isfinite(dn):
        raise ValueError(f"dn must be finite, got {dn!r}")
    return dn


def _check_x(x, n):
    try:
        arr = np.asarray(x)
    except Exception as exc:  # ragged nested lists and the like
        raise ValueError(f"x is not an array of numbers: {exc}") from None
    if arr.dtype.kind not in "iuf":
        if arr.dtype.kind == "O":
            try:
                arr = arr.astype(float)
            except (TypeError, ValueError):
                raise ValueError("x must contain real numbers") from None
        else:
            raise ValueError(f"x must contain real numbers, got dtype {arr.dtype}")
    arr = arr.astype(float, copy=False)
    if arr.ndim == 0:
        raise ValueError(f"x must have shape (..., {n}), got a scalar")
    if arr.shape[-1] != n:
        raise ValueError(
            f"x must have shape (..., n) with n = {n}, got last dimension "
            f"{arr.shape[-1]} (shape {arr.shape})")
    if not np.all(np.isfinite(arr)):
        raise ValueError("x contains non-finite entries (nan or inf)")
    if arr.size and (arr.min() < -_X_TOL or arr.max() > 1.0 + _X_TOL):
        raise ValueError(
            f"x entries must lie in [0, 1], got range [{arr.min()!r}, {arr.max()!r}]")
    # Rounding overshoot is clipped so that min() stays a valid coordinate.
    return np.clip(arr, 0.0, 1.0)


# ---------------------------------------------------------------------------
# g_n
# ---------------------------------------------------------------------------


def _block_minima(xs):
    """``M[S, :] = min_{i in S} xs[:, i]`` for every bit mask S, ``M[0, :] = 1``.

    Each subset is built from a smaller one (drop the lowest bit), so the
    table costs one ``np.minimum`` per subset.  Subsets index the rows so that
    gathering the blocks of all partitions copies contiguous rows (several
    times faster than gathering columns).
    """
    p, n = xs.shape
    cols = np.ascontiguousarray(xs.T)
    mins = np.empty((1 << n, p))
    mins[0] = 1.0
    for s in range(1, 1 << n):
        low = s & -s
        i = low.bit_length() - 1
        rest = s ^ low
        if rest == 0:
            mins[s] = cols[i]
        else:
            np.minimum(mins[rest], cols[i], out=mins[s])
    return mins


def g(n, x, dn=1.0):
    """QSSEP cyclic cumulant ``g_n^Q(x_1, ..., x_n)`` for any order ``n``.

    Parameters
    ----------
    n : int
        Order, ``n >= 1``.  The cost grows like ``Cat_n * n`` per point
        (and ``2^n`` block minima); fine up to ``n ~ 10``.
    x : array_like, shape (..., n)
        Points; ``x[..., k]`` is the k-th coordinate, in the cyclic order of
        ``E[G_{i1 i2} G_{i2 i3} ... G_{in i1}]^c``.  Entries in ``[0, 1]``
        (a rounding overshoot of 1e-12 is clipped).
    dn : float, optional
        Boundary imbalance ``Delta n`` (may be negative).  Default 1.

    Returns
    -------
    numpy.ndarray, shape (...)
        ``g_n`` at every point.  ``g_n(x; dn) = dn**n * g_n(x; 1)``.

    Raises
    ------
    ValueError
        If ``n`` is not an integer ``>= 1``, ``x.shape[-1] != n``, ``x`` has
        non-finite entries or entries outside ``[0, 1]``, or ``dn`` is not a
        finite real scalar.

    Notes
    -----
    Moebius inversion of paper eq. (6) (docs/theory.md §9.2) on NC(n)::

        g_n(x) = dn^n sum_{pi in NC(n)} mu(pi, 1_n) prod_{p in pi} min(x_p),
        mu(pi, 1_n) = prod_{b in K(pi)} (-1)^(|b|-1) Cat_(|b|-1).

    Examples
    --------
    >>> float(g(2, [0.3, 0.6]))          # min(x, y) - x y
    0.12
    """
    n = _check_int(n, "n", minimum=1)
    dn = _check_dn(dn)
    arr = _check_x(x, n)
    idx, mu = _nc_tables(n)
    return _partition_sum(arr, idx, mu, dn)


def _partition_sum(arr, idx, weights, dn):
    """``dn^n sum_j weights[j] prod_{blocks B of partition j} min(x_B)`` at every point of
    ``arr`` (..., n); ``idx`` as in `_nc_tables`."""
    n = arr.shape[-1]
    lead_shape = arr.shape[:-1]
    xs = arr.reshape(-1, n)
    out = np.empty(xs.shape[0])
    # Chunk over points (not a loop over single points) to bound the size of
    # the (points, |partitions|, n) temporary and of the 2^n minima table.
    per_point = idx.shape[0] + (1 << n)
    chunk = max(1, _CHUNK_ELEMENTS // per_point)
    for start in range(0, xs.shape[0], chunk):
        mins = _block_minima(xs[start:start + chunk])
        # terms[j, :] = prod over the blocks of partition j (padding rows are 1)
        terms = mins[idx[:, 0]]
        for k in range(1, n):
            terms *= mins[idx[:, k]]
        out[start:start + chunk] = weights @ terms
    # dn enters every term as dn^n, so it is applied once at the end.
    return (dn ** n) * out.reshape(lead_shape)


def g_closed(n, x, dn=1.0):
    """Closed forms of paper eq. (5) (docs/theory.md §9.1) for ``n = 1, 2, 3``.

    Parameters
    ----------
    n : {1, 2, 3}
        Order.
    x : array_like, shape (..., n)
        Points, entries in ``[0, 1]``.
    dn : float, optional
        Boundary imbalance.

    Returns
    -------
    numpy.ndarray, shape (...)
        ``g1 = dn x``, ``g2 = dn^2 (min(x,y) - x y)``,
        ``g3 = dn^3 (min(x,y,z) - x min(y,z) - y min(z,x) - z min(x,y) + 2 x y z)``.

    Raises
    ------
    ValueError
        For ``n`` outside ``{1, 2, 3}`` or invalid ``x``/``dn`` (as :func:`g`).
    """
    n = _check_int(n, "n", minimum=1)
    if n > 3:
        raise ValueError(f"closed forms exist here only for n <= 3, got n = {n}")
    dn = _check_dn(dn)
    arr = _check_x(x, n)
    if n == 1:
        return dn * arr[..., 0]
    if n == 2:
        a, b = arr[..., 0], arr[..., 1]
        return dn ** 2 * (np.minimum(a, b) - a * b)
    a, b, c = arr[..., 0], arr[..., 1], arr[..., 2]
    return dn ** 3 * (np.minimum(np.minimum(a, b), c)
                      - a * np.minimum(b, c) - b * np.minimum(c, a)
                      - c * np.minimum(a, b) + 2.0 * a * b * c)


def g_classical(n, x, dn=1.0):
    """Classical cumulant of the moments ``dn^|S| min(x_S)``, for any order ``n``.

    The alternative to `g`: the same moments (those of the commuting variables
    ``dn 1[U <= x]``, U uniform on [0, 1]) inverted over *all* set partitions::

        c_n(x) = dn^n sum_{pi in P(n)} (-1)^(|pi|-1) (|pi|-1)! prod_{B in pi} min(x_B).

    Each block's arguments keep their cyclic order, but ``min`` does not see it:
    ``c_n`` is symmetric under every permutation of ``x_1..x_n``. It equals `g`
    for ``n <= 3`` (every partition of 3 elements is non-crossing).

    Parameters
    ----------
    n : int
        Order, ``n >= 1`` (Bell(n) partitions per point; fine up to n ~ 9).
    x : array_like, shape (..., n)
        Points, entries in ``[0, 1]`` (as for `g`).
    dn : float, optional
        Boundary imbalance; ``c_n(x; dn) = dn^n c_n(x; 1)``.

    Returns
    -------
    numpy.ndarray, shape (...)

    Raises
    ------
    ValueError
        As `g`.
    """
    n = _check_int(n, "n", minimum=1)
    dn = _check_dn(dn)
    arr = _check_x(x, n)
    idx, mu = _classical_tables(n)
    return _partition_sum(arr, idx, mu, dn)


def loop_arrangement4(x):
    """Loop arrangement of four positions: +1 if the two smallest are adjacent on the
    loop ``x_1 -> x_2 -> x_3 -> x_4 -> x_1``, -1 if they are opposite (``{x_1, x_3}``
    or ``{x_2, x_4}``).

    Parameters
    ----------
    x : array_like, shape (..., 4)

    Returns
    -------
    numpy.ndarray of int8, shape (...)

    Notes
    -----
    With ties the two smallest are picked by a stable sort; `g4_closed` does not
    depend on that choice (where it matters, the two formulas agree).
    """
    arr = np.asarray(x, dtype=float)
    if arr.ndim == 0 or arr.shape[-1] != 4:
        raise ValueError(f"x must have shape (..., 4), got {arr.shape}")
    order = np.argsort(arr, axis=-1, kind="stable")
    opposite = (order[..., 0] - order[..., 1]) % 2 == 0
    return np.where(opposite, -1, 1).astype(np.int8)


def g4_closed(x, dn=1.0, kind="free"):
    """Closed forms of the fourth cumulant for sorted positions ``p <= q <= r <= s``.

    Parameters
    ----------
    x : array_like, shape (..., 4)
        Points in the cyclic (loop) order of the arguments, entries in ``[0, 1]``.
    dn : float, optional
    kind : {"free", "classical"}
        ``"free"``: QSSEP's `g` at n = 4, ``dn^4 p (1-s) (1 - 3q - 2r + 5qr)`` when
        p and q are adjacent on the loop, ``dn^4 p (1-s) (1 - 4q - r + 5qr)`` when
        they are opposite (`loop_arrangement4`); ``"classical"``: `g_classical` at
        n = 4, ``dn^4 p (1-s) (1 - 4q - 2r + 6qr)`` in any arrangement.

    Returns
    -------
    numpy.ndarray, shape (...)

    Notes
    -----
    Free minus classical is the crossing product ``g2(x_1, x_3) g2(x_2, x_4)`` with
    ``g2(u, v) = min(u, v) (1 - max(u, v))``: ``p q (1-r) (1-s)`` when the loop's
    opposite pairs are {p, r}, {q, s} or {p, s}, {q, r} (p, q adjacent) and
    ``p (1-q) r (1-s)`` when they are {p, q}, {r, s}. Hence
    ``g4(adjacent) - g4(opposite) = -dn^4 p (1-s) (r - q)`` for the same four
    positions.
    """
    if kind not in ("free", "classical"):
        raise ValueError(f"kind must be 'free' or 'classical', got {kind!r}")
    dn = _check_dn(dn)
    arr = _check_x(x, 4)
    p, q, r, s = np.moveaxis(np.sort(arr, axis=-1), -1, 0)
    front = dn ** 4 * p * (1.0 - s)
    if kind == "classical":
        return front * (1.0 - 4.0 * q - 2.0 * r + 6.0 * q * r)
    adjacent = loop_arrangement4(arr) > 0
    return front * np.where(adjacent, 1.0 - 3.0 * q - 2.0 * r + 5.0 * q * r,
                            1.0 - 4.0 * q - r + 5.0 * q * r)
