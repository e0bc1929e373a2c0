"""QSSEP and the dephasing model on a chain: independent trajectories of the correlation matrix.

docs/theory.md §12. Sites ``0..N-1``, ``G_ij = tr(rho c_j^+ c_i)``
(N x N, Hermitian, eigenvalues in [0, 1]); a unitary u acts as ``G <- u G u^+``. A sample is one
trajectory's G after ``n_steps`` steps of length ``dt`` started from ``G = diag(n)``, n the exact
stationary mean profile of continuous-time QSSEP (with the model's ``D_eff``).

**QSSEP.** Each bond (a, a+1) evolves by an independent Brownian unitary
``dh = dW E_ab + h.c.``, ``E|dW|^2 = D dt``. Any 2x2 unitary is a diagonal (gauge) unitary times
a rotation of the Bloch vector of the bond's 2x2 block by a tilt T about an axis in the xy
plane. The law of the bond dynamics is invariant under gauge transformations, so the gauge
factor never changes the law of a gauge-invariant quantity (every observable of the pipeline is
one) and the axis is uniform and independent of T. The exact evolution of a bond over a time
``s`` is therefore reproduced, for every gauge-invariant quantity and at every order, by
``u = [[cos(T/2), z], [-conj(z), cos(T/2)]]``, ``z = sin(T/2) exp(i phi)``, phi uniform and T
the polar angle of a Brownian motion on the unit sphere at time ``D s``
(``E P_l(cos T) = exp(-l (l+1) D s)``: the bond's generator restricted to the m = 0 sector is
the spherical Laplacian). T is drawn by its tabulated quantile function (`TiltLaw`). A Gaussian
``w`` with ``E|w|^2 = D dt`` instead gets the bond's mean transfer wrong at O(dt^2) per step,
which biases the stationary state at O(dt).

What remains is the splitting of the generator into even bonds (E: (0,1), (2,3), ...), odd bonds
(O) and boundaries (Bd), each done exactly. One step is the symmetric (Strang) product
``E(dt/2) Bd(dt/2) O(dt) Bd(dt/2) E(dt/2)`` (consecutive half layers merged), whose stationary
state is exact up to O(dt^2). Its mean profile carries a staggered error ``+-c (-1)^i`` that
changes sign between the state after ``E(dt/2)`` and the state half a layer later, after
``E(dt/2) Bd(dt/2) O(dt/2)``: each trajectory ends at one of the two, chosen by a fair coin from
its own random numbers. With ``boundary_rate = 2 D`` this makes the sample mean profile exact at
any dt; every other second moment keeps an O(dt^2) bias (docs/theory.md §12.4, "Bias at the default step").

**Dephasing.** Tight-binding hopping ``H0 = -t sum (c_i^+ c_{i+1} + h.c.)`` done by exact bond
rotations in the same brick wall (E, O), and Brownian on-site potentials,
``G_ij <- G_ij exp(-i sqrt(gamma) (b_i - b_j))`` with ``b_i ~ N(0, h)`` over a time h (exact),
which commute with the boundary maps (C = dephasing and boundaries). One step is
``E(dt/2) C(dt/2) O(dt) C(dt/2) E(dt/2)``; dt must resolve ``1/gamma`` and ``1/t``.

**Boundaries** (both models). Injection/extraction at site 0 (L) and N-1 (R) with
``alpha + beta = boundary_rate``, ``n = alpha/(alpha + beta)``, exact over a time h for
Gaussian states: ``G_ee <- n + (G_ee - n) exp(-rate h)``, the rest of row and column e times
``exp(-rate h / 2)``.

**Reproducibility.** Every trajectory draws its numbers from its own
``numpy.random.default_rng(seed_sequence)``, in chunks of a fixed number of layers, so a
sample's G depends only on its seed and the setup, never on the other samples of its block.

Pure numpy: arrays in, arrays out, no MPI and no files.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from numbers import Real

import numpy as np

__all__ = ["MODELS", "DEFAULT_DT_QSSEP", "DEFAULT_DT_DEPHASING", "TiltLaw", "ChainSetup",
           "simulate_block", "mode_matrices_from_G", "chain_signature", "EIGENVALUE_TOL"]

MODELS = ("qssep", "dephasing")
# Default time steps (dimensionless): QSSEP dt = DEFAULT_DT_QSSEP / D; dephasing
# dt = DEFAULT_DT_DEPHASING / (gamma + 2 t + t^2 / gamma). Chosen from the exact discrete-time
# moment equations (docs/theory.md §12.4, "Bias at the default step").
DEFAULT_DT_QSSEP = 0.1
DEFAULT_DT_DEPHASING = 0.1
# Eigenvalues of a correlation matrix lie in [0, 1]; rounding may push them out by this much.
EIGENVALUE_TOL = 1e-9
# Layers of random numbers drawn per call of a trajectory's generator (a fixed number, so that
# the stream of a trajectory never depends on its block).
CHUNK_LAYERS = 64
# Trajectories advanced together by the numpy kernels (larger blocks are split: same samples).
_NUMPY_BATCH = 256
# Quantile table of the tilt: Theta tabulated on a uniform grid of v = sqrt(-log(1 - u)), in which
# the quantile function is nearly linear (exactly linear in the small-time Rayleigh limit).
_TILT_GRID = 2048
_TILT_VMAX = 6.5          # P(v > 6.5) = exp(-42.25) ~ 4e-19


# ------------------------------------------------------------------------------------------
# the law of the tilt
# ------------------------------------------------------------------------------------------

def _legendre_cdf(theta, tau, lmax):
    """``P(T <= theta)`` and the density of T at theta for ``E P_l(cos T) = exp(-l(l+1) tau)``.

    ``P(T <= theta) = (1 - y)/2 - sum_{l>=1} exp(-l(l+1) tau) (P_{l+1}(y) - P_{l-1}(y))/2``
    (``y = cos theta``, from ``int_y^1 P_l = (P_{l-1}(y) - P_{l+1}(y))/(2l+1)``), the density
    ``sin(theta) sum_l (2l+1)/2 exp(-l(l+1) tau) P_l(y)``.
    """
    y = np.cos(theta)
    p_prev, p_cur = np.ones_like(y), y.copy()          # P_0, P_1
    cdf = (1 - y) / 2
    dens = 0.5 * np.ones_like(y) + 1.5 * math.exp(-2 * tau) * y
    for l in range(1, lmax + 1):
        p_next = ((2 * l + 1) * y * p_cur - l * p_prev) / (l + 1)   # P_{l+1}
        weight = math.exp(-l * (l + 1) * tau)
        cdf -= weight * (p_next - p_prev) / 2
        if l + 1 <= lmax:
            dens += (2 * l + 3) / 2 * math.exp(-(l + 1) * (l + 2) * tau) * p_next
        p_prev, p_cur = p_cur, p_next
    return cdf, dens * np.sin(theta)


@dataclass(frozen=True, eq=False)
class TiltLaw:
    """The tilt T of an exact bond evolution over ``tau = D s``: the polar angle of a Brownian
    motion on the unit sphere, ``E P_l(cos T) = exp(-l (l+1) tau)``.

    Sampled as ``T = Q(sqrt(E))``, E standard exponential, Q tabulated on ``grid + 1`` points of
    ``v in [0, vmax]`` and interpolated linearly (``Q(v) = F^-1(1 - exp(-v^2))``).

    Attributes
    ----------
    tau : float
    v_step : float
    table : ndarray (grid + 1,)
        ``Q`` at ``v = k * v_step`` (read-only).
    """

    tau: float
    v_step: float
    table: np.ndarray

    @classmethod
    def build(cls, tau, grid=_TILT_GRID, vmax=_TILT_VMAX):
        tau = float(tau)
        if not (tau > 0 and math.isfinite(tau)):
            raise ValueError(f"tilt law: tau = D * dt must be > 0 and finite, got {tau}")
        lmax = int(math.ceil(math.sqrt(45.0 / tau))) + 8
        theta_max = min(math.pi, 14.0 * math.sqrt(tau))
        v = np.linspace(0.0, vmax, grid + 1)
        target = -np.expm1(-v * v)
        # start from a fine grid, then Newton on F(theta) = target (F is smooth and increasing)
        fine = np.linspace(0.0, theta_max, 8193)
        cdf_fine, _ = _legendre_cdf(fine, tau, lmax)
        cdf_fine = np.maximum.accumulate(cdf_fine)
        theta = np.interp(target, cdf_fine, fine)
        inner = (target > 1e-14) & (target < cdf_fine[-1] - 1e-15)
        for _ in range(4):
            cdf, dens = _legendre_cdf(theta[inner], tau, lmax)
            step = (cdf - target[inner]) / np.maximum(dens, 1e-300)
            theta[inner] = np.clip(theta[inner] - step, 0.0, theta_max)
        theta[0] = 0.0
        theta[~inner & (target >= cdf_fine[-1] - 1e-15)] = theta_max
        theta = np.maximum.accumulate(theta)
        theta.setflags(write=False)
        return cls(tau=tau, v_step=vmax / grid, table=theta)

    def sample(self, exponential):
        """Tilts for standard exponential numbers ``exponential`` (any shape)."""
        pos = np.sqrt(exponential) / self.v_step
        idx = np.minimum(pos.astype(np.int64), len(self.table) - 2)
        frac = np.minimum(pos - idx, 1.0)
        return self.table[idx] + frac * (self.table[idx + 1] - self.table[idx])

    def moment(self, func, nodes=8):
        """``E func(T)`` under the tabulated law (Gauss-Legendre on every table interval)."""
        x, w = np.polynomial.legendre.leggauss(nodes)
        v = (np.arange(len(self.table) - 1)[:, None] + (x[None, :] + 1) / 2) * self.v_step
        # u = 1 - exp(-v^2): du = 2 v exp(-v^2) dv; theta linear in v on each interval
        k = np.arange(len(self.table) - 1)[:, None]
        theta = self.table[k] + (v / self.v_step - k) * (self.table[k + 1] - self.table[k])
        dens = 2 * v * np.exp(-v * v) * self.v_step / 2
        return float(np.sum(w[None, :] * dens * func(theta)))


# ------------------------------------------------------------------------------------------
# the setup
# ------------------------------------------------------------------------------------------

_MODEL_KEYS = {"qssep": ("D",), "dephasing": ("gamma", "hopping")}


def check_number(name, value, *, lower=None, strict=False, upper=None):
    if isinstance(value, bool) or not isinstance(value, (Real, np.integer, np.floating)):
        raise ValueError(f"{name}: must be a number, got {value!r}")
    value = float(value)
    if not math.isfinite(value):
        raise ValueError(f"{name}: must be finite, got {value}")
    if lower is not None and (value <= lower if strict else value < lower):
        raise ValueError(f"{name}: must be {'>' if strict else '>='} {lower:g}, got {value:g}")
    if upper is not None and value > upper:
        raise ValueError(f"{name}: must be <= {upper:g}, got {value:g}")
    return value


def check_pair(name, value):
    if isinstance(value, (list, tuple, np.ndarray)):
        values = list(value)
        if len(values) != 2:
            raise ValueError(f"{name}: one number or two (left, right), got {len(values)} values")
        return tuple(check_number(name, v, lower=0.0, strict=True) for v in values)
    rate = check_number(name, value, lower=0.0, strict=True)
    return rate, rate


def _single_hopping(value):
    if isinstance(value, (list, tuple, np.ndarray)):
        values = list(value)
        if len(values) != 1:
            raise ValueError(f"hopping: the chain has one hopping t, got {len(values)} values")
        value = values[0]
    return check_number("hopping", value, lower=0.0, strict=True)


@dataclass(frozen=True, eq=False)
class ChainSetup:
    """Everything a chain run shares, validated and built once (`ChainSetup.build`).

    Attributes
    ----------
    model : {"qssep", "dephasing"}
    N : int
        Sites 0..N-1 (N >= 2).
    D : float or None
        QSSEP bulk rate (qssep only).
    gamma, hopping : float or None
        Dephasing rate and hopping t (dephasing only).
    n_left, n_right : float
        Boundary densities in [0, 1].
    rate_left, rate_right : float
        ``alpha + beta`` at site 0 and at site N-1.
    dt : float
    relax_time : float
    n_steps : int
        ``ceil(relax_time / dt)`` steps; a trajectory runs ``n_steps * dt`` (QSSEP: plus half a
        layer on the trajectories that end at the odd phase).
    initial_density : ndarray (N,)
        The exact stationary mean profile of continuous-time QSSEP with ``D_eff``: the start.
    """

    model: str
    N: int
    D: float | None
    gamma: float | None
    hopping: float | None
    n_left: float
    n_right: float
    rate_left: float
    rate_right: float
    dt: float
    relax_time: float
    n_steps: int
    initial_density: np.ndarray
    tilt_full: TiltLaw | None = None
    tilt_half: TiltLaw | None = None

    @classmethod
    def build(cls, model, N, *, D=None, gamma=None, hopping=None, n_left=0.0, n_right=1.0,
              boundary_rate=None, dt=None, relax_time=None):
        """Validate the keys of one run and build its setup.

        Defaults: ``D = 1`` (qssep), ``gamma = 1`` and ``hopping = 1`` (dephasing),
        ``boundary_rate = 2 D_eff`` (``D_eff = D``, or ``2 t^2 / gamma``), ``dt`` (module
        constants), ``relax_time = 5 L^2 / (pi^2 D_eff)`` with ``L = N - 1 + a + b``,
        ``a = D_eff / rate_left``, ``b = D_eff / rate_right``.

        Raises
        ------
        ValueError
            One line that starts with the offending key: ``"gamma: must be >= 0, got -1"``,
            ``"D: not a key of model 'dephasing' (a key of 'qssep')"``, ...
        """
        if model not in MODELS:
            raise ValueError(f"model: must be one of {', '.join(MODELS)}, got {model!r}")
        given = {"D": D, "gamma": gamma, "hopping": hopping}
        for other, keys in _MODEL_KEYS.items():
            if other == model:
                continue
            for key in keys:
                if given[key] is not None:
                    raise ValueError(f"{key}: not a key of model {model!r} (a key of {other!r})")
        if isinstance(N, bool) or not isinstance(N, (int, np.integer)) or N < 2:
            raise ValueError(f"N: must be an integer >= 2, got {N!r}")
        N = int(N)
        n_left = check_number("n_left", n_left, lower=0.0, upper=1.0)
        n_right = check_number("n_right", n_right, lower=0.0, upper=1.0)
        if model == "qssep":
            D = check_number("D", 1.0 if D is None else D, lower=0.0, strict=True)
            d_eff = D
        else:
            gamma = check_number("gamma", 1.0 if gamma is None else gamma, lower=0.0)
            hopping = _single_hopping(1.0 if hopping is None else hopping)
            d_eff = 2 * hopping**2 / gamma if gamma > 0 else math.inf
        if boundary_rate is None:
            if not math.isfinite(d_eff):
                raise ValueError("boundary_rate: no default at gamma = 0 (D_eff = 2 t^2 / gamma "
                                 "is infinite); give boundary_rate")
            boundary_rate = 2 * d_eff
        rate_left, rate_right = check_pair("boundary_rate", boundary_rate)
        if dt is None:
            if model == "qssep":
                dt = DEFAULT_DT_QSSEP / D
            else:
                scale = gamma + 2 * hopping + (hopping**2 / gamma if gamma > 0 else math.inf)
                if not math.isfinite(scale):
                    raise ValueError("dt: no default at gamma = 0; give dt")
                dt = DEFAULT_DT_DEPHASING / scale
        dt = check_number("dt", dt, lower=0.0, strict=True)
        if relax_time is None:
            if not math.isfinite(d_eff):
                raise ValueError("relax_time: no default at gamma = 0 (D_eff = 2 t^2 / gamma is "
                                 "infinite); give relax_time")
            L = N - 1 + d_eff / rate_left + d_eff / rate_right
            relax_time = 5 * L**2 / (math.pi**2 * d_eff)
        relax_time = check_number("relax_time", relax_time, lower=0.0)
        n_steps = int(math.ceil(relax_time / dt - 1e-9))
        if math.isfinite(d_eff):
            a, b = d_eff / rate_left, d_eff / rate_right
            profile = n_left + (n_right - n_left) * (np.arange(N) + a) / (N - 1 + a + b)
        else:  # ballistic limit: flat profile in the bulk
            profile = np.full(N, (n_left + n_right) / 2)
        profile.setflags(write=False)
        tilt_full = tilt_half = None
        if model == "qssep":
            tilt_full = TiltLaw.build(D * dt)
            tilt_half = TiltLaw.build(D * dt / 2)
        return cls(model=model, N=N, D=D if model == "qssep" else None,
                   gamma=gamma if model == "dephasing" else None,
                   hopping=hopping if model == "dephasing" else None,
                   n_left=n_left, n_right=n_right, rate_left=rate_left, rate_right=rate_right,
                   dt=dt, relax_time=relax_time, n_steps=n_steps, initial_density=profile,
                   tilt_full=tilt_full, tilt_half=tilt_half)

    @property
    def D_eff(self):
        """QSSEP's D, or ``2 t^2 / gamma`` for the dephasing model (its large-gamma QSSEP)."""
        if self.model == "qssep":
            return self.D
        return 2 * self.hopping**2 / self.gamma if self.gamma > 0 else math.inf

    @property
    def L(self):
        """``N - 1 + a + b``: the effective length of the mean profile."""
        return self.N - 1 + self.D_eff / self.rate_left + self.D_eff / self.rate_right

    @property
    def n_bond_slots(self):
        return self.N // 2


# ------------------------------------------------------------------------------------------
# the kernels
# ------------------------------------------------------------------------------------------

@dataclass(frozen=True, eq=False)
class _Schedule:
    """The layers of a trajectory, in order (arrays of one entry per layer).

    parity : 0 for the bonds (0,1), (2,3), ..., 1 for (1,2), (3,4), ...
    short : 1 if the layer lasts dt/2 (QSSEP: the half-time tilt law; dephasing: the half-time
        hopping), 0 if dt.
    before, after : a half step dt/2 of C (boundaries; with dephasing, also the on-site noise)
        before / after the layer.
    odd_end_only : applied only to the trajectories that end at the odd phase (QSSEP).
    """

    parity: np.ndarray
    short: np.ndarray
    before: np.ndarray
    after: np.ndarray
    odd_end_only: np.ndarray

    @classmethod
    def build(cls, model, n_steps):
        # E(dt/2) [C/2 O(dt) C/2 E(dt)] ... [C/2 O(dt) C/2 E(dt/2)]: 2 n + 1 layers
        count = 2 * n_steps + 1
        parity = np.arange(count, dtype=np.int64) % 2
        short = np.zeros(count, dtype=np.int64)
        short[[0, -1]] = 1
        odd = parity == 1
        before, after, odd_end_only = odd.copy(), odd.copy(), np.zeros(count, dtype=bool)
        if model == "qssep":
            # the odd-phase ending: E(dt/2) Bd(dt/2) O(dt/2)
            parity = np.append(parity, [0, 1])
            short = np.append(short, [1, 1])
            before = np.append(before, [False, False])
            after = np.append(after, [True, False])
            odd_end_only = np.append(odd_end_only, [True, True])
        return cls(parity, short, before, after, odd_end_only)

    def __len__(self):
        return len(self.parity)

    def chunk(self, start, stop):
        return _Schedule(*(np.ascontiguousarray(a[start:stop]) for a in
                           (self.parity, self.short, self.before, self.after, self.odd_end_only)))


def _qssep_draws(rngs, width):
    """One chunk of a QSSEP block's numbers: exponentials and uniforms (m, CHUNK_LAYERS, width)."""
    shape = (CHUNK_LAYERS, width)
    return (np.stack([rng.standard_exponential(shape) for rng in rngs]),
            np.stack([rng.random(shape) for rng in rngs]))


def _dephasing_draws(rngs, schedule, N):
    """One chunk of a dephasing block's numbers: a row of N normals per half step of C."""
    count = int(np.count_nonzero(schedule.before) + np.count_nonzero(schedule.after))
    return np.stack([rng.standard_normal((count, N)) for rng in rngs])


# -- numpy kernels (the block advances together, vectorized over trajectories and bonds) --

def _bond_layer(G, parity, cos_half, z):
    """``G <- U G U^+``, U the bonds (parity + 2k, parity + 2k + 1) of one layer, bond k acting
    by ``[[c_k, z_k], [-conj(z_k), c_k]]``.

    G : (m, N, N) complex, in place. cos_half : real, z : complex, each (m, nb) or scalar,
    nb = the layer's number of bonds.
    """
    m, N, _ = G.shape
    nb = (N - parity) // 2
    if nb == 0:
        return
    sites = slice(parity, parity + 2 * nb)
    c = np.broadcast_to(cos_half, (m, nb))
    z = np.broadcast_to(z, (m, nb))
    rows = G[:, sites, :].reshape(m, nb, 2, N)
    cols = G[:, :, sites].reshape(m, N, nb, 2)
    assert np.may_share_memory(rows, G) and np.may_share_memory(cols, G)  # views: in place
    upper, lower = rows[:, :, 0, :], rows[:, :, 1, :]
    new_upper = c[:, :, None] * upper + z[:, :, None] * lower
    lower *= c[:, :, None]
    lower -= z.conj()[:, :, None] * upper
    upper[...] = new_upper
    left, right = cols[..., 0], cols[..., 1]
    new_left = c[:, None, :] * left + z.conj()[:, None, :] * right
    right *= c[:, None, :]
    right -= z[:, None, :] * left
    left[...] = new_left


def _boundaries(G, setup, h):
    """Exact injection/extraction over a time h at both ends, in place."""
    N = setup.N
    for site, rate, density in ((0, setup.rate_left, setup.n_left),
                                (N - 1, setup.rate_right, setup.n_right)):
        half = math.exp(-rate * h / 2)
        G[:, site, :] *= half
        G[:, :, site] *= half
        G[:, site, site] += density * -math.expm1(-rate * h)


def _dephase(G, normals, sqrt_gamma_h):
    """``G_ij <- G_ij exp(-i sqrt(gamma h) (x_i - x_j))``, x standard normal (m, N), in place."""
    phase = np.exp(-1j * sqrt_gamma_h * normals)
    G *= phase[:, :, None]
    G *= phase.conj()[:, None, :]


def _run_chunk_numpy(setup, G, schedule, draws, odd_end):
    dt = setup.dt
    qssep = setup.model == "qssep"
    if qssep:
        exponential, uniform = draws
        laws = (setup.tilt_full, setup.tilt_half)
    else:
        t = setup.hopping
        rotations = [(math.cos(t * tau), 1j * math.sin(t * tau)) for tau in (dt, dt / 2)]
        sqrt_gamma_h = math.sqrt(setup.gamma * dt / 2)
        c_row = 0
    chosen = np.flatnonzero(odd_end)
    for k in range(len(schedule)):
        parity = int(schedule.parity[k])
        nb = (setup.N - parity) // 2
        if qssep:
            tilt = laws[schedule.short[k]].sample(exponential[:, k, :nb])
            # exp(i phi) bond phase; T/2 = the rotation angle of the 2x2 unitary
            coupling = (np.cos(tilt / 2), np.sin(tilt / 2) * np.exp(2j * np.pi * uniform[:, k, :nb]))
        else:
            coupling = rotations[schedule.short[k]]
        if schedule.odd_end_only[k]:
            part = G[chosen]
            if qssep:
                coupling = tuple(x[chosen] for x in coupling)
        else:
            part = G
        for flag in (schedule.before[k], None, schedule.after[k]):
            if flag is None:
                _bond_layer(part, parity, *coupling)
            elif flag:
                if not qssep:
                    rows = draws[:, c_row] if part is G else draws[chosen, c_row]
                    _dephase(part, rows, sqrt_gamma_h)
                    c_row += 1
                _boundaries(part, setup, dt / 2)
        if part is not G:
            G[chosen] = part


def jit_kernels():
    """The compiled kernels (`anderson_mpi.engines._chain_jit`), or None without numba."""
    try:
        from . import _chain_jit
    except ImportError:
        return None
    return _chain_jit


def _run_chunk_numba(jit, setup, G, schedule, draws, odd_end):
    dt = setup.dt
    common = (schedule.parity, schedule.short, schedule.before, schedule.after,
              schedule.odd_end_only, odd_end, dt / 2, setup.rate_left, setup.rate_right,
              setup.n_left, setup.n_right)
    if setup.model == "qssep":
        tables = np.stack([setup.tilt_full.table, setup.tilt_half.table])
        steps = np.array([setup.tilt_full.v_step, setup.tilt_half.v_step])
        jit.qssep_chunk(G, draws[0], draws[1], tables, steps, *common)
    else:
        t = setup.hopping
        jit.dephasing_chunk(G, draws, math.cos(t * dt), math.sin(t * dt), math.cos(t * dt / 2),
                            math.sin(t * dt / 2), math.sqrt(setup.gamma * dt / 2), *common)


def simulate_block(setup, seed_sequences, backend="auto"):
    """The final correlation matrices of the trajectories of one block, advanced together.

    Parameters
    ----------
    setup : ChainSetup
    seed_sequences : sequence of numpy.random.SeedSequence (or anything ``default_rng`` takes)
        One per trajectory; trajectory j draws only from ``default_rng(seed_sequences[j])``.
    backend : {"auto", "numba", "numpy"}
        "numba": compiled kernels (needs numba); "numpy": vectorized over the block; "auto":
        numba if it can be imported. Both use the same random numbers in the same way: their
        samples agree to rounding.

    Returns
    -------
    G : ndarray (m, N, N), complex
        Hermitian, eigenvalues in [0, 1] up to rounding; ``G[j]`` depends only on
        ``seed_sequences[j]`` and the setup.
    """
    if backend not in ("auto", "numba", "numpy"):
        raise ValueError(f"backend: must be 'auto', 'numba' or 'numpy', got {backend!r}")
    jit = None if backend == "numpy" else jit_kernels()
    if backend == "numba" and jit is None:
        raise ValueError("backend: 'numba' requested but numba cannot be imported")
    seed_sequences = list(seed_sequences)
    if jit is None and len(seed_sequences) > _NUMPY_BATCH:
        # the trajectories are independent: cache-sized batches give the same samples faster
        return np.concatenate([simulate_block(setup, seed_sequences[k:k + _NUMPY_BATCH], "numpy")
                               for k in range(0, len(seed_sequences), _NUMPY_BATCH)])
    rngs = [np.random.default_rng(seq) for seq in seed_sequences]
    m, N = len(rngs), setup.N
    G = np.zeros((m, N, N), dtype=complex)
    G[:, np.arange(N), np.arange(N)] = setup.initial_density
    if m == 0 or setup.n_steps == 0:
        return G
    qssep = setup.model == "qssep"
    # the end phase of every trajectory (QSSEP): the first number of its stream
    odd_end = np.array([rng.random() < 0.5 for rng in rngs]) if qssep else np.zeros(m, bool)
    schedule = _Schedule.build(setup.model, setup.n_steps)
    for start in range(0, len(schedule), CHUNK_LAYERS):
        chunk = schedule.chunk(start, start + CHUNK_LAYERS)
        draws = _qssep_draws(rngs, setup.n_bond_slots) if qssep else _dephasing_draws(rngs, chunk, N)
        if jit is not None:
            _run_chunk_numba(jit, setup, G, chunk, draws, odd_end)
        else:
            _run_chunk_numpy(setup, G, chunk, draws, odd_end)
    # rounding leaves an anti-Hermitian part of order 1e-16 per layer: drop it
    return (G + G.conj().transpose(0, 2, 1)) / 2


# ------------------------------------------------------------------------------------------
# into the pipeline
# ------------------------------------------------------------------------------------------

def chain_signature(N):
    """The signature of the chain's mode matrices: ``+1`` for each of the N columns."""
    return np.ones(N)


def mode_matrices_from_G(G, tol=EIGENVALUE_TOL):
    """Mode matrices of correlation matrices in the pipeline's layout: ``G = Phi Phi^+``.

    Parameters
    ----------
    G : ndarray (N, N) or (m, N, N), Hermitian
    tol : float
        Eigenvalues must lie in ``[-tol, 1 + tol]`` (they are clipped to [0, 1] afterwards).

    Returns
    -------
    phi : ndarray (N, 1, N) or (m, N, 1, N), complex
        ``phi[..., a, 0, :]`` is row a of ``V Lambda^(1/2)`` (``G = V Lambda V^+``): slice a of
        a sample with ``N_perp = 1`` and N columns, signature `chain_signature` (all +1), so
        that ``G_ab = phi[a] phi[b]^+``.

    Raises
    ------
    ValueError
        An eigenvalue outside ``[-tol, 1 + tol]`` (not a correlation matrix).
    """
    G = np.asarray(G)
    eigenvalues, vectors = np.linalg.eigh(G)
    low, high = float(eigenvalues.min()), float(eigenvalues.max())
    if low < -tol or high > 1 + tol:
        raise ValueError(f"not a correlation matrix: eigenvalues from {low:.6g} to {high:.12g}, "
                         f"outside [-{tol:g}, 1 + {tol:g}]")
    root = np.sqrt(np.clip(eigenvalues, 0.0, 1.0))
    phi = vectors * root[..., None, :]
    return phi[..., :, None, :]
