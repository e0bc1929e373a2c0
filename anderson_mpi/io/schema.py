"""The result file of one run, in one place: every dataset, its shape, dtype and meaning.

`anderson_mpi.io.store` (parallel writes), `anderson-mpi info`, `analysis.io` and the tests'
synthetic files all go through this module, so a change of the layout is seen everywhere. The
per-sample fields come from the observables' field catalogue (`anderson_mpi.observables.block_fields`):
the schema adds the bookkeeping records, the layout group and the version.
Readers check the schema version on open (`open_result`, `check_version`) and refuse a file
of another version with one line.

Layout (schema 3)::

    /                         attrs: schema_version, code_version, model, job_toml, run (JSON),
                                     physics (JSON), created, n_blocks, block_size, samples
    /layout/x                 (Nx,)      f8  slice coordinates (ix + 1/2) / Nx
    /layout/orbit_index       (N_perp,)  i8  k orbit of each transverse mode
    /layout/orbit_size        (n_orb,)   i8  momenta per orbit
    /layout/cut_slices        (n_cut,)   i8  slice index c of each third-order cut
    /layout/cut_fractions     (n_cut,)   f8  the job's cut fractions z
    /layout/pair_slices       (n_pair, 2) i8 slices (c, d) of each fourth-order cut pair
    /layout/pair_fractions    (n_pair, 2) f8 the job's cut-pair fractions
    /layout/n_open            (2,)       i8  open channels at E+ and E- (Anderson model only)
    /layout/interval_fractions (n_x,)    f8  the job's interval grid x (runs with intervals only)
    /layout/interval_lengths  (n_x,)     i8  slices L = round(x Nx) of each interval [0, L)
    /blocks/<field>           (n_blocks, ...)  per-block sums of each per-sample observable
    /blocks/n_samples         (n_blocks,) i8  samples in the block
    /blocks/unitarity_max     (n_blocks,) f8  worst unitarity error in the block
    /blocks/seconds           (n_blocks,) f8  wall seconds its rank spent on the block
    /blocks/rank              (n_blocks,) i4  the rank that computed it (group leader)
    /blocks/attempt           (n_blocks,) i4  which start of the run computed it (1, 2, ...)
    /blocks/finished          (n_blocks,) f8  Unix time its row was written
    /blocks/done              (n_blocks,) i1  1 once the block's row is on disk
    /attempts                 ()          i8  starts of the run (1 at creation, +1 per resume)
    /totals/<field>           sums over the counted blocks (written at the end)
    /totals/n_samples         ()          i8
    /totals/valid             ()          i1  1 once /totals is written

Which blocks count (`counted_blocks`): ``done == 1`` and ``n_samples > 0``; nothing else
of a row is trusted. A row is written before its flag, so a killed job leaves only complete
counted blocks. Any change of datasets or layout bumps `SCHEMA_VERSION`; files of another
version are refused with one line (schema 2: before /layout/pair_slices was required).
"""
from __future__ import annotations

import json

import numpy as np

from ..errors import SchemaError
from ..observables import Layout, block_fields
from ..observables.intervals import interval_lengths

__all__ = ["SCHEMA_VERSION", "block_fields", "block_records", "layout_datasets", "counted_blocks",
           "create_datasets", "check_version", "open_result", "file_bytes", "layout_of_file",
           "fields_in_file"]

SCHEMA_VERSION = 3

F8, I8, I4, I1 = np.float64, np.int64, np.int32, np.int8

LAYOUT, BLOCKS, TOTALS = "layout", "blocks", "totals"
LAYOUT_NAMES = ("x", "orbit_index", "orbit_size", "cut_slices", "cut_fractions", "pair_slices",
                "pair_fractions")
# datasets only the Anderson model's samples have (leads): the others' files lack them
LEAD_LAYOUT_NAMES = ("n_open",)


def block_records():
    """Name -> (dtype, meaning) of the bookkeeping datasets ``/blocks/<name>`` (n_blocks,)."""
    return {
        "n_samples": (I8, "samples in the block"),
        "unitarity_max": (F8, "worst unitarity error max|t^+t + r^+r - 1| in the block"),
        "seconds": (F8, "wall seconds the computing rank spent on the block"),
        "rank": (I4, "MPI rank that computed the block (the leader of a PETSc group)"),
        "attempt": (I4, "the start of the run (1, 2, ...; /attempts) that computed the block"),
        "finished": (F8, "Unix time at which the block's row was written"),
        "done": (I1, "1 once the block's row is on disk (only these blocks count)"),
    }


def layout_datasets(run, layout, n_open):
    """Name -> array of the ``/layout`` group of a run (``n_open`` None: a model without leads)."""
    out = {
        "x": (np.arange(layout.Nx) + 0.5) / layout.Nx,
        "orbit_index": np.asarray(layout.orbit_index, I8),
        "orbit_size": np.asarray(layout.orbit_size, I8),
        "cut_slices": np.asarray(layout.cut_slices, I8),
        "cut_fractions": np.asarray(run.cuts, F8),
        "pair_slices": np.asarray(layout.pair_slices, I8).reshape(-1, 2),
        "pair_fractions": np.asarray(run.cuts4, F8).reshape(-1, 2),
    }
    if n_open is not None:
        out["n_open"] = np.asarray(n_open, I8)
    if layout.interval_grid:
        out["interval_fractions"] = np.asarray(layout.interval_grid, F8)
        out["interval_lengths"] = interval_lengths(layout.Nx, layout.interval_grid).astype(I8)
    return out


def counted_blocks(done, n_samples):
    """Indices of the blocks that count: done flag 1 and at least one sample."""
    done = np.asarray(done).reshape(-1)
    n_samples = np.asarray(n_samples).reshape(-1)
    return np.flatnonzero((done == 1) & (n_samples > 0))


def file_bytes(layout, n_blocks, job_text=""):
    """Bytes a run's file takes once every block is written (data plus a margin for metadata)."""
    fields = block_fields(layout)
    per_block = sum(spec.nbytes for spec in fields.values())
    records = sum(np.dtype(d).itemsize for d, _ in block_records().values())
    n_datasets = len(fields) * 2 + len(block_records()) + 12
    metadata = 64 * 1024 + 4096 * n_datasets + 2 * len(job_text.encode())
    return (n_blocks + 1) * per_block + n_blocks * records + metadata


def create_datasets(f, attrs, layout_arrays, layout, n_blocks):
    """Create every dataset of a new result file (collective when ``f`` is an mpio file).

    Parameters
    ----------
    f : h5py.File
        Open for writing (serial, or mpio with every rank calling this with equal arguments).
    attrs : dict
        Root attributes (see the module docstring); ``schema_version`` is added here.
    layout_arrays : dict
        `layout_datasets`.
    layout : anderson_mpi.observables.Layout
    n_blocks : int
    """
    f.attrs.update(dict(attrs, schema_version=SCHEMA_VERSION))
    make = dict(track_times=False)
    group = f.create_group(LAYOUT)
    for name, value in layout_arrays.items():
        group.create_dataset(name, data=np.asarray(value), **make)
    blocks, totals = f.create_group(BLOCKS), f.create_group(TOTALS)
    for name, spec in block_fields(layout).items():
        blocks.create_dataset(name, shape=(n_blocks,) + spec.shape, dtype=spec.dtype, **make)
        totals.create_dataset(name, shape=spec.shape, dtype=spec.dtype, **make)
    for name, (dtype, _) in block_records().items():
        blocks.create_dataset(name, shape=(n_blocks,), dtype=dtype, fillvalue=0, **make)
    f.create_dataset("attempts", shape=(), dtype=I8, fillvalue=0, **make)
    totals.create_dataset("n_samples", shape=(), dtype=I8, fillvalue=0, **make)
    totals.create_dataset("valid", shape=(), dtype=I1, fillvalue=0, **make)


def check_version(f, path):
    """Raise `SchemaError` (one line naming ``path``) unless ``f`` is a result file of this version."""
    if "schema_version" not in f.attrs or "run" not in f.attrs or "model" not in f.attrs:
        raise SchemaError(f"{path}: not an anderson_mpi result file (no schema_version/model/run attribute)")
    version = int(f.attrs["schema_version"])
    if version != SCHEMA_VERSION:
        raise SchemaError(f"{path}: result file of schema version {version}; this code reads "
                          f"version {SCHEMA_VERSION} (re-run the job into a new --out, or use the "
                          f"anderson_mpi release that wrote it)")


def open_result(path):
    """Open a result file read-only and serially (no file lock), after `check_version`.

    Raises `SchemaError` for a file that is not HDF5, has no schema attribute, or another
    version; the caller closes the returned ``h5py.File``.
    """
    import h5py
    try:  # reading a file a running job writes: no lock (the metadata is final at creation)
        f = h5py.File(path, "r", locking=False)
    except OSError as err:
        raise SchemaError(f"{path}: cannot be opened as HDF5 ({err})") from None
    try:
        check_version(f, path)
    except SchemaError:
        f.close()
        raise
    return f


def layout_of_file(f, path="result file"):
    """The run's `anderson_mpi.observables.Layout`, read back from an open result file."""
    run = json.loads(f.attrs["run"])
    model = str(f.attrs["model"])
    group = f[LAYOUT]
    needed = LAYOUT_NAMES + (LEAD_LAYOUT_NAMES if model == "anderson" else ())
    missing = [name for name in needed if name not in group]
    if missing:
        raise SchemaError(f"{path}: /{LAYOUT}/{missing[0]} missing")
    x = group["x"]
    return Layout(Nx=len(x), Ny=int(run["Ny"]), Nz=int(run["Nz"]),
                  orbit_index=np.asarray(group["orbit_index"][...], np.int64),
                  orbit_size=np.asarray(group["orbit_size"][...], np.int64),
                  cut_slices=np.asarray(group["cut_slices"][...], np.int64).reshape(-1),
                  m3_split=bool(run.get("m3_split", False)),
                  pair_slices=np.asarray(group["pair_slices"][...], np.int64).reshape(-1, 2),
                  transport=model == "anderson", pair_schedule=run.get("cuts4_schedule", "half"),
                  interval_grid=tuple(float(x) for x in run.get("intervals", ())),
                  interval_probes=int(run.get("interval_probes", 1)),
                  interval_pair_fraction=float(run.get("interval_pair_fraction", 0.25)),
                  interval_exact_moments=bool(run.get("interval_exact_moments", True)))


def fields_in_file(f, path):
    """`block_fields` of an open file, after checking every dataset is there with its shape."""
    fields = block_fields(layout_of_file(f, path))
    n_blocks = int(f.attrs["n_blocks"])
    for name, spec in fields.items():
        key = f"{BLOCKS}/{name}"
        if key not in f or f[key].shape != (n_blocks,) + spec.shape:
            raise SchemaError(f"{path}: /{key} missing or of the wrong shape")
    for name in block_records():
        if f"{BLOCKS}/{name}" not in f:
            raise SchemaError(f"{path}: /{BLOCKS}/{name} missing")
    return fields
