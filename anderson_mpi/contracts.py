"""The two declarations every engine and observable group makes: its fields and its cost.

A leaf module (numpy only). `Field` is one per-sample observable as the result file stores its
block sums; `Cost` is what one sample costs: BLAS work by kind (counted in complex
multiply-adds, because their speeds differ), the Python-level calls that dominate small sizes,
and the working memory. The scheduler, the ETA, `anderson-mpi plan` and the memory preflight
turn costs into seconds and bytes (`anderson_mpi.run.cost`); the schema and the disk preflight
turn fields into datasets and file sizes (`anderson_mpi.io.schema`).
"""
from __future__ import annotations

from dataclasses import dataclass, fields

import numpy as np

__all__ = ["Field", "Cost", "COMPLEX_BYTES"]

COMPLEX_BYTES = 16


@dataclass(frozen=True)
class Field:
    """One per-sample observable: its block sums are ``/blocks/<name>``, shape ``(n_blocks,) + shape``."""

    shape: tuple
    dtype: type
    meaning: str

    @property
    def nbytes(self):
        return int(np.prod(self.shape, dtype=np.int64)) * np.dtype(self.dtype).itemsize


@dataclass(frozen=True)
class Cost:
    """What one sample costs. Additive (``+``) and scalable (``*``).

    Attributes
    ----------
    gemm : float
        Complex multiply-adds in large matrix products (zgemm, zherk, ztrmm; a zherk counts half).
    batched : float
        Complex multiply-adds in batches of small products (per transverse momentum, per slice
        pair), which run slower than one large product.
    lu : float
        Complex multiply-add equivalents of LU factorizations and inversions (zgetrf + zgetri of
        an n x n matrix: n^3) and eigendecompositions, slower than products.
    kernel : float
        Complex multiply-adds in elementwise kernels (the stochastic models' 2 x 2 rotations of
        rows and columns): compiled with numba, or vectorized numpy.
    calls : float
        Python-level steps (a BLAS call, an FFT, an array operation on a slice): the fixed
        overhead that dominates at small sizes.
    memory : float
        Peak working memory in bytes on top of what the run holds anyway.
    """

    gemm: float = 0.0
    batched: float = 0.0
    lu: float = 0.0
    kernel: float = 0.0
    calls: float = 0.0
    memory: float = 0.0

    def __add__(self, other):
        # work adds; memory of steps that run one after the other does not: the peak counts
        return Cost(**{f.name: (max(getattr(self, f.name), getattr(other, f.name)) if f.name == "memory"
                                else getattr(self, f.name) + getattr(other, f.name)) for f in fields(self)})

    def __mul__(self, factor):
        return Cost(**{f.name: getattr(self, f.name) * (1 if f.name == "memory" else factor)
                       for f in fields(self)})

    __rmul__ = __mul__
