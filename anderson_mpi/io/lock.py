"""One job per result file: a lock file next to it, taken before anything is written.

``<result>.h5.lock`` is created atomically (``O_CREAT | O_EXCL``, atomic on local file systems,
NFSv3+, Lustre and GPFS) by rank 0 of the job that writes the result file, holds a JSON record of
its owner (host, pid and the process's start time, Slurm job and array task, when it started)
and is touched every `HEARTBEAT` seconds while the job runs. A second job that wants the same
file (a resubmitted Slurm job while the first still runs, two ``--resume`` by hand) refuses at
once with one line naming the file and the running job.

A lock whose owner is gone does not block: on the owner's host the owner is gone when its pid no
longer runs (or runs another program: the start time differs); a lock written by an earlier
incarnation of the very Slurm job that asks (a requeued job keeps its job id, Slurm runs one
incarnation at a time and counts them in ``SLURM_RESTART_COUNT``) is stale; on another host, a
lock whose heartbeat is older than `STALE_AFTER` seconds is stale. ``--break-lock`` removes a lock
the user knows to be stale (a job lost with its node within the last minutes). Taking over a
stale lock renames it away first, so of two jobs that find the same stale lock only one wins; if
what was renamed is no longer the stale record (the other taker was faster and wrote its own),
it is put back and the slower job refuses.

The job releases its locks when it ends, also when it is stopped by a signal or fails (rank 0's
abort path); a job killed by SIGKILL or with its node leaves its lock, which the rules above
recognise as stale.
"""
from __future__ import annotations

import json
import os
import socket
import threading
import time

from ..errors import LockError

__all__ = ["lock_path", "JobLocks", "owner_record", "owner_gone", "HEARTBEAT", "STALE_AFTER"]

HEARTBEAT = 20.0      # seconds between touches of a held lock
STALE_AFTER = 180.0   # a lock of another host untouched this long has lost its owner


def lock_path(result_path):
    return str(result_path) + ".lock"


def _process_start(pid):
    """The start time of process ``pid`` in clock ticks since boot (None if it does not run: no
    such process, or a zombie that nobody has reaped yet)."""
    try:
        with open(f"/proc/{pid}/stat") as fh:
            fields = fh.read().rsplit(")", 1)[1].split()
        return None if fields[0] in ("Z", "X") else int(fields[19])
    except (OSError, IndexError, ValueError):
        return None


def _slurm():
    keys = ("SLURM_JOB_ID", "SLURM_ARRAY_JOB_ID", "SLURM_ARRAY_TASK_ID", "SLURM_RESTART_COUNT")
    return {k.lower(): os.environ[k] for k in keys if k in os.environ} or None


def owner_record():
    """What a lock says about the job that holds it."""
    pid = os.getpid()
    return {"host": socket.gethostname(), "pid": pid, "pid_start": _process_start(pid),
            "slurm": _slurm(), "started": time.time()}


def _restarts(slurm):
    try:
        return int(slurm.get("slurm_restart_count", 0))
    except (TypeError, ValueError):
        return 0


def _describe(owner, heartbeat_age):
    parts = [f"host {owner.get('host', '?')}", f"pid {owner.get('pid', '?')}"]
    slurm = owner.get("slurm") or {}
    if "slurm_job_id" in slurm:
        job = slurm["slurm_job_id"]
        if "slurm_array_job_id" in slurm:
            job += f" (array {slurm['slurm_array_job_id']}_{slurm.get('slurm_array_task_id', '?')})"
        parts.append(f"Slurm job {job}")
    started = owner.get("started")
    if started:
        parts.append("started " + time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(started)))
    if heartbeat_age is not None:
        parts.append(f"last seen {heartbeat_age:.0f} s ago")
    return ", ".join(parts)


def owner_gone(owner, heartbeat_age, now_host=None, now_slurm=None):
    """Whether the job that wrote ``owner`` is certainly not running any more (module docstring)."""
    here = now_host if now_host is not None else socket.gethostname()
    mine = now_slurm if now_slurm is not None else (_slurm() or {})
    theirs = owner.get("slurm") or {}
    if mine.get("slurm_job_id") and mine.get("slurm_job_id") == theirs.get("slurm_job_id"):
        # an earlier incarnation of this requeued job (Slurm runs one at a time and counts them);
        # two runs inside one incarnation (job steps of one allocation) fall to the rules below
        if _restarts(mine) > _restarts(theirs):
            return True
    if owner.get("host") == here:
        pid = owner.get("pid")
        if not isinstance(pid, int):
            return True
        start = _process_start(pid)
        return start is None or (owner.get("pid_start") is not None and start != owner["pid_start"])
    return heartbeat_age is not None and heartbeat_age > STALE_AFTER


def _read(lock):
    try:
        with open(lock) as fh:
            owner = json.load(fh)
        age = time.time() - os.stat(lock).st_mtime
    except FileNotFoundError:
        return None, None
    except (OSError, ValueError):
        owner, age = {}, None  # unreadable (cut while written): judged by its age
        try:
            age = time.time() - os.stat(lock).st_mtime
        except OSError:
            return None, None
    return owner, age


class JobLocks:
    """The locks of every result file of a job, held by rank 0 while the job runs."""

    def __init__(self, result_paths, break_locks=False):
        self.paths = [lock_path(p) for p in dict.fromkeys(str(p) for p in result_paths)]
        self.break_locks = break_locks
        self.record = owner_record()
        self.held = []
        self._stop = threading.Event()
        self._thread = None

    def _create(self, lock):
        fd = os.open(lock, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        with os.fdopen(fd, "w") as fh:
            json.dump(self.record, fh, sort_keys=True)
        self.held.append(lock)

    def _take(self, lock):
        for _ in range(5):
            try:
                self._create(lock)
                return
            except FileExistsError:
                pass
            owner, age = _read(lock)
            if owner is None:
                continue  # released meanwhile: try again
            if not (self.break_locks or owner_gone(owner, age)):
                raise LockError(f"{lock[:-5]}: in use by another job ({_describe(owner, age)}); "
                                f"wait for it to end, or if it is gone (a lost node) rerun with "
                                f"--break-lock")
            # a stale lock: rename it away first, so that only one taker wins
            away = f"{lock}.stale.{self.record['host']}.{self.record['pid']}"
            try:
                os.replace(lock, away)
            except FileNotFoundError:
                continue
            moved, _ = _read(away)
            if moved is not None and moved != owner:
                # between reading and renaming, another job took the stale lock and wrote a
                # fresh one: put it back (unless a third job has meanwhile made a new lock)
                try:
                    os.link(away, lock)
                except OSError:
                    pass
            os.remove(away)
        raise LockError(f"{lock[:-5]}: cannot take its lock (it changes hands repeatedly)")

    def acquire(self):
        """Take every lock or none (raises `LockError`, one line); then start the heartbeat."""
        try:
            for lock in self.paths:  # the output directories exist (the caller made them)
                self._take(lock)
        except BaseException:
            self.release()
            raise
        self._thread = threading.Thread(target=self._beat, name="lock-heartbeat", daemon=True)
        self._thread.start()
        return self

    def _beat(self):
        while not self._stop.wait(HEARTBEAT):
            for lock in list(self.held):
                try:
                    os.utime(lock)
                except OSError:
                    pass

    def release(self):
        """Remove the locks this job holds (never another job's)."""
        self._stop.set()
        for lock in self.held:
            owner, _ = _read(lock)
            if owner == self.record:
                try:
                    os.remove(lock)
                except OSError:
                    pass
        self.held = []
