"""What only the transfer-matrix engine promises (long samples, messages, lead modes); the
invariants every engine satisfies are in tests/test_invariants.py."""
import numpy as np
import pytest

import anderson_mpi as am
from helpers import bond_currents

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
