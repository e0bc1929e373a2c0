"""What every benchmark shares: one timing helper, one memory method, job files, launchers.

Time: `best_of` (best and median of repeated calls) and `interleaved` (several candidates
timed in turn, A B A B ..., so that a machine whose speed drifts does not favour one).
Memory: `PeakRSS`, the resident-set peak of this process during a block above its resident
set before (``VmHWM`` reset through ``/proc/self/clear_refs``; Linux), which counts numpy,
MPI buffers and libraries' own allocations alike. Benchmarks print tables; they assert nothing.
"""
from __future__ import annotations

import ctypes
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

__all__ = ["best_of", "interleaved", "PeakRSS", "blas_line", "write_job", "mpirun", "MB"]

MB = 2**20


def best_of(func, repeats=3, comm=None):
    """``(best, median)`` wall seconds of ``repeats`` calls of ``func``.

    With ``comm`` the calls are collective: each is started after a barrier and timed by the
    slowest rank (every rank gets the same numbers).
    """
    times = []
    for _ in range(repeats):
        if comm is not None:
            comm.Barrier()
        start = time.perf_counter()
        func()
        elapsed = time.perf_counter() - start
        if comm is not None:
            from mpi4py import MPI
            elapsed = comm.allreduce(elapsed, op=MPI.MAX)
        times.append(elapsed)
    return min(times), float(np.median(times))


def interleaved(funcs, repeats=5):
    """Best wall seconds of each of ``funcs`` (a dict), timed in turn ``repeats`` times."""
    best = {name: np.inf for name in funcs}
    for _ in range(repeats):
        for name, func in funcs.items():
            start = time.perf_counter()
            func()
            best[name] = min(best[name], time.perf_counter() - start)
    return best


def _trim():
    """Return freed heap to the OS (glibc), so the baseline RSS is not inflated by old garbage."""
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):  # pragma: no cover - not glibc
        pass


def _status_kb(field):
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise KeyError(field)


class PeakRSS:
    """Peak resident memory of this process during a ``with`` block, above its resident set before.

    ``VmHWM`` reset by writing 5 to ``/proc/self/clear_refs`` (Linux >= 4.0) when possible,
    else ``ru_maxrss`` (never reset: a lower bound, growth above the earlier maximum). The
    result is ``self.mb``; ``self.method`` says which was used.
    """

    def __init__(self):
        try:
            self._reset()
            _status_kb("VmHWM")
            self.method = "peak RSS (VmHWM reset per call)"
        except OSError:  # pragma: no cover - non-Linux or restricted /proc
            self.method = "ru_maxrss delta (lower bound)"

    @staticmethod
    def _reset():
        with open("/proc/self/clear_refs", "w") as refs:
            refs.write("5")

    def __enter__(self):
        _trim()
        if self.method.startswith("peak RSS"):
            self._reset()
            self.before = _status_kb("VmRSS")
        else:  # pragma: no cover
            self.before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        return self

    def __exit__(self, *exc):
        if self.method.startswith("peak RSS"):
            peak = _status_kb("VmHWM")
        else:  # pragma: no cover
            peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        self.mb = max(peak - self.before, 0) * 1024 / MB
        return False


def blas_line():
    from threadpoolctl import threadpool_info
    libs = [f"{i['internal_api']} {i.get('version')} ({i.get('architecture')}, {i.get('num_threads')} thread(s))"
            for i in threadpool_info() if i["user_api"] == "blas"]
    return "BLAS: " + "; ".join(libs) + f" | OPENBLAS_CORETYPE = {os.environ.get('OPENBLAS_CORETYPE', 'unset')}"


def _toml_value(value):
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return f'"{value}"'
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    return repr(value)


def write_job(directory, job):
    """Write a flat job (dict) as TOML into ``directory``; return its path."""
    path = Path(directory) / f"{job.get('name', 'bench')}.toml"
    path.write_text("".join(f"{key} = {_toml_value(value)}\n" for key, value in job.items()))
    return path


def mpirun(np_, args, **env):
    """``mpirun -n np_ python -m anderson_mpi ARGS`` with one BLAS thread per rank."""
    environ = {k: v for k, v in os.environ.items() if not k.startswith(("OMPI_COMM", "PMIX_"))}
    environ.update(OMPI_ALLOW_RUN_AS_ROOT="1", OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1",
                   OMPI_MCA_rmaps_base_oversubscribe="1", OMP_NUM_THREADS="1",
                   OPENBLAS_NUM_THREADS="1", **env)
    cmd = ["mpirun", "-n", str(np_), sys.executable, "-m", "anderson_mpi"] + [str(a) for a in args]
    return subprocess.run(cmd, env=environ, capture_output=True, text=True, check=True)


def temporary_directory():
    return tempfile.TemporaryDirectory(prefix="anderson-bench-")
