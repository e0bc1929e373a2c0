"""Free against classical at fourth order: the classical cumulants of eq. (6)'s moments, the closed
forms for sorted positions, the loop arrangements of a cut-pair map and their asymmetry, the two
one-amplitude fits, the zero lines, and the interval sums I_n(x) with their finite-N analogue
(analysis.qssep, analysis.free_classical, analysis.intervals)."""
import itertools

import numpy as np
import pytest

from analysis import free_classical as fc
from analysis import intervals as iv
from analysis import qssep
from analysis.estimators import jackknife
from analysis.windows import DEFAULT, GRID, Window, g4_pair_mask

from helpers import connected, eq5, integral_unit_cube, set_partitions  # independent of the package

DNS = (1.0, 1.43, -0.77)
BELL = {1: 1, 2: 2, 3: 5, 4: 15, 5: 52, 6: 203, 7: 877}


def points(n, size, seed):
    """Random points in [0, 1]^n plus points on a coarse grid (ties: where the forms have kinks)."""
    rng = np.random.default_rng([17, seed])
    return np.concatenate([rng.random((size, n)), rng.integers(0, 5, (size // 4, n)) / 4.0])


def grid_x(nx):
    return (np.arange(nx) + 0.5) / nx


def replicated(truth, sigma, rng, n_blocks=20, per_block=10):
    """A `Replicated` dict {"g4": ...} whose block means are truth + Gaussian noise of standard
    deviation ``sigma`` per sample (independent at every entry)."""
    truth = np.asarray(truth, float)
    sums = per_block * truth[None] + sigma * np.sqrt(per_block) * rng.normal(size=(n_blocks,) + truth.shape)
    return jackknife(sums, [per_block] * n_blocks, lambda m: {"g4": m})


# --- the classical cumulants and the closed forms (analysis.qssep) ------------------------------

@pytest.mark.parametrize("n", range(1, 8))
def test_set_partitions_are_all_of_them(n):
    parts = qssep.set_partitions(n)
    assert len(parts) == BELL[n] and len(set(parts)) == len(parts)
    brute = {tuple(sorted(tuple(sorted(b)) for b in p)) for p in set_partitions(list(range(n)))}
    assert set(parts) == brute
    assert set(qssep.noncrossing_partitions(n)) <= set(parts)


@pytest.mark.parametrize("n", range(1, 7))
@pytest.mark.parametrize("dn", DNS)
def test_classical_moment_cumulant_relation(n, dn):
    """Forward relation: sum over ALL set partitions of prod g_classical(blocks) = dn^n min(x)
    (the module inverts it; here it is only multiplied out)."""
    x = points(n, 120, seed=n)
    total = np.zeros(len(x))
    for part in set_partitions(list(range(n))):
        term = np.ones(len(x))
        for block in part:
            term = term * qssep.g_classical(len(block), x[:, sorted(block)], dn)
        total += term
    np.testing.assert_allclose(total, dn**n * x.min(axis=1), rtol=0, atol=1e-13 * max(1, abs(dn) ** n))


@pytest.mark.parametrize("n", range(1, 7))
def test_free_is_the_connected_sum_of_classical(n):
    """Lehner: free cumulant = sum over connected set partitions (crossing graph) of products of
    classical cumulants; this ties g_classical to the independent NC Moebius inversion of g."""
    x = points(n, 60, seed=10 + n)
    expect = np.zeros(len(x))
    for part in set_partitions(list(range(n))):
        if connected(part):
            term = np.ones(len(x))
            for b in part:
                term = term * qssep.g_classical(len(b), x[:, sorted(b)], 1.3)
            expect += term
    np.testing.assert_allclose(qssep.g(n, x, 1.3), expect, rtol=0, atol=1e-12)


@pytest.mark.parametrize("n", [1, 2, 3])
def test_classical_equals_free_up_to_order_three(n):
    x = points(n, 300, seed=20 + n)
    np.testing.assert_allclose(qssep.g_classical(n, x, -0.77), eq5(n, x, -0.77), rtol=0, atol=1e-14)


@pytest.mark.parametrize("n", range(2, 7))
def test_classical_boundaries_and_scaling(n):
    # A coordinate 0 makes a variable 0, a coordinate 1 makes it the constant dn: a joint
    # classical cumulant of order >= 2 vanishes with either.
    x = points(n, 80, seed=30 + n)
    for i in range(n):
        for v in (0.0, 1.0):
            y = x.copy()
            y[:, i] = v
            np.testing.assert_allclose(qssep.g_classical(n, y, 1.4), 0.0, rtol=0, atol=1e-13 * 1.4**n)
    np.testing.assert_allclose(qssep.g_classical(n, x, -1.7), (-1.7) ** n * qssep.g_classical(n, x),
                               rtol=1e-13, atol=1e-15)


def spec_table(x, dn, kind):
    """docs/theory.md's table written out here: sorted p < q < r < s, arrangement by looking up
    where the two smallest sit on the loop (positions 0..3)."""
    x = np.asarray(x, float)
    out = np.empty(len(x))
    for i, pt in enumerate(x):
        p, q, r, s = sorted(pt)
        first, second = sorted(range(4), key=lambda k: (pt[k], k))[:2]
        opposite = abs(first - second) == 2
        if kind == "classical":
            f = 1 - 4 * q - 2 * r + 6 * q * r
        elif opposite:
            f = 1 - 4 * q - r + 5 * q * r
        else:
            f = 1 - 3 * q - 2 * r + 5 * q * r
        out[i] = dn**4 * p * (1 - s) * f
    return out


@pytest.mark.parametrize("dn", DNS)
def test_g4_closed_forms_against_the_partition_sums_and_the_table(dn):
    x = points(4, 400, seed=40)
    scale = 1e-14 * max(1.0, dn**4)
    free, clas = qssep.g(4, x, dn), qssep.g_classical(4, x, dn)
    np.testing.assert_allclose(qssep.g4_closed(x, dn, "free"), free, rtol=0, atol=scale)
    np.testing.assert_allclose(qssep.g4_closed(x, dn, "classical"), clas, rtol=0, atol=scale)
    np.testing.assert_allclose(spec_table(x, dn, "free"), free, rtol=0, atol=scale)
    np.testing.assert_allclose(spec_table(x, dn, "classical"), clas, rtol=0, atol=scale)
    # free - classical = the crossing product g2(x1, x3) g2(x2, x4)
    cross = eq5(2, x[:, [0, 2]], dn) * eq5(2, x[:, [1, 3]], dn)
    np.testing.assert_allclose(free - clas, cross, rtol=0, atol=scale)
    assert np.abs(cross).max() > 1e-2 * dn**4  # ... which is not small


def test_loop_order_asymmetry_formula():
    """For four distinct positions p < q < r < s: adjacent loop order (p, q, r, s) minus the
    opposite one (p, r, q, s) is -dn^4 p (1-s) (r-q) for free, 0 for classical."""
    x = np.sort(np.random.default_rng(5).random((500, 4)), axis=1)
    p, q, r, s = x.T
    adj, opp = x, x[:, [0, 2, 1, 3]]
    assert np.all(qssep.loop_arrangement4(adj) == 1) and np.all(qssep.loop_arrangement4(opp) == -1)
    np.testing.assert_allclose(qssep.g(4, adj, 1.3) - qssep.g(4, opp, 1.3), -1.3**4 * p * (1 - s) * (r - q),
                               rtol=0, atol=1e-14)
    np.testing.assert_allclose(qssep.g_classical(4, adj) - qssep.g_classical(4, opp), 0.0, atol=1e-15)


def test_symmetry_groups():
    """Classical: invariant under all 24 permutations. Free: exactly the 8 of the dihedral group
    of the loop leave it invariant at generic points; the other 16 change it."""
    x = np.random.default_rng(6).random((300, 4))
    ref_f, ref_c = qssep.g(4, x), qssep.g_classical(4, x)
    dihedral = {tuple(np.roll(range(4), k)) for k in range(4)}
    dihedral |= {tuple(reversed(p)) for p in dihedral}
    assert len(dihedral) == 8
    stabilizer = set()
    for perm in itertools.permutations(range(4)):
        np.testing.assert_allclose(qssep.g_classical(4, x[:, list(perm)]), ref_c, rtol=0, atol=1e-14)
        diff = np.abs(qssep.g(4, x[:, list(perm)]) - ref_f).max()
        if diff < 1e-14:
            stabilizer.add(perm)
        else:
            assert diff > 1e-3
    assert stabilizer == dihedral


# --- cut-pair maps: windows, arrangements, asymmetry ---------------------------------------------

@pytest.mark.parametrize("window", [Window(0, 0), Window(1, 0), Window(0, 2), Window(2, 1)])
def test_g4_pair_mask_brute_force(window):
    nx = 9
    k, dd = window.drop_slices, window.drop_diagonal
    for c, d in itertools.product(range(nx), repeat=2):
        mask = g4_pair_mask(nx, c, d, window)
        for a, b in itertools.product(range(nx), repeat=2):
            idx = (a, b, c, d)
            ok = all(k <= i < nx - k for i in idx) and all(abs(i - j) > dd for i, j in
                                                           itertools.combinations(idx, 2))
            assert mask[a, b] == ok


def test_arrangements_and_asymmetric_pairs_on_every_cut_pair():
    """The stated rule: (a, b) and (b, a) differ in arrangement unless a, b are both below
    min(c, d) or both above max(c, d); the adjacent one has a > b for c < d, a < b for c > d.
    On the symmetric points the shapes agree at (a, b) and (b, a); on the others the free shape
    differs by -p (1-s) (r-q)."""
    nx = 9
    x = grid_x(nx)
    for c, d in itertools.permutations(range(nx), 2):
        arr = fc.arrangement_map(nx, c, d)
        free, clas = fc.shape_map(x, c, d, "free"), fc.shape_map(x, c, d, "classical")
        a_adj, b_adj = fc.asymmetry_pairs(nx, c, d)
        got = set(zip(a_adj.tolist(), b_adj.tolist()))
        lo, hi = min(c, d), max(c, d)
        expect = set()
        for a, b in itertools.permutations(range(nx), 2):
            if len({a, b, c, d}) < 4:
                assert arr[a, b] == 0
                continue
            pts = np.array([x[a], x[b], x[c], x[d]])
            assert arr[a, b] == qssep.loop_arrangement4(pts)
            same_side = (a < lo and b < lo) or (a > hi and b > hi)
            if same_side:
                assert arr[a, b] == 1 and arr[b, a] == 1
                assert free[a, b] == pytest.approx(free[b, a], abs=1e-15)
            else:
                assert arr[a, b] == -arr[b, a]
                if (a > b) == (c < d):
                    expect.add((a, b))
            assert clas[a, b] == pytest.approx(clas[b, a], abs=1e-15)
        assert got == expect
        for a, b in got:
            assert arr[a, b] == 1
            p, q, r, s = sorted((x[a], x[b], x[c], x[d]))
            assert free[a, b] - free[b, a] == pytest.approx(-p * (1 - s) * (r - q), abs=1e-15)
        # reversing the loop: the map of (d, c) is the transpose of the map of (c, d)
        np.testing.assert_allclose(fc.shape_map(x, d, c, "free"), free.T, rtol=0, atol=1e-15)


@pytest.mark.parametrize("kind", ["free", "classical"])
def test_fits_recover_planted_amplitudes(kind):
    nx = 12
    x = grid_x(nx)
    pairs = np.array([[2, 8], [9, 3], [4, 5]])
    other = "classical" if kind == "free" else "free"
    fit_own = fc.fit_g4_free if kind == "free" else fc.fit_g4_classical
    fit_other = fc.fit_g4_classical if kind == "free" else fc.fit_g4_free
    for t in (1.6**4, -0.9**4):
        g4 = np.stack([t * fc.shape_map(x, c, d, kind) for c, d in pairs])
        for i, (c, d) in enumerate(pairs):  # garbage where the window does not look
            g4[i][~g4_pair_mask(nx, c, d, DEFAULT)] = 1e3
        own = fit_own(x, g4, pairs)
        assert own["dn4_pow4"] == pytest.approx(t, rel=1e-12) and own["rel_residual"] < 1e-12
        assert own["dn4"] == pytest.approx(np.sign(t) * abs(t) ** 0.25, rel=1e-12)
        n_expect = sum(int(g4_pair_mask(nx, c, d, DEFAULT).sum()) for c, d in pairs)
        assert own["n_points"] == n_expect == 2 * (nx - 2) * (nx - 3) + (nx - 2) * (nx - 3)
        # the other shape cannot describe it: its residual is the sine of the angle between them
        f_own = fc.design_g4(x, pairs, DEFAULT, kind)[1][:, 0]
        f_oth = fc.design_g4(x, pairs, DEFAULT, other)[1][:, 0]
        cos = f_own @ f_oth / np.linalg.norm(f_own) / np.linalg.norm(f_oth)
        assert fit_other(x, g4, pairs)["rel_residual"] == pytest.approx(np.sqrt(1 - cos**2), rel=1e-10)
        assert np.sqrt(1 - cos**2) > 0.3
    # windows: K drops lead slices, D near indices; counts by brute force
    for w in GRID:
        n = fc.fit_g4_free(x, g4, pairs, w)["n_points"]
        brute = sum(1 for c, d in pairs for a, b in itertools.product(range(nx), repeat=2)
                    if all(w.drop_slices <= i < nx - w.drop_slices for i in (a, b, c, d))
                    and all(abs(i - j) > w.drop_diagonal for i, j in itertools.combinations((a, b, c, d), 2)))
        assert n == brute
    assert np.isnan(fc.fit_g4_free(x, np.zeros((1, nx, nx)), [[4, 4]])["dn4"])


def test_asymmetry_ratio_exact_values():
    """R = 1 for any free map, 0 for any map symmetric under a <-> b (classical at any amplitude,
    or anything symmetric); on the family t (classical + lambda crossing) R = lambda exactly and
    the secondary ratio_sym = lambda / (kappa - lambda (kappa - 1)), kappa computed here."""
    nx = 12
    x = grid_x(nx)
    pairs = np.array([[2, 8], [9, 3]])
    F = np.stack([fc.shape_map(x, c, d, "free") for c, d in pairs])
    C = np.stack([fc.shape_map(x, c, d, "classical") for c, d in pairs])
    for t in (1.7**4, -0.5):
        out = fc.loop_asymmetry(x, t * F, pairs)
        assert out["ratio"] == pytest.approx(1.0, abs=1e-12)
        assert out["ratio_sym"] == pytest.approx(1.0, abs=1e-12)
        assert out["asym_amplitude"] == pytest.approx(t, rel=1e-12)
        assert out["classical_amplitude"] == pytest.approx(t, rel=1e-12)
        assert out["sym_amplitude"] == pytest.approx(t, rel=1e-12)
        assert out["frac_negative"] == (1.0 if t > 0 else 0.0) and out["asym_rel_deviation"] < 1e-12
        out = fc.loop_asymmetry(x, t * C, pairs)
        assert abs(out["ratio"]) < 1e-12 and abs(out["ratio_sym"]) < 1e-12
        assert out["asym_rel_deviation"] == pytest.approx(1.0, abs=1e-12)
        assert out["sym_amplitude_classical"] == pytest.approx(t, rel=1e-12)
        assert out["classical_amplitude"] == pytest.approx(t, rel=1e-12)
    rng = np.random.default_rng(2)
    sym = rng.normal(size=(2, nx, nx))
    sym = sym + sym.transpose(0, 2, 1)
    assert abs(fc.loop_asymmetry(x, sym, pairs)["ratio"]) < 1e-12
    assert abs(fc.loop_asymmetry(x, C * (1 + sym), pairs)["ratio"]) < 1e-12
    # an antisymmetric perturbation is seen: Delta = 2 * (map[adj] - map[opp]) of it
    anti = rng.normal(size=(2, nx, nx))
    anti = anti - anti.transpose(0, 2, 1)
    out = fc.loop_asymmetry(x, C + anti, pairs)
    pts = [fc.asymmetry_points(x, (C + anti)[i], c, d) for i, (c, d) in enumerate(pairs)]
    delta = np.concatenate([p["delta"] for p in pts])
    dfree = np.concatenate([p["delta_free"] for p in pts])
    expect = np.concatenate([2 * anti[i][p["a"], p["b"]] for i, p in enumerate(pts)])
    np.testing.assert_allclose(delta, expect, rtol=0, atol=1e-14)
    assert out["asym_amplitude"] == pytest.approx(delta @ dfree / (dfree @ dfree), rel=1e-12)
    # the one-parameter family between the two
    mask = np.stack([np.triu(g4_pair_mask(nx, c, d, DEFAULT), 1) for c, d in pairs])
    Fs = 0.5 * (F + F.transpose(0, 2, 1))
    kappa = (C[mask] @ Fs[mask]) / (Fs[mask] @ Fs[mask])
    assert 1.5 < kappa < 4
    for lam in (0.0, 0.3, 0.7, 1.0, 1.5):
        out = fc.loop_asymmetry(x, 2.0 * (C + lam * (F - C)), pairs)
        assert out["ratio"] == pytest.approx(lam, abs=1e-12)
        assert out["classical_amplitude"] == pytest.approx(2.0, rel=1e-12)
        assert out["ratio_sym"] == pytest.approx(lam / (kappa - lam * (kappa - 1)), abs=1e-12)
    # counts: asymmetric pairs of points, and all unordered window pairs
    n_asym = sum(len(fc.asymmetry_pairs(nx, c, d)[0]) for c, d in pairs)
    assert out["n_asym"] == n_asym and out["n_sym"] == mask.sum()


def test_asymmetry_ratio_with_noise_jackknife_pulls():
    """Free truth + noise: R = 1 within errors; classical truth + noise: R = 0; pure noise: the
    asymmetry amplitude is 0 within errors. Over many seeds the jackknife pulls have mean ~ 0
    and spread ~ 1 (the errors are right, not just large)."""
    nx = 10
    x = grid_x(nx)
    pairs = np.array([[2, 7]])
    F = fc.shape_map(x, 2, 7, "free")[None]
    C = fc.shape_map(x, 2, 7, "classical")[None]
    t = 1.5**4
    rng = np.random.default_rng(11)
    pulls = {"free": [], "classical": [], "noise": []}
    errors = {"free": [], "classical": []}
    for _ in range(60):
        for name, truth, key, target in (("free", t * F, "ratio", 1.0), ("classical", t * C, "ratio", 0.0),
                                         ("noise", 0 * F, "asym_amplitude", 0.0)):
            est = replicated(truth, 0.2, rng)
            out = fc.jk_loop_asymmetry(est, x, pairs)
            assert out.error[key] > 0
            pulls[name].append((out.value[key] - target) / out.error[key])
            if name in errors:
                errors[name].append(out.error[key])
    for name, p in pulls.items():
        p = np.array(p)
        assert abs(p.mean()) < 0.5, (name, p.mean())
        assert 0.7 < p.std() < 1.35, (name, p.std())
    # at this noise (g4 itself is at most 0.1) the two are told apart by many errors
    assert np.median(errors["free"]) < 0.1 and np.median(errors["classical"]) < 0.2


def test_jackknifed_fits_and_window_grid():
    nx = 10
    x = grid_x(nx)
    pairs = np.array([[2, 7], [6, 1]])
    truth = 1.3**4 * np.stack([fc.shape_map(x, c, d, "free") for c, d in pairs])
    est = replicated(truth, 0.05, np.random.default_rng(3))
    fits = fc.run_g4_fits(est, x, pairs)
    fr = fits["free"]
    assert 0 < fr.error["dn4"] < 0.02 and abs(fr.value["dn4"] - 1.3) < 4 * fr.error["dn4"]
    assert fits["classical"].full["rel_residual"] > 0.3 > fr.full["rel_residual"]
    assert set(fits["grid"]) == set(GRID) and fits["grid"][DEFAULT]["free"] is fr
    rows, ranges = fc.g4_window_rows(fits)
    assert len(rows) == len(GRID)
    for name in ("dn4_free", "dn4_classical", "asym_ratio"):
        vals = [r[name] for r in rows if r[name] is not None]
        assert ranges[f"{name}_window_range"] == [min(vals), max(vals)]
    k2 = next(r for r in rows if r["drop_slices"] == 2 and r["drop_diagonal"] == 0)
    assert k2["n_points"] == fc.fit_g4_free(x, truth, pairs, Window(2, 0))["n_points"]
    assert abs(k2["dn4_free"] - 1.3) < 4 * k2["dn4_free_err"]


# --- zero lines --------------------------------------------------------------------------------

@pytest.mark.parametrize("xc, xd", [(0.1, 0.9), (0.3, 0.6), (0.75, 0.2)])
@pytest.mark.parametrize("kind", fc.KINDS)
def test_predicted_zero_lines_are_the_zero_sets(xc, xd, kind):
    """Every returned point is a zero of the shape, and along each scanned line the roots are
    exactly the sign changes of the shape on a fine grid (nothing missed, nothing extra)."""
    n_grid = 40
    z = fc.predicted_zero_line(xc, xd, kind, n_grid)
    funcs = {"free": lambda p: qssep.g(4, p), "classical": lambda p: qssep.g_classical(4, p),
             "free_swapped": lambda p: qssep.g(4, p[..., [1, 0, 2, 3]])}
    f = funcs[kind]
    for name, axis in (("rows", 1), ("cols", 0)):
        pts = z[name]
        full = np.column_stack([pts, np.full(len(pts), xc), np.full(len(pts), xd)])
        assert np.abs(f(full)).max(initial=0) < 1e-14
        fine = (np.arange(20011) + 0.5) / 20011  # no short rational (a root) on this grid
        for u in (np.arange(n_grid) + 0.5) / n_grid:
            p = np.empty((len(fine), 4))
            p[:, 1 - axis], p[:, axis], p[:, 2], p[:, 3] = u, fine, xc, xd
            v = f(p)
            assert np.all(v != 0)
            changes = fine[:-1][np.sign(v[:-1]) != np.sign(v[1:])]
            roots = np.sort(pts[pts[:, 1 - axis] == u][:, axis])
            assert len(roots) == len(changes), (u, roots, changes)
            assert np.all(np.abs(roots - changes) <= fine[1] - fine[0] + 1e-12)


def test_predicted_zero_lines_match_the_table():
    """With x_c = 0.1 (smallest) and x_d = 0.9 (largest), between them: x_a < x_b is the
    opposite arrangement (zero x_b = (1 - 4 x_a) / (1 - 5 x_a)), x_b < x_a the adjacent one
    (x_a = (1 - 3 x_b) / (2 - 5 x_b)); classical r = (1 - 4q) / (2 - 6q) in both."""
    z = fc.predicted_zero_line(0.1, 0.9, "free", 200)["rows"]
    inside = (z > 0.1).all(axis=1) & (z < 0.9).all(axis=1)
    xa, xb = z[inside].T
    opp = xa < xb
    assert opp.sum() > 10 and (~opp).sum() > 10
    np.testing.assert_allclose(xb[opp], (1 - 4 * xa[opp]) / (1 - 5 * xa[opp]), rtol=0, atol=1e-13)
    np.testing.assert_allclose(xa[~opp], (1 - 3 * xb[~opp]) / (2 - 5 * xb[~opp]), rtol=0, atol=1e-13)
    z = fc.predicted_zero_line(0.1, 0.9, "classical", 200)["rows"]
    inside = (z > 0.1).all(axis=1) & (z < 0.9).all(axis=1)
    q, r = np.sort(z[inside], axis=1).T
    assert len(q) > 10
    np.testing.assert_allclose(r, (1 - 4 * q) / (2 - 6 * q), rtol=0, atol=1e-13)


def test_measured_zero_crossings_exact_on_linear_rows_and_jackknife_error():
    nx = 12
    x = grid_x(nx)
    z0 = np.linspace(0.2, 0.8, nx)  # row a: the map x_b - z0[a], zero at z0[a]
    exact = x[None, :] - z0[:, None]
    keep = np.ones((nx, nx), bool)
    keep[3, 5] = False  # a skipped point: the bracket spans it, still exact (linear rows)
    found = fc.zero_crossings(x, exact, keep, axis=1)
    assert found["line"].tolist() == list(range(nx))
    np.testing.assert_allclose(found["position"], z0, rtol=0, atol=1e-14)
    cols = fc.zero_crossings(x, exact.T, keep.T, axis=0)
    np.testing.assert_allclose(cols["position"], z0, rtol=0, atol=1e-14)
    # noise sigma per sample, n samples: the jackknife error of a crossing against the delta
    # method (independent entries): var = (v_hi^2 + v_lo^2) (dx)^2 / (v_lo - v_hi)^4 * sigma^2 / n
    rng = np.random.default_rng(9)
    sigma, n_blocks, per_block = 0.05, 60, 20
    est = replicated(exact, sigma, rng, n_blocks, per_block)
    line = fc.jk_zero_line(est["g4"], x, keep, axis=1)
    assert len(line["position"]) == nx and line["points"].shape == (nx, 2)
    v_lo, v_hi = exact[line["line"], line["lo"]], exact[line["line"], line["hi"]]
    dx = x[line["hi"]] - x[line["lo"]]
    delta = np.sqrt(v_lo**2 + v_hi**2) * dx / (v_lo - v_hi) ** 2 * sigma / np.sqrt(n_blocks * per_block)
    ratio = line["position_err"] / delta
    assert 0.75 < np.median(ratio) < 1.3
    pulls = (line["position"] - z0) / line["position_err"]
    assert np.abs(pulls).max() < 4.5


def test_zero_line_figure_writes_png_pdf_csv(tmp_path):
    import csv

    from analysis.figures import FigureData
    nx = 10
    x = grid_x(nx)
    c, d = 2, 7
    truth = fc.shape_map(x, c, d, "free")
    est = replicated(truth, 0.01, np.random.default_rng(4))
    keep = g4_pair_mask(nx, c, d, DEFAULT)
    lines = [fc.jk_zero_line(est["g4"], x, keep, axis) for axis in (1, 0)]
    rec = FigureData()
    fig = fc.fig_zero_lines(x, est.value["g4"], c, d, lines, rec=rec, n_grid=60)
    paths = fc.write_figure(fig, rec, tmp_path / "fig_g4_zero_lines")
    assert [p.suffix for p in paths] == [".png", ".pdf", ".csv"] and all(p.stat().st_size > 0 for p in paths)
    with open(paths[-1]) as fh:
        kinds = {row["kind"] for row in csv.DictReader(fh)}
    assert kinds == {"map", "zero_free", "zero_classical", "zero_free_swapped", "zero_data"}


# --- interval sums (analysis.intervals) ----------------------------------------------------------

XS = (0.1, 0.3, 0.5, 0.5868, 0.8, 1.0)


@pytest.mark.parametrize("kind", ["free", "classical"])
@pytest.mark.parametrize("n", [2, 3, 4])
def test_interval_integrals_against_exact_integration(kind, n):
    """int_[0,x]^n g_n = x^n int_[0,1]^n g_n(x u) du, with the simplex rule that is exact for
    the piecewise polynomials g_n (free: NC Moebius, classical: all partitions), against the
    closed forms; tolerance: rounding."""
    func = qssep.g if kind == "free" else qssep.g_classical
    for dn in (1.0, -0.77):
        for x in XS:
            numeric = x**n * integral_unit_cube(lambda u: func(n, x * u, dn), n)
            assert iv.interval_integral(n, x, dn, kind) == pytest.approx(numeric, rel=0, abs=1e-15)


def test_interval_integral_identities():
    x = np.linspace(0, 1, 101)
    np.testing.assert_allclose(iv.interval_integral(4, x, 1.3, "classical") - iv.interval_integral(4, x, 1.3),
                               -iv.interval_integral(2, x, 1.3) ** 2, rtol=1e-13, atol=1e-20)
    assert iv.interval_integral(3, 1.0) == 0 and np.all(iv.interval_integral(3, x[1:-1]) > 0)
    assert iv.interval_integral(4, 1.0) == pytest.approx(-1 / 720, rel=1e-15)
    assert iv.interval_integral(4, 1.0, kind="classical") == pytest.approx(-1 / 120, rel=1e-15)
    assert iv.interval_integral(2, 1.0) == pytest.approx(1 / 12, rel=1e-15)


@pytest.mark.parametrize("kind, approx", [("free", 0.587), ("classical", 0.413)])
def test_interval_zeros(kind, approx):
    x0 = iv.INTERVAL_ZEROS[kind]
    assert round(x0, 3) == approx
    assert abs(iv.interval_integral(4, x0, 1.0, kind)) < 1e-18
    # one sign change in (0, 1), from + to -
    grid = np.linspace(0, 1, 100001)[1:-1]
    v = iv.interval_integral(4, grid, 1.0, kind)
    assert np.count_nonzero(np.diff(np.sign(v))) == 1 and v[0] > 0 and v[-1] < 0
    # the zero of the exactly integrated g4 (not of the closed form), by bisection
    func = qssep.g if kind == "free" else qssep.g_classical
    lo, hi = x0 - 1e-6, x0 + 1e-6
    integ = lambda x: x**4 * integral_unit_cube(lambda u: func(4, x * u), 4)  # noqa: E731
    assert integ(lo) > 0 > integ(hi)


@pytest.mark.parametrize("kind", ["free", "classical"])
@pytest.mark.parametrize("n", [2, 3, 4])
def test_interval_sums_against_brute_force(kind, n):
    """N^-n sum over ordered, pairwise distinct slice tuples in [0, M) of g_n, every M."""
    N, dn = 7, 1.3
    x = grid_x(N)
    func = qssep.g if kind == "free" else qssep.g_classical
    xs, values = iv.interval_sums_qssep(n, N, dn, kind)
    np.testing.assert_allclose(xs, np.arange(N + 1) / N)
    for M in range(N + 1):
        tuples = [t for t in itertools.product(range(M), repeat=n) if len(set(t)) == n]
        brute = func(n, x[np.array(tuples)], dn).sum() / N**n if tuples else 0.0
        assert values[M] == pytest.approx(brute, rel=1e-13, abs=1e-16)


def diagonal_coefficient(n, x, kind):
    """The 1/N term of D_N - I_n: minus the left-out tuples with one coinciding pair,
    -sum_{i<j} int_[0,x]^(n-1) g_n(y with y_j = y_i), integrated exactly (simplex rule)."""
    func = qssep.g if kind == "free" else qssep.g_classical
    total = 0.0
    for i, j in itertools.combinations(range(n), 2):
        others = [k for k in range(n) if k != j]

        def on_diagonal(u):
            y = np.empty((len(u), n))
            y[:, others] = x * u
            y[:, j] = y[:, i]
            return func(n, y)
        total += x ** (n - 1) * integral_unit_cube(on_diagonal, n - 1)
    return -total


@pytest.mark.parametrize("kind", ["free", "classical"])
@pytest.mark.parametrize("n", [2, 3, 4])
def test_interval_sums_converge_to_the_integral(kind, n):
    """D_N(x) = I_n(x) + A/N + O(1/N^2), A = `diagonal_coefficient` (the midpoint sum over all
    tuples is O(1/N^2) from I_n; the left-out coinciding ones are A/N): the remainder
    s_N = N (N (D_N - I_n) - A) settles (changes by < 30 % from N = 24 to 48); a wrong A by
    0.003 or more would change it by more than that."""
    for x in (0.5, 1.0):
        a = diagonal_coefficient(n, x, kind)
        s = {}
        for N in (24, 48):
            _, v = iv.interval_sums_qssep(n, N, 1.0, kind)
            s[N] = N * (N * (v[int(N * x)] - iv.interval_integral(n, x, 1.0, kind)) - a)
        assert abs(s[48] - s[24]) <= 0.3 * abs(s[24]) + 1e-10, (x, a, s)
    if n == 3:  # g3(1 - x) = -g3(x) and the grid is symmetric: the whole-sample sum vanishes
        assert abs(iv.interval_sums_qssep(3, 11, 1.0, kind)[1][-1]) < 1e-16


def test_interval_zero_locators():
    # exact on a linear curve; the last + -> - change; exact zeros skipped
    x = np.linspace(0, 1, 11)
    np.testing.assert_allclose(iv.interval_zero(x, 0.37 - x)["x0"], 0.37, atol=1e-15)
    m = np.array([0, 1, -1, 1, 2, 1, -1, -2, -3, -2, -1.0])
    out = iv.interval_zero(x, m)
    assert out["x0"] == pytest.approx(0.55) and out["n_crossings"] == 3 and (out["lo"], out["hi"]) == (5, 6)
    assert np.isnan(iv.interval_zero(x, -x)["x0"])
    # on the theory curve sampled finely, the zero to interpolation accuracy
    g = np.linspace(0, 1, 1001)
    found = iv.interval_zero(g, iv.interval_integral(4, g))["x0"]
    assert found == pytest.approx(iv.INTERVAL_ZEROS["free"], abs=1e-6)
    # the error bound: moving m1 by +e1 and m2 by +e2 (the worst correlated case: both
    # derivatives are positive across a + -> - bracket) moves the zero by the bound
    mm, e = 0.37 - x, np.array([0.01, 0.02, 0.03, 0.015, 0.04, 0.02, 0.01, 0.02, 0.03, 0.01, 0.02])
    fit = iv.fit_interval_zero(x, mm, e)
    eps = 1e-6
    shifted = mm.copy()
    shifted[fit["lo"]] += eps * e[fit["lo"]]
    shifted[fit["hi"]] += eps * e[fit["hi"]]
    moved = iv.interval_zero(x, shifted)["x0"] - fit["x0"]
    assert moved / eps == pytest.approx(fit["x0_err"], rel=1e-5)


def test_jackknifed_interval_zero_and_amplitude():
    N = 16
    xs, truth = iv.interval_sums_qssep(4, N, 1.2)
    rng = np.random.default_rng(21)
    sums = 10 * truth[None] + 2e-5 * np.sqrt(10) * rng.normal(size=(30, N + 1))
    rep = jackknife(sums, [10] * 30, lambda m: m)
    zero = iv.jk_interval_zero(rep, xs)
    exact = iv.interval_zero(xs, truth)["x0"]
    assert 0 < zero.error["x0"] < 0.05 and abs(zero.value["x0"] - exact) < 4 * zero.error["x0"]
    bound = iv.fit_interval_zero(xs, rep.value, rep.error)["x0_err"]
    assert zero.error["x0"] <= bound * 1.05
    amp = iv.jk_fit_interval_amplitude(rep, 4, xs)
    assert amp.value["t"] > 0 and amp.full["n_points"] == N + 1
    # exact amplitude on the closed form itself, signed root for odd n
    fit = iv.fit_interval_amplitude(3, xs, iv.interval_integral(3, xs, -0.77))
    assert fit["dn"] == pytest.approx(-0.77, rel=1e-12) and fit["rel_residual"] < 1e-12


def test_m3_sign_and_scales():
    x = np.array([0.25, 0.5, 0.75, 1.0])
    out = iv.m3_sign(x, np.array([0.3, -0.5, 0.05, -0.01]), np.array([0.1, 0.1, 0.1, 0.0]))
    assert out["verdict"].tolist() == [1, -1, 0, -1]
    assert out["z"][:3] == pytest.approx([3.0, -5.0, 0.5])
    assert out["n_positive"] == 1 and out["n_negative"] == 2
    assert np.all(out["shape"][:3] > 0) and out["shape"][3] == 0
    assert iv.interval_scale("cube", 10, 4) == 10 and iv.interval_scale("quasi1d", 10, 3) == 10**5
    with pytest.raises(ValueError):
        iv.interval_scale("slab", 10, 3)


def test_zero_line_significance_filter():
    """A map that is pure noise has sign changes everywhere; min_jump = 3 removes nearly all of
    them, and keeps every crossing of a clean linear map."""
    nx = 12
    x = grid_x(nx)
    keep = np.ones((nx, nx), bool)
    noise = replicated(np.zeros((nx, nx)), 0.05, np.random.default_rng(5))["g4"]
    assert len(fc.jk_zero_line(noise, x, keep)["position"]) > 20
    assert len(fc.jk_zero_line(noise, x, keep, min_jump=3.0)["position"]) <= 2
    clean = replicated(x[None, :] - np.linspace(0.2, 0.8, nx)[:, None], 0.01, np.random.default_rng(6))["g4"]
    line = fc.jk_zero_line(clean, x, keep, min_jump=3.0)
    assert line["line"].tolist() == list(range(nx)) and np.all(line["jump_z"] >= 3.0)
