"""A results directory -> estimates, fits, ``summary.json`` and the printed table.

`analyze` opens the runs (`analysis.io.discover`), computes every run's estimators with the
jackknife (`analysis.estimators.run_estimates`), the per-run fits (dn^(1), dn^(2), dn^(3)) and
the fits across runs of one geometry and W (dn^(2) extrapolated to N -> infinity, the
exponents of m2 and m3), and collects them in an `Analysis` that the figures also use.
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from . import fits
from .estimators import run_estimates
from .io import RunFields, discover

__all__ = ["RunResult", "Group", "Analysis", "analyze", "format_table", "write_summary"]

# QSSEP's size scaling of m_n = sum C_n: ~N in the cube; ~Nx^(2n-1) in quasi-1d (g_n = C_n Nx^(n-1)
# summed over Nx^n points).
QSSEP_EXPONENTS = {"cube": {"m2": 1.0, "m3": 1.0}, "quasi1d": {"m2": 3.0, "m3": 5.0}}


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
    fit1: object
    fit2: object
    fit3: object
    n_open: tuple = ()  # open channels at E+ and E-


    @property
    def size_label(self):
        return f"N = {self.Nx}" if self.geometry == "cube" else f"Nx = {self.Nx}"


@dataclass
class Group:
    """Runs of one geometry (and transverse size for quasi-1d) and one W, sorted by Nx."""

    geometry: str
    W: float
    Ny: int | None
    Nz: int | None
    runs: list
    dn2_ext: object = None  # Replicated dict of fits.fit_dn2_extrapolated
    m2_fit: object = None
    m3_fit: object = None
    notes: list = field(default_factory=list)

    @property
    def sizes(self):
        return [r.Nx for r in self.runs]

    @property
    def largest(self):
        return self.runs[-1]

    @property
    def label(self):
        if self.geometry == "cube":
            return f"cube W={self.W:g}"
        return f"quasi1d Ny={self.Ny} Nz={self.Nz} W={self.W:g}"


@dataclass
class Analysis:
    directory: Path
    runs: list
    groups: list
    notes: list
    summary: dict = None

    def groups_of(self, geometry):
        return [g for g in self.groups if g.geometry == geometry]


def _num(v):
    """JSON-safe float (nan/inf -> None)."""
    v = float(np.real(v))
    return v if math.isfinite(v) else None


def _analyze_run(data):
    est = run_estimates(data)
    value, error = est.value, est.error
    fit1 = fits.jk_fit_dn1(est, data.x)
    fit2 = fits.jk_fit_dn2(est, data.x)
    fit3 = fits.jk_fit_dn3(est, data.x, data.cut_slices)
    return RunResult(path=data.path, run=data.run, samples=data.samples,
                     samples_planned=data.samples_planned, blocks_done=len(data.done),
                     n_blocks=data.n_blocks, complete=data.complete, x=data.x,
                     cut_slices=data.cut_slices, cut_fractions=data.cut_fractions, est=est,
                     value=value, error=error, fit1=fit1, fit2=fit2, fit3=fit3,
                     n_open=data.n_open)


def _group_key(r):
    transverse = (None, None) if r.geometry == "cube" else (r.Ny, r.Nz)
    return (r.geometry, r.W) + transverse + (tuple(r.run.get("hopping", ())), r.run.get("e_plus"),
                                             r.run.get("e_minus"))


def _make_groups(results, notes):
    by_key = {}
    for r in results:
        by_key.setdefault(_group_key(r), []).append(r)
    groups = []
    for key, runs in sorted(by_key.items(), key=lambda kv: (kv[0][0], kv[0][1], kv[0][2] or 0,
                                                              kv[0][3] or 0)):
        runs.sort(key=lambda r: (r.Nx, str(r.path)))
        grp = Group(geometry=key[0], W=key[1], Ny=key[2], Nz=key[3], runs=runs)
        sizes = sorted(set(grp.sizes))
        if len(sizes) != len(runs):
            grp.notes.append(f"{grp.label}: several runs share a size; all enter the joint fits")
        items = [(r.Nx, r.x, r.est["g2"]) for r in runs]
        grp.dn2_ext = fits.jk_fit_dn2_extrapolated(items)
        if len(sizes) < 3:
            what = "beta only (gamma = 0)" if len(sizes) == 2 else "no correction (beta = gamma = 0)"
            grp.notes.append(f"{grp.label}: {len(sizes)} size(s): the N -> infinity fit of dn^(2) "
                             f"has {what}")
        if len(sizes) >= 2:
            grp.m2_fit = fits.jk_fit_power_law([(r.Nx, r.est["m2"]) for r in runs])
            grp.m3_fit = fits.jk_fit_power_law([(r.Nx, r.est["m3"]) for r in runs])
        else:
            grp.notes.append(f"{grp.label}: one size: no m2/m3 exponents")
        notes.extend(grp.notes)
        groups.append(grp)
    return groups


def analyze(directory, allow_incomplete=False):
    """Estimates and fits of every usable run in ``directory`` (raises `ResultsError`)."""
    datas, notes = discover(directory, allow_incomplete=allow_incomplete)
    results = []
    try:
        for data in datas:
            results.append(_analyze_run(data))
    finally:
        for data in datas:
            data.close()
    groups = _make_groups(results, notes)
    an = Analysis(directory=Path(directory), runs=results, groups=groups, notes=notes)
    an.summary = build_summary(an)
    return an


def _pair(rep, key, name=None):
    """``{name: value, name_err: error}`` of one leaf of a Replicated dict."""
    name = name or key
    return {name: _num(rep.value[key]), f"{name}_err": _num(rep.error[key])}


def run_summary(r):
    """The summary.json object of one run."""
    out = {"file": r.path.name, "geometry": r.geometry}
    if r.geometry == "cube":
        out["N"] = r.Nx
    out.update({"Nx": r.Nx, "Ny": r.Ny, "Nz": r.Nz, "W": r.W, "samples": r.samples,
                "samples_planned": r.samples_planned, "blocks": r.blocks_done,
                "complete": r.complete, "hopping": list(r.run.get("hopping", ())),
                "n_open": list(r.n_open)})
    out.update(_pair(r.fit1, "dn1"))
    out.update(_pair(r.fit1, "intercept"))
    out["dn1_chi2_dof"] = _num(r.fit1.full["chi2_dof"])
    for key in ("m2", "m3", "conductance", "conductance_var", "fano"):
        out[key] = _num(r.value[key])
        out[f"{key}_err"] = _num(r.error[key])
    out.update(_pair(r.fit2, "dn2"))
    out["dn2_chi2_dof"] = _num(r.fit2.full["chi2_dof"])
    out.update(_pair(r.fit3, "dn3"))
    out["dn3_chi2_dof"] = _num(r.fit3.full["chi2_dof"])
    real = np.abs(r.value["C3"]).max()
    out["c3_imag_ratio"] = _num(np.abs(r.value["C3_imag"]).max() / real) if real > 0 else None
    out["cut_slices"] = [int(c) for c in r.cut_slices]
    out["cut_x"] = [_num(r.x[c]) for c in r.cut_slices]
    return out


def _group_id(g):
    out = {"geometry": g.geometry, "W": g.W}
    if g.geometry != "cube":
        out.update({"Ny": g.Ny, "Nz": g.Nz})
    out["sizes"] = g.sizes
    return out


def build_summary(an):
    runs = [run_summary(r) for r in an.runs]
    ext, expo, per_order = [], [], []
    for g in an.groups:
        e = _group_id(g)
        e.update(_pair(g.dn2_ext, "dn2"))
        e.update(_pair(g.dn2_ext, "beta"))
        e.update(_pair(g.dn2_ext, "gamma"))
        e["chi2_dof"] = _num(g.dn2_ext.full["chi2_dof"])
        e["n_params"] = int(g.dn2_ext.full["n_params"])
        e["dn2_sq_clipped"] = bool(g.dn2_ext.full["constrained"])
        ext.append(e)
        if g.m2_fit is not None:
            m = _group_id(g)
            for name, fit in (("m2", g.m2_fit), ("m3", g.m3_fit)):
                m[f"{name}_exponent"] = _num(fit.value["exponent"])
                m[f"{name}_exponent_err"] = _num(fit.error["exponent"])
                m[f"{name}_chi2_dof"] = _num(fit.full["chi2_dof"])
                m[f"{name}_qssep_exponent"] = QSSEP_EXPONENTS[g.geometry][name]
            m["m3_sign"] = int(g.m3_fit.full["sign"])
            m["m3_significant"] = bool(all(abs(r.value["m3"]) > 2 * r.error["m3"] for r in g.runs))
            expo.append(m)
        big = g.largest
        d = _group_id(g)
        d.update({"size": big.Nx})
        d.update(_pair(big.fit1, "dn1"))
        d.update({"dn2": _num(g.dn2_ext.value["dn2"]), "dn2_err": _num(g.dn2_ext.error["dn2"])})
        d.update(_pair(big.fit3, "dn3"))
        per_order.append(d)
    return {
        "results_dir": str(an.directory),
        "conventions": {
            "x": "(ix + 1/2) / Nx",
            "g_n": "cube: N^(n-1) C_n; quasi1d: Nx^-(n-1) C_n",
            "values": "jackknife bias-corrected over the seed blocks; *_err = jackknife errors",
            "dn1": "slope of g1 = intercept + dn1 x over all slices",
            "dn2": "g2 = dn2^2 (min(x,y) - x y) over pairs a < b (dn2^2 >= 0)",
            "dn2_extrapolated": "g2 = g2^Q (1 + beta/(dn2^2 N) + gamma/(dn2^2 N^2)) over all sizes",
            "dn3": "Re g3 = dn3^3 g3^Q(x,y,z) on the cuts, a < b, a, b, c distinct (signed)",
            "m_exponents": "log-log fit of |m| vs N (or Nx); m3_sign is the sign of m3",
            "chi2_dof": "with the jackknife errors, points treated as independent",
        },
        "runs": runs,
        "fits": {"dn2_extrapolated": ext, "m_exponents": expo, "dn_per_order": per_order,
                 "dn2_per_size": [{k: s[k] for k in ("geometry", "Nx", "Ny", "Nz", "W", "dn2",
                                                     "dn2_err", "dn2_chi2_dof")} for s in runs],
                 "dn3_per_size": [{k: s[k] for k in ("geometry", "Nx", "Ny", "Nz", "W", "dn3",
                                                     "dn3_err", "dn3_chi2_dof")} for s in runs]},
        "notes": list(an.notes),
    }


def write_summary(an, path=None):
    path = Path(path) if path is not None else an.directory / "summary.json"
    path.write_text(json.dumps(an.summary, indent=1, allow_nan=False) + "\n")
    return path


def _pm(v, e, digits=4):
    if v is None:
        return "-"
    if e is None:
        return f"{v:.{digits}g}"
    return f"{v:.{digits}g}±{e:.2g}"


def format_table(summary):
    """The printed summary: one line per run, then the fits across runs."""
    cols = [("geometry", 8), ("size", 12), ("W", 5), ("samples", 7), ("dn1", 15), ("intercept", 15),
            ("m2", 15), ("m3", 16), ("<g>", 14), ("Fano", 15), ("dn2", 14), ("dn3", 15)]
    lines = ["  ".join(f"{name:<{w}}" for name, w in cols)]
    for s in summary["runs"]:
        size = f"N={s['N']}" if s["geometry"] == "cube" else f"{s['Nx']}x{s['Ny']}x{s['Nz']}"
        vals = [s["geometry"], size, f"{s['W']:g}", str(s["samples"]),
                _pm(s["dn1"], s["dn1_err"]), _pm(s["intercept"], s["intercept_err"]),
                _pm(s["m2"], s["m2_err"]), _pm(s["m3"], s["m3_err"], 3),
                _pm(s["conductance"], s["conductance_err"]), _pm(s["fano"], s["fano_err"]),
                _pm(s["dn2"], s["dn2_err"]), _pm(s["dn3"], s["dn3_err"], 3)]
        lines.append("  ".join(f"{v:<{w}}" for v, (_, w) in zip(vals, cols)))
    f = summary["fits"]
    if f["dn2_extrapolated"]:
        lines.append("")
        lines.append("dn^(2) extrapolated to N -> infinity, g2 = g2^Q (1 + beta/(dn^2 N) + gamma/(dn^2 N^2)):")
        for e in f["dn2_extrapolated"]:
            where = f"{e['geometry']} W={e['W']:g}" + (f" Ny={e['Ny']} Nz={e['Nz']}" if "Ny" in e else "")
            lines.append(f"  {where:<28} sizes={e['sizes']}  dn2={_pm(e['dn2'], e['dn2_err'])}  "
                         f"beta={_pm(e['beta'], e['beta_err'])}  gamma={_pm(e['gamma'], e['gamma_err'])}  "
                         f"chi2/dof={_pm(e['chi2_dof'], None, 3)}  ({e['n_params']} parameters)")
    if f["m_exponents"]:
        lines.append("")
        lines.append("Exponents of m2, m3 versus size (QSSEP: cube 1 and 1; quasi1d 3 and 5):")
        for e in f["m_exponents"]:
            where = f"{e['geometry']} W={e['W']:g}" + (f" Ny={e['Ny']} Nz={e['Nz']}" if "Ny" in e else "")
            sig = "" if e["m3_significant"] else "  (m3 not significant at every size)"
            lines.append(f"  {where:<28} m2 ~ N^{_pm(e['m2_exponent'], e['m2_exponent_err'], 3)}  "
                         f"|m3| ~ N^{_pm(e['m3_exponent'], e['m3_exponent_err'], 3)}  "
                         f"sign(m3)={e['m3_sign']:+d}{sig}")
    if summary["notes"]:
        lines.append("")
        lines.append("Notes:")
        lines.extend(f"  {n}" for n in summary["notes"])
    return "\n".join(lines)
