"""Shared test machinery.

Under ``mpirun -n P python -m pytest --with-mpi`` every rank runs the collective tests
(marked ``mpi``) together, first; the serial tests are dealt round-robin over the ranks so
that P ranks on few cores do not all repeat the same serial work. Serially (plain
``python -m pytest``) everything not marked ``mpi`` runs in the one process.

Fixtures: ``rng`` (a fixed stream per test), ``engine`` (every engine of the registry, so that
the invariant suite runs on each and two independent methods check each other). Helper
functions (processes, job and result files) are in tests/helpers.py, the synthetic ensemble in
tests/synthetic.py, the independent sparse solver in tests/greens.py.
"""
import os

import pytest


def _world(config):
    if not config.getoption("--with-mpi", default=False):
        return 0, 1
    from mpi4py import MPI
    return MPI.COMM_WORLD.rank, MPI.COMM_WORLD.size


@pytest.hookimpl(tryfirst=True)  # before pytest's tmpdir plugin reads --basetemp
def pytest_configure(config):
    if not config.getoption("--with-mpi", default=False):
        return
    from mpi4py import MPI
    comm = MPI.COMM_WORLD
    # A fresh temporary directory per run, one subdirectory per rank, the rank from MPI itself:
    # launcher variables are not always there (srun) and fixed paths collide between runs/users.
    if config.option.basetemp is None:
        import tempfile
        base = comm.bcast(tempfile.mkdtemp(prefix="anderson-pytest-") if comm.rank == 0 else None)
        config.option.basetemp = os.path.join(base, f"r{comm.rank}")
        config._anderson_basetemp = base
    # Under --with-mpi the serial tests run on some ranks only. Start PETSc with
    # PETSC_COMM_WORLD = COMM_SELF on every rank before any test can start it on COMM_WORLD:
    # petsc4py's exit-time garbage cleanup on PETSC_COMM_WORLD does an MPI_Comm_dup, which
    # hangs the job at exit when only some ranks used PETSc.
    try:
        import petsc4py
    except ImportError:
        return
    petsc4py.init(args=[], comm=MPI.COMM_SELF)


def pytest_sessionfinish(session, exitstatus):
    """Remove this rank's temporary directory after a passing run (kept for a failing one)."""
    base = getattr(session.config, "_anderson_basetemp", None)
    if base and exitstatus == 0:
        import shutil
        shutil.rmtree(session.config.option.basetemp, ignore_errors=True)
        try:
            os.rmdir(base)  # the last rank to finish removes the parent
        except OSError:
            pass


def pytest_collection_modifyitems(config, items):
    rank, size = _world(config)
    if size == 1:
        return
    collective = [item for item in items if item.get_closest_marker("mpi")]
    serial = [item for item in items if not item.get_closest_marker("mpi")]
    mine = serial[rank::size]
    dropped = [item for i, item in enumerate(serial) if i % size != rank]
    if dropped:
        config.hook.pytest_deselected(items=dropped)
    items[:] = collective + mine


@pytest.fixture
def rng(request):
    # A fixed, test-specific stream: reproducible failures.
    import zlib
    import numpy as np
    return np.random.default_rng(zlib.crc32(request.node.nodeid.encode()))


class EngineUnderTest:
    """One engine of the registry as the invariant tests use it: scattering states of one lead at
    one energy, and the stacked mode matrices, both through `anderson_mpi.make_engine`."""

    def __init__(self, name, comm=None):
        self.name, self.comm = name, comm

    def modes(self, V, hopping=(1.0, 0.4, 0.4), e_plus=0.2, e_minus=-0.2):
        import numpy as np
        import anderson_mpi as am
        setup = am.ScatteringSetup.build(np.shape(V), hopping, e_plus, e_minus)
        return am.make_engine(self.name, setup, self.comm).solve(np.ascontiguousarray(V, dtype=float))

    def states(self, V, energy, lead, hopping=(1.0, 0.4, 0.4)):
        import anderson_mpi as am
        if self.name == "transfer":
            return am.scattering_states(V, energy, lead, hopping=hopping)
        return am.petsc_scattering_states(V, energy, lead, hopping=hopping, comm=self.comm)


@pytest.fixture(params=["transfer", "petsc"])
def engine(request):
    """Every scattering engine of the registry (PETSc on one rank: ``COMM_SELF``); the stochastic
    models' engines have their own exact tests (tests/test_chains.py, test_lattice_dephasing.py)."""
    import anderson_mpi.engines as engines
    scattering = {name for name, spec in engines.ENGINES.items() if spec.model == "anderson"}
    assert scattering == {"transfer", "petsc"}, "a new scattering engine: add it to this fixture"
    assert {spec.model for spec in engines.ENGINES.values()} == {"anderson", "qssep", "dephasing"}
    if request.param == "petsc":
        pytest.importorskip("petsc4py", reason="petsc4py is not installed (solver = 'petsc' unavailable)")
        from mpi4py import MPI
        return EngineUnderTest("petsc", MPI.COMM_SELF)
    return EngineUnderTest("transfer")
