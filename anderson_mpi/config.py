"""Job files (TOML) -> a validated run plan, before any MPI work.

A job file is flat TOML; every key is optional except `geometry`, `sizes` and `W`:

    name = "demo"                 # label (default: the file's stem)
    geometry = "cube"             # "cube" (Nx = Ny = Nz = N) or "quasi1d" (Nx varies)
    sizes = [6, 8, 10]            # N (cube) or Nx (quasi1d)
    transverse = [8, 8]           # [Ny, Nz], quasi1d only
    W = [6.0]                     # disorder strengths, >= 0
    samples = 200                 # disorder samples per run
    block_size = 10               # samples per seed block (unit of work, checkpoint, jackknife)
    seed = 20240601               # base seed; sample s of a run uses SeedSequence([seed, key, s])
    hopping = [1.0, 0.4, 0.4]     # (tx, ty, tz)
    e_plus = 0.2                  # energy of the right incomers
    e_minus = -0.2                # energy of the left incomers
    cuts = [0.23, 0.5]            # third order: fixed slice fractions z in [0, 1]
    solver = "transfer"           # "transfer" or "petsc"
    petsc_group_size = 1          # ranks per sample with solver = "petsc"
    unitarity_tol = 1e-8          # a sample whose unitarity error exceeds this stops the run
    output = "results/demo"       # directory of the result files (relative to the cwd)

Errors are `PlanError` with a one-line message that names the field.
"""
from __future__ import annotations

import json
import math
import tomllib
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

__all__ = ["PlanError", "Run", "load_job", "make_plan", "run_key"]

SCHEMA_VERSION = 1


class PlanError(ValueError):
    """Bad input in a job file or on the command line (one line, names the field)."""


DEFAULTS = {
    "name": None,
    "geometry": None,
    "sizes": None,
    "transverse": None,
    "W": None,
    "samples": 100,
    "block_size": 10,
    "seed": 20240601,
    "hopping": [1.0, 0.4, 0.4],
    "e_plus": 0.2,
    "e_minus": -0.2,
    "cuts": [0.23, 0.5],
    "solver": "transfer",
    "petsc_group_size": 1,
    "unitarity_tol": 1e-8,
    "output": None,
}
REQUIRED = ("geometry", "sizes", "W")


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
    solver: str
    petsc_group_size: int
    unitarity_tol: float
    path: str = field(compare=False)

    @property
    def n_blocks(self):
        return math.ceil(self.samples / self.block_size)

    @property
    def label(self):
        size = f"N{self.Nx}" if self.geometry == "cube" else f"Nx{self.Nx}_Ny{self.Ny}_Nz{self.Nz}"
        return f"{self.geometry}_{size}_W{self.W:g}"

    def physics(self):
        """What a resume must match exactly: everything that fixes the samples and their sums.

        The job's name, the path, the tolerance and the PETSc group size may change.
        """
        d = asdict(self)
        for key in ("job", "path", "unitarity_tol", "petsc_group_size"):
            d.pop(key)
        d["hopping"], d["cuts"] = list(d["hopping"]), list(d["cuts"])
        return d

    def to_json(self):
        return json.dumps(asdict(self), sort_keys=True)


def run_key(geometry, Nx, Ny, Nz):
    """Integer key of a geometry and size for the seed sequence (independent of W)."""
    return ((0 if geometry == "cube" else 1) * 10**9 + Nx * 10**6 + Ny * 10**3 + Nz)


def load_job(path):
    """Read a job file; raise `PlanError` for a missing file or bad TOML."""
    path = Path(path)
    if not path.is_file():
        raise PlanError(f"job file {str(path)!r} does not exist")
    try:
        with open(path, "rb") as fh:
            job = tomllib.load(fh)
    except tomllib.TOMLDecodeError as err:
        raise PlanError(f"job file {str(path)!r} is not valid TOML: {err}") from None
    text = path.read_text()
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


def make_plan(job, job_name="job", overrides=None):
    """Validate a job (dict from TOML) and expand it into runs.

    Parameters
    ----------
    job : dict
    job_name : str
        Default name (the job file's stem).
    overrides : dict, optional
        Command-line values: ``W`` (list), ``sizes`` (list), ``samples`` (int), ``output`` (str).

    Returns
    -------
    list of Run

    Raises
    ------
    PlanError
    """
    unknown = sorted(set(job) - set(DEFAULTS))
    if unknown:
        raise PlanError(f"unknown key {unknown[0]!r} in job (known: {', '.join(DEFAULTS)})")
    cfg = {k: v for k, v in DEFAULTS.items()}
    cfg.update(job)
    for key, value in (overrides or {}).items():
        if value is not None:
            cfg[key] = value
    for key in REQUIRED:
        if cfg[key] is None:
            raise PlanError(f"{key}: required key missing")

    name = cfg["name"] if cfg["name"] is not None else job_name
    if not isinstance(name, str) or not name:
        raise PlanError(f"name: expected a non-empty string, got {name!r}")
    geometry = cfg["geometry"]
    if geometry not in ("cube", "quasi1d"):
        raise PlanError(f"geometry: expected 'cube' or 'quasi1d', got {geometry!r}")
    sizes = _int_list(cfg, "sizes")
    if geometry == "quasi1d":
        if cfg["transverse"] is None:
            raise PlanError("transverse: required for geometry 'quasi1d' ([Ny, Nz])")
        transverse = _int_list(cfg, "transverse")
        if len(transverse) != 2:
            raise PlanError(f"transverse: expected [Ny, Nz], got {cfg['transverse']!r}")
    elif cfg["transverse"] is not None:
        raise PlanError("transverse: only for geometry 'quasi1d' (a cube has Ny = Nz = N)")

    W = cfg["W"]
    if _is_num(W):
        W = [W]
    if not isinstance(W, list) or not W or not all(_is_num(w) for w in W):
        raise PlanError(f"W: expected a non-empty list of finite numbers, got {cfg['W']!r}")
    if any(w < 0 for w in W):
        raise PlanError(f"W: disorder strength must be >= 0, got {min(W)}")
    for key in ("samples", "block_size", "seed", "petsc_group_size"):
        if not _is_int(cfg[key]):
            raise PlanError(f"{key}: expected an integer, got {cfg[key]!r}")
    if cfg["samples"] < 1:
        raise PlanError(f"samples: must be >= 1, got {cfg['samples']}")
    if cfg["block_size"] < 1:
        raise PlanError(f"block_size: must be >= 1, got {cfg['block_size']}")
    if cfg["seed"] < 0:
        raise PlanError(f"seed: must be >= 0, got {cfg['seed']}")
    if cfg["petsc_group_size"] < 1:
        raise PlanError(f"petsc_group_size: must be >= 1, got {cfg['petsc_group_size']}")
    hopping = cfg["hopping"]
    if not isinstance(hopping, list) or len(hopping) != 3 or not all(_is_num(t) for t in hopping):
        raise PlanError(f"hopping: expected three finite numbers [tx, ty, tz], got {hopping!r}")
    if hopping[0] <= 0:
        raise PlanError(f"hopping: tx must be > 0, got {hopping[0]}")
    e_plus, e_minus = _num(cfg, "e_plus"), _num(cfg, "e_minus")
    cuts = cfg["cuts"]
    if _is_num(cuts):
        cuts = [cuts]
    if not isinstance(cuts, list) or not all(_is_num(z) for z in cuts):
        raise PlanError(f"cuts: expected a list of numbers in [0, 1], got {cfg['cuts']!r}")
    for z in cuts:
        if not 0 <= z <= 1:
            raise PlanError(f"cuts: every cut must lie in [0, 1], got {z}")
    if cfg["solver"] not in ("transfer", "petsc"):
        raise PlanError(f"solver: expected 'transfer' or 'petsc', got {cfg['solver']!r}")
    tol = _num(cfg, "unitarity_tol")
    if tol <= 0:
        raise PlanError(f"unitarity_tol: must be > 0, got {tol}")
    output = cfg["output"] if cfg["output"] is not None else f"results/{name}"
    if not isinstance(output, str) or not output:
        raise PlanError(f"output: expected a directory path, got {output!r}")

    # Evanescent channels: check the lead modes of every transverse size at both energies.
    from .model import lead_modes
    shapes = [(N, N, N) if geometry == "cube" else (N, transverse[0], transverse[1]) for N in sizes]
    for _, Ny, Nz in shapes:
        for key, energy in (("e_plus", e_plus), ("e_minus", e_minus)):
            try:
                lead_modes(Ny, Nz, energy, hopping)
            except ValueError as err:
                raise PlanError(f"{key}/hopping: {err}") from None

    runs = []
    for w in W:
        for Nx, Ny, Nz in shapes:
            run = Run(job=name, geometry=geometry, Nx=Nx, Ny=Ny, Nz=Nz, W=float(w),
                      samples=cfg["samples"], block_size=cfg["block_size"], seed=cfg["seed"],
                      hopping=tuple(float(t) for t in hopping), e_plus=e_plus, e_minus=e_minus,
                      cuts=tuple(float(z) for z in cuts), solver=cfg["solver"],
                      petsc_group_size=cfg["petsc_group_size"], unitarity_tol=tol, path="")
            runs.append(replace(run, path=str(Path(output) / f"{run.label}.h5")))
    labels = [r.label for r in runs]
    if len(set(labels)) != len(labels):
        raise PlanError("W/sizes: duplicate runs (repeated W or size values)")
    return runs
