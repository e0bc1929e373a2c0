"""The memory preflight: refuse a job whose runs need more memory per rank than a rank has.

Needed: `anderson_mpi.run.cost.memory_per_rank` of the job's largest run (the mode matrices of a
sample, the largest working set of the engine or an observable group, a block of sums, the
interpreter). Available: the memory of the node divided by the ranks on it, or less where a
limit says so: the cgroup of the process (what Slurm enforces with ``ConstrainRAMSpace``, and
containers), ``SLURM_MEM_PER_CPU`` times the CPUs of a task, ``SLURM_MEM_PER_NODE`` divided by
the ranks on the node. The node's memory is ``MemAvailable`` of /proc/meminfo (what can be
allocated without swapping, so other processes count). A user who knows better states the
memory of a rank with the job key ``memory_per_rank`` or ``--memory-per-rank`` (e.g. "16G").

Every rank computes the limit of its own node; the job refuses when any rank is short, so the
decision is the same on every rank (an Allreduce) and nothing is allocated before it.
"""
from __future__ import annotations

import os
import re

from ..errors import MemoryPlanError, PlanError
from .cost import memory_per_rank

__all__ = ["parse_size", "format_size", "node_limits", "available_per_rank", "check_memory"]

_UNITS = {"": 1, "B": 1, "K": 2**10, "M": 2**20, "G": 2**30, "T": 2**40, "P": 2**50}


def parse_size(value, field="memory_per_rank"):
    """Bytes of a size such as ``"16G"``, ``"512 MiB"``, ``"1.5T"`` or a number of GiB."""
    if isinstance(value, bool):
        raise PlanError(f"{field}: expected a size such as \"16G\", got {value!r}")
    if isinstance(value, (int, float)):
        if value <= 0:
            raise PlanError(f"{field}: must be > 0, got {value!r}")
        return int(value * 2**30)
    match = re.fullmatch(r"\s*([0-9]*\.?[0-9]+)\s*([KMGTP]?)(i?B)?\s*", str(value), re.IGNORECASE)
    if not match or float(match.group(1)) <= 0:
        raise PlanError(f"{field}: expected a size such as \"16G\" or \"512MiB\", got {value!r}")
    return int(float(match.group(1)) * _UNITS[match.group(2).upper()])


def format_size(n):
    for unit in ("B", "KiB", "MiB", "GiB", "TiB", "PiB"):
        if abs(n) < 1024 or unit == "PiB":
            return f"{int(n)} B" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024


def _meminfo_available():
    try:
        with open("/proc/meminfo") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None


def _cgroup_limit():
    """The memory limit of this process's cgroup (v2 or v1), None without one."""
    try:
        with open("/proc/self/cgroup") as fh:
            entries = [line.strip().split(":", 2) for line in fh if line.strip()]
    except OSError:
        return None
    candidates = []
    for _, controllers, path in entries:
        if controllers == "":  # cgroup v2
            candidates.append(f"/sys/fs/cgroup{path}/memory.max")
        elif "memory" in controllers.split(","):
            candidates.append(f"/sys/fs/cgroup/memory{path}/memory.limit_in_bytes")
    candidates += ["/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes"]
    for candidate in candidates:
        try:
            with open(candidate) as fh:
                text = fh.read().strip()
        except OSError:
            continue
        if text and text != "max":
            limit = int(text)
            if limit < 2**60:  # v1 reports "no limit" as a huge number
                return limit
    return None


def node_limits(ranks_on_node, environ=None):
    """``[(bytes per rank, why), ...]`` of every limit that applies to a rank of this node."""
    env = os.environ if environ is None else environ
    ranks = max(int(ranks_on_node), 1)
    limits = []
    available = _meminfo_available()
    if available:
        limits.append((available // ranks, f"{format_size(available)} available on this node / {ranks} rank(s)"))
    cgroup = _cgroup_limit()
    if cgroup:
        limits.append((cgroup // ranks, f"cgroup limit {format_size(cgroup)} / {ranks} rank(s)"))
    if env.get("SLURM_MEM_PER_CPU", "").isdigit():
        cpus = int(env["SLURM_CPUS_PER_TASK"]) if env.get("SLURM_CPUS_PER_TASK", "").isdigit() else 1
        per = int(env["SLURM_MEM_PER_CPU"]) * 2**20 * cpus
        limits.append((per, f"SLURM_MEM_PER_CPU x {cpus} CPU(s) = {format_size(per)}"))
    if env.get("SLURM_MEM_PER_NODE", "").isdigit() and int(env["SLURM_MEM_PER_NODE"]) > 0:
        node = int(env["SLURM_MEM_PER_NODE"]) * 2**20
        limits.append((node // ranks, f"SLURM_MEM_PER_NODE {format_size(node)} / {ranks} rank(s)"))
    return limits


def available_per_rank(comm, stated=None):
    """``(bytes, why)`` a rank of ``comm`` may use: the smallest limit on any rank's node
    (collective), or the ``stated`` bytes the user gave."""
    if stated is not None:
        return int(stated), "stated by memory_per_rank / --memory-per-rank"
    from mpi4py import MPI
    local = comm.Split_type(MPI.COMM_TYPE_SHARED)
    ranks_here = local.size
    local.Free()
    limits = node_limits(ranks_here)
    mine = min(limits) if limits else (float("inf"), "no limit known")
    smallest = comm.allreduce(mine[0], op=MPI.MIN)
    # the reason of the rank that has the smallest limit, known to every rank
    why = comm.allreduce(mine[1] if mine[0] == smallest else "", op=MPI.MAX)
    return smallest, why


def check_memory(runs, available, why):
    """Raise `MemoryPlanError` (one line) if a run needs more than ``available`` bytes per rank."""
    need, worst = max((memory_per_rank(run), run.label) for run in runs)
    if need > available:
        raise MemoryPlanError(
            f"memory: run {worst} needs about {format_size(need)} per rank, a rank has "
            f"{format_size(available)} ({why}); use fewer ranks per node, smaller sizes, or state "
            f"the memory of a rank with memory_per_rank / --memory-per-rank if you know better")
    return need
