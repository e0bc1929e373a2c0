"""Compiled kernels of `anderson_mpi.engines.chains` (numba, optional).

The same operations as the numpy path of `anderson_mpi.engines.chains`, on the same random numbers, one
trajectory at a time: every layer touches 4N entries per bond instead of going through numpy
temporaries. A bond updates its two rows and restores Hermiticity by copying the conjugates
into its two columns (``u G u^+`` is Hermitian, and outside the bond's rows the column update
is the conjugate of the row update), which halves the arithmetic. Importing this module
raises ImportError without numba. Compiled once per install and cached (in ``__pycache__``,
or numba's user cache directory when that is read-only; without any writable place, once per
process).
"""
from __future__ import annotations

import math

import numba
import numpy as np

__all__ = ["qssep_chunk", "dephasing_chunk"]

def _jit(func):
    try:
        return numba.njit(cache=True, nogil=True)(func)
    except RuntimeError:
        # numba found no writable cache directory (read-only install, no user cache):
        # compile in every process instead (about 3 s)
        return numba.njit(nogil=True)(func)


@_jit
def _bond(G, a, c, z):
    """``G <- u G u^+`` on sites (a, a+1), ``u = [[c, z], [-conj z, c]]``, G Hermitian."""
    _bond_pair(G, a, a + 1, c, z)


@_jit
def _boundaries(G, h, rate_left, rate_right, n_left, n_right):
    N = G.shape[0]
    for end in range(2):
        site = 0 if end == 0 else N - 1
        rate = rate_left if end == 0 else rate_right
        density = n_left if end == 0 else n_right
        half = math.exp(-rate * h / 2)
        for j in range(N):
            G[site, j] *= half
            G[j, site] *= half
        G[site, site] += density * -math.expm1(-rate * h)


@_jit
def _tilt(exponential, table, v_step):
    """The tilt law's quantile at ``v = sqrt(exponential)`` (as `chains.TiltLaw.sample`)."""
    pos = math.sqrt(exponential) / v_step
    idx = min(int(pos), table.shape[0] - 2)
    frac = min(pos - idx, 1.0)
    return table[idx] + frac * (table[idx + 1] - table[idx])


@_jit
def qssep_chunk(G, exponential, uniform, tables, v_steps, parity, short, before, after,
                odd_end_only, odd_end, h, rate_left, rate_right, n_left, n_right):
    """Apply a chunk of QSSEP layers to every trajectory of the block (G (m, N, N), in place).

    ``exponential``, ``uniform`` (m, chunk, N // 2): each layer's numbers; ``tables`` (2, K+1)
    and ``v_steps`` (2,): the full-step and half-step tilt laws.
    """
    m, N, _ = G.shape
    for s in range(m):
        g = G[s]
        for k in range(parity.shape[0]):
            if odd_end_only[k] and not odd_end[s]:
                continue
            if before[k]:
                _boundaries(g, h, rate_left, rate_right, n_left, n_right)
            p = parity[k]
            table = tables[short[k]]
            step = v_steps[short[k]]
            for q in range((N - p) // 2):
                tilt = _tilt(exponential[s, k, q], table, step)
                phi = 2 * math.pi * uniform[s, k, q]
                sn = math.sin(tilt / 2)
                _bond(g, p + 2 * q, math.cos(tilt / 2), complex(sn * math.cos(phi), sn * math.sin(phi)))
            if after[k]:
                _boundaries(g, h, rate_left, rate_right, n_left, n_right)


@_jit
def _dephase(G, normals, scale):
    """``G_ij <- G_ij exp(-i scale (x_i - x_j))`` (Hermitian G)."""
    N = G.shape[0]
    phase = np.empty(N, dtype=np.complex128)
    for i in range(N):
        phase[i] = complex(math.cos(scale * normals[i]), -math.sin(scale * normals[i]))
    for i in range(N):
        for j in range(i + 1, N):
            G[i, j] *= phase[i] * phase[j].conjugate()
            G[j, i] = G[i, j].conjugate()


@_jit
def dephasing_chunk(G, normals, cos_full, sin_full, cos_half, sin_half, sqrt_gamma_h, parity,
                    short, before, after, odd_end_only, odd_end, h, rate_left, rate_right,
                    n_left, n_right):
    """Apply a chunk of dephasing layers to every trajectory (G (m, N, N), in place).

    ``normals`` (m, rows, N): one row per half step of C, in order.
    """
    m, N, _ = G.shape
    for s in range(m):
        g = G[s]
        row = 0
        for k in range(parity.shape[0]):
            if before[k]:
                _dephase(g, normals[s, row], sqrt_gamma_h)
                row += 1
                _boundaries(g, h, rate_left, rate_right, n_left, n_right)
            p = parity[k]
            c = cos_half if short[k] else cos_full
            z = complex(0.0, sin_half if short[k] else sin_full)
            for q in range((N - p) // 2):
                _bond(g, p + 2 * q, c, z)
            if after[k]:
                _dephase(g, normals[s, row], sqrt_gamma_h)
                row += 1
                _boundaries(g, h, rate_left, rate_right, n_left, n_right)


@_jit
def _bond_pair(G, a, b, c, z):
    """``G <- u G u^+`` on sites (a, b) (any two distinct sites), ``u = [[c, z], [-conj z, c]]``."""
    N = G.shape[0]
    zc = z.conjugate()
    for j in range(N):
        ga = G[a, j]
        gb = G[b, j]
        G[a, j] = c * ga + z * gb
        G[b, j] = c * gb - zc * ga
    gaa, gab, gba, gbb = G[a, a], G[a, b], G[b, a], G[b, b]
    G[a, a] = c * gaa + zc * gab
    G[a, b] = c * gab - z * gaa
    G[b, a] = c * gba + zc * gbb
    G[b, b] = c * gbb - z * gba
    for i in range(N):
        if i != a and i != b:
            G[i, a] = G[a, i].conjugate()
            G[i, b] = G[b, i].conjugate()


@_jit
def _drive_sites(G, sites, h, rate, density):
    N = G.shape[0]
    half = math.exp(-rate * h / 2)
    for q in range(sites.shape[0]):
        s = sites[q]
        for j in range(N):
            G[s, j] *= half
            G[j, s] *= half
        G[s, s] += density * -math.expm1(-rate * h)


@_jit
def lattice_dephasing_chunk(G, normals, ops, op_layer, op_short, layer_start, layer_stop,
                            bond_first, bond_second, layer_cos, layer_sin, sqrt_gamma_h, h,
                            left_sites, right_sites, rate_left, rate_right, n_left, n_right):
    """Apply a chunk of operations of the lattice dephasing scheme to every trajectory.

    ``ops[k]``: 0 a bond layer (``op_layer[k]``, duration dt/2 if ``op_short[k]``), 1 a half
    step of C (dephasing, then the driven sites); ``normals`` (m, rows, N): one row per C.
    Layer l holds the bonds ``bond_first/second[layer_start[l]:layer_stop[l]]`` with the
    rotation ``layer_cos/sin[l, short]``.
    """
    m = G.shape[0]
    for s in range(m):
        g = G[s]
        row = 0
        for k in range(ops.shape[0]):
            if ops[k] == 1:
                _dephase(g, normals[s, row], sqrt_gamma_h)
                row += 1
                _drive_sites(g, left_sites, h, rate_left, n_left)
                _drive_sites(g, right_sites, h, rate_right, n_right)
            else:
                layer = op_layer[k]
                c = layer_cos[layer, op_short[k]]
                z = complex(0.0, layer_sin[layer, op_short[k]])
                for q in range(layer_start[layer], layer_stop[layer]):
                    _bond_pair(g, bond_first[q], bond_second[q], c, z)
