"""Per-sample observables against brute force on the full Gneq matrix (formula identities)."""
import numpy as np
import pytest

import anderson_mpi as am
from anderson_mpi.observables import cut_slices, k_orbits, make_layout, sample_observables
from anderson_mpi.io.schema import block_fields


def brute_force(V, hopping, cuts):
    """Every observable straight from the definitions, with the full Gneq and dense products."""
    Nx, Ny, Nz = V.shape
    n_perp = Ny * Nz
    g = am.g_neq(V, hopping).reshape(Nx, n_perp, Nx, n_perp).transpose(0, 2, 1, 3)  # g[a, b] = G_ab
    U = am.lead_modes(Ny, Nz, 0.2, hopping).U
    rot = lambda m: U.conj().T @ m @ U  # noqa: E731
    orbit_index, orbit_size = k_orbits(Ny, Nz, hopping)

    def orbit_sum(diag):  # (..., n_perp) -> (..., n_orb)
        out = np.zeros(diag.shape[:-1] + (len(orbit_size),), dtype=complex)
        for k, o in enumerate(orbit_index):
            out[..., o] += diag[..., k]
        return out

    full = g.transpose(0, 2, 1, 3).reshape(Nx * n_perp, -1)
    g2 = (full @ full).reshape(Nx, n_perp, Nx, n_perp).transpose(0, 2, 1, 3)
    ref = {
        "tr_g": np.einsum("aii->a", g[np.arange(Nx), np.arange(Nx)]).real,
        "tr_gg": np.einsum("abij,baji->ab", g, g).real,
        "mean_k": orbit_sum(np.array([[np.diag(rot(g[a, b])) for b in range(Nx)] for a in range(Nx)])),
        "g2_kdiag": orbit_sum(np.array([[np.diag(rot(g2[a, b])) for b in range(Nx)] for a in range(Nx)])),
        "tr_g3": np.trace(full @ full @ full).real,
    }
    cs = cut_slices(Nx, cuts)
    ref["cut_pair"] = np.array([[[np.trace(g[a, c] @ g[c, b]) for b in range(Nx)] for a in range(Nx)] for c in cs])
    ref["cut_tr_ggg"] = np.array([[[np.trace(g[a, b] @ g[b, c] @ g[c, a]) for b in range(Nx)]
                                   for a in range(Nx)] for c in cs])
    ref["cut_kdiag_ab_bc"] = orbit_sum(np.array([[[np.diag(rot(g[a, b] @ g[b, c])) for b in range(Nx)]
                                                  for a in range(Nx)] for c in cs]))
    ref["cut_kdiag_bc_ca"] = orbit_sum(np.array([[[np.diag(rot(g[b, c] @ g[c, a])) for b in range(Nx)]
                                                  for a in range(Nx)] for c in cs]))
    # the coinciding-slice fields of the m3 split
    ref["diag_tr_g3"] = np.array([np.trace(g[a, a] @ g[a, a] @ g[a, a]).real for a in range(Nx)])
    ref["diag_tr_g_g2"] = sum(np.trace(g[a, a] @ g2[a, a]).real for a in range(Nx))
    ref["diag_kdiag_aa_ac"] = orbit_sum(np.array([[np.diag(rot(g[a, a] @ g[a, c])) for c in range(Nx)]
                                                  for a in range(Nx)]))
    return ref, g


OBSERVABLE_CASES = [
    ((5, 3, 3), (1.0, 0.4, 0.4)),
    ((6, 4, 3), (1.0, 0.4, 0.3)),
    ((4, 2, 1), (1.0, 0.4, 0.4)),
    ((7, 1, 1), (1.0, 0.4, 0.4)),
    ((4, 4, 4), (1.0, 0.3, 0.3)),
    # evanescent channels, n_open(E+) != n_open(E-): the LR block of the Grams starts at
    # column n_open(E+), not N_perp (n_open = 8, 4 of 9; 11, 9 of 12 with ty != tz)
    ((5, 3, 3), (1.0, 1.0, 1.0)),
    ((6, 4, 3), (1.0, 0.7, 0.5)),
]


def test_evanescent_cases_have_fewer_open_channels_at_each_energy():
    for (shape, hopping), n_open in zip(OBSERVABLE_CASES[-2:], ((8, 4), (11, 9))):
        modes = am.mode_matrices(np.zeros(shape), hopping)
        assert modes.phi.shape[-1] == sum(n_open)
        assert [np.count_nonzero(modes.signature == s) for s in (1, -1)] == list(n_open)


@pytest.mark.parametrize("shape, hopping", OBSERVABLE_CASES)
@pytest.mark.parametrize("m3_split", [False, True])
def test_observables_equal_brute_force(shape, hopping, m3_split, rng):
    V = rng.uniform(-3, 3, shape)
    cuts = [0.23, 0.5, 1.0]
    layout = make_layout(*shape, hopping, cuts, m3_split=m3_split)
    obs = sample_observables(am.mode_matrices(V, hopping), layout)
    ref, _ = brute_force(V, hopping, cuts)
    fields = block_fields(layout)
    assert set(obs) == set(fields)  # the schema lists exactly what the observables produce
    assert m3_split == ("diag_tr_g3" in obs)
    for name, spec in fields.items():
        assert np.shape(obs[name]) == spec.shape, name
        assert np.asarray(obs[name]).dtype.kind == np.dtype(spec.dtype).kind or np.isscalar(obs[name]), name
    for name in fields.keys() & ref.keys():
        expected = ref[name]
        scale = max(1.0, np.abs(expected).max())
        assert np.abs(obs[name] - expected).max() < 1e-10 * scale, name


def test_conductance_and_fano_observables(rng):
    V = rng.uniform(-3, 3, (6, 3, 2))
    layout = make_layout(6, 3, 2, am.DEFAULT_HOPPING, [0.5])
    obs = sample_observables(am.mode_matrices(V), layout)
    states = am.scattering_states(V, 0.2, "R")
    assert obs["g"] == pytest.approx(states.conductance, rel=1e-13)
    assert obs["g_sq"] == pytest.approx(states.conductance ** 2, rel=1e-13)
    taus = np.linalg.eigvalsh(states.transmission @ states.transmission.conj().T)
    assert obs["fano_num"] == pytest.approx(np.sum(taus * (1 - taus)), rel=1e-10, abs=1e-13)


def test_identities_between_observables(rng):
    """Sum rules linking the fields: sum_k mean_k = Tr G_ab; sum_b Tr(G_ab G_bc G_ca) over all c
    is Tr G^3; sum_k g2_kdiag(a,a) = Tr (G^2)_aa = sum_b Tr(G_ab G_ba)."""
    shape = (6, 3, 3)
    V = rng.uniform(-3, 3, shape)
    layout = make_layout(*shape, am.DEFAULT_HOPPING, (np.arange(6) + 0.5) / 6)  # every slice a cut
    obs = sample_observables(am.mode_matrices(V), layout)
    assert np.allclose(obs["mean_k"].sum(-1).diagonal().real, obs["tr_g"], atol=1e-12)
    assert np.allclose(obs["g2_kdiag"].sum(-1).diagonal().real, obs["tr_gg"].sum(1), atol=1e-11)
    assert np.isclose(obs["cut_tr_ggg"].sum(), obs["tr_g3"], atol=1e-10)
    # cyclic invariance Tr(G_ab G_bc G_ca) = Tr(G_bc G_ca G_ab)
    T = np.einsum("cab->abc", obs["cut_tr_ggg"])
    assert np.allclose(T, np.einsum("bca->abc", T), atol=1e-11)
    assert not np.allclose(T, np.einsum("bac->abc", T), atol=1e-6)  # not symmetric under a <-> b


def test_orbits_are_symmetry_classes():
    idx, size = k_orbits(4, 4, (1, 0.4, 0.4))
    assert size.sum() == 16 and len(size) == 6  # (0,0) (0,1~3~..) etc. under D4
    idx2, size2 = k_orbits(4, 3, (1, 0.4, 0.4))
    assert size2.sum() == 12 and len(size2) == 3 * 2
    idx3, size3 = k_orbits(4, 4, (1, 0.4, 0.3))  # no y<->z symmetry when ty != tz
    assert len(size3) == 9
    # eps_k is constant on every orbit
    for Ny, Nz, hop in ((4, 4, (1, 0.4, 0.4)), (5, 3, (1, 0.4, 0.2)), (6, 6, (1, 0.3, 0.3))):
        oi, _ = k_orbits(Ny, Nz, hop)
        eps = am.lead_modes(Ny, Nz, 0.2, hop).eps
        for o in np.unique(oi):
            assert np.ptp(eps[oi == o]) < 1e-13
