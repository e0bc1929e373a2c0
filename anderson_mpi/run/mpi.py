"""MPI helpers of a job: rank-tagged logging, abort-on-error, stop signals, BLAS threads, groups.

The communicator is always passed in; nothing here holds a module-level communicator.
"""
from __future__ import annotations

import logging
import os
import signal
import sys
import threading
import traceback

from ..errors import OneLineError

__all__ = ["get_logger", "abort_on_error", "install_stop_handlers",
           "limit_blas_threads", "blas_info", "worker_groups"]

EXIT_STOPPED = 143  # 128 + SIGTERM, what schedulers expect from a job stopped by SIGTERM


def get_logger(comm, name="anderson_mpi"):
    """A logger that tags every line with the rank; ranks other than 0 only warn."""
    logger = logging.getLogger(f"{name}.r{comm.rank}")
    if not logger.handlers:
        handler = logging.StreamHandler(sys.stdout if comm.rank == 0 else sys.stderr)
        handler.setFormatter(logging.Formatter(
            f"%(asctime)s [rank {comm.rank}/{comm.size}] %(levelname)s %(message)s", "%H:%M:%S"))
        logger.addHandler(handler)
        logger.propagate = False
    logger.setLevel(logging.INFO if comm.rank == 0 else logging.WARNING)
    return logger


def abort_on_error(comm, func, *args, one_line=(), on_abort=None, **kwargs):
    """Run ``func``; an exception on any rank aborts the whole job instead of hanging it.

    The failing rank prints its error, calls ``on_abort`` (if given: e.g. release its output
    locks) and ``MPI_Abort``, which ends every rank of the job with a non-zero status.
    Exceptions of the types in ``one_line`` (and `OneLineError`) print one line; anything else
    also prints the traceback.
    """
    try:
        return func(*args, **kwargs)
    except SystemExit:
        raise
    except BaseException as err:  # noqa: BLE001 - anything must end the job, not hang it
        sys.stdout.flush()
        sys.stderr.write(f"anderson-mpi: error on rank {comm.rank}: {type(err).__name__}: {err}\n")
        if not isinstance(err, (OneLineError,) + tuple(one_line)):
            traceback.print_exc(file=sys.stderr)
        sys.stderr.flush()
        if on_abort is not None:
            on_abort()
        comm.Abort(3)


def install_stop_handlers(comm, signals=(signal.SIGTERM, signal.SIGINT), on_stop=None):
    """SIGTERM (scancel, a time limit, mpirun forwarding) or SIGINT ends the whole job at once.

    A Python signal handler runs only between bytecodes of the main thread, which may sit in
    an MPI collective for a long time; so the C-level handler's wake-up byte is read by a
    watcher thread, which calls ``MPI_Abort`` (mpi4py initialises MPI with thread support).
    Done blocks stay on disk (the file's metadata is final), so ``--resume`` continues exactly.
    ``on_stop`` runs first on the rank that got the signal (e.g. release its output locks).
    """
    read_fd, write_fd = os.pipe()
    os.set_blocking(write_fd, False)
    names = {int(s): signal.Signals(s).name for s in signals}

    def stop(signum):
        sys.stderr.write(f"anderson-mpi: rank {comm.rank} received {names.get(signum, signum)}: "
                         "stopping the job (done blocks are kept; continue with --resume)\n")
        sys.stderr.flush()
        if on_stop is not None:
            try:
                on_stop()
            except Exception:  # noqa: BLE001 - stopping must not fail
                pass
        comm.Abort(EXIT_STOPPED)

    def watch():
        while True:
            data = os.read(read_fd, 1)
            if data and data[0] in names:
                stop(data[0])

    def handler(signum, frame):  # the main thread got there first
        stop(signum)

    for s in signals:
        signal.signal(s, handler)
    signal.set_wakeup_fd(write_fd, warn_on_full_buffer=False)
    threading.Thread(target=watch, name="stop-signal-watcher", daemon=True).start()


_THREAD_VARIABLES = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS",
                     "BLIS_NUM_THREADS", "GOTO_NUM_THREADS")


def limit_blas_threads(threads):
    """``threads`` BLAS/OpenMP threads in every BLAS this process has loaded or will load.

    The environment variables reach libraries loaded later (PETSc/MUMPS load the system
    ``libblas.so.3``, e.g. Debian's OpenBLAS, only when petsc4py is imported); threadpoolctl
    limits those already loaded. Call it again after loading a new library to be sure.
    """
    for name in _THREAD_VARIABLES:
        os.environ[name] = str(threads)
    from threadpoolctl import threadpool_limits
    threadpool_limits(threads)


def blas_info():
    """``[{library, api, threads, version}]`` of every BLAS/OpenMP library loaded now."""
    from threadpoolctl import threadpool_info
    return [{"library": i.get("filepath"), "api": i.get("internal_api"),
             "threads": i.get("num_threads"), "version": i.get("version")} for i in threadpool_info()]


def worker_groups(comm, group_size):
    """Split ``comm`` into groups of ``group_size`` consecutive ranks (one sample per group).

    Returns
    -------
    group_comm : Comm
        The ranks that work on one sample together.
    group_index, n_groups : int
    """
    if group_size < 1 or comm.size % group_size:
        raise ValueError(f"petsc_group_size={group_size} must divide the number of ranks ({comm.size})")
    index = comm.rank // group_size
    return comm.Split(index, comm.rank), index, comm.size // group_size
