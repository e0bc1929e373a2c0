"""The sweep with real MPI ranks: rank-count independence, kill and resume, failures, bad input."""
import subprocess
import sys
import time

import h5py
import numpy as np
import pytest

from conftest import ROOT, child_env, kill_tree, run_mpi

import anderson_mpi as am
from anderson_mpi.config import PlanError, make_plan
from anderson_mpi.parallel import deal_rounds
from anderson_mpi.sweep import potential

SMALL_JOB = """
name = "small"
geometry = "cube"
sizes = [4]
W = [6.0]
samples = 22
block_size = 3
seed = 7
cuts = [0.3, 0.9]
"""


def write_job(path, text=SMALL_JOB, **changes):
    lines = text.strip().splitlines()
    for key, value in changes.items():
        lines = [line for line in lines if not line.startswith(f"{key} ")]
        lines.append(f"{key} = {value}")
    path.write_text("\n".join(lines) + "\n")
    return path


def read_totals(path):
    with h5py.File(path, "r") as f:
        assert f["totals/valid"][()] == 1
        return {name: f["totals"][name][()] for name in f["totals"] if name != "valid"}


def assert_totals_equal(a, b, rtol=1e-12):
    assert a.keys() == b.keys()
    for name in a:
        scale = max(np.abs(a[name]).max(), 1e-300)
        assert np.abs(a[name] - b[name]).max() <= rtol * scale, name


def run_cli(args, np_=None, timeout=300):
    """``anderson-mpi ARGS`` serially, or under ``mpirun -n np_``."""
    if np_ is None:
        return subprocess.run([sys.executable, "-m", "anderson_mpi"] + [str(a) for a in args],
                              env=child_env(), cwd=ROOT, capture_output=True, text=True, timeout=timeout)
    return run_mpi(np_, ["-m", "anderson_mpi"] + list(args), timeout=timeout)


# --- pure pieces ----------------------------------------------------------------------------

def test_samples_are_fixed_by_seed_and_common_across_W():
    runs = make_plan({"geometry": "cube", "sizes": [5], "W": [2.0, 6.0], "seed": 3}, "t")
    v2, v6 = potential(runs[0], 11), potential(runs[1], 11)
    assert np.allclose(v6, 3 * v2)  # the same unit-width numbers scaled by W
    assert np.all(np.abs(v6) <= 3.0) and v6.std() > 1.0
    assert np.array_equal(potential(runs[1], 11), v6)
    assert not np.allclose(potential(runs[1], 12), v6)
    other_size = make_plan({"geometry": "cube", "sizes": [5], "W": [6.0], "seed": 4}, "t")[0]
    assert not np.allclose(potential(other_size, 11), v6)


def test_deal_rounds_covers_every_block_once():
    rounds = deal_rounds(list(range(11)), 4)
    flat = [b for r in rounds for b in r if b is not None]
    assert sorted(flat) == list(range(11)) and len(rounds) == 3 and rounds[-1].count(None) == 1


# --- (a) rank-count independence ------------------------------------------------------------

def test_totals_independent_of_rank_count(tmp_path):
    job = write_job(tmp_path / "small.toml")
    totals = {}
    for np_ in (1, 2, 4):
        out = tmp_path / f"np{np_}"
        proc = run_cli(["run", job, "--out", out], np_=np_)
        assert proc.returncode == 0, proc.stderr[-2000:]
        totals[np_] = read_totals(out / "cube_N4_W6.h5")
    assert totals[1]["n_samples"] == 22
    assert_totals_equal(totals[1], totals[2])
    assert_totals_equal(totals[1], totals[4])
    # the totals are the sums of the samples themselves (serial, no files, no MPI)
    run = make_plan({"geometry": "cube", "sizes": [4], "W": [6.0], "samples": 22, "block_size": 3,
                     "seed": 7, "cuts": [0.3, 0.9]}, "small")[0]
    from anderson_mpi.moments import make_layout, sample_observables
    layout = make_layout(4, 4, 4, run.hopping, run.cuts)
    direct = sum(sample_observables(am.mode_matrices(potential(run, s)), layout)["tr_gg"] for s in range(22))
    assert np.allclose(totals[2]["tr_gg"], direct, rtol=1e-12, atol=0)


@pytest.mark.parametrize("np_, group", [(2, 2), (4, 2), (2, 1)])
def test_petsc_solver_gives_the_same_totals(tmp_path, np_, group):
    """A whole run with the distributed MUMPS solver (groups of ranks per sample) against the
    transfer matrix: two independent methods, the same sums."""
    reference = tmp_path / "transfer"
    assert run_cli(["run", write_job(tmp_path / "t.toml"), "--out", reference], np_=1).returncode == 0
    job = write_job(tmp_path / "p.toml", solver='"petsc"', petsc_group_size=group)
    proc = run_cli(["run", job, "--out", tmp_path / "petsc"], np_=np_)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert f"{np_ // group} group(s)" in proc.stdout
    petsc, transfer = read_totals(tmp_path / "petsc" / "cube_N4_W6.h5"), read_totals(reference / "cube_N4_W6.h5")
    assert_totals_equal(petsc, transfer, rtol=1e-9)


def test_petsc_group_must_divide_the_ranks(tmp_path):
    job = write_job(tmp_path / "p.toml", solver='"petsc"', petsc_group_size=3)
    proc = run_cli(["run", job, "--out", tmp_path / "out"], np_=2)
    assert proc.returncode == 2 and "petsc_group_size" in proc.stderr and not (tmp_path / "out").exists()


# --- (b) kill and resume ----------------------------------------------------------------------

def test_sigkill_then_resume_gives_the_same_totals(tmp_path):
    job = write_job(tmp_path / "kill.toml", sizes="[7]", samples=120, block_size=2)
    out_kill, out_ref = tmp_path / "killed", tmp_path / "reference"
    cmd = ["mpirun", "-n", "2", sys.executable, "-m", "anderson_mpi", "run", str(job), "--out", str(out_kill)]
    proc = subprocess.Popen(cmd, env=child_env(), cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True, start_new_session=True)
    seen = []
    deadline = time.time() + 120
    try:
        for line in proc.stdout:
            seen.append(line)
            if "blocks 6/60" in line or time.time() > deadline:
                break
    finally:
        kill_tree(proc.pid)  # mpirun and every rank, mid-run
        proc.wait(timeout=30)
        time.sleep(0.5)
    assert any("blocks 6/60" in line for line in seen), "".join(seen)[-2000:]

    path = out_kill / "cube_N7_W6.h5"
    with h5py.File(path, "r") as f:  # readable after the kill
        done = f["blocks/done"][...]
        assert 3 <= done.sum() < 60
        assert np.all(f["blocks/n_samples"][...][done == 1] == 2)
        assert f["totals/valid"][()] == 0
        # samples_done follows the flags within one round (2 ranks x 2 samples)
        assert 2 * done.sum() - 4 <= f["samples_done"][()] <= 2 * done.sum()
    info = run_cli(["info", path, "--json"])
    assert info.returncode == 0 and '"complete": false' in info.stdout

    resumed = run_cli(["run", job, "--out", out_kill, "--resume"], np_=2)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert f"{int(done.sum())} done" in resumed.stdout
    reference = run_cli(["run", job, "--out", out_ref], np_=2)
    assert reference.returncode == 0, reference.stderr[-2000:]
    assert_totals_equal(read_totals(path), read_totals(out_ref / "cube_N7_W6.h5"))


def test_resume_of_a_complete_run_recomputes_nothing(tmp_path):
    job = write_job(tmp_path / "small.toml")
    assert run_cli(["run", job, "--out", tmp_path], np_=2).returncode == 0
    before = read_totals(tmp_path / "cube_N4_W6.h5")
    again = run_cli(["run", job, "--out", tmp_path, "--resume"], np_=2)
    assert again.returncode == 0 and "0 pending" in again.stdout and "computing blocks" not in again.stdout
    assert_totals_equal(before, read_totals(tmp_path / "cube_N4_W6.h5"), rtol=0)


# --- (c), (d) failures end the job ----------------------------------------------------------

def test_exception_on_one_rank_aborts_the_job(tmp_path):
    job = write_job(tmp_path / "small.toml")
    env = child_env(ANDERSON_MPI_FAULT="raise@1")
    start = time.time()
    proc = subprocess.run(["mpirun", "-n", "2", sys.executable, "-m", "anderson_mpi", "run", str(job),
                           "--out", str(tmp_path)], env=env, cwd=ROOT, capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode != 0
    assert time.time() - start < 60
    assert "error on rank 1" in proc.stderr and "injected fault" in proc.stderr


@pytest.mark.parametrize("fault, message", [
    ({"ANDERSON_MPI_FAULT": "nan@8"}, "sample 8 (block 2)"),
    ({}, "unitarity error"),
])
def test_bad_sample_stops_the_run_and_is_never_summed(tmp_path, fault, message):
    job = write_job(tmp_path / "small.toml", unitarity_tol="1e-8" if fault else "1e-30")
    proc = subprocess.run(["mpirun", "-n", "2", sys.executable, "-m", "anderson_mpi", "run", str(job),
                           "--out", str(tmp_path)], env=child_env(**fault), cwd=ROOT,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode != 0
    assert message in proc.stderr and "cube_N4_W6" in proc.stderr
    with h5py.File(tmp_path / "cube_N4_W6.h5", "r") as f:
        done = f["blocks/done"][...]
        assert f["totals/valid"][()] == 0
        if fault:
            assert done[2] == 0  # the block holding sample 8 never counts
        else:
            assert done.sum() == 0


# --- (e) bad input ---------------------------------------------------------------------------

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
    ({"hopping": "[1.0, 0.6, 0.6]"}, [], "evanescent"),
    ({"e_plus": "1.9"}, [], "e_plus"),
    ({"hopping": "[0.0, 0.4, 0.4]"}, [], "hopping"),
    ({"geometry": '"sphere"'}, [], "geometry"),
    ({"geometry": '"quasi1d"'}, [], "transverse"),
    ({"solver": '"magic"'}, [], "solver"),
    ({}, ["--W", "-3"], "W"),
    ({}, ["--samples", "abc"], "--samples"),
    ({}, ["--N", "0"], "sizes"),
]


@pytest.mark.parametrize("changes, extra, field", BAD_JOBS)
def test_bad_input_exits_2_with_one_line(tmp_path, changes, extra, field):
    job = write_job(tmp_path / "bad.toml", **changes)
    out = tmp_path / "out"
    proc = run_cli(["run", job, "--out", out] + extra)
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and field in lines[0], proc.stderr
    assert not out.exists()


def test_bad_files_and_existing_outputs(tmp_path):
    missing = run_cli(["run", tmp_path / "nope.toml"])
    assert missing.returncode == 2 and "nope.toml" in missing.stderr
    broken = tmp_path / "broken.toml"
    broken.write_text("W = [6.0\n")
    assert run_cli(["run", broken]).returncode == 2

    job = write_job(tmp_path / "small.toml", samples=3)
    assert run_cli(["run", job, "--out", tmp_path / "o"]).returncode == 0
    path = tmp_path / "o" / "cube_N4_W6.h5"
    stamp = (path.stat().st_mtime_ns, path.read_bytes())
    again = run_cli(["run", job, "--out", tmp_path / "o"])  # neither --resume nor --overwrite
    assert again.returncode == 2 and "output" in again.stderr and "--resume" in again.stderr
    changed = write_job(tmp_path / "changed.toml", samples=3, seed=8)
    resumed = run_cli(["run", changed, "--out", tmp_path / "o", "--resume"])
    assert resumed.returncode == 2 and "seed" in resumed.stderr
    assert (path.stat().st_mtime_ns, path.read_bytes()) == stamp  # nothing overwritten
    both = run_cli(["run", job, "--out", tmp_path / "o", "--resume", "--overwrite"])
    assert both.returncode == 2 and len(both.stderr.strip().splitlines()) == 1
    assert run_cli(["run", job, "--out", tmp_path / "o", "--overwrite"]).returncode == 0


def test_bad_input_under_mpirun_stops_every_rank_with_status_2(tmp_path):
    job = write_job(tmp_path / "bad.toml", block_size="0")
    proc = run_cli(["run", job, "--out", tmp_path / "out"], np_=2)
    assert proc.returncode == 2
    assert proc.stderr.count("anderson-mpi: error: block_size") == 1  # rank 0 speaks, once
    assert not (tmp_path / "out").exists()


def test_plan_validation_errors_are_plan_errors():
    with pytest.raises(PlanError, match="W"):
        make_plan({"geometry": "cube", "sizes": [4]}, "t")
    with pytest.raises(PlanError, match="duplicate"):
        make_plan({"geometry": "cube", "sizes": [4, 4], "W": [1.0]}, "t")


def test_info_and_plan_commands(tmp_path):
    job = write_job(tmp_path / "small.toml", W="[2.0, 6.0]", samples=6)
    plan = run_cli(["plan", job, "--field", "W"])
    assert plan.returncode == 0 and plan.stdout.split() == ["2.0", "6.0"]
    assert run_cli(["run", job, "--out", tmp_path], np_=2).returncode == 0
    info = run_cli(["info", tmp_path / "cube_N4_W2.h5", "--json"])
    import json
    summary = json.loads(info.stdout)
    assert summary["samples_done"] == 6 and summary["complete"] and summary["blocks_done"] == 2
    # the mean conductance is the mean of the samples' conductances
    run = make_plan({"geometry": "cube", "sizes": [4], "W": [2.0], "samples": 6, "seed": 7}, "t")[0]
    g = [am.scattering_states(potential(run, s), 0.2, "R").conductance for s in range(6)]
    assert summary["conductance_mean"] == pytest.approx(np.mean(g), rel=1e-12)
    assert run_cli(["info", tmp_path / "missing.h5"]).returncode == 2
