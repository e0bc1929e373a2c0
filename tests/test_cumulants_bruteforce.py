"""The whole chain (per-sample observables -> block sums -> connected cumulants) against brute
force on the full Gneq matrices of a few samples, straight from docs/theory.md §6's definitions.

At finite sample count the estimators use the k-diagonal, orbit-averaged part of the sample
mean blocks (the disorder mean is exactly that); the brute force applies the same projection
P to full dense mean blocks, so the two must agree to rounding."""
import numpy as np
import pytest

import anderson_mpi as am
from anderson_mpi.observables import k_orbits, make_layout, sample_observables
from analysis.estimators import Means, cumulants


def projector(U, orbit_index, orbit_size):
    def project(block):
        diag = np.einsum("pk,pq,qk->k", U.conj(), block, U)
        orbit_mean = np.bincount(orbit_index, diag.real, len(orbit_size)) / orbit_size \
            + 1j * np.bincount(orbit_index, diag.imag, len(orbit_size)) / orbit_size
        return (U * orbit_mean[orbit_index]) @ U.conj().T
    return project


@pytest.mark.parametrize("shape, hopping", [
    ((5, 3, 3), (1.0, 0.4, 0.4)),
    ((6, 4, 2), (1.0, 0.4, 0.3)),
    ((5, 3, 3), (1.0, 1.0, 1.0)),   # evanescent channels: n_open(E+) = 8, n_open(E-) = 4 of 9
    ((6, 4, 3), (1.0, 0.7, 0.5)),   # n_open 11, 9 of 12
])
def test_cumulants_equal_brute_force(shape, hopping):
    Nx, Ny, Nz = shape
    n_perp = Ny * Nz
    rng = np.random.default_rng(5)
    samples = [rng.uniform(-3, 3, shape) for _ in range(4)]
    setup = am.ScatteringSetup.build(shape, hopping)
    assert (setup.lead_plus.n_open < n_perp) == (hopping[1] > 0.5)  # the cases say what they test
    cuts = [0.3, 0.7]
    layout = make_layout(Nx, Ny, Nz, hopping, cuts, m3_split=True)  # the production fields

    U = am.lead_modes(Ny, Nz, 0.2, hopping).U
    orbit_index, orbit_size = k_orbits(Ny, Nz, hopping)
    sums = None
    blocks = []
    for V in samples:
        obs = sample_observables(am.mode_matrices(V, hopping), layout)
        g = am.g_neq(V, hopping).reshape(Nx, n_perp, Nx, n_perp).transpose(0, 2, 1, 3)
        sums = obs if sums is None else {k: sums[k] + obs[k] for k in obs}
        blocks.append(g)
    n = len(samples)
    means = Means({k: np.asarray(v) / n for k, v in sums.items()}, n)
    est = cumulants(means, n_perp, layout.orbit_size, layout.cut_slices)

    G = np.array(blocks)  # (sample, a, b, p, q)
    P = projector(U, orbit_index, orbit_size)
    mean = {(a, b): P(G[:, a, b].mean(0)) for a in range(Nx) for b in range(Nx)}
    tr = np.trace

    C1 = np.array([tr(G[:, a, a].mean(0)).real for a in range(Nx)]) / n_perp
    C2 = np.array([[np.mean([tr(g[a, b] @ g[b, a]) for g in G]).real - tr(mean[a, b] @ mean[b, a]).real
                    for b in range(Nx)] for a in range(Nx)]) / n_perp**2

    def c3(a, b, c):
        connected = np.mean([tr(g[a, b] @ g[b, c] @ g[c, a]) for g in G])
        ab_bc = P(np.mean([g[a, b] @ g[b, c] for g in G], 0))
        bc_ca = P(np.mean([g[b, c] @ g[c, a] for g in G], 0))
        ca_ab = P(np.mean([g[c, a] @ g[a, b] for g in G], 0))
        return (connected - tr(ab_bc @ mean[c, a]) - tr(bc_ca @ mean[a, b]) - tr(ca_ab @ mean[b, c])
                + 2 * tr(mean[a, b] @ mean[b, c] @ mean[c, a])) / n_perp**3

    assert np.allclose(est["C1"], C1, atol=1e-12)
    assert np.allclose(est["C2"], C2, atol=1e-12)
    assert est["m2"] == pytest.approx(C2.sum(), abs=1e-11)
    for i, c in enumerate(layout.cut_slices):
        brute = np.array([[c3(a, b, c) for b in range(Nx)] for a in range(Nx)])
        assert np.allclose(est["C3"][i], brute.real, atol=1e-12)
        assert np.allclose(est["C3_imag"][i], brute.imag, atol=1e-12)
    m3 = sum(c3(a, b, c) for a in range(Nx) for b in range(Nx) for c in range(Nx))
    assert est["m3"] == pytest.approx(m3.real, abs=1e-11)
    # the m3 split: sums of C3 over index triples with coinciding slices, term by term
    triples = [(a, b, c) for a in range(Nx) for b in range(Nx) for c in range(Nx)]
    coinciding = sum(c3(a, b, c) for a, b, c in triples if a == b or b == c or c == a)
    assert est["c3_sum_aac"] == pytest.approx(sum(c3(a, a, c) for a in range(Nx) for c in range(Nx)).real,
                                              abs=1e-11)
    assert est["c3_sum_aaa"] == pytest.approx(sum(c3(a, a, a) for a in range(Nx)).real, abs=1e-11)
    assert est["m3_coinciding"] == pytest.approx(coinciding.real, abs=1e-11)
    assert est["m3_distinct"] == pytest.approx((m3 - coinciding).real, abs=1e-11)
    # the U(1) maps
    assert np.allclose(est["map1"], [[tr(G[:, a, b].mean(0)) / n_perp for b in range(Nx)] for a in range(Nx)])
    j = layout.cut_slices[0]
    assert np.allclose(est["map2"][0], [[Nx * np.mean([tr(g[a, j] @ g[j, b]) for g in G]) / n_perp**2
                                         for b in range(Nx)] for a in range(Nx)])
