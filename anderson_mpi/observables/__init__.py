"""Per-sample observables from the mode matrices, one contract per observable group.

An observable group (``base``, ``transport``, ``cuts``, ``m3_split``, ``cut_pairs``,
``intervals``) declares

- ``active(layout)``: whether a run has it (from its options, `Layout`);
- ``fields(layout)``: name -> `anderson_mpi.contracts.Field` (shape, dtype, meaning) of every
  per-sample value it produces; the block sums of exactly these are stored;
- ``steps(layout)``: ``(stage, function)`` pairs; ``function(work, state)`` returns a dict of
  fields computed from the shared `SampleWork` (and the per-block ``state``);
- ``cost(layout, width)``: the `anderson_mpi.contracts.Cost` of one sample (work by kind and
  working memory), ``width`` the number of mode columns.

The schema, the disk preflight, the scheduler's cost model, the ETA, ``plan`` and the memory
preflight all derive from these declarations (`block_fields`, `observables_cost`), so a group
cannot be added without its fields and its cost. A new group is one module with one such object,
listed in `GROUPS`.

Steps of all active groups run in stage order, which bounds the peak memory: the slice Gram
matrices (twice the size of Phi) are gone before the Fourier copy of Phi is made, and the
base group's g2 step (stage 60) overwrites that copy in place unless a group marked it as still
needed (`SampleWork.keep_phi_k`).

Gneq is never formed: with ``Phi_a`` the mode matrix of slice ``a`` and ``S`` the signature,
``G_ab = Phi_a S Phi_b^+`` (docs/theory.md §5). Every quantity is a per-sample value whose sums
over samples (the block sums) are all the estimators need (`analysis.estimators`). Pure
numpy/scipy: arrays in, arrays out.
"""
from __future__ import annotations

from functools import cached_property

from ..contracts import Cost, Field
from ..system import transverse_fft
from .base import BASE, TRANSPORT, transport_moments
from .cutpairs import CUT_PAIRS
from .cuts import CUTS
from .intervals import INTERVALS
from .layout import Layout, k_orbits, layout_for, make_layout, pair_slices, cut_slices
from .m3split import M3_SPLIT

__all__ = ["GROUPS", "Field", "Cost", "Layout", "make_layout", "layout_for", "k_orbits",
           "cut_slices", "pair_slices", "active_groups", "needs_rng", "block_fields", "observables_cost",
           "SampleWork", "BlockState", "sample_observables", "transport_moments"]

# Every group, in the order their fields are listed in a result file.
GROUPS = (BASE, CUTS, CUT_PAIRS, M3_SPLIT, INTERVALS, TRANSPORT)


def needs_rng(layout):
    """Whether a run's groups draw random numbers (then every sample needs its own ``rng``)."""
    return bool(layout.interval_grid)


def active_groups(layout):
    """The groups a run with this layout computes."""
    return [group for group in GROUPS if group.active(layout)]


def block_fields(layout):
    """Name -> `Field` of every per-sample observable of a run (the field catalogue)."""
    fields = {}
    for group in active_groups(layout):
        for name, spec in group.fields(layout).items():
            if name in fields:
                raise RuntimeError(f"field {name!r} declared by two observable groups")
            fields[name] = spec
    return fields


def observables_cost(layout, width):
    """`Cost` of the observables of one sample (``width`` mode columns): the sum of the groups'."""
    total = Cost()
    for group in active_groups(layout):
        total = total + group.cost(layout, width)
    return total


class BlockState(dict):
    """What consecutive samples of one seed block share (group name -> its carry). A fresh state
    per block makes the sums depend only on the block's own samples, in their fixed order."""


class SampleWork:
    """One sample's mode matrices and the intermediate results its groups share.

    ``phi_k`` (the transverse Fourier copy of Phi) is made on first use; ``k_total`` (sum of the
    slice Grams), ``mean_k`` (this sample's k-orbit sums of G~_ab), ``g2_left``/``g2_right``
    (factors of (G^2)~), ``g_aa_lower`` and ``gram_lower`` (the slice Grams; kept only for the
    interval sums) are set by the steps that compute them. ``rng``: the sample's own generator
    for the groups that draw random numbers (the interval sums' probes), None if no group does.
    ``keep_phi_k``: a later consumer (the next sample of the block) still needs ``phi_k``, so the
    g2 step must not overwrite it.
    """

    def __init__(self, modes, layout, rng=None):
        self.modes = modes
        self.layout = layout
        self.phi = modes.phi
        self.s = modes.signature
        self.k_total = None
        self.g2_left = self.g2_right = None
        self.g_aa_lower = None
        self.mean_k = None
        self.gram_lower = None
        self.keep_phi_k = False
        self.rng = rng

    @cached_property
    def phi_k(self):
        return transverse_fft(self.phi, self.layout.Ny, self.layout.Nz, axis=1)

    def release_phi_k(self):
        """Hand ``phi_k`` to its last consumer (which may overwrite it unless `keep_phi_k`)."""
        return self.__dict__.pop("phi_k") if "phi_k" in self.__dict__ else self.phi_k


def sample_observables(modes, layout, block=None, rng=None):
    """All per-sample observables of one sample.

    Parameters
    ----------
    modes : anderson_mpi.system.ModeMatrices
    layout : Layout
    block : BlockState, optional
        The state of the sample's seed block (groups that pair the sample with the previous one
        of its block need it). None: a block of its own.
    rng : numpy.random.Generator, optional
        Drawn from the sample's own seed (never shared between samples), for the groups that
        need random numbers (``intervals``); see `needs_rng`.

    Returns
    -------
    dict
        name -> array, with the names, shapes and meanings of `block_fields` for this layout.
    """
    state = block if block is not None else BlockState()
    if rng is None and needs_rng(layout):
        raise ValueError("the interval sums need the sample's own random generator (rng)")
    work = SampleWork(modes, layout, rng)
    steps = sorted((stage, i, step) for i, group in enumerate(active_groups(layout))
                   for stage, step in group.steps(layout))
    obs = {}
    for _, _, step in steps:
        obs.update(step(work, state))
    return obs
