"""The transfer-matrix engine against exact statements (SPEC sections 1, 2, 5)."""
import numpy as np
import pytest

import anderson_mpi as am
import greens

SIZES = [  # (Nx, Ny, Nz): odd and even, Ny != Nz, transverse sizes 1 and 2
    (1, 1, 1), (4, 1, 1), (5, 2, 3), (6, 3, 2), (7, 4, 3), (4, 1, 5), (3, 2, 2), (5, 3, 3),
]


def spectral_from_psi(psi):
    """G^alpha_ij = sum_k psi_k(i) conj psi_k(j), as an (Nx Np) x (Nx Np) matrix."""
    flat = psi.reshape(-1, psi.shape[-1])
    return flat @ flat.conj().T


def as_matrix(g6):
    n = int(np.prod(g6.shape[:3]))
    return g6.reshape(n, n)


# --- clean limit -------------------------------------------------------------------------

@pytest.mark.parametrize("shape", SIZES)
@pytest.mark.parametrize("lead", ["L", "R"])
def test_clean_sample_is_plane_waves(shape, lead):
    Nx, Ny, Nz = shape
    energy = 0.2
    states = am.scattering_states(np.zeros(shape), energy, lead)
    modes = am.lead_modes(Ny, Nz, energy)
    x = np.arange(Nx)
    # incoming from R moves left: exp(-i kx x) (phase fixed at the last slice); from L: exp(+i kx x)
    exponent = -np.outer(x - (Nx - 1), modes.kx) if lead == "R" else np.outer(x, modes.kx)
    expected = modes.U[None] * (np.exp(1j * exponent) / np.sqrt(modes.velocity))[:, None, :]
    assert np.abs(states.psi - expected).max() < 1e-12
    assert np.abs(states.reflection).max() < 1e-12
    # every channel transmits fully
    assert np.allclose(np.abs(states.transmission) ** 2 @ np.ones(Ny * Nz), 1, atol=1e-12)
    assert states.conductance == pytest.approx(Ny * Nz, abs=1e-11)
    assert abs(states.fano) < 1e-12


@pytest.mark.parametrize("shape", [(5, 3, 4), (4, 2, 1), (3, 1, 1)])
def test_clean_spectral_function_matches_closed_form(shape):
    # SPEC section 5: G^R(E)_ij = N_perp^-1 sum_k exp(-i kx (xi - xj)) exp(i k.(ri - rj)) / v_k
    Nx, Ny, Nz = shape
    energy = 0.2
    modes = am.lead_modes(Ny, Nz, energy)
    x = np.arange(Nx)
    dx = np.subtract.outer(x, x)
    # U[r,k] conj U[r',k] = exp(i k.(r-r')) / N_perp
    closed = np.einsum("abk,pk,qk->apbq", np.exp(-1j * dx[:, :, None] * modes.kx) / modes.velocity,
                       modes.U, modes.U.conj())
    psi = am.scattering_states(np.zeros(shape), energy, "R").psi
    assert np.abs(spectral_from_psi(psi) - closed.reshape(Nx * Ny * Nz, -1)).max() < 1e-12


# --- disorder: unitarity, Hermiticity, symmetry ------------------------------------------

@pytest.mark.parametrize("shape", SIZES)
@pytest.mark.parametrize("W", [1.0, 6.0, 15.0])
def test_unitarity(shape, W, rng):
    V = rng.uniform(-W / 2, W / 2, shape)
    for lead, energy in (("R", 0.2), ("L", -0.2), ("L", 0.2), ("R", -0.3)):
        states = am.scattering_states(V, energy, lead)
        assert states.unitarity_error < 1e-12
        transmission_eigs = np.linalg.eigvalsh(states.transmission.conj().T @ states.transmission)
        assert np.all(transmission_eigs > -1e-12) and np.all(transmission_eigs < 1 + 1e-12)


@pytest.mark.parametrize("shape", [(5, 2, 3), (4, 3, 3), (3, 1, 1)])
def test_gneq_is_hermitian_and_shaped(shape, rng):
    V = rng.uniform(-3, 3, shape)
    g = am.g_neq(V)
    assert g.shape == shape + shape
    m = as_matrix(g)
    assert np.abs(m - m.conj().T).max() < 1e-13 * np.abs(m).max()
    # Gneq = G^R(E+) - G^L(E-) by definition, element by element
    g_r = spectral_from_psi(am.scattering_states(V, 0.2, "R").psi)
    g_l = spectral_from_psi(am.scattering_states(V, -0.2, "L").psi)
    assert np.abs(m - (g_r - g_l)).max() < 1e-12


@pytest.mark.parametrize("shape", [(6, 2, 3), (5, 3, 3), (7, 1, 2)])
def test_reciprocity_of_transmission(shape, rng):
    """Time reversal (real H): t_R[k', k] = t_L[-k, -k'] at the same energy."""
    Nx, Ny, Nz = shape
    V = rng.uniform(-4, 4, shape)
    t_r = am.scattering_states(V, 0.2, "R").transmission
    t_l = am.scattering_states(V, 0.2, "L").transmission
    ny, nz = np.meshgrid(np.arange(Ny), np.arange(Nz), indexing="ij")
    minus_k = (((-ny) % Ny) * Nz + (-nz) % Nz).ravel()  # index of -k
    assert np.abs(t_r - t_l.T[np.ix_(minus_k, minus_k)]).max() < 1e-12
    assert t_r.shape == (Ny * Nz, Ny * Nz)


@pytest.mark.parametrize("shape", [(5, 2, 3), (4, 3, 1)])
def test_mirror_symmetry(shape, rng):
    """G^L of V equals the mirrored G^R of the mirrored V (checked with the sparse solver for G^L)."""
    V = rng.uniform(-3, 3, shape)
    g_left = greens.lead_spectral(V, 0.2, "L")
    g_right_mirror = spectral_from_psi(am.scattering_states(V[::-1], 0.2, "R").psi)
    g_right_mirror = g_right_mirror.reshape(shape + shape)[::-1, :, :, ::-1]
    assert np.abs(g_left - g_right_mirror).max() < 1e-10


# --- independent solver: sparse direct solve of the retarded Green's function -----------

@pytest.mark.parametrize("shape", SIZES)
@pytest.mark.parametrize("W", [2.0, 8.0])
def test_against_sparse_green_function(shape, W, rng):
    V = rng.uniform(-W / 2, W / 2, shape)
    for energy in (0.2, -0.2):
        g_ret = as_matrix(greens.retarded_green(V, energy))
        spectral = 1j * (g_ret - g_ret.conj().T)
        parts = {}
        for lead in ("L", "R"):
            parts[lead] = spectral_from_psi(am.scattering_states(V, energy, lead).psi)
            reference = as_matrix(greens.lead_spectral(V, energy, lead))
            scale = max(1.0, np.abs(reference).max())
            assert np.abs(parts[lead] - reference).max() < 1e-10 * scale
        # sum rule G^L + G^R = A = i (G^r - G^a)
        assert np.abs(parts["L"] + parts["R"] - spectral).max() < 1e-10 * max(1, np.abs(spectral).max())


def bond_currents(psi, tx=1.0):
    """Current matrices J_x = -i tx (Psi_x^+ Psi_{x+1} - Psi_{x+1}^+ Psi_x) through bonds (x, x+1).

    The diagonal is the particle current of each state from slice x to x + 1.
    """
    overlap = np.einsum("xpk,xpl->xkl", psi[:-1].conj(), psi[1:])
    return -1j * tx * (overlap - overlap.conj().transpose(0, 2, 1))


@pytest.mark.parametrize("shape", [(9, 3, 2), (12, 1, 1), (8, 2, 2)])
def test_current_is_conserved_through_every_bond(shape, rng):
    """Inside the sample, the current matrix through every bond equals -t^+ t (R incomers move
    left) and +t^+ t (L incomers): a check of every rebuilt slice, not only of the boundaries."""
    V = rng.uniform(-4, 4, shape)
    for lead, sign in (("R", -1), ("L", 1)):
        states = am.scattering_states(V, 0.2, lead)
        t = states.transmission
        assert np.abs(bond_currents(states.psi) - sign * t.conj().T @ t).max() < 1e-12


def test_long_quasi1d_sample_is_stable():
    """Nx = 400, 8x8, W = 5: the paper's forward rebuild diverged beyond Nx = 60."""
    rng = np.random.default_rng(400)
    V = rng.uniform(-2.5, 2.5, (400, 8, 8))
    for lead, energy, sign in (("R", 0.2, -1), ("L", -0.2, 1)):
        states = am.scattering_states(V, energy, lead)
        assert np.all(np.isfinite(states.psi))
        assert states.unitarity_error < 1e-10
        assert 0 < states.conductance < 64
        # the tiny transmitted current is carried correctly through all 399 bonds
        t = states.transmission
        assert np.abs(bond_currents(states.psi) - sign * t.conj().T @ t).max() < 1e-10


# --- bad input ----------------------------------------------------------------------------

BAD_INPUTS = [  # (V, lead, hopping, energy, match): shared with the PETSc solver's tests
    (np.zeros((3, 3)), "R", (1, 0.4, 0.4), 0.2, "ndim"),
    (np.zeros((3, 3, 3, 1)), "R", (1, 0.4, 0.4), 0.2, "ndim"),
    (np.zeros((0, 3, 3)), "R", (1, 0.4, 0.4), 0.2, ">= 1"),
    (np.zeros((3, 0, 3)), "R", (1, 0.4, 0.4), 0.2, ">= 1"),
    (np.full((3, 2, 2), np.nan), "R", (1, 0.4, 0.4), 0.2, "non-finite"),
    (np.full((3, 2, 2), np.inf), "L", (1, 0.4, 0.4), 0.2, "non-finite"),
    (np.zeros((3, 2, 2)), "X", (1, 0.4, 0.4), 0.2, "lead"),
    (np.zeros((3, 2, 2)), "left", (1, 0.4, 0.4), 0.2, "lead"),
    (np.zeros((3, 3, 3)), "R", (1, 0.6, 0.6), 0.2, "evanescent"),
    (np.zeros((3, 3, 3)), "R", (1, 0.4, 0.4), 1.3, "evanescent"),
    (np.zeros((3, 3, 3)), "R", (0.0, 0.4, 0.4), 0.2, "tx"),
    (np.zeros((3, 3, 3)), "R", (1, 0.4), 0.2, "hopping"),
]


@pytest.mark.parametrize("V, lead, hopping, energy, match", BAD_INPUTS)
def test_bad_input_raises(V, lead, hopping, energy, match):
    with pytest.raises(ValueError, match=match):
        am.scattering_states(V, energy, lead, hopping=hopping)


def test_evanescent_message_names_parameters():
    with pytest.raises(ValueError, match=r"e_minus.*hopping=\(tx=1, ty=0.45, tz=0.45\).*Ny=4, Nz=4"):
        am.g_neq(np.zeros((2, 4, 4)), hopping=(1, 0.45, 0.45), e_plus=0.1, e_minus=-0.25)


def test_transverse_size_two_has_one_bond():
    # with only one bond per direction, ty = tz = 0.7 keeps all channels open for Ny = Nz = 2
    # (|E| + 0.7 + 0.7 < 2) but not for Ny = Nz = 3 (|E| + 1.4 + 1.4 > 2)
    am.scattering_states(np.zeros((2, 2, 2)), 0.2, "R", hopping=(1, 0.7, 0.7))
    with pytest.raises(ValueError, match="evanescent"):
        am.scattering_states(np.zeros((2, 3, 3)), 0.2, "R", hopping=(1, 0.7, 0.7))
    t_perp = am.transverse_hopping(2, 3, (1, 0.7, 0.5))
    assert np.count_nonzero(np.triu(t_perp)) == 3 * 1 + 2 * 3  # 3 y-bonds, 6 z-bonds
    modes = am.lead_modes(2, 3, 0.2, (1, 0.7, 0.5))
    assert np.allclose(modes.U.conj().T @ t_perp @ modes.U, np.diag(modes.eps), atol=1e-13)


def test_fano_factor_of_a_diffusive_wire_is_one_third():
    """Shot noise of a diffusive conductor: F = 1/3 (Beenakker-Buettiker) up to finite-g
    corrections (8 x 8 wire, Nx = 120, W = 1.5: l_e of a few sites << Nx, g ~ 8). Measured over
    200 samples: F = 0.344, with a spread of 0.0085 between 8-sample means; 64 samples here."""
    rng = np.random.default_rng(120)
    g, noise = 0.0, 0.0
    for _ in range(64):
        states = am.scattering_states(rng.uniform(-0.75, 0.75, (120, 8, 8)), 0.2, "R")
        g += states.conductance
        noise += states.fano * states.conductance
    assert 4 < g / 64 < 20  # diffusive: many channels (64) but far from ballistic, far from localized
    assert noise / g == pytest.approx(1 / 3, abs=0.02)
