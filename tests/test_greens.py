"""Exact checks of the independent reference solver ``tests/greens.py``.

Every assertion is an identity that holds for any correct implementation (no fitted numbers), so
the reference can be trusted when it is used to test the transfer-matrix code.
"""
import numpy as np
import pytest

import greens

HOP = (1.0, 0.4, 0.4)
# Distinct ty, tz so that a swapped y/z convention cannot pass.
HOP_YZ = (1.0, 0.3, 0.45)


def _disorder(shape, W, seed):
    return np.random.default_rng(seed).uniform(-W / 2, W / 2, size=shape)


def _flat(G):
    n = int(np.prod(G.shape[:3]))
    return G.reshape(n, n)


def _n_bonds_ring(n):
    return {1: 0, 2: 1}.get(n, n)


# ------------------------------------------------------------------------------------------
# Hamiltonian
# ------------------------------------------------------------------------------------------
@pytest.mark.parametrize("shape", [(1, 1, 1), (2, 1, 3), (3, 2, 1), (3, 3, 2), (2, 3, 3),
                                   (4, 2, 2), (1, 3, 1), (3, 1, 4)])
def test_hamiltonian_symmetric_and_bond_counts(shape):
    tx, ty, tz = HOP_YZ
    V = _disorder(shape, 3.0, 1)
    H = greens.hamiltonian(V, HOP_YZ)
    Nx, Ny, Nz = shape
    n = V.size
    assert H.shape == (n, n)
    assert np.isrealobj(H.toarray())
    Hd = H.toarray()
    assert np.array_equal(Hd, Hd.T)
    assert np.allclose(np.diag(Hd), V.ravel(), rtol=0, atol=0)

    off = Hd - np.diag(np.diag(Hd))
    # Count bonds per direction from the entries of the upper triangle.
    up = np.triu(off)
    nx_b = np.count_nonzero(up == -tx)
    ny_b = np.count_nonzero(up == -ty)
    nz_b = np.count_nonzero(up == -tz)
    assert nx_b == (Nx - 1) * Ny * Nz
    assert ny_b == _n_bonds_ring(Ny) * Nx * Nz
    assert nz_b == _n_bonds_ring(Nz) * Nx * Ny
    assert np.count_nonzero(up) == nx_b + ny_b + nz_b  # nothing else (no doubled size-2 bond)


def test_hamiltonian_index_convention():
    Nx, Ny, Nz = 3, 4, 5
    tx, ty, tz = HOP_YZ
    H = greens.hamiltonian(np.zeros((Nx, Ny, Nz)), HOP_YZ).toarray().reshape((Nx, Ny, Nz) * 2)
    assert H[1, 2, 3, 2, 2, 3] == -tx
    assert H[1, 2, 3, 1, 3, 3] == -ty
    assert H[1, 3, 3, 1, 0, 3] == -ty  # wrap-around in y
    assert H[1, 2, 4, 1, 2, 0] == -tz  # wrap-around in z
    assert H[2, 2, 3, 0, 2, 3] == 0.0  # x is open
    assert H[1, 2, 3, 1, 2, 4] == -tz


@pytest.mark.parametrize("Ny,Nz", [(1, 1), (1, 2), (2, 1), (2, 2), (3, 4), (4, 3), (1, 5), (2, 3)])
def test_transverse_modes_diagonalize_slice(Ny, Nz):
    """eps_k of each size is the actual spectrum of the slice block of H (size 2: t cos k)."""
    _, _, U, eps = greens.transverse_energies(Ny, Nz, HOP_YZ)
    H = greens.hamiltonian(np.zeros((1, Ny, Nz)), HOP_YZ).toarray()
    assert np.allclose(U.conj().T @ U, np.eye(Ny * Nz), atol=1e-13)
    assert np.allclose(U @ np.diag(-eps) @ U.conj().T, H, atol=1e-13)


# ------------------------------------------------------------------------------------------
# Self-energy
# ------------------------------------------------------------------------------------------
ISO = (1.0, 1.0, 1.0)  # the isotropic model: evanescent channels at every energy
HOP_ANISO = (1.0, 0.8, 0.6)


@pytest.mark.parametrize("Ny,Nz,E,hop", [(1, 1, 0.3, HOP), (2, 1, -0.2, HOP), (2, 2, 0.2, HOP),
                                         (3, 4, 0.2, HOP_YZ), (4, 3, -0.3, HOP_YZ),
                                         (2, 3, 0.1, (1.3, 0.5, 0.2)),
                                         (3, 3, 0.2, ISO), (4, 4, -0.2, ISO), (4, 3, 1.5, HOP_ANISO),
                                         (3, 2, -2.5, ISO), (1, 4, 1.5, ISO)])
def test_self_energy_exact_properties(Ny, Nz, E, hop):
    tx = hop[0]
    S = greens.lead_self_energy(Ny, Nz, E, hop)
    n = Ny * Nz
    _, v, _ = greens.lead_modes(Ny, Nz, E, hop)
    assert S.shape == (n, n)
    # Anti-Hermitian part -Gamma/2 is negative semidefinite: retarded; of rank n_open (an
    # evanescent channel is not broadened).
    anti = (S - S.conj().T) / 2j
    assert np.max(np.linalg.eigvalsh(anti)) < (0 if len(v) == n else 1e-14)
    # Complex symmetric (eps_k even in k) and commutes with the transverse Hamiltonian.
    assert np.allclose(S, S.T, atol=1e-14)
    Hp = greens.hamiltonian(np.zeros((1, Ny, Nz)), hop).toarray()
    assert np.allclose(S @ Hp, Hp @ S, atol=1e-13)
    # Dyson equation of the semi-infinite lead: adding one more clean slice leaves the surface
    # self-energy invariant, Sigma = tx^2 (E - H_perp - Sigma)^{-1}.
    rhs = tx ** 2 * np.linalg.inv(E * np.eye(n) - Hp - S)
    assert np.allclose(S, rhs, atol=1e-13)
    # Gamma = i (S - S^+) has eigenvalues v_k = 2 tx sin kx (open) and 0 (evanescent).
    expected = np.sort(np.concatenate([v, np.zeros(n - len(v))]))
    assert np.allclose(np.sort(np.linalg.eigvalsh(1j * (S - S.conj().T))), expected, atol=1e-13)


def test_evanescent_surface_green_function_decays():
    """An evanescent channel's lead wave function (tx g)^n decays into the lead, |tx g| < 1; the
    other root of the same quadratic, 1 / (tx^2 g), would grow."""
    for Ny, Nz, E, hop in ((3, 3, 0.2, ISO), (4, 3, -2.5, HOP_ANISO), (6, 1, 1.5, ISO)):
        _, _, _, eps = greens.transverse_energies(Ny, Nz, hop)
        tx = hop[0]
        z = E + eps
        g = greens.surface_green(Ny, Nz, E, hop)
        closed = np.abs(z) > 2 * tx
        assert 0 < closed.sum() < closed.size
        assert np.all(g[closed].imag == 0) and np.all(np.abs(tx * g[closed]) < 1)
        assert np.all(g[~closed].imag < 0)
        assert np.allclose(tx ** 2 * g ** 2 - z * g + 1, 0, atol=1e-13)
        assert np.all(np.sign(g[closed].real) == np.sign(z[closed]))


def test_self_energy_single_chain_closed_form():
    # 1d chain: Sigma = (E - i sqrt(4 tx^2 - E^2)) / 2.
    for E in (-1.5, -0.3, 0.0, 0.7, 1.9):
        S = greens.lead_self_energy(1, 1, E, (1.0, 0.4, 0.4))
        assert S.shape == (1, 1)
        assert abs(S[0, 0] - (E - 1j * np.sqrt(4 - E ** 2)) / 2) < 1e-14


@pytest.mark.parametrize("Ny,Nz,E,hop", [(3, 2, 0.2, HOP_YZ), (3, 3, 0.2, ISO), (4, 3, -2.5, HOP_ANISO)])
def test_self_energy_matches_finite_lead_with_broadening(Ny, Nz, E, hop):
    """Independent route: a long finite lead with a small imaginary part converges to Sigma
    (which picks the decaying root of every evanescent channel)."""
    tx = hop[0]
    Hp = greens.hamiltonian(np.zeros((1, Ny, Nz)), hop).toarray()
    n = Ny * Nz
    z = E + 0.02j
    S = np.zeros((n, n), complex)
    for _ in range(4000):  # recursive surface Green's function, damped by Im z
        S = tx ** 2 * np.linalg.inv(z * np.eye(n) - Hp - S)
    ref = greens.lead_self_energy(Ny, Nz, E, hop)
    assert np.allclose(S, ref, atol=0.05)  # O(eta) agreement; picks the retarded branch


def test_band_edges_and_closed_bands_raise():
    with pytest.raises(ValueError, match="band edge"):
        greens.lead_self_energy(1, 1, 2.0, HOP)  # band edge of a single chain
    with pytest.raises(ValueError, match="band edge"):
        greens.lead_self_energy(3, 3, 0.4, HOP)  # 0.4 + 4 * 0.4 = 2 tx
    with pytest.raises(ValueError, match="no open channel"):
        greens.retarded_green(np.zeros((2, 3, 3)), 6.5, ISO)
    with pytest.raises(ValueError, match="no open channel"):
        greens.lead_spectral(np.zeros((2, 1, 1)), -2.5, "R", HOP)
    with pytest.raises(ValueError, match="band edge"):
        greens.clean_lead_spectral(2, 4, 4, 0.0, "L", ISO)  # eps = +-2 at E = 0
    # evanescent channels are fine now
    assert greens.lead_self_energy(3, 3, 0.5, HOP).shape == (9, 9)


def test_size_two_uses_single_bond():
    # With t_perp = 0.9: size 2 gives |eps_k| <= 1.8 < 2 (open); size >= 3 gives 3.6 (evanescent).
    hop = (1.0, 0.9, 0.9)
    S = greens.lead_self_energy(2, 2, 0.0, hop)
    assert np.max(np.linalg.eigvalsh((S - S.conj().T) / 2j)) < 0
    assert len(greens.lead_modes(2, 2, 0.0, hop)[1]) == 4
    assert len(greens.lead_modes(3, 2, 0.0, hop)[1]) == 5  # eps = 1.8 + 0.9 = 2.7 is evanescent
    greens.lead_self_energy(1, 2, 0.15, hop)


# ------------------------------------------------------------------------------------------
# Green's functions
# ------------------------------------------------------------------------------------------
CASES = [((4, 3, 2), 0.2, 5.0), ((5, 1, 4), -0.2, 6.0), ((3, 2, 2), 0.3, 2.0),
         ((6, 1, 1), 0.1, 1.0), ((1, 3, 2), -0.25, 4.0), ((7, 4, 3), 0.2, 5.0)]
# with evanescent channels: (shape, E, W, hopping)
EVANESCENT = [((4, 3, 3), 0.2, 6.0, ISO), ((5, 4, 3), -0.2, 8.0, ISO), ((3, 4, 4), 1.5, 4.0, ISO),
              ((4, 3, 2), -2.5, 3.0, ISO), ((5, 4, 3), 1.5, 6.0, HOP_ANISO), ((1, 3, 3), 0.2, 5.0, ISO)]
ALL_CASES = [case + (HOP,) for case in CASES] + EVANESCENT


@pytest.mark.parametrize("shape,E,W,hop", ALL_CASES)
def test_lead_spectral_hermitian_psd(shape, E, W, hop):
    V = _disorder(shape, W, 7)
    n_open = len(greens.lead_modes(shape[1], shape[2], E, hop)[0])
    for lead in "LR":
        G = _flat(greens.lead_spectral(V, E, lead, hop))
        assert np.allclose(G, G.conj().T, atol=1e-12)
        eig = np.linalg.eigvalsh(G)
        assert np.min(eig) > -1e-12  # sum of |psi><psi|
        assert np.sum(eig > 1e-10) <= n_open  # one state per open incoming channel


@pytest.mark.parametrize("shape,E,W,hop", ALL_CASES)
def test_sum_rule(shape, E, W, hop):
    V = _disorder(shape, W, 11)
    Gr = _flat(greens.retarded_green(V, E, hop))
    GL = _flat(greens.lead_spectral(V, E, "L", hop))
    GR = _flat(greens.lead_spectral(V, E, "R", hop))
    A = 1j * (Gr - Gr.conj().T)
    assert np.allclose(GL + GR, A, atol=1e-11)
    # G^r is complex symmetric (H real symmetric, Sigma symmetric).
    assert np.allclose(Gr, Gr.T, atol=1e-12)


@pytest.mark.parametrize("shape,E,W,hop", ALL_CASES[:3] + EVANESCENT[:2])
def test_retarded_green_inverts(shape, E, W, hop):
    V = _disorder(shape, W, 3)
    Nx, Ny, Nz = shape
    Gr = _flat(greens.retarded_green(V, E, hop))
    S = greens.lead_self_energy(Ny, Nz, E, hop)
    M = (E * np.eye(V.size) - greens.hamiltonian(V, hop).toarray()).astype(complex)
    npp = Ny * Nz
    M[:npp, :npp] -= S
    M[-npp:, -npp:] -= S
    assert np.allclose(M @ Gr, np.eye(V.size), atol=1e-11)


@pytest.mark.parametrize("shape,E,W,hop", ALL_CASES[:4] + EVANESCENT[:2])
def test_mirror_symmetry(shape, E, W, hop):
    V = _disorder(shape, W, 5)
    GL = greens.lead_spectral(V, E, "L", hop)
    GR_m = greens.lead_spectral(V[::-1], E, "R", hop)
    assert np.allclose(GL, GR_m[::-1, :, :, ::-1, :, :], atol=1e-12)


CLEAN = [((5, 3, 4), 0.2, HOP), ((4, 4, 3), -0.2, HOP), ((3, 1, 2), 0.35, HOP), ((6, 2, 1), -0.3, HOP),
         ((7, 1, 1), 1.2, HOP), ((1, 3, 2), 0.1, HOP), ((2, 2, 2), 0.2, HOP), ((8, 2, 3), 0.15, HOP),
         # evanescent channels: the closed form sums over the open ones only
         ((5, 3, 4), 0.2, ISO), ((4, 4, 3), -0.2, ISO), ((6, 3, 2), 1.5, HOP_ANISO), ((3, 2, 3), -2.5, ISO)]


@pytest.mark.parametrize("shape,E,hop", CLEAN)
@pytest.mark.parametrize("lead", ["L", "R"])
def test_clean_closed_form(shape, E, hop, lead):
    V = np.zeros(shape)
    G = greens.lead_spectral(V, E, lead, hop)
    Gc = greens.clean_lead_spectral(*shape, E, lead, hop)
    assert G.shape == Gc.shape == shape * 2
    assert np.max(np.abs(G - Gc)) < 1e-10


@pytest.mark.parametrize("shape,E,hop", CLEAN[:4] + CLEAN[8:])
def test_clean_transmission_per_channel(shape, E, hop):
    """W = 0: Tr(Gamma_L G^r Gamma_R G^a) = n_open (transmission 1 per open channel)."""
    Nx, Ny, Nz = shape
    Gr = greens.retarded_green(np.zeros(shape), E, hop)
    S = greens.lead_self_energy(Ny, Nz, E, hop)
    gam = 1j * (S - S.conj().T)
    npp = Ny * Nz
    n_open = len(greens.lead_modes(Ny, Nz, E, hop)[0])
    G1N = Gr[0, :, :, Nx - 1].reshape(npp, npp)
    T = np.trace(gam @ G1N @ gam @ G1N.conj().T)
    assert abs(T - n_open) < 1e-10


def test_bad_lead_name():
    with pytest.raises(ValueError):
        greens.lead_spectral(np.zeros((2, 2, 2)), 0.2, "X")
    with pytest.raises(ValueError):
        greens.clean_lead_spectral(2, 2, 2, 0.2, "right")
