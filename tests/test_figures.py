"""``python -m analysis`` on a small real run: figures, summary.json, the table, bad input.

The run is made here (serially, in a subprocess) from a tiny job: cube, N = 4, 5, 6, W = 6,
24 samples in blocks of 4.
"""
import json
import shutil
import subprocess
import sys

import h5py
import numpy as np
import pytest

from helpers import ROOT, child_env

from analysis.estimators import run_estimates
from analysis.io import open_run

JOB = """
name = "tiny"
geometry = "cube"
sizes = [4, 5, 6]
W = [6.0]
samples = 24
block_size = 4
seed = 11
cuts = [0.23, 0.5]
"""

CUBE_FIGURES = ["fig2_u1_maps", "fig3a_g1", "fig3b_g2", "fig3c_g2_collapse", "fig3d_g3_surface",
                "fig3e_g3_cut", "fig3f_g3_cut", "fig4_m_scaling", "conductance"]
ABSENT = ["fig5_quasi1d", "fig6_quasi1d_g2", "fig7_quasi1d_g3", "fig8_W_g1", "fig9_W_g2",
          "fig10_W_g3", "fig_dn_vs_W"]
RUN_KEYS = ["geometry", "N", "Nx", "Ny", "Nz", "W", "samples", "window", "dn1", "dn1_err",
            "intercept", "intercept_err", "m2", "m2_err", "m3", "m3_err", "conductance",
            "conductance_err", "fano", "fano_err", "dn2", "dn2_err", "dn3", "dn3_err",
            "dn1_wls", "dn1_wls_err", "dn2_wls", "dn2_wls_err", "dn3_wls", "dn3_wls_err",
            "dn1_rel_residual", "dn2_rel_residual", "dn3_rel_residual",
            "dn1_chi2_corr", "dn1_chi2_corr_dof", "dn1_chi2_corr_note", "dn2_chi2_corr_note",
            "dn3_chi2_corr_note", "dn3_line", "dn3_line_err", "window_grid",
            "dn1_window_range", "dn2_window_range", "dn3_window_range"]


def run_py(args, timeout=300):
    return subprocess.run([sys.executable] + [str(a) for a in args], env=child_env(), cwd=ROOT,
                          capture_output=True, text=True, timeout=timeout)


@pytest.fixture(scope="module")
def results(tmp_path_factory):
    base = tmp_path_factory.mktemp("analysis_real")
    job = base / "tiny.toml"
    job.write_text(JOB)
    out = base / "res"
    proc = run_py(["-m", "anderson_mpi", "run", job, "--out", out])
    assert proc.returncode == 0, proc.stderr
    assert sorted(p.name for p in out.glob("*.h5")) == ["cube_N4_W6.h5", "cube_N5_W6.h5", "cube_N6_W6.h5"]
    return out


def test_figures_summary_and_table_from_a_real_run(results, tmp_path):
    work = tmp_path / "res"
    shutil.copytree(results, work)
    proc = run_py(["-m", "analysis", work])
    assert proc.returncode == 0, proc.stderr
    assert "Traceback" not in proc.stderr
    figdir = work / "figures"
    for name in CUBE_FIGURES:
        for ext in ("png", "pdf"):
            path = figdir / f"{name}.{ext}"
            assert path.is_file() and path.stat().st_size > 1000, path
    with open(figdir / "fig3a_g1.png", "rb") as fh:
        assert fh.read(8) == b"\x89PNG\r\n\x1a\n"
    for name in ABSENT:  # the results hold no quasi-1d runs and one W: skipped with a note
        assert not (figdir / f"{name}.png").exists()
        assert f"figure {name} skipped" in proc.stdout

    summary = json.loads((work / "summary.json").read_text())
    runs = summary["runs"]
    assert [r["N"] for r in runs] == [4, 5, 6]
    for r in runs:
        assert set(RUN_KEYS) <= set(r), set(RUN_KEYS) - set(r)
        assert not any(k.endswith("chi2_dof") for k in r)  # no chi2 of "independent" points
        assert r["window"] == {"drop_slices": 0, "drop_diagonal": 0}
        assert [(g["drop_slices"], g["drop_diagonal"]) for g in r["window_grid"]] == \
            [(k, d) for k in (0, 1, 2) for d in (0, 1, 2)]
        head = [g for g in r["window_grid"] if g["drop_slices"] == g["drop_diagonal"] == 0][0]
        assert (head["dn1"], head["dn2"], head["dn3"]) == (r["dn1"], r["dn2"], r["dn3"])
        # 6 blocks: never 3 blocks per window point, so no correlated chi2, and it says why
        assert r["dn2_chi2_corr"] is None and "blocks" in r["dn2_chi2_corr_note"]
        assert r["geometry"] == "cube" and r["W"] == 6.0 and r["samples"] == 24
        assert r["Nx"] == r["Ny"] == r["Nz"] == r["N"]
        for key in ("dn1", "m2", "conductance", "fano", "dn2", "dn3"):
            assert r[key] is not None and r[f"{key}_err"] > 0, key
        # physics, not numbers copied from output: a current flows left to right ...
        assert r["dn1"] > 0 and r["m2"] > 0 and r["conductance"] > 0 and 0 < r["fano"] < 1
    ext = summary["fits"]["dn2_extrapolated"]
    assert len(ext) == 1 and ext[0]["sizes"] == [4, 5, 6] and ext[0]["n_params"] == 3
    assert {"dn2", "dn2_err", "beta", "beta_err", "gamma", "gamma_err", "rel_residual",
            "dn2_wls", "window_grid", "dn2_window_range"} <= set(ext[0])
    series = summary["fits"]["dn_vs_size"]
    assert len(series) == 1 and series[0]["dn1_n_params"] == 2  # 3 sizes: a + b/N
    assert {"dn1_inf", "dn1_inf_err", "dn2_inf", "dn3_inf", "dn3_line_inf"} <= set(series[0])
    trans = summary["fits"]["transport"]
    assert len(trans) == 1 and trans[0]["sigma"] > 0 and trans[0]["mean_free_path_err"] > 0
    expo = summary["fits"]["m_exponents"]
    assert len(expo) == 1 and {"m2_exponent", "m2_exponent_err", "m3_exponent",
                               "m3_exponent_err", "m3_sign"} <= set(expo[0])
    # the table: a header and one line per run
    lines = proc.stdout.splitlines()
    header = [i for i, line in enumerate(lines) if line.startswith("run ")]
    assert header and all(lines[header[0] + k].startswith("cube") for k in (1, 2, 3))
    assert "extrapolated" in proc.stdout and str(work / "summary.json") in proc.stdout
    assert "Window sensitivity" in proc.stdout and "mean free path" in proc.stdout


def read_csv(path):
    import csv
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


def test_figure_data_and_comparison_hold_the_headline_numbers(results, tmp_path):
    """Every figure has its CSV; the dashed overlays in them are the headline fits of
    summary.json, and comparison.md quotes the headline numbers."""
    work = tmp_path / "res"
    shutil.copytree(results, work)
    proc = run_py(["-m", "analysis", work])
    assert proc.returncode == 0, proc.stderr
    summary = json.loads((work / "summary.json").read_text())
    big = summary["runs"][-1]
    figdir = work / "figures"
    for name in CUBE_FIGURES:
        rows = read_csv(figdir / f"{name}.csv")
        assert rows and {"kind", "value"} <= set(rows[0]), name
    # fig3a: the dashed line is intercept + dn1 x of the largest N
    fit = [r for r in read_csv(figdir / "fig3a_g1.csv") if r["kind"] == "fit"]
    xs = np.array([float(r["x"]) for r in fit])
    ys = np.array([float(r["value"]) for r in fit])
    slope, icpt = np.polyfit(xs, ys, 1)
    assert np.isclose(slope, big["dn1"], rtol=1e-8) and np.isclose(icpt, big["intercept"], rtol=1e-8)
    data = [r for r in read_csv(figdir / "fig3a_g1.csv") if r["kind"] == "data"]
    assert {int(r["N"]) for r in data} == {4, 5, 6} and all(r["in_window"] == "1" for r in data)
    # fig3b: dashed curves are dn2^2 (min(x,y) - xy) with the headline dn2 of the largest N;
    # a = b points are drawn open (outside the window)
    rows = read_csv(figdir / "fig3b_g2.csv")
    curve = [r for r in rows if r["kind"] == "qssep"]
    x, y = (np.array([float(r[k]) for r in curve]) for k in ("x", "y"))
    v = np.array([float(r["value"]) for r in curve])
    shape = np.minimum(x, y) - x * y
    assert np.allclose(v, big["dn2"] ** 2 * shape, atol=1e-9)
    pts = [r for r in rows if r["kind"] == "data"]
    diag = [r for r in pts if np.isclose(float(r["x"]), float(r["y"]))]
    assert diag and all(r["in_window"] == "0" for r in diag)
    assert all(r["in_window"] == "1" for r in pts if r not in diag)
    assert any(r["kind"] == "residual" for r in rows)
    # fig3c: the collapse uses the extrapolated dn2
    ext = summary["fits"]["dn2_extrapolated"][0]
    curve = [r for r in read_csv(figdir / "fig3c_g2_collapse.csv") if r["kind"] == "qssep"]
    x, y, v = (np.array([float(r[k]) for r in curve]) for k in ("x", "y", "value"))
    assert np.allclose(v, ext["dn2"] ** 2 * (np.minimum(x, y) - x * y), atol=1e-9)
    # conductance: the dashed line is the reported sigma N + offset
    trans = summary["fits"]["transport"][0]
    fit = [r for r in read_csv(figdir / "conductance.csv") if r["kind"] == "fit"]
    xs, ys = (np.array([float(r[k]) for r in fit]) for k in ("x", "value"))
    assert np.allclose(ys, trans["sigma"] * xs + trans["offset"])

    text = (work / "comparison.md").read_text()
    table = [line for line in text.splitlines() if line.startswith("|")]
    assert len(table) >= 8 and "1.71" in text and "1.43" in text and "-0.77" in text
    header = [c.strip() for c in table[0].strip("|").split("|")]
    assert header[3] == "ours, N = 6"

    def cell(label, column):
        row = [line for line in table if line.startswith(f"| {label}")][0]
        return [c.strip() for c in row.strip("|").split("|")][column]

    def value_and_error(text):
        v, e = (float(t) for t in text.split("±"))
        return v, e

    v, e = value_and_error(cell("dn^(1) |", 3))
    assert abs(v - big["dn1"]) <= 0.5 * 10 ** -len(str(e).split(".")[1]) + 1e-12
    assert np.isclose(e, big["dn1_err"], rtol=0.05)
    assert "OLS" in cell("dn^(1) |", 5) and "N = 4, 5, 6" in cell("dn^(1) |", 5)
    v, _ = value_and_error(cell("dn^(2) extrapolated", 4))
    assert np.isclose(v, ext["dn2"], atol=0.01)
    v, _ = value_and_error(cell("dn^(3), the paper's line", 3))
    assert np.isclose(v, big["dn3_line"], atol=0.01)


def test_exact_identities_on_real_data(results):
    """Per-sample identities that any correct estimator keeps: symmetries and a cross-check."""
    from anderson_mpi.io.store import read_summary
    for path in sorted(results.glob("*.h5")):
        with open_run(path) as data:
            est = run_estimates(data)
        v = est.value
        assert np.allclose(v["C2"], v["C2"].T, atol=1e-12)
        assert np.allclose(v["C3"], v["C3"].transpose(0, 2, 1), atol=1e-12)
        assert np.allclose(v["C3_imag"], -v["C3_imag"].transpose(0, 2, 1), atol=1e-12)
        assert np.allclose(v["map1"], v["map1"].conj().T, atol=1e-12)  # E G_ba = (E G_ab)^+
        info = read_summary(path)  # the simulation package's own reading of the file
        assert np.isclose(v["conductance"], info["conductance_mean"], rtol=1e-12)  # linear: no bias
        assert np.isclose(v["conductance_var"], info["conductance_var"], rtol=0.2)


def test_missing_empty_and_incomplete_results(results, tmp_path):
    proc = run_py(["-m", "analysis", tmp_path / "nowhere"])
    assert proc.returncode == 2 and "nowhere" in proc.stderr and "does not exist" in proc.stderr
    assert "Traceback" not in proc.stderr
    empty = tmp_path / "empty"
    empty.mkdir()
    proc = run_py(["-m", "analysis", empty])
    assert proc.returncode == 2 and "no result files" in proc.stderr and "Traceback" not in proc.stderr

    part = tmp_path / "partial"
    shutil.copytree(results, part)
    with h5py.File(part / "cube_N5_W6.h5", "r+") as f:  # an interrupted run: one block missing
        f["blocks/done"][2] = 0
        f["totals/valid"][()] = 0
    proc = run_py(["-m", "analysis", part])
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert "cube_N5_W6.h5" in proc.stderr and "5/6 blocks" in proc.stderr
    assert "cube_N4_W6.h5" not in proc.stderr
    assert not (part / "summary.json").exists()

    proc = run_py(["-m", "analysis", part, "--allow-incomplete", "--no-figures"])
    assert proc.returncode == 0, proc.stderr
    summary = json.loads((part / "summary.json").read_text())
    by_n = {r["N"]: r for r in summary["runs"]}
    assert by_n[5]["samples"] == 20 and not by_n[5]["complete"] and by_n[4]["samples"] == 24
    assert any("cube_N5_W6.h5" in n for n in summary["notes"])


ISOTROPIC_JOB = """
name = "tiny_iso"
geometry = "cube"
sizes = [4, 5, 6]
W = [6.0]
samples = 24
block_size = 4
seed = 11
hopping = [1.0, 1.0, 1.0]
cuts = [0.5]
"""


def test_analysis_and_figures_with_evanescent_channels(tmp_path):
    """The isotropic model (n_open < N_perp): the whole analysis runs, every cube figure is made,
    summary.json records n_open, and <g> stays below the number of open channels."""
    job = tmp_path / "iso.toml"
    job.write_text(ISOTROPIC_JOB)
    out = tmp_path / "res"
    proc = run_py(["-m", "anderson_mpi", "run", job, "--out", out])
    assert proc.returncode == 0, proc.stderr
    proc = run_py(["-m", "analysis", out])
    assert proc.returncode == 0 and "Traceback" not in proc.stderr, proc.stderr
    for name in CUBE_FIGURES:
        assert (out / "figures" / f"{name}.png").stat().st_size > 1000, name
    runs = json.loads((out / "summary.json").read_text())["runs"]
    assert [r["n_open"] for r in runs] == [[10, 10], [16, 16], [22, 22]]  # of 16, 25, 36
    for r in runs:
        assert r["hopping"] == [1.0, 1.0, 1.0]
        assert 0 < r["conductance"] < r["n_open"][0] and 0 < r["fano"] < 1
        assert r["dn1"] > 0 and r["m2"] > 0
