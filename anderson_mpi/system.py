"""The system description both engines consume, and the result types they return.

Everything that does not depend on the disorder lives here (SPEC section 1): the validated
hopping, the transverse geometry, the lead modes at an energy, and `ScatteringSetup`, the
immutable object a run builds once (shape, hopping, E+ and E-, the lead modes at both energies,
the transverse hopping, the signature of the stacked mode matrices). The two engines,
`anderson_mpi.transfer` (renormalized transfer matrix) and `anderson_mpi.petsc_solver`
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

__all__ = ["DEFAULT_HOPPING", "E_PLUS", "E_MINUS", "check_hopping", "check_potential",
           "transverse_hopping", "transverse_fft", "transverse_ifft", "LeadModes", "lead_modes",
           "ScatteringSetup", "ScatteringStates", "ModeMatrices", "flux_error"]

DEFAULT_HOPPING = (1.0, 0.4, 0.4)
E_PLUS = 0.2     # energy of the right incomers (SPEC eq. 7)
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

def _ring_hopping(n, t):
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
    """Eigenvalues of `_ring_hopping` for the plane waves exp(2 pi i m j / n), m = 0..n-1."""
    q = 2 * np.pi * np.arange(n) / n
    factor = {1: 0.0, 2: 1.0}.get(n, 2.0)
    return factor * t * np.cos(q)


def _ring_waves(n):
    j = np.arange(n)
    return np.exp(2j * np.pi * np.outer(j, j) / n) / np.sqrt(n)


def _transverse_hopping(Ny, Nz, ty, tz):
    return np.kron(_ring_hopping(Ny, ty), np.eye(Nz)) + np.kron(np.eye(Ny), _ring_hopping(Nz, tz))


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

@dataclass(frozen=True, eq=False)
class LeadModes:
    """Propagating modes of a clean lead of cross-section ``Ny x Nz`` at one energy.

    Attributes
    ----------
    Ny, Nz : int
    energy : float
    tx : float
        Longitudinal hopping (the lead band is ``|E + eps_k| < 2 tx``).
    U : ndarray (N_perp, N_perp), complex
        Transverse plane waves as columns, ``U[iy*Nz+iz, n*Nz+m] = exp(i k.r)/sqrt(N_perp)``.
    eps : ndarray (N_perp,)
        Transverse band energies ``eps_k`` (eigenvalues of ``T_perp``).
    kx : ndarray (N_perp,)
        Longitudinal momenta in (0, pi) with ``cos kx = -(E + eps_k) / (2 tx)``.
    velocity : ndarray (N_perp,)
        ``v_k = 2 tx sin kx`` (> 0).

    Arrays are read-only: a `ScatteringSetup` shares one instance between all samples of a run.
    """

    Ny: int
    Nz: int
    energy: float
    tx: float
    U: np.ndarray
    eps: np.ndarray
    kx: np.ndarray
    velocity: np.ndarray

    @property
    def n_perp(self):
        return self.Ny * self.Nz

    @property
    def n_open(self):
        """Propagating channels (every channel propagates in this version)."""
        return self.n_perp

    @cached_property
    def phase(self):
        """``exp(i kx)`` per mode: the outgoing-wave factor per slice."""
        return _frozen(np.exp(1j * self.kx))

    @cached_property
    def surface_ratio(self):
        """``X_{-1} = U diag(exp(i kx)) U^+``: ``Psi_{-1} Psi_0^{-1}`` for outgoing waves only.

        It starts the recursion (the left lead carries only outgoing waves) and is
        ``-Sigma / tx`` for the lead self-energy of a direct solve. Built by FFTs (U is the
        transverse Fourier matrix).
        """
        return _frozen(transverse_ifft(self.phase[:, None] * self.U.conj().T, self.Ny, self.Nz, axis=0))


def _lead_modes(Ny, Nz, energy, tx, ty, tz):
    eps = np.add.outer(_ring_band(Ny, ty), _ring_band(Nz, tz)).ravel()
    cos_kx = -(energy + eps) / (2 * tx)
    worst = np.max(np.abs(cos_kx))
    if worst >= 1.0:
        raise ValueError(
            f"evanescent channel: energy={energy:g} with hopping=(tx={tx:g}, ty={ty:g}, tz={tz:g}) "
            f"and Ny={Ny}, Nz={Nz} has max|E + eps_k| = {worst * 2 * tx:g} >= 2 tx = {2 * tx:g}; "
            "need |E| + max|eps_k| < 2 tx")
    kx = np.arccos(cos_kx)
    U = np.kron(_ring_waves(Ny), _ring_waves(Nz))
    return LeadModes(Ny=Ny, Nz=Nz, energy=energy, tx=tx, U=_frozen(U), eps=_frozen(eps),
                     kx=_frozen(kx), velocity=_frozen(2 * tx * np.sin(kx)))


def lead_modes(Ny, Nz, energy, hopping=DEFAULT_HOPPING):
    """Lead modes at ``energy``; raise ``ValueError`` if a channel is evanescent.

    Every mode must propagate: ``|E + eps_k| < 2 tx`` for all k. A marginal or evanescent
    channel is rejected rather than handled, since the unit-current normalization
    ``1/sqrt(v_k)`` is singular there.
    """
    tx, ty, tz = check_hopping(hopping)
    if int(Ny) < 1 or int(Nz) < 1:
        raise ValueError(f"transverse sizes must be >= 1, got Ny={Ny}, Nz={Nz}")
    return _lead_modes(int(Ny), int(Nz), _check_energy(energy), tx, ty, tz)


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
    problem (``e_plus: evanescent channel ...``).
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
        """``S``: +1 for the right incomers at E+, -1 for the left incomers at E- (SPEC section 3)."""
        n = self.n_perp
        return _frozen(np.concatenate([np.ones(n), -np.ones(n)]))

    def check_sample(self, V):
        """Validate a potential for this setup (shape, finite, real) and return it as floats."""
        V = check_potential(V)
        if V.shape != self.shape:
            raise ValueError(f"V has shape {V.shape}, the setup is for {self.shape}")
        return V


# --- result types -------------------------------------------------------------------------------

def flux_error(t, r):
    """``max |t^+ t + r^+ r - 1|``: unitarity of the scattering matrix of one lead's incomers."""
    flux = t.conj().T @ t + r.conj().T @ r
    return float(np.max(np.abs(flux - np.eye(len(flux)))))


@dataclass
class ScatteringStates:
    """Scattering states of one sample at one energy, incoming from one lead.

    Attributes
    ----------
    psi : ndarray (Nx, N_perp, N_perp), complex
        ``psi[ix, iy*Nz+iz, k]``: the state incoming in mode ``k``, unit incoming current.
    transmission : ndarray (N_perp, N_perp)
        ``t[k_out, k_in]``, amplitudes into the other lead, current-normalized.
    reflection : ndarray (N_perp, N_perp)
        ``r[k_out, k_in]``, amplitudes back into the incoming lead.
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
        """``max |t^+ t + r^+ r - 1|``: the built-in accuracy check of the recursion."""
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
    phi : ndarray (Nx, N_perp, 2 N_perp), complex
        ``phi[a] = [psi_right(E+)[a], psi_left(E-)[a]]``.
    signature : ndarray (2 N_perp,)
        +1 for the right incomers, -1 for the left incomers.
    transmission_right, reflection_right : ndarray (N_perp, N_perp)
        Scattering amplitudes of the right incomers at E+.
    unitarity_error : float
        Worst ``max|t^+ t + r^+ r - 1|`` of the two leads.
    """

    phi: np.ndarray
    signature: np.ndarray
    transmission_right: np.ndarray
    reflection_right: np.ndarray
    unitarity_error: float
