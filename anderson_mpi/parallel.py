"""Rank bookkeeping: rank-tagged logging, abort-on-error, worker groups, block dealing."""
from __future__ import annotations

import logging
import sys
import traceback

__all__ = ["get_logger", "abort_on_error", "deal_rounds", "worker_groups"]


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


def abort_on_error(comm, func, *args, **kwargs):
    """Run ``func``; an exception on any rank aborts the whole job instead of hanging it.

    The failing rank prints its error (one line first, then the traceback) and calls
    ``MPI_Abort``, which ends every rank of the job with a non-zero status.
    """
    try:
        return func(*args, **kwargs)
    except SystemExit:
        raise
    except BaseException as err:  # noqa: BLE001 - anything must end the job, not hang it
        sys.stdout.flush()
        sys.stderr.write(f"anderson-mpi: error on rank {comm.rank}: {type(err).__name__}: {err}\n")
        traceback.print_exc(file=sys.stderr)
        sys.stderr.flush()
        comm.Abort(3)


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


def deal_rounds(pending, n_groups):
    """Deal the pending blocks to groups in rounds: round r gives block pending[r*G + g] to group g.

    Returns
    -------
    list of list
        One list per round with the block of every group (None where the group idles).
    """
    rounds = []
    for start in range(0, len(pending), n_groups):
        chunk = list(pending[start:start + n_groups])
        rounds.append(chunk + [None] * (n_groups - len(chunk)))
    return rounds
