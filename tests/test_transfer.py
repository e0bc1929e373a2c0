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

HOPPINGS = [(1.0, 0.4, 0.4), (1.0, 1.0, 1.0), (1.0, 0.8, 0.6)]  # all open; evanescent (isotropic, ty != tz)


def channel_kinds(Ny, Nz, energy, hopping):
    """Classify the lead channels from SPEC section 1 directly (eps_k from the reference solver):
    ``"band edge"`` or ``"no open channel"`` for a refused energy, else the open-mode mask."""
    tx = hopping[0]
    c = -(energy + greens.transverse_energies(Ny, Nz, hopping)[3]) / (2 * tx)
    if np.any(np.abs(np.abs(c) - 1) < 1e-9):
        return "band edge"
    if np.all(np.abs(c) > 1):
        return "no open channel"
    return np.abs(c) < 1


@pytest.mark.parametrize("shape", SIZES)
@pytest.mark.parametrize("hopping", HOPPINGS)
@pytest.mark.parametrize("lead", ["L", "R"])
def test_clean_sample_is_plane_waves(shape, hopping, lead):
    """W = 0: each open incomer is one plane wave through the whole sample ("plus nothing": no
    reflection, no other open mode, no evanescent admixture), transmitted with probability 1."""
    Nx, Ny, Nz = shape
    energy = 0.2
    is_open = channel_kinds(Ny, Nz, energy, hopping)
    if isinstance(is_open, str):
        with pytest.raises(ValueError, match=is_open):
            am.scattering_states(np.zeros(shape), energy, lead, hopping=hopping)
        return
    states = am.scattering_states(np.zeros(shape), energy, lead, hopping=hopping)
    modes = am.lead_modes(Ny, Nz, energy, hopping)
    n_open = int(is_open.sum())
    assert np.array_equal(modes.open_modes, np.flatnonzero(is_open))
    assert states.psi.shape == (Nx, Ny * Nz, n_open)
    x = np.arange(Nx)
    # incoming from R moves left: exp(-i kx x) (phase fixed at the last slice); from L: exp(+i kx x)
    exponent = -np.outer(x - (Nx - 1), modes.kx) if lead == "R" else np.outer(x, modes.kx)
    u_open = modes.U[:, is_open]
    expected = u_open[None] * (np.exp(1j * exponent) / np.sqrt(modes.velocity))[:, None, :]
    assert np.abs(states.psi - expected).max() < 1e-12
    # the closed channels carry nothing: no amplitude in any evanescent mode on any slice
    in_modes = np.einsum("pk,xpj->xkj", modes.U.conj(), states.psi)
    assert np.abs(in_modes[:, ~is_open]).max(initial=0) < 1e-12
    assert np.abs(states.reflection).max() < 1e-12
    # every open channel transmits fully, into itself
    assert np.abs(np.abs(states.transmission) - np.eye(n_open)).max() < 1e-12
    assert states.conductance == pytest.approx(n_open, abs=1e-11)
    assert abs(states.fano) < 1e-12


def test_clean_cases_include_evanescent_channels():
    """The parametrization above really covers 0 < n_open < N_perp and both refusals."""
    kinds = [channel_kinds(Ny, Nz, 0.2, hop) for _, Ny, Nz in SIZES for hop in HOPPINGS]
    partial = [k for k in kinds if not isinstance(k, str) and 0 < k.sum() < k.size]
    assert len(partial) >= 8
    kinds = [channel_kinds(Ny, Nz, E, hop) for _, Ny, Nz in SIZES for hop in HOPPINGS
             for E in UNITARITY_ENERGIES]
    refused = {k for k in kinds if isinstance(k, str)}
    assert refused == {"band edge", "no open channel"}


@pytest.mark.parametrize("shape, hopping, energy", [
    ((5, 3, 4), (1.0, 0.4, 0.4), 0.2), ((4, 2, 1), (1.0, 0.4, 0.4), 0.2), ((3, 1, 1), (1.0, 0.4, 0.4), 0.2),
    ((5, 3, 4), (1.0, 1.0, 1.0), 0.2), ((4, 4, 3), (1.0, 0.8, 0.6), 1.5), ((6, 2, 3), (1.0, 1.0, 1.0), -2.5),
])
def test_clean_spectral_function_matches_closed_form(shape, hopping, energy):
    # SPEC section 5: G^R(E)_ij = N_perp^-1 sum_k exp(-i kx (xi - xj)) exp(i k.(ri - rj)) / v_k,
    # the sum over the open modes only
    Nx, Ny, Nz = shape
    modes = am.lead_modes(Ny, Nz, energy, hopping)
    u_open = modes.U[:, modes.open_modes]
    x = np.arange(Nx)
    dx = np.subtract.outer(x, x)
    # U[r,k] conj U[r',k] = exp(i k.(r-r')) / N_perp
    closed = np.einsum("abk,pk,qk->apbq", np.exp(-1j * dx[:, :, None] * modes.kx) / modes.velocity,
                       u_open, u_open.conj())
    psi = am.scattering_states(np.zeros(shape), energy, "R", hopping=hopping).psi
    assert np.abs(spectral_from_psi(psi) - closed.reshape(Nx * Ny * Nz, -1)).max() < 1e-12
    # and the same from the sparse reference solver's closed form
    reference = greens.clean_lead_spectral(Nx, Ny, Nz, energy, "R", hopping)
    assert np.abs(spectral_from_psi(psi) - as_matrix(reference)).max() < 1e-12


# --- disorder: unitarity, Hermiticity, symmetry ------------------------------------------

UNITARITY_ENERGIES = (-0.2, 0.2, 1.5, -2.5)


@pytest.mark.parametrize("shape", SIZES)
@pytest.mark.parametrize("W", [1.0, 6.0, 15.0])
def test_unitarity(shape, W, rng):
    V = rng.uniform(-W / 2, W / 2, shape)
    for lead, energy in (("R", 0.2), ("L", -0.2), ("L", 0.2), ("R", -0.3)):
        states = am.scattering_states(V, energy, lead)
        assert states.unitarity_error < 1e-12
        transmission_eigs = np.linalg.eigvalsh(states.transmission.conj().T @ states.transmission)
        assert np.all(transmission_eigs > -1e-12) and np.all(transmission_eigs < 1 + 1e-12)


@pytest.mark.parametrize("shape", SIZES)
@pytest.mark.parametrize("hopping", HOPPINGS)
@pytest.mark.parametrize("energy", UNITARITY_ENERGIES)
def test_unitarity_with_evanescent_channels(shape, hopping, energy, rng):
    """t^+ t + r^+ r = 1 over the open channels at any energy inside the band; an energy at a
    band edge or with no open channel (classified from SPEC section 1) is refused instead."""
    Nx, Ny, Nz = shape
    is_open = channel_kinds(Ny, Nz, energy, hopping)
    if isinstance(is_open, str):
        for lead in ("L", "R"):
            with pytest.raises(ValueError, match=is_open):
                am.scattering_states(np.zeros(shape), energy, lead, hopping=hopping)
        return
    n_open = int(is_open.sum())
    for W in (6.0, 15.0):
        V = rng.uniform(-W / 2, W / 2, shape)
        for lead in ("L", "R"):
            states = am.scattering_states(V, energy, lead, hopping=hopping)
            assert states.psi.shape == (Nx, Ny * Nz, n_open)
            assert states.transmission.shape == states.reflection.shape == (n_open, n_open)
            assert states.unitarity_error < 1e-12


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


@pytest.mark.parametrize("shape, hopping", [((6, 2, 3), (1.0, 0.4, 0.4)), ((5, 3, 3), (1.0, 0.4, 0.4)),
                                            ((7, 1, 2), (1.0, 0.4, 0.4)), ((6, 4, 3), (1.0, 1.0, 1.0)),
                                            ((5, 3, 4), (1.0, 0.8, 0.6))])
def test_reciprocity_of_transmission(shape, hopping, rng):
    """Time reversal (real H): t_R[k', k] = t_L[-k, -k'] at the same energy (over the open modes;
    -k is open when k is, eps_k being even)."""
    Nx, Ny, Nz = shape
    V = rng.uniform(-4, 4, shape)
    t_r = am.scattering_states(V, 0.2, "R", hopping=hopping).transmission
    t_l = am.scattering_states(V, 0.2, "L", hopping=hopping).transmission
    open_modes = am.lead_modes(Ny, Nz, 0.2, hopping).open_modes
    ny, nz = np.meshgrid(np.arange(Ny), np.arange(Nz), indexing="ij")
    minus_k = (((-ny) % Ny) * Nz + (-nz) % Nz).ravel()  # index of -k
    position = {k: j for j, k in enumerate(open_modes)}
    minus_j = np.array([position[minus_k[k]] for k in open_modes])  # open column of -k
    assert np.abs(t_r - t_l.T[np.ix_(minus_j, minus_j)]).max() < 1e-12
    assert t_r.shape == (len(open_modes),) * 2


@pytest.mark.parametrize("shape, hopping, energy", [((5, 2, 3), (1.0, 0.4, 0.4), 0.2),
                                                    ((4, 3, 1), (1.0, 0.4, 0.4), 0.2),
                                                    ((5, 3, 4), (1.0, 1.0, 1.0), 0.2),
                                                    ((4, 4, 3), (1.0, 0.8, 0.6), -2.5)])
def test_mirror_symmetry(shape, hopping, energy, rng):
    """G^L of V equals the mirrored G^R of the mirrored V (checked with the sparse solver for G^L)."""
    V = rng.uniform(-3, 3, shape)
    g_left = greens.lead_spectral(V, energy, "L", hopping)
    g_right_mirror = spectral_from_psi(am.scattering_states(V[::-1], energy, "R", hopping=hopping).psi)
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


EVANESCENT_CASES = [  # (shape, hopping, energy): 0 < n_open < N_perp in each (asserted)
    ((5, 3, 3), (1.0, 1.0, 1.0), 0.2), ((4, 3, 3), (1.0, 1.0, 1.0), -0.2),
    ((4, 4, 4), (1.0, 1.0, 1.0), 1.5), ((5, 2, 3), (1.0, 1.0, 1.0), -2.5),
    ((6, 3, 4), (1.0, 0.8, 0.6), 0.2), ((4, 3, 2), (1.0, 0.8, 0.6), -2.5),
    ((5, 4, 1), (1.0, 0.4, 0.4), 1.5), ((3, 1, 5), (1.0, 1.0, 1.0), 1.5),
]


@pytest.mark.parametrize("shape, hopping, energy", EVANESCENT_CASES)
@pytest.mark.parametrize("W", [2.0, 8.0])
def test_against_sparse_green_function_with_evanescent_channels(shape, hopping, energy, W, rng):
    """G^alpha = sum over the open incomers of psi psi^+ equals G^r Gamma_alpha G^a of the sparse
    solve (whose Sigma includes the evanescent modes), and G^L + G^R = i (G^r - G^a)."""
    Nx, Ny, Nz = shape
    is_open = channel_kinds(Ny, Nz, energy, hopping)
    assert 0 < is_open.sum() < Ny * Nz
    V = rng.uniform(-W / 2, W / 2, shape)
    g_ret = as_matrix(greens.retarded_green(V, energy, hopping))
    spectral = 1j * (g_ret - g_ret.conj().T)
    parts = {}
    for lead in ("L", "R"):
        psi = am.scattering_states(V, energy, lead, hopping=hopping).psi
        assert psi.shape[-1] == is_open.sum()
        parts[lead] = spectral_from_psi(psi)
        reference = as_matrix(greens.lead_spectral(V, energy, lead, hopping))
        assert np.abs(parts[lead] - reference).max() < 1e-10 * max(1.0, np.abs(reference).max())
    assert np.abs(parts["L"] + parts["R"] - spectral).max() < 1e-10 * max(1, np.abs(spectral).max())
    # Gneq of the two energies against the reference, element by element
    g = as_matrix(am.g_neq(V, hopping, e_plus=energy, e_minus=-energy))
    reference = (as_matrix(greens.lead_spectral(V, energy, "R", hopping))
                 - as_matrix(greens.lead_spectral(V, -energy, "L", hopping)))
    assert np.abs(g - reference).max() < 1e-10 * max(1.0, np.abs(reference).max())


def bond_currents(psi, tx=1.0):
    """Current matrices J_x = -i tx (Psi_x^+ Psi_{x+1} - Psi_{x+1}^+ Psi_x) through bonds (x, x+1).

    The diagonal is the particle current of each state from slice x to x + 1.
    """
    overlap = np.einsum("xpk,xpl->xkl", psi[:-1].conj(), psi[1:])
    return -1j * tx * (overlap - overlap.conj().transpose(0, 2, 1))


@pytest.mark.parametrize("shape, hopping, energy", [
    ((9, 3, 2), (1.0, 0.4, 0.4), 0.2), ((12, 1, 1), (1.0, 0.4, 0.4), 0.2), ((8, 2, 2), (1.0, 0.4, 0.4), 0.2),
    ((9, 4, 4), (1.0, 1.0, 1.0), 0.2), ((8, 3, 2), (1.0, 1.0, 1.0), -2.5), ((10, 4, 3), (1.0, 0.8, 0.6), 1.5),
])
def test_current_is_conserved_through_every_bond(shape, hopping, energy, rng):
    """Inside the sample, the current matrix through every bond equals -t^+ t (R incomers move
    left) and +t^+ t (L incomers): a check of every rebuilt slice, not only of the boundaries
    (with evanescent channels too: they carry no current in the leads, but take part inside)."""
    V = rng.uniform(-4, 4, shape)
    for lead, sign in (("R", -1), ("L", 1)):
        states = am.scattering_states(V, energy, lead, hopping=hopping)
        t = states.transmission
        assert np.abs(bond_currents(states.psi, hopping[0]) - sign * t.conj().T @ t).max() < 1e-12


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


def test_long_isotropic_wire_is_stable():
    """Nx = 300, 6 x 6, t = (1, 1, 1), W = 6: 14 of the 36 channels evanescent at E = +-0.2, which
    the recursion must carry over 300 slices (localized: g ~ 1e-13) without losing unitarity."""
    rng = np.random.default_rng(300)
    V = rng.uniform(-3, 3, (300, 6, 6))
    for lead, energy, sign in (("R", 0.2, -1), ("L", -0.2, 1)):
        states = am.scattering_states(V, energy, lead, hopping=(1, 1, 1))
        assert states.psi.shape == (300, 36, 22)
        assert np.all(np.isfinite(states.psi))
        assert states.unitarity_error < 1e-10
        assert 0 < states.conductance < 22
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
    (np.zeros((3, 3, 3)), "R", (1, 0.4, 0.4), 0.4, "band edge"),      # E + eps_(0,0) = 0.4 + 1.6 = 2 tx
    (np.zeros((3, 3, 1)), "L", (1, 0.5, 0.5), -1.5, "band edge"),     # E + eps_(1,0) = -1.5 - 0.5 = -2 tx
    (np.zeros((3, 3, 3)), "R", (1, 0.4, 0.4), 5.0, "no open channel"),
    (np.zeros((3, 1, 1)), "L", (1, 0.4, 0.4), -2.5, "no open channel"),
    (np.zeros((3, 3, 3)), "R", (0.0, 0.4, 0.4), 0.2, "tx"),
    (np.zeros((3, 3, 3)), "R", (1, 0.4), 0.2, "hopping"),
]


@pytest.mark.parametrize("V, lead, hopping, energy, match", BAD_INPUTS)
def test_bad_input_raises(V, lead, hopping, energy, match):
    with pytest.raises(ValueError, match=match):
        am.scattering_states(V, energy, lead, hopping=hopping)


def test_band_edge_message_names_energy_channel_and_distance():
    # 4 x 4, t_perp = 0.45: eps_(0,0) = 1.8, so E+ = 0.2 puts mode 0 at E + eps = 2 tx
    with pytest.raises(ValueError, match=r"e_plus: band edge: energy=0.2 with hopping=\(tx=1, ty=0.45, "
                                         r"tz=0.45\) and Ny=4, Nz=4 puts mode 0 \(k = 2 pi \(0/4, 0/4\)\)"
                                         r".* at its band edge E = 0.2,.*more than 2.0e-09 away from 0.2"):
        am.g_neq(np.zeros((2, 4, 4)), hopping=(1, 0.45, 0.45), e_plus=0.2, e_minus=-0.25)
    # a 4 x 4 isotropic lead at E = 0: the 8 modes with eps_k = +-2 sit at a band edge
    with pytest.raises(ValueError, match=r"e_minus: band edge: energy=1e-10 .* mode \d+ \(k = 2 pi "
                                         r"\(\d/4, \d/4\)\) \(and 7 more channel\(s\)\) at its band edge E = 0,"):
        am.mode_matrices(np.zeros((2, 4, 4)), (1, 1, 1), e_plus=0.2, e_minus=1e-10)
    # within the tolerance of the edge: refused; a few tolerances further: accepted, and unitary
    edge = 2.0 - 1.8  # the band edge of mode 0 above, as the code computes it
    for shift, refused in ((0.5e-9, True), (-1.5e-9, True), (5e-9, False), (-5e-9, False)):
        if refused:
            with pytest.raises(ValueError, match="band edge"):
                am.lead_modes(4, 4, edge + shift, (1, 0.45, 0.45))
        else:
            states = am.scattering_states(np.random.default_rng(1).uniform(-2, 2, (3, 4, 4)),
                                          edge + shift, "R", hopping=(1, 0.45, 0.45))
            assert states.unitarity_error < 1e-12


def test_no_open_channel_message_names_energy_and_band():
    with pytest.raises(ValueError, match=r"e_minus: no open channel: energy=-2.5 with hopping=\(tx=1, "
                                         r"ty=0.4, tz=0.4\) and Ny=1, Nz=1 lies outside every channel's "
                                         r"band.*mode 0 .* is -2 < E < 2"):
        am.mode_matrices(np.zeros((3, 1, 1)), e_minus=-2.5)
    with pytest.raises(ValueError, match="e_plus: no open channel"):
        am.scattering_states(np.zeros((2, 3, 3)), 6.5, "L", hopping=(1, 1, 1))


def test_evanescent_channels_are_accepted_and_described():
    """What used to be refused ("evanescent channel") now solves: the lead says which modes are
    open, mu is exp(i kx) there and the decaying root lambda_< (|lambda| < 1, real) elsewhere."""
    modes = am.lead_modes(4, 4, -0.25, (1, 0.45, 0.45))
    eps = modes.eps
    c = (0.25 - eps) / 2
    assert np.array_equal(modes.open, np.abs(c) < 1) and modes.n_open == 15 < modes.n_perp  # eps = -1.8 closed
    assert np.allclose(np.cos(modes.kx), c[modes.open]) and np.all(modes.velocity > 0)
    closed = ~modes.open
    lam = modes.mu[closed]
    assert np.all(lam.imag == 0) and np.all(np.abs(lam) < 1)
    assert np.allclose(lam + 1 / lam, 2 * c[closed], rtol=1e-14)
    assert np.allclose(modes.mu[modes.open], np.exp(1j * modes.kx))
    # X_{-1} = U diag(mu) U^+ is complex symmetric (mu even in k), as the recursion relies on
    assert np.allclose(modes.surface_ratio, modes.surface_ratio.T, atol=1e-15)
    for name in ("U", "eps", "mu", "open_modes", "kx", "velocity", "open", "phase", "surface_ratio"):
        with pytest.raises(ValueError):
            getattr(modes, name)[...] = 0  # read-only: shared by every sample of a run
    g = am.g_neq(np.zeros((2, 4, 4)), hopping=(1, 0.45, 0.45), e_plus=0.1, e_minus=-0.25)
    assert g.shape == (2, 4, 4) * 2


def test_transverse_size_two_has_one_bond():
    # with only one bond per direction, ty = tz = 0.7 keeps all channels open for Ny = Nz = 2
    # (|E| + 0.7 + 0.7 < 2) but not for Ny = Nz = 3 (|E| + 1.4 + 1.4 > 2)
    assert am.scattering_states(np.zeros((2, 2, 2)), 0.2, "R", hopping=(1, 0.7, 0.7)).psi.shape[-1] == 4
    assert am.lead_modes(3, 3, 0.2, (1, 0.7, 0.7)).n_open == 8  # eps = 2.8 closed, 0.7, -1.4 open
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
