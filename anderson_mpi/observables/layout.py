"""What the observables of a run need besides the sample: sizes, k orbits, fixed slices, options.

Built once per run (`layout_for`), read back from a result file by `anderson_mpi.io.schema`, and
the one argument of every group's field and cost declarations (`anderson_mpi.observables`).

k orbits (docs/theory.md §6.2): the disorder mean of any k-diagonal quantity (in the transverse
Fourier basis) is constant on the orbit of k under the point symmetries of the ensemble (k -> -k
per direction; y <-> z when Ny = Nz and ty = tz), so k-resolved means are stored summed over
orbits: nothing the estimators need is lost, and files shrink up to 8x.

Pure numpy: arrays in, arrays out.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property

import numpy as np

__all__ = ["k_orbits", "slice_of_fraction", "cut_slices", "pair_slices", "Layout", "LayoutSize",
           "make_layout", "layout_for"]


def k_orbits(Ny, Nz, hopping):
    """Orbits of the transverse momenta under the point symmetries of the disorder ensemble.

    Parameters
    ----------
    Ny, Nz : int
    hopping : (tx, ty, tz)

    Returns
    -------
    orbit_index : ndarray (Ny*Nz,), int
        Orbit of mode ``n*Nz + m`` (k = 2 pi (n/Ny, m/Nz)).
    orbit_size : ndarray (n_orbits,), int
    """
    n, m = np.meshgrid(np.arange(Ny), np.arange(Nz), indexing="ij")
    images = [(n, m), ((-n) % Ny, m), (n, (-m) % Nz), ((-n) % Ny, (-m) % Nz)]
    if Ny == Nz and hopping[1] == hopping[2]:
        images += [(b, a) for a, b in images]
    canonical = np.min([a * Nz + b for a, b in images], axis=0).ravel()
    representatives, orbit_index = np.unique(canonical, return_inverse=True)
    return orbit_index.astype(np.int64), np.bincount(orbit_index).astype(np.int64)


def slice_of_fraction(Nx, fractions):
    """Slice index of each fraction z: the slice whose cell [ix/Nx, (ix+1)/Nx) holds z (1 -> Nx-1)."""
    fractions = np.asarray(fractions, dtype=float)
    return np.clip(np.floor(fractions * Nx).astype(np.int64), 0, Nx - 1)


def cut_slices(Nx, cuts):
    """``(n_cut,)`` fixed slices c of the third-order cuts (`slice_of_fraction` of each z)."""
    return slice_of_fraction(Nx, np.asarray(cuts, dtype=float).reshape(-1))


def pair_slices(Nx, cuts4):
    """``(n_pairs, 2)`` fixed slices (c, d) of the fourth-order cut pairs ``[[zc, zd], ...]``."""
    pairs = np.asarray(cuts4, dtype=float)
    if pairs.size == 0:
        return np.zeros((0, 2), dtype=np.int64)
    if pairs.ndim != 2 or pairs.shape[1] != 2:
        raise ValueError(f"cuts4 must be a list of [zc, zd] pairs, got shape {pairs.shape}")
    return slice_of_fraction(Nx, pairs)


@dataclass(frozen=True, eq=False)
class Layout:
    """Sizes, k orbits, the fixed slices of the cut observables and the options of a run.

    Attributes
    ----------
    Nx, Ny, Nz : int
    orbit_index, orbit_size : ndarray
        See `k_orbits`.
    cut_slices : ndarray (n_cut,), int
        The fixed slice c of each third-order cut.
    m3_split : bool
        Also the coinciding-slice fields of m3 (group ``m3_split``).
    pair_slices : ndarray (n_pairs, 2), int
        The fixed slices (c, d) of each fourth-order cut pair (group ``cut_pairs``).
    pair_schedule : str
        Which samples of a block compute the optional products of the cut pairs
        (`anderson_mpi.observables.cutpairs.SCHEDULES`).
    transport : bool
        The sample has scattering amplitudes (the Anderson model), so the transport fields exist.
    interval_grid : tuple of float
        The fractions x of the interval sums m_n(x) (group ``intervals``; empty: none).
    interval_probes : int
        Probe vectors per slice (independent sets; the estimates average over them).
    interval_pair_fraction : float
        Fraction of the slices on which the words that pair samples are probed (a random subset
        per sample, weighted by its inverse inclusion probability; 1: every slice).
    interval_exact_moments : bool
        ``Tr G_I^3``, ``Tr G_I^4`` exactly per sample (else from the probes).
    """

    Nx: int
    Ny: int
    Nz: int
    orbit_index: np.ndarray
    orbit_size: np.ndarray
    cut_slices: np.ndarray
    m3_split: bool = False
    pair_slices: np.ndarray = field(default_factory=lambda: np.zeros((0, 2), dtype=np.int64))
    transport: bool = True
    pair_schedule: str = "half"
    interval_grid: tuple = ()
    interval_probes: int = 1
    interval_pair_fraction: float = 0.25
    interval_exact_moments: bool = True

    @property
    def n_perp(self):
        return self.Ny * self.Nz

    @property
    def n_intervals(self):
        return len(self.interval_grid)

    @property
    def n_orbits(self):
        return len(self.orbit_size)

    @property
    def n_cuts(self):
        return len(self.cut_slices)

    @property
    def n_pairs(self):
        return len(self.pair_slices)

    @cached_property
    def orbit_matrix(self):
        """(n_orbits, N_perp) indicator: sums a k-resolved array over orbits by one product."""
        indicator = np.zeros((self.n_orbits, self.n_perp))
        indicator[self.orbit_index, np.arange(self.n_perp)] = 1.0
        return indicator

    @cached_property
    def orbit_order(self):
        """The momenta grouped by orbit (a stable sort of `orbit_index`)."""
        return np.argsort(self.orbit_index, kind="stable")

    @cached_property
    def orbit_starts(self):
        """``orbit_order[orbit_starts[o]:orbit_starts[o+1]]`` are the momenta of orbit o."""
        return np.concatenate([[0], np.cumsum(np.bincount(self.orbit_index, minlength=self.n_orbits))])

    @cached_property
    def orbit_members(self):
        """The momenta of each orbit, as a list of index arrays."""
        order, starts = self.orbit_order, self.orbit_starts
        return [order[starts[o]:starts[o + 1]] for o in range(self.n_orbits)]


@dataclass(frozen=True)
class LayoutSize:
    """The numbers a `Layout` gives the groups' field and cost declarations, without its arrays:
    what planning a run of any size needs (``n_orbits`` may be an estimate there)."""

    Nx: int
    Ny: int
    Nz: int
    n_orbits: int
    n_cuts: int = 0
    n_pairs: int = 0
    m3_split: bool = False
    transport: bool = True
    pair_schedule: str = "half"
    interval_grid: tuple = ()
    interval_probes: int = 1
    interval_pair_fraction: float = 0.25
    interval_exact_moments: bool = True

    @property
    def n_perp(self):
        return self.Ny * self.Nz

    @property
    def n_intervals(self):
        return len(self.interval_grid)


def make_layout(Nx, Ny, Nz, hopping, cuts, m3_split=False, cuts4=(), transport=True,
                cuts4_schedule="half", intervals=(), interval_probes=1, interval_pair_fraction=0.25,
                interval_exact_moments=True):
    """The `Layout` of a sample shape, hopping (for the orbits) and the run's observable options."""
    orbit_index, orbit_size = k_orbits(Ny, Nz, hopping)
    return Layout(int(Nx), int(Ny), int(Nz), orbit_index, orbit_size, cut_slices(Nx, cuts),
                  bool(m3_split), pair_slices(Nx, cuts4), bool(transport), str(cuts4_schedule),
                  tuple(float(x) for x in intervals), int(interval_probes),
                  float(interval_pair_fraction), bool(interval_exact_moments))


def layout_for(setup, cuts, m3_split=False, cuts4=(), cuts4_schedule="half", **interval_options):
    """The `Layout` of a `anderson_mpi.system.ScatteringSetup` (built once per run);
    ``interval_options``: the ``intervals``, ``interval_*`` keywords of `make_layout`."""
    return make_layout(*setup.shape, setup.hopping, cuts, m3_split, cuts4,
                       cuts4_schedule=cuts4_schedule, **interval_options)
