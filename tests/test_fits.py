"""QSSEP fits: the OLS headline protocol, windows, goodness of fit, N -> infinity, exponents.

The synthetic data are per-sample profiles ``planted + noise``; the jackknife over their
blocks gives the Replicated estimates the fits consume, exactly as for real runs. Expected
values come from the planted profiles (or an independent least-squares formula on them),
never from the code's own output.
"""

import numpy as np
import pytest

from analysis import fits, qssep, windows
from analysis.estimators import combine, jackknife
from analysis.windows import DEFAULT, GRID, Window


def x_of(nx):
    return (np.arange(nx) + 0.5) / nx


def replicated(rng, planted, noise, n_blocks=12, per_block=5, key=0):
    """Jackknifed sample mean of ``planted + noise * N(0, 1)`` (per sample; ``noise`` may be
    an array of the planted shape)."""
    S = n_blocks * per_block
    samples = planted[None] + noise * rng.normal(size=(S,) + planted.shape)
    sums = samples.reshape((n_blocks, per_block) + planted.shape).sum(axis=1)
    return jackknife(sums, [per_block] * n_blocks, lambda m: m, key=key)


def symmetric(rep, axes=(-2, -1)):
    """C2 and Re C3 on a cut are symmetric in (a, b) sample by sample."""
    return rep.map(lambda m: (m + np.swapaxes(m, *axes)) / 2)


def assert_recovers(rep, key, truth, k=4.0):
    v, e = rep.value[key], rep.error[key]
    assert e > 0, key
    assert abs(v - truth) < k * e, (key, v, e, truth)


def assert_misses(rep, key, truth, k=8.0):
    v, e = rep.value[key], rep.error[key]
    assert abs(v - truth) > k * e, (key, v, e, truth)


# --- planted profiles that QSSEP does not describe, with small errors where it fails ------------

def g1_with_boundary_bump(nx):
    """A line plus a bump on the two boundary slices (a contact effect), and per-sample noise
    that is tiny there and large in the bulk: what makes inverse-variance weights fail."""
    x = x_of(nx)
    planted = -0.8 + 1.7 * x
    planted[0] += 0.10
    planted[-1] -= 0.10
    noise = np.full(nx, 0.02)
    noise[[0, -1]] = 0.0005
    return x, planted, noise


def g2_with_near_diagonal_bump(nx, dn=1.3):
    """QSSEP g2 plus a contact term on a = b and a bump on |a - b| = 1, both with tiny noise."""
    x = x_of(nx)
    a, b = np.meshgrid(np.arange(nx), np.arange(nx), indexing="ij")
    planted = dn**2 * fits.g2_shape(x) + 0.5 * (a == b) + 0.04 * (np.abs(a - b) == 1)
    noise = np.where(np.abs(a - b) <= 1, 0.001, 0.02)
    return x, planted, noise


def g3_with_adjacent_bump(nx, cuts, dn=-0.8):
    """QSSEP Re g3 on cuts plus a bump wherever two of the three indices are adjacent or equal."""
    x = x_of(nx)
    a, b = np.meshgrid(np.arange(nx), np.arange(nx), indexing="ij")
    planted = np.empty((len(cuts), nx, nx))
    noise = np.empty_like(planted)
    for i, c in enumerate(cuts):
        near = (np.abs(a - b) <= 1) | (np.abs(a - c) <= 1) | (np.abs(b - c) <= 1)
        planted[i] = dn**3 * fits.g3_shape_on_cut(x, c) + 0.01 * near
        noise[i] = np.where(near, 0.0002, 0.004)
    return x, planted, noise


def ols_line(x, y):
    """Independent OLS slope and intercept (numpy's polyfit)."""
    slope, intercept = np.polyfit(x, y, 1)
    return slope, intercept


def ols_scale(f, y):
    """Independent one-parameter OLS: argmin_t sum (y - t f)^2 = <f, y> / <f, f>."""
    return float(np.dot(f, y) / np.dot(f, f))


def test_headline_dn1_counts_every_point_once_and_wls_does_not(rng):
    x, planted, noise = g1_with_boundary_bump(20)
    g1 = replicated(rng, planted, noise)
    fit = fits.jk_fit_dn1({"g1": g1}, x)
    slope, intercept = ols_line(x, planted)
    assert_recovers(fit, "dn1", slope)          # the equal-weight answer ...
    assert_recovers(fit, "intercept", intercept)
    assert_misses(fit, "dn1_wls", slope)        # ... which the weighted fit misses by far:
    end_to_end = (planted[-1] - planted[0]) / (x[-1] - x[0])  # it follows the boundary points
    assert abs(fit.value["dn1_wls"] - end_to_end) < abs(fit.value["dn1_wls"] - slope)


def test_headline_dn2_counts_every_pair_once_and_wls_does_not(rng):
    x, planted, noise = g2_with_near_diagonal_bump(14)
    g2 = symmetric(replicated(rng, planted, noise))
    fit = fits.jk_fit_dn2({"g2": g2}, x)
    iu = np.triu_indices(14, k=1)  # D = 0: every pair a != b, each once
    s = ols_scale(fits.g2_shape(x)[iu], planted[iu])
    assert_recovers(fit, "dn2", np.sqrt(s))
    assert_misses(fit, "dn2_wls", np.sqrt(s))
    assert fit.full["n_points"] == 14 * 13 / 2


def test_headline_dn3_counts_every_point_once_and_wls_does_not(rng):
    cuts = [3, 8]
    x, planted, noise = g3_with_adjacent_bump(12, cuts)
    g3 = symmetric(replicated(rng, planted, noise))
    fit = fits.jk_fit_dn3({"g3": g3}, x, cuts)
    ia, ib = np.triu_indices(12, k=1)
    f, y = [], []
    for i, c in enumerate(cuts):
        distinct = (ia != c) & (ib != c)
        f.append(fits.g3_shape_on_cut(x, c)[ia[distinct], ib[distinct]])
        y.append(planted[i][ia[distinct], ib[distinct]])
    t = ols_scale(np.concatenate(f), np.concatenate(y))
    assert_recovers(fit, "dn3", np.cbrt(t))
    assert_misses(fit, "dn3_wls", np.cbrt(t))


def test_windows_drop_the_bump_and_restore_the_planted_dn(rng):
    """The sensitivity grid of one run: K = 1 removes the boundary bump of g1, D = 1 the
    near-diagonal bumps of g2 and g3; the headline window (K = D = 0) keeps them."""
    x, g1p, g1n = g1_with_boundary_bump(14)
    _, g2p, g2n = g2_with_near_diagonal_bump(14, dn=1.3)
    cuts = [3, 8]
    _, g3p, g3n = g3_with_adjacent_bump(14, cuts, dn=-0.8)
    est = {"g1": replicated(rng, g1p, g1n, key="r"),
           "g2": symmetric(replicated(rng, g2p, g2n, key="r2")),
           "g3": symmetric(replicated(rng, g3p, g3n, key="r3"))}
    out = fits.run_fits(est, x, cuts, n_blocks=12)
    assert set(out["grid"]) == set(GRID) and len(GRID) == 9
    assert {"dn1", "dn2", "dn3", "dn3_line", "line", "chi2", "grid"} <= set(out)
    assert_recovers(out["grid"][Window(1, 0)]["dn1"], "dn1", 1.7)
    assert_misses(out["dn1"], "dn1", 1.7)
    assert_recovers(out["grid"][Window(0, 1)]["dn2"], "dn2", 1.3)
    assert_recovers(out["grid"][Window(0, 2)]["dn2"], "dn2", 1.3)
    assert_misses(out["dn2"], "dn2", 1.3)
    assert_recovers(out["grid"][Window(0, 1)]["dn3"], "dn3", -0.8)
    assert_misses(out["dn3"], "dn3", -0.8)
    # dn1 has one index: D does not change it
    assert out["grid"][Window(1, 2)]["dn1"].value["dn1"] == out["grid"][Window(1, 0)]["dn1"].value["dn1"]
    # the point counts of the windows
    assert out["grid"][Window(2, 0)]["dn1"].full["n_points"] == 14 - 4
    assert out["grid"][Window(1, 1)]["dn2"].full["n_points"] == (12 - 1) * (12 - 2) / 2
    # the headline is the grid's (0, 0) entry
    assert out["grid"][DEFAULT]["dn2"] is out["dn2"]
    # residuals: the bump makes the headline residual larger than the bump-free window's
    assert out["dn2"].full["rel_residual"] > 3 * out["grid"][Window(0, 1)]["dn2"].full["rel_residual"]


def test_paper_line_fit(rng):
    """The single line of the paper (cut nearest z = 0.23, slice nearest y = 0.78, all a)."""
    nx = 20
    x = x_of(nx)
    cuts = [4, 10]  # x = 0.225 and 0.525
    planted = np.stack([fits.g3_shape_on_cut(x, c) for c in cuts]) * (-0.77) ** 3
    planted[1] *= 2.0  # the other cut disagrees: the line fit must not see it
    g3 = symmetric(replicated(rng, planted, 0.002))
    line = fits.paper_line(x, cuts)
    assert line == (0, int(np.argmin(np.abs(x - 0.78))))
    fit = fits.jk_fit_dn3_line({"g3": g3}, x, cuts, *line)
    assert_recovers(fit, "dn3", -0.77)
    assert fit.full["n_points"] == nx - 2  # all a except a = b and a = c
    assert fits.paper_line(x, [10]) is None  # no cut near z = 0.23


def test_window_masks_and_job_table():
    nx = 10
    assert windows.g1_mask(nx, Window(2, 0)).tolist() == [False] * 2 + [True] * 6 + [False] * 2
    assert windows.g2_mask(nx, Window(0, 0)).sum() == nx * (nx - 1) / 2
    assert windows.g2_mask(nx, Window(0, 2)).sum() == (nx - 2) * (nx - 3) / 2
    assert windows.g2_mask(nx, Window(1, 0)).sum() == (nx - 2) * (nx - 3) / 2
    m = windows.g3_cut_mask(nx, 4, Window(0, 1))
    a, b = np.nonzero(m)
    assert np.all(b - a > 1) and np.all(np.abs(a - 4) > 1) and np.all(np.abs(b - 4) > 1)
    assert not windows.g3_cut_mask(nx, 0, Window(1, 0)).any()  # the cut itself is dropped
    assert windows.g3_line_mask(nx, 7, 2, Window(0, 0)).sum() == nx - 2
    assert windows.g3_line_mask(nx, 3, 2, Window(0, 1)).sum() == 0
    text = 'geometry = "cube"\n[analysis]\ndrop_slices = 1\ndrop_diagonal = 2\n'
    assert windows.options_from_job_toml(text) == {"drop_slices": 1, "drop_diagonal": 2}
    assert windows.options_from_job_toml('geometry = "cube"\n') == {}
    assert windows.options_from_job_toml("") == {}
    for bad in ("[analysis]\ndrop_slices = -1\n", "[analysis]\ndrop_diagonal = 1.5\n",
                "[analysis]\ndrop_slices = true\n", "analysis = 3\n", "not toml ==="):
        with pytest.raises(windows.WindowError):
            windows.options_from_job_toml(bad)


# --- goodness of fit -----------------------------------------------------------------------------

def test_relative_residual_reads_the_shape():
    x = x_of(30)
    line = -0.8 + 1.72 * x
    assert fits.fit_dn1(x, line)["rel_residual"] < 1e-12
    curved = line + 0.1 * np.sin(np.pi * x)
    expected = np.linalg.norm(curved - np.polyval(np.polyfit(x, curved, 1), x)) / np.linalg.norm(curved)
    assert np.isclose(fits.fit_dn1(x, curved)["rel_residual"], expected)


def test_correlated_chi2_is_calibrated_and_refuses_few_blocks(rng):
    """Data from the model with strongly correlated noise: the correlated chi^2 averages to its
    degrees of freedom (a bad shape gives a large one); with too few blocks it is omitted."""
    nx, n_blocks = 8, 30  # 30 blocks: the Hartlap factor (30 - 10)/29 = 0.69 matters
    x = x_of(nx)
    keep, A = fits.design_dn1(x)
    chi2s = []
    for _ in range(200):
        S = n_blocks * 4
        common = rng.normal(size=(S, 1)) * 0.05  # the same shift of every slice in a sample
        samples = (0.1 + 1.5 * x)[None] + common + 0.02 * rng.normal(size=(S, nx))
        sums = samples.reshape(n_blocks, 4, nx).sum(axis=1)
        g1 = jackknife(sums, [4] * n_blocks, lambda m: m)
        out = fits.correlated_chi2(A, g1.value[keep], g1.covariance(), n_blocks)
        chi2s.append(out["chi2"])
    assert out["dof"] == nx - 2 and out["note"] == ""
    assert 0.8 * (nx - 2) < np.mean(chi2s) < 1.2 * (nx - 2)
    bent = jackknife(sums + 0.05 * np.sin(np.pi * x) * 4, [4] * n_blocks, lambda m: m)
    assert fits.correlated_chi2(A, bent.value, bent.covariance(), n_blocks)["p_value"] < 1e-6
    few = fits.correlated_chi2(A, g1.value, g1.covariance(), 20)
    assert np.isnan(few["chi2"]) and "20 blocks for 8 points" in few["note"]
    assert "omitted" in fits.correlated_chi2(A[:2], g1.value[:2], g1.covariance()[:2, :2], 30)["note"]


def test_covariance_is_the_jackknife_error_squared_on_the_diagonal(rng):
    sizes = [5, 3, 4, 4, 6, 2, 5, 3]
    a = jackknife(rng.normal(size=(8, 3)), sizes, lambda m: m, key="a")
    b = jackknife(rng.normal(size=(6, 3)), [2] * 6, lambda m: m, key="b")
    assert np.allclose(np.diag(a.covariance()), a.error**2)
    s = combine([a, b], lambda u, v: u + v)
    assert np.allclose(s.covariance(), a.covariance() + b.covariance())


# --- single fits ---------------------------------------------------------------------------------

def test_dn1_and_intercept(rng):
    x = x_of(30)
    g1 = replicated(rng, -0.8 + 1.72 * x, 0.05)
    fit = fits.jk_fit_dn1({"g1": g1}, x)
    assert_recovers(fit, "dn1", 1.72)
    assert_recovers(fit, "intercept", -0.8)
    assert_recovers(fit, "dn1_wls", 1.72)  # no shape error: both agree


def test_dn1_errors_are_calibrated(rng):
    x = x_of(12)
    pulls = []
    for _ in range(60):
        g1 = replicated(rng, 0.2 + 1.5 * x, 0.2, n_blocks=10, per_block=3)
        fit = fits.jk_fit_dn1({"g1": g1}, x)
        pulls.append((fit.value["dn1"] - 1.5) / fit.error["dn1"])
    assert 0.6 < np.std(pulls) < 1.5 and abs(np.mean(pulls)) < 0.5


def test_dn2_per_size_ignores_the_diagonal(rng):
    x = x_of(16)
    planted = 1.3**2 * fits.g2_shape(x)
    planted[np.diag_indices(16)] += 0.5  # a contact term on a = b: not QSSEP, not fitted
    g2 = symmetric(replicated(rng, planted, 0.02))
    fit = fits.jk_fit_dn2({"g2": g2}, x)
    assert_recovers(fit, "dn2", 1.3)


def test_dn2_squared_is_not_negative(rng):
    x = x_of(8)
    g2 = replicated(rng, -0.5 * fits.g2_shape(x), 0.01)
    out = fits.fit_dn2(x, g2.value, err=g2.error)
    assert out["dn2"] == 0.0 and out["dn2_sq"] == 0.0 and out["dn2_wls"] == 0.0


def test_empty_windows_give_nan_not_errors():
    x = x_of(4)
    assert np.isnan(fits.fit_dn1(x, x, Window(2, 0))["dn1"])
    assert np.isnan(fits.fit_dn2(x, fits.g2_shape(x), Window(0, 3))["dn2"])
    assert np.isnan(fits.fit_dn3(x, np.zeros((1, 4, 4)), [1], Window(0, 2))["dn3"])


@pytest.mark.parametrize("sizes, beta, gamma", [([8, 12, 16, 24], 0.6, -3.0), ([10, 20], -0.8, 0.0)])
def test_dn2_extrapolation(rng, sizes, beta, gamma):
    dn = 1.43
    items = []
    for k, N in enumerate(sizes):
        x = x_of(N)
        f = fits.g2_shape(x)
        planted = dn**2 * f * (1 + beta / (dn**2 * N) + gamma / (dn**2 * N**2))
        g2 = replicated(rng, planted, 0.01, key=f"run{k}")
        items.append((N, x, symmetric(g2)))
    fit = fits.jk_fit_dn2_extrapolated(items)
    assert fit.full["n_params"] == min(3, len(sizes))
    assert_recovers(fit, "dn2", dn)
    assert_recovers(fit, "beta", beta)
    if len(sizes) >= 3:
        assert_recovers(fit, "gamma", gamma)
    else:
        assert fit.value["gamma"] == 0.0 and fit.error["gamma"] == 0.0
    # every run contributes to the error (independent data sets)
    assert len(fit.groups) == len(sizes)
    # the per-size fits are biased by the 1/N corrections, the extrapolation is not
    small = fits.jk_fit_dn2({"g2": items[0][2]}, items[0][1])
    assert abs(small.value["dn2"] - dn) > 4 * small.error["dn2"]


def test_dn2_extrapolation_with_one_size(rng):
    x = x_of(10)
    g2 = replicated(rng, 1.2**2 * fits.g2_shape(x), 0.01)
    fit = fits.jk_fit_dn2_extrapolated([(10, x, g2)])
    assert fit.full["n_params"] == 1 and fit.value["beta"] == 0.0
    assert_recovers(fit, "dn2", 1.2)


def test_dn3_extrapolation_recovers_a_planted_series(rng):
    """dn^(3)(N) = a + b/N planted in g3 at five sizes: per-size fits, then a + b/N + c/N^2."""
    a, b = -0.9, 1.5
    items, items2 = [], []
    for k, N in enumerate([8, 10, 12, 16, 20]):
        x = x_of(N)
        cuts = [int(0.25 * N), int(0.5 * N)]
        planted = np.stack([fits.g3_shape_on_cut(x, c) for c in cuts]) * (a + b / N) ** 3
        g3 = symmetric(replicated(rng, planted, 0.003, key=f"N{N}"))
        per_size = fits.jk_fit_dn3({"g3": g3}, x, cuts)
        items.append((N, per_size["dn3"]))
        if N in (10, 20):
            items2.append((N, per_size["dn3"]))
    fit, used = fits.jk_fit_size_series(items)
    assert used == [8, 10, 12, 16, 20] and fit.full["n_params"] == 3
    assert_recovers(fit, "limit", a)
    assert_recovers(fit, "b", b)
    assert_recovers(fit, "c", 0.0)
    assert len(fit.groups) == 5
    fit2, _ = fits.jk_fit_size_series(items2)  # two sizes: a + b/N only
    assert fit2.full["n_params"] == 2 and fit2.value["c"] == 0.0
    assert_recovers(fit2, "limit", a)
    one, _ = fits.jk_fit_size_series(items[:1])
    assert one.full["n_params"] == 1 and one.value["limit"] == items[0][1].value


def test_group_fits_extrapolate_every_order(rng):
    """The across-size protocol on planted runs: dn1(N) = 1.8 - 2/N, dn3 constant."""
    members = []
    for N in (8, 12, 16, 24):
        x = x_of(N)
        cuts = [int(0.25 * N)]
        g1 = replicated(rng, -0.7 + (1.8 - 2.0 / N) * x, 0.01, key=f"{N}a")
        g2 = symmetric(replicated(rng, 1.4**2 * fits.g2_shape(x), 0.005, key=f"{N}b"))
        g3 = symmetric(replicated(rng, (-0.8) ** 3 * fits.g3_shape_on_cut(x, cuts[0])[None],
                                  0.002, key=f"{N}c"))
        est = {"g1": g1, "g2": g2, "g3": g3}
        members.append((N, x, est, fits.run_fits(est, x, cuts, 12)))
    out = fits.group_fits(members)
    assert_recovers(out["dn2_extrapolated"], "dn2", 1.4)
    assert_recovers(out["series"]["dn1"][0], "limit", 1.8)
    assert_recovers(out["series"]["dn3"][0], "limit", -0.8)
    assert_recovers(out["series"]["dn3_line"][0], "limit", -0.8)
    assert set(out["grid"]) == set(GRID)
    assert_recovers(out["grid"][Window(1, 1)]["dn2_extrapolated"], "dn2", 1.4)


@pytest.mark.parametrize("dn3", [-0.77, 1.1])
def test_dn3_on_the_cuts_with_sign(rng, dn3):
    nx = 14
    x = x_of(nx)
    cuts = np.array([3, 7])
    planted = np.empty((2, nx, nx))
    for i, c in enumerate(cuts):
        planted[i] = fits.g3_shape_on_cut(x, c) * dn3**3
        planted[i][c, :] += 0.3  # coinciding indices: not fitted
        planted[i][:, c] += 0.3
        planted[i][np.diag_indices(nx)] -= 0.2
    g3 = replicated(rng, planted, 0.01)
    fit = fits.jk_fit_dn3({"g3": g3}, x, cuts)
    assert np.sign(fit.value["dn3"]) == np.sign(dn3)
    assert_recovers(fit, "dn3", dn3)
    assert fit.full["n_points"] == 2 * (nx - 1) * (nx - 2) / 2
    # the closed form and the general g_n agree on the shape used
    pts = np.stack(np.broadcast_arrays(x[:, None], x[None, :], x[3]), axis=-1)
    assert np.allclose(fits.g3_shape_on_cut(x, 3), qssep.g_closed(3, pts))


def test_power_law_exponents_and_sign(rng):
    sizes = [6, 8, 10, 14, 20]
    m2 = [replicated(rng, np.array(0.1 * N**1.0), 0.01 * N, key=N) for N in sizes]
    m3 = [replicated(rng, np.array(-0.02 * N**1.3), 0.001 * N, key=N) for N in sizes]
    f2 = fits.jk_fit_power_law(list(zip(sizes, m2)))
    f3 = fits.jk_fit_power_law(list(zip(sizes, m3)))
    assert_recovers(f2, "exponent", 1.0)
    assert_recovers(f3, "exponent", 1.3)
    assert f2.full["sign"] == 1 and f3.full["sign"] == -1
    assert len(f3.groups) == len(sizes)
    out = fits.fit_power_law([4], [1.0], [0.1])
    assert np.isnan(out["exponent"])


def test_lstsq_weights_use_the_errors():
    x = np.linspace(0, 1, 5)
    y = 2 * x + 1
    y_bad = y.copy()
    y_bad[2] += 10
    err = np.ones(5)
    err[2] = 1e6  # the outlier has a huge error: ignored by the weighted fit ...
    b, a = fits.lstsq([np.ones(5), x], y_bad, err)
    assert np.isclose(a, 2, atol=1e-4) and np.isclose(b, 1, atol=1e-4)
    b0, a0 = fits.lstsq([np.ones(5), x], y_bad)  # ... and counted once by OLS
    assert np.isclose(b0, 1 + 10 / 5) and np.isclose(a0, 2.0)


# --- transport ----------------------------------------------------------------------------------

def test_ohm_fit_and_mean_free_path(rng):
    from analysis import transport
    sizes = [6, 8, 10, 14]
    cube = [(N, N * N, N * N, replicated(rng, np.array(0.6 * N + 0.9), 0.05, key=f"c{N}"))
            for N in sizes]
    fit = transport.jk_fit_ohm("cube", cube)
    assert_recovers(fit, "sigma", 0.6)
    assert_recovers(fit, "offset", 0.9)
    assert_recovers(fit, "mean_free_path", 0.6)  # every channel open: ell = sigma
    half_open = [(N, A, A // 2, rep) for N, A, _, rep in cube]
    assert np.isclose(transport.jk_fit_ohm("cube", half_open).value["mean_free_path"],
                      2 * fit.value["mean_free_path"])
    # quasi-1d: 1/g = r0 + Nx / (sigma A), A = 16
    q1d = [(Nx, 16, 16, replicated(rng, np.array(1.0 / (0.05 + Nx / (0.5 * 16))), 0.01, key=f"q{Nx}"))
           for Nx in (20, 40, 60, 80)]
    fit = transport.jk_fit_ohm("quasi1d", q1d)
    assert_recovers(fit, "sigma", 0.5)
    assert_recovers(fit, "offset", 0.05)
    one = transport.jk_fit_ohm("cube", cube[:1])
    assert one.full["n_params"] == 1 and np.isclose(one.value["sigma"], cube[0][3].value / 6)
