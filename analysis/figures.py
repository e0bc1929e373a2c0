"""The paper's figures from an `analysis.report.Analysis` (matplotlib, Agg; PNG, PDF and CSV).

One function per figure; each takes the analysis and a `FigureData` recorder and returns the
figure, or raises `Skip` with the reason when the results lack its data. Every plot of data
has jackknife error bars and, dashed, the QSSEP prediction (`analysis.qssep.g`) at the
*headline* dn (OLS over the analysis window, the number summary.json reports). Points that
the window leaves out of the fit are drawn open. The main-text figures (2, 3, 4) use the cube
runs at the W closest to 6 (the paper's W); the quasi-1d figures (SM 5-7) and the W sweep
(SM 8-10) use every W the results hold.

Next to every ``<name>.png`` / ``.pdf`` the data it draws is written as ``<name>.csv``: long
format, one row per drawn point, named columns (``panel, series, kind, ..., value, error,
in_window``; ``kind`` is ``data``, ``residual``, ``qssep`` (dashed curves), ``fit`` or ``map``),
so a figure can be replotted without re-running the analysis.

=====================  ===========================================================================
file                   content
=====================  ===========================================================================
fig2_u1_maps           |N_perp^-1 E Tr G_ab| and |N N_perp^-2 E Tr(G_aj G_jb)| (largest cube), rows
fig3a_g1               g1 versus x for every N, dashed: intercept + dn^(1) x (largest N); residuals
fig3b_g2               g2 versus x at the largest N for several y, dashed: dn^(2) of that N; residuals
fig3c_g2_collapse      g2 versus x for y ~ 0.21, 0.59, every N, dashed: dn^(2) extrapolated
fig3d_g3_surface       g3(x, y, z) at the cut nearest z = 0.5: data, QSSEP at dn^(3), pulls
fig3e_g3_cut           g3(x, y ~ 0.78, z ~ 0.23) for every N, dashed: dn^(3) (largest N)
fig3f_g3_cut           g3(x, y ~ 0.23, z ~ 0.23)
fig4_m_scaling         m2 and |m3| versus N, one series per W, log-log (and the parts of m3)
fig5_quasi1d           quasi-1d: g1 per Nx; m2/Nx^2 and |m3|/Nx^4 versus Nx per W, dashed: ~Nx
fig6_quasi1d_g2        quasi-1d g2 per W: collapse over Nx (y ~ 0.21, 0.59) / largest Nx, several y
fig7_quasi1d_g3        quasi-1d g3 per W at z ~ 0.21: y ~ 0.21 / y ~ 0.79
fig8_W_g1              cube g1 per W
fig9_W_g2              cube g2 per W (as fig6)
fig10_W_g3             cube g3 per W (as fig7)
fig_dn_vs_W            dn^(1), dn^(2) (extrapolated), dn^(3) versus W per geometry
conductance            <g> and the Fano factor versus size per W (dashed: the Ohm's-law fit, 1/3)
=====================  ===========================================================================
"""
from __future__ import annotations

import csv
import math
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from . import qssep, windows  # noqa: E402
from .fits import g2_shape  # noqa: E402

__all__ = ["Skip", "FigureData", "FIGURES", "make_figures"]

MAIN_W = 6.0      # the paper's main-text disorder
QUASI1D_W = 4.0   # SM Fig. 5 (a)
DASH = dict(color="k", ls="--", lw=1.0)


class Skip(Exception):
    """The results lack this figure's data (the message says what is missing)."""


class FigureData:
    """Long-format table of what one figure draws (one row per point), written as CSV."""

    def __init__(self):
        self.rows = []
        self.columns = []

    def add(self, **columns):
        """Add rows: array columns are broadcast against each other, scalars repeated."""
        arrays = {k: np.asarray(v) for k, v in columns.items()}
        shape = np.broadcast_shapes(*(a.shape for a in arrays.values()))
        flat = {k: np.broadcast_to(a, shape).ravel() for k, a in arrays.items()}
        for k in columns:
            if k not in self.columns:
                self.columns.append(k)
        n = int(np.prod(shape)) if shape else 1
        for i in range(n):
            self.rows.append({k: v[i] for k, v in flat.items()})

    @staticmethod
    def _cell(v):
        if v is None:
            return ""
        if isinstance(v, (bool, np.bool_)):
            return "1" if v else "0"
        if isinstance(v, (float, np.floating)):
            return "nan" if not math.isfinite(float(v)) else f"{float(v):.10g}"
        if isinstance(v, (int, np.integer)):
            return str(int(v))
        return str(v)

    def write(self, path):
        with open(path, "w", newline="") as fh:
            out = csv.writer(fh)
            out.writerow(self.columns)
            for row in self.rows:
                out.writerow([self._cell(row.get(k)) for k in self.columns])
        return path


# --- helpers ------------------------------------------------------------------------------------

def _colors(n):
    cmap = plt.get_cmap("viridis")
    return [cmap(v) for v in np.linspace(0.1, 0.85, max(n, 1))]


def _nearest(x, target):
    return int(np.argmin(np.abs(np.asarray(x) - target)))


def _nearest_cut(run, target):
    xs = run.x[run.cut_slices]
    i = _nearest(xs, target)
    return i, int(run.cut_slices[i])


def _size_ticks(ax, sizes):
    """Log x axis labelled with the sizes themselves (plain numbers)."""
    from matplotlib.ticker import FixedLocator, NullLocator, ScalarFormatter
    ax.xaxis.set_major_locator(FixedLocator(sorted(set(sizes))))
    ax.xaxis.set_minor_locator(NullLocator())
    fmt = ScalarFormatter()
    fmt.set_scientific(False)
    ax.xaxis.set_major_formatter(fmt)


def _grid(n=201):
    return np.linspace(0.0, 1.0, n)


def _points(ax, rec, x, v, e, color, keep=None, label=None, marker="o", line=True, kind="data",
            **meta):
    """Error bars, filled inside the fit window and open outside it; recorded in ``rec``.

    A line joins the points inside the window only (the left-out points are often contact
    spikes that would dominate the curve)."""
    x, v, e = (np.asarray(a, float) for a in (x, v, e))
    keep = np.ones(x.shape, bool) if keep is None else np.asarray(keep, bool)
    ax.errorbar(x[keep], v[keep], yerr=e[keep], color=color, marker=marker, ms=3.5, lw=1.2,
                capsize=2, ls="-" if line else "none", label=label)
    if (~keep).any():
        ax.errorbar(x[~keep], v[~keep], yerr=e[~keep], color=color, marker=marker, mfc="white",
                    ms=4, capsize=2, ls="none")
    rec.add(kind=kind, **meta, x=x, value=v, error=e, in_window=keep)


def _curve(ax, rec, x, v, label=None, kind="qssep", style=None, **meta):
    """A model curve (dashed by default), recorded in ``rec``."""
    ax.plot(x, v, **(style or DASH), label=label)
    rec.add(kind=kind, **meta, x=np.asarray(x, float), value=np.asarray(v, float))


def _main_group(an, geometry="cube", target=MAIN_W):
    groups = an.groups_of(geometry)
    if not groups:
        raise Skip(f"no {geometry} runs")
    return min(groups, key=lambda g: (abs(g.W - target), -len(g.runs)))


def _qssep_curve(n, dn, *coords):
    """g_n^Q at the broadcast coordinates; nan where dn could not be fitted."""
    pts = np.stack(np.broadcast_arrays(*(np.asarray(c, float) for c in coords)), axis=-1)
    if not np.isfinite(dn):
        return np.full(pts.shape[:-1], np.nan)
    return qssep.g(n, pts, float(dn))


def _qssep_curve_g2(x, y, dn):
    return _qssep_curve(2, dn, x, y)


def _qssep_curve_g3(x, y, z, dn):
    return _qssep_curve(3, dn, x, y, z)


def _fmt(v, e):
    return f"{v:.3g} ± {e:.2g}"


def _gname(geometry, n):
    return f"$g_{n}^{{A}}$" if geometry == "cube" else f"$g_{n}^{{\\mathrm{{q1d}}}}$"


def _window_note(an, open_points=True):
    w = an.window
    note = f"OLS, K = {w.drop_slices}, D = {w.drop_diagonal}"
    return note + ("; open: outside the fit window" if open_points else "")


# window masks as full (symmetric) matrices, for drawing
def _g1_keep(r):
    return windows.g1_mask(r.Nx, r.window)


def _g2_keep(r):
    m = windows.g2_mask(r.Nx, r.window)
    return m | m.T


def _g3_keep(r, c):
    m = windows.g3_cut_mask(r.Nx, c, r.window)
    return m | m.T


# --- Fig. 2 ---------------------------------------------------------------------------------------

def fig2_u1_maps(an, rec):
    group = _main_group(an)
    r = group.largest
    if len(r.cut_slices) == 0:
        raise Skip("no cut slices")
    i, j = _nearest_cut(r, 0.4)  # the paper's j_x = 8 of N = 20
    a0 = _nearest(r.x, 0.75 if r.x[j] < 0.6 else 0.25)
    fig, axes = plt.subplots(1, 3, figsize=(14, 4.2))
    ext = [0, 1, 1, 0]
    xa, xb = np.meshgrid(r.x, r.x, indexing="ij")
    for ax, key, data, err, title in (
            (axes[0], "map1", r.value["map1_abs"], r.error["map1_abs"],
             r"$|[G_{ij}]_\perp|$, $i_\perp = j_\perp$"),
            (axes[1], "map2", r.value["map2_abs"][i], r.error["map2_abs"][i],
             rf"$N\,|[G_{{ij}} G_{{jk}}]_\perp|$, $j_x = {j}$")):
        im = ax.imshow(data, extent=ext, cmap="magma", interpolation="nearest")
        ax.set_xlabel(r"$y$ (second index)")
        ax.set_ylabel(r"$x$ (first index)")
        ax.set_title(title, fontsize=10)
        fig.colorbar(im, ax=ax, shrink=0.85)
        rec.add(panel=key, kind="map", N=r.Nx, j=j if key == "map2" else -1, x=xa, y=xb,
                value=data, error=err)
    axes[1].axhline(r.x[j], color="w", lw=0.5, ls=":")
    axes[1].axvline(r.x[j], color="w", lw=0.5, ls=":")
    ax = axes[2]
    c1, c2 = _colors(2)
    _points(ax, rec, r.x, r.value["map1_abs"][a0], r.error["map1_abs"][a0], c1,
            label=rf"$|[G_{{ab}}]_\perp|$, $x_a = {r.x[a0]:.2f}$", panel="row_map1", N=r.Nx,
            y=r.x[a0])
    _points(ax, rec, r.x, r.value["map2_abs"][i][a0], r.error["map2_abs"][i][a0], c2, marker="s",
            label=rf"$N |[G_{{aj}} G_{{jb}}]_\perp|$, $x_a = {r.x[a0]:.2f}$", panel="row_map2",
            N=r.Nx, y=r.x[a0])
    # U(1) invariance: both vanish unless b = a; QSSEP (headline dn) gives the values at b = a.
    dn1, icpt = r.fit1.value["dn1"], r.fit1.value["intercept"]
    g1q = abs(icpt + dn1 * r.x[a0])
    g2q = r.fit2.value["dn2"] ** 2 * g2_shape(r.x)[a0, j]
    grid = _grid()
    _curve(ax, rec, grid, np.zeros_like(grid), label="QSSEP (zero unless $b = a$)", panel="rows")
    ax.plot([r.x[a0]], [g1q], marker="_", ms=14, mew=2, color=c1, ls="none")
    ax.plot([r.x[a0]], [g2q], marker="_", ms=14, mew=2, color=c2, ls="none")
    rec.add(panel="rows", kind="qssep_at_b_eq_a", x=[r.x[a0], r.x[a0]], value=[g1q, g2q],
            series=["map1", "map2"])
    ax.vlines([r.x[a0]], 0, max(g1q, g2q), **{**DASH, "lw": 0.8})
    ax.set_xlabel(r"$x_b$")
    ax.set_title("rows through the maps", fontsize=10)
    ax.legend(fontsize=7)
    fig.suptitle(f"Fig. 2: U(1) invariance, cube N = {r.Nx}, W = {r.W:g}, {r.samples} samples")
    fig.tight_layout()
    return fig


# --- Fig. 3 ---------------------------------------------------------------------------------------

def _plot_g1(ax, group, rec, panel="g1", ax_res=None):
    """g1 of every size; dashed: the headline fit of the largest size; residuals of every size
    from its own headline fit on ``ax_res``."""
    cols = _colors(len(group.runs))
    for r, c in zip(group.runs, cols):
        keep = _g1_keep(r)
        _points(ax, rec, r.x, r.value["g1"], r.error["g1"], c, keep, label=r.size_label,
                panel=panel, N=r.Nx, W=r.W)
        if ax_res is not None:
            fit = r.fit1.value["intercept"] + r.fit1.value["dn1"] * r.x
            _points(ax_res, rec, r.x, r.value["g1"] - fit, r.error["g1"], c, keep,
                    kind="residual", panel=panel + "_residual", N=r.Nx, W=r.W)
    big = group.largest
    dn1, icpt = big.fit1.value["dn1"], big.fit1.value["intercept"]
    grid = _grid()
    _curve(ax, rec, grid, icpt + dn1 * grid, kind="fit", panel=panel, N=big.Nx, W=big.W,
           label=rf"QSSEP, $\Delta n^{{(1)}} = {_fmt(dn1, big.fit1.error['dn1'])}$ ({big.size_label})")
    ax.set_xlabel("$x$")
    ax.set_ylabel(_gname(group.geometry, 1))
    ax.legend(fontsize=7)
    if ax_res is not None:
        ax_res.axhline(0, **DASH)
        ax_res.set_xlabel("$x$")
        ax_res.set_ylabel("data $-$ own fit")


def fig3a_g1(an, rec):
    group = _main_group(an)
    fig, (ax, ax_res) = plt.subplots(2, 1, figsize=(5.5, 6.4), sharex=True,
                                     gridspec_kw={"height_ratios": [2.2, 1]})
    _plot_g1(ax, group, rec, ax_res=ax_res)
    ax.set_xlabel("")
    ax.set_title(f"Fig. 3a: density, cube W = {group.W:g}\n({_window_note(an)})", fontsize=10)
    ax_res.set_title(r"residuals from each size's own fit $c + \Delta n^{(1)}_N x$", fontsize=9)
    fig.tight_layout()
    return fig


def _plot_g2_rows(ax, rec, r, ys, dn, dn_err, dn_label, panel="g2_rows", ax_res=None):
    """g2(x, y) versus x for the slices nearest the ys, one run; dashed QSSEP at dn."""
    idx = sorted({_nearest(r.x, y) for y in ys})
    cols = _colors(len(idx))
    grid = _grid()
    keep_all = _g2_keep(r)
    for b, c in zip(idx, cols):
        meta = dict(panel=panel, N=r.Nx, W=r.W, y=r.x[b])
        _points(ax, rec, r.x, r.value["g2"][:, b], r.error["g2"][:, b], c, keep_all[:, b],
                label=f"$y = {r.x[b]:.2f}$", **meta)
        _curve(ax, rec, grid, _qssep_curve_g2(grid, r.x[b], dn), **meta)
        if ax_res is not None:
            model = _qssep_curve_g2(r.x, r.x[b], dn)
            _points(ax_res, rec, r.x, r.value["g2"][:, b] - model, r.error["g2"][:, b], c,
                    keep_all[:, b], kind="residual", **dict(meta, panel=panel + "_residual"))
    ax.plot([], [], **DASH, label=rf"QSSEP, $\Delta n^{{(2)}}$ = {_fmt(dn, dn_err)} ({dn_label})")
    ax.set_xlabel("$x$")
    ax.set_ylabel(_gname(r.geometry, 2))
    ax.legend(fontsize=7, loc="upper right", framealpha=0.6)
    if ax_res is not None:
        ax_res.axhline(0, **DASH)
        ax_res.set_xlabel("$x$")
        ax_res.set_ylabel("data $-$ QSSEP")


def fig3b_g2(an, rec):
    group = _main_group(an)
    r = group.largest
    fig, (ax, ax_res) = plt.subplots(2, 1, figsize=(5.5, 6.4), sharex=True,
                                     gridspec_kw={"height_ratios": [2.2, 1]})
    _plot_g2_rows(ax, rec, r, (0.2, 0.4, 0.6, 0.8), r.fit2.value["dn2"], r.fit2.error["dn2"],
                  f"fit at {r.size_label}", ax_res=ax_res)
    ax.set_xlabel("")
    ax.set_title(f"Fig. 3b: second cumulant, cube {r.size_label}, W = {r.W:g}\n"
                 f"({_window_note(an)})", fontsize=10)
    fig.tight_layout()
    return fig


def _plot_g2_collapse(ax, rec, group, ys=(0.21, 0.59), panel="g2_collapse"):
    cols = _colors(len(group.runs))
    markers = "os^dv"
    grid = _grid()
    dn, dn_err = group.dn2_ext.value["dn2"], group.dn2_ext.error["dn2"]
    for k, y in enumerate(ys):
        for r, c in zip(group.runs, cols):
            b = _nearest(r.x, y)
            _points(ax, rec, r.x, r.value["g2"][:, b], r.error["g2"][:, b], c, _g2_keep(r)[:, b],
                    marker=markers[k % 5], label=r.size_label if k == 0 else None,
                    panel=panel, N=r.Nx, W=r.W, y=r.x[b])
        _curve(ax, rec, grid, _qssep_curve_g2(grid, y, dn), panel=panel, W=group.W, y=y)
        ax.annotate(f"$y \\approx {y:g}$", (y, float(_qssep_curve_g2(y, y, dn))),
                    textcoords="offset points", xytext=(4, 6), fontsize=8)
    ax.plot([], [], **DASH, label=rf"QSSEP, $\Delta n^{{(2)}}_\infty$ = {_fmt(dn, dn_err)}")
    ax.set_xlabel("$x$")
    ax.set_ylabel(_gname(group.geometry, 2))
    ax.legend(fontsize=7)


def fig3c_g2_collapse(an, rec):
    group = _main_group(an)
    fig, ax = plt.subplots(figsize=(5.5, 4.2))
    _plot_g2_collapse(ax, rec, group)
    ax.set_title(f"Fig. 3c: g2 collapsed over N, cube W = {group.W:g}\n"
                 f"(dashed: the N -> infinity ansatz, {_window_note(an)})", fontsize=9)
    fig.tight_layout()
    return fig


def fig3d_g3_surface(an, rec):
    group = _main_group(an)
    r = group.largest
    if len(r.cut_slices) == 0:
        raise Skip("no cut slices in the largest cube run")
    i, c = _nearest_cut(r, 0.525)
    dn3 = r.fit3.value["dn3"]
    xa, xb = np.meshgrid(r.x, r.x, indexing="ij")
    model = _qssep_curve_g3(xa, xb, r.x[c], dn3)
    data, err = r.value["g3"][i], r.error["g3"][i]
    keep = _g3_keep(r, c)
    vmax = float(np.nanmax(np.abs(np.concatenate([data.ravel(), model.ravel()]))))
    vmax = vmax if np.isfinite(vmax) and vmax > 0 else 1.0
    fig, axes = plt.subplots(1, 3, figsize=(14, 4.2))
    ext = [r.x[0] - 0.5 / r.Nx, r.x[-1] + 0.5 / r.Nx, r.x[-1] + 0.5 / r.Nx, r.x[0] - 0.5 / r.Nx]
    for ax, arr, title in ((axes[0], data, f"Anderson, {r.size_label}"),
                           (axes[1], model, rf"QSSEP, $\Delta n^{{(3)}} = {_fmt(dn3, r.fit3.error['dn3'])}$")):
        im = ax.imshow(arr, extent=ext, cmap="RdBu_r", vmin=-vmax, vmax=vmax, interpolation="nearest")
        ax.contour(r.x, r.x, model, levels=7, colors="k", linestyles="dashed", linewidths=0.6)
        ax.set_xlabel("$y$")
        ax.set_ylabel("$x$")
        ax.set_title(title, fontsize=10)
        fig.colorbar(im, ax=ax, shrink=0.85)
    with np.errstate(divide="ignore", invalid="ignore"):
        pull = np.where((err > 0) & keep, (data - model) / err, np.nan)
    finite = np.abs(pull[np.isfinite(pull)])
    lim = max(float(np.percentile(finite, 90)), 1.0) if finite.size else 1.0  # a few tiny errors
    im = axes[2].imshow(pull, extent=ext, cmap="PuOr", vmin=-lim, vmax=lim, interpolation="nearest")
    axes[2].set_title("(data - QSSEP) / jackknife error\n(blank: outside the fit window; "
                      "colors clipped)", fontsize=9)
    axes[2].set_xlabel("$y$")
    axes[2].set_ylabel("$x$")
    fig.colorbar(im, ax=axes[2], shrink=0.85, extend="both")
    rec.add(panel="g3_surface", kind="map", N=r.Nx, W=r.W, x=xa, y=xb, z=r.x[c], value=data,
            error=err, qssep=model, pull=np.where(np.isfinite(pull), pull, np.nan), in_window=keep)
    fig.suptitle(f"Fig. 3d: third cumulant $g_3(x, y, z)$ at the cut $z = {r.x[c]:.3f}$ "
                 f"(slice {c}), W = {r.W:g}; dashed contours: QSSEP at the headline "
                 f"$\\Delta n^{{(3)}}$ ({_window_note(an)})", fontsize=10)
    fig.tight_layout()
    return fig


def _plot_g3_cut(ax, rec, group, y, z, panel="g3_cut"):
    """Re g3(x, y, z) versus x for every size of a group; dashed: the headline dn^(3) (every
    cut) of the largest size."""
    cols = _colors(len(group.runs))
    used = []
    for r, col in zip(group.runs, cols):
        if len(r.cut_slices) == 0:
            continue
        i, c = _nearest_cut(r, z)
        b = _nearest(r.x, y)
        used.append((r.x[b], r.x[c]))
        _points(ax, rec, r.x, r.value["g3"][i][:, b], r.error["g3"][i][:, b], col,
                _g3_keep(r, c)[:, b], label=f"{r.size_label} ($y$={r.x[b]:.2f}, $z$={r.x[c]:.2f})",
                panel=panel, N=r.Nx, W=r.W, y=r.x[b], z=r.x[c])
    if not used:
        raise Skip(f"no cut slices in the {group.label} runs")
    big = group.largest
    dn3 = big.fit3.value["dn3"]
    grid = _grid()
    yq, zq = used[-1]
    label = rf"QSSEP, $\Delta n^{{(3)}} = {_fmt(dn3, big.fit3.error['dn3'])}$ (every cut)"
    line = big.fits.get("dn3_line")
    if line is not None:
        label += rf"; line fit {_fmt(line.value['dn3'], line.error['dn3'])}"
    _curve(ax, rec, grid, _qssep_curve_g3(grid, yq, zq, dn3), label=label, panel=panel,
           N=big.Nx, W=big.W, y=yq, z=zq)
    ax.axhline(0, color="0.7", lw=0.5)
    ax.set_xlabel("$x$")
    ax.set_ylabel(_gname(group.geometry, 3))
    ax.legend(fontsize=6.5)


def _fig3_cut(an, rec, y, letter):
    group = _main_group(an)
    fig, ax = plt.subplots(figsize=(5.5, 4.2))
    _plot_g3_cut(ax, rec, group, y, 0.23)
    ax.set_title(f"Fig. 3{letter}: $g_3$ cut at $z \\approx 0.23$, $y \\approx {y:g}$, "
                 f"cube W = {group.W:g}\n({_window_note(an)})", fontsize=9)
    fig.tight_layout()
    return fig


def fig3e_g3_cut(an, rec):
    return _fig3_cut(an, rec, 0.78, "e")


def fig3f_g3_cut(an, rec):
    return _fig3_cut(an, rec, 0.23, "f")


# --- Fig. 4 and SM Fig. 5 ---------------------------------------------------------------------

def _plot_m_scaling(ax, rec, groups, key, scale_power, ylabel, panel, marker="o", label_prefix="",
                    legend_keys=True):
    """|m| * size^scale_power versus size per group (log-log), dashed ~size."""
    cols = _colors(len(groups))
    any_points = False
    for g, col in zip(groups, cols):
        if not all(key in r.value for r in g.runs):
            continue
        N = np.array(g.sizes, float)
        m = np.array([r.value[key] for r in g.runs]) * N ** scale_power
        e = np.array([r.error[key] for r in g.runs]) * N ** scale_power
        neg = m < 0
        fit = g.m_fits.get(key)
        lab = f"{label_prefix}W = {g.W:g}"
        if fit is not None:
            lab += f" (exp. {_fmt(fit.value['exponent'] + scale_power, fit.error['exponent'])})"
        ax.errorbar(N[~neg], np.abs(m[~neg]), e[~neg], color=col, marker=marker, ms=4, capsize=2,
                    ls="-", label=lab)
        if neg.any():
            ax.errorbar(N[neg], np.abs(m[neg]), e[neg], color=col, marker=marker, mfc="none", ms=5,
                        capsize=2, ls="none")
        rec.add(panel=panel, series=key, kind="data", W=g.W, N=N, value=m, error=e,
                scale_power=scale_power)
        ref = np.abs(m[-1]) if m[-1] != 0 else 1.0
        _curve(ax, rec, N, ref * N / N[-1], kind="proportional_to_size", panel=panel, series=key,
               W=g.W)
        any_points = True
    if not any_points:
        raise Skip("no data")
    if legend_keys:
        ax.plot([], [], **DASH, label=r"$\propto$ size")
        ax.plot([], [], marker="o", mfc="none", color="0.4", ls="none", label="negative value")
    ax.set_xscale("log")
    ax.set_yscale("log")
    _size_ticks(ax, [n for g in groups for n in g.sizes])
    ax.set_ylabel(ylabel)
    ax.legend(fontsize=7)


def fig4_m_scaling(an, rec):
    groups = [g for g in an.groups_of("cube") if len(set(g.sizes)) >= 2]
    if not groups:
        raise Skip("no cube W with at least 2 sizes")
    split = [g for g in groups if all(r.has_m3_split for r in g.runs)]
    fig, axes = plt.subplots(1, 3 if split else 2, figsize=(15 if split else 10, 4.2))
    _plot_m_scaling(axes[0], rec, groups, "m2", 0, r"$m_2 = \sum_{ab} C_2(a,b)$", "m2")
    _plot_m_scaling(axes[1], rec, groups, "m3", 0, r"$|m_3| = |\sum_{abc} C_3(a,b,c)|$", "m3")
    axes[1].set_title("QSSEP: no O(N) term in $m_3$ ($\\int g_3^Q = 0$)", fontsize=9)
    if split:
        _plot_m_scaling(axes[2], rec, split, "m3_distinct", 0, "parts of $|m_3|$", "m3_split",
                        marker="s", label_prefix="distinct, ")
        _plot_m_scaling(axes[2], rec, split, "m3_coinciding", 0, "parts of $|m_3|$", "m3_split",
                        marker="^", label_prefix="coinciding, ", legend_keys=False)
        axes[2].set_title("$m_3$ from distinct / coinciding slices", fontsize=9)
    for ax in axes:
        ax.set_xlabel("$N$")
    fig.suptitle("Fig. 4: size scaling of the second and third cumulants (cube)")
    fig.tight_layout()
    return fig


def _q1d_groups(an):
    groups = an.groups_of("quasi1d")
    if not groups:
        raise Skip("no quasi-1d runs")
    # one transverse size: the one with the most runs
    counts = {}
    for g in groups:
        counts[(g.Ny, g.Nz)] = counts.get((g.Ny, g.Nz), 0) + len(g.runs)
    best = max(counts, key=counts.get)
    return [g for g in groups if (g.Ny, g.Nz) == best], best


def fig5_quasi1d(an, rec):
    groups, (ny, nz) = _q1d_groups(an)
    fig, axes = plt.subplots(1, 3, figsize=(15, 4.2))
    g0 = min(groups, key=lambda g: abs(g.W - QUASI1D_W))
    _plot_g1(axes[0], g0, rec)
    axes[0].set_title(f"(a) density, W = {g0.W:g}", fontsize=10)
    multi = [g for g in groups if len(set(g.sizes)) >= 2]
    if multi:
        _plot_m_scaling(axes[1], rec, multi, "m2", -2, r"$m_2^{\mathrm{q1d}} = N_x^{-2} \sum C_2$", "m2")
        _plot_m_scaling(axes[2], rec, multi, "m3", -4, r"$|m_3^{\mathrm{q1d}}| = N_x^{-4} |\sum C_3|$",
                        "m3")
        for ax, t in zip(axes[1:], ("(b)", "(c)")):
            ax.set_xlabel("$N_x$")
            ax.set_title(t, fontsize=10)
    else:
        for ax in axes[1:]:
            ax.text(0.5, 0.5, "one size per W: no scaling", ha="center", transform=ax.transAxes)
    fig.suptitle(f"SM Fig. 5: quasi-1d, Ny = {ny}, Nz = {nz}")
    fig.tight_layout()
    return fig


# --- g2 / g3 grids per W (SM Figs. 6, 7, 9, 10) and g1 per W (Fig. 8) ---------------------------

def _g2_grid(rec, groups, title):
    n = len(groups)
    fig, axes = plt.subplots(2, n, figsize=(4.8 * n, 8), squeeze=False)
    for k, g in enumerate(groups):
        _plot_g2_collapse(axes[0, k], rec, g, panel=f"W={g.W:g}_collapse")
        axes[0, k].set_title(f"W = {g.W:g}: collapse over sizes", fontsize=10)
        r = g.largest
        _plot_g2_rows(axes[1, k], rec, r, (0.21, 0.4, 0.59, 0.8), r.fit2.value["dn2"],
                      r.fit2.error["dn2"], f"fit at {r.size_label}", panel=f"W={g.W:g}_rows")
        axes[1, k].set_title(f"W = {g.W:g}, {r.size_label}", fontsize=10)
    fig.suptitle(title)
    fig.tight_layout()
    return fig


def _g3_grid(rec, groups, title):
    n = len(groups)
    fig, axes = plt.subplots(2, n, figsize=(4.8 * n, 8), squeeze=False)
    for k, g in enumerate(groups):
        for row, y in enumerate((0.21, 0.79)):
            _plot_g3_cut(axes[row, k], rec, g, y, 0.21, panel=f"W={g.W:g}_y={y:g}")
            axes[row, k].set_title(f"W = {g.W:g}: $y \\approx {y:g}$, $z \\approx 0.21$", fontsize=10)
    fig.suptitle(title)
    fig.tight_layout()
    return fig


def fig6_quasi1d_g2(an, rec):
    groups, (ny, nz) = _q1d_groups(an)
    return _g2_grid(rec, groups, f"SM Fig. 6: quasi-1d second cumulant, Ny = {ny}, Nz = {nz}")


def fig7_quasi1d_g3(an, rec):
    groups, (ny, nz) = _q1d_groups(an)
    return _g3_grid(rec, groups, f"SM Fig. 7: quasi-1d third cumulant, Ny = {ny}, Nz = {nz}")


def _cube_sweep(an):
    groups = an.groups_of("cube")
    if len(groups) < 2:
        raise Skip(f"W sweep needs cube runs at 2 or more W (have {len(groups)})")
    return groups


def fig8_W_g1(an, rec):
    groups = _cube_sweep(an)
    n = len(groups)
    fig, axes = plt.subplots(1, n, figsize=(4.8 * n, 4.2), squeeze=False)
    for ax, g in zip(axes[0], groups):
        _plot_g1(ax, g, rec, panel=f"W={g.W:g}")
        ax.set_title(f"W = {g.W:g}", fontsize=10)
    fig.suptitle("SM Fig. 8: density in the cube for several W")
    fig.tight_layout()
    return fig


def fig9_W_g2(an, rec):
    return _g2_grid(rec, _cube_sweep(an), "SM Fig. 9: second cumulant in the cube for several W")


def fig10_W_g3(an, rec):
    return _g3_grid(rec, _cube_sweep(an), "SM Fig. 10: third cumulant in the cube for several W")


def fig_dn_vs_W(an, rec):
    rows = []
    for geometry in ("cube", "quasi1d"):
        groups = an.groups_of(geometry)
        if geometry == "quasi1d" and groups:
            groups, _ = _q1d_groups(an)
        if len({g.W for g in groups}) >= 2:
            rows.append((geometry, groups))
    if not rows:
        raise Skip("no geometry with runs at 2 or more W")
    fig, axes = plt.subplots(1, len(rows), figsize=(5.5 * len(rows), 4.2), squeeze=False)
    for ax, (geometry, groups) in zip(axes[0], rows):
        W = np.array([g.W for g in groups])
        d1 = np.array([[g.largest.fit1.value["dn1"], g.largest.fit1.error["dn1"]] for g in groups])
        d2 = np.array([[g.dn2_ext.value["dn2"], g.dn2_ext.error["dn2"]] for g in groups])
        d2s = np.array([[g.largest.fit2.value["dn2"], g.largest.fit2.error["dn2"]] for g in groups])
        d3 = np.array([[g.largest.fit3.value["dn3"], g.largest.fit3.error["dn3"]] for g in groups])
        cols = _colors(3)
        ax.plot(W, d1[:, 0], **DASH, label=r"QSSEP: all orders equal $\Delta n^{(1)}$")
        for series, d, col, marker, mfc, shift, label in (
                ("dn1_largest", d1, cols[0], "o", None, 0.0, r"$\Delta n^{(1)}$ (largest size)"),
                ("dn2_extrapolated", d2, cols[1], "s", None, 0.03, r"$\Delta n^{(2)}$ (extrapolated)"),
                ("dn2_largest", d2s, cols[1], "s", "none", 0.03, r"$\Delta n^{(2)}$ (largest size)"),
                ("dn3_largest", d3, cols[2], "^", None, 0.06, r"$\Delta n^{(3)}$ (largest size)")):
            ax.errorbar(W + shift, d[:, 0], d[:, 1], color=col, marker=marker, mfc=mfc, ms=4,
                        capsize=2, ls="none", label=label)
            rec.add(panel=geometry, series=series, kind="data", W=W, value=d[:, 0], error=d[:, 1],
                    size=[g.largest.Nx for g in groups])
        ax.axhline(0, color="0.7", lw=0.5)
        ax.set_xlabel("$W$")
        ax.set_ylabel(r"$\Delta n$")
        ax.set_title(f"{geometry} ({_window_note(an, open_points=False)})", fontsize=9)
        ax.legend(fontsize=7)
    fig.suptitle(r"SM Figs. 8-10: fitted $\Delta n$ per order versus disorder")
    fig.tight_layout()
    return fig


def conductance(an, rec):
    rows = [(geo, [g for g in an.groups_of(geo) if g.runs]) for geo in ("cube", "quasi1d")]
    rows = [(geo, gs) for geo, gs in rows if gs]
    if not rows:
        raise Skip("no runs")
    fig, axes = plt.subplots(len(rows), 2, figsize=(10, 4 * len(rows)), squeeze=False)
    for (geo, groups), (ax_g, ax_f) in zip(rows, axes):
        cols = _colors(len(groups))
        for g, col in zip(groups, cols):
            N = np.array(g.sizes, float)
            v = np.array([r.value["conductance"] for r in g.runs])
            e = np.array([r.error["conductance"] for r in g.runs])
            f = np.array([r.value["fano"] for r in g.runs])
            fe = np.array([r.error["fano"] for r in g.runs])
            extra = "" if geo == "cube" else f" (Ny={g.Ny}, Nz={g.Nz})"
            sigma, offset = g.ohm.value["sigma"], g.ohm.value["offset"]
            mfp, mfp_err = g.ohm.value["mean_free_path"], g.ohm.error["mean_free_path"]
            lab = f"W = {g.W:g}{extra}: $\\ell$ = {_fmt(mfp, mfp_err)}"
            _points(ax_g, rec, N, v, e, col, label=lab, panel=f"{geo}_conductance", W=g.W)
            _points(ax_f, rec, N, f, fe, col, label=f"W = {g.W:g}{extra}", panel=f"{geo}_fano", W=g.W)
            # the reported Ohm's-law fit (OLS over the sizes)
            grid = np.linspace(N.min(), N.max(), 50)
            if geo == "cube":
                model = sigma * grid + offset
            else:
                model = 1.0 / (offset + grid / (sigma * g.Ny * g.Nz))
            _curve(ax_g, rec, grid, model, kind="fit", panel=f"{geo}_conductance", W=g.W)
        law = r"$\sigma N + c$" if geo == "cube" else r"$1/(r_0 + N_x / (\sigma A))$"
        ax_g.plot([], [], **DASH, label=f"Ohm's law fit {law}")
        ax_f.axhline(1 / 3, **DASH, label="diffusive 1/3")
        ax_g.set_ylabel(r"$\langle g \rangle$")
        ax_f.set_ylabel("Fano factor")
        for ax in (ax_g, ax_f):
            ax.set_xlabel("$N$" if geo == "cube" else "$N_x$")
            ax.legend(fontsize=7)
            ax.set_title(geo, fontsize=10)
    fig.suptitle(r"Conductance $\langle \mathrm{Tr}\, t^\dagger t \rangle$ (right incomers at $E_+$) "
                 r"and Fano factor versus size; $\ell = \sigma A / n_\mathrm{open}$")
    fig.tight_layout()
    return fig


def _preference(g):
    """Sort key of the group a single-group figure shows: the Anderson cube at W nearest 6 first,
    then other Anderson geometries, then the stochastic models (most runs first)."""
    anderson = g.model == "anderson"
    return (not anderson, g.geometry != "cube", abs(g.W - MAIN_W) if anderson else 0.0, -len(g.runs))


def _order4_group(an):
    groups = [g for g in an.groups if any(r.has_order4 for r in g.runs)]
    if not groups:
        raise Skip("no runs with fourth-order cut pairs (job key cuts4)")
    return min(groups, key=_preference)


def fig_g4_lines(an, rec):
    """g4 along lines of the first cut pair for every size (y ~ 0.5), dashed: QSSEP at the
    headline dn^(4) of the largest size."""
    from . import order4
    group = _order4_group(an)
    runs = [r for r in group.runs if r.has_order4]
    series = []
    for r in runs:
        c, d = (int(v) for v in r.pair_slices[0])
        series.append({"label": r.size_label, "x": r.x, "g4": r.value["g4"][0],
                       "err": r.error["g4"][0], "c": c, "d": d})
        b = _nearest(r.x, 0.5)
        keep = np.array([a not in (b, c, d) for a in range(r.Nx)]) & (b not in (c, d))
        rec.add(panel="g4_line", series=r.size_label, kind="data", N=r.Nx, W=r.W, x=r.x,
                y=r.x[b], z=r.x[c], z2=r.x[d], value=r.value["g4"][0][:, b],
                error=r.error["g4"][0][:, b], in_window=keep)
    big = runs[-1]
    dn4, dn4_err = big.fits["dn4"].value["dn4"], big.fits["dn4"].error["dn4"]
    c, d = (int(v) for v in big.pair_slices[0])
    yq = big.x[_nearest(big.x, 0.5)]
    grid = _grid()
    pts = np.stack(np.broadcast_arrays(grid, yq, big.x[c], big.x[d]), axis=-1)
    rec.add(panel="g4_line", series="QSSEP", kind="qssep", N=big.Nx, W=big.W, x=grid, y=yq,
            z=big.x[c], z2=big.x[d], value=order4.qssep_g4(pts, float(dn4)) if np.isfinite(dn4) else np.nan)
    return order4.fig_g4_lines(series, ys=(0.5,), dn4=dn4, dn4_err=dn4_err,
                               title=f"g4 on a cut pair, {group.label}; dashed: QSSEP at the "
                                     f"headline dn4 ({big.size_label})",
                               ylabel=_gname(group.geometry, 4))


def fig_g4_zero_lines(an, rec):
    """The measured zero line of g4 on the first cut pair (largest size), with jackknife errors,
    against the zero lines of the free shape (QSSEP; both loop orders) and of the classical one
    (docs/theory.md §7.3). Sign changes are kept where they are significant (2 sigma)."""
    from . import free_classical, windows
    group = _order4_group(an)
    big = [r for r in group.runs if r.has_order4][-1]
    c, d = (int(v) for v in big.pair_slices[0])
    keep = windows.g4_pair_mask(big.Nx, c, d, an.window)
    g4 = big.est["g4"].map(lambda g: g[0])
    measured = [free_classical.jk_zero_line(g4, big.x, keep, axis, min_jump=2.0) for axis in (1, 0)]
    f = big.fits["g4"]
    title = (f"$g_4$ zero lines, {group.label} {big.size_label}, "
             f"$(x_c, x_d) = ({big.x[c]:.2f}, {big.x[d]:.2f})$\n"
             f"rel. res. free {f['free'].full['rel_residual']:.2f}, classical "
             f"{f['classical'].full['rel_residual']:.2f}; R = "
             f"{_fmt(f['asymmetry'].value['ratio'], f['asymmetry'].error['ratio'])} (free 1, classical 0)")
    return free_classical.fig_zero_lines(big.x, big.value["g4"][0], c, d, measured=measured, rec=rec,
                                         title=title)


def fig_g4_crossing(an, rec):
    """Maps of g4, of the crossing term and of their ratio (largest size, first cut pair): the
    crossing at distinct slices is a U(1) / contact diagnostic, not a test of freeness."""
    from . import order4
    group = _order4_group(an)
    big = [r for r in group.runs if r.has_order4][-1]
    c, d = (int(v) for v in big.pair_slices[0])
    a, b = np.meshgrid(np.arange(big.Nx), np.arange(big.Nx), indexing="ij")
    for name in ("g4", "g4_cross"):
        rec.add(panel=name, series=big.size_label, kind="map", N=big.Nx, W=big.W, x=big.x[a],
                y=big.x[b], z=big.x[c], z2=big.x[d], value=big.value[name][0], error=big.error[name][0])
    return order4.fig_crossing_map(big.x, big.value["g4"][0], big.value["g4_cross"][0], c, d,
                                   dn4=big.fits["dn4"].value["dn4"],
                                   title=f"fourth order, {group.label} {big.size_label}: g4 and the "
                                         f"crossing term (a U(1)/contact diagnostic)")


def _model_groups(an):
    """The Anderson cube group nearest W = 6 and the simulated QSSEP chain group, and their
    common sizes (at most the three largest)."""
    anderson = an.groups_of("cube")
    chains = an.groups_of("chain", model="qssep")
    if not anderson or not chains:
        raise Skip("needs Anderson cube runs and simulated QSSEP chain runs analysed together "
                   "(python -m analysis DIR_ANDERSON DIR_QSSEP --out DIR)")
    a = min(anderson, key=lambda g: (abs(g.W - MAIN_W), -len(g.runs)))
    q = max(chains, key=lambda g: len(g.runs))
    common = sorted(set(a.sizes) & set(q.sizes))
    if not common:
        raise Skip(f"no common size of {a.label} ({a.sizes}) and {q.label} ({q.sizes})")
    return a, q, common[-3:]


def fig_models_overlay(an, rec):
    """Anderson (cube, W nearest 6), simulated QSSEP (chain) and QSSEP theory at equal N: g2 at
    y ~ 0.3 and 0.7, g3 at z ~ 0.5 (y ~ 0.25), and g4 on the first cut pair (y ~ 0.5) where both
    have it; each data set divided by its own headline dn^(n) (dn^n), so that one theory curve
    (dn = 1) serves both and what differs is the shape at finite N (docs/theory.md §12)."""
    a, q, sizes = _model_groups(an)
    groups = {"anderson": a, "qssep": q}
    by_size = {key: {r.Nx: r for r in g.runs} for key, g in groups.items()}
    with_g4 = all(by_size[key][N].has_order4 for key in groups for N in sizes)
    rows = 3 if with_g4 else 2
    fig, axes = plt.subplots(rows, len(sizes), figsize=(4.6 * len(sizes), 3.6 * rows), squeeze=False)
    styles = {"anderson": dict(color="tab:blue", marker="o", label=f"Anderson {a.label}"),
              "qssep": dict(color="tab:red", marker="s", label=f"simulated {q.label}")}
    grid = _grid()
    for col, N in enumerate(sizes):
        for key, g in groups.items():
            r = by_size[key][N]
            st = styles[key]
            dn2 = r.fit2.value["dn2"]
            for y in (0.3, 0.7):
                b = _nearest(r.x, y)
                keep = np.arange(r.Nx) != b
                v, e = r.value["g2"][:, b] / dn2**2, r.error["g2"][:, b] / abs(dn2**2)
                _points(axes[0, col], rec, r.x, v, e, st["color"], keep=keep, marker=st["marker"],
                        label=f"{st['label']} (dn2 = {dn2:.3g})" if y == 0.3 else None,
                        panel=f"g2_N{N}", series=f"{g.model}_y{r.x[b]:.3f}", N=N, y=r.x[b])
            if r.fits["dn3"] is not None and len(r.cut_slices):
                dn3 = r.fit3.value["dn3"]
                i, c = _nearest_cut(r, 0.5)
                b = _nearest(r.x, 0.25)
                keep = np.array([k not in (b, c) for k in range(r.Nx)])
                # dn3 may be negative (the paper's sign): the errors stay non-negative
                v, e = r.value["g3"][i][:, b] / dn3**3, r.error["g3"][i][:, b] / abs(dn3**3)
                _points(axes[1, col], rec, r.x, v, e, st["color"], keep=keep, marker=st["marker"],
                        label=f"{g.model} (dn3 = {dn3:.3g})", panel=f"g3_N{N}", series=g.model, N=N,
                        y=r.x[b], z=r.x[c])
            if with_g4:
                dn4 = r.fits["dn4"].value["dn4"]
                c, d = (int(v) for v in r.pair_slices[0])
                b = _nearest(r.x, 0.5)
                keep = np.array([k not in (b, c, d) for k in range(r.Nx)])
                scale = dn4**4 if np.isfinite(dn4) and dn4 != 0 else np.nan
                v, e = r.value["g4"][0][:, b] / scale, r.error["g4"][0][:, b] / abs(scale)
                _points(axes[2, col], rec, r.x, v, e, st["color"], keep=keep, marker=st["marker"],
                        label=f"{g.model} (dn4 = {dn4:.3g})", panel=f"g4_N{N}", series=g.model, N=N,
                        y=r.x[b], z=r.x[c], z2=r.x[d])
        ref = by_size["qssep"][N]  # the theory curves at the chain's slice coordinates (same N)
        for y in (0.3, 0.7):
            yq = ref.x[_nearest(ref.x, y)]
            _curve(axes[0, col], rec, grid, _qssep_curve_g2(grid, yq, 1.0), panel=f"g2_N{N}", N=N, y=yq,
                   label="QSSEP (dn = 1)" if y == 0.3 else None)
        if len(ref.cut_slices):
            i, c = _nearest_cut(ref, 0.5)
            yq = ref.x[_nearest(ref.x, 0.25)]
            _curve(axes[1, col], rec, grid, _qssep_curve_g3(grid, yq, ref.x[c], 1.0), panel=f"g3_N{N}",
                   N=N, y=yq, z=ref.x[c], label="QSSEP (dn = 1)")
        if with_g4:
            from . import order4
            c, d = (int(v) for v in ref.pair_slices[0])
            yq = ref.x[_nearest(ref.x, 0.5)]
            pts = np.stack(np.broadcast_arrays(grid, yq, ref.x[c], ref.x[d]), axis=-1)
            _curve(axes[2, col], rec, grid, order4.qssep_g4(pts, 1.0), panel=f"g4_N{N}", N=N, y=yq,
                   z=ref.x[c], z2=ref.x[d], label="QSSEP (dn = 1)")
        axes[0, col].set_title(f"N = {N}: $g_2 / (\\Delta n^{{(2)}})^2$, y = 0.3, 0.7", fontsize=10)
        axes[1, col].set_title(f"N = {N}: $g_3 / (\\Delta n^{{(3)}})^3$, z ~ 0.5, y ~ 0.25", fontsize=10)
        if with_g4:
            axes[2, col].set_title(f"N = {N}: $g_4 / (\\Delta n^{{(4)}})^4$, y ~ 0.5", fontsize=10)
        for ax in axes[:, col]:
            ax.set_xlabel("x")
            ax.axhline(0, color="0.7", lw=0.5)
    for ax in axes[:, 0]:
        ax.legend(fontsize=6)
    fig.suptitle("Anderson and simulated QSSEP through the same estimators and fits, against QSSEP "
                 f"theory\n(each divided by its own headline dn; {_window_note(an)})", fontsize=10)
    fig.tight_layout()
    return fig


def fig_intervals(an, rec):
    """m_n(x) (n = 2, 3, 4) over the job's intervals for every size of the group (W nearest 6
    for the cube): the distinct-slice part (filled) against QSSEP's distinct sum at that N times
    the fitted amplitude (lines; dashed: classical at n = 4), the total (open; with contact
    terms); the zeros of I4 (free 0.587, classical 0.413) marked (docs/theory.md §8)."""
    from . import intervals
    groups = [g for g in an.groups if any(r.has_intervals for r in g.runs)]
    if not groups:
        raise Skip("no runs with interval sums (job key intervals)")
    group = min(groups, key=_preference)
    runs = [r for r in group.runs if r.has_intervals]
    fig, axes = plt.subplots(1, 3, figsize=(13, 4.2))
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for i, r in enumerate(runs):
        color = colors[i % len(colors)]
        lengths = np.asarray(r.interval_lengths, np.int64)
        x = lengths / float(r.Nx)
        full = np.arange(r.Nx + 1)
        for ax, n in zip(axes, (2, 3, 4)):
            scale = intervals.interval_scale(r.geometry, r.Nx, n)
            for part, marker, fill in (("_distinct", "o", color), ("", "s", "none")):
                key = f"iv_m{n}{part}"
                y, e = np.asarray(r.value[key]) / scale, np.asarray(r.error[key]) / scale
                ax.errorbar(x, y, e, fmt=marker, color=color, mfc=fill, ms=4, capsize=2,
                            label=f"{r.size_label}" + (" distinct" if part else " total"))
                rec.add(panel=f"m{n}{part or '_total'}", series=r.size_label, kind="data", N=r.Nx,
                        W=r.W, x=x, value=y, error=e)
            kinds = ("free", "classical") if n == 4 else ("free",)
            for kind, style in zip(kinds, ("-", "--")):
                t = r.fits["intervals"][f"m{n}_{kind}"].value["t"]
                shape = t * intervals.finite_n_shape(n, r.Nx, full, kind)
                ax.plot(full / r.Nx, shape, style, color=color, lw=1)
                rec.add(panel=f"m{n}_distinct", series=r.size_label, kind=f"fit_{kind}", N=r.Nx,
                        W=r.W, x=full / r.Nx, value=shape)
    for ax, n in zip(axes, (2, 3, 4)):
        ax.axhline(0, color="0.6", lw=0.6)
        ax.set_xlabel("x (interval [0, x))")
        ax.set_ylabel(f"$m_{n}(x)$ / scale")
        ax.set_title(f"n = {n}")
    for kind, style in (("free", ":"), ("classical", "-.")):
        axes[2].axvline(intervals.INTERVAL_ZEROS[kind], color="k", ls=style, lw=0.8,
                        label=f"zero of $I_4$ ({kind}) {intervals.INTERVAL_ZEROS[kind]:.3f}")
    axes[0].legend(fontsize=7)
    axes[2].legend(fontsize=7)
    fig.suptitle(f"interval sums, {group.label}: distinct part vs QSSEP's finite-N sum x fitted "
                 f"amplitude (lines)", fontsize=10)
    fig.tight_layout()
    return fig


FIGURES = {
    "fig2_u1_maps": fig2_u1_maps,
    "fig3a_g1": fig3a_g1,
    "fig3b_g2": fig3b_g2,
    "fig3c_g2_collapse": fig3c_g2_collapse,
    "fig3d_g3_surface": fig3d_g3_surface,
    "fig3e_g3_cut": fig3e_g3_cut,
    "fig3f_g3_cut": fig3f_g3_cut,
    "fig4_m_scaling": fig4_m_scaling,
    "fig5_quasi1d": fig5_quasi1d,
    "fig6_quasi1d_g2": fig6_quasi1d_g2,
    "fig7_quasi1d_g3": fig7_quasi1d_g3,
    "fig8_W_g1": fig8_W_g1,
    "fig9_W_g2": fig9_W_g2,
    "fig10_W_g3": fig10_W_g3,
    "fig_dn_vs_W": fig_dn_vs_W,
    "conductance": conductance,
    "fig_g4_lines": fig_g4_lines,
    "fig_g4_crossing": fig_g4_crossing,
    "fig_g4_zero_lines": fig_g4_zero_lines,
    "fig_models_overlay": fig_models_overlay,
    "fig_intervals": fig_intervals,
}


def make_figures(an, outdir=None, names=None, log=print):
    """Write every figure the results contain as PNG and PDF, and its data as CSV.

    Returns
    -------
    written : list of Path (PNG, PDF and CSV files)
    skipped : dict name -> reason (the results lack the data)
    failed : dict name -> error (a bug or degenerate data; the other figures are still made)
    """
    outdir = Path(outdir) if outdir is not None else an.directory / "figures"
    outdir.mkdir(parents=True, exist_ok=True)
    written, skipped, failed = [], {}, {}
    for name in names or FIGURES:
        rec = FigureData()
        try:
            fig = FIGURES[name](an, rec)
        except Skip as why:
            skipped[name] = str(why)
            log(f"note: figure {name} skipped: {why}")
            continue
        except Exception as err:  # noqa: BLE001 - one broken figure must not cost the others
            plt.close("all")
            failed[name] = f"{type(err).__name__}: {err}"
            log(f"error: figure {name} failed: {failed[name]}")
            continue
        try:
            for ext in ("png", "pdf"):
                path = outdir / f"{name}.{ext}"
                fig.savefig(path, dpi=130 if ext == "png" else None)
                written.append(path)
            written.append(rec.write(outdir / f"{name}.csv"))
        finally:
            plt.close(fig)
    return written, skipped, failed
