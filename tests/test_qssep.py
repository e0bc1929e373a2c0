"""Exact statements about the QSSEP functions g_n (docs/theory.md §9).

Useful picture for the derivations below: the "moments" of paper eq. (6) (docs/theory.md §9.2),
m(x_S) = dn^|S| min(x_S), are the moments of the commuting projections
P_x = dn * 1_[0, x] on [0, 1] with Lebesgue measure (the product of indicators
is the indicator of [0, min]).  g_n are their free cumulants, which are
multilinear in the n arguments, vanish for n >= 2 if one argument is a
multiple of the identity, and for commuting variables equal the sum over
*connected* set partitions of products of classical cumulants (Lehner 2002).
"""

import itertools
import math

import numpy as np
import pytest

from helpers import blocks_cross, connected, eq5, set_partitions

from analysis import qssep

DNS = (1.0, 1.75, -0.77, 0.3, -2.0)


def _rng(seed):
    return np.random.default_rng([20240601, seed])


def _points(n, size, seed):
    """Random points in [0, 1]^n, plus some with tied coordinates (min ties
    are where the closed forms have kinks)."""
    x = _rng(seed).random((size, n))
    grid = _rng(seed + 1000).integers(0, 5, size=(size // 4, n)) / 4.0
    return np.concatenate([x, grid])


def _scale(dn, n):
    # g_n is O(dn^n); tolerances are relative to that scale.
    return max(1.0, abs(dn) ** n)


# ---------------------------------------------------------------------------
# Combinatorics
# ---------------------------------------------------------------------------


def _is_noncrossing(part):
    return not any(blocks_cross(a, b) for a, b in itertools.combinations(part, 2))


def _canon(part):
    return tuple(sorted(tuple(sorted(b)) for b in part))


@pytest.mark.parametrize("n", range(1, 9))
def test_nc_count_is_catalan(n):
    parts = qssep.noncrossing_partitions(n)
    assert len(parts) == math.comb(2 * n, n) // (n + 1)
    assert len(set(parts)) == len(parts)


@pytest.mark.parametrize("n", range(1, 8))
def test_nc_enumeration_matches_brute_force(n):
    brute = {_canon(p) for p in set_partitions(list(range(n))) if _is_noncrossing(p)}
    assert set(qssep.noncrossing_partitions(n)) == brute
    # format: tuple of sorted blocks, each a sorted tuple
    for p in qssep.noncrossing_partitions(n):
        assert p == _canon(p)


def _refines(p, q):
    """p <= q in the refinement order (every block of p inside a block of q)."""
    return all(any(set(b) <= set(c) for c in q) for b in p)


@pytest.mark.parametrize("n", range(1, 7))
def test_moebius_matches_lattice_recursion(n):
    # mu(1, 1) = 1, mu(pi, 1) = - sum_{pi < sigma <= 1} mu(sigma, 1): computed on
    # the lattice directly, independently of the Kreweras/Catalan formula.
    parts = sorted(qssep.noncrossing_partitions(n), key=len)  # coarsest first
    mu = {}
    for p in parts:
        mu[p] = 1 if len(p) == 1 else -sum(
            mu[q] for q in mu if q != p and _refines(p, q))
    for p in parts:
        assert qssep.moebius_nc(p, n) == mu[p]
        assert len(p) + len(qssep.kreweras_complement(p, n)) == n + 1


def test_moebius_rejects_crossing_and_non_partitions():
    with pytest.raises(ValueError, match="crossing"):
        qssep.moebius_nc(((0, 2), (1, 3)), 4)
    with pytest.raises(ValueError, match="partition"):
        qssep.moebius_nc(((0, 1), (1, 2)), 3)


# ---------------------------------------------------------------------------
# g_n against eq. (5) and eq. (6)
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("n", [1, 2, 3])
@pytest.mark.parametrize("dn", DNS)
def test_eq5_closed_forms(n, dn):
    x = _points(n, 400, seed=n)
    tol = 1e-14 * _scale(dn, n)
    np.testing.assert_allclose(qssep.g(n, x, dn), eq5(n, x, dn), rtol=0, atol=tol)
    np.testing.assert_allclose(qssep.g_closed(n, x, dn), eq5(n, x, dn), rtol=0, atol=tol)


@pytest.mark.parametrize("n", range(1, 7))
@pytest.mark.parametrize("dn", [1.0, -0.77, 1.43])
def test_identity_eq6(n, dn):
    # sum_{pi in NC(n)} prod_{p in pi} g_|p|(x_p) = dn^n min(x), with x_p taken
    # in increasing index order (= the cyclic order inherited from 1..n).
    x = _points(n, 200, seed=10 + n)
    total = np.zeros(x.shape[0])
    for part in qssep.noncrossing_partitions(n):
        term = np.ones(x.shape[0])
        for block in part:
            term = term * qssep.g(len(block), x[:, list(block)], dn)
        total += term
    np.testing.assert_allclose(total, dn**n * x.min(axis=1), rtol=0,
                               atol=1e-13 * _scale(dn, n))


def _classical_cumulants(x):
    """Classical cumulants c(S) of m(S) = min(x_S) for every subset S (bit
    mask), via the partition-lattice Moebius function (-1)^(k-1) (k-1)!."""
    n = x.shape[-1]
    c = {}
    for mask in range(1, 1 << n):
        elems = [i for i in range(n) if mask >> i & 1]
        acc = np.zeros(x.shape[0])
        for part in set_partitions(elems):
            k = len(part)
            term = (-1) ** (k - 1) * math.factorial(k - 1) * np.ones(x.shape[0])
            for b in part:
                term = term * x[:, b].min(axis=1)
            acc += term
        c[mask] = acc
    return c


@pytest.mark.parametrize("n", range(1, 7))
def test_free_from_classical_cumulants_lehner(n):
    # Independent route: every set partition has a unique non-crossing
    # "closure" (connected components of its crossing graph), so
    # sum_{P(n)} c_pi = sum_{NC(n)} kappa_pi gives
    # kappa_n = sum over connected set partitions of prod of classical cumulants.
    x = _points(n, 60, seed=30 + n)
    c = _classical_cumulants(x)
    expect = np.zeros(x.shape[0])
    for part in set_partitions(list(range(n))):
        if connected(part):
            term = np.ones(x.shape[0])
            for b in part:
                term = term * c[sum(1 << i for i in b)]
            expect += term
    np.testing.assert_allclose(qssep.g(n, x), expect, rtol=0, atol=1e-12)


# ---------------------------------------------------------------------------
# Symmetries
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("n", range(2, 7))
def test_cyclic_rotation_and_reversal_invariance(n):
    # NC(n) and min are invariant under rotations and the reversal of 1..n
    # (the dihedral group), hence so is the Moebius inversion.
    x = _points(n, 200, seed=40 + n)
    ref = qssep.g(n, x, -0.77)
    tol = 1e-14
    for s in range(1, n):
        np.testing.assert_allclose(qssep.g(n, np.roll(x, s, axis=-1), -0.77), ref,
                                   rtol=0, atol=tol)
    np.testing.assert_allclose(qssep.g(n, x[:, ::-1], -0.77), ref, rtol=0, atol=tol)


def test_g3_fully_symmetric():
    # NC(3) is the set of all partitions of 3 elements, and eq. (5) is visibly
    # symmetric: g3 is invariant under all 6 permutations.
    x = _points(3, 300, seed=50)
    ref = qssep.g(3, x)
    for perm in itertools.permutations(range(3)):
        np.testing.assert_allclose(qssep.g(3, x[:, list(perm)]), ref, rtol=0, atol=1e-14)


def test_g4_not_symmetric_exact_difference():
    # P(4) = NC(4) + {13|24}, and classical (c) and free (kappa) cumulants agree
    # up to order 3, so kappa_4(x1,x2,x3,x4) = c_4 + g2(x1,x3) g2(x2,x4) with c_4
    # fully symmetric. Swapping x2 <-> x3 therefore changes g4 by
    #   g2(x1,x3) g2(x2,x4) - g2(x1,x2) g2(x3,x4).
    x = _points(4, 300, seed=60)
    dn = 1.3
    swapped = x[:, [0, 2, 1, 3]]
    diff = qssep.g(4, x, dn) - qssep.g(4, swapped, dn)
    g2 = lambda i, j: eq5(2, x[:, [i, j]], dn)  # noqa: E731
    expect = g2(0, 2) * g2(1, 3) - g2(0, 1) * g2(2, 3)
    np.testing.assert_allclose(diff, expect, rtol=0, atol=1e-13 * dn**4)
    # ... and the difference is not zero, so a test of symmetry can tell.
    assert np.max(np.abs(diff)) > 1e-3


@pytest.mark.parametrize("n", range(2, 7))
def test_particle_hole_symmetry(n):
    # 1 - P_x = 1_(x,1] is, after the measure-preserving reflection t -> 1 - t,
    # the projection P_{1-x}. Free cumulants are multilinear and vanish for
    # n >= 2 with a constant argument, so kappa_n(1-P_x1, ..., 1-P_xn) =
    # (-1)^n kappa_n(P_x1, ..., P_xn):  g_n(1 - x) = (-1)^n g_n(x), n >= 2.
    # (Check n = 2: min(1-x,1-y) - (1-x)(1-y) = min(x,y) - xy.)
    x = _points(n, 200, seed=70 + n)
    np.testing.assert_allclose(qssep.g(n, 1.0 - x, 1.5), (-1) ** n * qssep.g(n, x, 1.5),
                               rtol=0, atol=1e-13 * 1.5**n)


# ---------------------------------------------------------------------------
# Boundaries and special points
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("n", range(1, 7))
def test_vanishes_when_any_coordinate_is_zero(n):
    # Induction on n with eq. (6): if x_i = 0 the right side is 0, and every
    # partition other than 1_n has a block containing i of size < n, whose g
    # vanishes by induction (g_1(0) = 0 starts it). Hence g_n = 0 for all n >= 1.
    x = _points(n, 100, seed=80 + n)
    for i in range(n):
        y = x.copy()
        y[:, i] = 0.0
        np.testing.assert_allclose(qssep.g(n, y, -1.2), 0.0, rtol=0, atol=1e-14)


@pytest.mark.parametrize("n", range(2, 7))
def test_vanishes_when_any_coordinate_is_one(n):
    # Induction on n >= 2 with eq. (6), x_i = 1: partitions where i is a
    # singleton give g_1(1) = dn times sum_{NC(n-1)} = dn * dn^(n-1) min(x_rest),
    # which is already the right side dn^n min(x). The remaining partitions put
    # i in a block of size >= 2; all but 1_n contain a g_k (2 <= k < n) with a
    # coordinate 1, zero by induction. So g_n = 0. (Base: g_2(x, 1) = x - x = 0.)
    x = _points(n, 100, seed=90 + n)
    for i in range(n):
        y = x.copy()
        y[:, i] = 1.0
        np.testing.assert_allclose(qssep.g(n, y, 1.7), 0.0, rtol=0, atol=1e-13 * 1.7**n)


def _equal_points_formula(n, t):
    """Free cumulants of a projection with trace t (x_1 = ... = x_n = t, dn = 1).

    Moments m_k = t for all k >= 1: M(z) = 1 + t z / (1 - z). The R-transform
    relation M(z) = C(z M(z)) with w = z M(z) = z / phi(z),
    phi(z) = (1 - z) / (1 - (1 - t) z), and Lagrange inversion give
        kappa_n = (1/n) [z^(n-1)] (t / (1-z)^2) phi(z)^n
                = (t/n) sum_j (-1)^j C(n-2, j) C(2n-2-j, n-1) (1-t)^(n-1-j)
    for n >= 2; e.g. kappa_2 = t(1-t), kappa_3 = t(1-t)(1-2t),
    kappa_4 = t(1-t)(5t^2 - 5t + 1).
    """
    u = 1.0 - t
    acc = np.zeros_like(t)
    for j in range(n - 1):
        acc += (-1) ** j * math.comb(n - 2, j) * math.comb(2 * n - 2 - j, n - 1) * u ** (n - 1 - j)
    return t / n * acc


@pytest.mark.parametrize("n", range(2, 9))
def test_all_coordinates_equal(n):
    t = np.linspace(0.0, 1.0, 41)
    x = np.repeat(t[:, None], n, axis=1)
    np.testing.assert_allclose(qssep.g(n, x), _equal_points_formula(n, t), rtol=0, atol=1e-12)
    # Hand-expanded low orders, as a check of the formula itself.
    hand = {2: t * (1 - t), 3: t * (1 - t) * (1 - 2 * t), 4: t * (1 - t) * (5 * t**2 - 5 * t + 1)}
    if n in hand:
        np.testing.assert_allclose(_equal_points_formula(n, t), hand[n], rtol=0, atol=1e-14)


# ---------------------------------------------------------------------------
# dn scaling, shapes, input validation
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("n", range(1, 7))
@pytest.mark.parametrize("dn", DNS)
def test_dn_scaling(n, dn):
    x = _points(n, 50, seed=100 + n)
    np.testing.assert_allclose(qssep.g(n, x, dn), dn**n * qssep.g(n, x, 1.0),
                               rtol=1e-14, atol=1e-15 * _scale(dn, n))


def test_output_shape_and_broadcast_dims():
    x = _rng(7).random((3, 5, 4))
    out = qssep.g(4, x)
    assert out.shape == (3, 5)
    np.testing.assert_allclose(out.reshape(-1), qssep.g(4, x.reshape(-1, 4)), rtol=0, atol=0)
    assert qssep.g(2, [0.3, 0.6]).shape == ()
    assert qssep.g(3, np.zeros((0, 3))).shape == (0,)


def test_rounding_overshoot_is_clipped():
    # (ix + 1/2)/Nx can land a few ulps outside [0, 1]; within 1e-12 it is accepted.
    y = qssep.g(2, [[1.0 + 1e-13, 0.4], [-1e-13, 0.4]])
    np.testing.assert_allclose(y, [0.0, 0.0], atol=1e-15)


@pytest.mark.parametrize(
    "n, x, match",
    [
        (3, np.full((4, 2), 0.5), "last dimension"),
        (2, np.full((4, 3), 0.5), "last dimension"),
        (2, 0.5, "scalar"),
        (2, [[0.5, -0.1]], r"\[0, 1\]"),
        (2, [[0.5, 1.1]], r"\[0, 1\]"),
        (2, [[0.5, np.nan]], "non-finite"),
        (2, [[0.5, np.inf]], "non-finite"),
        (2, [[0.5, 0.2 + 0.1j]], "real"),
        (0, np.zeros((4, 0)), "n must be >= 1"),
        (-1, np.zeros((4, 1)), "n must be >= 1"),
        (2.0, np.zeros((4, 2)), "integer"),
        (True, np.zeros((4, 1)), "integer"),
    ],
)
def test_bad_input_raises(n, x, match):
    with pytest.raises(ValueError, match=match):
        qssep.g(n, x)


@pytest.mark.parametrize("dn", [np.nan, np.inf, "1.0", [1.0, 2.0], 1j])
def test_bad_dn_raises(dn):
    with pytest.raises(ValueError, match="dn"):
        qssep.g(2, [0.2, 0.3], dn)


def test_g_closed_rejects_high_order():
    with pytest.raises(ValueError, match="n <= 3"):
        qssep.g_closed(4, np.zeros(4))
