"""QSSEP at fourth order, the dn^(4) fit, the rescaling and the figure functions (analysis.order4)."""
import itertools

import numpy as np
import pytest

from analysis import qssep
from analysis.order4 import fig_crossing_map, fig_g4_lines, g4_shape_on_pair


from helpers import eq5, integral_unit_cube, set_partitions


def crossing(part):
    for p, q in itertools.combinations(part, 2):
        for i, k in itertools.combinations(sorted(p), 2):
            if any(i < j < k for j in q) and any(j < i or j > k for j in q):
                return True
    return False


@pytest.mark.parametrize("dn", [1.0, -0.77, 1.43])
def test_eq6_at_n4(dn):
    """sum over NC(4) of prod g_|B|(x_B) = dn^4 min(x): g1..g3 from eq. (5), g4 from qssep.g.
    NC(4) is enumerated here: the 15 set partitions minus the one crossing, {13}{24}."""
    nc4 = [p for p in set_partitions([0, 1, 2, 3]) if not crossing(p)]
    assert len(nc4) == 14
    assert [sorted(map(sorted, p)) for p in set_partitions([0, 1, 2, 3]) if crossing(p)] == [[[0, 2], [1, 3]]]
    rng = np.random.default_rng(4)
    x = np.concatenate([rng.random((300, 4)), rng.integers(0, 5, (100, 4)) / 4])  # with ties
    total = np.zeros(len(x))
    for part in nc4:
        term = np.ones(len(x))
        for block in part:
            xb = x[:, sorted(block)]
            term = term * (qssep.g(4, xb, dn) if len(block) == 4 else eq5(len(block), xb, dn))
        total += term
    np.testing.assert_allclose(total, dn**4 * x.min(axis=1), rtol=0, atol=1e-13 * max(1, dn**4))
    # ... while the classical sum over all 15 partitions would not hold (g4 is a free cumulant)
    g2 = lambda i, j: eq5(2, x[:, [i, j]], dn)  # noqa: E731
    assert np.abs(g2(0, 2) * g2(1, 3)).max() > 1e-3 * dn**4


@pytest.mark.parametrize("dn", [1.0, 1.3, -0.77])
def test_integral_of_g4(dn):
    """int_[0,1]^4 g4 = -dn^4 / 720 (docs/theory.md §7). g4 is a polynomial of degree <= 4 on each of the
    24 simplices x_s1 < ... < x_s4 (every term is a product of minima of its blocks), and the
    rule is exact there, so the quadrature error is rounding: tolerance 1e-13 relative."""
    assert integral_unit_cube(lambda x: np.ones(len(x)), 4) == pytest.approx(1.0, rel=1e-14)
    assert integral_unit_cube(lambda x: eq5(2, x[:, :2], dn), 4) == pytest.approx(dn**2 / 12, rel=1e-13)
    assert abs(integral_unit_cube(lambda x: eq5(3, x[:, :3], dn), 4)) < 1e-15
    value = integral_unit_cube(lambda x: qssep.g(4, x, dn), 4)
    assert value == pytest.approx(-dn**4 / 720, rel=1e-13)


def test_figures(tmp_path):
    nx = 10
    x = (np.arange(nx) + 0.5) / nx
    c, d = 2, 7
    g4 = 1.5**4 * g4_shape_on_pair(x, c, d)
    series = [dict(label=f"N = {n}", x=x, g4=g4 * s, err=0.01 * np.ones((nx, nx)), c=c, d=d)
              for n, s in ((8, 0.9), (10, 1.0))]
    fig = fig_g4_lines(series, ys=(0.45, 0.85), dn4=1.5, dn4_err=0.05)
    assert len(fig.axes) == 2 and all(ax.get_lines() for ax in fig.axes)
    fig.savefig(tmp_path / "g4_lines.png")
    fig = fig_crossing_map(x, g4, 0.1 * g4, c, d, dn4=1.5)
    assert len(fig.axes) == 6  # three maps and their color bars
    fig.savefig(tmp_path / "crossing.png")
    assert (tmp_path / "g4_lines.png").stat().st_size > 0 and (tmp_path / "crossing.png").stat().st_size > 0


def test_order_four_through_the_sweep_and_the_analysis(tmp_path):
    """A real run with cut pairs: summary.json has dn4 and the crossing ratio, estimates.h5 holds
    every array with its error in the documented layout, and the two order-four figures exist."""
    import json
    import subprocess
    import sys

    import h5py

    from helpers import ROOT, child_env

    job = tmp_path / "o4.toml"
    job.write_text('geometry = "cube"\nsizes = [4, 5]\nW = [6.0]\nsamples = 24\nblock_size = 4\n'
                   'seed = 3\ncuts = [0.5]\ncuts4 = [[0.25, 0.75]]\n')
    out = tmp_path / "res"
    run = subprocess.run([sys.executable, "-m", "anderson_mpi", "run", str(job), "--out", str(out)],
                         env=child_env(), cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr
    ana = subprocess.run([sys.executable, "-m", "analysis", str(out), "--figures", "fig_g4_lines",
                          "fig_g4_crossing"], env=child_env(), cwd=ROOT, capture_output=True,
                         text=True, timeout=300)
    assert ana.returncode == 0, ana.stderr
    summary = json.loads((out / "summary.json").read_text())
    for s in summary["runs"]:
        assert s["dn4_err"] is not None and s["dn4_err"] > 0
        assert len(s["c4_cross_ratio"]) == 1 and s["pair_slices"] == [[s["Nx"] // 4, 3 * s["Nx"] // 4]]
    with h5py.File(out / "estimates.h5", "r") as f:
        for N in (4, 5):
            g = f[f"runs/cube_N{N}_W6"]
            assert g["C4"].shape == (1, N, N) and g["C4_err"].shape == (1, N, N)
            assert np.all(g["C4_err"][...] > 0) and np.all(np.isfinite(g["C4"][...]))
            assert np.allclose(g["g4"][...], N**3 * g["C4"][...])  # cube: g4 = N^3 C4
            assert g["C2"].shape == (N, N) and g["pair_slices"][...].tolist() == [[N // 4, 3 * N // 4]]
            assert json.loads(g.attrs["run"])["cuts4"] == [[0.25, 0.75]]
    comparison = (out / "comparison.md").read_text()
    assert "loop-order asymmetry R of g4" in comparison and "dn^(4), classical shape" in comparison
    assert "not a test of freeness" in comparison
    for name in ("fig_g4_lines", "fig_g4_crossing"):
        for ext in ("png", "pdf", "csv"):
            assert (out / "figures" / f"{name}.{ext}").stat().st_size > 0


def test_the_qssep_curve_has_the_sign_of_the_fit():
    """A negative fitted t = dn4^4 (signed fourth root) draws -|t| g4^Q, not +|t| g4^Q."""
    from analysis.order4 import qssep_g4
    pts = np.array([[0.2, 0.5, 0.25, 0.75], [0.6, 0.5, 0.25, 0.75]])
    shape = qssep.g(4, pts, 1.0)
    assert np.allclose(qssep_g4(pts, -0.9), -0.9**4 * shape)
    assert np.allclose(qssep_g4(pts, 0.9), 0.9**4 * shape)
