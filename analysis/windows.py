"""Fit windows: which slices and index tuples a QSSEP fit counts (docs/theory.md §10).

A window is two integers:

* ``drop_slices`` K: the K slices next to each lead are left out (slices ``K .. Nx-1-K``
  are kept), for every index of a cumulant (for g3 also the cut slice c: a cut inside the
  dropped region contributes nothing);
* ``drop_diagonal`` D: g2 keeps the pairs ``|a - b| > D``; g3 keeps the points whose three
  indices are pairwise more than D apart (g4 on a cut pair likewise, four indices). D = 0 is
  the paper's reading: every pair a != b (a = b carries contact terms QSSEP does not model),
  and for g3 three distinct indices.

Defaults K = 0, D = 0. They can come from an ``[analysis]`` table of the job file
(``drop_slices``, ``drop_diagonal``), stored verbatim in every result file; the command line
overrides it. Everything here is pure: sizes in, boolean masks out.
"""
from __future__ import annotations

try:  # Python >= 3.11
    import tomllib
except ModuleNotFoundError:  # pragma: no cover - the same parser from PyPI
    import tomli as tomllib
from dataclasses import dataclass

import numpy as np

from anderson_mpi.errors import WindowError

__all__ = ["Window", "DEFAULT", "GRID", "slice_mask", "g1_mask", "g2_mask", "g3_cut_mask",
           "g3_line_mask", "g4_pair_mask", "options_from_job_toml", "WindowError"]

JOB_KEYS = ("drop_slices", "drop_diagonal")


@dataclass(frozen=True)
class Window:
    drop_slices: int = 0
    drop_diagonal: int = 0

    def __post_init__(self):
        for name in JOB_KEYS:
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 0:
                raise WindowError(f"{name}: expected an integer >= 0, got {value!r}")

    @property
    def label(self):
        return f"K={self.drop_slices} D={self.drop_diagonal}"

    def as_dict(self):
        return {"drop_slices": int(self.drop_slices), "drop_diagonal": int(self.drop_diagonal)}


DEFAULT = Window()
# The sensitivity grid every summary reports (K, D = 0, 1, 2).
GRID = tuple(Window(k, d) for k in (0, 1, 2) for d in (0, 1, 2))


def slice_mask(nx, window):
    """(Nx,) True for the slices kept: ``K <= a < Nx - K``."""
    a = np.arange(nx)
    k = window.drop_slices
    return (a >= k) & (a < nx - k)


def g1_mask(nx, window):
    """(Nx,) slices entering the dn^(1) fit (D does not apply to one index)."""
    return slice_mask(nx, window)


def g2_mask(nx, window):
    """(Nx, Nx) True for the pairs ``a < b`` entering the dn^(2) fit (g2 is symmetric, so
    each unordered pair is one data point)."""
    keep = slice_mask(nx, window)
    a, b = np.meshgrid(np.arange(nx), np.arange(nx), indexing="ij")
    return (b - a > window.drop_diagonal) & keep[:, None] & keep[None, :]


def g3_cut_mask(nx, c, window):
    """(Nx, Nx) True for the pairs ``a < b`` of the cut at slice ``c`` entering the dn^(3)
    fit: a, b, c pairwise more than D apart, all three in the kept slices (Re g3 is symmetric
    in a, b on a cut, so each unordered pair is one data point)."""
    keep = slice_mask(nx, window)
    if not keep[c]:
        return np.zeros((nx, nx), dtype=bool)
    d = window.drop_diagonal
    idx = np.arange(nx)
    a, b = np.meshgrid(idx, idx, indexing="ij")
    far_c = np.abs(idx - c) > d
    return (b - a > d) & (far_c & keep)[:, None] & (far_c & keep)[None, :]


def g3_line_mask(nx, b, c, window):
    """(Nx,) True for the slices a of the line g3(x_a, y_b, z_c) entering the single-line
    dn^(3) fit (the paper's procedure): a in the kept slices and more than D from b and c;
    empty when b and c themselves are within D or outside the kept slices."""
    keep = slice_mask(nx, window)
    d = window.drop_diagonal
    if not (keep[b] and keep[c]) or abs(b - c) <= d:
        return np.zeros(nx, dtype=bool)
    a = np.arange(nx)
    return keep & (np.abs(a - b) > d) & (np.abs(a - c) > d)


def g4_pair_mask(nx, c, d, window):
    """(Nx, Nx) True for the ordered points (a, b) of the cut pair (c, d) entering a g4 fit:
    a, b, c, d pairwise more than D apart, all four in the kept slices (empty when c or d is
    dropped or |c - d| <= D). g4 is not symmetric in a, b (the loop a -> b -> c -> d -> a
    changes), so (a, b) and (b, a) are two data points."""
    keep = slice_mask(nx, window)
    dd = window.drop_diagonal
    if not (keep[c] and keep[d]) or abs(c - d) <= dd:
        return np.zeros((nx, nx), dtype=bool)
    idx = np.arange(nx)
    far = keep & (np.abs(idx - c) > dd) & (np.abs(idx - d) > dd)
    a, b = np.meshgrid(idx, idx, indexing="ij")
    return (np.abs(a - b) > dd) & far[:, None] & far[None, :]


def options_from_job_toml(text):
    """The ``[analysis]`` table of a job file's text: dict with the keys it sets.

    An empty text or a job without the table gives ``{}``. Bad values of the window keys
    raise `WindowError` (one line, naming the key); other keys of the table are not this
    module's business (the job-file parser validates the table when the job runs).
    """
    if not text:
        return {}
    try:
        job = tomllib.loads(text)
    except tomllib.TOMLDecodeError as err:
        raise WindowError(f"stored job file is not valid TOML: {err}") from None
    table = job.get("analysis")
    if table is None:
        return {}
    if not isinstance(table, dict):
        raise WindowError(f"[analysis]: expected a table, got {table!r}")
    found = {k: table[k] for k in JOB_KEYS if k in table}
    try:
        Window(**found)  # validates the values
    except WindowError as err:
        raise WindowError(f"[analysis] {err}") from None
    return found
