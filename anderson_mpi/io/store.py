"""The result file of one run: parallel writes, checkpoint and resume (layout: `schema`).

One HDF5 file per run, opened by all ranks with h5py's ``mpio`` driver. Every dataset is
created when the file is created (collectively) and is never resized, and no attribute is
written after that, so the file's metadata is final and flushed before the first sample. A
new file is built under a temporary name (``<name>.h5.partial``) and renamed when its
metadata is on disk, so a job killed while creating it leaves no half-made ``.h5``.
Afterwards a run writes raw data only, each block by the rank that computed it (independent
MPI-IO writes into the preallocated datasets): the block's row with its records, an fsync,
then its ``done`` flag. A job killed at any moment therefore leaves a readable file whose done
blocks are complete; the blocks in flight are simply not marked done. All files of a job may
be open at once; opening, closing and the totals are collective per file.

The totals are summed in a fixed order that does not depend on the number of ranks: the
counted blocks are cut into `TOTAL_CHUNKS` consecutive chunks, each summed in block order by
one rank, and the chunk sums meet in an MPI Allreduce in which every entry has exactly one
nonzero contribution (adding zeros is exact), then are added in chunk order.
"""
from __future__ import annotations

import datetime
import json
import os
import shutil
from dataclasses import dataclass

import numpy as np

from .._version import __version__
from ..errors import StoreError
from ..observables import transport_moments
from . import schema

__all__ = ["require_parallel_h5py", "StoreError", "BlockResult", "RunFile", "read_physics",
           "read_summary", "TOTAL_CHUNKS"]

TOTAL_CHUNKS = 8


def require_parallel_h5py():
    """Import h5py and refuse to go on unless it was built with MPI (parallel HDF5)."""
    import h5py
    if not h5py.get_config().mpi:
        raise RuntimeError("h5py was built without MPI: parallel HDF5 is required "
                           "(make install builds it against libhdf5-openmpi)")
    return h5py


def write_failure(path, what, err):
    """A `StoreError` that names the file and the cause (disk full says so, with the free space)."""
    cause = f"{type(err).__name__}: {err}"
    try:
        free = shutil.disk_usage(os.path.dirname(os.path.abspath(path))).free
    except OSError:
        free = None
    if free is not None and free < 16 * 2**20:
        cause = f"no space left on the device ({free / 2**20:.1f} MiB free); {cause}"
    return StoreError(f"{path}: cannot {what}: {cause}")


@dataclass
class BlockResult:
    """One finished seed block, as the computing rank hands it to the file."""

    block: int
    sums: dict
    n_samples: int
    unitarity_max: float
    seconds: float
    rank: int


def read_physics(path):
    """The stored run physics (dict) of an existing result file, serially, read-only.

    Raises `anderson_mpi.errors.SchemaError` for a file of another schema version.
    """
    f = schema.open_result(path)
    try:
        return json.loads(f.attrs["physics"])
    finally:
        f.close()


class RunFile:
    """An open result file of one run, shared by the ranks of ``comm``.

    Parameters
    ----------
    run : anderson_mpi.run.config.Run
    layout : anderson_mpi.observables.Layout
    comm : mpi4py.MPI.Comm
    job_text : str
        The job's full TOML, stored verbatim.
    resume : bool
        Open the existing file (its physics was checked by the caller) instead of creating one.
    n_open : (int, int)
        Open channels at E+ and E- (stored in /layout/n_open), from the run's
        `anderson_mpi.system.ScatteringSetup`; needed to create a file.

    Attributes
    ----------
    attempt : int
        This start of the run (1 for a new file, the stored count + 1 on resume).
    """

    def __init__(self, run, layout, comm, job_text="", resume=False, n_open=None):
        self.h5py = require_parallel_h5py()
        self.comm = comm
        self.path = run.path
        self.fields = schema.block_fields(layout)
        if resume:
            self.file = self.h5py.File(self.path, "r+", driver="mpio", comm=comm)
            schema.check_version(self.file, self.path)
            schema.fields_in_file(self.file, self.path)
        else:
            if n_open is None and run.model == "anderson":  # never guess: evanescent channels
                raise ValueError("RunFile: n_open (open channels at E+, E-) is needed to create a file")
            self._create(run, layout, job_text, None if n_open is None else tuple(int(n) for n in n_open))
        attempts = self.file["attempts"]
        self.attempt = int(attempts[()]) + 1
        comm.Barrier()  # every rank has read the count before rank 0 raises it
        if comm.rank == 0:
            attempts[()] = self.attempt
        self.file.flush()
        # Dataset handles opened once, by every rank in the same order (opening is a metadata
        # operation); the block writes through them are independent raw-data writes into
        # preallocated storage, which touch no metadata.
        self.blocks = {name: self.file["blocks"][name]
                       for name in list(self.fields) + list(schema.block_records())}
        self._sync_fd = os.open(self.path, os.O_RDONLY)

    def _create(self, run, layout, job_text, n_open):
        partial = self.path + ".partial"
        attrs = {
            "code_version": __version__, "model": run.model, "job_toml": job_text, "run": run.to_json(),
            "physics": json.dumps(run.physics(), sort_keys=True),
            "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
            "n_blocks": run.n_blocks, "block_size": run.block_size, "samples": run.samples,
        }
        try:
            f = self.file = self.h5py.File(partial, "w", driver="mpio", comm=self.comm)
            schema.create_datasets(f, attrs, schema.layout_datasets(run, layout, n_open), layout,
                                   run.n_blocks)
            # Zero the flags explicitly: parallel HDF5 allocates early but may skip fills.
            if self.comm.rank == 0:
                f["blocks/done"][...] = 0
                f["attempts"][()] = 0
                f["totals/valid"][()] = 0
            f.flush()
        except OSError as err:
            raise write_failure(partial, "create the result file", err) from None
        self.comm.Barrier()
        if self.comm.rank == 0:
            os.replace(partial, self.path)  # the open handles follow the file
        self.comm.Barrier()

    def counted_blocks(self):
        blocks = self.file["blocks"]
        return schema.counted_blocks(blocks["done"][...], blocks["n_samples"][...])

    def write_block(self, res):
        """Independent (this rank only): the block's row and records, fsync, then its flag.

        The flag is written only after the row is on disk (``fsync`` flushes the file's pages
        whichever process wrote them), so a job killed at any moment, or a node that fails,
        leaves no flag without its row.
        """
        import time
        blocks = self.blocks
        try:
            for name in self.fields:
                blocks[name][res.block] = res.sums[name]
            for name, value in (("n_samples", res.n_samples), ("unitarity_max", res.unitarity_max),
                                ("seconds", res.seconds), ("rank", res.rank),
                                ("attempt", self.attempt), ("finished", time.time())):
                blocks[name][res.block] = value
            os.fsync(self._sync_fd)  # rows on disk before any flag says so
            blocks["done"][res.block] = 1
        except OSError as err:
            raise write_failure(self.path, f"write block {res.block}", err) from None

    def finalize(self):
        """Collective: the sums of the counted blocks into /totals, in a rank-independent order."""
        from mpi4py import MPI
        self.file.flush()   # every rank's independent writes visible to every rank
        self.comm.Barrier()
        counted = self.counted_blocks()
        chunks = np.array_split(counted, min(TOTAL_CHUNKS, max(len(counted), 1)))
        mine = range(self.comm.rank, len(chunks), self.comm.size)
        blocks = self.blocks
        totals = {}
        for name, spec in self.fields.items():
            partial = np.zeros((len(chunks),) + spec.shape, dtype=spec.dtype)
            for c in mine:
                for block in chunks[c]:  # block order within a chunk
                    partial[c] += blocks[name][block]
            self.comm.Allreduce(MPI.IN_PLACE, partial, op=MPI.SUM)  # one nonzero term per entry
            total = np.zeros(spec.shape, dtype=spec.dtype)
            for c in range(len(chunks)):
                total += partial[c]
            totals[name] = total
        n_total = int(blocks["n_samples"][...][counted].sum()) if len(counted) else 0
        try:
            if self.comm.rank == 0:
                for name, total in totals.items():
                    self.file["totals"][name][...] = total
                self.file["totals/n_samples"][()] = n_total
            self.file.flush()
            if self.comm.rank == 0:
                self.file["totals/valid"][()] = 1
            self.file.flush()
        except OSError as err:
            raise write_failure(self.path, "write /totals", err) from None
        return totals, n_total

    def close(self):
        """Collective."""
        os.close(self._sync_fd)
        self.blocks = None
        self.file.close()


def read_summary(path):
    """Serial read of a result file's state and headline numbers (for ``anderson-mpi info``).

    Raises `anderson_mpi.errors.SchemaError` for a file that is not of this schema.
    """
    f = schema.open_result(path)
    try:
        run = json.loads(f.attrs["run"])
        blocks = f["blocks"]
        counted = schema.counted_blocks(blocks["done"][...], blocks["n_samples"][...])
        n = blocks["n_samples"][...][counted]
        samples = int(n.sum())
        seconds = blocks["seconds"][...][counted]
        summary = {
            "path": str(path), "schema_version": int(f.attrs["schema_version"]),
            "code_version": str(f.attrs["code_version"]), "created": str(f.attrs["created"]),
            "run": run, "n_blocks": int(f.attrs["n_blocks"]), "blocks_done": int(len(counted)),
            "samples": int(f.attrs["samples"]), "samples_done": samples,
            "attempts": int(f["attempts"][()]),
            "model": str(f.attrs["model"]),
            "n_open": [int(v) for v in f["layout/n_open"][...]] if "n_open" in f["layout"] else None,
            "complete": bool(len(counted) == int(f.attrs["n_blocks"]) and f["totals/valid"][()] == 1),
            "unitarity_max": float(blocks["unitarity_max"][...][counted].max()) if samples else None,
            "compute_seconds": float(seconds.sum()),
            "seconds_per_sample": float(seconds.sum() / samples) if samples else None,
        }
        if samples and "g" in blocks:  # transport: samples with leads (the Anderson model)
            means = [float(blocks[name][...][counted].sum()) / samples for name in ("g", "g_sq", "fano_num")]
            moments = transport_moments(*means, samples)
            summary["conductance_mean"] = moments["conductance"]
            summary["conductance_var"] = float(moments["conductance_var"])
            summary["fano"] = float(moments["fano"])
        if samples:
            # g1 slope: unweighted least squares of C1(x) = Tr G_aa / N_perp against x
            x = f["layout/x"][...]
            c1 = blocks["tr_g"][...][counted].sum(axis=0) / samples / (run["Ny"] * run["Nz"])
            slope, intercept = np.polyfit(x, c1, 1)
            summary["g1_slope"] = float(slope)
            summary["g1_intercept"] = float(intercept)
        return summary
    finally:
        f.close()
