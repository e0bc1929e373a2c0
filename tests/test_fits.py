"""QSSEP fits recover planted dn (orders 1, 2, 3, the N -> infinity extrapolation) and exponents.

The synthetic data are per-sample profiles ``planted + noise``; the jackknife over their
blocks gives the Replicated estimates the fits consume, exactly as for real runs.
"""
import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from analysis import fits, qssep  # noqa: E402
from analysis.estimators import jackknife  # noqa: E402


def x_of(nx):
    return (np.arange(nx) + 0.5) / nx


def replicated(rng, planted, noise, n_blocks=12, per_block=5, key=0):
    """Jackknifed sample mean of ``planted + noise * N(0, 1)`` (per sample)."""
    S = n_blocks * per_block
    samples = planted[None] + noise * rng.normal(size=(S,) + planted.shape)
    sums = samples.reshape((n_blocks, per_block) + planted.shape).sum(axis=1)
    return jackknife(sums, [per_block] * n_blocks, lambda m: m, key=key)


def assert_recovers(rep, key, truth, k=4.0):
    v, e = rep.value[key], rep.error[key]
    assert e > 0, key
    assert abs(v - truth) < k * e, (key, v, e, truth)


def test_dn1_and_intercept(rng):
    x = x_of(30)
    g1 = replicated(rng, -0.8 + 1.72 * x, 0.05)
    fit = g1.map(lambda y: fits.fit_dn1(x, y, g1.error))
    assert_recovers(fit, "dn1", 1.72)
    assert_recovers(fit, "intercept", -0.8)
    assert 0.3 < fit.full["chi2_dof"] < 2.0
    # a profile that is not linear gives a bad chi2
    curved = replicated(rng, -0.8 + 1.72 * x + 0.3 * np.sin(np.pi * x), 0.05)
    assert curved.map(lambda y: fits.fit_dn1(x, y, curved.error)).full["chi2_dof"] > 5


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
    g2 = replicated(rng, planted, 0.02)
    g2 = g2.map(lambda m: (m + m.T) / 2)  # C2 is symmetric
    fit = fits.jk_fit_dn2({"g2": g2}, x)
    assert_recovers(fit, "dn2", 1.3)
    assert fit.full["chi2_dof"] < 3


def test_dn2_squared_is_not_negative(rng):
    x = x_of(8)
    g2 = replicated(rng, -0.5 * fits.g2_shape(x), 0.01)
    out = fits.fit_dn2(x, g2.value, g2.error)
    assert out["dn2"] == 0.0 and out["dn2_sq"] == 0.0


@pytest.mark.parametrize("sizes, beta, gamma", [([8, 12, 16, 24], 0.6, -3.0), ([10, 20], -0.8, 0.0)])
def test_dn2_extrapolation(rng, sizes, beta, gamma):
    dn = 1.43
    items = []
    for k, N in enumerate(sizes):
        x = x_of(N)
        f = fits.g2_shape(x)
        planted = dn**2 * f * (1 + beta / (dn**2 * N) + gamma / (dn**2 * N**2))
        g2 = replicated(rng, planted, 0.01, key=f"run{k}")
        items.append((N, x, g2.map(lambda m: (m + m.T) / 2)))
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


def test_weighted_lstsq_uses_the_errors():
    x = np.linspace(0, 1, 5)
    y = 2 * x + 1
    y_bad = y.copy()
    y_bad[2] += 10
    err = np.ones(5)
    err[2] = 1e6  # the outlier has a huge error: ignored
    (b, a), chi2 = fits.weighted_lstsq([np.ones(5), x], y_bad, err)
    assert np.isclose(a, 2, atol=1e-4) and np.isclose(b, 1, atol=1e-4) and chi2 < 1e-6
