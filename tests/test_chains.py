"""The QSSEP and dephasing chains (`anderson_mpi.engines.chains`) against exact finite-N statements.

The references (`tests/chain_reference.py`) are independent of the simulator: moment equations
derived by hand (reduced, QSSEP) and generically (Ito on the full second-moment tensor), the
closed forms of docs/theory.md §12, and the exact moment maps of
the discrete-time schemes. Statistical comparisons use i.i.d. trajectories: raw moments (plain
sample means, exact references) with standard errors, connected ones with the seed-block
jackknife of `analysis.estimators`. Thresholds are |z| < 4.5 over all entries compared (a few
dozen to a few hundred, correlated), so a correct simulator fails with probability < 1e-3.
"""

import numpy as np
import pytest
import scipy.linalg
import chain_reference as ref

from analysis.estimators import jackknife
from anderson_mpi.engines import chains
from anderson_mpi.engines.chains import ChainSetup, mode_matrices_from_G, simulate_block

Z_MAX = 4.5
HAVE_NUMBA = chains.jit_kernels() is not None


def _seeds(tag, n):
    return np.random.SeedSequence([20240601, tag]).spawn(n)


def _raw_moments(G):
    """Per-trajectory m_i = G_ii, P_ij = G_ij G_ji, B_ij = G_ii G_jj (real)."""
    d = np.einsum("sii->si", G).real
    P = (G * G.transpose(0, 2, 1)).real
    B = d[:, :, None] * d[:, None, :]
    return d, P, B


def _max_z(samples, expected):
    mean = samples.mean(axis=0)
    err = samples.std(axis=0, ddof=1) / np.sqrt(len(samples))
    ok = err > 1e-14
    assert np.all(np.abs(mean - expected)[~ok] < 1e-12)  # deterministic entries
    return float(np.max(np.abs(mean - expected)[ok] / err[ok]))


def _scheme_law(setup, stationary=False):
    """Exact (m, P, B) of the simulated QSSEP samples (after the setup's n_steps, or in the
    scheme's stationary state): the even- and odd-phase endings mixed."""
    scheme = ref.QssepScheme(setup.N, setup.D, setup.dt, setup.rate_left, setup.rate_right,
                             setup.n_left, setup.n_right)
    if stationary:
        m, P, B = scheme.stationary()
    else:
        m, P, B = scheme.evolve(setup.initial_density, setup.n_steps)
    state = (m[:, None].copy(), P[:, :, None].copy(), B[:, :, None].copy(), np.ones(1))
    tau = setup.D * setup.dt
    scheme._bond_layer(state, 0, tau / 2)
    scheme._boundary(state, setup.dt / 2)
    scheme._bond_layer(state, 1, tau / 2)
    odd = [x[..., 0] for x in state[:3]]
    return tuple((a + b) / 2 for a, b in zip((m, P, B), odd))


def _c1_c2(G, n_blocks=20):
    """Jackknife C1 (N,) and C2 (N, N) with errors from the trajectories (equal seed blocks)."""
    n, N, _ = G.shape
    per_block = n // n_blocks
    G = G[:n_blocks * per_block]
    d = np.einsum("sii->si", G).real
    fields = {"g": G, "pair": (G * G.transpose(0, 2, 1)).real, "d": d}
    sums = {k: v.reshape(n_blocks, per_block, *v.shape[1:]).sum(axis=1) for k, v in fields.items()}

    def cumulants(means):
        mean_g = means["g"]
        c2 = means["pair"] - (mean_g * mean_g.T).real
        return {"c1": means["d"], "c2": c2}

    rep = jackknife(sums, np.full(n_blocks, per_block), cumulants)
    return rep.value, rep.error


# ------------------------------------------------------------------------------------------
# the exact references: closed forms, two derivations, the discrete schemes
# ------------------------------------------------------------------------------------------

@pytest.mark.parametrize("N, D, rate_left, rate_right, n_left, n_right", [
    (2, 1.0, 2.0, 2.0, 0.0, 1.0), (5, 1.0, 2.0, 2.0, 0.0, 1.0), (9, 0.7, 0.3, 1.9, 0.2, 0.9),
    (12, 1.3, 5.0, 0.4, 1.0, 0.1), (33, 1.0, 1.0, 1.0, 0.0, 1.0)])
def test_qssep_stationary_closed_forms(N, D, rate_left, rate_right, n_left, n_right):
    m, P, B = ref.qssep_stationary(N, D, rate_left, rate_right, n_left, n_right)
    dn = n_right - n_left
    np.testing.assert_allclose(m, ref.qssep_mean_closed(N, D, rate_left, rate_right, n_left,
                                                        n_right), atol=1e-14)
    C2, Bc = ref.cumulants_from_moments(m, P, B)
    off = ~np.eye(N, dtype=bool)
    expected = ref.qssep_density_minus_pair_closed(N, D, rate_left, rate_right, dn)
    np.testing.assert_allclose((Bc - C2)[off], expected[off], atol=1e-14 * max(1, dn**2))
    if D / rate_left == 1 and D / rate_right == 1:
        np.testing.assert_allclose(P[off], ref.qssep_pair_closed_ab1(N, dn)[off], rtol=1e-11)
    # off-diagonal coherences: positive second moments, zero means (U(1))
    assert np.all(P[off] >= 0) and np.all(np.diag(C2) > 0)


def test_product_formula_fails_away_from_a_equal_b_equal_1():
    """The a = b = 1 product formula is specific: at a = b = 1/2 it is off by O(1/N)."""
    N = 8
    m, P, B = ref.qssep_stationary(N, 1.0, 2.0, 2.0, 0.0, 1.0)
    off = ~np.eye(N, dtype=bool)
    assert np.max(np.abs(P[off] / ref.qssep_pair_closed_ab1(N, 1.0)[off] - 1)) > 0.05


@pytest.mark.parametrize("N, D, rates, densities", [(3, 1.0, (2.0, 2.0), (0.0, 1.0)),
                                                     (5, 0.6, (0.5, 3.0), (0.3, 0.8))])
def test_reduced_equations_equal_generic_ito(N, D, rates, densities):
    m, P, B = ref.qssep_stationary(N, D, *rates, *densities)
    mean, second = ref.ito_moments(N, bond_D=D, rate_left=rates[0], rate_right=rates[1],
                                   n_left=densities[0], n_right=densities[1])
    P2, B2 = ref.pair_moments_from_tensor(second)
    np.testing.assert_allclose(np.diag(mean).real, m, atol=1e-14)
    np.testing.assert_allclose(P2, P, atol=1e-14)
    np.testing.assert_allclose(B2, B, atol=1e-14)
    # U(1): every moment outside the gauge-invariant sector vanishes
    N_ = N
    idx = np.indices((N_,) * 4).reshape(4, -1).T
    balanced = np.array([sorted((i, k)) == sorted((j, l)) for i, j, k, l in idx])
    assert np.max(np.abs(second.reshape(-1)[~balanced])) < 1e-14
    assert np.max(np.abs(mean - np.diag(np.diag(mean)))) < 1e-14


def _gauge_averaged(G0):
    """``E_theta[G_ij G_kl]`` over independent uniform site phases: the gauge-invariant part."""
    M = np.einsum("ij,kl->ijkl", G0, G0)
    i, j, k, l = np.indices(M.shape)
    keep = ((i == j) & (k == l)) | ((i == l) & (j == k))
    return np.where(keep, M, 0)


@pytest.mark.parametrize("tau", [0.05, 0.4, 2.0])
def test_tilt_law_reproduces_the_exact_bond_evolution(tau):
    """One bond, 3 sites (site 2 a spectator): the scheme's bond map with the spherical tilt law
    equals the exact Brownian bond evolution over tau / D on every invariant second moment."""
    N, D = 3, 1.0
    rng = np.random.default_rng(4)
    X = rng.standard_normal((N, N)) + 1j * rng.standard_normal((N, N))
    G0 = X @ X.conj().T
    G0 /= 1.1 * np.linalg.eigvalsh(G0).max()
    lin, _, K2 = ref.ito_generators(N, bond_D=D, bonds=[0], rate_left=0.0, rate_right=0.0,
                                    n_left=0.0, n_right=0.0)
    M = scipy.linalg.expm(tau / D * K2.toarray()) @ _gauge_averaged(G0).reshape(-1)
    P_exact, B_exact = ref.pair_moments_from_tensor(M.reshape((N,) * 4))
    mean_exact = scipy.linalg.expm(tau / D * lin.toarray()) @ np.diag(np.diag(G0)).reshape(-1)

    scheme = ref.QssepScheme(N, D, tau / D, 0.0, 0.0, 0.0, 0.0)
    d0 = np.diag(G0).real
    P0 = (G0 * G0.T).real
    B0 = np.outer(d0, d0)
    state = (d0[:, None].copy(), P0[:, :, None].copy(), B0[:, :, None].copy(), np.ones(1))
    scheme._bond_layer(state, 0, tau)
    np.testing.assert_allclose(state[0][:, 0], np.diag(mean_exact.reshape(N, N)).real, atol=1e-13)
    np.testing.assert_allclose(state[1][:, :, 0], P_exact, atol=1e-13)
    np.testing.assert_allclose(state[2][:, :, 0], B_exact, atol=1e-13)
    # the naive Gaussian bond does not
    gauss = ref.QssepScheme(N, D, tau / D, 0.0, 0.0, 0.0, 0.0, bond_moments=ref.gaussian_bond_moments)
    state = (d0[:, None].copy(), P0[:, :, None].copy(), B0[:, :, None].copy(), np.ones(1))
    gauss._bond_layer(state, 0, tau)
    assert np.max(np.abs(state[1][:, :, 0] - P_exact)) > 1e-4 * tau**2


@pytest.mark.parametrize("tau", [1e-3, 0.05, 0.1, 0.5, 2.0])
def test_tabulated_tilt_law_moments(tau):
    law = chains.TiltLaw.build(tau)
    for l in (1, 2, 3, 4):
        exact = np.exp(-l * (l + 1) * tau)
        got = law.moment(lambda x: scipy.special.eval_legendre(l, np.cos(x)))
        assert abs(got - exact) < 1e-6 * (1 - exact)


def test_tilt_sampler_follows_its_table():
    law = chains.TiltLaw.build(0.1)
    e = np.random.default_rng(1).standard_exponential(200_000)
    tilt = law.sample(e)
    for l in (1, 2):
        values = scipy.special.eval_legendre(l, np.cos(tilt))
        z = (values.mean() - np.exp(-l * (l + 1) * 0.1)) / (values.std() / np.sqrt(len(values)))
        assert abs(z) < Z_MAX
    assert tilt.min() >= 0 and tilt.max() <= np.pi


def test_discrete_scheme_converges_at_second_order():
    """The exact stationary law of the scheme approaches the continuum as dt^2 (mean: the
    coin-mixed endings are exact at boundary_rate = 2D; C2 and B: O(dt^2))."""
    N, D, rate = 10, 1.0, 2.0
    m, P, B = ref.qssep_stationary(N, D, rate, rate, 0.0, 1.0)
    errors = []
    for dt in (0.4, 0.2, 0.1):
        setup = ChainSetup.build("qssep", N, D=D, dt=dt)
        md, Pd, Bd = _scheme_law(setup, stationary=True)
        np.testing.assert_allclose(md, m, atol=1e-12)
        errors.append(max(np.abs(Pd - P).max(), np.abs(Bd - B).max()))
    ratios = np.array(errors[:-1]) / np.array(errors[1:])
    assert np.all((ratios > 3.2) & (ratios < 4.8)), ratios


# ------------------------------------------------------------------------------------------
# the simulator against the exact laws
# ------------------------------------------------------------------------------------------

def test_qssep_simulation_is_its_exact_discrete_law():
    """At a large dt the scheme's law is far from the continuum: the trajectories must follow
    the exact discrete law (tight) and visibly not the continuum one (the test can fail)."""
    setup = ChainSetup.build("qssep", 6, dt=1.0)
    G = simulate_block(setup, _seeds(1, 20000))
    samples = _raw_moments(G)
    exact = _scheme_law(setup)
    for x, e in zip(samples, exact):
        assert _max_z(x, e) < Z_MAX
    continuum = ref.qssep_stationary(6, 1.0, 2.0, 2.0, 0.0, 1.0)
    assert max(_max_z(x, e) for x, e in zip(samples[1:], continuum[1:])) > 8


def test_qssep_third_order_loops_follow_the_exact_discrete_law():
    """Third order: E[G_ab G_bc G_ca] of the trajectories against the scheme's exact law (its
    layers being the exact sub-flows on gauge-invariant moments: the tilt law is exact at every
    order, not only for the second moments), and visibly not the continuum at this dt."""
    N = 4
    setup = ChainSetup.build("qssep", N, dt=1.0)
    law = ref.qssep_scheme_third_moments(N, 1.0, setup.dt, setup.rate_left, setup.rate_right,
                                         0.0, 1.0, setup.initial_density, setup.n_steps)
    continuum = ref.qssep_third_moments_stationary(N, 1.0, setup.rate_left, setup.rate_right,
                                                   0.0, 1.0)
    a, b, c = np.indices((N,) * 3)
    loops = [ref.split_moment_vector(x, N)[0][a, b, b, c, c, a] for x in (law, continuum)]
    G = simulate_block(setup, _seeds(13, 40000))
    samples = np.einsum("sab,sbc,sca->sabc", G, G, G)
    for part in (np.real, np.imag):
        assert _max_z(part(samples), part(loops[0])) < Z_MAX
    assert _max_z(samples.real, loops[1].real) > 8


@pytest.mark.parametrize("rates, densities, vanishes", [((2.0, 2.0), (0.0, 1.0), True),
                                                       ((2.0, 2.0), (0.2, 0.9), True),
                                                       ((1.0, 3.0), (0.0, 1.0), False)])
def test_sum_of_third_cumulants_and_symmetry(rates, densities, vanishes):
    """The generic third-order equations reproduce the reduced second moments; the sum of C3
    over all sites vanishes exactly when both boundary rates are equal: C_n (n >= 2) depend on
    the densities only through dn (G - c 1 is the same model with densities shifted by c), and
    particle-hole G -> 1 - G with the mirror i -> N-1-i maps the centred model onto itself while
    reversing the sign of every third cumulant."""
    N = 5
    x = ref.qssep_third_moments_stationary(N, 1.0, *rates, *densities)
    M3, M2, mean = ref.split_moment_vector(x, N)
    m, P, B = ref.qssep_stationary(N, 1.0, *rates, *densities)
    np.testing.assert_allclose(np.einsum("abba->ab", M2).real, P, atol=1e-14)
    np.testing.assert_allclose(np.einsum("aabb->ab", M2).real, B, atol=1e-14)
    a, b, c = np.indices((N,) * 3)
    C3 = (M3[a, b, b, c, c, a] - M2[a, b, b, c] * mean[c, a] - M2[a, b, c, a] * mean[b, c]
          - M2[b, c, c, a] * mean[a, b] + 2 * mean[a, b] * mean[b, c] * mean[c, a])
    assert np.abs(C3).max() > 1e-5
    if vanishes:
        assert abs(C3.sum()) < 1e-11 * np.abs(C3).max()
    else:
        assert abs(C3.sum()) > 0.1 * np.abs(C3).max()


def test_qssep_mean_and_c2_at_the_default_dt():
    """Default dt: C1 and C2 against the exact finite-N stationary law of continuous-time QSSEP
    (the scheme's bias there is far below the errors)."""
    N, n_left, n_right = 8, 0.2, 0.9
    setup = ChainSetup.build("qssep", N, n_left=n_left, n_right=n_right)
    G = simulate_block(setup, _seeds(2, 4000))
    m, P, B = ref.qssep_stationary(N, 1.0, 2.0, 2.0, n_left, n_right)
    C2, _ = ref.cumulants_from_moments(m, P, B)
    value, error = _c1_c2(G)
    assert np.max(np.abs(value["c1"] - m) / error["c1"]) < Z_MAX
    assert np.max(np.abs(value["c2"] - C2) / error["c2"]) < Z_MAX
    # the mean profile is n_L + dn (i + 1/2)/N
    np.testing.assert_allclose(m, n_left + (n_right - n_left) * (np.arange(N) + 0.5) / N)
    # the errors resolve C2: its smallest entries are several sigma above zero
    assert np.min(C2 / error["c2"]) > 3


def test_default_dt_bias_is_small_and_second_order():
    """From the exact stationary law of the scheme at N = 16: the default dt leaves C1 exact,
    biases C2 by < 1e-3 relative at |a - b| >= 2 and by < 1e-2 anywhere (the largest: the
    contact terms a = b and |a - b| = 1 at the boundaries); halving dt divides it by ~4."""
    N = 16
    m, P, B = ref.qssep_stationary(N, 1.0, 2.0, 2.0, 0.0, 1.0)
    C2, _ = ref.cumulants_from_moments(m, P, B)
    far = np.abs(np.subtract.outer(np.arange(N), np.arange(N))) >= 2
    bias = []
    for factor in (1, 0.5):
        setup = ChainSetup.build("qssep", N)
        setup = ChainSetup.build("qssep", N, dt=setup.dt * factor)
        md, Pd, Bd = _scheme_law(setup, stationary=True)
        C2d, _ = ref.cumulants_from_moments(md, Pd, Bd)
        np.testing.assert_allclose(md, m, atol=1e-12)
        bias.append(np.abs(C2d / C2 - 1))
    assert bias[0][far].max() < 1e-3 and bias[0].max() < 1e-2
    assert 3.2 < bias[0].max() / bias[1].max() < 4.8


def test_halving_dt_changes_c1_c2_less_than_their_errors():
    N = 6
    base = ChainSetup.build("qssep", N)
    results = []
    for tag, dt in ((3, base.dt), (4, base.dt / 2)):
        setup = ChainSetup.build("qssep", N, dt=dt)
        results.append(_c1_c2(simulate_block(setup, _seeds(tag, 3000))))
    (v1, e1), (v2, e2) = results
    for name in ("c1", "c2"):
        z = np.abs(v1[name] - v2[name]) / np.sqrt(e1[name]**2 + e2[name]**2)
        assert np.max(z) < Z_MAX, name


def test_dephasing_simulation_is_its_exact_discrete_law():
    N, t, gamma, dt = 5, 1.0, 2.0, 0.4
    setup = ChainSetup.build("dephasing", N, gamma=gamma, hopping=t, dt=dt)
    mean, second = ref.dephasing_scheme_moments(N, t, gamma, dt, setup.rate_left, setup.rate_right,
                                                setup.n_left, setup.n_right,
                                                setup.initial_density, setup.n_steps)
    G = simulate_block(setup, _seeds(5, 12000))
    GG = np.einsum("sij,skl->sijkl", G, G)
    for samples, exact in ((G, mean), (GG, second)):
        for part in (np.real, np.imag):
            assert _max_z(part(samples), part(exact)) < Z_MAX
    # far from the continuum at this dt
    mean_c, second_c = ref.ito_moments(N, hamiltonian=ref.tight_binding(N, t), dephasing=gamma,
                                       rate_left=setup.rate_left, rate_right=setup.rate_right,
                                       n_left=0.0, n_right=1.0)
    assert _max_z(G.real, mean_c.real) > 8


def test_dephasing_continuum_tends_to_qssep_at_large_gamma():
    """Exact stationary moments: dephasing(gamma, t) -> QSSEP(D = 2 t^2/gamma), error ~ 1/gamma^2."""
    N, t = 5, 1.0
    diffs = []
    for gamma in (8.0, 16.0, 32.0):
        D = 2 * t**2 / gamma
        mean, second = ref.ito_moments(N, hamiltonian=ref.tight_binding(N, t), dephasing=gamma,
                                       rate_left=2 * D, rate_right=2 * D, n_left=0.0, n_right=1.0)
        P, B = ref.pair_moments_from_tensor(second)
        C2d, _ = ref.cumulants_from_moments(np.diag(mean).real, P, B)
        m, Pq, Bq = ref.qssep_stationary(N, D, 2 * D, 2 * D, 0.0, 1.0)
        C2q, _ = ref.cumulants_from_moments(m, Pq, Bq)
        diffs.append(max(np.abs(np.diag(mean).real - m).max(), np.abs(C2d / C2q - 1).max()))
    ratios = np.array(diffs[:-1]) / np.array(diffs[1:])
    assert np.all((ratios > 3.5) & (ratios < 4.5)), ratios
    assert diffs[-1] < 5e-3


def test_dephasing_simulation_at_large_gamma_matches_qssep():
    """gamma = 16: mean profile and C2 of the simulated dephasing chain against exact QSSEP with
    D = 2 t^2/gamma (their exact difference, ~1% of C2 with this dt, is below the errors)."""
    N, t, gamma = 4, 1.0, 16.0
    setup = ChainSetup.build("dephasing", N, gamma=gamma, hopping=t, dt=0.025)
    D = 2 * t**2 / gamma
    m, P, B = ref.qssep_stationary(N, D, setup.rate_left, setup.rate_right, 0.0, 1.0)
    C2, _ = ref.cumulants_from_moments(m, P, B)
    G = simulate_block(setup, _seeds(6, 2000))
    value, error = _c1_c2(G)
    assert np.max(np.abs(value["c1"] - m) / error["c1"]) < Z_MAX
    assert np.max(np.abs(value["c2"] - C2) / error["c2"]) < Z_MAX


# ------------------------------------------------------------------------------------------
# reproducibility, validation, the pipeline's layout
# ------------------------------------------------------------------------------------------

BACKENDS = ["numpy"] + (["numba"] if HAVE_NUMBA else [])


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("model, keys", [("qssep", {"D": 0.8}), ("dephasing", {"gamma": 1.5})])
def test_a_sample_does_not_depend_on_its_block(model, keys, backend, monkeypatch):
    setup = ChainSetup.build(model, 7, relax_time=15.0, **keys)
    seeds = _seeds(7, 6)
    block = simulate_block(setup, seeds, backend=backend)
    monkeypatch.setattr(chains, "_NUMPY_BATCH", 4)   # a block split into batches
    np.testing.assert_allclose(simulate_block(setup, seeds, backend=backend), block, atol=1e-13,
                               rtol=0)
    alone = simulate_block(setup, seeds[4:5], backend=backend)
    reordered = simulate_block(setup, [seeds[4], seeds[0], seeds[2]], backend=backend)
    np.testing.assert_allclose(alone[0], block[4], atol=1e-13, rtol=0)
    np.testing.assert_allclose(reordered[0], block[4], atol=1e-13, rtol=0)
    np.testing.assert_allclose(reordered[1], block[0], atol=1e-13, rtol=0)
    # different seeds, different trajectories
    assert np.abs(block[0] - block[1]).max() > 1e-3


@pytest.mark.skipif(not HAVE_NUMBA, reason="numba not installed")
@pytest.mark.parametrize("model, keys", [("qssep", {"D": 1.3}), ("dephasing", {"gamma": 2.0})])
@pytest.mark.parametrize("N", [2, 3, 8])
def test_numba_and_numpy_give_the_same_samples(model, keys, N):
    setup = ChainSetup.build(model, N, relax_time=20.0, **keys)
    seeds = _seeds(8, 9)
    np.testing.assert_allclose(simulate_block(setup, seeds, backend="numba"),
                               simulate_block(setup, seeds, backend="numpy"), atol=1e-13, rtol=0)


@pytest.mark.skipif(not HAVE_NUMBA, reason="numba not installed")
def test_numba_kernels_work_without_a_writable_cache(monkeypatch):
    """A read-only install with no user cache directory: numba cannot cache, the kernels are
    compiled in the process instead of failing at import."""
    import importlib

    import numba.core.caching

    from anderson_mpi.engines import _chain_jit
    monkeypatch.setattr(numba.core.caching.CacheImpl, "_locator_classes", [])
    fresh = importlib.reload(_chain_jit)
    try:
        setup = ChainSetup.build("qssep", 4, relax_time=1.0)
        seeds = _seeds(12, 2)
        G = simulate_block(setup, seeds, backend="numba")
        np.testing.assert_allclose(G, simulate_block(setup, seeds, backend="numpy"), atol=1e-13)
        assert fresh.qssep_chunk._cache.__class__.__name__ == "NullCache"
    finally:
        monkeypatch.undo()
        importlib.reload(_chain_jit)


@pytest.mark.parametrize("model, keys, field", [
    ("dephasing", {"gamma": -1.0}, "gamma"),
    ("qssep", {"dt": 0.0}, "dt"),
    ("qssep", {"dt": -0.1}, "dt"),
    ("qssep", {"n_left": -0.1}, "n_left"),
    ("dephasing", {"n_right": 1.5}, "n_right"),
    ("qssep", {"gamma": 1.0}, "gamma"),
    ("qssep", {"hopping": 1.0}, "hopping"),
    ("dephasing", {"D": 1.0}, "D"),
    ("qssep", {"D": 0.0}, "D"),
    ("qssep", {"D": float("nan")}, "D"),
    ("qssep", {"boundary_rate": 0.0}, "boundary_rate"),
    ("qssep", {"boundary_rate": (1.0, 2.0, 3.0)}, "boundary_rate"),
    ("qssep", {"relax_time": -1.0}, "relax_time"),
    ("dephasing", {"hopping": (1.0, 0.4, 0.4)}, "hopping"),
    ("dephasing", {"gamma": 0.0}, "boundary_rate"),
    ("dephasing", {"gamma": 0.0, "boundary_rate": 1.0, "dt": 0.1}, "relax_time"),
    ("qssep", {"N": 1}, "N"),
    ("qssep", {"N": 4.0}, "N"),
    ("anderson", {}, "model"),
])
def test_bad_keys_are_refused_in_one_line(model, keys, field):
    keys = dict(keys)
    N = keys.pop("N", 6)
    with pytest.raises(ValueError) as info:
        ChainSetup.build(model, N, **keys)
    message = str(info.value)
    assert message.startswith(f"{field}:") and "\n" not in message


def test_setup_defaults():
    setup = ChainSetup.build("qssep", 10, D=2.0)
    assert setup.rate_left == setup.rate_right == 4.0
    L = 10 - 1 + 0.5 + 0.5
    assert setup.L == pytest.approx(L)
    assert setup.relax_time == pytest.approx(5 * L**2 / (np.pi**2 * 2.0))
    assert setup.dt == pytest.approx(chains.DEFAULT_DT_QSSEP / 2.0)
    assert setup.n_steps == int(np.ceil(setup.relax_time / setup.dt - 1e-9))
    deph = ChainSetup.build("dephasing", 10, gamma=4.0, hopping=2.0)
    assert deph.D_eff == pytest.approx(2.0) and deph.rate_left == pytest.approx(4.0)
    assert deph.dt == pytest.approx(chains.DEFAULT_DT_DEPHASING / (4.0 + 4.0 + 1.0))
    # a correlation matrix goes in unchanged when no step is asked for
    start = simulate_block(ChainSetup.build("qssep", 5, relax_time=0.0), _seeds(9, 2))
    np.testing.assert_array_equal(start[1], np.diag(ChainSetup.build("qssep", 5).initial_density))


def test_mode_matrices_reconstruct_G():
    setup = ChainSetup.build("qssep", 9, relax_time=30.0)
    G = simulate_block(setup, _seeds(10, 5))
    phi = mode_matrices_from_G(G)
    assert phi.shape == (5, 9, 1, 9)
    rebuilt = np.einsum("sam,sbm->sab", phi[:, :, 0, :], phi[:, :, 0, :].conj())
    assert np.abs(rebuilt - G).max() < 1e-12
    single = mode_matrices_from_G(G[2])
    assert single.shape == (9, 1, 9)
    assert np.abs(single[:, 0, :] @ single[:, 0, :].conj().T - G[2]).max() < 1e-12
    eigenvalues = np.linalg.eigvalsh(G)
    assert eigenvalues.min() > -1e-12 and eigenvalues.max() < 1 + 1e-12
    with pytest.raises(ValueError, match="not a correlation matrix"):
        mode_matrices_from_G(2.0 * np.eye(3))
    with pytest.raises(ValueError, match="not a correlation matrix"):
        mode_matrices_from_G(-0.01 * np.eye(3))


def test_mode_matrices_feed_the_observables():
    """The registry's engine (`anderson_mpi.make_engine`) through the observables with N_perp = 1
    and S = I: Tr G_aa, Tr(G_ab G_ba), Tr G^3 of the trajectory's G; no transport fields."""
    import anderson_mpi as am
    from anderson_mpi.observables import make_layout, sample_observables

    N = 6
    setup = ChainSetup.build("dephasing", N, relax_time=10.0)
    G = simulate_block(setup, _seeds(11, 1))[0]
    modes = am.make_engine("dephasing", setup).solve_block(_seeds(11, 1))[0]
    assert np.array_equal(modes.signature, np.ones(N)) and modes.transmission_right is None
    obs = sample_observables(modes, make_layout(N, 1, 1, (1.0, 0.0, 0.0), cuts=[0.5], transport=False))
    assert "g" not in obs and "fano_num" not in obs
    np.testing.assert_allclose(obs["tr_g"], np.diag(G).real, atol=1e-12)
    np.testing.assert_allclose(obs["tr_gg"], (G * G.T).real, atol=1e-12)
    np.testing.assert_allclose(obs["tr_g3"], np.trace(G @ G @ G).real, atol=1e-12)
