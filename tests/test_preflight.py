"""What a cluster user meets before a job computes: the memory preflight and the output locks.

Real processes throughout (the CLI, ``$MPIEXEC`` ranks); everything is read from exit codes, the
one line the suite prints, the lock files and the result files.
"""
import json
import os
import socket
import time

import h5py
import numpy as np
import pytest
from helpers import (assert_totals_identical, kill_tree, one_line, read_totals, run_cli, start_run,
                     wait_for_blocks, write_job)

from anderson_mpi.io.lock import STALE_AFTER, lock_path
from anderson_mpi.run.memory import format_size, node_limits, parse_size

# --- memory ---------------------------------------------------------------------------------


@pytest.mark.parametrize("np_", [None, 2])
def test_a_run_too_large_for_the_machine_is_refused_before_any_allocation(tmp_path, np_):
    """``sizes = [100000]`` as a new user would try: one line with the needed and available
    sizes, exit 2, nothing created (it used to die in numpy's allocator after 24 lines)."""
    job = write_job(tmp_path / "huge.toml", sizes="[100000]")
    out = tmp_path / "out"
    proc = run_cli(["run", job, "--out", out], np_=np_, timeout=120)  # a hang would time out
    assert proc.returncode == 2, proc.stderr
    line = one_line(proc)
    assert "memory: run cube_N100000_W6 needs about" in line and "per rank, a rank has" in line
    assert "available on this node" in line and "--memory-per-rank" in line
    assert not out.exists()


def test_the_stated_memory_of_a_rank_replaces_the_detected_one(tmp_path):
    job = write_job(tmp_path / "small.toml", sizes="[5]", samples=4, block_size=2)
    refused = run_cli(["run", job, "--out", tmp_path / "a", "--memory-per-rank", "1M"])
    assert refused.returncode == 2
    assert "a rank has 1.0 MiB (stated by memory_per_rank / --memory-per-rank)" in one_line(refused)
    job_key = write_job(tmp_path / "key.toml", sizes="[5]", samples=4, block_size=2, memory_per_rank='"2M"')
    assert "a rank has 2.0 MiB (stated" in one_line(run_cli(["run", job_key, "--out", tmp_path / "b"]))
    # a user who knows better: a generous statement lets the job run
    ok = run_cli(["run", job_key, "--out", tmp_path / "c", "--memory-per-rank", "4G"], np_=2)
    assert ok.returncode == 0, ok.stderr
    assert read_totals(tmp_path / "c" / "cube_N5_W6.h5")["n_samples"] == 4


def test_a_slurm_memory_limit_is_obeyed(tmp_path):
    job = write_job(tmp_path / "small.toml", sizes="[6]", samples=4, block_size=2)
    proc = run_cli(["run", job, "--out", tmp_path / "out"], np_=2, SLURM_MEM_PER_CPU="50",
                   SLURM_CPUS_PER_TASK="1")
    assert proc.returncode == 2
    assert "a rank has 50.0 MiB (SLURM_MEM_PER_CPU x 1 CPU(s) = 50.0 MiB)" in one_line(proc)


def test_node_limits_and_sizes():
    limits = dict((why.split()[0], per) for per, why in node_limits(
        4, {"SLURM_MEM_PER_NODE": "8000", "SLURM_MEM_PER_CPU": "1000", "SLURM_CPUS_PER_TASK": "2"}))
    assert limits["SLURM_MEM_PER_NODE"] == 8000 * 2**20 // 4
    assert limits["SLURM_MEM_PER_CPU"] == 2000 * 2**20
    assert parse_size("16G") == 16 * 2**30 and parse_size("512 MiB") == 512 * 2**20
    assert parse_size(1.5) == int(1.5 * 2**30) and parse_size("2k") == 2048
    for bad in ("-1G", "lots", True, 0):
        with pytest.raises(ValueError, match="memory_per_rank"):
            parse_size(bad)
    assert format_size(3 * 2**30) == "3.0 GiB"


def test_plan_prints_cost_and_memory_per_rank(tmp_path):
    job = write_job(tmp_path / "p.toml", sizes="[4, 8, 16]", cuts4="[[0.25, 0.75]]")
    runs = [json.loads(line) for line in run_cli(["plan", job, "--json"]).stdout.splitlines()]
    assert [r["run"] for r in runs] == ["cube_N4_W6", "cube_N8_W6", "cube_N16_W6"]
    for r in runs:
        assert r["seconds_per_sample"] > 0 and r["memory_per_rank"] > 100 * 2**20
        assert set(r["cost_per_sample"]) == {"gemm", "batched", "lu", "calls"}
    # the work grows like N^7 (Nx N_perp^3); at N = 4 the fixed cost per call dominates the time
    assert runs[1]["cost_per_sample"]["gemm"] > 64 * runs[0]["cost_per_sample"]["gemm"]
    assert runs[2]["seconds_per_sample"] > 20 * runs[1]["seconds_per_sample"]
    assert runs[1]["memory_per_rank"] > runs[0]["memory_per_rank"]
    text = run_cli(["plan", job, "--ranks", "8"]).stdout
    assert "memory/rank" in text and "cube_N8_W6" in text and "whole job about" in text


# --- two jobs on one output ---------------------------------------------------------------------

SLOW = dict(sizes="[5]", samples=24, block_size=2)


def slow_run(tmp_path, name="out", **env):
    job = write_job(tmp_path / "slow.toml", **SLOW)
    out = tmp_path / name
    faults = ",".join(f"sleep@{s}" for s in (3, 9, 15))  # the job takes ~6 s more than it would
    return job, out, start_run(job, out, extra=["--resume"], ANDERSON_MPI_FAULT=faults, **env)


def test_a_second_job_on_the_same_output_is_refused_and_the_first_finishes(tmp_path):
    job, out, first = slow_run(tmp_path)
    path = out / "cube_N5_W6.h5"
    try:
        assert wait_for_blocks(path, 1, first), first.stderr.read()
        owner = json.loads(open(lock_path(path)).read())
        second = run_cli(["run", job, "--out", out, "--resume"], np_=2, timeout=120)
        assert second.returncode == 2
        line = one_line(second)
        assert str(path) in line and "in use by another job" in line
        assert f"host {socket.gethostname()}" in line and f"pid {owner['pid']}" in line
        assert first.poll() is None  # refused at once: the first job still runs, untouched
        _, stderr = first.communicate(timeout=180)
    finally:
        kill_tree(first.pid)
    assert first.returncode == 0, stderr
    assert not os.path.exists(lock_path(path))  # released at the end
    with h5py.File(path, "r") as f:
        assert np.all(f["blocks/attempt"][...] == 1) and f["attempts"][()] == 1  # nothing computed twice
    reference = tmp_path / "reference"
    assert run_cli(["run", job, "--out", reference], np_=2).returncode == 0
    assert_totals_identical(read_totals(path), read_totals(reference / "cube_N5_W6.h5"))


def test_a_lock_left_by_a_killed_job_does_not_block_resume(tmp_path):
    job, out, first = slow_run(tmp_path)
    path = out / "cube_N5_W6.h5"
    try:
        assert wait_for_blocks(path, 2, first), first.stderr.read()
    finally:
        kill_tree(first.pid)  # SIGKILL, as a lost node: no chance to release the lock
    first.wait(timeout=30)
    assert os.path.exists(lock_path(path))
    resumed = run_cli(["run", job, "--out", out, "--resume"], np_=2)
    assert resumed.returncode == 0, resumed.stderr  # its owner is gone: the lock is stale
    reference = tmp_path / "reference"
    assert run_cli(["run", job, "--out", reference], np_=2).returncode == 0
    assert_totals_identical(read_totals(path), read_totals(reference / "cube_N5_W6.h5"))


def planted_lock(path, host, slurm=None, age=0.0):
    lock = lock_path(path)
    os.makedirs(os.path.dirname(lock), exist_ok=True)
    with open(lock, "w") as fh:
        json.dump({"host": host, "pid": 1, "pid_start": 1, "slurm": slurm, "started": time.time() - age}, fh)
    os.utime(lock, (time.time() - age, time.time() - age))
    return lock


def test_locks_of_other_hosts_and_requeued_slurm_jobs(tmp_path):
    job = write_job(tmp_path / "small.toml", sizes="[4]", samples=6, block_size=3)
    out = tmp_path / "out"
    path = out / "cube_N4_W6.h5"
    # a job on another node, alive (fresh heartbeat): refused, named
    planted_lock(path, "node17", slurm={"slurm_job_id": "4242"})
    refused = run_cli(["run", job, "--out", out])
    assert refused.returncode == 2
    line = one_line(refused)
    assert "host node17, pid 1, Slurm job 4242" in line and "--break-lock" in line
    # the user knows that node is gone
    assert run_cli(["run", job, "--out", out, "--break-lock"]).returncode == 0
    assert not os.path.exists(lock_path(path))
    # a heartbeat older than STALE_AFTER: its owner is gone
    planted_lock(path, "node17", age=STALE_AFTER + 60)
    assert run_cli(["run", job, "--out", out, "--resume"]).returncode == 0
    # another run inside the same incarnation of the same Slurm job (two steps of one
    # allocation), alive on another node: refused
    planted_lock(path, "node17", slurm={"slurm_job_id": "777", "slurm_restart_count": "0"})
    same = run_cli(["run", job, "--out", out, "--resume"], SLURM_JOB_ID="777", SLURM_RESTART_COUNT="0")
    assert same.returncode == 2 and "in use by another job" in one_line(same)
    # an earlier incarnation of this very Slurm job (a requeue keeps the job id, counts restarts)
    assert run_cli(["run", job, "--out", out, "--resume"], SLURM_JOB_ID="777",
                   SLURM_RESTART_COUNT="1").returncode == 0
    assert run_cli(["run", job, "--out", out, "--resume"], SLURM_JOB_ID="778").returncode == 0  # no lock left
