"""The result file of one run: schema, parallel writes, checkpoint and resume.

One HDF5 file per run, opened by all ranks with h5py's ``mpio`` driver. Every dataset is
created when the file is created (collectively) and is never resized, and no attribute is
written after that, so the file's metadata is final and flushed before the first sample.
A run afterwards writes raw data only: block rows, then (after a flush) their ``done``
flags. A job killed at any moment therefore leaves a readable file whose ``done`` blocks
are complete; the blocks in flight are simply not marked done.

Layout (schema 1)::

    /                       attrs: schema_version, code_version, job_toml, run (JSON),
                                   physics (JSON), created, n_blocks, block_size, samples
    /layout/x               (Nx,)   slice coordinates (ix + 1/2) / Nx
    /layout/orbit_index     (N_perp,) k orbit of each transverse mode
    /layout/orbit_size      (n_orb,)
    /layout/cut_slices      (n_cut,) slice index c of each cut
    /layout/cut_fractions   (n_cut,) the job's cut fractions z
    /blocks/<field>         (n_blocks, ...) per-block sums of each per-sample observable
    /blocks/n_samples       (n_blocks,) samples in the block
    /blocks/unitarity_max   (n_blocks,) worst unitarity error in the block
    /blocks/done            (n_blocks,) int8, 1 once the block's row is on disk
    /samples_done           ()       samples in done blocks
    /totals/<field>         sums over all blocks (MPI Allreduce at the end)
    /totals/n_samples       ()
    /totals/valid           () int8, 1 once /totals is written

Field meanings: `anderson_mpi.moments.field_shapes`.
"""
from __future__ import annotations

import datetime
import json

import numpy as np

from ._version import __version__
from .config import SCHEMA_VERSION
from .moments import field_shapes

__all__ = ["require_parallel_h5py", "RunFile", "read_physics", "read_summary"]


def require_parallel_h5py():
    """Import h5py and refuse to go on unless it was built with MPI (parallel HDF5)."""
    import h5py
    if not h5py.get_config().mpi:
        raise RuntimeError("h5py was built without MPI: parallel HDF5 is required "
                           "(make install builds it against libhdf5-openmpi)")
    return h5py


def read_physics(path):
    """The stored run physics (dict) of an existing result file, serially, read-only."""
    import h5py
    with h5py.File(path, "r") as f:
        return json.loads(f.attrs["physics"])


class RunFile:
    """An open result file of one run, shared by the ranks of ``comm``.

    Parameters
    ----------
    path : str
    run : anderson_mpi.config.Run
    layout : anderson_mpi.moments.Layout
    comm : mpi4py.MPI.Comm
    job_text : str
        The job's full TOML, stored verbatim.
    resume : bool
        Open an existing file (its physics was checked by the caller) instead of creating one.
    """

    def __init__(self, path, run, layout, comm, job_text="", resume=False):
        h5py = require_parallel_h5py()
        self.comm = comm
        self.path = path
        self.fields = field_shapes(layout)
        n_blocks = run.n_blocks
        if resume:
            self.file = h5py.File(path, "r+", driver="mpio", comm=comm)
            return
        f = self.file = h5py.File(path, "w", driver="mpio", comm=comm)
        f.attrs.update({
            "schema_version": SCHEMA_VERSION, "code_version": __version__,
            "job_toml": job_text, "run": run.to_json(),
            "physics": json.dumps(run.physics(), sort_keys=True),
            "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
            "n_blocks": n_blocks, "block_size": run.block_size, "samples": run.samples,
        })
        make = dict(track_times=False)
        layout_group = f.create_group("layout")
        for name, value in (("x", (np.arange(run.Nx) + 0.5) / run.Nx),
                            ("orbit_index", layout.orbit_index), ("orbit_size", layout.orbit_size),
                            ("cut_slices", layout.cuts), ("cut_fractions", np.asarray(run.cuts, float))):
            layout_group.create_dataset(name, data=np.asarray(value), **make)
        blocks, totals = f.create_group("blocks"), f.create_group("totals")
        for name, (shape, dtype) in self.fields.items():
            blocks.create_dataset(name, shape=(n_blocks,) + shape, dtype=dtype, **make)
            totals.create_dataset(name, shape=shape, dtype=dtype, **make)
        blocks.create_dataset("n_samples", shape=(n_blocks,), dtype=np.int64, **make)
        blocks.create_dataset("unitarity_max", shape=(n_blocks,), dtype=np.float64, **make)
        blocks.create_dataset("done", shape=(n_blocks,), dtype=np.int8, fillvalue=0, **make)
        f.create_dataset("samples_done", shape=(), dtype=np.int64, fillvalue=0, **make)
        totals.create_dataset("n_samples", shape=(), dtype=np.int64, fillvalue=0, **make)
        totals.create_dataset("valid", shape=(), dtype=np.int8, fillvalue=0, **make)
        # Zero-initialize the flags explicitly: parallel HDF5 allocates early but may skip fills.
        if comm.rank == 0:
            blocks["done"][...] = 0
            f["samples_done"][()] = 0
            totals["valid"][()] = 0
        f.flush()

    def done_blocks(self):
        return np.flatnonzero(self.file["blocks/done"][...] == 1)

    def write_round(self, finished):
        """Collective: write this rank's finished blocks, flush, then mark them done.

        Parameters
        ----------
        finished : list of (block, sums, n_samples, unitarity_max)
            Possibly empty (a rank with no block in this round still takes part).
        """
        blocks = self.file["blocks"]
        for block, sums, n, worst in finished:
            for name in self.fields:
                blocks[name][block] = sums[name]
            blocks["n_samples"][block] = n
            blocks["unitarity_max"][block] = worst
        self.file.flush()  # rows on disk before any flag says so
        for block, *_ in finished:
            blocks["done"][block] = 1
        count = self.comm.allreduce(sum(n for _, _, n, _ in finished))
        if self.comm.rank == 0:
            self.file["samples_done"][()] = self.file["samples_done"][()] + count
        self.file.flush()

    def finalize(self):
        """Collective: MPI Allreduce of the done blocks' sums into /totals."""
        from mpi4py import MPI
        done = self.done_blocks()
        mine = done[self.comm.rank::self.comm.size]
        blocks = self.file["blocks"]
        totals = {}
        for name, (shape, dtype) in self.fields.items():
            local = np.zeros(shape, dtype=dtype)
            for block in mine:
                local += blocks[name][block]
            total = np.empty_like(local)
            self.comm.Allreduce(local, total, op=MPI.SUM)
            totals[name] = total
        n_total = self.comm.allreduce(int(blocks["n_samples"][mine].sum()) if len(mine) else 0)
        if self.comm.rank == 0:
            for name, total in totals.items():
                self.file["totals"][name][...] = total
            self.file["totals/n_samples"][()] = n_total
            self.file["samples_done"][()] = n_total
        self.file.flush()
        if self.comm.rank == 0:
            self.file["totals/valid"][()] = 1
        self.file.flush()
        return totals, n_total

    def close(self):
        self.file.close()


def read_summary(path):
    """Serial read of a result file's state and headline numbers (for ``anderson-mpi info``)."""
    import h5py
    with h5py.File(path, "r") as f:
        run = json.loads(f.attrs["run"])
        done = f["blocks/done"][...] == 1
        n = f["blocks/n_samples"][...][done]
        samples = int(n.sum())
        summary = {
            "path": str(path), "schema_version": int(f.attrs["schema_version"]),
            "code_version": str(f.attrs["code_version"]), "created": str(f.attrs["created"]),
            "run": run, "n_blocks": int(f.attrs["n_blocks"]), "blocks_done": int(done.sum()),
            "samples": int(f.attrs["samples"]), "samples_done": samples,
            "complete": bool(done.all() and f["totals/valid"][()] == 1),
            "unitarity_max": float(f["blocks/unitarity_max"][...][done].max()) if samples else None,
        }
        if samples:
            g = f["blocks/g"][...][done].sum()
            g_sq = f["blocks/g_sq"][...][done].sum()
            summary["conductance_mean"] = g / samples
            summary["conductance_var"] = (g_sq / samples - (g / samples) ** 2) * samples / max(samples - 1, 1)
            summary["fano"] = float(f["blocks/fano_num"][...][done].sum() / g)
            # g1 slope: least squares of C1(x) = Tr G_aa / N_perp against x
            x = f["layout/x"][...]
            c1 = f["blocks/tr_g"][...][done].sum(axis=0) / samples / (run["Ny"] * run["Nz"])
            slope, intercept = np.polyfit(x, c1, 1)
            summary["g1_slope"] = float(slope)
            summary["g1_intercept"] = float(intercept)
        return summary
