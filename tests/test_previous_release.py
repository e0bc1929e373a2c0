"""The physics is unchanged: block rows of the shipped jobs against the previous release's.

`tests/data/previous_release_rows.npz` holds every ``/blocks/<field>`` row of block 0 of the first
run of every job file that release shipped (the job texts are in the .json: a shipped job may
change later, e.g. order4_W6 gained sizes, cuts and intervals), computed by release 8fb7813 (schema 2;
`tests/data/make_previous_release_rows.py`, run in a checkout of that release). This code must
give the same rows, bit for bit, for every field both releases have, when the BLAS kernels are
the ones that wrote the rows (same numpy, OpenBLAS version and core type, one thread; recorded in
the .json). On another machine or library version, rounding of the BLAS kernels may differ, so
the rows must agree to 1e-12 of each field's largest entry instead.
"""
import json
from pathlib import Path

import numpy as np
import pytest

from anderson_mpi.run.config import make_plan, tomllib
from anderson_mpi.run.executor import compute_block, make_context

DATA = Path(__file__).resolve().parent / "data"
META = json.loads((DATA / "previous_release_rows.json").read_text())


def same_kernels_as_recorded():
    """numpy's and scipy's OpenBLAS (versions, core type) as when the rows were written, 1 thread."""
    import numpy
    from threadpoolctl import threadpool_info
    blas = [i for i in threadpool_info() if i["user_api"] == "blas"]
    loaded = sorted([i["prefix"], i.get("version"), i.get("architecture")] for i in blas)
    return (numpy.__version__ == META["numpy"] and loaded == META["blas"]
            and all(i["num_threads"] == 1 for i in blas))


@pytest.fixture(scope="module")
def previous_rows():
    with np.load(DATA / "previous_release_rows.npz") as rows:
        return {key: rows[key] for key in rows.files}


@pytest.mark.parametrize("job", sorted(META["jobs"]))
def test_first_block_rows_equal_the_previous_release(job, previous_rows):
    run = make_plan(tomllib.loads(META["jobs"][job]["toml"]), job)[0]
    assert run.label == META["jobs"][job]["run"]
    result = compute_block(make_context(run), 0)
    assert result.n_samples == META["jobs"][job]["samples"]
    previous = {key.split("/", 1)[1]: value for key, value in previous_rows.items()
                if key.startswith(job + "/")}
    common = sorted(set(previous) & set(result.sums))
    assert common, "no field in common with the previous release"
    # every field of the previous release that this release still has is compared; fields that
    # were replaced (order four) are listed in the README's changelog
    exact = same_kernels_as_recorded()
    for name in common:
        new, old = np.asarray(result.sums[name]), previous[name]
        assert new.shape == old.shape and new.dtype == old.dtype, name
        if exact:
            assert np.array_equal(new, old), f"{job}: /blocks/{name} differs from the previous release"
        else:
            scale = max(np.abs(old).max(initial=0.0), 1e-300)
            assert np.abs(new - old).max(initial=0.0) <= 1e-12 * scale, name
