"""The sweep with real MPI ranks: rank-count independence, kill and resume, failures.

Everything is read from the result files and the structured progress records, never from
log lines. Bad input and the faults of the file system and of signals: tests/test_faults.py.
"""
import sys
import time

import h5py
import numpy as np
import pytest

from helpers import (assert_totals_equal, assert_totals_identical, kill_tree,
                     read_progress, read_totals, run_cli, start_run, wait_for_blocks,
                     write_job)

import anderson_mpi as am
from anderson_mpi.run.config import make_plan
from anderson_mpi.run import scheduler
from anderson_mpi.run.executor import potential

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


def test_the_pool_holds_every_pending_block_once_largest_first():
    runs = make_plan({"geometry": "cube", "sizes": [4, 8, 6], "W": [2.0, 6.0], "samples": 10,
                      "block_size": 3}, "t")
    pending = {i: [b for b in range(r.n_blocks) if b != 1] for i, r in enumerate(runs)}
    items = scheduler.work_items(runs, pending)
    assert sorted((it.run_index, it.block) for it in items) == sorted(
        (i, b) for i, blocks in pending.items() for b in blocks)
    costs = [it.cost for it in items]
    assert costs == sorted(costs, reverse=True)
    assert runs[items[0].run_index].Nx == 8 and runs[items[-1].run_index].Nx == 4
    # the short last block (10 = 3 + 3 + 3 + 1 samples) of the smallest run comes last
    assert items[-1].block == 3 and items[-1].cost == pytest.approx(scheduler.block_cost(runs[0], 3))


def test_simulated_dealing():
    # list scheduling of 3, 3, 2, 2, 2 on 2 workers: {3, 2, 2} and {3, 2} -> makespan 7
    makespan, util = scheduler.simulate([3, 3, 2, 2, 2], 2)
    assert makespan == 7 and util == pytest.approx(12 / 14)
    assert scheduler.simulate([5], 4) == (5, pytest.approx(0.25))
    # 40 equal blocks on 64 ranks, one run: 40/64 busy, dealt or in rounds alike
    runs = make_plan({"geometry": "cube", "sizes": [10], "W": [6.0], "samples": 1000,
                      "block_size": 25}, "t")
    assert scheduler.utilization_of_plan(runs, 64) == pytest.approx(40 / 64)
    assert scheduler.utilization_of_plan(runs, 64, lockstep=True) == pytest.approx(40 / 64)
    # several sizes: rounds per run waste what the pool fills
    runs = make_plan({"geometry": "cube", "sizes": [6, 8, 10], "W": [6.0], "samples": 30,
                      "block_size": 4}, "t")
    pool, rounds = (scheduler.utilization_of_plan(runs, 3, lockstep=flag) for flag in (False, True))
    assert pool > rounds and pool > 0.9
    assert scheduler.suggest_block_size(runs, 8)[0] == 4  # already above 90%: keep it
    one = make_plan({"geometry": "cube", "sizes": [10], "W": [6.0], "samples": 1000, "block_size": 25}, "t")
    size, util = scheduler.suggest_block_size(one, 64)
    assert util >= 0.9 and 1 <= size < 25
    assert scheduler.utilization_of_plan(make_plan({"geometry": "cube", "sizes": [10], "W": [6.0],
                                                    "samples": 1000, "block_size": size}, "t"), 64) == util


# --- (a) rank-count independence ------------------------------------------------------------

def test_totals_independent_of_rank_count(tmp_path):
    """Runs of two sizes in one pool, a short last block, fourth-order cut pairs (whose crossing
    terms pair consecutive samples of a block) and interval sums (random probes from each
    sample's own stream, words pairing samples of a block): the same totals, bit for bit."""
    job = write_job(tmp_path / "small.toml", sizes="[4, 5]", cuts4="[[0.25, 0.75], [0.5, 0.1]]",
                    intervals="[0.5, 0.75, 1.0]")
    totals = {}
    for np_ in (1, 2, 3, 4):
        out = tmp_path / f"np{np_}"
        proc = run_cli(["run", job, "--out", out], np_=np_)
        assert proc.returncode == 0, proc.stderr[-2000:]
        totals[np_] = {N: read_totals(out / f"cube_N{N}_W6.h5") for N in (4, 5)}
    assert totals[1][4]["n_samples"] == 22
    for np_ in (2, 3, 4):
        for N in (4, 5):
            assert_totals_identical(totals[1][N], totals[np_][N])
    totals = {np_: t[4] for np_, t in totals.items()}
    # the totals are the sums of the samples themselves (serial, no files, no MPI)
    run = make_plan({"geometry": "cube", "sizes": [4], "W": [6.0], "samples": 22, "block_size": 3,
                     "seed": 7, "cuts": [0.3, 0.9]}, "small")[0]
    from anderson_mpi.observables import make_layout, sample_observables
    layout = make_layout(4, 4, 4, run.hopping, run.cuts)
    for N in (4, 5):  # per-block records: every rank worked, on both runs of the pool
        with h5py.File(tmp_path / "np3" / f"cube_N{N}_W6.h5", "r") as f:
            assert np.all(f["blocks/attempt"][...] == 1) and f["attempts"][()] == 1
            assert np.all(f["blocks/seconds"][...] > 0)
            ranks = set(f["blocks/rank"][...])
        assert ranks <= {0, 1, 2}
    both = [set(h5py.File(tmp_path / "np3" / f"cube_N{N}_W6.h5", "r")["blocks/rank"][...]) for N in (4, 5)]
    assert both[0] | both[1] == {0, 1, 2}
    direct = sum(sample_observables(am.mode_matrices(potential(run, s)), layout)["tr_gg"] for s in range(22))
    assert np.allclose(totals[2]["tr_gg"], direct, rtol=1e-12, atol=0)
    # the interval sums: each block from its own samples in order, probes from observables_seed
    from anderson_mpi.observables import BlockState
    from anderson_mpi.run.executor import observables_seed
    run = make_plan({"geometry": "cube", "sizes": [4], "W": [6.0], "samples": 22, "block_size": 3,
                     "seed": 7, "cuts": [0.3, 0.9], "intervals": [0.5, 0.75, 1.0]}, "small")[0]
    layout = make_layout(4, 4, 4, run.hopping, run.cuts, intervals=run.intervals)
    direct = 0.0
    for block in range(run.n_blocks):
        state = BlockState()
        for s in run.block_samples(block):
            obs = sample_observables(am.mode_matrices(potential(run, s)), layout, state,
                                     np.random.default_rng(observables_seed(run, s)))
            direct = direct + obs["iv_rggg"]
    assert np.allclose(totals[3]["iv_rggg"], direct, rtol=1e-10, atol=0)


CHAIN_JOBS = {
    "qssep": """
name = "qssep"
model = "qssep"
geometry = "chain"
sizes = [6, 9]
samples = 14
block_size = 4
seed = 5
cuts = [0.5]
cuts4 = [[0.25, 0.75]]
intervals = [0.5, 1.0]
""",
    "dephasing": """
name = "dephasing"
model = "dephasing"
geometry = "chain"
sizes = [6]
gamma = [0.5, 4.0]
samples = 10
block_size = 3
seed = 6
cuts = [0.3]
""",
}


@pytest.mark.parametrize("model", sorted(CHAIN_JOBS))
def test_stochastic_models_independent_of_rank_count_and_interruption(tmp_path, model):
    """Simulated QSSEP and the dephasing model through the same pipeline: the same totals, bit
    for bit, on 1 and 3 ranks and after a SIGKILL and --resume; no transport fields, no
    /layout/n_open (no leads); the totals are the sums of the trajectories' own observables."""
    job = write_job(tmp_path / f"{model}.toml", text=CHAIN_JOBS[model])
    totals = {}
    for np_ in (1, 3):
        out = tmp_path / f"np{np_}"
        proc = run_cli(["run", job, "--out", out], np_=np_)
        assert proc.returncode == 0, proc.stderr[-2000:]
        totals[np_] = {p.name: read_totals(p) for p in sorted(out.glob("*.h5"))}
    assert len(totals[1]) == 2 and totals[1].keys() == totals[3].keys()
    for name in totals[1]:
        assert_totals_identical(totals[1][name], totals[3][name])
        assert "g" not in totals[1][name] and "tr_gg" in totals[1][name]
        with h5py.File(tmp_path / "np1" / name, "r") as f:
            assert f.attrs["model"] == model and "n_open" not in f["layout"]
    # killed part-way (SIGKILL: no cleanup), then resumed: identical totals
    out = tmp_path / "killed"
    proc = start_run(job, out, ANDERSON_MPI_FAULT="sleep@5")
    first = sorted(totals[1])[0]
    try:
        wait_for_blocks(out / first, 1, proc)
    finally:
        kill_tree(proc.pid)
    proc.wait(timeout=30)
    resumed = run_cli(["run", job, "--out", out, "--resume"], np_=2)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    for name in totals[1]:
        assert_totals_identical(read_totals(out / name), totals[1][name])
    # the totals are the sums of the samples' observables (serial, no files, no MPI)
    from anderson_mpi.observables import BlockState, sample_observables
    from anderson_mpi.run.executor import make_context, observables_seed, sample_input
    run = make_plan(tomllib_loads(CHAIN_JOBS[model]), model)[0]
    ctx = make_context(run)
    direct = 0.0
    for block in range(run.n_blocks):
        samples = run.block_samples(block)
        state = BlockState()
        for s, modes in zip(samples, ctx.engine.solve_block([sample_input(run, s) for s in samples])):
            rng = np.random.default_rng(observables_seed(run, s)) if ctx.random else None
            direct = direct + sample_observables(modes, ctx.layout, state, rng)["tr_gg"]
    assert np.allclose(totals[1][f"{run.label}.h5"]["tr_gg"], direct, rtol=1e-12, atol=1e-15)


def tomllib_loads(text):
    try:
        import tomllib
    except ModuleNotFoundError:  # Python 3.9/3.10
        import tomli as tomllib
    return tomllib.loads(text)


ISOTROPIC_JOB = """
name = "iso"
geometry = "cube"
sizes = [3, 4]
W = [6.0]
samples = 8
block_size = 2
seed = 12
hopping = [1.0, 1.0, 1.0]
cuts = [0.5]
"""


def test_isotropic_sweep_with_evanescent_channels(tmp_path):
    """t = (1, 1, 1): n_open < N_perp at E+- (N = 3: 8 and 4 of 9, they differ; N = 4: 10 of
    16). The file records n_open, the totals do not depend on the rank count, and they are the
    sums of the samples' observables."""
    job = write_job(tmp_path / "iso.toml", text=ISOTROPIC_JOB)
    totals = {}
    for np_ in (1, 3):
        out = tmp_path / f"np{np_}"
        proc = run_cli(["run", job, "--out", out], np_=np_)
        assert proc.returncode == 0, proc.stderr[-2000:]
        totals[np_] = {N: read_totals(out / f"cube_N{N}_W6.h5") for N in (3, 4)}
    runs = make_plan({"geometry": "cube", "sizes": [3, 4], "W": [6.0], "samples": 8, "block_size": 2,
                      "seed": 12, "hopping": [1.0, 1.0, 1.0], "cuts": [0.5]}, "iso")
    from anderson_mpi.observables import layout_for, sample_observables
    for run in runs:
        N = run.Nx
        setup = am.ScatteringSetup.build(run.shape, run.hopping, run.e_plus, run.e_minus)
        n_open = [setup.lead_plus.n_open, setup.lead_minus.n_open]
        assert n_open == {3: [8, 4], 4: [10, 10]}[N]
        path = tmp_path / "np3" / f"cube_N{N}_W6.h5"
        with h5py.File(path, "r") as f:
            assert f["layout/n_open"][...].tolist() == n_open
        info = run_cli(["info", path])
        line = f"open at E+: {n_open[0]}, at E-: {n_open[1]} of N_perp = {N * N}"
        assert info.returncode == 0 and line in info.stdout
        assert read_progress(path, "start")[0]["n_open"] == n_open
        assert_totals_identical(totals[1][N], totals[3][N])
        layout = layout_for(setup, run.cuts)
        direct = [sample_observables(am.mode_matrices(potential(run, s), run.hopping), layout)
                  for s in range(run.samples)]
        for name in ("tr_gg", "cut_tr_ggg", "g"):
            expected = sum(d[name] for d in direct)
            assert np.allclose(totals[3][N][name], expected, rtol=1e-12, atol=0), name


@pytest.mark.parametrize("np_, group", [(2, 2), (4, 2), (2, 1)])
def test_petsc_solver_gives_the_same_totals(tmp_path, np_, group):
    """A whole run with the distributed MUMPS solver (groups of ranks per sample) against the
    transfer matrix: two independent methods, the same sums."""
    reference = tmp_path / "transfer"
    assert run_cli(["run", write_job(tmp_path / "t.toml"), "--out", reference], np_=1).returncode == 0
    job = write_job(tmp_path / "p.toml", solver='"petsc"', petsc_group_size=group)
    proc = run_cli(["run", job, "--out", tmp_path / "petsc"], np_=np_)
    assert proc.returncode == 0, proc.stderr[-2000:]
    start, = read_progress(tmp_path / "petsc" / "cube_N4_W6.h5", "start")
    assert start["groups"] == np_ // group and start["solver"] == "petsc"
    # one BLAS thread per rank, also in the system BLAS that PETSc/MUMPS loaded (make install
    # switches Debian's libblas.so.3 to OpenBLAS; the reference BLAS would be several times slower)
    assert start["blas"] and all(lib["threads"] == 1 for lib in start["blas"]), start["blas"]
    assert any(lib["api"] == "openblas" and not lib["library"].startswith(sys.prefix)
               for lib in start["blas"]), start["blas"]
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
    path = out_kill / "cube_N7_W6.h5"
    proc = start_run(job, out_kill)
    try:
        reached = wait_for_blocks(path, 6, proc)
    finally:
        kill_tree(proc.pid)  # mpirun and every rank, mid-run
        proc.wait(timeout=30)
        time.sleep(0.5)
    assert reached, proc.stderr.read()[-2000:]

    with h5py.File(path, "r") as f:  # readable after the kill
        done = f["blocks/done"][...]
        assert 6 <= done.sum() < 60
        assert np.all(f["blocks/n_samples"][...][done == 1] == 2)
        assert np.all(f["blocks/attempt"][...][done == 1] == 1)
        assert f["totals/valid"][()] == 0
    info = run_cli(["info", path, "--json"])
    assert info.returncode == 0 and '"complete": false' in info.stdout

    resumed = run_cli(["run", job, "--out", out_kill, "--resume"], np_=2)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    starts = read_progress(path, "start")
    assert [s["attempt"] for s in starts] == [1, 2] and starts[1]["done"] == int(done.sum())
    blocks = read_progress(path, "block")
    again = [r["block"] for r in blocks if r["attempt"] == 2]
    assert not set(again) & set(np.flatnonzero(done)), "a finished block was computed again"
    with h5py.File(path, "r") as f:
        assert f["attempts"][()] == 2 and set(f["blocks/attempt"][...]) == {1, 2}
    reference = run_cli(["run", job, "--out", out_ref], np_=2)
    assert reference.returncode == 0, reference.stderr[-2000:]
    assert_totals_identical(read_totals(path), read_totals(out_ref / "cube_N7_W6.h5"))


def test_resume_of_a_complete_run_recomputes_nothing(tmp_path):
    job = write_job(tmp_path / "small.toml")
    assert run_cli(["run", job, "--out", tmp_path], np_=2).returncode == 0
    path = tmp_path / "cube_N4_W6.h5"
    before = read_totals(path)
    again = run_cli(["run", job, "--out", tmp_path, "--resume"], np_=2)
    assert again.returncode == 0
    second = read_progress(path, "start")[-1]
    assert second["attempt"] == 2 and second["pending"] == 0 and second["done"] == 8
    assert all(r["attempt"] == 1 for r in read_progress(path, "block"))
    assert_totals_identical(before, read_totals(path))


def test_random_interruptions_then_resume_are_exact(tmp_path):
    """SIGKILL or SIGTERM at random points of a pool of three runs, resumed each time."""
    job = write_job(tmp_path / "pool.toml", sizes="[4, 6, 7]", samples=34, block_size=3,
                    cuts4="[[0.3, 0.7]]")
    out, reference = tmp_path / "interrupted", tmp_path / "reference"
    paths = [out / f"cube_N{N}_W6.h5" for N in (4, 6, 7)]
    rng = np.random.default_rng(2026)
    for attempt in range(3):
        proc = start_run(job, out) if attempt == 0 else start_run(job, out, extra=["--resume"])
        target = int(rng.integers(1, 12))
        try:
            deadline = time.time() + 120
            while time.time() < deadline and proc.poll() is None:
                try:
                    if sum(len(read_progress(p, "block")) for p in paths if p.exists()) >= target * (attempt + 1):
                        break
                except FileNotFoundError:
                    pass
                time.sleep(0.02)
        finally:
            kill_tree(proc.pid, 9 if rng.random() < 0.5 else 15)
            proc.wait(timeout=60)
        time.sleep(0.3)
    resumed = run_cli(["run", job, "--out", out, "--resume"], np_=3)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert run_cli(["run", job, "--out", reference], np_=2).returncode == 0
    for path in paths:
        assert_totals_identical(read_totals(path), read_totals(reference / path.name))
        blocks = read_progress(path, "block")
        written = [(r["block"]) for r in blocks]
        assert len(written) == len(set(written)), "a block was written twice"


# --- (c), (d) failures end the job ----------------------------------------------------------

def test_exception_on_one_rank_aborts_the_job(tmp_path):
    job = write_job(tmp_path / "small.toml")
    start = time.time()
    proc = run_cli(["run", job, "--out", tmp_path], np_=2, timeout=120, ANDERSON_MPI_FAULT="raise@1")
    assert proc.returncode != 0
    assert time.time() - start < 60
    assert "error on rank 1" in proc.stderr and "injected fault" in proc.stderr


@pytest.mark.parametrize("fault, message", [
    ({"ANDERSON_MPI_FAULT": "nan@8"}, "sample 8 (block 2)"),
    ({}, "unitarity error"),
])
def test_bad_sample_stops_the_run_and_is_never_summed(tmp_path, fault, message):
    job = write_job(tmp_path / "small.toml", unitarity_tol="1e-8" if fault else "1e-30")
    proc = run_cli(["run", job, "--out", tmp_path], np_=2, timeout=120, **fault)
    assert proc.returncode != 0
    assert message in proc.stderr and "cube_N4_W6" in proc.stderr
    with h5py.File(tmp_path / "cube_N4_W6.h5", "r") as f:
        done = f["blocks/done"][...]
        assert f["totals/valid"][()] == 0
        if fault:
            assert done[2] == 0  # the block holding sample 8 never counts
        else:
            assert done.sum() == 0


def test_sample_command_writes_the_sweeps_potential(tmp_path):
    """`anderson-mpi sample` gives the very sample the sweep summed: its observables equal the
    row of its block (blocks of one sample)."""
    job = write_job(tmp_path / "one.toml", samples=3, block_size=1, W="[2.0, 6.0]")
    assert run_cli(["run", job, "--out", tmp_path / "out", "--W", 6.0]).returncode == 0
    path = tmp_path / "V2.npy"
    proc = run_cli(["sample", job, "--W", 6.0, "--index", 2, "--out", path])
    assert proc.returncode == 0, proc.stderr
    V = np.load(path)
    run = make_plan({"geometry": "cube", "sizes": [4], "W": [6.0], "samples": 3, "block_size": 1,
                     "seed": 7, "cuts": [0.3, 0.9]}, "t")[0]
    assert np.array_equal(V, potential(run, 2))
    from anderson_mpi.observables import make_layout, sample_observables
    obs = sample_observables(am.mode_matrices(V), make_layout(4, 4, 4, run.hopping, run.cuts))
    with h5py.File(tmp_path / "out" / "cube_N4_W6.h5", "r") as f:
        assert np.array_equal(f["blocks/tr_gg"][2], obs["tr_gg"])
    again = run_cli(["sample", job, "--W", 6.0, "--index", 2, "--out", path])
    assert again.returncode == 2 and "exists" in again.stderr  # nothing overwritten
    both = run_cli(["sample", job, "--index", 0, "--out", tmp_path / "x.npy"])
    assert both.returncode == 2 and "--W" in both.stderr and not (tmp_path / "x.npy").exists()
    far = run_cli(["sample", job, "--W", 6.0, "--index", 3, "--out", tmp_path / "y.npy"])
    assert far.returncode == 2 and "--index" in far.stderr


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
