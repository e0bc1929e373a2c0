"""Structured progress records: one JSON object per line, appended by rank 0.

Each run's records go to ``<result file without .h5>.progress.jsonl`` next to its result file
(one writer per run at a time, so the array tasks of a Slurm job never share a file). Tests,
benchmarks and the Slurm checks read these records (and the per-block records in the HDF5
file); the log lines are for people.

Records (``event`` key):

- ``start``: ``run``, ``attempt``, ``time``, ``host``, ``ranks``, ``groups``, ``n_blocks``,
  ``done`` (blocks already done), ``pending``, ``resume`` (an existing file is continued),
  ``resume_flag`` (``--resume`` was given), ``solver``, ``blas`` (library, threads),
  ``slurm`` (job id, array task, restart count; null outside Slurm);
- ``block``: ``run``, ``attempt``, ``block``, ``rank``, ``samples``, ``seconds``,
  ``unitarity_max``, ``time`` (written after the block's row and flag are on disk);
- ``complete``: ``run``, ``attempt``, ``samples``, ``time``, ``conductance_mean``.
"""
from __future__ import annotations

import json
import os
import time

__all__ = ["ProgressLog", "progress_path", "read_records", "slurm_info"]


def progress_path(result_path):
    stem = result_path[:-3] if result_path.endswith(".h5") else result_path
    return stem + ".progress.jsonl"


def slurm_info():
    """The Slurm job this process runs in (None outside Slurm)."""
    if "SLURM_JOB_ID" not in os.environ:
        return None
    keys = {"job_id": "SLURM_JOB_ID", "array_job_id": "SLURM_ARRAY_JOB_ID",
            "array_task_id": "SLURM_ARRAY_TASK_ID", "restart_count": "SLURM_RESTART_COUNT"}
    return {name: os.environ.get(var) for name, var in keys.items()}


class ProgressLog:
    """Appends records to one run's progress file; a no-op on ranks other than the writer.

    A record that cannot be written (disk full) is dropped with one warning: the result file,
    not this log, is the checkpoint.
    """

    def __init__(self, result_path, active, warn=None):
        self.path = progress_path(result_path)
        self.active = active
        self.warn = warn
        self._broken = False

    def write(self, event, **fields):
        if not self.active or self._broken:
            return
        record = {"event": event, "time": time.time(), **fields}
        try:
            with open(self.path, "a") as fh:
                fh.write(json.dumps(record, sort_keys=True) + "\n")
        except OSError as err:
            self._broken = True
            if self.warn:
                self.warn("progress records stop: cannot append to %s (%s)", self.path, err)


def read_records(path, event=None):
    """The records of a progress file (only those of ``event`` if given)."""
    out = []
    with open(path) as fh:
        lines = [line for line in fh if line.strip()]
    for i, line in enumerate(lines):
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            if i == len(lines) - 1:  # a job killed while appending: the last line is cut
                break
            raise
        if event is None or record["event"] == event:
            out.append(record)
    return out
