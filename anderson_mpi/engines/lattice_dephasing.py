"""The dephasing model on Anderson's lattice: the static-versus-dynamical comparison.

docs/theory.md §12. The same dynamics as the dephasing chain of
`anderson_mpi.engines.chains` on a lattice ``Nx x Ny x Nz`` with hoppings ``(tx, ty, tz)``, periodic
transverse bonds (a transverse size of 2 has one bond, of 1 none: the convention of the
Anderson model), driven on every site of the slices ``x = 0`` and ``x = Nx - 1``. Sites are
numbered ``(x * Ny + y) * Nz + z``, so that slice a is the block of rows
``a * N_perp .. (a+1) * N_perp - 1`` and `lattice_mode_matrices` gives the pipeline's
``Phi (Nx, N_perp, M)`` by a reshape.

The bonds are split into layers of disjoint bonds (x even, x odd, then per transverse
direction: even, odd, and the wrap-around bond of an odd ring of >= 3 sites), each done by
exact bond rotations ``exp(i t tau sigma_x)``; C is a half step of the on-site Brownian phases
and the boundaries (they commute). One step is the symmetric product
``A_0(dt/2) ... A_{K-2}(dt/2) C(dt/2) A_{K-1}(dt) C(dt/2) A_{K-2}(dt/2) ... A_0(dt/2)`` (the
halves of A_0 merged between steps). On a chain (``Ny = Nz = 1``) this is exactly the scheme of
`anderson_mpi.engines.chains` and draws the same random numbers: the samples agree to rounding.

Cost per step: ``2 (K - 1)`` layers of ``N_sites / 2`` bonds at ``~4 N_sites`` operations each,
``~4 (K-1) N_sites^2`` per trajectory; N_sites = N^3 in the cube (N = 8: 512 sites, 4 MB per G).

Pure numpy (numba kernels used when available): arrays in, arrays out, no MPI, no files.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from .chains import (CHUNK_LAYERS, jit_kernels, check_number, check_pair, mode_matrices_from_G,
                     EIGENVALUE_TOL)

__all__ = ["DEFAULT_HOPPING", "DEFAULT_DT_LATTICE", "LatticeSetup", "lattice_layers",
           "simulate_lattice_block", "lattice_mode_matrices"]

DEFAULT_HOPPING = (1.0, 0.4, 0.4)
# dt = DEFAULT_DT_LATTICE / (gamma + 2 (tx + ty + tz) + tx^2 / gamma): the chain's rule with the
# lattice's total bandwidth (not validated by an exact bias table beyond the chain)
DEFAULT_DT_LATTICE = 0.1


def _ring_bonds(n):
    """Bonds of a ring of n sites in layers of disjoint bonds: [(i, j) ...] per layer."""
    if n == 1:
        return []
    if n == 2:
        return [[(0, 1)]]
    even = [(i, i + 1) for i in range(0, n - 1, 2)]
    odd = [(i, (i + 1) % n) for i in range(1, n, 2)]     # with the wrap (n-1, 0) if n is even
    if n % 2:                      # the wrap-around bond (n-1, 0) meets both parities at 0
        return [even, odd, [(n - 1, 0)]]
    return [even, odd]


def lattice_layers(shape, hopping):
    """The bond layers of the lattice: a list of ``(first, second, t)`` (index arrays of equal
    length, sites as ``(x * Ny + y) * Nz + z``, hopping t), in the order x, y, z."""
    Nx, Ny, Nz = shape
    index = np.arange(Nx * Ny * Nz).reshape(Nx, Ny, Nz)
    layers = []
    x_bonds = [[(x, x + 1) for x in range(p, Nx - 1, 2)] for p in (0, 1)]
    for layer in x_bonds:
        if layer:
            first = np.concatenate([index[i].ravel() for i, _ in layer])
            second = np.concatenate([index[j].ravel() for _, j in layer])
            layers.append((first, second, hopping[0]))
    for axis, n, t in ((1, Ny, hopping[1]), (2, Nz, hopping[2])):
        for layer in _ring_bonds(n):
            first = np.concatenate([np.take(index, i, axis=axis).ravel() for i, _ in layer])
            second = np.concatenate([np.take(index, j, axis=axis).ravel() for _, j in layer])
            layers.append((first, second, t))
    return layers


def _slowest_rate(shape, hopping, gamma, d_eff, rate_left, rate_right):
    """The slowest relaxation rate of densities: along x, ``pi^2 D_eff / L^2``; across, a
    transverse ring's smallest Laplacian eigenvalue times ``2 t_perp^2 / gamma``."""
    Nx = shape[0]
    L = Nx - 1 + d_eff / rate_left + d_eff / rate_right
    rates = [math.pi**2 * d_eff / L**2]
    for n, t in ((shape[1], hopping[1]), (shape[2], hopping[2])):
        if n >= 2 and t > 0:
            eigen = 2.0 if n == 2 else 2 * (1 - math.cos(2 * math.pi / n))
            rates.append(eigen * 2 * t**2 / gamma)
    return min(rates)


@dataclass(frozen=True, eq=False)
class LatticeSetup:
    """Everything a lattice dephasing run shares (`LatticeSetup.build`).

    Attributes
    ----------
    shape : (Nx, Ny, Nz)
    hopping : (tx, ty, tz)
    gamma, n_left, n_right, rate_left, rate_right, dt, relax_time : float
    n_steps : int
    initial_density : ndarray (N_sites,)
        ``n_L + dn (x + a)/L`` on every site of slice x (``D_eff = 2 tx^2 / gamma``).
    layers : list of (first, second, t)
        See `lattice_layers`.
    """

    shape: tuple
    hopping: tuple
    gamma: float
    n_left: float
    n_right: float
    rate_left: float
    rate_right: float
    dt: float
    relax_time: float
    n_steps: int
    initial_density: np.ndarray
    layers: list

    @classmethod
    def build(cls, shape, *, gamma=1.0, hopping=DEFAULT_HOPPING, n_left=0.0, n_right=1.0,
              boundary_rate=None, dt=None, relax_time=None):
        """Validate and build; ``ValueError`` "key: ..." (one line) for a bad key.

        Defaults: ``boundary_rate = 2 D_eff`` (``D_eff = 2 tx^2/gamma``), dt as the module
        constant says, ``relax_time = 5 / (slowest density relaxation rate)`` (along x
        ``pi^2 D_eff / L^2``; across, that of a transverse ring with ``2 t_perp^2 / gamma``).
        """
        try:
            shape = tuple(int(n) for n in shape)
        except (TypeError, ValueError):
            raise ValueError(f"shape: must be (Nx, Ny, Nz), got {shape!r}") from None
        if len(shape) != 3 or min(shape) < 1 or shape[0] < 2:
            raise ValueError(f"shape: must be (Nx >= 2, Ny >= 1, Nz >= 1), got {shape}")
        if isinstance(hopping, (int, float)) or len(hopping) != 3:
            raise ValueError(f"hopping: must be (tx, ty, tz), got {hopping!r}")
        hopping = (check_number("hopping", hopping[0], lower=0.0, strict=True),
                   check_number("hopping", hopping[1], lower=0.0), check_number("hopping", hopping[2], lower=0.0))
        gamma = check_number("gamma", gamma, lower=0.0, strict=True)
        n_left = check_number("n_left", n_left, lower=0.0, upper=1.0)
        n_right = check_number("n_right", n_right, lower=0.0, upper=1.0)
        d_eff = 2 * hopping[0]**2 / gamma
        rate_left, rate_right = check_pair("boundary_rate", 2 * d_eff if boundary_rate is None
                                      else boundary_rate)
        if dt is None:
            dt = DEFAULT_DT_LATTICE / (gamma + 2 * sum(hopping) + hopping[0]**2 / gamma)
        dt = check_number("dt", dt, lower=0.0, strict=True)
        if relax_time is None:
            relax_time = 5 / _slowest_rate(shape, hopping, gamma, d_eff, rate_left, rate_right)
        relax_time = check_number("relax_time", relax_time, lower=0.0)
        n_steps = int(math.ceil(relax_time / dt - 1e-9))
        Nx = shape[0]
        a, b = d_eff / rate_left, d_eff / rate_right
        profile = n_left + (n_right - n_left) * (np.arange(Nx) + a) / (Nx - 1 + a + b)
        density = np.repeat(profile, shape[1] * shape[2])
        density.setflags(write=False)
        return cls(shape=shape, hopping=hopping, gamma=gamma, n_left=n_left, n_right=n_right,
                   rate_left=rate_left, rate_right=rate_right, dt=dt, relax_time=relax_time,
                   n_steps=n_steps, initial_density=density,
                   layers=lattice_layers(shape, hopping))

    @property
    def n_sites(self):
        return self.shape[0] * self.shape[1] * self.shape[2]

    @property
    def n_perp(self):
        return self.shape[1] * self.shape[2]

    @property
    def D_eff(self):
        return 2 * self.hopping[0]**2 / self.gamma

    def driven_sites(self):
        """Sites of the slices x = 0 and x = Nx - 1."""
        n_perp = self.n_perp
        return (np.arange(n_perp), np.arange(self.n_sites - n_perp, self.n_sites))


def _operations(n_layers, n_steps):
    """The scheme as operations: (kind, layer, short) with kind 0 a bond layer (short: dt/2),
    kind 1 a half step of C."""
    K = n_layers
    ops = [(0, 0, 1)]
    if K == 1:                     # A_0(dt/2) C(dt/2) C(dt/2) A_0(dt/2): the chain of 2 sites
        for step in range(n_steps):
            ops += [(1, -1, 0), (1, -1, 0), (0, 0, 0 if step < n_steps - 1 else 1)]
        return ops
    for step in range(n_steps):
        ops += [(0, l, 1) for l in range(1, K - 1)]
        ops += [(1, -1, 0), (0, K - 1, 0), (1, -1, 0)]
        ops += [(0, l, 1) for l in range(K - 2, 0, -1)]
        ops.append((0, 0, 0 if step < n_steps - 1 else 1))
    return ops


def _chunks(ops):
    """Split before every bond layer whose count is a multiple of the chunk length (the chain's
    chunks of `anderson_mpi.engines.chains`: the same random numbers on a chain)."""
    starts, count = [0], 0
    for k, (kind, _, _) in enumerate(ops):
        if kind == 0:
            if count and count % CHUNK_LAYERS == 0:
                starts.append(k)
            count += 1
    return [ops[a:b] for a, b in zip(starts, starts[1:] + [len(ops)])]


def _pair_layer(G, first, second, c, z):
    """``G <- U G U^+`` for disjoint bonds (first[k], second[k]), each ``[[c, z], [-z*, c]]``."""
    rows_a, rows_b = G[:, first, :], G[:, second, :]
    G[:, first, :] = c * rows_a + z * rows_b
    G[:, second, :] = c * rows_b - np.conj(z) * rows_a
    cols_a, cols_b = G[:, :, first], G[:, :, second]
    G[:, :, first] = c * cols_a + np.conj(z) * cols_b
    G[:, :, second] = c * cols_b - z * cols_a


def simulate_lattice_block(setup, seed_sequences, backend="auto"):
    """Final G (m, N_sites, N_sites) of the trajectories of one block (see
    `anderson_mpi.engines.chains.simulate_block` for the contract and the backends)."""
    if backend not in ("auto", "numba", "numpy"):
        raise ValueError(f"backend: must be 'auto', 'numba' or 'numpy', got {backend!r}")
    jit = None if backend == "numpy" else jit_kernels()
    if backend == "numba" and jit is None:
        raise ValueError("backend: 'numba' requested but numba cannot be imported")
    rngs = [np.random.default_rng(seq) for seq in seed_sequences]
    m, n = len(rngs), setup.n_sites
    G = np.zeros((m, n, n), dtype=complex)
    G[:, np.arange(n), np.arange(n)] = setup.initial_density
    if m == 0 or setup.n_steps == 0:
        return G
    dt = setup.dt
    rotations = np.array([[[math.cos(t * tau), math.sin(t * tau)] for tau in (dt, dt / 2)]
                          for _, _, t in setup.layers])        # (K, short, cos/sin)
    scale = math.sqrt(setup.gamma * dt / 2)
    left, right = setup.driven_sites()
    if jit is not None:
        sizes = [len(first) for first, _, _ in setup.layers]
        stops = np.cumsum(sizes)
        flat_first = np.concatenate([first for first, _, _ in setup.layers]).astype(np.int64)
        flat_second = np.concatenate([second for _, second, _ in setup.layers]).astype(np.int64)
    for chunk in _chunks(_operations(len(setup.layers), setup.n_steps)):
        count = sum(1 for kind, _, _ in chunk if kind == 1)
        normals = np.stack([rng.standard_normal((count, n)) for rng in rngs])
        if jit is not None:
            ops = np.array(chunk, dtype=np.int64).reshape(-1, 3)
            jit.lattice_dephasing_chunk(
                G, normals, ops[:, 0], ops[:, 1], ops[:, 2], stops - np.array(sizes), stops,
                flat_first, flat_second, np.ascontiguousarray(rotations[:, :, 0]),
                np.ascontiguousarray(rotations[:, :, 1]), scale, dt / 2, left.astype(np.int64),
                right.astype(np.int64), setup.rate_left, setup.rate_right, setup.n_left,
                setup.n_right)
            continue
        row = 0
        for kind, layer, short in chunk:
            if kind == 0:
                first, second, _ = setup.layers[layer]
                c, s = rotations[layer, short]
                _pair_layer(G, first, second, c, 1j * s)
                continue
            phase = np.exp(-1j * scale * normals[:, row])
            row += 1
            G *= phase[:, :, None]
            G *= phase.conj()[:, None, :]
            for sites, rate, density in ((left, setup.rate_left, setup.n_left),
                                         (right, setup.rate_right, setup.n_right)):
                half = math.exp(-rate * dt / 4)
                G[:, sites, :] *= half
                G[:, :, sites] *= half
                G[:, sites, sites] += density * -math.expm1(-rate * dt / 2)
    return (G + G.conj().transpose(0, 2, 1)) / 2


def lattice_mode_matrices(G, shape, tol=EIGENVALUE_TOL):
    """``Phi (..., Nx, N_perp, M)`` of lattice correlation matrices (``M = N_sites``), signature
    all +1: `anderson_mpi.engines.chains.mode_matrices_from_G` with the slices split out."""
    phi = mode_matrices_from_G(G, tol)[..., 0, :]
    Nx, Ny, Nz = shape
    return phi.reshape(phi.shape[:-2] + (Nx, Ny * Nz, phi.shape[-1]))
