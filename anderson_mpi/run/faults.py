"""Fault injection for the robustness tests, in one place.

``ANDERSON_MPI_FAULT="KIND@WHERE[,KIND@WHERE ...]"`` (read once per process):

- ``raise@R``: rank R raises before computing its first block (a failing rank);
- ``nan@S``: sample S gets a NaN in its potential (a sample that must never be summed);
- ``sleep@S``: sample S takes 2 s longer (a slow block, to interrupt a run at a known point);
- ``hang@S``: sample S takes 10 minutes longer (a rank that will not reach the next collective).

Production code asks `planned(kind)` at the few points where a fault can be injected; without
the variable every answer is None and nothing changes.
"""
from __future__ import annotations

import os
from functools import lru_cache

__all__ = ["planned", "KINDS"]

KINDS = ("raise", "nan", "sleep", "hang")


@lru_cache(maxsize=1)
def _faults():
    faults = {}
    for item in os.environ.get("ANDERSON_MPI_FAULT", "").split(","):
        kind, _, where = item.strip().partition("@")
        if kind in KINDS and where.lstrip("-").isdigit():
            faults.setdefault(kind, set()).add(int(where))
    return faults


def planned(kind):
    """The set of ranks or samples where fault ``kind`` is injected (empty: none)."""
    return _faults().get(kind, frozenset())
