"""``python -m analysis`` on synthetic result files: the fit window from the job file's
``[analysis]`` table and the command line, bad input, the m3 split in summary.json and the
table, comparison.md.

The files hold the planted ensemble of `test_estimators` (fast; no simulation). The job text
stored in a file is read through ``RunData.job_toml`` (exposed by ``analysis.io``).
"""
import json

import numpy as np

from synthetic import Planted, block_sums, write_synthetic_file

from analysis.__main__ import main

JOB = 'name = "synthetic"\ngeometry = "cube"\nsizes = [4, 5, 6]\nW = [6.0]\n'


def make_dir(rng, path, job_text, sizes=(4, 5, 6), m3_split=True):
    path.mkdir()
    for nx in sizes:
        planted = Planted(rng, Nx=nx, Ny=2, Nz=2, cuts=[0.3, 0.6])
        blocks = [10] * 8
        sums = block_sums(planted.samples(rng, sum(blocks)), blocks)
        write_synthetic_file(path / f"cube_N{nx}_W6.h5", planted, sums, blocks, m3_split=m3_split,
                             job_toml=job_text)
    return path


def run_main(args, capsys):
    try:
        code = main([str(a) for a in args])
    except SystemExit as stop:  # argparse errors
        code = stop.code
    out = capsys.readouterr()
    return code, out.out, out.err


def test_the_job_files_analysis_table_sets_the_window_and_the_command_line_overrides(rng, tmp_path,
                                                                                      capsys):
    res = make_dir(rng, tmp_path / "res", JOB + "[analysis]\ndrop_slices = 1\n")
    code, out, err = run_main([res, "--no-figures"], capsys)
    assert code == 0, err
    summary = json.loads((res / "summary.json").read_text())
    w = summary["window"]
    assert (w["drop_slices"], w["drop_diagonal"]) == (1, 0) and "[analysis]" in w["source"]
    assert "K = 1, D = 0" in out
    for r in summary["runs"]:
        assert r["window"] == {"drop_slices": 1, "drop_diagonal": 0}
        k1 = [g for g in r["window_grid"] if (g["drop_slices"], g["drop_diagonal"]) == (1, 0)][0]
        assert r["dn1"] == k1["dn1"] and r["dn2"] == k1["dn2"]
        assert r["dn1_n_points"] == r["Nx"] - 2
    code, out, err = run_main([res, "--no-figures", "--drop-slices", "0", "--drop-diagonal", "2"],
                              capsys)
    assert code == 0, err
    summary = json.loads((res / "summary.json").read_text())
    assert (summary["window"]["drop_slices"], summary["window"]["drop_diagonal"]) == (0, 2)
    assert "command line" in summary["window"]["source"]
    r = summary["runs"][-1]
    d2 = [g for g in r["window_grid"] if (g["drop_slices"], g["drop_diagonal"]) == (0, 2)][0]
    assert r["dn2"] == d2["dn2"] and r["dn2_n_points"] == (6 - 2) * (6 - 3) / 2


def test_bad_or_conflicting_windows_stop_with_status_2(rng, tmp_path, capsys):
    bad = make_dir(rng, tmp_path / "bad", JOB + "[analysis]\ndrop_diagonal = -1\n", sizes=(4,))
    code, out, err = run_main([bad], capsys)
    assert code == 2 and "drop_diagonal" in err and len(err.strip().splitlines()) == 1
    assert "Traceback" not in err and not (bad / "summary.json").exists()

    mixed = make_dir(rng, tmp_path / "mixed", JOB + "[analysis]\ndrop_slices = 1\n", sizes=(4,))
    planted = Planted(rng, Nx=5, Ny=2, Nz=2, cuts=[0.3, 0.6])
    sums = block_sums(planted.samples(rng, 40), [10] * 4)
    write_synthetic_file(mixed / "cube_N5_W6.h5", planted, sums, [10] * 4,
                         job_toml=JOB + "[analysis]\ndrop_slices = 2\n")
    code, out, err = run_main([mixed, "--no-figures"], capsys)
    assert code == 2 and "disagree on drop_slices" in err and len(err.strip().splitlines()) == 1
    code, out, err = run_main([mixed, "--no-figures", "--drop-slices", "1"], capsys)
    assert code == 0, err  # the command line settles it

    for args in (["--drop-slices", "-1"], ["--drop-diagonal", "x"]):
        code, out, err = run_main([mixed] + args, capsys)
        assert code == 2 and len(err.strip().splitlines()) == 1 and "Traceback" not in err


def test_m3_split_in_the_summary_the_table_and_the_exponents(rng, tmp_path, capsys):
    res = make_dir(rng, tmp_path / "res", JOB)
    code, out, err = run_main([res, "--no-figures"], capsys)
    assert code == 0, err
    summary = json.loads((res / "summary.json").read_text())
    assert summary["window"]["source"].count("(default)") == 2
    for r in summary["runs"]:
        for key in ("m3_distinct", "m3_coinciding", "c3_sum_aac", "c3_sum_aaa"):
            assert r[key] is not None and r[f"{key}_err"] > 0, key
        assert np.isclose(r["m3_distinct"] + r["m3_coinciding"], r["m3"])
        assert np.isclose(r["m3_coinciding"], 3 * r["c3_sum_aac"] - 2 * r["c3_sum_aaa"])
    expo = summary["fits"]["m_exponents"][0]
    assert {"m3_distinct_exponent", "m3_distinct_exponent_err", "m3_coinciding_exponent",
            "m3_coinciding_sign"} <= set(expo)
    assert "m3 split by coinciding slice indices" in out and "m3_coinciding ~" in out
    assert "no single-line dn^(3)" not in out  # the cut at 0.3 is within 0.1 of z = 0.23
    text = (res / "comparison.md").read_text()
    assert "| m3, distinct slices |" in text and "| m3, coinciding slices |" in text

    plain = make_dir(rng, tmp_path / "plain", JOB, m3_split=False)
    code, out, err = run_main([plain, "--no-figures"], capsys)
    assert code == 0, err
    summary = json.loads((plain / "summary.json").read_text())
    assert all("m3_distinct" not in r for r in summary["runs"])
    assert "m3_distinct_exponent" not in summary["fits"]["m_exponents"][0]
    assert "m3 split" not in out


def test_comparison_without_cube_runs(tmp_path):
    from analysis.comparison import comparison_markdown
    text = comparison_markdown({"fits": {"dn_vs_size": []}, "runs": []})
    assert "No cube runs" in text


def test_every_figure_and_its_data_on_a_w_sweep_and_quasi1d_runs(rng, tmp_path, capsys):
    """All 16 figures of orders 1-3 (cube at two W, quasi-1d runs) render and write their CSV
    (the order-four figures need cut pairs: tests/test_order4_analysis.py makes them; the
    interval figure interval sums: tests/test_intervals.py; the models' overlay simulated QSSEP
    runs: tests/test_chains.py)."""
    import h5py
    from analysis.figures import FIGURES
    res = tmp_path / "sweep"
    res.mkdir()
    for geometry, W in (("cube", 6.0), ("cube", 7.0), ("quasi1d", 4.0)):
        for nx in (4, 5, 6):
            planted = Planted(rng, Nx=nx, Ny=2, Nz=2, cuts=[0.3, 0.6])
            sums = block_sums(planted.samples(rng, 40), [10] * 4)
            path = write_synthetic_file(res / f"{geometry}_N{nx}_W{W:g}.h5", planted, sums, [10] * 4,
                                        W=W, m3_split=True)
            with h5py.File(path, "r+") as f:
                run = json.loads(f.attrs["run"])
                run["geometry"] = geometry
                f.attrs["run"] = json.dumps(run)
    code, out, err = run_main([res], capsys)
    assert code == 0, err
    for name in FIGURES:
        if name.startswith("fig_g4") or name in ("fig_intervals", "fig_models_overlay"):
            assert not (res / "figures" / f"{name}.png").exists()  # skipped: not in these runs
            continue
        assert (res / "figures" / f"{name}.png").is_file(), name
        lines = (res / "figures" / f"{name}.csv").read_text().splitlines()
        assert len(lines) > 2 and "value" in lines[0].split(","), name
