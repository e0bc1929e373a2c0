"""The dephasing model on Anderson's lattice (`anderson_mpi.engines.lattice_dephasing`).

Checked against: the Anderson model's own transverse hopping (`anderson_mpi.system`) for the
bonds, the chain kernels of `anderson_mpi.engines.chains` on a chain (same samples), and the exact law
of the discrete scheme on a small lattice (`tests/chain_reference.py`).
"""

import numpy as np
import pytest
import scipy.sparse.linalg as spla
import chain_reference as ref

from anderson_mpi.engines import chains
from anderson_mpi.engines.chains import ChainSetup, simulate_block
from anderson_mpi.engines.lattice_dephasing import (LatticeSetup, lattice_mode_matrices,
                                                    simulate_lattice_block)
from anderson_mpi.system import transverse_hopping

BACKENDS = ["numpy"] + (["numba"] if chains.jit_kernels() is not None else [])


def _seeds(tag, n):
    return np.random.SeedSequence([20240602, tag]).spawn(n)


def _max_z(samples, expected):
    mean = samples.mean(axis=0)
    err = samples.std(axis=0, ddof=1) / np.sqrt(len(samples))
    ok = err > 1e-14
    assert np.all(np.abs(mean - expected)[~ok] < 1e-12)
    return float(np.max(np.abs(mean - expected)[ok] / err[ok]))


@pytest.mark.parametrize("shape", [(3, 3, 2), (4, 4, 1), (2, 1, 5), (5, 2, 3), (3, 1, 1)])
def test_layers_are_the_anderson_lattice_bonds(shape):
    hopping = (1.0, 0.4, 0.7)
    setup = LatticeSetup.build(shape, hopping=hopping)
    Nx, Ny, Nz = shape
    n = Nx * Ny * Nz
    chain = np.eye(Nx, k=1) + np.eye(Nx, k=-1)
    H0 = -(hopping[0] * np.kron(chain, np.eye(Ny * Nz))
           + np.kron(np.eye(Nx), transverse_hopping(Ny, Nz, hopping)))
    total = np.zeros((n, n))
    for first, second, t in setup.layers:
        sites = np.concatenate([first, second])
        assert len(np.unique(sites)) == len(sites)          # disjoint bonds in a layer
        total[first, second] -= t
        total[second, first] -= t
    np.testing.assert_array_equal(total, H0)
    # the reference builds the same layers from the geometry
    layers = ref.lattice_bond_layers(shape, hopping)
    assert len(layers) == len(setup.layers)
    for h, (first, second, t) in zip(layers, setup.layers):
        mine = np.zeros((n, n))
        mine[first, second] = mine[second, first] = -t
        np.testing.assert_array_equal(h, mine)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("N", [2, 3, 6])
def test_on_a_chain_it_is_the_chain(N, backend):
    chain = ChainSetup.build("dephasing", N, gamma=1.7, hopping=0.9, relax_time=8.0)
    lattice = LatticeSetup.build((N, 1, 1), gamma=1.7, hopping=(0.9, 0.4, 0.4), relax_time=8.0,
                                 dt=chain.dt)
    assert lattice.n_steps == chain.n_steps
    seeds = _seeds(1, 4)
    np.testing.assert_allclose(simulate_lattice_block(lattice, seeds, backend=backend),
                               simulate_block(chain, seeds, backend=backend), atol=1e-13, rtol=0)


def test_lattice_simulation_is_its_exact_discrete_law():
    """2 x 3 x 2 (x bonds, a ring of 3 with its wrap-around layer, a ring of 2 with one bond),
    a large dt: trajectories against the scheme's exact law; the continuum mean differs."""
    shape, hopping, gamma, dt = (2, 3, 2), (1.0, 0.4, 0.7), 2.0, 0.3
    setup = LatticeSetup.build(shape, gamma=gamma, hopping=hopping, dt=dt)
    mean, second = ref.lattice_dephasing_scheme_moments(
        shape, hopping, gamma, dt, setup.rate_left, setup.rate_right, setup.n_left,
        setup.n_right, setup.initial_density, setup.n_steps)
    G = simulate_lattice_block(setup, _seeds(2, 6000))
    n = setup.n_sites
    i, j = np.indices((n, n))
    P = (G * G.transpose(0, 2, 1)).real
    B = np.einsum("sii,sjj->sij", G, G).real
    assert _max_z(G.real, mean.real) < 4.5 and _max_z(G.imag, mean.imag) < 4.5
    assert _max_z(P, second[i, j, j, i].real) < 4.5
    assert _max_z(B, second[i, i, j, j].real) < 4.5
    mean_c = _continuum_mean(shape, hopping, gamma, setup)
    assert _max_z(G.real, mean_c.real) > 8


def _continuum_mean(shape, hopping, gamma, setup):
    """Stationary mean of continuous-time dephasing on the lattice (the mean equation only)."""
    lin, source, _ = ref.ito_generators(
        setup.n_sites, hamiltonian=sum(ref.lattice_bond_layers(shape, hopping)), dephasing=gamma,
        rate_left=setup.rate_left, rate_right=setup.rate_right, n_left=setup.n_left,
        n_right=setup.n_right, driven=setup.driven_sites(), second=False)
    return spla.spsolve(lin.tocsc(), -source).reshape(setup.n_sites, setup.n_sites)


def test_mode_matrices_have_the_slices():
    shape = (3, 2, 2)
    setup = LatticeSetup.build(shape, relax_time=5.0)
    G = simulate_lattice_block(setup, _seeds(3, 2))
    phi = lattice_mode_matrices(G, shape)
    assert phi.shape == (2, 3, 4, 12)
    n_perp = 4
    for a in range(3):
        for b in range(3):
            block = G[:, a * n_perp:(a + 1) * n_perp, b * n_perp:(b + 1) * n_perp]
            rebuilt = phi[:, a] @ phi[:, b].conj().transpose(0, 2, 1)
            assert np.abs(rebuilt - block).max() < 1e-12


@pytest.mark.parametrize("keys, field", [
    ({"shape": (1, 3, 3)}, "shape"), ({"shape": (3, 0, 3)}, "shape"),
    ({"hopping": 1.0}, "hopping"), ({"hopping": (0.0, 0.4, 0.4)}, "hopping"),
    ({"gamma": 0.0}, "gamma"), ({"dt": -1.0}, "dt"), ({"n_left": 2.0}, "n_left"),
])
def test_bad_keys_are_refused_in_one_line(keys, field):
    keys = dict(keys)
    shape = keys.pop("shape", (3, 3, 3))
    with pytest.raises(ValueError) as info:
        LatticeSetup.build(shape, **keys)
    assert str(info.value).startswith(f"{field}:") and "\n" not in str(info.value)


def test_default_relax_time_follows_the_slowest_density_mode():
    """With t = (1, 0.4, 0.4) and N = 8 the transverse ring relaxes more slowly than the
    longitudinal profile: 5 / (4 (1 - cos(2 pi/8)) t_perp^2 / gamma) wins."""
    setup = LatticeSetup.build((8, 8, 8), gamma=2.0)
    transverse = 2 * (1 - np.cos(2 * np.pi / 8)) * 2 * 0.4**2 / 2.0
    L = 8 - 1 + 1.0
    longitudinal = np.pi**2 * (2 * 1.0 / 2.0) / L**2
    assert transverse < longitudinal
    assert setup.relax_time == pytest.approx(5 / transverse)
