"""Reading anderson_mpi result files for the analysis (serial h5py, read-only).

A result directory holds one HDF5 file per run; every dataset, the schema version and the rule
"which blocks count" come from `anderson_mpi.io.schema`, so a file of another schema version is
refused by name. Only the counted blocks carry data; a run is *complete* when every block
counts and ``/totals/valid`` is 1. The analysis refuses incomplete runs unless told otherwise
(``allow_incomplete``), and always names the files it refuses.

Block rows are read lazily, one block at a time (`DoneBlocks`), so that the jackknife over the
blocks of a large run never holds every block of every field in memory at once.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from anderson_mpi.errors import ResultsError
from anderson_mpi.io import schema

__all__ = ["ResultsError", "DoneBlocks", "RunData", "open_run", "discover"]

# What `python -m analysis DIR` writes next to the result files (analysis.report.write_estimates).
ESTIMATES_FILE = "estimates.h5"


class DoneBlocks:
    """Read-only view of the done rows of one ``/blocks/<field>`` dataset.

    ``view[j]`` is the j-th *done* block (read from the file on access); ``len(view)`` the
    number of done blocks. This is all `analysis.estimators.jackknife` needs.
    """

    def __init__(self, dataset, indices):
        self.dataset = dataset
        self.indices = np.asarray(indices, dtype=np.int64)
        self.shape = (len(self.indices),) + tuple(dataset.shape[1:])
        self.dtype = dataset.dtype

    def __len__(self):
        return len(self.indices)

    def __getitem__(self, j):
        return np.asarray(self.dataset[int(self.indices[j])])


class RunFields:
    """Shorthands for the run parameters of anything with a ``run`` dict (the file's JSON)."""

    @property
    def geometry(self):
        return self.run["geometry"]

    @property
    def Nx(self):
        return int(self.run["Nx"])

    @property
    def Ny(self):
        return int(self.run["Ny"])

    @property
    def Nz(self):
        return int(self.run["Nz"])

    @property
    def model(self):
        """"anderson", or a stochastic model ("qssep", "dephasing"; docs/theory.md §12)."""
        return self.run.get("model", "anderson")

    @property
    def W(self):
        """The disorder strength (None for the stochastic models)."""
        return None if self.run.get("W") is None else float(self.run["W"])

    @property
    def parameter(self):
        """``(name, value)`` that tells a run's group apart: W, QSSEP's D or the dephasing gamma."""
        name = {"anderson": "W", "qssep": "D", "dephasing": "gamma"}[self.model]
        return name, float(self.run[name])

    @property
    def has_leads(self):
        return self.model == "anderson"


@dataclass
class RunData(RunFields):
    """One result file: its configuration, layout and done blocks.

    Use as a context manager (or call `close`): the block views read from the open file.
    """

    path: Path
    run: dict
    x: np.ndarray
    orbit_size: np.ndarray
    cut_slices: np.ndarray
    cut_fractions: np.ndarray
    n_blocks: int
    done: np.ndarray  # indices of the counted blocks (schema.counted_blocks)
    n_per_block: np.ndarray  # samples in each done block
    samples_planned: int
    totals_valid: bool
    blocks: dict = field(default_factory=dict)  # field -> DoneBlocks
    job_toml: str = ""  # the job file the run was made from, verbatim
    pair_slices: np.ndarray = field(default_factory=lambda: np.zeros((0, 2), np.int64))  # order 4
    # open lead channels at E+ and E- (/layout/n_open): fewer than N_perp with evanescent
    # channels; the estimators' transverse normalization N_perp^-n counts sites, not channels
    n_open: tuple = ()
    # the interval sums' grid (/layout/interval_lengths; empty without the group `intervals`)
    interval_lengths: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    _file: object = None


    @property
    def n_perp(self):
        return self.Ny * self.Nz

    @property
    def samples(self):
        return int(self.n_per_block.sum())

    @property
    def complete(self):
        return len(self.done) == self.n_blocks and self.totals_valid

    @property
    def label(self):
        name, value = self.parameter
        prefix = "" if self.model == "anderson" else f"{self.model} "
        if self.geometry in ("cube", "chain"):
            return f"{prefix}{self.geometry} N={self.Nx} {name}={value:g}"
        return f"{prefix}quasi1d Nx={self.Nx} Ny={self.Ny} Nz={self.Nz} {name}={value:g}"

    def status(self):
        """One line: blocks done, samples, totals."""
        return (f"{len(self.done)}/{self.n_blocks} blocks done, {self.samples}/{self.samples_planned} "
                f"samples, totals {'valid' if self.totals_valid else 'not written'}")

    def close(self):
        if self._file is not None:
            self._file.close()
            self._file = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def open_run(path):
    """Open one result file; raise `ResultsError` if it is not a readable result file of this schema."""
    path = Path(path)
    try:
        f = schema.open_result(path)
    except schema.SchemaError as err:
        raise ResultsError(str(err)) from None
    try:
        fields = schema.fields_in_file(f, path)
        run = json.loads(f.attrs["run"])
        for key in ("geometry", "Nx", "Ny", "Nz", "W"):
            if key not in run:
                raise KeyError(f"run attribute {key!r}")
        layout = f["layout"]
        blocks = f["blocks"]
        n_all = np.asarray(blocks["n_samples"][...], dtype=np.int64)
        done = schema.counted_blocks(blocks["done"][...], n_all)
        data = RunData(
            path=path, run=run, x=np.asarray(layout["x"][...], float),
            orbit_size=np.asarray(layout["orbit_size"][...], np.int64),
            cut_slices=np.asarray(layout["cut_slices"][...], np.int64).reshape(-1),
            cut_fractions=np.asarray(layout["cut_fractions"][...], float).reshape(-1),
            n_blocks=int(len(n_all)), done=done, n_per_block=n_all[done],
            samples_planned=int(f.attrs.get("samples", n_all.sum())),
            totals_valid=bool(f["totals/valid"][()] == 1),
            job_toml=str(f.attrs.get("job_toml", "")),
            pair_slices=np.asarray(layout["pair_slices"][...], np.int64).reshape(-1, 2),
            n_open=(tuple(int(n) for n in layout["n_open"][...]) if "n_open" in layout else ()),
            interval_lengths=(np.asarray(layout["interval_lengths"][...], np.int64)
                              if "interval_lengths" in layout else np.zeros(0, np.int64)),
            _file=f)
        data.blocks = {name: DoneBlocks(blocks[name], done) for name in fields}
    except schema.SchemaError as err:
        f.close()
        raise ResultsError(str(err)) from None
    except (KeyError, ValueError, TypeError) as err:
        f.close()
        raise ResultsError(f"{path}: not an anderson_mpi result file (missing {err})") from None
    return data


def discover(directory, allow_incomplete=False, min_blocks=2):
    """Open the result files (``*.h5``) of a results directory.

    Parameters
    ----------
    directory : path
    allow_incomplete : bool
        Use the done blocks of incomplete runs instead of refusing them.
    min_blocks : int
        Runs with fewer done blocks cannot be jackknifed; they are skipped with a note.

    Returns
    -------
    runs : list of RunData
        Open runs (the caller closes them), sorted by geometry, W, Ny, Nz, Nx.
    notes : list of str
        What was skipped and why.

    Raises
    ------
    ResultsError
        Missing directory, no result files, unreadable files, or incomplete runs without
        ``allow_incomplete``; the message names every offending file.
    """
    directory = Path(directory)
    if not directory.exists():
        raise ResultsError(f"results directory {str(directory)!r} does not exist "
                           f"(run the job first, e.g. `make run`)")
    if not directory.is_dir():
        raise ResultsError(f"{str(directory)!r} is not a directory")
    paths = sorted(p for p in directory.glob("*.h5") if p.name != ESTIMATES_FILE)
    if not paths:
        raise ResultsError(f"no result files (*.h5) in {str(directory)!r}")
    runs, notes, bad, incomplete = [], [], [], []
    for path in paths:
        try:
            data = open_run(path)
        except ResultsError as err:
            bad.append(str(err))
            continue
        if not data.complete:
            incomplete.append(data)
        else:
            runs.append(data)
    problems = []
    if bad and not allow_incomplete:
        problems.append("unreadable result files (--allow-incomplete skips them):\n  " + "\n  ".join(bad))
    notes.extend(f"skipped {line}" for line in (bad if allow_incomplete else []))
    if incomplete and not allow_incomplete:
        problems.append("incomplete runs (use --allow-incomplete to analyse their done blocks):\n  "
                        + "\n  ".join(f"{d.path}: {d.label}: {d.status()}" for d in incomplete))
    if problems:
        for d in runs + incomplete:
            d.close()
        raise ResultsError("\n".join(problems))
    for d in incomplete:
        notes.append(f"incomplete run analysed from its done blocks: {d.path.name}: {d.status()}")
        runs.append(d)
    usable = []
    for d in runs:
        if len(d.done) < min_blocks:
            message = (f"{d.path.name}: {d.label}: only {len(d.done)} done block(s); "
                       f"the jackknife needs at least {min_blocks}")
            notes.append("skipped " + message)
            d.close()
        else:
            usable.append(d)
    if not usable:
        raise ResultsError(f"no usable runs in {str(directory)!r}" + ("".join(
            f"\n  {n}" for n in notes)))
    usable.sort(key=lambda d: (d.geometry, d.W, d.Ny, d.Nz, d.Nx, str(d.path)))
    return usable, notes
