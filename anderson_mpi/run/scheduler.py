"""Who computes which seed block: one pool of work per job, dealt dynamically, largest first.

Every pending (run, block) of every run the ranks own goes into one list, sorted by its
expected cost (`block_cost`: the engine's and the observable groups' declared costs), most
expensive first, so that runs of different sizes overlap and the cheap blocks fill the gaps at
the end. Rank 0 coordinates and works too: a thread on rank 0 answers the other workers'
requests ("give me the next item", carrying the record of the block just written) while its
main thread computes. Workers are ranks, or the groups of ranks that solve one PETSc sample
together (their leader asks and broadcasts to the group). Without MPI_THREAD_MULTIPLE the
coordinator answers between its own samples instead (slower to answer, same results).

`simulate` is the same dealing on the cost model, for `anderson-mpi plan --ranks P`: the
expected utilization of P ranks, and a block size that would reach a target.

Which block a rank computes never changes a number: the samples of a block have fixed global
indices, and the totals are summed in a fixed order (`anderson_mpi.io.store`).
"""
from __future__ import annotations

import heapq
import threading
import time
from dataclasses import dataclass, replace

from .cost import block_seconds

__all__ = ["block_cost", "WorkItem", "work_items", "simulate", "utilization_of_plan",
           "suggest_block_size", "Coordinator", "WorkQueue"]

REQUEST, ASSIGN = 11, 12


def block_cost(run, block):
    """Expected seconds of one block (`anderson_mpi.run.cost`: the engine's and the observable
    groups' declared costs at the reference machine's rates)."""
    return block_seconds(run, block)


@dataclass(frozen=True, order=True)
class WorkItem:
    """One pending seed block; ordered so that sorting puts the most expensive first."""

    neg_cost: float
    run_index: int
    block: int

    @property
    def cost(self):
        return -self.neg_cost


def work_items(runs, pending):
    """The job's pool: ``pending[i]`` are the blocks of ``runs[i]`` still to do; largest first."""
    items = [WorkItem(-block_cost(runs[i], b), i, b) for i, blocks in pending.items() for b in blocks]
    return sorted(items)


def simulate(costs, workers):
    """Makespan and utilization of dealing ``costs`` (in this order) to ``workers`` on demand.

    Each worker takes the next item when it is free (what the coordinator does), so this is
    list scheduling; with costs sorted decreasingly it is LPT.
    """
    if not costs:
        return 0.0, 1.0
    free = [0.0] * workers
    for cost in costs:
        t = heapq.heappop(free)
        heapq.heappush(free, t + cost)
    makespan = max(free)
    return makespan, sum(costs) / (workers * makespan)


def _lockstep(costs_by_run, workers):
    """The old dealing for comparison: runs one after the other, rounds of one block per worker."""
    makespan = 0.0
    for costs in costs_by_run:
        for start in range(0, len(costs), workers):
            makespan += max(costs[start:start + workers])
    total = sum(sum(c) for c in costs_by_run)
    return makespan, (total / (workers * makespan) if makespan else 1.0)


def utilization_of_plan(runs, ranks, group_size=1, lockstep=False, makespan=False):
    """Expected utilization of ``ranks`` ranks on all blocks of ``runs`` (cost model); with
    ``makespan`` the pair (expected seconds of the job, utilization)."""
    workers = max(ranks // group_size, 1)
    if lockstep:
        result = _lockstep([[block_cost(r, b) for b in range(r.n_blocks)] for r in runs], workers)
    else:
        items = work_items(runs, {i: range(r.n_blocks) for i, r in enumerate(runs)})
        result = simulate([item.cost for item in items], workers)
    return result if makespan else result[1]


def suggest_block_size(runs, ranks, group_size=1, target=0.9):
    """The largest block size (at most today's) whose expected utilization reaches ``target``."""
    current = runs[0].block_size
    for size in range(current, 0, -1):
        trial = [replace(r, block_size=size) for r in runs]
        if utilization_of_plan(trial, ranks, group_size) >= target:
            return size, utilization_of_plan(trial, ranks, group_size)
    return 1, utilization_of_plan([replace(r, block_size=1) for r in runs], ranks, group_size)


class WorkQueue:
    """The ordered pool, shared by the coordinator thread and rank 0's own worker (locked)."""

    def __init__(self, items):
        self._items = list(items)
        self._next = 0
        self._lock = threading.Lock()

    def take(self):
        with self._lock:
            if self._next >= len(self._items):
                return None
            item = self._items[self._next]
            self._next += 1
            return item

    def __len__(self):
        return len(self._items)


class Coordinator:
    """Deals the pool over the workers of ``comm`` (collective to create, on every rank).

    Parameters
    ----------
    comm : mpi4py communicator
        All ranks of the job; a private duplicate carries the scheduling messages.
    leaders : list of int
        World ranks that ask for work (rank 0 and the leaders of the other groups).
    items : list of WorkItem
        Only rank 0's copy is used.
    on_report : callable
        ``on_report(record)`` on rank 0 for every finished block (from any worker), in the
        order the reports arrive. Called with the queue lock not held.
    """

    def __init__(self, comm, leaders, items, on_report):
        from mpi4py import MPI
        self.MPI = MPI
        self.comm = comm.Dup()
        self.rank = self.comm.rank
        self.remote = [r for r in leaders if r != 0]
        self.on_report = on_report
        self.queue = WorkQueue(items) if self.rank == 0 else None
        self._report_lock = threading.Lock()
        self._served_out = 0
        self._thread = None
        self.threaded = MPI.Query_thread() == MPI.THREAD_MULTIPLE
        if self.rank == 0 and self.threaded and self.remote:
            self._thread = threading.Thread(target=self._serve_forever, name="block-coordinator",
                                            daemon=True)
            self._thread.start()

    # --- rank 0 ---------------------------------------------------------------------------
    def _report(self, record):
        if record is not None:
            with self._report_lock:
                self.on_report(record)

    def _serve_one(self, status):
        record = self.comm.recv(source=status.Get_source(), tag=REQUEST)
        self._report(record)
        item = self.queue.take()
        self.comm.send(item, dest=status.Get_source(), tag=ASSIGN)
        if item is None:
            self._served_out += 1

    def serve_pending(self):
        """Answer every request waiting now (rank 0 between samples, without a thread)."""
        status = self.MPI.Status()
        while self._served_out < len(self.remote) and self.comm.Iprobe(
                source=self.MPI.ANY_SOURCE, tag=REQUEST, status=status):
            self._serve_one(status)

    def _serve_forever(self):
        # Iprobe and a short sleep rather than a blocking receive: Open MPI's blocking calls
        # busy-poll, and this thread must not take a core from rank 0's own work.
        status = self.MPI.Status()
        while self._served_out < len(self.remote):
            if self.comm.Iprobe(source=self.MPI.ANY_SOURCE, tag=REQUEST, status=status):
                self._serve_one(status)
            else:
                time.sleep(0.002)

    # --- every worker leader ------------------------------------------------------------------
    def next_item(self, record=None):
        """The next item for this worker (None: the pool is empty), reporting the last block."""
        if self.rank == 0:
            self._report(record)
            if not self.threaded:
                self.serve_pending()
            return self.queue.take()
        self.comm.send(record, dest=0, tag=REQUEST)
        return self.comm.recv(source=0, tag=ASSIGN)

    def finish(self):
        """Rank 0 keeps answering until every other worker has been told the pool is empty."""
        if self.rank == 0:
            if self._thread is not None:
                self._thread.join()
            else:
                while self._served_out < len(self.remote):
                    self.serve_pending()
                    time.sleep(0.002)
        self.comm.Free()

