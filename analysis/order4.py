"""Fourth order on cut pairs: the QSSEP comparison and two figures.

The estimates themselves, C4 and the rescaled g4 with errors, come from
`analysis.estimators.run_estimates`; the fits, free against classical, are
`analysis.free_classical`.

* `g4_shape_on_pair`: ``g4^Q(x_a, x_b, x_c, x_d; dn = 1)`` for all (a, b) (paper eq. (6) at n = 4,
  arguments in the cyclic order of ``E[G_ab G_bc G_cd G_da]^c``; `analysis.qssep.g`).
* Figures (matplotlib Agg; functions of arrays, not of the report object):
  `fig_g4_lines` (g4 along lines of a cut pair for every size, dashed QSSEP, as fig3e does for
  g3) and `fig_crossing_map` (maps of g4, of the crossing term and of their ratio).

Pure numpy/matplotlib; no MPI, no files (figures are returned, not saved).
"""
from __future__ import annotations

import numpy as np

from . import qssep

__all__ = ["g4_shape_on_pair", "qssep_g4", "fig_g4_lines", "fig_crossing_map"]


def g4_shape_on_pair(x, c, d):
    """``g4^Q(x_a, x_b, x_c, x_d; dn = 1)`` for all (a, b): (Nx, Nx)."""
    x = np.asarray(x, float)
    pts = np.stack(np.broadcast_arrays(x[:, None], x[None, :], x[c], x[d]), axis=-1)
    return qssep.g(4, pts, 1.0)


def qssep_g4(points, dn4):
    """QSSEP's g4 at the fitted *signed* dn^(4): ``sign(dn4) |dn4|^4 g4^Q(.; 1)``.

    `analysis.free_classical` fits ``Re g4 = t g4^Q(.; 1)`` with any sign of t and reports the signed fourth
    root; the curve it stands for is ``t g4^Q``, which ``qssep.g(4, ., dn4)`` (even in dn)
    would give with the wrong sign for t < 0.
    """
    return float(np.sign(dn4) * abs(dn4) ** 4) * qssep.g(4, points, 1.0)


# --- figures -------------------------------------------------------------------------------------

def _plt():
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    return plt


def _distinct(nx, c, d):
    a, b = np.meshgrid(np.arange(nx), np.arange(nx), indexing="ij")
    return (a != b) & (a != c) & (a != d) & (b != c) & (b != d) & (c != d)


def _nearest(x, target):
    return int(np.argmin(np.abs(np.asarray(x) - target)))


def fig_g4_lines(series, ys=(0.5,), dn4=np.nan, dn4_err=np.nan, title=None, ylabel="$g_4$"):
    """g4(x, y, z_c, z_d) versus x along lines of one cut pair, one panel per y.

    Parameters
    ----------
    series : list of dict
        One per run (size), each with ``label``, ``x`` (Nx,), ``g4`` and ``err`` (Nx, Nx): the
        run's rescaled ``Re g4`` and its error for this cut pair (``est.value["g4"][i]``), and
        ``c``, ``d``: the pair's slices in that run.
    ys : floats
        Target y of each panel; each run uses its slice nearest to y.
    dn4, dn4_err : float
        QSSEP curve (dashed) at this dn^(4), drawn at the (y, z_c, z_d) of the last series
        (the largest size, by convention); nan: no curve.

    Returns
    -------
    matplotlib.figure.Figure
    """
    plt = _plt()
    fig, axes = plt.subplots(1, len(ys), figsize=(5.2 * len(ys), 4.2), squeeze=False)
    cmap = plt.get_cmap("viridis")
    colors = [cmap(v) for v in np.linspace(0.1, 0.85, max(len(series), 1))]
    grid = np.linspace(0.0, 1.0, 201)
    for ax, y in zip(axes[0], ys):
        last = None
        for run, col in zip(series, colors):
            x = np.asarray(run["x"], float)
            c, d = int(run["c"]), int(run["d"])
            b = _nearest(x, y)
            keep = np.array([a not in (b, c, d) for a in range(len(x))]) & (b not in (c, d))
            ax.errorbar(x[keep], np.asarray(run["g4"])[keep, b], yerr=np.asarray(run["err"])[keep, b],
                        color=col, marker="o", ms=3.5, lw=1.2, capsize=2,
                        label=f"{run['label']} ($y$={x[b]:.2f}, $z$=({x[c]:.2f}, {x[d]:.2f}))")
            last = (x[b], x[c], x[d])
        if last is not None and np.isfinite(dn4):
            pts = np.stack(np.broadcast_arrays(grid, *last), axis=-1)
            lab = rf"QSSEP, $\Delta n^{{(4)}} = {dn4:.3g}$"
            lab += f" ± {dn4_err:.2g}" if np.isfinite(dn4_err) else ""
            ax.plot(grid, qssep_g4(pts, float(dn4)), color="k", ls="--", lw=1.0, label=lab)
        ax.axhline(0, color="0.7", lw=0.5)
        ax.set_xlabel("$x$")
        ax.set_ylabel(ylabel)
        ax.set_title(f"$y \\approx {y:g}$", fontsize=10)
        ax.legend(fontsize=6.5)
    fig.suptitle(title or "fourth cumulant along lines of a cut pair (coinciding slices omitted)",
                 fontsize=10)
    fig.tight_layout()
    return fig


def fig_crossing_map(x, g4, g4_cross, c, d, dn4=np.nan, title=None):
    """Maps over (a, b) of Re g4, of the crossing term and of their ratio, for one cut pair.

    Parameters
    ----------
    x : (Nx,)
    g4, g4_cross : (Nx, Nx)
        Rescaled ``Re C4`` and ``Re C4_cross`` of the pair (the crossing moment product, which
        C4 contains with weight -1).
    c, d : int
        The pair's slices (marked by dotted lines).
    dn4 : float
        If finite, QSSEP's g4 at this dn is drawn as dashed contours on the g4 map.

    Returns
    -------
    matplotlib.figure.Figure
    """
    plt = _plt()
    x = np.asarray(x, float)
    g4, g4_cross = np.asarray(g4, float), np.asarray(g4_cross, float)
    nx = len(x)
    h = 0.5 / nx
    ext = [x[0] - h, x[-1] + h, x[-1] + h, x[0] - h]
    fig, axes = plt.subplots(1, 3, figsize=(14, 4.2))
    for ax, arr, name in ((axes[0], g4, "$g_4$ (all 15 partitions)"),
                          (axes[1], g4_cross, "crossing term {13}{24} (own scale)")):
        vmax = float(np.nanmax(np.abs(arr))) or 1.0  # each its own scale: the crossing is tiny
        im = ax.imshow(arr, extent=ext, cmap="RdBu_r", vmin=-vmax, vmax=vmax, interpolation="nearest")
        fig.colorbar(im, ax=ax, shrink=0.85)
        ax.set_title(name, fontsize=10)
    if np.isfinite(dn4):
        axes[0].contour(x, x, qssep_g4(np.stack(np.broadcast_arrays(
            x[:, None], x[None, :], x[c], x[d]), axis=-1), float(dn4)),
            levels=7, colors="k", linestyles="dashed", linewidths=0.6)
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = np.where(_distinct(nx, c, d), g4_cross / np.abs(g4), np.nan)
    finite = np.abs(ratio[np.isfinite(ratio)])
    lim = max(float(np.percentile(finite, 90)), 1e-3) if finite.size else 1.0
    im = axes[2].imshow(ratio, extent=ext, cmap="PuOr", vmin=-lim, vmax=lim, interpolation="nearest")
    fig.colorbar(im, ax=axes[2], shrink=0.85, extend="both")
    axes[2].set_title("crossing / |g4| at distinct slices: U(1) makes it vanish for any ensemble,\n"
                      "free or classical (a contact diagnostic, not a freeness test; colors clipped)",
                      fontsize=8)
    for ax in axes:
        ax.set_xlabel("$y$ (slice b)")
        ax.set_ylabel("$x$ (slice a)")
        for z in (x[c], x[d]):
            ax.axhline(z, color="k", lw=0.5, ls=":")
            ax.axvline(z, color="k", lw=0.5, ls=":")
    fig.suptitle(title or f"fourth order at the cut pair $z = ({x[c]:.2f}, {x[d]:.2f})$", fontsize=10)
    fig.tight_layout()
    return fig
