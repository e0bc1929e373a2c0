"""The PETSc/MUMPS distributed solver against the transfer matrix (issue 6).

Tests marked ``mpi`` are collective over ``MPI.COMM_WORLD`` (run them under
``mpirun -n P python -m pytest --with-mpi``; they are skipped serially). The unmarked tests use
``MPI.COMM_SELF`` only, since under mpirun each of them runs on one rank alone (see conftest),
or launch their own ``mpirun``.
"""
import subprocess
import sys

import numpy as np
import pytest

from mpi4py import MPI

import anderson_mpi as am
from anderson_mpi.engines.petsc import (petsc_mode_matrices, petsc_scattering_states,
                                       slice_partition)
from helpers import run_mpi

TOL = 1e-9

SHAPES = [  # (Nx, Ny, Nz), W
    ((5, 5, 5), 6.0),     # cube
    ((6, 6, 6), 6.0),     # cube, even
    ((20, 3, 2), 5.0),    # quasi-1d, Ny != Nz
    ((7, 2, 3), 6.0),     # transverse size 2
    ((6, 1, 1), 4.0),     # transverse size 1 (a chain: one column, the Vec solve path)
    ((4, 1, 2), 8.0),     # sizes 1 and 2
    ((3, 4, 3), 6.0),     # fewer slices than ranks under mpirun -n 4
    ((1, 3, 2), 6.0),     # one slice: both self-energies on it
]
IDS = ["x".join(map(str, shape)) for shape, _ in SHAPES]


def relative_error(a, b):
    """``max |a - b| / max |b|``: the agreement measure of the issue."""
    return np.abs(a - b).max() / np.abs(b).max()


def assert_same_states(petsc, transfer):
    assert petsc.psi.shape == transfer.psi.shape
    assert relative_error(petsc.psi, transfer.psi) < TOL
    assert np.abs(petsc.transmission - transfer.transmission).max() < TOL
    assert np.abs(petsc.reflection - transfer.reflection).max() < TOL
    assert petsc.lead == transfer.lead and petsc.energy == transfer.energy
    assert petsc.unitarity_error < 1e-10


def assert_same_modes(petsc, transfer):
    assert petsc.phi.shape == transfer.phi.shape
    assert relative_error(petsc.phi, transfer.phi) < TOL
    assert np.array_equal(petsc.signature, transfer.signature)
    assert np.abs(petsc.transmission_right - transfer.transmission_right).max() < TOL
    assert np.abs(petsc.reflection_right - transfer.reflection_right).max() < TOL
    assert petsc.unitarity_error < 1e-10


# --- collective tests on COMM_WORLD --------------------------------------------------------

@pytest.mark.mpi
@pytest.mark.parametrize("shape, W", SHAPES, ids=IDS)
@pytest.mark.parametrize("lead, energy", [("R", 0.2), ("L", -0.2), ("L", 0.3)])
def test_states_equal_transfer_matrix(shape, W, lead, energy, rng):
    # rng is seeded by the test id, so every rank draws the same sample.
    V = rng.uniform(-W / 2, W / 2, shape)
    petsc = petsc_scattering_states(V, energy, lead, comm=MPI.COMM_WORLD)
    assert_same_states(petsc, am.scattering_states(V, energy, lead))


@pytest.mark.mpi
@pytest.mark.parametrize("shape, W", SHAPES[:4] + SHAPES[6:], ids=IDS[:4] + IDS[6:])
def test_mode_matrices_equal_transfer_matrix(shape, W, rng):
    V = rng.uniform(-W / 2, W / 2, shape)
    assert_same_modes(petsc_mode_matrices(V, comm=MPI.COMM_WORLD), am.mode_matrices(V))


EVANESCENT = [  # (shape, W, hopping, energy): 0 < n_open < N_perp (asserted)
    ((5, 4, 4), 6.0, (1.0, 1.0, 1.0), 0.2),      # isotropic cube-like, 10 of 16 open
    ((8, 3, 3), 6.0, (1.0, 1.0, 1.0), -0.2),     # 4 of 9
    ((6, 4, 3), 4.0, (1.0, 0.8, 0.6), 1.5),      # ty != tz
    ((7, 2, 3), 5.0, (1.0, 1.0, 1.0), -2.5),     # transverse size 2, near the bottom of the band
    ((3, 5, 1), 6.0, (1.0, 1.0, 1.0), 1.5),      # fewer slices than ranks under mpirun -n 4
    ((1, 3, 2), 6.0, (1.0, 1.0, 1.0), 0.2),      # one slice: both self-energies on it
]
EVANESCENT_IDS = ["x".join(map(str, shape)) + f"_E{energy:g}" for shape, _, _, energy in EVANESCENT]


@pytest.mark.mpi
@pytest.mark.parametrize("shape, W, hopping, energy", EVANESCENT, ids=EVANESCENT_IDS)
def test_states_with_evanescent_channels_equal_transfer_matrix(shape, W, hopping, energy, rng):
    """Sigma = -tx U diag(mu) U^+ with the evanescent mu, right-hand sides for the open modes."""
    n_open = am.lead_modes(shape[1], shape[2], energy, hopping).n_open
    assert 0 < n_open < shape[1] * shape[2]
    V = rng.uniform(-W / 2, W / 2, shape)
    for lead in ("R", "L"):
        petsc = petsc_scattering_states(V, energy, lead, hopping=hopping, comm=MPI.COMM_WORLD)
        assert petsc.psi.shape == (shape[0], shape[1] * shape[2], n_open)
        assert_same_states(petsc, am.scattering_states(V, energy, lead, hopping=hopping))
    clean = petsc_scattering_states(np.zeros(shape), energy, "R", hopping=hopping, comm=MPI.COMM_WORLD)
    assert np.abs(clean.reflection).max() < 1e-12 and clean.conductance == pytest.approx(n_open, abs=1e-11)


@pytest.mark.mpi
@pytest.mark.parametrize("shape, hopping", [((6, 3, 3), (1.0, 1.0, 1.0)), ((5, 4, 3), (1.0, 0.7, 0.5)),
                                            ((3, 4, 4), (1.0, 1.0, 1.0))])
def test_mode_matrices_with_evanescent_channels_equal_transfer_matrix(shape, hopping, rng):
    # n_open(E+) != n_open(E-) for the first two (8 and 4 of 9; 11 and 9 of 12)
    V = rng.uniform(-3, 3, shape)
    petsc = petsc_mode_matrices(V, hopping, comm=MPI.COMM_WORLD)
    transfer = am.mode_matrices(V, hopping)
    setup = am.ScatteringSetup.build(shape, hopping)
    assert petsc.phi.shape[-1] == setup.lead_plus.n_open + setup.lead_minus.n_open < 2 * setup.n_perp
    assert_same_modes(petsc, transfer)


@pytest.mark.mpi
def test_equal_energies_share_one_factorization(rng):
    # e_plus == e_minus: both leads are solved against one factorization (2 N_perp columns).
    V = rng.uniform(-3, 3, (6, 3, 4))
    hopping = (1.0, 0.3, 0.35)
    petsc = petsc_mode_matrices(V, hopping, e_plus=0.1, e_minus=0.1, comm=MPI.COMM_WORLD)
    assert_same_modes(petsc, am.mode_matrices(V, hopping, e_plus=0.1, e_minus=0.1))


@pytest.mark.mpi
def test_clean_sample_transmits_every_channel():
    states = petsc_scattering_states(np.zeros((5, 3, 2)), 0.2, "R", comm=MPI.COMM_WORLD)
    assert np.abs(states.reflection).max() < 1e-12
    assert states.conductance == pytest.approx(6, abs=1e-11)


@pytest.mark.mpi
def test_groups_of_a_split_communicator_solve_different_samples():
    world = MPI.COMM_WORLD
    color = world.rank // 2
    group = world.Split(color, world.rank)
    try:
        # one sample per group; different groups solve different samples at the same time
        V = np.random.default_rng(100 + color).uniform(-3, 3, (5, 4, 3))
        petsc = petsc_scattering_states(V, 0.2, "R", comm=group)
        assert_same_states(petsc, am.scattering_states(V, 0.2, "R"))
        modes = petsc_mode_matrices(V, comm=group)
        assert_same_modes(modes, am.mode_matrices(V))
        # the samples really differ between groups
        conductances = world.allgather(petsc.conductance)
        assert len(set(conductances[::2])) == (world.size + 1) // 2
    finally:
        group.Free()


@pytest.mark.mpi
def test_ranks_passing_different_samples_all_raise():
    world = MPI.COMM_WORLD
    if world.size == 1:
        pytest.skip("needs two ranks to disagree")
    V = np.full((3, 2, 2), float(world.rank == 0))
    with pytest.raises(ValueError, match="different inputs"):
        petsc_scattering_states(V, 0.2, "R", comm=world)


# --- one-process tests (COMM_SELF) and a real mpirun ---------------------------------------

@pytest.mark.parametrize("shape", [(6, 3, 2), (1, 1, 1), (2, 1, 1), (1, 4, 4)])
def test_self_communicator_equals_transfer_matrix(shape, rng):
    # the tiny shapes are cliques, which MUMPS's PORD ordering would exit() on (AMD is used)
    V = rng.uniform(-3, 3, shape)
    for lead in ("L", "R"):
        petsc = petsc_scattering_states(V, 0.2, lead, comm=MPI.COMM_SELF)
        assert_same_states(petsc, am.scattering_states(V, 0.2, lead))
    assert_same_modes(petsc_mode_matrices(V, comm=MPI.COMM_SELF), am.mode_matrices(V))


def test_mode_matrices_reject_band_edge_and_closed_bands():
    with pytest.raises(ValueError, match="e_plus: band edge"):
        petsc_mode_matrices(np.zeros((2, 4, 4)), (1, 0.45, 0.45), e_plus=0.2, e_minus=-0.25,
                            comm=MPI.COMM_SELF)
    with pytest.raises(ValueError, match="e_minus: no open channel"):
        petsc_mode_matrices(np.zeros((2, 2, 2)), (1, 1, 1), e_plus=0.2, e_minus=-4.5,
                            comm=MPI.COMM_SELF)


@pytest.mark.parametrize("shape, hopping", [((4, 3, 3), (1.0, 1.0, 1.0)), ((2, 1, 4), (1.0, 1.0, 1.0))])
def test_self_communicator_with_evanescent_channels(shape, hopping, rng):
    V = rng.uniform(-3, 3, shape)
    for lead, energy in (("L", -0.2), ("R", 0.2)):
        petsc = petsc_scattering_states(V, energy, lead, hopping=hopping, comm=MPI.COMM_SELF)
        assert_same_states(petsc, am.scattering_states(V, energy, lead, hopping=hopping))
    assert_same_modes(petsc_mode_matrices(V, hopping, comm=MPI.COMM_SELF), am.mode_matrices(V, hopping))


def test_slice_partition_covers_every_slice_once():
    assert slice_partition(10, 4).tolist() == [0, 3, 6, 8, 10]
    assert slice_partition(2, 4).tolist() == [0, 1, 2, 2, 2]


def test_module_imports_without_petsc4py():
    # petsc4py is imported lazily: blocking it must not break `import anderson_mpi.petsc_solver`
    code = ("import sys; sys.modules['petsc4py'] = None; "
            "import anderson_mpi.engines.petsc as m; print(m.petsc_mode_matrices.__name__)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert "petsc_mode_matrices" in out.stdout


MPIRUN_CHECK = """
import sys
import numpy as np
from mpi4py import MPI
import anderson_mpi as am
from anderson_mpi.engines.petsc import petsc_mode_matrices, petsc_scattering_states

comm = MPI.COMM_WORLD
worst = 0.0
for shape, seed, hopping in (((6, 6, 6), 1, (1, 0.4, 0.4)), ((12, 3, 2), 2, (1, 0.4, 0.4)),
                             ((6, 6, 6), 3, (1, 1, 1))):  # the last with evanescent channels
    V = np.random.default_rng(seed).uniform(-3, 3, shape)
    for lead in ("R", "L"):
        p = petsc_scattering_states(V, 0.2, lead, hopping=hopping, comm=comm)
        t = am.scattering_states(V, 0.2, lead, hopping=hopping)
        worst = max(worst, np.abs(p.psi - t.psi).max() / np.abs(t.psi).max())
    p, t = petsc_mode_matrices(V, hopping, comm=comm), am.mode_matrices(V, hopping)
    worst = max(worst, np.abs(p.phi - t.phi).max() / np.abs(t.phi).max())
worst = comm.allreduce(worst, op=MPI.MAX)
if comm.rank == 0:
    # PETSc used on one rank only: the job must still exit (PETSc's exit-time cleanup is
    # collective over PETSC_COMM_WORLD, so the solver initialises it on COMM_SELF).
    V = np.random.default_rng(3).uniform(-3, 3, (4, 2, 2))
    p, t = petsc_mode_matrices(V, comm=MPI.COMM_SELF), am.mode_matrices(V)
    worst = max(worst, np.abs(p.phi - t.phi).max() / np.abs(t.phi).max())
print(f"rank {comm.rank}/{comm.size} worst {worst:.2e}", flush=True)
sys.exit(0 if worst < 1e-9 else 1)
"""


def test_real_mpirun_two_ranks_agree():
    # a timeout here means a hang at exit (see petsc_solver._petsc)
    result = run_mpi(2, ["-c", MPIRUN_CHECK], timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "rank 0/2" in result.stdout and "rank 1/2" in result.stdout
