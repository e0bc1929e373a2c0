"""The Anderson model and simulated QSSEP analysed together (``python -m analysis DIR1 DIR2
--out DIR``): one summary with both models' groups, the QSSEP chain's D from its mean profile
against its bulk rate, and the overlay figure at their common sizes."""
import json
import subprocess
import sys

import pytest

from helpers import ROOT, child_env

ANDERSON = ('geometry = "cube"\nsizes = [4, 5]\nW = [6.0]\nsamples = 24\nblock_size = 6\nseed = 4\n'
            'cuts = [0.5]\ncuts4 = [[0.25, 0.75]]\n')
QSSEP = ('model = "qssep"\ngeometry = "chain"\nsizes = [4, 5]\nsamples = 120\nblock_size = 20\n'
         'seed = 4\ncuts = [0.5]\ncuts4 = [[0.25, 0.75]]\n')


def run(args):
    proc = subprocess.run([sys.executable, "-m"] + [str(a) for a in args], env=child_env(), cwd=ROOT,
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return proc


def test_two_models_in_one_analysis(tmp_path):
    for name, text in (("anderson", ANDERSON), ("qssep", QSSEP)):
        (tmp_path / f"{name}.toml").write_text(text)
        run(["anderson_mpi", "run", tmp_path / f"{name}.toml", "--out", tmp_path / name])
    out = tmp_path / "both"
    run(["analysis", tmp_path / "anderson", tmp_path / "qssep", "--out", out,
         "--figures", "fig_models_overlay"])
    summary = json.loads((out / "summary.json").read_text())
    models = sorted({(s["model"], s["geometry"], s["Nx"]) for s in summary["runs"]})
    assert models == [("anderson", "cube", 4), ("anderson", "cube", 5), ("qssep", "chain", 4),
                      ("qssep", "chain", 5)]
    for s in summary["runs"]:
        if s["model"] == "qssep":
            # the mean profile of simulated QSSEP is exact at any dt (docs/theory.md §12.2)
            assert s["D_expected"] == 1.0
            assert s["D_profile"] == pytest.approx(1.0, abs=5 * s["D_profile_err"] + 1e-9)
        else:
            assert "D_profile" not in s
    for ext in ("png", "pdf", "csv"):
        assert (out / "figures" / f"fig_models_overlay.{ext}").stat().st_size > 0
