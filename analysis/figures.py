"""The paper's figures from an `analysis.report.Analysis` (matplotlib, Agg; PNG and PDF).

One function per figure; each takes the analysis and returns the figure, or raises `Skip`
with the reason when the results lack its data. Every plot of data has jackknife error bars
and, dashed, the QSSEP prediction (`analysis.qssep.g`) at the fitted dn. The main-text
figures (2, 3, 4) use the cube runs at the W closest to 6 (the paper's W); the quasi-1d
figures (SM 5-7) and the W sweep (SM 8-10) use every W the results hold.

=====================  ===========================================================================
file (PNG and PDF)     content
=====================  ===========================================================================
fig2_u1_maps           |N_perp^-1 E Tr G_ab| and |N N_perp^-2 E Tr(G_aj G_jb)| (largest cube), rows
fig3a_g1               g1 versus x for every N, dashed: intercept + dn^(1) x (largest N)
fig3b_g2               g2 versus x at the largest N for several y, dashed: dn^(2) of that N
fig3c_g2_collapse      g2 versus x for y ~ 0.21, 0.59, every N, dashed: dn^(2) extrapolated
fig3d_g3_surface       g3(x, y, z) at the cut nearest z = 0.5: data, QSSEP at dn^(3), pulls
fig3e_g3_cut           g3(x, y ~ 0.78, z ~ 0.23) for every N, dashed: dn^(3) (largest N)
fig3f_g3_cut           g3(x, y ~ 0.23, z ~ 0.23)
fig4_m_scaling         m2 and |m3| versus N, one series per W, log-log, dashed: ~N
fig5_quasi1d           quasi-1d: g1 per Nx; m2/Nx^2 and |m3|/Nx^4 versus Nx per W, dashed: ~Nx
fig6_quasi1d_g2        quasi-1d g2 per W: collapse over Nx (y ~ 0.21, 0.59) / largest Nx, several y
fig7_quasi1d_g3        quasi-1d g3 per W at z ~ 0.21: y ~ 0.21 / y ~ 0.79
fig8_W_g1              cube g1 per W
fig9_W_g2              cube g2 per W (as fig6)
fig10_W_g3             cube g3 per W (as fig7)
fig_dn_vs_W            dn^(1), dn^(2) (extrapolated), dn^(3) versus W per geometry
conductance            <g> and the Fano factor versus size per W (dashed: Ohm's law, 1/3)
=====================  ===========================================================================
"""
from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from . import qssep  # noqa: E402
from .fits import g2_shape  # noqa: E402

__all__ = ["Skip", "FIGURES", "make_figures"]

MAIN_W = 6.0      # the paper's main-text disorder
QUASI1D_W = 4.0   # SM Fig. 5 (a)
DASH = dict(color="k", ls="--", lw=1.0)


class Skip(Exception):
    """The results lack this figure's data (the message says what is missing)."""


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


def _eb(ax, x, y, e, color, label=None, marker="o", **kw):
    ax.errorbar(x, y, yerr=e, color=color, marker=marker, ms=3.5, lw=1.2, capsize=2,
                label=label, **kw)


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


# --- Fig. 2 ---------------------------------------------------------------------------------------

def fig2_u1_maps(an):
    group = _main_group(an)
    r = group.largest
    if len(r.cut_slices) == 0:
        raise Skip("no cut slices")
    i, j = _nearest_cut(r, 0.4)  # the paper's j_x = 8 of N = 20
    a0 = _nearest(r.x, 0.75 if r.x[j] < 0.6 else 0.25)
    fig, axes = plt.subplots(1, 3, figsize=(14, 4.2))
    ext = [0, 1, 1, 0]
    for ax, data, title in ((axes[0], r.value["map1_abs"],
                             r"$|[G_{ij}]_\perp|$, $i_\perp = j_\perp$"),
                            (axes[1], r.value["map2_abs"][i],
                             rf"$N\,|[G_{{ij}} G_{{jk}}]_\perp|$, $j_x = {j}$")):
        im = ax.imshow(data, extent=ext, cmap="magma", interpolation="nearest")
        ax.set_xlabel(r"$y$ (second index)")
        ax.set_ylabel(r"$x$ (first index)")
        ax.set_title(title, fontsize=10)
        fig.colorbar(im, ax=ax, shrink=0.85)
    axes[1].axhline(r.x[j], color="w", lw=0.5, ls=":")
    axes[1].axvline(r.x[j], color="w", lw=0.5, ls=":")
    ax = axes[2]
    c1, c2 = _colors(2)
    _eb(ax, r.x, r.value["map1_abs"][a0], r.error["map1_abs"][a0], c1,
        label=rf"$|[G_{{ab}}]_\perp|$, $x_a = {r.x[a0]:.2f}$")
    _eb(ax, r.x, r.value["map2_abs"][i][a0], r.error["map2_abs"][i][a0], c2, marker="s",
        label=rf"$N |[G_{{aj}} G_{{jb}}]_\perp|$, $x_a = {r.x[a0]:.2f}$")
    # U(1) invariance: both vanish unless b = a; QSSEP gives the values at b = a.
    dn1, icpt = r.fit1.value["dn1"], r.fit1.value["intercept"]
    g2q = r.fit2.value["dn2"] ** 2 * g2_shape(r.x)[a0, j]
    grid = _grid()
    ax.plot(grid, np.zeros_like(grid), **DASH, label="QSSEP (zero unless $b = a$)")
    ax.plot([r.x[a0]], [abs(icpt + dn1 * r.x[a0])], marker="_", ms=14, mew=2, color=c1, ls="none")
    ax.plot([r.x[a0]], [g2q], marker="_", ms=14, mew=2, color=c2, ls="none")
    ax.vlines([r.x[a0]], 0, max(abs(icpt + dn1 * r.x[a0]), g2q), **{**DASH, "lw": 0.8})
    ax.set_xlabel(r"$x_b$")
    ax.set_title("rows through the maps", fontsize=10)
    ax.legend(fontsize=7)
    fig.suptitle(f"Fig. 2: U(1) invariance, cube N = {r.Nx}, W = {r.W:g}, {r.samples} samples")
    fig.tight_layout()
    return fig


# --- Fig. 3 ---------------------------------------------------------------------------------------

def _plot_g1(ax, group):
    cols = _colors(len(group.runs))
    for r, c in zip(group.runs, cols):
        _eb(ax, r.x, r.value["g1"], r.error["g1"], c, label=r.size_label)
    big = group.largest
    dn1, icpt = big.fit1.value["dn1"], big.fit1.value["intercept"]
    grid = _grid()
    ax.plot(grid, icpt + dn1 * grid, **DASH,
            label=rf"QSSEP, $\Delta n^{{(1)}} = {_fmt(dn1, big.fit1.error['dn1'])}$")
    ax.set_xlabel("$x$")
    ax.set_ylabel(_gname(group.geometry, 1))
    ax.legend(fontsize=7)


def fig3a_g1(an):
    group = _main_group(an)
    fig, ax = plt.subplots(figsize=(5.5, 4.2))
    _plot_g1(ax, group)
    ax.set_title(f"Fig. 3a: density, cube W = {group.W:g}")
    fig.tight_layout()
    return fig


def _plot_g2_rows(ax, r, ys, dn, dn_err, dn_label):
    """g2(x, y) versus x for the slices nearest the ys, one run; dashed QSSEP at dn."""
    idx = sorted({_nearest(r.x, y) for y in ys})
    cols = _colors(len(idx))
    grid = _grid()
    for b, c in zip(idx, cols):
        off = np.arange(len(r.x)) != b
        _eb(ax, r.x[off], r.value["g2"][off, b], r.error["g2"][off, b], c,
            label=f"$y = {r.x[b]:.2f}$")
        ax.errorbar(r.x[b], r.value["g2"][b, b], r.error["g2"][b, b], color=c, marker="o",
                    mfc="none", ms=4, ls="none")
        ax.plot(grid, _qssep_curve_g2(grid, r.x[b], dn), **DASH)
    ax.plot([], [], **DASH, label=rf"QSSEP, $\Delta n^{{(2)}}$ = {_fmt(dn, dn_err)} ({dn_label})")
    ax.set_xlabel("$x$")
    ax.set_ylabel(_gname(r.geometry, 2))
    ax.legend(fontsize=7, loc="upper right", framealpha=0.6)


def fig3b_g2(an):
    group = _main_group(an)
    r = group.largest
    fig, ax = plt.subplots(figsize=(5.5, 4.2))
    _plot_g2_rows(ax, r, (0.2, 0.4, 0.6, 0.8), r.fit2.value["dn2"], r.fit2.error["dn2"],
                  f"fit at {r.size_label}")
    ax.set_title(f"Fig. 3b: second cumulant, cube {r.size_label}, W = {r.W:g}\n"
                 "(open: $x = y$, not fitted)", fontsize=10)
    fig.tight_layout()
    return fig


def _plot_g2_collapse(ax, group, ys=(0.21, 0.59)):
    cols = _colors(len(group.runs))
    markers = "os^dv"
    grid = _grid()
    dn, dn_err = group.dn2_ext.value["dn2"], group.dn2_ext.error["dn2"]
    for k, y in enumerate(ys):
        for r, c in zip(group.runs, cols):
            b = _nearest(r.x, y)
            _eb(ax, r.x, r.value["g2"][:, b], r.error["g2"][:, b], c, marker=markers[k % 5],
                label=r.size_label if k == 0 else None)
        ax.plot(grid, _qssep_curve_g2(grid, y, dn), **DASH)
        ax.annotate(f"$y \\approx {y:g}$", (y, float(_qssep_curve_g2(y, y, dn))),
                    textcoords="offset points", xytext=(4, 6), fontsize=8)
    ax.plot([], [], **DASH, label=rf"QSSEP, $\Delta n^{{(2)}}_\infty$ = {_fmt(dn, dn_err)}")
    ax.set_xlabel("$x$")
    ax.set_ylabel(_gname(group.geometry, 2))
    ax.legend(fontsize=7)


def fig3c_g2_collapse(an):
    group = _main_group(an)
    fig, ax = plt.subplots(figsize=(5.5, 4.2))
    _plot_g2_collapse(ax, group)
    ax.set_title(f"Fig. 3c: g2 collapsed over N, cube W = {group.W:g}", fontsize=10)
    fig.tight_layout()
    return fig


def fig3d_g3_surface(an):
    group = _main_group(an)
    r = group.largest
    if len(r.cut_slices) == 0:
        raise Skip("no cut slices in the largest cube run")
    i, c = _nearest_cut(r, 0.525)
    dn3 = r.fit3.value["dn3"]
    xa, xb = np.meshgrid(r.x, r.x, indexing="ij")
    model = _qssep_curve_g3(xa, xb, r.x[c], dn3)
    data, err = r.value["g3"][i], r.error["g3"][i]
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
        pull = np.where(err > 0, (data - model) / err, np.nan)
    finite = np.abs(pull[np.isfinite(pull)])
    lim = max(float(np.percentile(finite, 90)), 1.0) if finite.size else 1.0  # a few tiny errors
    im = axes[2].imshow(pull, extent=ext, cmap="PuOr", vmin=-lim, vmax=lim, interpolation="nearest")
    axes[2].set_title("(data - QSSEP) / jackknife error (colors clipped)", fontsize=10)
    axes[2].set_xlabel("$y$")
    axes[2].set_ylabel("$x$")
    fig.colorbar(im, ax=axes[2], shrink=0.85, extend="both")
    fig.suptitle(f"Fig. 3d: third cumulant $g_3(x, y, z)$ at the cut $z = {r.x[c]:.3f}$ "
                 f"(slice {c}), W = {r.W:g}; dashed contours: QSSEP")
    fig.tight_layout()
    return fig


def _plot_g3_cut(ax, group, y, z):
    """Re g3(x, y, z) versus x for every size of a group; dashed: dn^(3) of the largest size."""
    cols = _colors(len(group.runs))
    used = []
    for r, col in zip(group.runs, cols):
        if len(r.cut_slices) == 0:
            continue
        i, c = _nearest_cut(r, z)
        b = _nearest(r.x, y)
        used.append((r.x[b], r.x[c]))
        _eb(ax, r.x, r.value["g3"][i][:, b], r.error["g3"][i][:, b], col,
            label=f"{r.size_label} ($y$={r.x[b]:.2f}, $z$={r.x[c]:.2f})")
    if not used:
        raise Skip(f"no cut slices in the {group.label} runs")
    big = group.largest
    dn3 = big.fit3.value["dn3"]
    grid = _grid()
    yq, zq = used[-1]
    ax.plot(grid, _qssep_curve_g3(grid, yq, zq, dn3), **DASH,
            label=rf"QSSEP, $\Delta n^{{(3)}} = {_fmt(dn3, big.fit3.error['dn3'])}$")
    ax.axhline(0, color="0.7", lw=0.5)
    ax.set_xlabel("$x$")
    ax.set_ylabel(_gname(group.geometry, 3))
    ax.legend(fontsize=6.5)


def _fig3_cut(an, y, letter):
    group = _main_group(an)
    fig, ax = plt.subplots(figsize=(5.5, 4.2))
    _plot_g3_cut(ax, group, y, 0.23)
    ax.set_title(f"Fig. 3{letter}: $g_3$ cut at $z \\approx 0.23$, $y \\approx {y:g}$, "
                 f"cube W = {group.W:g}", fontsize=10)
    fig.tight_layout()
    return fig


def fig3e_g3_cut(an):
    return _fig3_cut(an, 0.78, "e")


def fig3f_g3_cut(an):
    return _fig3_cut(an, 0.23, "f")


# --- Fig. 4 and SM Fig. 5 ---------------------------------------------------------------------

def _plot_m_scaling(ax, groups, key, scale_power, ylabel):
    """|m| * size^scale_power versus size per group (log-log), dashed ~size^slope."""
    cols = _colors(len(groups))
    any_points = False
    for g, col in zip(groups, cols):
        N = np.array(g.sizes, float)
        m = np.array([r.value[key] for r in g.runs]) * N ** scale_power
        e = np.array([r.error[key] for r in g.runs]) * N ** scale_power
        neg = m < 0
        fit = g.m2_fit if key == "m2" else g.m3_fit
        lab = f"W = {g.W:g}"
        if fit is not None:
            lab += f" (exp. {_fmt(fit.value['exponent'] + scale_power, fit.error['exponent'])})"
        ax.errorbar(N[~neg], np.abs(m[~neg]), e[~neg], color=col, marker="o", ms=4, capsize=2,
                    ls="-", label=lab)
        if neg.any():
            ax.errorbar(N[neg], np.abs(m[neg]), e[neg], color=col, marker="o", mfc="none", ms=5,
                        capsize=2, ls="none")
        ref = np.abs(m[-1]) if m[-1] != 0 else 1.0
        ax.plot(N, ref * N / N[-1], **DASH)
        any_points = True
    if not any_points:
        raise Skip("no data")
    ax.plot([], [], **DASH, label=r"QSSEP $\propto$ size")
    ax.plot([], [], marker="o", mfc="none", color="0.4", ls="none", label="negative value")
    ax.set_xscale("log")
    ax.set_yscale("log")
    _size_ticks(ax, [n for g in groups for n in g.sizes])
    ax.set_ylabel(ylabel)
    ax.legend(fontsize=7)


def fig4_m_scaling(an):
    groups = [g for g in an.groups_of("cube") if len(set(g.sizes)) >= 2]
    if not groups:
        raise Skip("no cube W with at least 2 sizes")
    fig, axes = plt.subplots(1, 2, figsize=(10, 4.2))
    _plot_m_scaling(axes[0], groups, "m2", 0, r"$m_2 = \sum_{ab} C_2(a,b)$")
    _plot_m_scaling(axes[1], groups, "m3", 0, r"$|m_3| = |\sum_{abc} C_3(a,b,c)|$")
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


def fig5_quasi1d(an):
    groups, (ny, nz) = _q1d_groups(an)
    fig, axes = plt.subplots(1, 3, figsize=(15, 4.2))
    g0 = min(groups, key=lambda g: abs(g.W - QUASI1D_W))
    _plot_g1(axes[0], g0)
    axes[0].set_title(f"(a) density, W = {g0.W:g}", fontsize=10)
    multi = [g for g in groups if len(set(g.sizes)) >= 2]
    if multi:
        _plot_m_scaling(axes[1], multi, "m2", -2, r"$m_2^{\mathrm{q1d}} = N_x^{-2} \sum C_2$")
        _plot_m_scaling(axes[2], multi, "m3", -4, r"$|m_3^{\mathrm{q1d}}| = N_x^{-4} |\sum C_3|$")
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

def _w_groups(an, geometry):
    if geometry == "quasi1d":
        groups, _ = _q1d_groups(an)
    else:
        groups = an.groups_of("cube")
    return groups


def _g2_grid(groups, title):
    n = len(groups)
    fig, axes = plt.subplots(2, n, figsize=(4.8 * n, 8), squeeze=False)
    for k, g in enumerate(groups):
        _plot_g2_collapse(axes[0, k], g)
        axes[0, k].set_title(f"W = {g.W:g}: collapse over sizes", fontsize=10)
        r = g.largest
        _plot_g2_rows(axes[1, k], r, (0.21, 0.4, 0.59, 0.8), r.fit2.value["dn2"],
                      r.fit2.error["dn2"], f"fit at {r.size_label}")
        axes[1, k].set_title(f"W = {g.W:g}, {r.size_label}", fontsize=10)
    fig.suptitle(title)
    fig.tight_layout()
    return fig


def _g3_grid(groups, title):
    n = len(groups)
    fig, axes = plt.subplots(2, n, figsize=(4.8 * n, 8), squeeze=False)
    for k, g in enumerate(groups):
        for row, y in enumerate((0.21, 0.79)):
            _plot_g3_cut(axes[row, k], g, y, 0.21)
            axes[row, k].set_title(f"W = {g.W:g}: $y \\approx {y:g}$, $z \\approx 0.21$", fontsize=10)
    fig.suptitle(title)
    fig.tight_layout()
    return fig


def fig6_quasi1d_g2(an):
    groups, (ny, nz) = _q1d_groups(an)
    return _g2_grid(groups, f"SM Fig. 6: quasi-1d second cumulant, Ny = {ny}, Nz = {nz}")


def fig7_quasi1d_g3(an):
    groups, (ny, nz) = _q1d_groups(an)
    return _g3_grid(groups, f"SM Fig. 7: quasi-1d third cumulant, Ny = {ny}, Nz = {nz}")


def _cube_sweep(an):
    groups = an.groups_of("cube")
    if len(groups) < 2:
        raise Skip(f"W sweep needs cube runs at 2 or more W (have {len(groups)})")
    return groups


def fig8_W_g1(an):
    groups = _cube_sweep(an)
    n = len(groups)
    fig, axes = plt.subplots(1, n, figsize=(4.8 * n, 4.2), squeeze=False)
    for ax, g in zip(axes[0], groups):
        _plot_g1(ax, g)
        ax.set_title(f"W = {g.W:g}", fontsize=10)
    fig.suptitle("SM Fig. 8: density in the cube for several W")
    fig.tight_layout()
    return fig


def fig9_W_g2(an):
    return _g2_grid(_cube_sweep(an), "SM Fig. 9: second cumulant in the cube for several W")


def fig10_W_g3(an):
    return _g3_grid(_cube_sweep(an), "SM Fig. 10: third cumulant in the cube for several W")


def fig_dn_vs_W(an):
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
        d3 = np.array([[g.largest.fit3.value["dn3"], g.largest.fit3.error["dn3"]] for g in groups])
        cols = _colors(3)
        ax.plot(W, d1[:, 0], **DASH, label=r"QSSEP: all orders equal $\Delta n^{(1)}$")
        _eb(ax, W, d1[:, 0], d1[:, 1], cols[0], label=r"$\Delta n^{(1)}$ (largest size)", ls="none")
        _eb(ax, W + 0.03, d2[:, 0], d2[:, 1], cols[1], marker="s", ls="none",
            label=r"$\Delta n^{(2)}$ (extrapolated)")
        d2s = np.array([[g.largest.fit2.value["dn2"], g.largest.fit2.error["dn2"]] for g in groups])
        _eb(ax, W + 0.03, d2s[:, 0], d2s[:, 1], cols[1], marker="s", mfc="none", ls="none",
            label=r"$\Delta n^{(2)}$ (largest size)")
        _eb(ax, W + 0.06, d3[:, 0], d3[:, 1], cols[2], marker="^", ls="none",
            label=r"$\Delta n^{(3)}$ (largest size)")
        ax.axhline(0, color="0.7", lw=0.5)
        ax.set_xlabel("$W$")
        ax.set_ylabel(r"$\Delta n$")
        ax.set_title(geometry, fontsize=10)
        ax.legend(fontsize=7)
    fig.suptitle(r"SM Figs. 8-10: fitted $\Delta n$ per order versus disorder")
    fig.tight_layout()
    return fig


def conductance(an):
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
            lab = f"W = {g.W:g}" + ("" if geo == "cube" else f" (Ny={g.Ny}, Nz={g.Nz})")
            _eb(ax_g, N, v, e, col, label=lab)
            _eb(ax_f, N, f, fe, col, label=lab)
            # Ohm's law: g = sigma N (cube, cross-section N^2 over length N) or sigma / Nx
            shape = N if geo == "cube" else 1.0 / N
            w = 1.0 / np.maximum(e, 1e-12) ** 2
            sigma = np.sum(w * v * shape) / np.sum(w * shape * shape)
            grid = np.linspace(N.min(), N.max(), 50)
            ax_g.plot(grid, sigma * (grid if geo == "cube" else 1.0 / grid), **DASH)
        ax_g.plot([], [], **DASH, label="Ohm's law" + (r" $\propto N$" if geo == "cube" else r" $\propto 1/N_x$"))
        ax_f.axhline(1 / 3, **DASH, label="diffusive 1/3")
        ax_g.set_ylabel(r"$\langle g \rangle$")
        ax_f.set_ylabel("Fano factor")
        for ax in (ax_g, ax_f):
            ax.set_xlabel("$N$" if geo == "cube" else "$N_x$")
            ax.legend(fontsize=7)
            ax.set_title(geo, fontsize=10)
    fig.suptitle(r"Conductance $\langle \mathrm{Tr}\, t^\dagger t \rangle$ (right incomers at $E_+$) "
                 "and Fano factor versus size")
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
}


def make_figures(an, outdir=None, names=None, log=print):
    """Write every figure the results contain as PNG and PDF.

    Returns
    -------
    written : list of Path
    skipped : dict name -> reason (the results lack the data)
    failed : dict name -> error (a bug or degenerate data; the other figures are still made)
    """
    outdir = Path(outdir) if outdir is not None else an.directory / "figures"
    outdir.mkdir(parents=True, exist_ok=True)
    written, skipped, failed = [], {}, {}
    for name in names or FIGURES:
        try:
            fig = FIGURES[name](an)
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
        finally:
            plt.close(fig)
    return written, skipped, failed
