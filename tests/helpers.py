"""Helpers the tests share: real processes (mpirun, the CLI), job files, result files, formulas.

Not a test module: tests import it (pytest puts tests/ on the path), never each other. Shared test
*data* lives in conftest.py fixtures.

The launcher is ``$MPIEXEC`` (split like a shell would; default ``mpirun``), so that
``make test MPIEXEC=srun`` starts the child jobs of the tests with srun too.
"""
import itertools
import os
import shlex
import subprocess
import sys
import time
from pathlib import Path

import h5py
import numpy as np

ROOT = Path(__file__).resolve().parents[1]

SMALL_JOB = """
name = "small"
geometry = "cube"
sizes = [4]
W = [6.0]
samples = 22
block_size = 3
seed = 7
cuts = [0.3, 0.9]
"""


def launcher(np_):
    """The command that starts ``np_`` ranks: ``$MPIEXEC -n np_`` (mpirun by default)."""
    return shlex.split(os.environ.get("MPIEXEC", "mpirun")) + ["-n", str(np_)]


def child_env(**extra):
    """Environment for a child job: no trace of an enclosing MPI job.

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


def run_mpi(np_, args, timeout=300, env=None, **kwargs):
    """Run ``$MPIEXEC -n np_ python ARGS`` (real ranks) and return the CompletedProcess."""
    cmd = launcher(np_) + [sys.executable] + [str(a) for a in args]
    return subprocess.run(cmd, env=env or child_env(), cwd=kwargs.pop("cwd", ROOT), capture_output=True,
                          text=True, timeout=timeout, **kwargs)


def run_cli(args, np_=None, timeout=300, **env):
    """``anderson-mpi ARGS`` serially, or under ``$MPIEXEC -n np_``."""
    if np_ is None:
        return subprocess.run([sys.executable, "-m", "anderson_mpi"] + [str(a) for a in args],
                              env=child_env(**env), cwd=ROOT, capture_output=True, text=True,
                              timeout=timeout)
    return run_mpi(np_, ["-m", "anderson_mpi"] + list(args), timeout=timeout, env=child_env(**env))


def start_run(job, out, np_=2, extra=(), **env):
    """Start ``anderson-mpi run JOB --out OUT [extra]`` in the background (own session)."""
    cmd = launcher(np_) + [sys.executable, "-m", "anderson_mpi", "run", str(job), "--out", str(out),
                           *map(str, extra)]
    return subprocess.Popen(cmd, env=child_env(**env), cwd=ROOT, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, start_new_session=True)


def one_line(proc):
    """The one line the suite printed (a launcher adds its own banner about the exit status)."""
    lines = proc.stderr.strip().splitlines()
    if proc.args[0] != sys.executable:
        lines = [line for line in lines if line.startswith("anderson-mpi")]
    assert len(lines) == 1 and "Traceback" not in proc.stderr, proc.stderr
    return lines[0]


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
    """SIGKILL a launcher and every process under it at once, as a node failure would.

    Open MPI's mpirun leaves its session directory (/tmp/ompi.<host>.<uid>/pid.<pid>) behind
    when it is killed like this: it is removed here, as the node's reboot would."""
    import glob
    import shutil
    for p in [pid] + descendants(pid):
        try:
            os.kill(p, sig)
        except ProcessLookupError:
            pass
    for session in glob.glob(f"/tmp/ompi.*.{os.getuid()}/pid.{pid}"):
        shutil.rmtree(session, ignore_errors=True)


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


def read_progress(result_path, event=None):
    """The structured progress records of a run (anderson_mpi.io.progress), oldest first."""
    from anderson_mpi.io.progress import progress_path, read_records
    return read_records(progress_path(str(result_path)), event)


def wait_for_blocks(path, count, proc, timeout=120):
    """Poll the progress records until ``count`` blocks are written (or the run ends)."""
    deadline = time.time() + timeout
    while time.time() < deadline and proc.poll() is None:
        try:
            if len(read_progress(path, "block")) >= count:
                return True
        except FileNotFoundError:
            pass
        time.sleep(0.05)
    return False


def write_job(path, text=SMALL_JOB, **changes):
    """A job file: ``text`` with the keys of ``changes`` replaced (values as TOML source)."""
    lines = text.strip().splitlines()
    for key, value in changes.items():
        lines = [line for line in lines if not line.startswith(f"{key} ")]
        lines.append(f"{key} = {value}")
    path.write_text("\n".join(lines) + "\n")
    return path


def read_totals(path):
    with h5py.File(path, "r") as f:
        assert f["totals/valid"][()] == 1
        return {name: f["totals"][name][()] for name in f["totals"] if name != "valid"}


def assert_totals_equal(a, b, rtol=1e-12):
    assert a.keys() == b.keys()
    for name in a:
        scale = max(np.abs(a[name]).max(), 1e-300)
        assert np.abs(a[name] - b[name]).max() <= rtol * scale, name


def assert_totals_identical(a, b):
    """Bit for bit: the totals are summed in an order that does not depend on the ranks."""
    assert a.keys() == b.keys()
    for name in a:
        x, y = np.atleast_1d(a[name]), np.atleast_1d(b[name])
        assert x.dtype == y.dtype and np.array_equal(x.view(np.uint8), y.view(np.uint8)), name


def eq5(n, x, dn):
    """QSSEP's g1, g2, g3 (paper eq. (5), docs/theory.md §9), written out independently of the
    package: ``x[..., i]`` are the positions."""
    if n == 1:
        return dn * x[..., 0]
    if n == 2:
        a, b = x[..., 0], x[..., 1]
        return dn**2 * (np.minimum(a, b) - a * b)
    a, b, c = x[..., 0], x[..., 1], x[..., 2]
    return dn**3 * (np.minimum(a, np.minimum(b, c)) - a * np.minimum(b, c)
                    - b * np.minimum(c, a) - c * np.minimum(a, b) + 2 * a * b * c)


def bond_currents(psi, tx=1.0):
    """Current matrices J_x = -i tx (Psi_x^+ Psi_{x+1} - Psi_{x+1}^+ Psi_x) through bonds (x, x+1).

    The diagonal is the particle current of each state from slice x to x + 1.
    """
    overlap = np.einsum("xpk,xpl->xkl", psi[:-1].conj(), psi[1:])
    return -1j * tx * (overlap - overlap.conj().transpose(0, 2, 1))


# --- partitions and exact integration, written independently of the package --------------------

def set_partitions(elems):
    """All set partitions of the list `elems` (brute force, independent code)."""
    if not elems:
        yield []
        return
    first, rest = elems[0], elems[1:]
    for part in set_partitions(rest):
        yield [[first]] + part
        for i in range(len(part)):
            yield part[:i] + [[first] + part[i]] + part[i + 1:]


def blocks_cross(a, b):
    """True if blocks a, b cross: p < q < r < s with p, r in one, q, s in the other."""
    for p, r in itertools.combinations(sorted(a), 2):
        inside = [q for q in b if p < q < r]
        outside = [q for q in b if q < p or q > r]
        if inside and outside:
            return True
    return False


def connected(part):
    """Crossing graph of the blocks is connected."""
    seen, todo = {0}, [0]
    while todo:
        i = todo.pop()
        for j in range(len(part)):
            if j not in seen and blocks_cross(part[i], part[j]):
                seen.add(j)
                todo.append(j)
    return len(seen) == len(part)


def simplex_rule(n):
    """Points and weights on 0 < t1 < ... < tn < 1 (collapsed coordinates t_i = u_i ... u_n,
    Jacobian prod u_i^(i-1)) with Gauss-Legendre in each u: exact for polynomials of degree <= n
    in t, which map to degree <= n + n - 1 per u (4 points per direction suffice for n = 4)."""
    q = n + 1
    u, w = np.polynomial.legendre.leggauss(q)
    u, w = (u + 1) / 2, w / 2
    U = np.array(list(itertools.product(u, repeat=n)))
    W = np.prod(np.array(list(itertools.product(w, repeat=n))), axis=1)
    t = np.cumprod(U[:, ::-1], axis=1)[:, ::-1]
    return t, W * np.prod(U ** np.arange(n), axis=1)


def integral_unit_cube(func, n):
    """Integral over [0, 1]^n of a function that is a polynomial of degree <= n on each of the
    n! order simplices (true of every g_n: products of minima): exact up to rounding."""
    t, w = simplex_rule(n)
    total = 0.0
    for perm in itertools.permutations(range(n)):
        x = np.empty_like(t)
        x[:, list(perm)] = t
        total += w @ func(x)
    return total
