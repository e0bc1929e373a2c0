"""The system description both engines consume, and the result types they return.

Everything that does not depend on the disorder lives here (docs/theory.md §1-§2): the validated
hopping, the transverse geometry, the lead modes at an energy, and `ScatteringSetup`, the
immutable object a run builds once (shape, hopping, E+ and E-, the lead modes at both energies,
the transverse hopping, the signature of the stacked mode matrices). The two engines,
`anderson_mpi.engines.transfer` (renormalized transfer matrix) and `anderson_mpi.engines.petsc`
(distributed sparse direct solve), take a setup and a potential and return the same result
types, `ScatteringStates` and `ModeMatrices`, defined here.

Pure numpy/scipy: arrays in, arrays out, no MPI and no files. This module imports no other
module of the package.
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import numpy as np
import scipy.fft

__all__ = ["DEFAULT_HOPPING", "E_PLUS", "E_MINUS", "BAND_EDGE_TOL", "check_hopping", "ring_hopping",
           "check_channels", "check_energies", "open_channel_count",
           "check_potential", "transverse_hopping", "transverse_fft", "transverse_ifft",
           "LeadModes", "lead_modes", "ScatteringSetup", "ScatteringStates", "ModeMatrices",
           "flux_error"]

DEFAULT_HOPPING = (1.0, 0.4, 0.4)
E_PLUS = 0.2     # energy of the right incomers (paper eq. (7), docs/theory.md §5.1)
E_MINUS = -0.2   # energy of the left incomers


# --- validation ------------------------------------------------------------------------------

def check_hopping(hopping):
    """Return ``(tx, ty, tz)`` as floats, or raise ``ValueError`` naming the problem."""
    try:
        values = tuple(float(t) for t in hopping)
    except (TypeError, ValueError):
        raise ValueError(f"hopping must be three numbers (tx, ty, tz), got {hopping!r}") from None
    if len(values) != 3:
        raise ValueError(f"hopping must have three entries (tx, ty, tz), got {len(values)}")
    if not all(np.isfinite(values)):
        raise ValueError(f"hopping must be finite, got {values}")
    if values[0] <= 0:
        raise ValueError(f"hopping tx must be > 0 (it sets the lead band), got tx={values[0]}")
    return values


def check_potential(V):
    """Return ``V`` as a C-contiguous float array ``(Nx, Ny, Nz)`` or raise ``ValueError``."""
    V = np.asarray(V)
    if V.ndim != 3:
        raise ValueError(f"V must have ndim 3 (Nx, Ny, Nz), got ndim {V.ndim}")
    if min(V.shape) < 1:
        raise ValueError(f"V: every size must be >= 1, got shape {V.shape}")
    if np.iscomplexobj(V):
        raise ValueError("V must be real (an on-site potential)")
    V = np.ascontiguousarray(V, dtype=float)
    if not np.all(np.isfinite(V)):
        raise ValueError("V contains non-finite values (nan or inf)")
    return V


def _check_energy(energy, name="energy"):
    energy = float(energy)
    if not np.isfinite(energy):
        raise ValueError(f"{name} must be finite, got {energy}")
    return energy


# --- transverse geometry -----------------------------------------------------------------------

def ring_hopping(n, t):
    """Hopping matrix (positive entries) of a periodic ring of n sites.

    A ring of 2 sites has one bond, not two; a single site has none.
    """
    ring = np.zeros((n, n))
    if n == 2:
        ring[0, 1] = ring[1, 0] = t
    elif n >= 3:
        idx = np.arange(n)
        ring[idx, (idx + 1) % n] = t
        ring[(idx + 1) % n, idx] = t
    return ring


def _ring_band(n, t):
    """Eigenvalues of `ring_hopping` for the plane waves exp(2 pi i m j / n), m = 0..n-1."""
    q = 2 * np.pi * np.arange(n) / n
    factor = {1: 0.0, 2: 1.0}.get(n, 2.0)
    return factor * t * np.cos(q)


def _ring_waves(n):
    j = np.arange(n)
    return np.exp(2j * np.pi * np.outer(j, j) / n) / np.sqrt(n)


def _transverse_hopping(Ny, Nz, ty, tz):
    return np.kron(ring_hopping(Ny, ty), np.eye(Nz)) + np.kron(np.eye(Ny), ring_hopping(Nz, tz))


def transverse_hopping(Ny, Nz, hopping=DEFAULT_HOPPING):
    """Transverse hopping matrix ``T_perp`` (N_perp x N_perp, real symmetric, positive entries).

    Site order is ``iy * Nz + iz``.
    """
    _, ty, tz = check_hopping(hopping)
    return _transverse_hopping(Ny, Nz, ty, tz)


def transverse_fft(arr, Ny, Nz, axis=0, overwrite=False):
    """``U^+`` applied along ``axis`` (a transverse site index ``iy*Nz+iz``) of ``arr``.

    ``U`` is the transverse Fourier matrix, so this costs ``O(N_perp log N_perp)`` per
    column instead of a matrix product. ``overwrite=True`` lets it reuse ``arr``'s memory.
    """
    shape = arr.shape
    split = shape[:axis] + (Ny, Nz) + shape[axis + 1:]
    out = scipy.fft.fft2(arr.reshape(split), axes=(axis, axis + 1), norm="ortho", overwrite_x=overwrite)
    return out.reshape(shape)


def transverse_ifft(arr, Ny, Nz, axis=0):
    """``U`` applied along ``axis`` of ``arr`` (so ``arr U`` for ``axis`` = the last one, as U = U^T)."""
    shape = arr.shape
    split = shape[:axis] + (Ny, Nz) + shape[axis + 1:]
    return scipy.fft.ifft2(arr.reshape(split), axes=(axis, axis + 1), norm="ortho").reshape(shape)


def _frozen(arr):
    arr = np.asarray(arr)
    arr.setflags(write=False)
    return arr


# --- lead modes ----------------------------------------------------------------------------------

# A channel with ||c_k| - 1| below this is at a band edge (zero velocity): refused (docs/theory.md §1-§2).
BAND_EDGE_TOL = 1e-9


@dataclass(frozen=True, eq=False)
class LeadModes:
    """Modes of a clean lead of cross-section ``Ny x Nz`` at one energy: open and evanescent.

    Mode ``k`` (index ``n*Nz + m``, ``k = 2 pi (n/Ny, m/Nz)``) has
    ``c_k = -(E + eps_k) / (2 tx)``; it propagates (is open) for ``|c_k| < 1`` and is evanescent
    for ``|c_k| > 1`` (docs/theory.md §1-§2). Every per-mode array runs over all ``N_perp`` modes in
    this natural order (the order of the transverse FFT); the per-open-mode arrays run over
    ``open_modes``, in increasing mode index. Column ``j`` of a scattering state, and row/column
    ``j`` of t and r, is open mode ``open_modes[j]``. With every channel open this is the
    identity, and everything is as before evanescent channels were supported.

    Attributes
    ----------
    Ny, Nz : int
    energy : float
    tx : float
        Longitudinal hopping (mode k is open for ``|E + eps_k| < 2 tx``).
    U : ndarray (N_perp, N_perp), complex
        Transverse plane waves as columns, ``U[iy*Nz+iz, n*Nz+m] = exp(i k.r)/sqrt(N_perp)``.
    eps : ndarray (N_perp,)
        Transverse band energies ``eps_k`` (eigenvalues of ``T_perp``).
    mu : ndarray (N_perp,), complex
        Outgoing factor per slice of every mode: ``exp(i kx)`` (open) or the decaying root
        ``lambda_<`` of ``lambda + 1/lambda = 2 c_k`` (evanescent, real, ``|lambda_<| < 1``).
    open_modes : ndarray (n_open,), int
        Indices of the open modes.
    kx : ndarray (n_open,)
        Longitudinal momenta of the open modes, in (0, pi), ``cos kx = c_k``.
    velocity : ndarray (n_open,)
        ``v_k = 2 tx sin kx`` (> 0) of the open modes.

    Arrays are read-only: a `ScatteringSetup` shares one instance between all samples of a run.
    """

    Ny: int
    Nz: int
    energy: float
    tx: float
    U: np.ndarray
    eps: np.ndarray
    mu: np.ndarray
    open_modes: np.ndarray
    kx: np.ndarray
    velocity: np.ndarray

    @property
    def n_perp(self):
        return self.Ny * self.Nz

    @property
    def n_open(self):
        """Open (propagating) channels: the ones that carry current, t and r are n_open x n_open."""
        return len(self.open_modes)

    @cached_property
    def open(self):
        """Boolean mask (N_perp,) of the open modes."""
        mask = np.zeros(self.n_perp, dtype=bool)
        mask[self.open_modes] = True
        return _frozen(mask)

    @cached_property
    def phase(self):
        """``exp(i kx)`` of the open modes (n_open,): ``mu`` restricted to them."""
        return _frozen(self.mu[self.open_modes])

    @cached_property
    def surface_ratio(self):
        """``X_{-1} = U diag(mu) U^+``: ``Psi_{-1} Psi_0^{-1}`` of a wave that only goes out.

        In the left lead a right incomer is outgoing (left-moving) in the open modes and decays
        to the left in the evanescent ones (docs/theory.md §2.4, §3.4). It starts the recursion and is
        ``-Sigma / tx`` for the lead self-energy of a direct solve. Built by FFTs (U is the
        transverse Fourier matrix).
        """
        return _frozen(transverse_ifft(self.mu[:, None] * self.U.conj().T, self.Ny, self.Nz, axis=0))


def _mode_label(index, Ny, Nz):
    n, m = divmod(int(index), Nz)
    return f"mode {index} (k = 2 pi ({n}/{Ny}, {m}/{Nz}))"


def _nearest_sums(ey, ez_sorted, target):
    """For every row n: the two entries of ``ez_sorted`` around ``target - ey[n]`` (sorted indices)."""
    idx = np.searchsorted(ez_sorted, target - ey)
    return np.clip(idx - 1, 0, len(ez_sorted) - 1), np.clip(idx, 0, len(ez_sorted) - 1)


def check_channels(Ny, Nz, energy, tx, ty, tz):
    """Refuse an energy that puts a lead channel at a band edge or opens no channel.

    Channel k = (n, m) has ``eps_k = eps_y(n) + eps_z(m)``; the checks search the sorted 1d bands
    instead of forming all ``N_perp`` channels, so validating a job never allocates more than
    O(Ny + Nz) numbers, whatever its size. The values compared are the very sums and ratios
    `lead_modes` computes, so both agree on every channel.
    """
    ey, ez = _ring_band(Ny, ty), _ring_band(Nz, tz)
    order = np.argsort(ez, kind="stable")
    ez_sorted = ez[order]

    def where():  # for the error messages only (formatting costs more than the checks)
        return f"energy={energy:g} with hopping=(tx={tx:g}, ty={ty:g}, tz={tz:g}) and Ny={Ny}, Nz={Nz}"

    def abs_cos(n, m):
        return np.abs(-(energy + (ey[n] + ez[m])) / (2 * tx))

    # band edges: |E + eps_k| = 2 tx, i.e. eps_k = -E -+ 2 tx
    at_edge = []
    for target in (-energy - 2 * tx, -energy + 2 * tx):
        margin = 4 * tx * BAND_EDGE_TOL + 1e-12 * (abs(target) + 2 * tx)
        lo = np.searchsorted(ez_sorted, target - ey - margin, "left")
        hi = np.searchsorted(ez_sorted, target - ey + margin, "right")
        for n in np.flatnonzero(hi > lo):
            m = order[lo[n]:hi[n]]
            distance = np.abs(abs_cos(n, m) - 1.0)
            at_edge += [(n * Nz + int(mm), d) for mm, d in zip(m, distance) if d < BAND_EDGE_TOL]
    if at_edge:
        at_edge.sort()
        flat = np.array([k for k, _ in at_edge])
        edge = int(flat[np.argmin([d for _, d in at_edge])])
        n, m = divmod(edge, Nz)
        eps, cos_kx = ey[n] + ez[m], -(energy + (ey[n] + ez[m])) / (2 * tx)
        # channel k's band is -eps_k - 2 tx < E < -eps_k + 2 tx
        edge_energy = round(-eps + 2 * tx * (-1.0 if cos_kx > 0 else 1.0), 12) + 0.0
        others = f" (and {len(flat) - 1} more channel(s))" if len(flat) > 1 else ""
        raise ValueError(
            f"band edge: {where()} puts {_mode_label(edge, Ny, Nz)}{others} at its band edge "
            f"E = {edge_energy:.12g}, where |E + eps_k| = 2 tx and its velocity vanishes (no "
            f"unit-current normalization); move the energy more than "
            f"{2 * tx * BAND_EDGE_TOL:.1e} away from {edge_energy:.12g}")
    # an open channel has |E + eps_k| < 2 tx: per row the smallest |E + eps_k| lies next to
    # -E - eps_y; (nearly) equal band values around it are all candidates, ties go to the
    # smallest mode index, as an argmin over all channels would decide
    lower, upper = _nearest_sums(ey, ez_sorted, -energy)
    margin = 1e-12 * (np.abs(ez_sorted).max() + abs(energy) + 2 * tx)
    lo = np.searchsorted(ez_sorted, ez_sorted[lower] - margin, "left")
    hi = np.searchsorted(ez_sorted, ez_sorted[upper] + margin, "right")
    width = int((hi - lo).max())
    sorted_m = lo[:, None] + np.arange(width)[None, :]
    valid = sorted_m < hi[:, None]
    m = np.where(valid, order[np.minimum(sorted_m, len(order) - 1)], np.iinfo(np.int64).max)
    value = np.where(valid, abs_cos(np.arange(Ny)[:, None], np.where(valid, m, 0)), np.inf)
    best = value.min(axis=1)
    best_m = np.where(value == best[:, None], m, np.iinfo(np.int64).max).min(axis=1)
    if not np.any(best < 1.0):
        n = int(np.argmin(best))
        nearest = n * Nz + int(best_m[n])
        eps = ey[n] + ez[best_m[n]]
        raise ValueError(
            f"no open channel: {where()} lies outside every channel's band (|E + eps_k| > 2 tx "
            f"for all k); the nearest band, of {_mode_label(nearest, Ny, Nz)}, is "
            f"{-eps - 2 * tx:.6g} < E < {-eps + 2 * tx:.6g}")


def _lead_modes(Ny, Nz, energy, tx, ty, tz):
    check_channels(Ny, Nz, energy, tx, ty, tz)
    eps = np.add.outer(_ring_band(Ny, ty), _ring_band(Nz, tz)).ravel()
    cos_kx = -(energy + eps) / (2 * tx)
    is_open = np.abs(cos_kx) < 1.0
    # kx, exp(i kx) and v on the full array (evanescent entries clipped, then dropped), so that
    # an all-open lead gets exactly the numbers it always had.
    kx = np.arccos(np.clip(cos_kx, -1.0, 1.0))
    mu = np.exp(1j * kx)
    velocity = 2 * tx * np.sin(kx)
    open_modes = np.flatnonzero(is_open)
    if len(open_modes) < len(eps):
        closed = ~is_open
        c = cos_kx[closed]
        # lambda_< = c - sign(c) sqrt(c^2 - 1), written without the cancellation for |c| >> 1
        mu[closed] = 1.0 / (c + np.sign(c) * np.sqrt(c * c - 1.0))
    U = np.kron(_ring_waves(Ny), _ring_waves(Nz))
    return LeadModes(Ny=Ny, Nz=Nz, energy=energy, tx=tx, U=_frozen(U), eps=_frozen(eps),
                     mu=_frozen(mu), open_modes=_frozen(open_modes), kx=_frozen(kx[open_modes]),
                     velocity=_frozen(velocity[open_modes]))


def lead_modes(Ny, Nz, energy, hopping=DEFAULT_HOPPING):
    """Lead modes at ``energy``, open and evanescent; ``ValueError`` at a band edge.

    Refused: a channel at a band edge (``|E + eps_k| = 2 tx`` within ``2 tx BAND_EDGE_TOL``),
    where the velocity vanishes and the unit-current normalization ``1/sqrt(v_k)`` is
    singular, and an energy with no open channel at all. The message names the energy, the
    channel and how far to move the energy.
    """
    tx, ty, tz = check_hopping(hopping)
    if int(Ny) < 1 or int(Nz) < 1:
        raise ValueError(f"transverse sizes must be >= 1, got Ny={Ny}, Nz={Nz}")
    return _lead_modes(int(Ny), int(Nz), _check_energy(energy), tx, ty, tz)


def open_channel_count(Ny, Nz, energy, hopping=DEFAULT_HOPPING):
    """Number of open lead channels at ``energy`` (``|E + eps_k| < 2 tx``), from the sorted 1d
    bands: O(Ny log Nz), for plans of any size (the lead modes themselves are N_perp^2)."""
    tx, ty, tz = check_hopping(hopping)
    ey, ez = _ring_band(int(Ny), ty), np.sort(_ring_band(int(Nz), tz))
    lo = np.searchsorted(ez, -2 * tx - energy - ey, "right")
    hi = np.searchsorted(ez, 2 * tx - energy - ey, "left")
    return int(np.sum(np.maximum(hi - lo, 0)))


def check_energies(shape, hopping, e_plus, e_minus):
    """Validate a sample shape, hopping and both energies as `ScatteringSetup.build` does, without
    building the lead modes (O(Ny + Nz) memory): ``ValueError`` naming ``e_plus``/``e_minus``."""
    try:
        Nx, Ny, Nz = (int(n) for n in shape)
    except (TypeError, ValueError):
        raise ValueError(f"shape must be (Nx, Ny, Nz), got {shape!r}") from None
    if min(Nx, Ny, Nz) < 1:
        raise ValueError(f"every size must be >= 1, got shape {(Nx, Ny, Nz)}")
    tx, ty, tz = check_hopping(hopping)
    for name, energy in (("e_plus", e_plus), ("e_minus", e_minus)):
        try:
            check_channels(Ny, Nz, _check_energy(energy, name), tx, ty, tz)
        except ValueError as err:
            raise ValueError(f"{name}: {err}") from None


# --- the run context ------------------------------------------------------------------------------

@dataclass(frozen=True, eq=False)
class ScatteringSetup:
    """Everything but the disorder, validated and built once per run (or per public call).

    Attributes
    ----------
    shape : (Nx, Ny, Nz)
    hopping : (tx, ty, tz) floats
    e_plus, e_minus : float
        Energies of the right incomers (``lead_plus``) and of the left incomers (``lead_minus``).
    lead_plus, lead_minus : LeadModes
        The lead modes at E+ and E- (one shared instance when the energies are equal).
    t_perp : ndarray (N_perp, N_perp)
        Transverse hopping matrix (read-only).

    Build with `ScatteringSetup.build`, which validates and raises ``ValueError`` naming the
    problem (``e_plus: band edge ...``, ``e_minus: no open channel ...``). The number of open
    channels may differ between E+ and E- (``lead_plus.n_open``, ``lead_minus.n_open``).
    """

    shape: tuple
    hopping: tuple
    e_plus: float
    e_minus: float
    lead_plus: LeadModes
    lead_minus: LeadModes
    t_perp: np.ndarray

    @classmethod
    def build(cls, shape, hopping=DEFAULT_HOPPING, e_plus=E_PLUS, e_minus=E_MINUS):
        """Validate the parameters and build the lead modes at both energies."""
        try:
            Nx, Ny, Nz = (int(n) for n in shape)
        except (TypeError, ValueError):
            raise ValueError(f"shape must be (Nx, Ny, Nz), got {shape!r}") from None
        if min(Nx, Ny, Nz) < 1:
            raise ValueError(f"every size must be >= 1, got shape {(Nx, Ny, Nz)}")
        tx, ty, tz = check_hopping(hopping)
        leads = {}
        for name, energy in (("e_plus", e_plus), ("e_minus", e_minus)):
            energy = _check_energy(energy, name)
            if energy not in leads:
                try:
                    leads[energy] = _lead_modes(Ny, Nz, energy, tx, ty, tz)
                except ValueError as err:
                    raise ValueError(f"{name}: {err}") from None
        e_plus, e_minus = float(e_plus), float(e_minus)
        return cls(shape=(Nx, Ny, Nz), hopping=(tx, ty, tz), e_plus=e_plus, e_minus=e_minus,
                   lead_plus=leads[e_plus], lead_minus=leads[e_minus],
                   t_perp=_frozen(_transverse_hopping(Ny, Nz, ty, tz)))

    @property
    def Nx(self):
        return self.shape[0]

    @property
    def Ny(self):
        return self.shape[1]

    @property
    def Nz(self):
        return self.shape[2]

    @property
    def n_perp(self):
        return self.Ny * self.Nz

    @property
    def tx(self):
        return self.hopping[0]

    def lead_at(self, energy):
        """The lead modes at ``e_plus`` or ``e_minus`` (``ValueError`` for any other energy)."""
        energy = float(energy)
        if energy == self.e_plus:
            return self.lead_plus
        if energy == self.e_minus:
            return self.lead_minus
        raise ValueError(f"energy {energy:g} is neither e_plus={self.e_plus:g} nor e_minus={self.e_minus:g}")

    @cached_property
    def signature(self):
        """``S``: +1 for the n_open(E+) right incomers, -1 for the n_open(E-) left incomers
        (docs/theory.md §5.2), in the column order of `ModeMatrices.phi`."""
        return _frozen(np.concatenate([np.ones(self.lead_plus.n_open),
                                       -np.ones(self.lead_minus.n_open)]))


# --- result types -------------------------------------------------------------------------------

def flux_error(t, r):
    """``max |t^+ t + r^+ r - 1|``: unitarity of the scattering matrix of one lead's incomers
    (over the open channels: t and r are n_open x n_open)."""
    flux = t.conj().T @ t + r.conj().T @ r
    return float(np.max(np.abs(flux - np.eye(len(flux)))))


@dataclass
class ScatteringStates:
    """Scattering states of one sample at one energy, incoming from one lead.

    Attributes
    ----------
    psi : ndarray (Nx, N_perp, n_open), complex
        ``psi[ix, iy*Nz+iz, j]``: the state incoming in open mode ``j`` (mode index
        ``LeadModes.open_modes[j]``), unit incoming current. May be a view.
    transmission : ndarray (n_open, n_open)
        ``t[j_out, j_in]``, amplitudes into the other lead's open channels, current-normalized.
    reflection : ndarray (n_open, n_open)
        ``r[j_out, j_in]``, amplitudes back into the incoming lead's open channels.
    lead : str
        ``"L"`` or ``"R"``.
    energy : float
    """

    psi: np.ndarray
    transmission: np.ndarray
    reflection: np.ndarray
    lead: str
    energy: float

    @property
    def conductance(self):
        """Dimensionless conductance ``g = Tr t^+ t``."""
        return float(np.sum(np.abs(self.transmission) ** 2))

    @property
    def unitarity_error(self):
        """``max |t^+ t + r^+ r - 1|`` over the open channels: the built-in accuracy check."""
        return flux_error(self.transmission, self.reflection)

    @property
    def fano(self):
        """Shot-noise Fano factor ``Tr[t t^+ (1 - t t^+)] / Tr[t t^+]``."""
        tt = self.transmission @ self.transmission.conj().T
        g = np.trace(tt).real
        return float((g - np.sum(np.abs(tt) ** 2)) / g)


@dataclass
class ModeMatrices:
    """Both leads' scattering states of one sample, stacked for Gneq.

    Attributes
    ----------
    phi : ndarray (Nx, N_perp, n_open(E+) + n_open(E-)), complex
        ``phi[a] = [psi_right(E+)[a], psi_left(E-)[a]]`` (``2 N_perp`` wide when every channel
        is open).
    signature : ndarray (n_open(E+) + n_open(E-),)
        +1 for the right incomers, -1 for the left incomers (`ScatteringSetup.signature`).
    transmission_right, reflection_right : ndarray (n_open(E+), n_open(E+)) or None
        Scattering amplitudes of the right incomers at E+ (None for a sample without leads:
        the stochastic models' correlation matrices).
    unitarity_error : float
        Worst ``max|t^+ t + r^+ r - 1|`` of the two leads (0 without leads).
    """

    phi: np.ndarray
    signature: np.ndarray
    transmission_right: np.ndarray
    reflection_right: np.ndarray
    unitarity_error: float
