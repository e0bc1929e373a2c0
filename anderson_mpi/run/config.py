"""Job files (TOML) -> a validated run plan, before any MPI work.

A job file is flat TOML; every key is optional except `geometry`, `sizes` and (Anderson) `W`.
Keys of every model:

    name = "demo"                 # label (default: the file's stem)
    model = "anderson"            # "anderson" (static disorder), "qssep" or "dephasing" (simulated)
    geometry = "cube"             # anderson: "cube" (Nx = Ny = Nz = N) or "quasi1d" (Nx varies);
                                  # qssep: "chain"; dephasing: "chain" or "cube"
    sizes = [6, 8, 10]            # N (cube) or Nx (quasi1d)
    transverse = [8, 8]           # [Ny, Nz], quasi1d only
    W = [6.0]                     # disorder strengths, >= 0
    samples = 200                 # disorder samples per run
    block_size = 10               # samples per seed block (unit of work, checkpoint, jackknife)
    seed = 20240601               # base seed; sample s of a run uses SeedSequence([seed, key, s])
    hopping = [1.0, 0.4, 0.4]     # (tx, ty, tz); any, e.g. the isotropic [1.0, 1.0, 1.0]
    e_plus = 0.2                  # energy of the right incomers
    e_minus = -0.2                # energy of the left incomers (evanescent lead channels are
                                  # fine; a channel at a band edge or no open channel is refused)
    cuts = [0.23, 0.5]            # third order: fixed slice fractions z in [0, 1]
    cuts4 = [[0.25, 0.75]]        # fourth order: fixed slice pairs (c, d) by fraction (default none)
    cuts4_schedule = "half"       # which samples compute the optional order-four products:
                                  # "half" (default), "quarter" (cheaper), "full" (every sample)
    solver = "transfer"           # "transfer" or "petsc"
    petsc_group_size = 1          # ranks per sample with solver = "petsc"
    m3_split = false              # also the coinciding-slice part of m3 (about one recursion more)
    intervals = [0.1, 0.2, 1.0]   # interval sums m_n(x), n = 2..4, on this grid of x in (0, 1]
                                  # (default none; about 1.5 recursions per sample for 10 points)
    interval_probes = 1           # probe vectors per slice (the probe noise falls like 1/probes)
    interval_pair_fraction = 0.25 # slices probed for the words pairing two samples (1: all)
    interval_exact_moments = true # Tr G_I^3, Tr G_I^4 exactly (less noise in the totals)
    unitarity_tol = 1e-8          # a sample whose unitarity error exceeds this stops the run
    memory_per_rank = "16G"       # optional: the memory a rank may use (default: detected)
    output = "results/demo"       # directory of the result files (relative to the cwd)

Keys of the stochastic models (docs/theory.md §12), which refuse the Anderson-only keys (W,
transverse, e_plus, e_minus, solver, petsc_group_size, unitarity_tol) and those of the other model:

    D = 1.0                       # qssep: bulk rate
    gamma = [0.5, 1.0, 4.0]       # dephasing: rates (one run per value and size)
    hopping = [1.0]               # dephasing: t of the chain ([tx, ty, tz] in the cube)
    n_left = 0.0                  # boundary densities in [0, 1]
    n_right = 1.0
    boundary_rate = 2.0           # alpha + beta at each end (or [left, right]); default 2 D_eff
    dt = 0.1                      # time step; default from the scheme's bias table
    relax_time = 500.0            # time from the exact mean profile to a sample; default 5 L^2/(pi^2 D_eff)
    [analysis]                    # optional: defaults of `python -m analysis` for these results
    drop_slices = 0               # slices left out at each lead in the fits
    drop_diagonal = 0             # g2/g3 points with two indices within this distance left out

Errors are `PlanError` with a one-line message that names the field.
"""
from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

try:  # Python >= 3.11
    import tomllib
except ModuleNotFoundError:  # pragma: no cover - Python 3.9/3.10: the same parser from PyPI
    import tomli as tomllib

from ..errors import PlanError

__all__ = ["PlanError", "Run", "load_job", "make_plan", "run_key", "analysis_options"]


DEFAULTS = {
    "name": None,
    "model": "anderson",
    "geometry": None,
    "sizes": None,
    "transverse": None,
    "W": None,
    "samples": 100,
    "block_size": 10,
    "seed": 20240601,
    "hopping": None,           # anderson: [1.0, 0.4, 0.4]; dephasing: [1.0] (chain), [1.0, 0.4, 0.4]
    "e_plus": 0.2,
    "e_minus": -0.2,
    "cuts": [0.23, 0.5],
    "cuts4": [],
    "cuts4_schedule": "half",
    "m3_split": False,
    "intervals": [],
    "interval_probes": 1,
    "interval_pair_fraction": 0.25,
    "interval_exact_moments": True,
    "solver": "transfer",
    "petsc_group_size": 1,
    "unitarity_tol": 1e-8,
    "memory_per_rank": None,
    "output": None,
    "analysis": None,
    "D": None,
    "gamma": None,
    "n_left": None,
    "n_right": None,
    "boundary_rate": None,
    "dt": None,
    "relax_time": None,
}
REQUIRED = ("geometry", "sizes")
MODELS = ("anderson", "qssep", "dephasing")
COMMON_KEYS = ("name", "model", "geometry", "sizes", "samples", "block_size", "seed", "cuts",
               "cuts4", "cuts4_schedule", "m3_split", "intervals", "interval_probes",
               "interval_pair_fraction", "interval_exact_moments", "memory_per_rank", "output",
               "analysis")
MODEL_KEYS = {
    "anderson": ("transverse", "W", "hopping", "e_plus", "e_minus", "solver", "petsc_group_size",
                 "unitarity_tol"),
    "qssep": ("D", "n_left", "n_right", "boundary_rate", "dt", "relax_time"),
    "dephasing": ("gamma", "hopping", "n_left", "n_right", "boundary_rate", "dt", "relax_time"),
}
GEOMETRIES = {"anderson": ("cube", "quasi1d"), "qssep": ("chain",), "dephasing": ("chain", "cube")}
CHAIN_KEYS = ("n_left", "n_right", "boundary_rate", "dt", "relax_time")
# The [analysis] table: defaults of `python -m analysis` (see analysis/__main__.py).
ANALYSIS_KEYS = {"drop_slices": 0, "drop_diagonal": 0}


@dataclass(frozen=True)
class Run:
    """One run: one geometry, one size, one W. Everything a worker needs, JSON-serializable."""

    job: str
    geometry: str
    Nx: int
    Ny: int
    Nz: int
    W: float
    samples: int
    block_size: int
    seed: int
    hopping: tuple
    e_plus: float
    e_minus: float
    cuts: tuple
    cuts4: tuple
    m3_split: bool
    solver: str
    petsc_group_size: int
    unitarity_tol: float
    path: str = field(compare=False)
    memory_per_rank: object = field(default=None, compare=False)  # bytes, or None: detected
    # the stochastic models (docs/theory.md §12); None for the Anderson model
    model: str = "anderson"
    D: object = None
    gamma: object = None
    n_left: object = None
    n_right: object = None
    boundary_rate: object = None
    dt: object = None
    relax_time: object = None
    cuts4_schedule: str = "half"
    intervals: tuple = ()
    interval_probes: int = 1
    interval_pair_fraction: float = 0.25
    interval_exact_moments: bool = True

    @property
    def shape(self):
        return (self.Nx, self.Ny, self.Nz)

    @property
    def n_blocks(self):
        return math.ceil(self.samples / self.block_size)

    def block_samples(self, block):
        """The global sample indices of seed block ``block`` (the last block may be short)."""
        return range(block * self.block_size, min((block + 1) * self.block_size, self.samples))

    @property
    def label(self):
        size = f"N{self.Nx}" if self.geometry in ("cube", "chain") else f"Nx{self.Nx}_Ny{self.Ny}_Nz{self.Nz}"
        if self.model == "qssep":
            return f"qssep_{self.geometry}_{size}"
        if self.model == "dephasing":
            return f"dephasing_{self.geometry}_{size}_gamma{self.gamma:g}"
        return f"{self.geometry}_{size}_W{self.W:g}"

    @property
    def engine(self):
        """The engine of the registry that computes the samples (`anderson_mpi.engines`)."""
        return self.solver if self.model == "anderson" else self.model

    def chain_parameters(self):
        """The keyword arguments of the stochastic model's setup (None for the Anderson model)."""
        if self.model == "anderson":
            return None
        params = {key: getattr(self, key) for key in CHAIN_KEYS if getattr(self, key) is not None}
        if isinstance(params.get("boundary_rate"), tuple):
            params["boundary_rate"] = list(params["boundary_rate"])
        if self.model == "qssep":
            params["D"] = self.D
        else:
            params["gamma"] = self.gamma
            params["hopping"] = self.hopping[0] if self.geometry == "chain" else list(self.hopping)
        return params

    def physics(self):
        """What a resume must match exactly: everything that fixes the samples and their sums.

        The job's name, the path, the tolerance and the PETSc group size may change.
        """
        d = asdict(self)
        for key in ("job", "path", "unitarity_tol", "petsc_group_size", "memory_per_rank"):
            d.pop(key)
        d["hopping"], d["cuts"] = list(d["hopping"] or ()), list(d["cuts"])
        if isinstance(d["boundary_rate"], tuple):
            d["boundary_rate"] = list(d["boundary_rate"])
        d["cuts4"] = [list(pair) for pair in d["cuts4"]]
        d["intervals"] = list(d["intervals"])
        return d

    def observable_options(self):
        """The keyword arguments of `anderson_mpi.observables.make_layout` besides shape and cuts."""
        return dict(m3_split=self.m3_split, cuts4=self.cuts4, cuts4_schedule=self.cuts4_schedule,
                    intervals=self.intervals, interval_probes=self.interval_probes,
                    interval_pair_fraction=self.interval_pair_fraction,
                    interval_exact_moments=self.interval_exact_moments)

    def to_json(self):
        return json.dumps(asdict(self), sort_keys=True)


def run_key(geometry, Nx, Ny, Nz, model="anderson"):
    """Integer key of a model, geometry and size for the seed sequence (independent of W, gamma)."""
    code = MODELS.index(model) * 4 + ("cube", "quasi1d", "chain").index(geometry)
    return code * 10**9 + Nx * 10**6 + Ny * 10**3 + Nz


def load_job(path):
    """Read a job file; raise `PlanError` for a missing, unreadable, non-UTF-8 or bad TOML file."""
    path = Path(path)
    if not path.is_file():
        raise PlanError(f"job file {str(path)!r} does not exist")
    try:
        text = path.read_bytes().decode("utf-8")
    except UnicodeDecodeError as err:
        raise PlanError(f"job file {str(path)!r} is not UTF-8 text (byte {err.start}: "
                        f"{err.object[err.start:err.start + 1]!r})") from None
    except OSError as err:
        raise PlanError(f"job file {str(path)!r} cannot be read: {err.strerror}") from None
    try:
        job = tomllib.loads(text)
    except tomllib.TOMLDecodeError as err:
        raise PlanError(f"job file {str(path)!r} is not valid TOML: {err}") from None
    return job, text


def _is_int(v):
    return isinstance(v, int) and not isinstance(v, bool)


def _is_num(v):
    return (isinstance(v, (int, float)) and not isinstance(v, bool)) and math.isfinite(v)


def _int_list(job, key, minimum=1):
    value = job[key]
    if _is_int(value):
        value = [value]
    if not isinstance(value, list) or not value or not all(_is_int(v) for v in value):
        raise PlanError(f"{key}: expected a non-empty list of integers, got {value!r}")
    for v in value:
        if v < minimum:
            raise PlanError(f"{key}: every entry must be >= {minimum}, got {v}")
    return value


def _num(job, key):
    value = job[key]
    if not _is_num(value):
        raise PlanError(f"{key}: expected a finite number, got {value!r}")
    return float(value)


def _num_list(cfg, key, what):
    value = cfg[key]
    if _is_num(value):
        value = [value]
    if not isinstance(value, list) or not all(_is_num(v) for v in value):
        raise PlanError(f"{key}: expected {what}, got {cfg[key]!r}")
    return [float(v) for v in value]


# --- the steps of make_plan -------------------------------------------------------------------

def _merged(job, overrides):
    """Defaults, then the job file, then the command line; unknown keys refused."""
    unknown = sorted(set(job) - set(DEFAULTS))
    if unknown:
        raise PlanError(f"unknown key {unknown[0]!r} in job (known: {', '.join(DEFAULTS)})")
    cfg = dict(DEFAULTS)
    cfg.update(job)
    for key, value in (overrides or {}).items():
        if value is not None:
            cfg[key] = value
    model = cfg["model"]
    if model not in MODELS:
        raise PlanError(f"model: expected one of {', '.join(map(repr, MODELS))}, got {model!r}")
    given = set(job) | {key for key, value in (overrides or {}).items() if value is not None}
    for key in sorted(given - set(COMMON_KEYS) - set(MODEL_KEYS[model])):
        owners = [m for m in MODELS if key in MODEL_KEYS[m]]
        raise PlanError(f"{key}: not a key of model {model!r} (a key of {' and '.join(map(repr, owners))})")
    for key in REQUIRED + (("W",) if model == "anderson" else ()):
        if cfg[key] is None:
            raise PlanError(f"{key}: required key missing")
    return cfg


def _shapes(cfg):
    """The (Nx, Ny, Nz) of every size of the job's geometry."""
    geometry = cfg["geometry"]
    allowed = GEOMETRIES[cfg["model"]]
    if geometry not in allowed:
        raise PlanError(f"geometry: expected {' or '.join(map(repr, allowed))} for model "
                        f"{cfg['model']!r}, got {geometry!r}")
    sizes = _int_list(cfg, "sizes", minimum=2 if geometry == "chain" else 1)
    if geometry == "chain":
        return [(N, 1, 1) for N in sizes]
    if geometry == "cube":
        if cfg["transverse"] is not None:
            raise PlanError("transverse: only for geometry 'quasi1d' (a cube has Ny = Nz = N)")
        return [(N, N, N) for N in sizes]
    if cfg["transverse"] is None:
        raise PlanError("transverse: required for geometry 'quasi1d' ([Ny, Nz])")
    transverse = _int_list(cfg, "transverse")
    if len(transverse) != 2:
        raise PlanError(f"transverse: expected [Ny, Nz], got {cfg['transverse']!r}")
    return [(N, transverse[0], transverse[1]) for N in sizes]


def _sampling(cfg):
    """samples, block_size, seed, petsc_group_size: integers with their bounds."""
    for key in ("samples", "block_size", "seed", "petsc_group_size"):
        if not _is_int(cfg[key]):
            raise PlanError(f"{key}: expected an integer, got {cfg[key]!r}")
    for key, minimum in (("samples", 1), ("block_size", 1), ("seed", 0), ("petsc_group_size", 1)):
        if cfg[key] < minimum:
            raise PlanError(f"{key}: must be >= {minimum}, got {cfg[key]}")
    return {key: cfg[key] for key in ("samples", "block_size", "seed", "petsc_group_size")}


def _observables(cfg):
    """cuts, cuts4 and m3_split: the observables every model's samples get."""
    cuts = _num_list(cfg, "cuts", "a list of numbers in [0, 1]")
    for z in cuts:
        if not 0 <= z <= 1:
            raise PlanError(f"cuts: every cut must lie in [0, 1], got {z}")
    cuts4 = cfg["cuts4"]
    if not isinstance(cuts4, list) or not all(
            isinstance(p, list) and len(p) == 2 and all(_is_num(z) for z in p) for p in cuts4):
        raise PlanError(f"cuts4: expected a list of [zc, zd] pairs of numbers in [0, 1], got {cuts4!r}")
    for pair in cuts4:
        if not all(0 <= z <= 1 for z in pair):
            raise PlanError(f"cuts4: every fraction must lie in [0, 1], got {pair}")
    if not isinstance(cfg["m3_split"], bool):
        raise PlanError(f"m3_split: expected true or false, got {cfg['m3_split']!r}")
    from ..observables.cutpairs import SCHEDULES
    if cfg["cuts4_schedule"] not in SCHEDULES:
        raise PlanError(f"cuts4_schedule: expected one of {', '.join(map(repr, SCHEDULES))}, "
                        f"got {cfg['cuts4_schedule']!r}")
    grid = _num_list(cfg, "intervals", "a list of fractions x in (0, 1]")
    if any(not 0 < x <= 1 for x in grid):
        raise PlanError(f"intervals: every x must lie in (0, 1], got {cfg['intervals']!r}")
    if len(set(grid)) != len(grid):
        raise PlanError(f"intervals: the grid has repeated points, got {cfg['intervals']!r}")
    probes = cfg["interval_probes"]
    if not _is_int(probes) or probes < 1:
        raise PlanError(f"interval_probes: expected an integer >= 1, got {probes!r}")
    fraction = cfg["interval_pair_fraction"]
    if not _is_num(fraction) or not 0 < fraction <= 1:
        raise PlanError(f"interval_pair_fraction: expected a number in (0, 1], got {fraction!r}")
    if not isinstance(cfg["interval_exact_moments"], bool):
        raise PlanError(f"interval_exact_moments: expected true or false, "
                        f"got {cfg['interval_exact_moments']!r}")
    return {"cuts": tuple(cuts), "cuts4": tuple(tuple(float(z) for z in pair) for pair in cuts4),
            "m3_split": cfg["m3_split"], "cuts4_schedule": cfg["cuts4_schedule"],
            "intervals": tuple(sorted(grid)), "interval_probes": int(probes),
            "interval_pair_fraction": float(fraction),
            "interval_exact_moments": cfg["interval_exact_moments"]}


def _physics(cfg):
    """Anderson model: W list, hopping, energies, solver and tolerance."""
    W = _num_list(cfg, "W", "a non-empty list of finite numbers")
    if not W:
        raise PlanError(f"W: expected a non-empty list of finite numbers, got {cfg['W']!r}")
    if any(w < 0 for w in W):
        raise PlanError(f"W: disorder strength must be >= 0, got {min(W)}")
    hopping = cfg["hopping"] if cfg["hopping"] is not None else [1.0, 0.4, 0.4]
    if not isinstance(hopping, list) or len(hopping) != 3 or not all(_is_num(t) for t in hopping):
        raise PlanError(f"hopping: expected three finite numbers [tx, ty, tz], got {hopping!r}")
    if hopping[0] <= 0:
        raise PlanError(f"hopping: tx must be > 0, got {hopping[0]}")
    if cfg["solver"] not in ("transfer", "petsc"):
        raise PlanError(f"solver: expected 'transfer' or 'petsc', got {cfg['solver']!r}")
    if cfg["solver"] == "petsc":
        import importlib.util
        if importlib.util.find_spec("petsc4py") is None:
            raise PlanError("solver: 'petsc' needs petsc4py, which is not installed "
                            "(make install PETSC_DIR=<a complex PETSc> builds it)")
    tol = _num(cfg, "unitarity_tol")
    if tol <= 0:
        raise PlanError(f"unitarity_tol: must be > 0, got {tol}")
    return {"W": W, "hopping": tuple(float(t) for t in hopping), "e_plus": _num(cfg, "e_plus"),
            "e_minus": _num(cfg, "e_minus"), "solver": cfg["solver"], "unitarity_tol": tol}


def _chain_physics(cfg, shapes):
    """QSSEP and dephasing: per run (one size, one gamma) the model's keys, validated by
    building the model's setup (`anderson_mpi.engines.chains`): its one-line ValueError names
    the key. Returns ``[(shape, fields of Run)]``."""
    from ..engines import model_setup
    model = cfg["model"]
    given = {key: cfg[key] for key in CHAIN_KEYS}
    for key in ("n_left", "n_right", "dt", "relax_time"):
        if given[key] is not None and not _is_num(given[key]):
            raise PlanError(f"{key}: expected a finite number, got {given[key]!r}")
    rate = given["boundary_rate"]
    if rate is not None:
        if _is_num(rate):
            rate = float(rate)
        elif isinstance(rate, list) and len(rate) == 2 and all(_is_num(r) for r in rate):
            rate = tuple(float(r) for r in rate)
        else:
            raise PlanError(f"boundary_rate: expected a number or [left, right], got {rate!r}")
    base = {key: (float(v) if _is_num(v) else v) for key, v in given.items()}
    base["boundary_rate"] = rate
    sweep = [None]
    if model == "qssep":
        if cfg["D"] is not None and not _is_num(cfg["D"]):
            raise PlanError(f"D: expected a finite number, got {cfg['D']!r}")
        base["D"] = float(cfg["D"]) if cfg["D"] is not None else 1.0
        hopping = None
    else:
        gammas = cfg["gamma"] if cfg["gamma"] is not None else [1.0]
        sweep = _num_list({"gamma": gammas}, "gamma", "a non-empty list of finite numbers")
        if not sweep:
            raise PlanError(f"gamma: expected a non-empty list of finite numbers, got {gammas!r}")
        hopping = cfg["hopping"]
        if hopping is None:
            hopping = [1.0] if cfg["geometry"] == "chain" else [1.0, 0.4, 0.4]
        if _is_num(hopping):
            hopping = [hopping]
        if not isinstance(hopping, list) or not all(_is_num(t) for t in hopping):
            raise PlanError(f"hopping: expected a list of finite numbers, got {hopping!r}")
        hopping = tuple(float(t) for t in hopping)
    out = []
    for gamma in sweep:
        for shape in shapes:
            fields = dict(base, model=model, gamma=gamma, hopping=hopping)
            run = Run(job="", geometry=cfg["geometry"], Nx=shape[0], Ny=shape[1], Nz=shape[2], W=None,
                      samples=1, block_size=1, seed=0, e_plus=None, e_minus=None, cuts=(), cuts4=(),
                      m3_split=False, solver=model, petsc_group_size=1, unitarity_tol=1.0, path="",
                      **fields)
            try:
                setup = model_setup(run)
            except ValueError as err:
                raise PlanError(str(err)) from None
            # the setup's resolved defaults are part of the run (and of what a resume must match)
            fields.update(D=getattr(setup, "D", None), n_left=setup.n_left, n_right=setup.n_right,
                          boundary_rate=(setup.rate_left if setup.rate_left == setup.rate_right
                                         else (setup.rate_left, setup.rate_right)),
                          dt=setup.dt, relax_time=setup.relax_time)
            out.append((shape, fields))
    return out


def analysis_options(table):
    """Validate a job's ``[analysis]`` table; return its keys with defaults filled in."""
    if table is None:
        return dict(ANALYSIS_KEYS)
    if not isinstance(table, dict):
        raise PlanError(f"analysis: expected a table [analysis], got {table!r}")
    unknown = sorted(set(table) - set(ANALYSIS_KEYS))
    if unknown:
        raise PlanError(f"analysis.{unknown[0]}: unknown key (known: {', '.join(ANALYSIS_KEYS)})")
    out = dict(ANALYSIS_KEYS)
    for key, value in table.items():
        if not _is_int(value) or value < 0:
            raise PlanError(f"analysis.{key}: expected an integer >= 0, got {value!r}")
        out[key] = value
    return out


def _check_leads(shapes, physics):
    """Every transverse size needs an open channel and no channel at a band edge, at both
    energies (evanescent channels are fine). The line names the energy and the hopping. Checked
    on the 1d transverse bands: validating a job never allocates anything of the run's size."""
    from ..system import check_energies
    for shape in dict.fromkeys(shapes):
        try:
            check_energies(shape, physics["hopping"], physics["e_plus"], physics["e_minus"])
        except ValueError as err:
            key = str(err).split(":", 1)[0]
            raise PlanError(f"{key}/hopping: {str(err).split(': ', 1)[-1]}") from None


def make_plan(job, job_name="job", overrides=None):
    """Validate a job (dict from TOML) and expand it into runs.

    Parameters
    ----------
    job : dict
    job_name : str
        Default name (the job file's stem).
    overrides : dict, optional
        Command-line values: ``W`` (list), ``sizes`` (list), ``samples`` (int), ``output`` (str),
        ``memory_per_rank``.

    Returns
    -------
    list of Run

    Raises
    ------
    PlanError
    """
    cfg = _merged(job, overrides)
    name = cfg["name"] if cfg["name"] is not None else job_name
    if not isinstance(name, str) or not name:
        raise PlanError(f"name: expected a non-empty string, got {name!r}")
    shapes = _shapes(cfg)
    sampling = _sampling(cfg)
    observables = _observables(cfg)
    analysis_options(cfg["analysis"])
    memory = None
    if cfg["memory_per_rank"] is not None:
        from .memory import parse_size
        memory = parse_size(cfg["memory_per_rank"])
    output = cfg["output"] if cfg["output"] is not None else f"results/{name}"
    if not isinstance(output, str) or not output:
        raise PlanError(f"output: expected a directory path, got {output!r}")

    if cfg["model"] == "anderson":
        physics = _physics(cfg)
        _check_leads(shapes, physics)
        plan = [(shape, dict({k: v for k, v in physics.items() if k != "W"}, W=float(w)))
                for w in physics["W"] for shape in shapes]
    else:
        plan = [(shape, dict(fields, W=None, e_plus=None, e_minus=None, solver=cfg["model"],
                             unitarity_tol=float(DEFAULTS["unitarity_tol"])))
                for shape, fields in _chain_physics(cfg, shapes)]
    runs = []
    for (Nx, Ny, Nz), fields in plan:
        run = Run(job=name, geometry=cfg["geometry"], Nx=Nx, Ny=Ny, Nz=Nz, **fields, **observables,
                  **sampling, path="", memory_per_rank=memory)
        runs.append(replace(run, path=str(Path(output) / f"{run.label}.h5")))
    labels = [r.label for r in runs]
    if len(set(labels)) != len(labels):
        raise PlanError("W/gamma/sizes: duplicate runs (repeated W, gamma or size values)")
    return runs
