"""A results directory -> estimates, fits, ``summary.json`` and the printed table.

`analyze` opens the runs (`analysis.io.discover`), fixes the fit window (command line, else
the ``[analysis]`` table of the stored job files, else K = D = 0), computes every run's
estimators with the jackknife (`analysis.estimators.run_estimates`), the per-run fits at the
window and on the sensitivity grid (`analysis.fits.run_fits`), and the fits across the runs of
one geometry and W (`analysis.fits.group_fits`: N -> infinity of every order; exponents of m2,
m3 and of the parts of m3; Ohm's law and the mean free path, `analysis.transport`), and
collects them in an `Analysis` that the figures and the comparison table also use.
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from . import fits, free_classical, intervals, transport
from .estimators import run_estimates
from .io import ESTIMATES_FILE, ResultsError, RunFields, discover
from .windows import GRID, Window, WindowError, options_from_job_toml

__all__ = ["RunResult", "Group", "Analysis", "analyze", "resolve_window", "format_table",
           "write_summary", "build_summary"]

# QSSEP's size scaling of m_n = sum C_n: ~N in the cube; ~Nx^(2n-1) in quasi-1d (g_n = C_n Nx^(n-1)
# summed over Nx^n points). For m3 QSSEP's O(N) coefficient vanishes (int g3^Q = 0, docs/theory.md §8).
QSSEP_EXPONENTS = {"cube": {"m2": 1.0, "m3": 1.0}, "quasi1d": {"m2": 3.0, "m3": 5.0},
                   "chain": {"m2": 1.0, "m3": 1.0}}
M3_PARTS = ("m3_distinct", "m3_coinciding")


@dataclass
class RunResult(RunFields):
    """One run's estimates (`Replicated` dict) and fits, plus its configuration."""

    path: Path
    run: dict
    samples: int
    samples_planned: int
    blocks_done: int
    n_blocks: int
    complete: bool
    x: np.ndarray
    cut_slices: np.ndarray
    cut_fractions: np.ndarray
    est: object
    value: dict
    error: dict
    window: Window
    fits: dict  # analysis.fits.run_fits
    n_open: int  # open channels at E+ (those of the conductance)
    n_open_both: tuple = ()  # open channels at E+ and E- (/layout/n_open)
    pair_slices: np.ndarray = field(default_factory=lambda: np.zeros((0, 2), np.int64))
    interval_lengths: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))

    @property
    def has_order4(self):
        return len(self.pair_slices) > 0

    @property
    def has_intervals(self):
        return len(self.interval_lengths) > 0

    @property
    def fit1(self):
        return self.fits["dn1"]

    @property
    def fit2(self):
        return self.fits["dn2"]

    @property
    def fit3(self):
        return self.fits["dn3"]

    @property
    def has_m3_split(self):
        return "m3_distinct" in self.value

    @property
    def n_perp(self):
        return self.Ny * self.Nz

    @property
    def size_label(self):
        return f"N = {self.Nx}" if self.geometry in ("cube", "chain") else f"Nx = {self.Nx}"


@dataclass
class Group:
    """Runs of one model, geometry (and transverse size for quasi-1d) and one W (the stochastic
    models: one D or gamma), sorted by Nx."""

    model: str
    geometry: str
    parameter: tuple  # (name, value): ("W", 6.0), ("D", 1.0), ("gamma", 4.0)
    Ny: int | None
    Nz: int | None
    runs: list
    fits: dict = None  # analysis.fits.group_fits
    m_fits: dict = field(default_factory=dict)  # "m2", "m3", "m3_distinct", ... -> Replicated
    ohm: object = None  # Replicated of analysis.transport.fit_ohm
    notes: list = field(default_factory=list)

    @property
    def sizes(self):
        return [r.Nx for r in self.runs]

    @property
    def largest(self):
        return self.runs[-1]

    @property
    def dn2_ext(self):
        return self.fits["dn2_extrapolated"]

    @property
    def W(self):
        """The disorder strength of an Anderson group (None for the stochastic models)."""
        return self.parameter[1] if self.model == "anderson" else None

    @property
    def has_leads(self):
        return self.model == "anderson"

    @property
    def label(self):
        name, value = self.parameter
        prefix = "" if self.model == "anderson" else f"{self.model} "
        if self.geometry in ("cube", "chain"):
            return f"{prefix}{self.geometry} {name}={value:g}"
        return f"{prefix}quasi1d Ny={self.Ny} Nz={self.Nz} {name}={value:g}"


@dataclass
class Analysis:
    directory: Path
    runs: list
    groups: list
    notes: list
    window: Window = Window()
    window_source: str = "defaults"
    summary: dict = None
    sources: list = field(default_factory=list)  # the result directories analysed

    def groups_of(self, geometry, model="anderson"):
        return [g for g in self.groups if g.geometry == geometry and g.model == model]


def _num(v):
    """JSON-safe float (nan/inf/None -> None)."""
    if v is None:
        return None
    v = float(np.real(v))
    return v if math.isfinite(v) else None


# --- the window -------------------------------------------------------------------------------

def resolve_window(datas, drop_slices=None, drop_diagonal=None):
    """The fit window: command-line values, else the ``[analysis]`` table of the stored job
    files (``RunData.job_toml``; every run that sets a key must agree), else 0.

    Returns ``(Window, source)``; raises `ResultsError` (one line) on bad or conflicting values.
    """
    cli = {"drop_slices": drop_slices, "drop_diagonal": drop_diagonal}
    stored = {}
    for d in datas:
        try:
            opts = options_from_job_toml(getattr(d, "job_toml", "") or "")
        except WindowError as err:
            raise ResultsError(f"{d.path}: {err}") from None
        for key, value in opts.items():
            stored.setdefault(key, {}).setdefault(value, []).append(d.path.name)
    chosen, sources = {}, []
    for key in ("drop_slices", "drop_diagonal"):
        if cli[key] is not None:
            chosen[key] = cli[key]
            sources.append(f"{key} = {cli[key]} (command line)")
        elif key in stored:
            if len(stored[key]) > 1:
                which = "; ".join(f"{v} in {', '.join(files)}" for v, files in stored[key].items())
                raise ResultsError(f"the job files' [analysis] tables disagree on {key} ({which}); "
                                   f"choose one with --{key.replace('_', '-')}")
            (value,) = stored[key]
            chosen[key] = value
            sources.append(f"{key} = {value} (job file [analysis] table)")
        else:
            chosen[key] = 0
            sources.append(f"{key} = 0 (default)")
    try:
        window = Window(**chosen)
    except WindowError as err:
        raise ResultsError(str(err)) from None
    return window, "; ".join(sources)


# --- runs and groups ----------------------------------------------------------------------------

def _analyze_run(data, window):
    est = run_estimates(data)
    run_fits = fits.run_fits(est, data.x, data.cut_slices, len(data.done), window, GRID)
    if data.model != "anderson":  # the stochastic models: D from the mean profile
        run_fits["D_profile"] = est["C1"].map(lambda c1: diffusion_from_profile(c1, data.run))
    if len(data.pair_slices):  # fourth order: free against classical (docs/theory.md §7.3)
        run_fits["g4"] = free_classical.run_g4_fits(est, data.x, data.pair_slices, window, GRID)
        run_fits["dn4"] = run_fits["g4"]["free"]
    if len(data.interval_lengths):  # m_n(x) against I_n(x) (docs/theory.md §8)
        run_fits["intervals"] = intervals.run_interval_fits(est, data.geometry, data.Nx,
                                                            data.interval_lengths)
    return RunResult(path=data.path, run=data.run, samples=data.samples,
                     samples_planned=data.samples_planned, blocks_done=len(data.done),
                     n_blocks=data.n_blocks, complete=data.complete, x=data.x,
                     cut_slices=data.cut_slices, cut_fractions=data.cut_fractions, est=est,
                     value=est.value, error=est.error, window=window, fits=run_fits,
                     n_open=int(data.n_open[0]) if data.n_open else 0,
                     n_open_both=tuple(data.n_open), pair_slices=data.pair_slices,
                     interval_lengths=data.interval_lengths)


def diffusion_from_profile(c1, run):
    """The diffusion constant of a driven chain from its mean profile (docs/theory.md §12.2).

    The stationary profile is ``n_i = n_L + dn (i + a)/L``, ``L = N - 1 + a + b``, ``a = D/r_L``,
    ``b = D/r_R`` (r the boundary rates ``alpha + beta``): the OLS slope ``beta`` of ``C1(i)`` gives
    ``L = dn/beta`` and ``D = (L - (N - 1)) / (1/r_L + 1/r_R)``. Exact for QSSEP (``D``) and for the
    dephasing model at large gamma (``2 t^2 / gamma``); at finite gamma it defines D(gamma).
    """
    c1 = np.asarray(c1, float)
    n = len(c1)
    rate = run["boundary_rate"]
    r_left, r_right = (rate, rate) if np.isscalar(rate) else rate
    slope = np.polyfit(np.arange(n), c1, 1)[0]
    dn = float(run["n_right"]) - float(run["n_left"])
    D = (dn / slope - (n - 1)) / (1.0 / r_left + 1.0 / r_right) if slope != 0 else np.nan
    return {"D": D, "slope": slope}


def expected_diffusion(run):
    """QSSEP's D, or the dephasing model's large-gamma value ``2 t^2 / gamma`` (None: Anderson)."""
    if run.get("model") == "qssep":
        return float(run["D"])
    if run.get("model") == "dephasing":
        t = run["hopping"][0]
        return 2 * t * t / float(run["gamma"]) if float(run["gamma"]) > 0 else None
    return None


def _group_key(r):
    transverse = (0, 0) if r.geometry in ("cube", "chain") else (r.Ny, r.Nz)
    rest = tuple(json.dumps(r.run.get(k), sort_keys=True) for k in (
        "hopping", "e_plus", "e_minus", "n_left", "n_right", "boundary_rate", "dt"))
    return (r.model, r.geometry, r.parameter) + transverse + rest


def _numeric_order(key):
    """Group keys in numeric order of their parameter (gamma = 3.4 before 20)."""
    flat = [w for v in key for w in (v if isinstance(v, tuple) else (v,))]
    return tuple((0, float(v), "") if isinstance(v, (int, float)) and not isinstance(v, bool)
                 else (1, 0.0, str(v)) for v in flat)


def _make_group(key, runs, window):
    runs.sort(key=lambda r: (r.Nx, str(r.path)))
    transverse = (None, None) if key[1] in ("cube", "chain") else (key[3], key[4])
    grp = Group(model=key[0], geometry=key[1], parameter=key[2], Ny=transverse[0], Nz=transverse[1],
                runs=runs)
    sizes = sorted(set(grp.sizes))
    if len(sizes) != len(runs):
        grp.notes.append(f"{grp.label}: several runs share a size; all enter the joint fits")
    members = [(r.Nx, r.x, r.est, r.fits) for r in runs]
    grp.fits = fits.group_fits(members, window, GRID)
    if len(sizes) < 3:
        what = "beta only (gamma = 0)" if len(sizes) == 2 else "no correction (beta = gamma = 0)"
        grp.notes.append(f"{grp.label}: {len(sizes)} size(s): the N -> infinity ansatz of dn^(2) "
                         f"has {what}")
    n_series = fits.series_n_params(len(sizes))
    if n_series < 3:
        what = {1: "no extrapolation (one size: the value itself)",
                2: "a + b/N (c/N^2 needs 4 sizes)"}[n_series]
        grp.notes.append(f"{grp.label}: {len(sizes)} size(s): dn^(n)(N) -> N = infinity by {what}")
    if len(sizes) >= 2:
        for key_m in ("m2", "m3") + M3_PARTS:
            if all(key_m in r.value for r in runs):
                grp.m_fits[key_m] = fits.jk_fit_power_law([(r.Nx, r.est[key_m]) for r in runs])
    else:
        grp.notes.append(f"{grp.label}: one size: no m2/m3 exponents")
    if any(r.has_m3_split for r in runs) and not all(r.has_m3_split for r in runs):
        grp.notes.append(f"{grp.label}: only some runs hold the m3 split fields: no exponents of "
                         "its parts")
    no_line = [r.size_label for r in runs if r.fits["dn3_line"] is None]
    if no_line:
        grp.notes.append(f"{grp.label}: no cut within max(0.1, 1/N) of z = 0.23 at "
                         f"{', '.join(no_line)}: no single-line dn^(3) (the paper's procedure)")
    if grp.has_leads:
        grp.ohm = transport.jk_fit_ohm(grp.geometry, [(r.Nx, r.n_perp, r.n_open, r.est["conductance"])
                                                      for r in runs])
        if len(sizes) < 2:
            grp.notes.append(f"{grp.label}: one size: conductivity from g / N (no contact term)")
    return grp


def _make_groups(results, notes, window):
    by_key = {}
    for r in results:
        by_key.setdefault(_group_key(r), []).append(r)
    groups = []
    for key, runs in sorted(by_key.items(), key=lambda kv: _numeric_order(kv[0])):
        grp = _make_group(key, runs, window)
        notes.extend(grp.notes)
        groups.append(grp)
    return groups


def analyze(directory, allow_incomplete=False, drop_slices=None, drop_diagonal=None, out=None):
    """Estimates and fits of every usable run in ``directory`` (raises `ResultsError`).

    ``directory`` may be a list of result directories, analysed together (e.g. an Anderson job
    and a simulated QSSEP job, for the figures that set them side by side); the outputs go to
    ``out`` (default: the first directory). ``drop_slices`` / ``drop_diagonal`` (K, D) override
    the job files' ``[analysis]`` table.
    """
    directories = [directory] if isinstance(directory, (str, Path)) else list(directory)
    datas, notes = [], []
    try:
        for d in directories:
            found, why = discover(d, allow_incomplete=allow_incomplete)
            datas += found
            notes += why
    except ResultsError:
        for data in datas:
            data.close()
        raise
    results = []
    try:
        window, source = resolve_window(datas, drop_slices, drop_diagonal)
        for data in datas:
            results.append(_analyze_run(data, window))
    finally:
        for data in datas:
            data.close()
    groups = _make_groups(results, notes, window)
    # runs in the order of their groups (numeric parameter), then by size
    results.sort(key=lambda r: (_numeric_order(_group_key(r)), r.Nx, str(r.path)))
    an = Analysis(directory=Path(out if out is not None else directories[0]), runs=results,
                  groups=groups, notes=notes, window=window, window_source=source,
                  sources=[str(d) for d in directories])
    an.summary = build_summary(an)
    return an


# --- summary.json ---------------------------------------------------------------------------------

def _pair(rep, key, name=None):
    """``{name: value, name_err: error}`` of one leaf of a Replicated dict."""
    name = name or key
    return {name: _num(rep.value[key]), f"{name}_err": _num(rep.error[key])}


def _chi2_keys(name, chi2):
    return {f"{name}_chi2_corr": _num(chi2["chi2"]), f"{name}_chi2_corr_dof": _num(chi2["dof"]),
            f"{name}_chi2_corr_p": _num(chi2["p_value"]), f"{name}_chi2_corr_note": chi2["note"]}


def _range(values):
    vals = [v for v in values if v is not None]
    return [min(vals), max(vals)] if vals else None


def run_summary(r):
    """The summary.json object of one run."""
    f = r.fits
    out = {"file": r.path.name, "model": r.model, "geometry": r.geometry}
    if r.geometry in ("cube", "chain"):
        out["N"] = r.Nx
    out.update({"Nx": r.Nx, "Ny": r.Ny, "Nz": r.Nz, "W": r.W, r.parameter[0]: r.parameter[1],
                "samples": r.samples,
                "samples_planned": r.samples_planned, "blocks": r.blocks_done,
                "complete": r.complete, "window": r.window.as_dict(),
                "hopping": list(r.run.get("hopping") or ()), "n_open": list(r.n_open_both)})
    # headline fits (OLS over the window) with their secondary inverse-variance values
    out.update(_pair(f["dn1"], "dn1"))
    out.update(_pair(f["dn1"], "intercept"))
    out.update(_pair(f["dn1"], "dn1_wls"))
    out.update(_pair(f["dn1"], "intercept_wls"))
    out["dn1_rel_residual"] = _num(f["dn1"].full["rel_residual"])
    out["dn1_n_points"] = int(f["dn1"].full["n_points"])
    out.update(_chi2_keys("dn1", f["chi2"]["dn1"]))
    for key in ("m2", "m3") + M3_PARTS + ("c3_sum_aac", "c3_sum_aaa", "conductance",
                                           "conductance_var", "fano"):
        if key in r.value:
            out[key] = _num(r.value[key])
            out[f"{key}_err"] = _num(r.error[key])
    out.update(_pair(f["dn2"], "dn2"))
    out.update(_pair(f["dn2"], "dn2_wls"))
    out["dn2_rel_residual"] = _num(f["dn2"].full["rel_residual"])
    out["dn2_n_points"] = int(f["dn2"].full["n_points"])
    out.update(_chi2_keys("dn2", f["chi2"]["dn2"]))
    out.update(_pair(f["dn3"], "dn3"))
    out.update(_pair(f["dn3"], "dn3_wls"))
    out["dn3_rel_residual"] = _num(f["dn3"].full["rel_residual"])
    out["dn3_n_points"] = int(f["dn3"].full["n_points"])
    out.update(_chi2_keys("dn3", f["chi2"]["dn3"]))
    if f["dn3_line"] is not None:
        i, b = f["line"]
        out.update(_pair(f["dn3_line"], "dn3", "dn3_line"))
        out["dn3_line_rel_residual"] = _num(f["dn3_line"].full["rel_residual"])
        out["dn3_line_n_points"] = int(f["dn3_line"].full["n_points"])
        out["dn3_line_y"] = _num(r.x[b])
        out["dn3_line_z"] = _num(r.x[r.cut_slices[i]])
        out.update(_chi2_keys("dn3_line", f["chi2"]["dn3_line"]))
    else:
        out.update({"dn3_line": None, "dn3_line_err": None})
    grid = []
    for w, g in f["grid"].items():
        row = w.as_dict()
        for name in ("dn1", "dn2", "dn3"):
            row.update(_pair(g[name], name))
            row[f"{name}_n_points"] = int(g[name].full["n_points"])
        grid.append(row)
    out["window_grid"] = grid
    for name in ("dn1", "dn2", "dn3"):
        out[f"{name}_window_range"] = _range([row[name] for row in grid])
    real = np.abs(r.value["C3"]).max() if np.size(r.value["C3"]) else 0.0
    out["c3_imag_ratio"] = _num(np.abs(r.value["C3_imag"]).max() / real) if real > 0 else None
    out["cut_slices"] = [int(c) for c in r.cut_slices]
    out["cut_x"] = [_num(r.x[c]) for c in r.cut_slices]
    if "D_profile" in f:
        out.update(_pair(f["D_profile"], "D", "D_profile"))
        out["D_expected"] = _num(expected_diffusion(r.run))
        out["D_expected_note"] = ("QSSEP: the bulk rate D" if r.model == "qssep" else
                                  "dephasing: 2 t^2 / gamma, its large-gamma (QSSEP) limit")
    if r.has_order4:
        g4 = f["g4"]
        out.update(_pair(g4["free"], "dn4"))
        out["dn4_rel_residual"] = _num(g4["free"].full["rel_residual"])
        out["dn4_n_points"] = int(g4["free"].full["n_points"])
        out.update(_pair(g4["classical"], "dn4", "dn4_classical"))
        out["dn4_classical_rel_residual"] = _num(g4["classical"].full["rel_residual"])
        out.update(_pair(g4["asymmetry"], "ratio", "g4_asymmetry_ratio"))
        out.update(_pair(g4["asymmetry"], "ratio_sym", "g4_asymmetry_ratio_sym"))
        out["g4_asymmetry_n_pairs"] = int(g4["asymmetry"].full["n_asym"])
        rows, ranges = free_classical.g4_window_rows(g4)
        out["g4_window_grid"] = rows
        out.update(ranges)
        for key in ("cross_ratio", "free_ratio"):
            out[f"c4_{key}"] = [_num(v) for v in np.atleast_1d(r.value[key])]
            out[f"c4_{key}_err"] = [_num(v) for v in np.atleast_1d(r.error[key])]
        out["c4_cross_ratio_by_separation"] = [[_num(v) for v in row] for row in r.value["cross_ratio_by_separation"]]
        out["c4_cross_ratio_by_separation_err"] = [[_num(v) for v in row]
                                                   for row in r.error["cross_ratio_by_separation"]]
        out["pair_slices"] = [[int(c), int(d)] for c, d in r.pair_slices]
        out["pair_x"] = [[_num(r.x[c]), _num(r.x[d])] for c, d in r.pair_slices]
    if r.has_intervals:
        out["intervals"] = interval_summary(r)
    return out


def interval_summary(r):
    """The interval sums of one run: m_n(x) (total, distinct, coinciding; divided by
    `analysis.intervals.interval_scale`) with jackknife errors, the shape fits of the distinct
    parts, the zeros of m4(x) and the sign of m3(x)."""
    lengths = np.asarray(r.interval_lengths, np.int64)
    x = lengths / float(r.Nx)
    out = {"x": [_num(v) for v in x], "lengths": [int(L) for L in lengths],
           "scale_note": "m_n(x) / N (cube, chain) or / Nx^(2n-1) (quasi-1d), -> I_n(x)"}
    for n in (2, 3, 4):
        scale = intervals.interval_scale(r.geometry, r.Nx, n)
        for part in ("", "_distinct", "_coinciding"):
            key = f"iv_m{n}{part}"
            out[f"m{n}{part}"] = [_num(v) for v in np.asarray(r.value[key]) / scale]
            out[f"m{n}{part}_err"] = [_num(v) for v in np.asarray(r.error[key]) / scale]
    f = r.fits["intervals"]
    for n, kind in intervals.INTERVAL_FIT_ORDERS:
        fit = f[f"m{n}_{kind}"]
        name = f"dn{n}_{kind}"
        out[name], out[name + "_err"] = _num(fit.value["dn"]), _num(fit.error["dn"])
        out[name + "_rel_residual"] = _num(fit.full["rel_residual"])
    for key in ("m4_zero", "m4_distinct_zero"):
        out[key] = _num(f[key].value["x0"])
        out[key + "_err"] = _num(f[key].error["x0"])
        out[key + "_crossings"] = int(f[key].full["n_crossings"])
    out["zero_free"] = _num(intervals.INTERVAL_ZEROS["free"])
    out["zero_classical"] = _num(intervals.INTERVAL_ZEROS["classical"])
    sign = intervals.m3_sign(x, np.asarray(r.value["iv_m3_distinct"]),
                             np.asarray(r.error["iv_m3_distinct"]))
    out["m3_distinct_verdict"] = [int(v) for v in sign["verdict"]]
    return out


# In the entries of a group (fits across sizes) the dephasing rate is "dephasing_gamma": "gamma"
# there is the 1/N^2 coefficient of the dn2 extrapolation.
GROUP_PARAMETER_KEYS = {"W": "W", "D": "D", "gamma": "dephasing_gamma"}


def _group_id(g):
    out = {"model": g.model, "geometry": g.geometry, "W": g.W,
           GROUP_PARAMETER_KEYS[g.parameter[0]]: g.parameter[1]}
    if g.geometry == "quasi1d":
        out.update({"Ny": g.Ny, "Nz": g.Nz})
    out["sizes"] = g.sizes
    return out


def _series_keys(name, series):
    """Flat keys of one ``a + b/N (+ c/N^2)`` extrapolation."""
    fit, sizes = series
    if fit is None:
        return {f"{name}_inf": None, f"{name}_inf_err": None, f"{name}_sizes": []}
    out = {f"{name}_inf": _num(fit.value["limit"]), f"{name}_inf_err": _num(fit.error["limit"]),
           f"{name}_b": _num(fit.value["b"]), f"{name}_b_err": _num(fit.error["b"]),
           f"{name}_c": _num(fit.value["c"]), f"{name}_c_err": _num(fit.error["c"]),
           f"{name}_n_params": int(fit.full["n_params"]), f"{name}_sizes": sizes,
           f"{name}_chi2": _num(fit.full["chi2"]), f"{name}_dof": int(fit.full["dof"])}
    return out


def group_summary(g):
    """The across-size objects of one group: (dn2_extrapolated, dn_vs_size, m_exponents or
    None, transport)."""
    ext = _group_id(g)
    d = g.dn2_ext
    for key in ("dn2", "beta", "gamma", "dn2_wls"):
        ext.update(_pair(d, key))
    ext["rel_residual"] = _num(d.full["rel_residual"])
    ext["n_points"] = int(d.full["n_points"])
    ext["n_params"] = int(d.full["n_params"])
    ext["dn2_sq_clipped"] = bool(d.full["constrained"])
    ext["window_grid"] = [dict(w.as_dict(), **_pair(v["dn2_extrapolated"], "dn2"))
                          for w, v in g.fits["grid"].items()]
    ext["dn2_window_range"] = _range([row["dn2"] for row in ext["window_grid"]])

    series = _group_id(g)
    for name in ("dn1", "dn2", "dn3", "dn3_line"):
        series.update(_series_keys(name, g.fits["series"][name]))
    series["window_grid"] = []
    for w, v in g.fits["grid"].items():
        row = w.as_dict()
        row.update(_pair(v["dn2_extrapolated"], "dn2", "dn2_extrapolated"))
        for name in ("dn1", "dn3"):
            row.update({k: val for k, val in _series_keys(name, v[name]).items()
                        if k in (f"{name}_inf", f"{name}_inf_err")})
        series["window_grid"].append(row)
    for name in ("dn1_inf", "dn3_inf", "dn2_extrapolated"):
        series[f"{name}_window_range"] = _range([row[name] for row in series["window_grid"]])

    expo = None
    if g.m_fits:
        expo = _group_id(g)
        for name, fit in g.m_fits.items():
            expo[f"{name}_exponent"] = _num(fit.value["exponent"])
            expo[f"{name}_exponent_err"] = _num(fit.error["exponent"])
            expo[f"{name}_chi2_dof"] = _num(fit.full["chi2_dof"])
            expo[f"{name}_sign"] = int(fit.full["sign"])
            expo[f"{name}_significant"] = bool(all(abs(r.value[name]) > 2 * r.error[name]
                                                   for r in g.runs))
            if name in QSSEP_EXPONENTS[g.geometry]:
                expo[f"{name}_qssep_exponent"] = QSSEP_EXPONENTS[g.geometry][name]

    if not g.has_leads:
        return ext, series, expo, None
    tr = _group_id(g)
    tr["conductance"] = [_num(r.value["conductance"]) for r in g.runs]
    tr["conductance_err"] = [_num(r.error["conductance"]) for r in g.runs]
    tr["law"] = "g = sigma N + offset" if g.geometry == "cube" else "1/g = offset + Nx / (sigma Ny Nz)"
    for key in ("sigma", "offset", "mean_free_path"):
        tr.update(_pair(g.ohm, key))
    tr["n_params"] = int(g.ohm.full["n_params"])
    tr["open_fraction"] = _num(g.largest.n_open / g.largest.n_perp)
    tr["mean_free_path_formula"] = transport.MFP_FORMULA
    return ext, series, expo, tr


def build_summary(an):
    runs = [run_summary(r) for r in an.runs]
    ext, series, expo, trans, per_order = [], [], [], [], []
    for g in an.groups:
        e, s, m, t = group_summary(g)
        ext.append(e)
        series.append(s)
        if t is not None:
            trans.append(t)
        if m is not None:
            expo.append(m)
        big = g.largest
        d = _group_id(g)
        d.update({"size": big.Nx})
        d.update(_pair(big.fit1, "dn1"))
        d.update({"dn2": e["dn2"], "dn2_err": e["dn2_err"]})
        d.update(_pair(big.fit3, "dn3"))
        d.update({"dn1_inf": s["dn1_inf"], "dn1_inf_err": s["dn1_inf_err"],
                  "dn3_inf": s["dn3_inf"], "dn3_inf_err": s["dn3_inf_err"]})
        per_order.append(d)
    w = an.window
    per_size = ("model", "geometry", "Nx", "Ny", "Nz", "W")
    return {
        "results_dir": str(an.directory),
        "results_dirs": list(an.sources),
        "window": dict(w.as_dict(), source=an.window_source),
        "conventions": {
            "x": "(ix + 1/2) / Nx",
            "g_n": "cube and chain: N^(n-1) C_n; quasi1d: Nx^-(n-1) C_n",
            "model": "anderson (static disorder, W) or a simulated stochastic model: qssep (bulk "
                     "rate D), dephasing (rate gamma); docs/theory.md §12",
            "values": "jackknife bias-corrected over the seed blocks; *_err = jackknife errors",
            "headline": "ordinary least squares: every point of the window counted once "
                        "(docs/theory.md §10); *_wls: the same fit with inverse squared jackknife "
                        "errors as weights (secondary, not a headline)",
            "window": f"drop_slices K = {w.drop_slices}: the K slices next to each lead left out "
                      f"(every index, also the cut slice); drop_diagonal D = {w.drop_diagonal}: "
                      "g2 pairs |a - b| <= D and g3 points with two indices within D left out",
            "dn1": "slope of g1 = intercept + dn1 x over the kept slices (D does not apply)",
            "dn2": "g2 = dn2^2 (min(x,y) - x y) over pairs a < b, |a - b| > D (dn2^2 >= 0)",
            "dn2_extrapolated": "g2 = g2^Q (1 + beta/(dn2^2 N) + gamma/(dn2^2 N^2)), OLS over the "
                                "window pairs of all sizes (the paper's ansatz)",
            "dn3": "Re g3 = dn3^3 g3^Q(x,y,z) on every cut, a < b, indices pairwise > D apart (signed)",
            "dn3_line": "the paper's Fig. 3e procedure: the same on one line, the cut nearest "
                        "z = 0.23, the slice b nearest y = 0.78, all a (window exclusions apply)",
            "dn_inf": "dn^(n)(N) = dn_inf + b/N (+ c/N^2): OLS over the sizes (c with >= 4 "
                      "sizes, b with >= 2), errors by the jackknife across runs; chi2 with the "
                      "per-size errors (independent runs)",
            "rel_residual": "||g - fit|| / ||g|| over the window points",
            "chi2_corr": f"minimum correlated chi2 with the jackknife covariance of the window "
                         f"points (Hartlap-debiased), only with >= {fits.CHI2_BLOCKS_PER_POINT} "
                         "blocks per point; *_chi2_corr_note says why it is omitted",
            "window_grid": "the same fits for K, D = 0, 1, 2 (OLS); *_window_range = [min, max]",
            "m3_split": "m3_coinciding = sum of C3 over index triples with two equal slices "
                        "(3 S2 - 2 S3), m3_distinct = m3 - m3_coinciding; only with the optional "
                        "fields diag_tr_g_g2, diag_tr_g3, diag_kdiag_aa_ac",
            "dn4": "Re g4 = dn4^4 g4^Q(x_a, x_b, x_c, x_d) (the free shape: QSSEP) on the cut pairs "
                   "(c, d), OLS over the window's points (a, b) (all four slices kept and pairwise "
                   "more than D apart; every point once; signed fourth root); g4 = N^3 C4 (cube, "
                   "chain), Nx^-3 C4 (quasi-1d); dn4_classical: the same with the classical shape "
                   "(all 15 partitions; docs/theory.md §7.3)",
            "g4_asymmetry_ratio": "the loop-order asymmetry g4(adjacent) - g4(opposite) in units of "
                                  "the free prediction at the data's own amplitude, R = beta / alpha "
                                  "of g4 = alpha C + beta X (C classical, X the crossing product): "
                                  "free 1, classical 0, no fitted dn (analysis.free_classical)",
            "g4_window_grid": "dn4 (free, classical) and the asymmetry ratio for K, D = 0, 1, 2",
            "D_profile": "the stochastic models: D from the OLS slope of the mean profile C1(i), "
                         "D = (dn/slope - (N - 1)) / (1/r_L + 1/r_R); D_expected: QSSEP's D or the "
                         "dephasing model's 2 t^2 / gamma",
            "c4_cross_ratio": "per cut pair: ||crossing term {13}{24}|| / ||C4|| over (a, b) with "
                              "a, b, c, d distinct; c4_free_ratio: the same for C4 - free cumulant. "
                              "A U(1) / contact diagnostic: at pairwise distinct slices every proper "
                              "partition vanishes for ANY U(1)-invariant ensemble, free or classical "
                              "(docs/theory.md §7.2); not a test of freeness. "
                              "c4_cross_ratio_by_separation: the crossing ratio over the points "
                              "whose slices are at least 1, 2, 3, 4 apart",
            "intervals": "per run with interval sums: m_n(x) = sum of C_n over the first L = "
                         "round(x Nx) slices (total, pairwise distinct, coinciding = total - "
                         "distinct), divided by N (cube, chain) or Nx^(2n-1) (quasi-1d); "
                         "dn{n}_{kind}: OLS of the distinct part against QSSEP's distinct-slice sum "
                         "at the run's N (dn = 1), every grid point once, signed n-th root; "
                         "m4_zero / m4_distinct_zero: the last + -> - sign change of m4(x) "
                         "(jackknifed, bracket fixed; nan without one) against zero_free 0.587 "
                         "and zero_classical 0.413; m3_distinct_verdict: +1 / -1 where m3 is "
                         "beyond 2 sigma positive / negative (docs/theory.md §8)",
            "m_exponents": "weighted log-log fit of |m| vs N (or Nx), independent runs; "
                           "*_sign is the sign of sum(m)",
            "transport": "Ohm's law over the sizes (OLS), " + transport.MFP_FORMULA,
        },
        "runs": runs,
        "fits": {"dn2_extrapolated": ext, "dn_vs_size": series, "m_exponents": expo,
                 "dn_per_order": per_order, "transport": trans,
                 "dn2_per_size": [{k: s[k] for k in per_size + ("dn2", "dn2_err", "dn2_wls",
                                                                "dn2_wls_err", "dn2_rel_residual")}
                                  for s in runs],
                 "dn3_per_size": [{k: s[k] for k in per_size + ("dn3", "dn3_err", "dn3_wls",
                                                                "dn3_wls_err", "dn3_rel_residual",
                                                                "dn3_line", "dn3_line_err")}
                                  for s in runs]},
        "notes": list(an.notes),
    }


def write_summary(an, path=None):
    path = Path(path) if path is not None else an.directory / "summary.json"
    path.write_text(json.dumps(an.summary, indent=1, allow_nan=False) + "\n")
    return path


# The arrays behind the summary, per run (`write_estimates`): name -> (meaning).
ESTIMATE_ARRAYS = {
    "C1": "(Nx,) connected first cumulant C1(a)",
    "C2": "(Nx, Nx) C2(a, b)",
    "C3": "(n_cut, Nx, Nx) Re C3(a, b, c) on the cuts",
    "C3_imag": "(n_cut, Nx, Nx) Im C3",
    "C4": "(n_pair, Nx, Nx) Re C4(a, b, c, d) on the cut pairs (order four only)",
    "C4_imag": "(n_pair, Nx, Nx) Im C4",
    "C4_cross": "(n_pair, Nx, Nx) Re of the crossing term {13}{24} (C4 holds it with weight -1)",
    "C4_free": "(n_pair, Nx, Nx) Re of the free cumulant (NC(4) weights)",
    "g1": "(Nx,) rescaled g1", "g2": "(Nx, Nx) rescaled g2", "g3": "(n_cut, Nx, Nx) rescaled Re g3",
    "g4": "(n_pair, Nx, Nx) rescaled Re g4",
    "iv_m2": "(n_x,) m2(x): C2 summed over the first L slices (interval sums only)",
    "iv_m3": "(n_x,) m3(x)", "iv_m4": "(n_x,) m4(x)",
    "iv_m2_distinct": "(n_x,) pairwise distinct slices only", "iv_m3_distinct": "(n_x,)",
    "iv_m4_distinct": "(n_x,)", "iv_m3_coinciding": "(n_x,) m3(x) - m3_distinct(x)",
    "iv_m4_coinciding": "(n_x,) m4(x) - m4_distinct(x)",
    "map1": "(Nx, Nx) complex N_perp^-1 E Tr G_ab", "map2": "(n_cut, Nx, Nx) complex U(1) map",
    "m2": "() sum of C2", "m3": "() sum of C3", "m3_distinct": "() distinct-slice part of m3",
    "m3_coinciding": "() coinciding-slice part of m3",
    "conductance": "() <Tr t^+ t>", "conductance_var": "() its variance", "fano": "() Fano factor",
}


def write_estimates(an, path=None):
    """Every estimated array behind the summary, with its jackknife error, in one HDF5 file.

    Layout: ``/runs/<result file stem>/<name>`` (bias-corrected value) and ``<name>_err``
    (jackknife error) for the names of `ESTIMATE_ARRAYS` a run has; per run group the
    coordinates ``x``, ``cut_slices``, ``pair_slices`` and attributes ``run`` (JSON),
    ``samples``, ``blocks``; root attributes ``results_dir``, ``conventions`` (JSON), and
    ``meanings`` (JSON of `ESTIMATE_ARRAYS`).
    """
    import h5py
    path = Path(path) if path is not None else an.directory / ESTIMATES_FILE
    partial = path.with_name(path.name + ".partial")
    with h5py.File(partial, "w") as f:
        f.attrs["results_dir"] = str(an.directory)
        f.attrs["conventions"] = json.dumps(an.summary["conventions"])
        f.attrs["meanings"] = json.dumps(ESTIMATE_ARRAYS)
        for r in an.runs:
            g = f.create_group(f"runs/{r.path.stem}")
            g.attrs.update({"run": json.dumps(r.run), "samples": r.samples, "blocks": r.blocks_done})
            g["x"], g["cut_slices"] = r.x, np.asarray(r.cut_slices, np.int64)
            g["pair_slices"] = np.asarray(r.pair_slices, np.int64).reshape(-1, 2)
            g["interval_lengths"] = np.asarray(r.interval_lengths, np.int64)
            for name in ESTIMATE_ARRAYS:
                if name in r.value:
                    g[name] = np.asarray(r.value[name])
                    g[f"{name}_err"] = np.asarray(r.error[name])
    partial.replace(path)
    return path


# --- the printed table ------------------------------------------------------------------------------

def _pm(v, e, digits=4):
    if v is None:
        return "-"
    if e is None:
        return f"{v:.{digits}g}"
    return f"{v:.{digits}g}±{e:.2g}"


def _param(e):
    """"W=6", "D=1" or "gamma=4": what tells runs of one model and geometry apart."""
    name = {"anderson": "W", "qssep": "D", "dephasing": "gamma"}[e.get("model", "anderson")]
    value = e[GROUP_PARAMETER_KEYS[name]] if GROUP_PARAMETER_KEYS[name] in e else e[name]
    return f"{name}={value:g}"


def _where(e):
    model = "" if e.get("model", "anderson") == "anderson" else f"{e['model']} "
    return (f"{model}{e['geometry']} {_param(e)}" + (f" Ny={e['Ny']} Nz={e['Nz']}" if "Ny" in e else ""))


def _size(s):
    return f"N={s['N']}" if s["geometry"] in ("cube", "chain") else f"{s['Nx']}x{s['Ny']}x{s['Nz']}"


def _who(s):
    """One run in a line of the table: model (unless Anderson), geometry, size, parameter."""
    model = "" if s.get("model", "anderson") == "anderson" else f"{s['model']} "
    return f"{model}{s['geometry']} {_size(s)} {_param(s)}"


def format_table(summary):
    """The printed summary: one line per run, the window sensitivity, then the fits across runs."""
    w = summary["window"]
    lines = [f"Headline fits: OLS (every point once), window K = {w['drop_slices']}, "
             f"D = {w['drop_diagonal']} ({w['source']}); jackknife errors; "
             "rel.res = ||g - fit|| / ||g||"]
    cols = [("run", 30), ("samples", 7), ("dn1", 15), ("rel.res", 7),
            ("dn2", 15), ("rel.res", 7), ("dn3", 15), ("rel.res", 7), ("dn3 line", 15),
            ("m2", 15), ("m3", 16), ("<g>", 14), ("Fano", 15)]
    lines.append("  ".join(f"{name:<{wd}}" for name, wd in cols))
    for s in summary["runs"]:
        vals = [_who(s), str(s["samples"]),
                _pm(s["dn1"], s["dn1_err"]), _pm(s["dn1_rel_residual"], None, 2),
                _pm(s["dn2"], s["dn2_err"]), _pm(s["dn2_rel_residual"], None, 2),
                _pm(s["dn3"], s["dn3_err"]), _pm(s["dn3_rel_residual"], None, 2),
                _pm(s["dn3_line"], s["dn3_line_err"]),
                _pm(s["m2"], s["m2_err"]), _pm(s["m3"], s["m3_err"], 3),
                _pm(s.get("conductance"), s.get("conductance_err")), _pm(s.get("fano"), s.get("fano_err"))]
        lines.append("  ".join(f"{v:<{wd}}" for v, (_, wd) in zip(vals, cols)))

    lines.append("")
    lines.append("Secondary (inverse-variance weights, not a headline) and correlated chi2/dof "
                 "of the headline window:")
    omitted = {}
    for s in summary["runs"]:
        chis = []
        for name in ("dn1", "dn2", "dn3"):
            if s[f"{name}_chi2_corr"] is not None:
                chis.append(f"{name} {s[f'{name}_chi2_corr']:.4g}/{s[f'{name}_chi2_corr_dof']:g}")
            else:
                chis.append(f"{name} -")
                note = s[f"{name}_chi2_corr_note"]
                reason = ("too few blocks per point" if "blocks per point" in note else note)
                omitted.setdefault(reason, []).append(
                    f"{name} {_size(s)}" + (f" ({note.split(': ', 1)[-1].split(' (')[0]})"
                                            if reason != note else ""))
        lines.append(f"  {_who(s):<30} "
                     f"dn1_wls={_pm(s['dn1_wls'], s['dn1_wls_err'])}  "
                     f"dn2_wls={_pm(s['dn2_wls'], s['dn2_wls_err'])}  "
                     f"dn3_wls={_pm(s['dn3_wls'], s['dn3_wls_err'])}  chi2: " + ", ".join(chis))
    for reason, where in omitted.items():
        extra = (f" (needs >= {fits.CHI2_BLOCKS_PER_POINT} blocks per window point)"
                 if reason == "too few blocks per point" else "")
        lines.append(f"  chi2 omitted, {reason}{extra}: {', '.join(where)}")

    lines.append("")
    lines.append("Window sensitivity (OLS; K = drop_slices, D = drop_diagonal; dn1 does not depend on D):")
    for s in summary["runs"]:
        grid = {(row["drop_slices"], row["drop_diagonal"]): row for row in s["window_grid"]}
        for k in sorted({key[0] for key in grid}):
            ds = sorted(d for kk, d in grid if kk == k)
            dn2 = " / ".join(_pm(grid[k, d]["dn2"], grid[k, d]["dn2_err"]) for d in ds)
            dn3 = " / ".join(_pm(grid[k, d]["dn3"], grid[k, d]["dn3_err"]) for d in ds)
            lines.append(f"  {_who(s):<30} K={k}: "
                         f"dn1 {_pm(grid[k, ds[0]]['dn1'], grid[k, ds[0]]['dn1_err'])}   "
                         f"dn2 (D={'/'.join(map(str, ds))}) {dn2}   dn3 {dn3}")

    f = summary["fits"]
    if f["dn2_extrapolated"]:
        lines.append("")
        lines.append("dn^(2) extrapolated to N -> infinity, g2 = g2^Q (1 + beta/(dn^2 N) + "
                     "gamma/(dn^2 N^2)), OLS over all sizes:")
        for e in f["dn2_extrapolated"]:
            rng = e["dn2_window_range"]
            lines.append(f"  {_where(e):<28} sizes={e['sizes']}  dn2={_pm(e['dn2'], e['dn2_err'])}  "
                         f"beta={_pm(e['beta'], e['beta_err'])}  gamma={_pm(e['gamma'], e['gamma_err'])}  "
                         f"rel.res={_pm(e['rel_residual'], None, 2)}  ({e['n_params']} parameters; "
                         f"wls {_pm(e['dn2_wls'], e['dn2_wls_err'])}; K, D <= 2: "
                         f"{_pm(rng[0], None) if rng else '-'} .. {_pm(rng[1], None) if rng else '-'})")
    if f["dn_vs_size"]:
        lines.append("")
        lines.append("dn^(n)(N) -> N = infinity, dn(N) = dn_inf + b/N (+ c/N^2), OLS over the sizes:")
        for e in f["dn_vs_size"]:
            parts = []
            for name in ("dn1", "dn2", "dn3", "dn3_line"):
                if e[f"{name}_inf"] is None:
                    parts.append(f"{name} -")
                    continue
                chi = "" if e[f"{name}_chi2"] is None else \
                    f", chi2 {e[f'{name}_chi2']:.3g}/{e[f'{name}_dof']}"
                parts.append(f"{name} {_pm(e[f'{name}_inf'], e[f'{name}_inf_err'])} "
                             f"({e[f'{name}_n_params']} par.{chi})")
            lines.append(f"  {_where(e):<28} sizes={e['sizes']}  " + "   ".join(parts))
    if f["m_exponents"]:
        lines.append("")
        lines.append("Exponents of m2, m3 (and of the parts of m3) versus size "
                     "(QSSEP: cube 1 and 1, with no O(N) term in m3; quasi1d 3 and 5):")
        for e in f["m_exponents"]:
            parts = []
            for name in ("m2", "m3") + M3_PARTS:
                if f"{name}_exponent" in e:
                    sig = "" if e[f"{name}_significant"] else " (not significant at every size)"
                    parts.append(f"{name} ~ {'-' if e[f'{name}_sign'] < 0 else ''}N^"
                                 f"{_pm(e[f'{name}_exponent'], e[f'{name}_exponent_err'], 3)}{sig}")
            lines.append(f"  {_where(e):<28} " + "   ".join(parts))
    if any("m3_distinct" in s for s in summary["runs"]):
        lines.append("")
        lines.append("m3 split by coinciding slice indices (QSSEP: the distinct part has no O(N) term):")
        for s in summary["runs"]:
            if "m3_distinct" in s:
                lines.append(f"  {_who(s):<30} "
                             f"m3={_pm(s['m3'], s['m3_err'], 3)}  "
                             f"distinct={_pm(s['m3_distinct'], s['m3_distinct_err'], 3)}  "
                             f"coinciding={_pm(s['m3_coinciding'], s['m3_coinciding_err'], 3)}")
    if any("dn4" in s for s in summary["runs"]):
        lines.append("")
        lines.append("Fourth order on cut pairs, free (QSSEP) against classical: one amplitude each, "
                     "OLS over the window; R = loop-order asymmetry in units of the free prediction "
                     "(free 1, classical 0); crossing = ||{13}{24}|| / ||C4|| at distinct slices, a "
                     "U(1)/contact diagnostic (vanishes for any U(1)-invariant ensemble):")
        for s in summary["runs"]:
            if "dn4" in s:
                pairs = ", ".join(f"({c:.2f}, {d:.2f}) crossing {_pm(v, e, 2)}" for (c, d), v, e in
                                  zip(s["pair_x"], s["c4_cross_ratio"], s["c4_cross_ratio_err"]))
                lines.append(f"  {_who(s):<30} "
                             f"free: dn4={_pm(s['dn4'], s['dn4_err'], 3)} rel.res="
                             f"{_pm(s['dn4_rel_residual'], None, 2)}   classical: dn4="
                             f"{_pm(s['dn4_classical'], s['dn4_classical_err'], 3)} rel.res="
                             f"{_pm(s['dn4_classical_rel_residual'], None, 2)}   R="
                             f"{_pm(s['g4_asymmetry_ratio'], s['g4_asymmetry_ratio_err'], 3)}"
                             f"  pairs z = {pairs}")
    if f["transport"]:
        lines.append("")
        lines.append("Transport: Ohm's law over the sizes (OLS) and the mean free path "
                     f"[{transport.MFP_FORMULA}]:")
        for e in f["transport"]:
            gs = ", ".join(f"{n}: {_pm(v, err)}" for n, v, err in
                           zip(e["sizes"], e["conductance"], e["conductance_err"]))
            lines.append(f"  {_where(e):<28} <g> = {gs}")
            lines.append(f"  {'':<28} {e['law']}: sigma={_pm(e['sigma'], e['sigma_err'])}  "
                         f"offset={_pm(e['offset'], e['offset_err'])}  "
                         f"mean free path={_pm(e['mean_free_path'], e['mean_free_path_err'])} a "
                         f"(open channels {e['open_fraction']:.3g} of A)")
    if summary["notes"]:
        lines.append("")
        lines.append("Notes:")
        lines.extend(f"  {n}" for n in summary["notes"])
    return "\n".join(lines)
