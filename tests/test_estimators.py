"""Estimators on synthetic data with planted cumulants (tests/synthetic.py), and the jackknife
bias correction."""

import numpy as np
import pytest
from synthetic import Planted, block_sums, write_synthetic_file

from analysis.estimators import Replicated, combine, cumulants, jackknife, run_estimates
from analysis.io import ResultsError, discover, open_run

# --- the jackknife itself ------------------------------------------------------------------------

@pytest.mark.parametrize("sizes", [[4] * 6, [5, 3, 4, 4, 6, 2]])
def test_bias_correction_of_a_squared_mean(rng, sizes):
    """Planted mean 0, variance s2: E|xbar|^2 = s2/n; the corrected estimate is unbiased."""
    s2, reps = 2.0, 3000
    n = sum(sizes)
    raw, corrected = np.empty(reps), np.empty(reps)
    for r in range(reps):
        x = rng.normal(0.0, np.sqrt(s2), size=n)
        res = jackknife(block_sums({"x": x}, sizes)["x"], sizes, lambda m: m**2)
        raw[r], corrected[r] = res.full, res.value
    se_raw = raw.std() / np.sqrt(reps)
    se_cor = corrected.std() / np.sqrt(reps)
    assert abs(raw.mean() - s2 / n) < 4 * se_raw     # the plain estimate is biased by s2/n ...
    assert raw.mean() > 15 * se_raw
    assert abs(corrected.mean()) < 4 * se_cor         # ... the jackknife removes it
    assert se_cor < 0.2 * s2 / n


def test_jackknife_error_matches_the_spread(rng):
    """Over many replicas the jackknife variance averages to the true variance (nonlinear f)."""
    sizes, reps = [5, 3, 4, 4, 6, 2, 5, 3], 1500
    n = sum(sizes)
    vals, errs = np.empty(reps), np.empty(reps)
    for r in range(reps):
        x = rng.normal(1.0, 1.0, size=n)
        res = jackknife(block_sums({"x": x}, sizes)["x"], sizes, lambda m: np.exp(m))
        vals[r], errs[r] = res.value, res.error
    ratio = np.mean(errs**2) / vals.var()
    assert 0.8 < ratio < 1.25


def test_linear_functions_are_left_alone_and_errors_are_the_block_spread(rng):
    sizes = [3] * 7
    x = rng.normal(size=(21, 2))
    b = block_sums({"x": x}, sizes)["x"]
    res = jackknife(b, sizes, lambda m: m)
    assert np.allclose(res.full, x.mean(axis=0)) and np.allclose(res.value, res.full)
    block_means = b / 3
    assert np.allclose(res.error, block_means.std(axis=0, ddof=1) / np.sqrt(7))


def test_jackknife_checks_its_input():
    with pytest.raises(ValueError, match="at least 2 blocks"):
        jackknife(np.ones((1, 3)), [4], lambda m: m)
    with pytest.raises(ValueError, match="blocks"):
        jackknife(np.ones((3, 3)), [4, 4], lambda m: m)
    with pytest.raises(ValueError, match="at least one sample"):
        jackknife(np.ones((2, 3)), [4, 0], lambda m: m)


def test_combine_adds_independent_variances(rng):
    a = jackknife(rng.normal(size=(10, 1)), [1] * 10, lambda m: m[0])
    b = jackknife(rng.normal(size=(8, 1)), [1] * 8, lambda m: m[0], key="b")
    s = combine([a, b], lambda u, v: u + v)
    assert np.isclose(s.value, a.value + b.value)
    assert np.isclose(s.error, np.hypot(a.error, b.error))
    d = a.map(lambda u: 2 * u)  # same data set: fully correlated
    assert np.isclose(d.error, 2 * a.error)
    with pytest.raises(ValueError, match="disagree"):
        bad = Replicated(a.full, {0: (a.groups[0][0][:5], np.full(5, 5.0))})
        combine([a, bad], lambda u, v: u + v)


# --- the cumulant estimators on planted data -----------------------------------------------------

def test_estimators_recover_planted_cumulants(rng, tmp_path):
    planted = Planted(rng, Nx=5, Ny=3, Nz=2, cuts=[0.3, 0.6])
    sizes = [40] * 12 + [13]  # a short last block
    per_sample = planted.samples(rng, sum(sizes))
    path = write_synthetic_file(tmp_path / "cube_N5_W6.h5", planted, block_sums(per_sample, sizes), sizes,
                                m3_split=True)
    with open_run(path) as data:
        assert data.complete and data.samples == sum(sizes)
        est = run_estimates(data)
    exact = planted.exact()
    value, error = est.value, est.error
    for key in ("C1", "C2", "m2", "C3", "C3_imag", "m3", "map1", "map2", "conductance",
                "conductance_var", "fano", "m3_coinciding", "m3_distinct", "c3_sum_aac",
                "c3_sum_aaa"):
        v, e, x = np.asarray(value[key]), np.asarray(error[key]), np.asarray(exact[key])
        tiny = 1e-12 * max(np.abs(x).max(), 1e-300)  # entries that vanish exactly (Im C3 at a = b)
        assert np.all((e > 0) | (np.abs(x) <= tiny)), key
        pull = np.abs(v - x) / (e + tiny)
        assert pull.max() < 5.0, (key, pull.max())
    # the disconnected parts are not small here: forgetting them would be seen
    assert np.abs(est.full["C2"]).max() < 0.5 * np.abs(
        np.asarray(per_sample["tr_gg"]).mean(axis=0)).max() / planted.Np**2
    # rescaled cumulants (cube): g_n = N^(n-1) C_n
    assert np.allclose(value["g2"], 5 * value["C2"]) and np.allclose(value["g3"], 25 * value["C3"])
    # C2 symmetric, C3(a, b, c) = conj C3(b, a, c) hold sample by sample
    assert np.allclose(value["C2"], value["C2"].T)
    assert np.allclose(value["C3"], value["C3"].transpose(0, 2, 1))
    assert np.allclose(value["C3_imag"], -value["C3_imag"].transpose(0, 2, 1))


def test_m3_split_recovers_the_planted_parts(rng):
    """S2 = sum C3(a,a,c), S3 = sum C3(a,a,a) and m3 = distinct + coinciding, against the exact
    planted cumulants summed by brute force over the index triples (not by the estimator's
    inclusion-exclusion). 4000 samples make each disconnected term many errors large, so a
    missing or wrong term (or a missing conjugate) fails by far."""
    planted = Planted(rng, Nx=4, Ny=2, Nz=2, cuts=[0.5])
    planted.B *= 0.25
    lay = planted.layout
    sizes = [100] * 40
    sums = block_sums(planted.samples(rng, sum(sizes)), sizes)
    est = jackknife(sums, sizes, lambda M: cumulants(M, lay.n_perp, lay.orbit_size, lay.cut_slices))
    exact = planted.exact()
    for key in ("c3_sum_aac", "c3_sum_aaa", "m3_coinciding", "m3_distinct", "m3"):
        v, e = est.value[key], est.error[key]
        assert e > 0 and abs(v - exact[key]) < 5 * e, (key, v, e, exact[key])
    assert np.isclose(est.value["m3_distinct"] + est.value["m3_coinciding"], est.value["m3"])
    # without the optional fields there is no split (and no error)
    base = {k: v for k, v in sums.items() if k not in ("diag_tr_g_g2", "diag_tr_g3", "diag_kdiag_aa_ac")}
    plain = jackknife(base, sizes, lambda M: cumulants(M, lay.n_perp, lay.orbit_size, lay.cut_slices))
    assert "m3_distinct" not in plain.full and np.isclose(plain.value["m3"], est.value["m3"])


def test_bias_correction_matters_for_C2(rng):
    """Few samples: the plain C2 is biased low (products of means), the corrected one is not."""
    planted = Planted(rng, Nx=2, Ny=3, Nz=2, cuts=[0.5])
    exact = planted.exact()["C2"]
    lay = planted.layout
    sizes, reps = [2, 2, 2], 1500
    raw, cor = np.empty((reps, 2, 2)), np.empty((reps, 2, 2))
    for r in range(reps):
        sums = block_sums(planted.samples(rng, sum(sizes)), sizes)
        res = jackknife(sums, sizes, lambda M: cumulants(M, lay.n_perp, lay.orbit_size, lay.cut_slices)["C2"])
        raw[r], cor[r] = res.full, res.value
    se_raw = raw.std(axis=0) / np.sqrt(reps)
    se_cor = cor.std(axis=0) / np.sqrt(reps)
    bias_raw = (raw.mean(axis=0) - exact) / se_raw
    assert np.all(bias_raw < -8)                       # significantly biased (low) ...
    assert np.all(np.abs(cor.mean(axis=0) - exact) < 4 * se_cor)  # ... and corrected


# --- reading result files -------------------------------------------------------------------------

def _tiny_file(rng, path, done=None, valid=True, sizes=(4, 4, 4)):
    planted = Planted(rng, Nx=3, Ny=2, Nz=2, cuts=[0.3, 0.6])
    sizes = list(sizes)
    return write_synthetic_file(path, planted, block_sums(planted.samples(rng, sum(sizes)), sizes),
                                sizes, done=done, valid=valid)


def test_discover_refuses_missing_empty_and_incomplete(rng, tmp_path):
    with pytest.raises(ResultsError, match="does not exist"):
        discover(tmp_path / "nope")
    with pytest.raises(ResultsError, match="no result files"):
        discover(tmp_path)
    _tiny_file(rng, tmp_path / "cube_N3_W6.h5")
    _tiny_file(rng, tmp_path / "cube_N3_W7.h5", done=[1, 0, 1], valid=False)
    (tmp_path / "junk.h5").write_bytes(b"not hdf5")
    with pytest.raises(ResultsError) as err:
        discover(tmp_path)
    msg = str(err.value)
    assert "cube_N3_W7.h5" in msg and "2/3 blocks" in msg and "junk.h5" in msg
    assert "cube_N3_W6.h5" not in msg
    runs, notes = discover(tmp_path, allow_incomplete=True)
    try:
        assert sorted(r.path.name for r in runs) == ["cube_N3_W6.h5", "cube_N3_W7.h5"]
        partial = [r for r in runs if r.path.name == "cube_N3_W7.h5"][0]
        assert list(partial.done) == [0, 2] and partial.samples == 8 and not partial.complete
        assert any("junk.h5" in n for n in notes) and any("cube_N3_W7.h5" in n for n in notes)
    finally:
        for r in runs:
            r.close()


def test_only_done_blocks_count(rng, tmp_path):
    planted = Planted(rng, Nx=3, Ny=2, Nz=2, cuts=[0.5])
    sizes = [5, 5, 5, 5]
    sums = block_sums(planted.samples(rng, 20), sizes)
    sums_garbage = {k: v.copy() for k, v in sums.items()}
    for v in sums_garbage.values():
        v[1] = 1e6  # a block in flight: garbage, not done
    p = write_synthetic_file(tmp_path / "a.h5", planted, sums_garbage, sizes, done=[1, 0, 1, 1], valid=False)
    with open_run(p) as data:
        est = run_estimates(data)
    keep = [0, 2, 3]
    ref = jackknife({k: v[keep] for k, v in sums.items()}, [5, 5, 5],
                    lambda M: cumulants(M, 4, planted.layout.orbit_size, planted.layout.cut_slices)["C2"])
    assert np.allclose(est.value["C2"], ref.value) and np.allclose(est.error["C2"], ref.error)
