"""The invariant suite, run on every engine of the registry (the `engine` fixture): the clean
limit (plane waves, closed forms), unitarity, Hermiticity, reciprocity, mirror symmetry, the sum
rule and every lead's spectral function against an independent sparse solve (tests/greens.py),
current conservation through every bond, and the same refusals of bad input
(docs/theory.md §1-§5). Two independent methods (transfer matrix, PETSc/MUMPS) pass the same
exact statements.
"""
import numpy as np
import pytest

import anderson_mpi as am
import greens
from anderson_mpi.engines.dense import g_neq_from_modes
from helpers import bond_currents

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


HOPPINGS = [(1.0, 0.4, 0.4), (1.0, 1.0, 1.0), (1.0, 0.8, 0.6)]  # all open; evanescent (isotropic, ty != tz)


def channel_kinds(Ny, Nz, energy, hopping):
    """Classify the lead channels from docs/theory.md §2 directly (eps_k from the reference solver):
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
def test_clean_sample_is_plane_waves(engine, shape, hopping, lead):
    """W = 0: each open incomer is one plane wave through the whole sample ("plus nothing": no
    reflection, no other open mode, no evanescent admixture), transmitted with probability 1."""
    Nx, Ny, Nz = shape
    energy = 0.2
    is_open = channel_kinds(Ny, Nz, energy, hopping)
    if isinstance(is_open, str):
        with pytest.raises(ValueError, match=is_open):
            engine.states(np.zeros(shape), energy, lead, hopping=hopping)
        return
    states = engine.states(np.zeros(shape), energy, lead, hopping=hopping)
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
def test_clean_spectral_function_matches_closed_form(engine, shape, hopping, energy):
    # docs/theory.md §4.3: G^R(E)_ij = N_perp^-1 sum_k exp(-i kx (xi - xj)) exp(i k.(ri - rj)) / v_k,
    # the sum over the open modes only
    Nx, Ny, Nz = shape
    modes = am.lead_modes(Ny, Nz, energy, hopping)
    u_open = modes.U[:, modes.open_modes]
    x = np.arange(Nx)
    dx = np.subtract.outer(x, x)
    # U[r,k] conj U[r',k] = exp(i k.(r-r')) / N_perp
    closed = np.einsum("abk,pk,qk->apbq", np.exp(-1j * dx[:, :, None] * modes.kx) / modes.velocity,
                       u_open, u_open.conj())
    psi = engine.states(np.zeros(shape), energy, "R", hopping=hopping).psi
    assert np.abs(spectral_from_psi(psi) - closed.reshape(Nx * Ny * Nz, -1)).max() < 1e-12
    # and the same from the sparse reference solver's closed form
    reference = greens.clean_lead_spectral(Nx, Ny, Nz, energy, "R", hopping)
    assert np.abs(spectral_from_psi(psi) - as_matrix(reference)).max() < 1e-12


UNITARITY_ENERGIES = (-0.2, 0.2, 1.5, -2.5)


@pytest.mark.parametrize("shape", SIZES)
@pytest.mark.parametrize("W", [1.0, 6.0, 15.0])
def test_unitarity(engine, shape, W, rng):
    V = rng.uniform(-W / 2, W / 2, shape)
    for lead, energy in (("R", 0.2), ("L", -0.2), ("L", 0.2), ("R", -0.3)):
        states = engine.states(V, energy, lead)
        assert states.unitarity_error < 1e-12
        transmission_eigs = np.linalg.eigvalsh(states.transmission.conj().T @ states.transmission)
        assert np.all(transmission_eigs > -1e-12) and np.all(transmission_eigs < 1 + 1e-12)


@pytest.mark.parametrize("shape", SIZES)
@pytest.mark.parametrize("hopping", HOPPINGS)
@pytest.mark.parametrize("energy", UNITARITY_ENERGIES)
def test_unitarity_with_evanescent_channels(engine, shape, hopping, energy, rng):
    """t^+ t + r^+ r = 1 over the open channels at any energy inside the band; an energy at a
    band edge or with no open channel (classified from docs/theory.md §2) is refused instead."""
    Nx, Ny, Nz = shape
    is_open = channel_kinds(Ny, Nz, energy, hopping)
    if isinstance(is_open, str):
        for lead in ("L", "R"):
            with pytest.raises(ValueError, match=is_open):
                engine.states(np.zeros(shape), energy, lead, hopping=hopping)
        return
    n_open = int(is_open.sum())
    for W in (6.0, 15.0):
        V = rng.uniform(-W / 2, W / 2, shape)
        for lead in ("L", "R"):
            states = engine.states(V, energy, lead, hopping=hopping)
            assert states.psi.shape == (Nx, Ny * Nz, n_open)
            assert states.transmission.shape == states.reflection.shape == (n_open, n_open)
            assert states.unitarity_error < 1e-12


@pytest.mark.parametrize("shape", [(5, 2, 3), (4, 3, 3), (3, 1, 1)])
def test_gneq_is_hermitian_and_shaped(engine, shape, rng):
    V = rng.uniform(-3, 3, shape)
    g = g_neq_from_modes(engine.modes(V), shape)
    assert g.shape == shape + shape
    m = as_matrix(g)
    assert np.abs(m - m.conj().T).max() < 1e-13 * np.abs(m).max()
    # Gneq = G^R(E+) - G^L(E-) by definition, element by element
    g_r = spectral_from_psi(engine.states(V, 0.2, "R").psi)
    g_l = spectral_from_psi(engine.states(V, -0.2, "L").psi)
    assert np.abs(m - (g_r - g_l)).max() < 1e-12


@pytest.mark.parametrize("shape, hopping", [((6, 2, 3), (1.0, 0.4, 0.4)), ((5, 3, 3), (1.0, 0.4, 0.4)),
                                            ((7, 1, 2), (1.0, 0.4, 0.4)), ((6, 4, 3), (1.0, 1.0, 1.0)),
                                            ((5, 3, 4), (1.0, 0.8, 0.6))])
def test_reciprocity_of_transmission(engine, shape, hopping, rng):
    """Time reversal (real H): t_R[k', k] = t_L[-k, -k'] at the same energy (over the open modes;
    -k is open when k is, eps_k being even)."""
    Nx, Ny, Nz = shape
    V = rng.uniform(-4, 4, shape)
    t_r = engine.states(V, 0.2, "R", hopping=hopping).transmission
    t_l = engine.states(V, 0.2, "L", hopping=hopping).transmission
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
def test_mirror_symmetry(engine, shape, hopping, energy, rng):
    """G^L of V equals the mirrored G^R of the mirrored V (checked with the sparse solver for G^L)."""
    V = rng.uniform(-3, 3, shape)
    g_left = greens.lead_spectral(V, energy, "L", hopping)
    g_right_mirror = spectral_from_psi(engine.states(V[::-1], energy, "R", hopping=hopping).psi)
    g_right_mirror = g_right_mirror.reshape(shape + shape)[::-1, :, :, ::-1]
    assert np.abs(g_left - g_right_mirror).max() < 1e-10


@pytest.mark.parametrize("shape", SIZES)
@pytest.mark.parametrize("W", [2.0, 8.0])
def test_against_sparse_green_function(engine, shape, W, rng):
    V = rng.uniform(-W / 2, W / 2, shape)
    for energy in (0.2, -0.2):
        g_ret = as_matrix(greens.retarded_green(V, energy))
        spectral = 1j * (g_ret - g_ret.conj().T)
        parts = {}
        for lead in ("L", "R"):
            parts[lead] = spectral_from_psi(engine.states(V, energy, lead).psi)
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
def test_against_sparse_green_function_with_evanescent_channels(engine, shape, hopping, energy, W, rng):
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
        psi = engine.states(V, energy, lead, hopping=hopping).psi
        assert psi.shape[-1] == is_open.sum()
        parts[lead] = spectral_from_psi(psi)
        reference = as_matrix(greens.lead_spectral(V, energy, lead, hopping))
        assert np.abs(parts[lead] - reference).max() < 1e-10 * max(1.0, np.abs(reference).max())
    assert np.abs(parts["L"] + parts["R"] - spectral).max() < 1e-10 * max(1, np.abs(spectral).max())
    # Gneq of the two energies against the reference, element by element
    g = as_matrix(g_neq_from_modes(engine.modes(V, hopping, e_plus=energy, e_minus=-energy), shape))
    reference = (as_matrix(greens.lead_spectral(V, energy, "R", hopping))
                 - as_matrix(greens.lead_spectral(V, -energy, "L", hopping)))
    assert np.abs(g - reference).max() < 1e-10 * max(1.0, np.abs(reference).max())


@pytest.mark.parametrize("shape, hopping, energy", [
    ((9, 3, 2), (1.0, 0.4, 0.4), 0.2), ((12, 1, 1), (1.0, 0.4, 0.4), 0.2), ((8, 2, 2), (1.0, 0.4, 0.4), 0.2),
    ((9, 4, 4), (1.0, 1.0, 1.0), 0.2), ((8, 3, 2), (1.0, 1.0, 1.0), -2.5), ((10, 4, 3), (1.0, 0.8, 0.6), 1.5),
])
def test_current_is_conserved_through_every_bond(engine, shape, hopping, energy, rng):
    """Inside the sample, the current matrix through every bond equals -t^+ t (R incomers move
    left) and +t^+ t (L incomers): a check of every rebuilt slice, not only of the boundaries
    (with evanescent channels too: they carry no current in the leads, but take part inside)."""
    V = rng.uniform(-4, 4, shape)
    for lead, sign in (("R", -1), ("L", 1)):
        states = engine.states(V, energy, lead, hopping=hopping)
        t = states.transmission
        assert np.abs(bond_currents(states.psi, hopping[0]) - sign * t.conj().T @ t).max() < 1e-12


BAD_INPUTS = [  # (V, lead, hopping, energy, match)
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
def test_bad_input_raises(engine, V, lead, hopping, energy, match):
    with pytest.raises(ValueError, match=match):
        engine.states(V, energy, lead, hopping=hopping)
