"""Faults that must never lose a job or hang it, with real mpirun, real files, real signals.

Bad input (exit 2, one line naming the field, nothing written), an output that cannot be
created, a job file that is not UTF-8, too little disk space (refused before any work) and a
disk that fills up mid-job, SIGTERM to mpirun or to one rank, and result files of another
schema version. The small file systems are real tmpfs mounts (root only; CI runs as root).
"""
import os
import signal
import subprocess
import sys
import time

import h5py
import numpy as np
import pytest

from helpers import (ROOT, assert_totals_identical, child_env, kill_tree, one_line, rank_pids,
                     read_totals, run_cli, start_run, wait_for_blocks, write_job)


# --- bad input -------------------------------------------------------------------------------

BAD_JOBS = [  # (changes to the job file, extra CLI args, field named in the message)
    ({"colour": '"red"'}, [], "colour"),
    ({"W": '"six"'}, [], "W"),
    ({"W": "[-1.0]"}, [], "W"),
    ({"sizes": "[0]"}, [], "sizes"),
    ({"sizes": "[4.5]"}, [], "sizes"),
    ({"samples": '"22"'}, [], "samples"),
    ({"samples": "0"}, [], "samples"),
    ({"samples": "true"}, [], "samples"),
    ({"block_size": "0"}, [], "block_size"),
    ({"cuts": "[0.2, 1.5]"}, [], "cuts"),
    ({"cuts": "[-0.1]"}, [], "cuts"),
    # evanescent channels are fine; refused: a channel at a band edge (cube N = 4:
    # E+ + eps_(0,0) = 0.2 + 4 * 0.45 = 2 tx) and an energy outside every channel's band
    ({"hopping": "[1.0, 0.45, 0.45]"}, [], "e_plus/hopping: band edge"),
    ({"e_minus": "-2.0"}, [], "e_minus/hopping: band edge"),
    ({"e_plus": "5.0"}, [], "e_plus/hopping: no open channel"),
    ({"hopping": "[0.0, 0.4, 0.4]"}, [], "hopping"),
    ({"geometry": '"sphere"'}, [], "geometry"),
    ({"geometry": '"quasi1d"'}, [], "transverse"),
    ({"solver": '"magic"'}, [], "solver"),
    ({"m3_split": '"yes"'}, [], "m3_split"),
    ({"intervals": "[0.0, 0.5]"}, [], "intervals"),
    ({"intervals": "[0.5, 1.2]"}, [], "intervals"),
    ({"intervals": "[0.5, 0.5]"}, [], "intervals"),
    ({"intervals": "[0.5]", "interval_probes": "0"}, [], "interval_probes"),
    ({"intervals": "[0.5]", "interval_pair_fraction": "0"}, [], "interval_pair_fraction"),
    ({"intervals": "[0.5]", "interval_exact_moments": "1"}, [], "interval_exact_moments"),
    ({"analysis": '{drop_slices = -1}'}, [], "analysis.drop_slices"),
    ({"analysis": '{window = 2}'}, [], "analysis.window"),
    ({}, ["--W", "-3"], "W"),
    ({}, ["--samples", "abc"], "--samples"),
    ({}, ["--N", "0"], "sizes"),
]


CHAIN_JOB = """
name = "chain"
model = "qssep"
geometry = "chain"
sizes = [6]
samples = 8
block_size = 4
cuts = [0.5]
"""

BAD_CHAIN_JOBS = [  # the stochastic models' keys (docs/theory.md §12)
    ({"model": '"dephasing"', "gamma": "[-1.0]"}, "gamma"),
    ({"dt": "0.0"}, "dt"),
    ({"dt": "-0.1"}, "dt"),
    ({"n_left": "-0.2"}, "n_left"),
    ({"n_right": "1.5"}, "n_right"),
    ({"gamma": "[1.0]"}, "gamma: not a key of model 'qssep'"),
    ({"model": '"dephasing"', "D": "2.0"}, "D: not a key of model 'dephasing'"),
    ({"W": "[6.0]"}, "W: not a key of model 'qssep'"),
    ({"e_plus": "0.3"}, "e_plus: not a key of model 'qssep'"),
    ({"geometry": '"cube"'}, "geometry"),
    ({"model": '"brownian"'}, "model"),
    ({"boundary_rate": '"fast"'}, "boundary_rate"),
    ({"relax_time": "-1.0"}, "relax_time"),
    ({"sizes": "[1]"}, "sizes"),
]


@pytest.mark.parametrize("changes, field", BAD_CHAIN_JOBS)
def test_bad_keys_of_the_stochastic_models_exit_2_with_one_line(tmp_path, changes, field):
    job = write_job(tmp_path / "bad.toml", text=CHAIN_JOB, **changes)
    out = tmp_path / "out"
    proc = run_cli(["run", job, "--out", out])
    assert proc.returncode == 2, proc.stderr
    assert field in one_line(proc)
    assert not out.exists()


@pytest.mark.parametrize("changes, extra, field", BAD_JOBS)
def test_bad_input_exits_2_with_one_line(tmp_path, changes, extra, field):
    job = write_job(tmp_path / "bad.toml", **changes)
    out = tmp_path / "out"
    proc = run_cli(["run", job, "--out", out] + extra)
    assert proc.returncode == 2, proc.stderr
    assert field in one_line(proc)
    assert not out.exists()


def test_an_analysis_table_is_accepted(tmp_path):
    job = write_job(tmp_path / "ok.toml", samples=3)
    job.write_text(job.read_text() + "[analysis]\ndrop_slices = 1\ndrop_diagonal = 2\n")
    assert run_cli(["plan", job]).returncode == 0


def test_bad_files_and_existing_outputs(tmp_path):
    missing = run_cli(["run", tmp_path / "nope.toml"])
    assert missing.returncode == 2 and "nope.toml" in one_line(missing)
    broken = tmp_path / "broken.toml"
    broken.write_text("W = [6.0\n")
    assert run_cli(["run", broken]).returncode == 2

    job = write_job(tmp_path / "small.toml", samples=3)
    assert run_cli(["run", job, "--out", tmp_path / "o"]).returncode == 0
    path = tmp_path / "o" / "cube_N4_W6.h5"
    stamp = (path.stat().st_mtime_ns, path.read_bytes())
    again = run_cli(["run", job, "--out", tmp_path / "o"])  # neither --resume nor --overwrite
    assert again.returncode == 2 and "output" in again.stderr and "--resume" in one_line(again)
    changed = write_job(tmp_path / "changed.toml", samples=3, seed=8)
    resumed = run_cli(["run", changed, "--out", tmp_path / "o", "--resume"])
    assert resumed.returncode == 2 and "seed" in one_line(resumed)
    assert (path.stat().st_mtime_ns, path.read_bytes()) == stamp  # nothing overwritten
    both = run_cli(["run", job, "--out", tmp_path / "o", "--resume", "--overwrite"])
    assert both.returncode == 2 and one_line(both)
    assert run_cli(["run", job, "--out", tmp_path / "o", "--overwrite"]).returncode == 0
    assert not list((tmp_path / "o").glob("*.partial"))  # built under a temporary name, renamed


def test_bad_input_under_mpirun_stops_every_rank_with_status_2(tmp_path):
    job = write_job(tmp_path / "bad.toml", block_size="0")
    proc = run_cli(["run", job, "--out", tmp_path / "out"], np_=2)
    assert proc.returncode == 2
    assert proc.stderr.count("anderson-mpi: error: block_size") == 1  # rank 0 speaks, once
    assert not (tmp_path / "out").exists()


def test_job_file_that_is_not_utf8(tmp_path):
    job = tmp_path / "latin1.toml"
    job.write_bytes(write_job(tmp_path / "x.toml").read_bytes() + "# Müller\n".encode("latin-1"))
    for np_ in (None, 2):
        proc = run_cli(["run", job, "--out", tmp_path / "out"], np_=np_)
        assert proc.returncode == 2 and "not UTF-8" in one_line(proc) and "latin1.toml" in proc.stderr
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("np_", [None, 2])
def test_output_directory_that_cannot_be_created(tmp_path, np_):
    """One rank cannot mkdir while another waits in a collective: that hung forever once."""
    job = write_job(tmp_path / "small.toml")
    start = time.time()
    proc = run_cli(["run", job, "--out", "/proc/anderson-x"], np_=np_, timeout=120)
    assert proc.returncode == 2, proc.stderr
    assert "/proc/anderson-x" in one_line(proc) and "output" in proc.stderr
    assert time.time() - start < 60


# --- disk space: real small file systems ------------------------------------------------------

@pytest.fixture
def small_disk(tmp_path):
    """Mount a tmpfs of the given size (MiB) under tmp_path; unmounted afterwards."""
    mounts = []

    def mount(mib):
        where = tmp_path / f"disk{len(mounts)}"
        where.mkdir()
        proc = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={mib}m", "tmpfs", str(where)],
                              capture_output=True, text=True)
        if proc.returncode != 0:
            pytest.skip(f"cannot mount a tmpfs here (root needed): {proc.stderr.strip()}")
        mounts.append(where)
        return where

    yield mount
    for where in mounts:
        subprocess.run(["umount", "-l", str(where)], capture_output=True)


def test_too_little_disk_space_is_refused_before_any_work(tmp_path, small_disk):
    disk = small_disk(1)
    job = write_job(tmp_path / "big.toml", sizes="[6, 8]", samples=400, block_size=4)
    for np_ in (None, 2):
        proc = run_cli(["run", job, "--out", disk / "out"], np_=np_)
        assert proc.returncode == 2, proc.stderr
        line = one_line(proc)
        assert "free" in line and "need" in line and "MiB" in line and str(disk) in line
        assert not (disk / "out").exists()  # nothing created, not even the directory


def test_disk_that_fills_mid_job_loses_no_done_block(tmp_path, small_disk):
    """The disk fills while the job runs: a line naming the file and the cause (one per rank
    whose write failed, no traceback), the done blocks intact, and --resume after freeing the
    space gives totals identical to an uninterrupted run's."""
    disk = small_disk(4)
    out = disk / "out"
    # sample 5 sleeps: time to fill the disk while the first run computes
    job = write_job(tmp_path / "two.toml", sizes="[4, 5]", samples=12, block_size=2)
    proc = start_run(job, out, ANDERSON_MPI_FAULT="sleep@5")
    first = out / "cube_N4_W6.h5"
    try:
        assert wait_for_blocks(first, 1, proc), proc.stderr.read()
        with open(disk / "junk", "wb") as junk:  # fill the file system to the last byte
            try:
                while True:
                    junk.write(b"\0" * 65536)
                    junk.flush()
            except OSError:
                pass
        _, stderr = proc.communicate(timeout=120)
    finally:
        kill_tree(proc.pid)
    assert proc.returncode != 0
    errors = [line for line in stderr.splitlines() if line.startswith("anderson-mpi: error")]
    assert 1 <= len(errors) <= 2 and "Traceback" not in stderr, stderr
    for line in errors:
        assert ".h5" in line and str(out) in line and "no space left" in line, line
    written = [p for p in (out / "cube_N4_W6.h5", out / "cube_N5_W6.h5") if p.exists()]
    for path in written:  # readable; what is flagged done is complete
        with h5py.File(path, "r") as f:
            done = f["blocks/done"][...] == 1
            assert np.all(f["blocks/n_samples"][...][done] == 2)
            assert np.all(f["blocks/seconds"][...][done] > 0)

    os.remove(disk / "junk")
    resumed = run_cli(["run", job, "--out", out, "--resume"], np_=2)
    assert resumed.returncode == 0, resumed.stderr
    reference = tmp_path / "reference"
    assert run_cli(["run", job, "--out", reference], np_=2).returncode == 0
    for name in ("cube_N4_W6.h5", "cube_N5_W6.h5"):
        assert_totals_identical(read_totals(out / name), read_totals(reference / name))


# --- SIGTERM: what scancel and a time limit send ------------------------------------------------

@pytest.mark.parametrize("target", ["mpirun", "rank 1"])
def test_sigterm_ends_the_job_and_resume_is_exact(tmp_path, target):
    """Sample 20 (block 10, rank 0's in round 5) hangs: rank 1 then waits inside an MPI
    collective for good, where a Python signal handler alone would never run."""
    job = write_job(tmp_path / "term.toml", sizes="[7]", samples=60, block_size=2)
    out = tmp_path / "out"
    path = out / "cube_N7_W6.h5"
    proc = start_run(job, out, ANDERSON_MPI_FAULT="hang@20")
    try:
        assert wait_for_blocks(path, 10, proc), proc.stderr.read()
        time.sleep(0.5)
        pid = proc.pid if target == "mpirun" else rank_pids(proc.pid)[1]
        sent = time.time()
        os.kill(pid, signal.SIGTERM)
        _, stderr = proc.communicate(timeout=60)
        stopped_after = time.time() - sent
    finally:
        kill_tree(proc.pid)
    assert proc.returncode != 0
    assert stopped_after < 15, stopped_after
    if target != "mpirun":  # mpirun itself stops its ranks silently
        assert "rank 1 received SIGTERM" in stderr and "--resume" in stderr, stderr[-2000:]
    with h5py.File(path, "r") as f:  # readable, the done blocks complete
        done = f["blocks/done"][...]
        assert 10 <= done.sum() < 30 and f["totals/valid"][()] == 0
        assert np.all(f["blocks/n_samples"][...][done == 1] == 2)

    resumed = run_cli(["run", job, "--out", out, "--resume"], np_=2)
    assert resumed.returncode == 0, resumed.stderr
    reference = tmp_path / "reference"
    assert run_cli(["run", job, "--out", reference], np_=2).returncode == 0
    assert_totals_identical(read_totals(path), read_totals(reference / "cube_N7_W6.h5"))


# --- files of another schema version ------------------------------------------------------------

def test_files_of_another_schema_version_are_refused(tmp_path):
    job = write_job(tmp_path / "small.toml", samples=6)
    out = tmp_path / "out"
    assert run_cli(["run", job, "--out", out]).returncode == 0
    path = out / "cube_N4_W6.h5"
    with h5py.File(path, "r+") as f:  # what a file of the previous release says
        f.attrs["schema_version"] = 1
    before = path.read_bytes()
    info = run_cli(["info", path])
    assert info.returncode == 2 and "schema version 1" in one_line(info)
    for np_ in (None, 2):
        resumed = run_cli(["run", job, "--out", out, "--resume"], np_=np_)
        assert resumed.returncode == 2 and "schema version 1" in one_line(resumed)
    assert path.read_bytes() == before
    analysis = subprocess.run([sys.executable, "-m", "analysis", str(out), "--no-figures"],
                              env=child_env(), cwd=ROOT, capture_output=True, text=True)
    assert analysis.returncode == 2 and "schema version 1" in analysis.stderr
    assert str(path) in analysis.stderr
