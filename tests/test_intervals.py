"""Interval sums (anderson_mpi.observables.intervals) against brute force over all slice tuples.

Every per-sample field is rebuilt here from dense slice blocks of Gneq in the transverse Fourier
basis: a word's value on an interval is the sum over all slice tuples (or over the pairwise
distinct ones) of the trace of its block product, with the means R, R1, R2 taken from the
previous samples exactly as the fields define them. With probe sets that form an orthonormal
basis of each slice the probe estimates are exact traces, so they must agree to rounding; a
random unitary basis checks that the estimates are quadratic forms ``z^+ A z`` (then any probe
distribution with E[z z^+] = 1 is unbiased). The assembly (block sums -> m_n(x)) is checked
against the connected sums evaluated tuple by tuple with the same estimator definitions, and
the unbiasedness of the running-mean and sample-pair terms exactly, by enumerating every
sequence of samples drawn from a finite ensemble closed under the transverse symmetries.
"""
import itertools

import numpy as np
import pytest

import anderson_mpi as am
from analysis.intervals import interval_integral, interval_sums, interval_zero
from anderson_mpi.observables import k_orbits
from anderson_mpi.observables.intervals import (IntervalCarry, draw_probes, field_shapes,
                                                interval_block_sums, interval_lengths,
                                                interval_observables)
from anderson_mpi.system import transverse_fft

WORDS = {  # field -> (operators around the loop, count); g = this sample, t = the previous one
    "rgg": ("R g g", "iv_n1"), "rggg": ("R g g g", "iv_n1"), "ggtt": ("g g t t", "iv_n1"),
    "gtgt": ("g t g t", "iv_n1"), "rggr": ("R2 g g R1", "iv_n2"), "rgrg": ("R2 g R1 g", "iv_n2"),
}


# --- brute force ------------------------------------------------------------------------------

def fourier_blocks(phi_k, s):
    """g[a, b] = G~_ab = phi_k[a] S phi_k[b]^+ (Nx, Nx, Np, Np)."""
    return np.einsum("akm,m,blm->abkl", phi_k, s, phi_k.conj())


def mean_k_of(g, orbit_index, n_orb):
    diag = np.einsum("abkk->abk", g)
    out = np.zeros(g.shape[:2] + (n_orb,), dtype=complex)
    for o in range(n_orb):
        out[:, :, o] = diag[:, :, orbit_index == o].sum(axis=2)
    return out


def mean_blocks(mean_k, orbit_index, orbit_size):
    """Dense k-diagonal blocks of the orbit-averaged mean, made Hermitian (as the fields do)."""
    r = mean_k[:, :, orbit_index] / orbit_size[orbit_index]
    r = 0.5 * (r + r.transpose(1, 0, 2).conj())
    nx, _, n_perp = r.shape
    out = np.zeros((nx, nx, n_perp, n_perp), dtype=complex)
    idx = np.arange(n_perp)
    out[:, :, idx, idx] = r
    return out


def loop_tensor(*ops):
    """T[a1, .., an] = Tr(X1_{a1 a2} X2_{a2 a3} .. Xn_{an a1})."""
    if len(ops) == 2:
        return np.einsum("abij,baji->ab", *ops)
    if len(ops) == 3:
        return np.einsum("abij,bcjk,caki->abc", *ops)
    return np.einsum("abij,bcjk,cdkl,dali->abcd", *ops, optimize=True)


def distinct_mask(nx, order):
    grids = np.meshgrid(*[np.arange(nx)] * order, indexing="ij")
    mask = np.ones((nx,) * order, dtype=bool)
    for i, j in itertools.combinations(range(order), 2):
        mask &= grids[i] != grids[j]
    return mask


def interval_sum(tensor, L, distinct):
    box = tensor[(slice(0, L),) * tensor.ndim]
    if distinct:
        box = box * distinct_mask(L, tensor.ndim)
    return box.sum()


def brute_fields(g, t, means, lengths):
    """Every word field of one sample from dense blocks (module docstring). ``means`` holds the
    dense blocks ``R``, ``R1``, ``R2`` (or None where the sample has no such previous samples)."""
    ops = {"g": g, "t": t, **means}
    out = {}
    g3, g4 = loop_tensor(g, g, g), loop_tensor(g, g, g, g)
    out["iv_tr3"] = np.array([interval_sum(g3, L, False).real for L in lengths])
    out["iv_tr4"] = np.array([interval_sum(g4, L, False).real for L in lengths])
    out["iv_p3"] = np.array([interval_sum(g3, L, False) for L in lengths])
    out["iv_p4"] = np.array([interval_sum(g4, L, False) for L in lengths])
    out["iv_d3"] = np.array([interval_sum(g3, L, True) for L in lengths])
    out["iv_d4"] = np.array([interval_sum(g4, L, True) for L in lengths])
    for name, (word, _) in WORDS.items():
        factors = [ops[f] for f in word.split()]
        if any(f is None for f in factors):
            out["iv_" + name] = np.zeros(len(lengths), dtype=complex)
            out["iv_d_" + name] = np.zeros(len(lengths), dtype=complex)
            continue
        tensor = loop_tensor(*factors)
        out["iv_" + name] = np.array([interval_sum(tensor, L, False) for L in lengths])
        out["iv_d_" + name] = np.array([interval_sum(tensor, L, True) for L in lengths])
    return out


def basis_probes(nx, n_perp, rng=None):
    """Probe sets forming an orthonormal basis of every slice (scaled by sqrt(Np)): standard
    basis, or a random unitary per slice."""
    probes = np.empty((n_perp, nx, n_perp), dtype=complex)
    for a in range(nx):
        if rng is None:
            basis = np.eye(n_perp)
        else:
            basis, _ = np.linalg.qr(rng.normal(size=(n_perp, n_perp)) + 1j * rng.normal(size=(n_perp, n_perp)))
        probes[:, a, :] = np.sqrt(n_perp) * basis.T
    return probes


def assert_close(obs, ref, names=None, tol=1e-10):
    for name in (names or ref):
        got, want = np.asarray(obs[name]), np.asarray(ref[name])
        scale = max(1.0, float(np.abs(want).max(initial=0.0)))
        err = float(np.abs(got - want).max(initial=0.0))
        assert err < tol * scale, (name, err, scale, got, want)


def block_means(prev_mean_ks, orbit_index, orbit_size):
    """Dense R (all previous), R1 (the last), R2 (those before it) of one sample."""
    n = len(prev_mean_ks)
    means = {"R": None, "R1": None, "R2": None}
    if n >= 1:
        means["R"] = mean_blocks(sum(prev_mean_ks) / n, orbit_index, orbit_size)
    if n >= 2:
        means["R1"] = mean_blocks(prev_mean_ks[-1], orbit_index, orbit_size)
        means["R2"] = mean_blocks(sum(prev_mean_ks[:-1]) / (n - 1), orbit_index, orbit_size)
    return means


def real_samples(shape, hopping, n, seed):
    Nx, Ny, Nz = shape
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        modes = am.mode_matrices(rng.uniform(-3, 3, shape), hopping)
        out.append((transverse_fft(modes.phi, Ny, Nz, axis=1), modes.signature))
    return out


SHAPES = [
    ((4, 3, 3), (1.0, 0.4, 0.4)),   # cube, y <-> z orbits
    ((5, 2, 2), (1.0, 0.4, 0.4)),   # quasi-1d, transverse size 2
    ((4, 3, 3), (1.0, 1.0, 1.0)),   # evanescent channels: M < 2 N_perp
    ((5, 3, 2), (1.0, 0.4, 0.3)),   # quasi-1d, Ny != Nz
]
GRID = (0.3, 0.5, 0.75, 1.0)


@pytest.mark.parametrize("shape, hopping", SHAPES)
@pytest.mark.parametrize("random_basis", [False, True])
def test_fields_equal_brute_force(shape, hopping, random_basis, rng):
    Nx, Ny, Nz = shape
    n_perp = Ny * Nz
    orbit_index, orbit_size = k_orbits(Ny, Nz, hopping)
    n_orb = len(orbit_size)
    lengths = interval_lengths(Nx, GRID)
    samples = real_samples(shape, hopping, 4, seed=11)
    if hopping[1] == 1.0:
        assert samples[0][0].shape[2] < 2 * n_perp  # the case tests evanescent channels
    carry, previous_g, prev_mean_ks = None, None, []
    for phi_k, s in samples:
        g = fourier_blocks(phi_k, s)
        mean_k = mean_k_of(g, orbit_index, n_orb)
        probes = basis_probes(Nx, n_perp, rng if random_basis else None)
        obs, new_carry = interval_observables(phi_k, s, lengths, probes, orbit_index, orbit_size,
                                              mean_k, previous=carry)
        ref = brute_fields(g, previous_g, block_means(prev_mean_ks, orbit_index, orbit_size), lengths)
        assert_close(obs, ref)
        assert obs["iv_n1"] == (len(prev_mean_ks) >= 1) and obs["iv_n2"] == (len(prev_mean_ks) >= 2)
        carry, previous_g = new_carry, g
        prev_mean_ks.append(mean_k)


def synthetic_samples(rng, Nx, n_perp, widths):
    """Mode matrices of any width with unsorted signatures: the fields depend on G = Phi S Phi^+
    only (the width may change between samples of a block)."""
    out = []
    for width in widths:
        phi_k = rng.normal(size=(Nx, n_perp, width)) + 1j * rng.normal(size=(Nx, n_perp, width))
        s = rng.choice([-1.0, 1.0], size=width)
        s[:2] = [-1.0, 1.0]
        out.append((phi_k, s))
    return out


def test_any_width_and_unsorted_signature(rng):
    Nx, Ny, Nz = 5, 3, 2
    n_perp = Ny * Nz
    orbit_index, orbit_size = k_orbits(Ny, Nz, (1.0, 0.4, 0.3))
    lengths = interval_lengths(Nx, GRID)
    carry, previous_g, prev_mean_ks = None, None, []
    for phi_k, s in synthetic_samples(rng, Nx, n_perp, (7, 9, 4, 8)):
        g = fourier_blocks(phi_k, s)
        mean_k = mean_k_of(g, orbit_index, len(orbit_size))
        obs, carry = interval_observables(phi_k, s, lengths, basis_probes(Nx, n_perp, rng), orbit_index,
                                          orbit_size, mean_k, previous=carry)
        assert_close(obs, brute_fields(g, previous_g, block_means(prev_mean_ks, orbit_index, orbit_size),
                                       lengths))
        previous_g = g
        prev_mean_ks.append(mean_k)


def test_shared_grams_and_slice_weights(rng):
    """The slice Grams of the base observables give the same fields; probing a subset of slices
    with weights adds up: two complementary subsets sum to the full probe estimate."""
    from anderson_mpi.observables.kernels import slice_grams_lower
    shape, hopping = (5, 2, 2), (1.0, 0.4, 0.4)
    Nx, Ny, Nz = shape
    orbit_index, orbit_size = k_orbits(Ny, Nz, hopping)
    lengths = interval_lengths(Nx, GRID)
    samples = real_samples(shape, hopping, 3, seed=3)
    probes = draw_probes(rng, Nx, Ny * Nz, n_sets=2)
    carries = [None, None, None]
    prev_carry = None
    for phi_k, s in samples:
        mean_k = mean_k_of(fourier_blocks(phi_k, s), orbit_index, len(orbit_size))
        shared, _ = interval_observables(phi_k, s, lengths, probes, orbit_index, orbit_size, mean_k,
                                         previous=carries[0], gram_lower=slice_grams_lower(phi_k))
        full, carries[0] = interval_observables(phi_k, s, lengths, probes, orbit_index, orbit_size,
                                                mean_k, previous=carries[0])
        for name in full:
            assert np.allclose(shared[name], full[name], rtol=1e-12, atol=1e-12), name
        subset = np.array([1.0, 0, 1.0, 0, 0])
        part1, carries[1] = interval_observables(phi_k, s, lengths, probes, orbit_index, orbit_size,
                                                 mean_k, previous=carries[1], slice_weights=subset)
        part2, carries[2] = interval_observables(phi_k, s, lengths, probes, orbit_index, orbit_size,
                                                 mean_k, previous=carries[2], slice_weights=1 - subset)
        for name, (shape_, dtype, _) in field_shapes(len(lengths)).items():
            if name in ("iv_tr3", "iv_tr4", "iv_n1", "iv_n2"):
                assert np.array_equal(part1[name], full[name]), name
            else:
                assert np.allclose(part1[name] + part2[name], full[name], rtol=1e-10, atol=1e-10), name
        # the pair words on a weighted subset of the slices: the others do not change, and two
        # complementary subsets add up
        pair1, _ = interval_observables(phi_k, s, lengths, probes, orbit_index, orbit_size, mean_k,
                                        previous=prev_carry, pair_weights=2 * subset)
        pair2, _ = interval_observables(phi_k, s, lengths, probes, orbit_index, orbit_size, mean_k,
                                        previous=prev_carry, pair_weights=2 * (1 - subset))
        for name in full:
            paired = any(w in name for w in ("ggtt", "gtgt", "rggr", "rgrg"))
            if paired:
                assert np.allclose(pair1[name] + pair2[name], 2 * full[name], rtol=1e-10, atol=1e-10), name
            else:
                assert np.array_equal(pair1[name], full[name]), name
        prev_carry = carries[0]


# --- the assembly: block sums -> m_n(x) -------------------------------------------------------

def brute_interval_sums(gs, mean_ks, orbit_index, orbit_size, lengths, n_perp):
    """m2, m3, m4 (total and distinct) as explicit sums over slice tuples of C_n, with every
    partition term estimated as the fields and `interval_sums` define it: moments and words
    averaged over the samples that have the previous samples they need, products of means from
    the mean over all samples of mean_k."""
    n = len(gs)
    m_all = mean_blocks(sum(mean_ks) / n, orbit_index, orbit_size)
    t2 = sum(loop_tensor(g, g) for g in gs) / n
    t3 = sum(loop_tensor(g, g, g) for g in gs) / n
    t4 = sum(loop_tensor(g, g, g, g) for g in gs) / n
    words = {name: [] for name in WORDS}
    for i, g in enumerate(gs):
        means = block_means(mean_ks[:i], orbit_index, orbit_size)
        ops = {"g": g, "t": gs[i - 1] if i else None, **means}
        for name, (word, _) in WORDS.items():
            factors = [ops[f] for f in word.split()]
            if all(f is not None for f in factors):
                words[name].append(loop_tensor(*factors))
    w = {name: sum(v) / len(v) for name, v in words.items()}
    mean_loop = {k: loop_tensor(*([m_all] * k)) for k in (2, 3, 4)}
    c2 = (t2 - mean_loop[2]) / n_perp**2
    # rot(T, k)[i_0, i_1, ..] = T[i_k, i_k+1, ..]: the partition of the loop that the word's
    # rotation by k describes, tuple by tuple
    rot = lambda x, k: np.moveaxis(x, list(range(x.ndim)), [(i + k) % x.ndim for i in range(x.ndim)])  # noqa: E731
    c3 = (t3 - sum(rot(w["rgg"], k) for k in range(3)) + 2 * mean_loop[3]) / n_perp**3
    c4 = (t4 - sum(rot(w["rggg"], k) for k in range(4)) - w["ggtt"] - rot(w["ggtt"], 1) - w["gtgt"]
          + 2 * sum(rot(w["rggr"], k) for k in range(4)) + 2 * (w["rgrg"] + rot(w["rgrg"], 1))
          - 6 * mean_loop[4]) / n_perp**4
    out = {}
    for order, c in ((2, c2), (3, c3), (4, c4)):
        out[f"m{order}"] = np.array([interval_sum(c, L, False).real for L in lengths])
        out[f"m{order}_distinct"] = np.array([interval_sum(c, L, True).real for L in lengths])
    return out


@pytest.mark.parametrize("shape, hopping", SHAPES[:3])
def test_interval_sums_equal_tuple_sums(shape, hopping):
    """With basis probes the assembled m_n(x) equal the tuple-by-tuple connected sums (the
    rotation of each partition is applied to the tuple tensor, not assumed)."""
    from analysis.estimators import Means
    from anderson_mpi.observables import make_layout, sample_observables
    Nx, Ny, Nz = shape
    n_perp = Ny * Nz
    orbit_index, orbit_size = k_orbits(Ny, Nz, hopping)
    lengths = interval_lengths(Nx, GRID)
    layout = make_layout(Nx, Ny, Nz, hopping, [0.5])
    rng = np.random.default_rng(7)
    sums, carry, gs, mean_ks = None, None, [], []
    for i in range(5):
        modes = am.mode_matrices(rng.uniform(-3, 3, shape), hopping)
        phi_k = transverse_fft(modes.phi, Ny, Nz, axis=1)
        base = sample_observables(modes, layout)
        obs, carry = interval_observables(phi_k, modes.signature, lengths, basis_probes(Nx, n_perp),
                                          orbit_index, orbit_size, base["mean_k"], previous=carry)
        obs.update(base)
        sums = obs if sums is None else {k: sums[k] + v for k, v in obs.items()}
        gs.append(fourier_blocks(phi_k, modes.signature))
        mean_ks.append(mean_k_of(gs[-1], orbit_index, len(orbit_size)))
        assert np.allclose(mean_ks[-1], base["mean_k"], atol=1e-12)
    M = Means({k: np.asarray(v) / 5 for k, v in sums.items()}, 5)
    est = interval_sums(M, n_perp, orbit_size, lengths)
    ref = brute_interval_sums(gs, mean_ks, orbit_index, orbit_size, lengths, n_perp)
    for key, value in ref.items():
        assert np.allclose(est[key], value, rtol=1e-9, atol=1e-12), (key, est[key], value)
        if key.endswith("distinct"):
            total = key[:2]
            assert np.allclose(est[total + "_coinciding"], ref[total] - value, rtol=1e-9, atol=1e-12)
    assert np.allclose(est["x"], lengths / Nx)
    # the probe moments (exact with basis probes) give the same totals
    probe = interval_sums(M, n_perp, orbit_size, lengths, exact_moments=False)
    for key in ("m3", "m4", "m3_distinct", "m4_distinct"):
        assert np.allclose(probe[key], est[key], rtol=1e-9, atol=1e-12), key
    # x = 1 agrees with the whole-sample m2 of the base estimators
    from analysis.estimators import cumulants
    whole = cumulants(M, n_perp, orbit_size, layout.cut_slices)
    assert est["m2"][-1] == pytest.approx(whole["m2"], rel=1e-12)


# --- exact unbiasedness on a finite symmetric ensemble ----------------------------------------

def symmetric_ensemble(rng, n_base=2, Nx=4, Ny=3, Nz=1, width=4):
    """Random mode matrices and their images under the transverse translations and the
    reflection y -> -y: drawn uniformly, this ensemble's means are k-diagonal and constant on k
    orbits (as the disorder average is), so every term of the estimators has an exact
    expectation; with two base matrices the projected mean of one draw still fluctuates."""
    s = np.array([1.0, -1.0, 1.0, -1.0])
    images = []
    for _ in range(n_base):
        phi = rng.normal(size=(Nx, Ny * Nz, width)) + 1j * rng.normal(size=(Nx, Ny * Nz, width))
        for shift in range(Ny):
            for mirror in (False, True):
                rows = (np.arange(Ny) + shift) % Ny
                if mirror:
                    rows = (-rows) % Ny
                images.append((transverse_fft(phi[:, rows, :], Ny, Nz, axis=1), s))
    return images


def test_running_means_and_pairs_are_unbiased():
    """Mean of every word field over all sequences of a block (each sample drawn uniformly from
    the ensemble, with replacement) equals the partition term with the exact ensemble averages."""
    rng = np.random.default_rng(2)
    ensemble = symmetric_ensemble(rng)
    Nx, n_perp = ensemble[0][0].shape[:2]
    orbit_index, orbit_size = k_orbits(3, 1, (1.0, 0.4, 0.4))
    assert list(orbit_size) == [1, 2]
    lengths = np.array([2, 3, 4])
    probes = basis_probes(Nx, n_perp)
    gs = [fourier_blocks(p, s) for p, s in ensemble]
    mks = [mean_k_of(g, orbit_index, len(orbit_size)) for g in gs]
    K = len(ensemble)
    # exact ensemble averages
    gbar = sum(gs) / K
    assert np.allclose(gbar[:, :, 1, 2], 0) and np.allclose(gbar[:, :, 1, 1], gbar[:, :, 2, 2])
    avg = lambda f: sum(f(g) for g in gs) / K  # noqa: E731
    exact = {}
    tensors = {
        "rgg": avg(lambda g: loop_tensor(gbar, g, g)),
        "rggg": avg(lambda g: loop_tensor(gbar, g, g, g)),
        "ggtt": sum(loop_tensor(g, g, t, t) for g in gs for t in gs) / K**2,
        "gtgt": sum(loop_tensor(g, t, g, t) for g in gs for t in gs) / K**2,
        "rggr": avg(lambda g: loop_tensor(gbar, g, g, gbar)),
        "rgrg": avg(lambda g: loop_tensor(gbar, g, gbar, g)),
    }
    for name, tensor in tensors.items():
        exact["iv_" + name] = np.array([interval_sum(tensor, L, False) for L in lengths])
        exact["iv_d_" + name] = np.array([interval_sum(tensor, L, True) for L in lengths])
    # fields of the second sample (one previous) and of the third (two previous), averaged over
    # every sequence
    carries1 = [interval_observables(*ensemble[i], lengths, probes, orbit_index, orbit_size, mks[i])[1]
                for i in range(K)]
    second = {name: 0 for name in exact}
    carries2 = {}
    for i, j in itertools.product(range(K), repeat=2):
        obs, carries2[i, j] = interval_observables(*ensemble[j], lengths, probes, orbit_index,
                                                   orbit_size, mks[j], previous=carries1[i])
        for name in exact:
            second[name] = second[name] + obs[name] / K**2
    third = {name: 0 for name in exact}
    for (i, j), k in itertools.product(carries2, range(K)):
        obs, _ = interval_observables(*ensemble[k], lengths, probes, orbit_index, orbit_size, mks[k],
                                      previous=carries2[i, j])
        assert obs["iv_n2"] == 1.0
        for name in exact:
            third[name] = third[name] + obs[name] / K**3
    one_previous = [n for n in exact if WORDS[n.split("_")[-1]][1] == "iv_n1"]
    assert_close(second, exact, one_previous)
    assert_close(third, exact)
    # the test can fail: a mean that includes the sample itself would be biased
    own = avg(lambda g: loop_tensor(mean_blocks(mean_k_of(g, orbit_index, 2), orbit_index,
                                                orbit_size), g, g))
    assert abs(interval_sum(own, 4, False) - exact["iv_rgg"][-1]) > 1e-3 * abs(exact["iv_rgg"][-1])


# --- small contracts ---------------------------------------------------------------------------

def test_lengths_rule_and_shapes():
    assert interval_lengths(10, [0.1, 0.25, 0.5, 1.0]).tolist() == [1, 3, 5, 10]
    assert interval_lengths(4, [0.05, 0.6]).tolist() == [1, 2]
    for bad in ([], [0.0], [1.2], [np.nan]):
        with pytest.raises(ValueError, match="grid"):
            interval_lengths(10, bad)
    shapes = field_shapes(3)
    assert shapes["iv_d4"][0] == (3,) and shapes["iv_n1"][0] == ()


def test_first_samples_of_a_block(rng):
    """The first sample has no word fields (counts 0); the second has the one-previous words only."""
    Nx, Ny, Nz = 4, 2, 2
    orbit_index, orbit_size = k_orbits(Ny, Nz, am.DEFAULT_HOPPING)
    lengths = interval_lengths(Nx, GRID)
    carry = None
    for i, (phi_k, s) in enumerate(real_samples((Nx, Ny, Nz), am.DEFAULT_HOPPING, 3, seed=5)):
        mean_k = mean_k_of(fourier_blocks(phi_k, s), orbit_index, len(orbit_size))
        obs, carry = interval_observables(phi_k, s, lengths, draw_probes(rng, Nx, Ny * Nz),
                                          orbit_index, orbit_size, mean_k, previous=carry)
        assert isinstance(carry, IntervalCarry) and carry.n_previous == i + 1
        assert carry.phi_k is phi_k or np.shares_memory(carry.phi_k, phi_k)
        for name, (word, count) in WORDS.items():
            has = (i >= 1) if count == "iv_n1" else (i >= 2)
            assert bool(np.any(obs["iv_" + name])) == has, (i, name)
    cheap, _ = interval_observables(phi_k, s, lengths, draw_probes(rng, Nx, Ny * Nz), orbit_index,
                                    orbit_size, mean_k, exact_moments=False)
    assert "iv_tr3" not in cheap and "iv_tr4" not in cheap and np.all(cheap["iv_p4"] != 0)
    assert set(cheap) == set(field_shapes(len(lengths), exact_moments=False))
    with pytest.raises(ValueError, match="probes"):
        interval_observables(phi_k, s, lengths, np.ones((1, Nx, 3)), orbit_index, orbit_size, mean_k)
    with pytest.raises(ValueError, match="lengths"):
        interval_observables(phi_k, s, [0, 2], np.ones((1, Nx, 4)), orbit_index, orbit_size, mean_k)
    with pytest.raises(ValueError, match="pair_weights"):
        interval_observables(phi_k, s, lengths, np.ones((1, Nx, 4)), orbit_index, orbit_size, mean_k,
                             slice_weights=[1, 0, 1, 1], pair_weights=[0, 1, 0, 0])
    with pytest.raises(ValueError, match="carry"):
        interval_observables(phi_k, s, [1, 2], np.ones((1, Nx, 4)), orbit_index, orbit_size, mean_k,
                             previous=carry)


def midpoint(n, x, m):
    """Midpoint-rule integrals over [0, x]^n of g_n (dn = 1.3) and, at n = 4, of the classical
    cumulant g4 - g2(x1, x3) g2(x2, x4)."""
    from analysis.qssep import g
    nodes = (np.arange(m) + 0.5) / m * x
    pts = np.stack(np.meshgrid(*[nodes] * n, indexing="ij"), axis=-1).reshape(-1, n)
    values = g(n, pts, dn=1.3)
    if n < 4:
        return values.mean() * x**n, None
    g2 = lambda a, b: g(2, np.stack([a, b], axis=-1), dn=1.3)  # noqa: E731
    crossing = g2(pts[:, 0], pts[:, 2]) * g2(pts[:, 1], pts[:, 3])
    return values.mean() * x**4, (values - crossing).mean() * x**4


def test_block_sums_depend_only_on_the_block(rng):
    """Blocks computed in any order, after any other blocks, give bit-identical sums; the order
    of the samples inside a block matters (the words pair a sample with the previous ones)."""
    Nx, Ny, Nz = 4, 2, 2
    orbit_index, orbit_size = k_orbits(Ny, Nz, am.DEFAULT_HOPPING)
    lengths = interval_lengths(Nx, GRID)
    samples = []
    for phi_k, s in synthetic_samples(rng, Nx, Ny * Nz, [8] * 7):
        mean_k = mean_k_of(fourier_blocks(phi_k, s), orbit_index, len(orbit_size))
        samples.append((phi_k, s, mean_k, draw_probes(rng, Nx, Ny * Nz)))
    blocks = [samples[0:3], samples[3:4], samples[4:7]]

    def deal(order):
        return {b: interval_block_sums(blocks[b], lengths, orbit_index, orbit_size) for b in order}

    first = deal([0, 1, 2])
    for order in ([2, 1, 0], [1, 2, 0]):
        other = deal(order)
        for b in range(3):
            assert other[b][1] == first[b][1]
            for name in first[b][0]:
                assert np.array_equal(first[b][0][name], other[b][0][name]), (order, b, name)
    assert [(first[b][0]["iv_n1"], first[b][0]["iv_n2"]) for b in range(3)] == [(2, 1), (0, 0), (2, 1)]
    reversed_, _ = interval_block_sums(blocks[2][::-1], lengths, orbit_index, orbit_size)
    assert np.allclose(reversed_["iv_tr4"], first[2][0]["iv_tr4"], rtol=1e-12, atol=0)
    assert not np.allclose(reversed_["iv_ggtt"], first[2][0]["iv_ggtt"])


def test_qssep_interval_integrals():
    """The closed forms (analysis.intervals.interval_integral, derived independently of these
    kernels) against quadrature of the suite's g_n (free) and of g4 minus the crossing product
    (classical), and their zeros."""
    npts = 14
    for x in (0.3, 0.6, 1.0):
        for n in (2, 3, 4):
            # midpoint rule on h and h/2 (error O(h^2) across the kinks of min), Richardson
            quad = [midpoint(n, x, m) for m in (npts, 2 * npts)]
            free = (4 * quad[1][0] - quad[0][0]) / 3
            assert free == pytest.approx(interval_integral(n, x, 1.3), rel=2e-3, abs=1e-7), (n, x)
            if n == 4:
                cl = (4 * quad[1][1] - quad[0][1]) / 3
                assert cl == pytest.approx(interval_integral(4, x, 1.3, kind="classical"), rel=2e-3), x
    xs = np.linspace(0.01, 0.99, 981)
    assert interval_zero(xs, interval_integral(4, xs))["x0"] == pytest.approx(0.587, abs=1e-3)
    assert interval_zero(xs, interval_integral(4, xs, kind="classical"))["x0"] == pytest.approx(0.413, abs=1e-3)
    assert interval_zero([0, 1, 2], [1, 2, 3])["n_crossings"] == 0


def test_interval_sums_through_the_sweep_and_the_analysis(tmp_path):
    """A real run with an interval grid: the analysis reports m_n(x) with errors, exact
    identities hold on the stored estimates (m2 at x = 1 is the whole-sample m2, the distinct
    part of m3 vanishes on intervals of fewer than three slices, coinciding = total - distinct),
    the fits and zeros are there, and the figure is written."""
    import json
    import subprocess
    import sys

    import h5py

    from helpers import ROOT, child_env

    job = tmp_path / "iv.toml"
    job.write_text('geometry = "cube"\nsizes = [5]\nW = [6.0]\nsamples = 24\nblock_size = 6\n'
                   'seed = 3\ncuts = [0.5]\nintervals = [0.2, 0.4, 0.6, 0.8, 1.0]\n')
    out = tmp_path / "res"
    run = subprocess.run([sys.executable, "-m", "anderson_mpi", "run", str(job), "--out", str(out)],
                         env=child_env(), cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr
    ana = subprocess.run([sys.executable, "-m", "analysis", str(out), "--figures", "fig_intervals"],
                         env=child_env(), cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert ana.returncode == 0, ana.stderr
    summary = json.loads((out / "summary.json").read_text())
    s = summary["runs"][0]
    iv = s["intervals"]
    assert iv["lengths"] == [1, 2, 3, 4, 5] and iv["x"] == pytest.approx([0.2, 0.4, 0.6, 0.8, 1.0])
    assert iv["m2"][-1] * 5 == pytest.approx(s["m2"], rel=1e-9)  # cube: divided by N
    assert all(e > 0 for e in iv["m4_err"]) and all(e > 0 for e in iv["m3_err"])
    for key in ("dn2_free", "dn3_free", "dn4_free", "dn4_classical"):
        assert np.isfinite(iv[key]) and iv[key + "_err"] > 0
    assert iv["zero_free"] == pytest.approx(0.5868, abs=1e-4)
    with h5py.File(out / "estimates.h5", "r") as f:
        g = f["runs/cube_N5_W6"]
        assert g["interval_lengths"][...].tolist() == [1, 2, 3, 4, 5]
        m3d = g["iv_m3_distinct"][...]
        assert np.all(np.abs(m3d[:2]) <= 1e-12 * np.abs(g["iv_m3"][...]).max())
        m2d = g["iv_m2_distinct"][...]
        assert abs(m2d[0]) <= 1e-12 * abs(m2d).max()  # one slice: no distinct pair
        for n in (3, 4):
            assert np.allclose(g[f"iv_m{n}_coinciding"][...],
                               g[f"iv_m{n}"][...] - g[f"iv_m{n}_distinct"][...], rtol=1e-12, atol=0)
    comparison = (out / "comparison.md").read_text()
    assert "sign of m3(x) on sub-intervals" in comparison and "zero of m4(x)" in comparison
    for ext in ("png", "pdf", "csv"):
        assert (out / "figures" / f"fig_intervals.{ext}").stat().st_size > 0
