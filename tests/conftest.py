"""Shared test machinery.

Under ``mpirun -n P python -m pytest --with-mpi`` every rank runs the collective tests
(marked ``mpi``) together, first; the serial tests are dealt round-robin over the ranks so
that P ranks on few cores do not all repeat the same serial work. Serially (plain
``python -m pytest``) everything not marked ``mpi`` runs in the one process.
"""
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


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


def child_env(**extra):
    """Environment for a child ``mpirun``: no trace of an enclosing MPI job.

    A test that itself runs under mpirun inherits OMPI_/PMIX_ variables that would make a
    nested mpirun attach to the parent job; only the root/oversubscribe switches are kept.
    """
    keep = {"OMPI_ALLOW_RUN_AS_ROOT", "OMPI_ALLOW_RUN_AS_ROOT_CONFIRM",
            "OMPI_MCA_rmaps_base_oversubscribe"}
    env = {k: v for k, v in os.environ.items()
           if not (k.startswith(("OMPI_", "PMIX_", "PMI_", "HYDRA_", "OPAL_", "PRTE_")) and k not in keep)}
    env.update({"OMPI_ALLOW_RUN_AS_ROOT": "1", "OMPI_ALLOW_RUN_AS_ROOT_CONFIRM": "1",
                "OMPI_MCA_rmaps_base_oversubscribe": "1", "OMP_NUM_THREADS": "1",
                "OPENBLAS_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"})
    env.update({k: str(v) for k, v in extra.items()})
    return env


def run_mpi(np_, args, timeout=300, **kwargs):
    """Run ``mpirun -n np_ python ARGS`` (real ranks) and return the CompletedProcess."""
    cmd = ["mpirun", "-n", str(np_), sys.executable] + [str(a) for a in args]
    return subprocess.run(cmd, env=child_env(), cwd=kwargs.pop("cwd", ROOT), capture_output=True,
                          text=True, timeout=timeout, **kwargs)


def descendants(pid):
    """All live descendants of ``pid`` (mpirun puts its ranks in process groups of their own)."""
    children = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as fh:
                    ppid = int(fh.read().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(ppid, []).append(int(entry))
    found, todo = [], [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


def kill_tree(pid, sig=9):
    """SIGKILL a launcher and every process under it at once, as a node failure would."""
    for p in [pid] + descendants(pid):
        try:
            os.kill(p, sig)
        except ProcessLookupError:
            pass


def read_progress(result_path, event=None):
    """The structured progress records of a run (anderson_mpi.progress), oldest first."""
    from anderson_mpi.io.progress import progress_path, read_records
    return read_records(progress_path(str(result_path)), event)


def rank_pids(launcher_pid):
    """``{MPI rank: pid}`` of the ranks under a launcher (from each process's environment)."""
    ranks = {}
    for pid in descendants(launcher_pid):
        try:
            with open(f"/proc/{pid}/environ", "rb") as fh:
                env = dict(item.split(b"=", 1) for item in fh.read().split(b"\0") if b"=" in item)
            with open(f"/proc/{pid}/cmdline", "rb") as fh:
                cmd = fh.read()
        except OSError:
            continue
        if b"python" in cmd and b"OMPI_COMM_WORLD_RANK" in env:
            ranks[int(env[b"OMPI_COMM_WORLD_RANK"])] = pid
    return ranks


@pytest.fixture
def rng(request):
    # A fixed, test-specific stream: reproducible failures.
    import zlib
    import numpy as np
    return np.random.default_rng(zlib.crc32(request.node.nodeid.encode()))
