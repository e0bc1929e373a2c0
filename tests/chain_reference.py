"""Exact finite-N references for the QSSEP and dephasing chains (test side).

Written independently of ``anderson_mpi.engines.chains``: nothing here imports it. Conventions
(docs/theory.md §12): sites ``0..N-1``, ``G_ij = tr(rho c_j^+ c_i)``,
a unitary ``u`` acts as ``G <- u G u^+``; boundary ``end`` in {0, N-1} relaxes ``G_ee`` to the
density ``nu_e`` at rate ``gamma_e = alpha_e + beta_e`` and damps the rest of its row and column at
``gamma_e / 2``.

Three independent constructions:

1. **Reduced continuum equations** (`qssep_generator`, `qssep_stationary`): Ito's rule on
   ``dG = -i [dh, G] - (1/2) [dh, [dh, G]]``, ``dh = dW E_ab + h.c.`` per bond with
   ``E |dW|^2 = D dt``, written out by hand for the only second moments that survive the U(1)
   gauge symmetry of every site: ``P_ij = E[G_ij G_ji]`` (``P_ii = E G_ii^2``) and
   ``B_ij = E[G_ii G_jj]``. With ``(Lap f)_i = sum_{k~i} (f_k - f_i)``, ``gamma_i`` the boundary
   rate of site i (0 in the bulk) and ``nu_i`` its density::

       dm_i/dt  = D (Lap m)_i + gamma_i (nu_i - m_i)
       dP_ij/dt = D sum_{k~i} (P_kj - P_ij) + D sum_{k~j} (P_ik - P_ij) - (gamma_i + gamma_j) P_ij
                  - 2 D [i~j] B_ij                                                   (i != j)
       dP_ii/dt = 2 D sum_{k~i} (B_ki + P_ik - P_ii) + 2 gamma_i (nu_i m_i - P_ii)
       dB_ij/dt = D sum_{k~i} (B_kj - B_ij) + D sum_{k~j} (B_ik - B_ij) - (gamma_i + gamma_j) B_ij
                  + gamma_i nu_i m_j + gamma_j nu_j m_i - 2 D [i~j] P_ij                (i != j)

   (``B_jj`` means ``P_jj``). The sources come from the noise's covariations
   ``d<G_ii, G_ii> = 2 D sum_{k~i} |G_ik|^2 dt``, ``d<G_ii, G_jj> = -2 D |G_ij|^2 dt`` (i~j),
   ``d<G_ij, G_ji> = [D sum_{k~i} G_kj G_jk + D sum_{k~j} G_ik G_ki - 2 D [i~j] G_ii G_jj] dt``.

2. **Generic Ito equations on the full second-moment tensor** (`ito_moments`): ``E[G (x) G]``
   (``N^4`` entries) from superoperators, for any quadratic Hamiltonian, complex bond noise
   (QSSEP) and real on-site noise (dephasing). No gauge reduction: it checks construction 1 and
   is the dephasing model's reference (whose Hamiltonian breaks the local gauge symmetry).

3. **Exact laws of the discrete-time schemes** (`QssepScheme`, `dephasing_scheme_moments`): the
   moment maps of the layers the simulator applies, averaged over the random unitaries' laws,
   iterated from the initial state for the run's number of steps (the exact law of a sample)
   or solved for the fixed point (the scheme's stationary state).
"""
from __future__ import annotations

import numpy as np
import scipy.linalg
import scipy.special
import scipy.sparse as sp
import scipy.sparse.linalg as spla


# ------------------------------------------------------------------------------------------
# closed forms
# ------------------------------------------------------------------------------------------

def qssep_mean_closed(N, D, rate_left, rate_right, n_left, n_right):
    """``E G_ii = n_L + dn (i + a) / L`` with ``a = D / rate_L``, ``b = D / rate_R``,
    ``L = N - 1 + a + b``."""
    a, b = D / rate_left, D / rate_right
    L = N - 1 + a + b
    return n_left + (n_right - n_left) * (np.arange(N) + a) / L


def qssep_pair_closed_ab1(N, dn):
    """``E[G_ij G_ji] = dn^2 (i+1)(N-j) / (N (N+1) (N+2))`` for ``i < j`` (a = b = 1), as an
    (N, N) array filled for i != j (symmetric), zero on the diagonal."""
    i, j = np.meshgrid(np.arange(N), np.arange(N), indexing="ij")
    lo, hi = np.minimum(i, j), np.maximum(i, j)
    out = dn**2 * (lo + 1) * (N - hi) / (N * (N + 1) * (N + 2))
    out[i == j] = 0.0
    return out


def qssep_density_minus_pair_closed(N, D, rate_left, rate_right, dn):
    """``E[G_ii G_jj]^c - E[G_ij G_ji] = -dn^2 (i+a)(L-j-a) / (L^2 (L-1))`` for ``i < j``
    (symmetric (N, N) array, diagonal not filled: zero)."""
    a, b = D / rate_left, D / rate_right
    L = N - 1 + a + b
    i, j = np.meshgrid(np.arange(N), np.arange(N), indexing="ij")
    lo, hi = np.minimum(i, j), np.maximum(i, j)
    out = -dn**2 * (lo + a) * (L - hi - a) / (L**2 * (L - 1))
    out[i == j] = 0.0
    return out


# ------------------------------------------------------------------------------------------
# 1. reduced continuum equations of QSSEP
# ------------------------------------------------------------------------------------------

def _boundary_arrays(N, rate_left, rate_right, n_left, n_right):
    gamma = np.zeros(N)
    nu = np.zeros(N)
    gamma[0] += rate_left
    nu[0] = n_left
    gamma[N - 1] += rate_right
    nu[N - 1] = n_right
    return gamma, nu


def _neighbours(N):
    return [[k for k in (i - 1, i + 1) if 0 <= k < N] for i in range(N)]


class ReducedIndex:
    """Positions of ``m_i``, ``P_ij``, ``B_ij`` in the reduced state vector (all ordered pairs;
    ``B_ii`` is kept equal to ``P_ii``)."""

    def __init__(self, N):
        self.N = N
        self.dim = N + 2 * N * N

    def m(self, i):
        return i

    def P(self, i, j):
        return self.N + i * self.N + j

    def B(self, i, j):
        return self.N + self.N * self.N + i * self.N + j

    def split(self, x):
        N = self.N
        return x[:N], x[N:N + N * N].reshape(N, N), x[N + N * N:].reshape(N, N)

    def join(self, m, P, B):
        return np.concatenate([m, P.ravel(), B.ravel()])


def qssep_generator(N, D, rate_left, rate_right, n_left, n_right):
    """Continuum generator of the reduced moments: ``dx/dt = K x + s`` (K sparse).

    The rows of ``B_ii`` hold the constraint ``B_ii - P_ii = 0`` instead of an equation of
    motion (so that K is invertible; use this K for stationary states only).
    """
    idx = ReducedIndex(N)
    gamma, nu = _boundary_arrays(N, rate_left, rate_right, n_left, n_right)
    nbr = _neighbours(N)
    rows, cols, vals = [], [], []
    source = np.zeros(idx.dim)

    def add(r, c, v):
        rows.append(r)
        cols.append(c)
        vals.append(v)

    def B_or_P(i, j):
        return idx.P(i, i) if i == j else idx.B(i, j)

    for i in range(N):
        r = idx.m(i)
        for k in nbr[i]:
            add(r, idx.m(k), D)
            add(r, r, -D)
        add(r, r, -gamma[i])
        source[r] += gamma[i] * nu[i]
    for i in range(N):
        for j in range(N):
            if i == j:
                r = idx.P(i, i)
                for k in nbr[i]:
                    add(r, idx.B(k, i), 2 * D)
                    add(r, idx.P(i, k), 2 * D)
                    add(r, r, -2 * D)
                add(r, idx.m(i), 2 * gamma[i] * nu[i])
                add(r, r, -2 * gamma[i])
                rb = idx.B(i, i)
                add(rb, rb, 1.0)
                add(rb, idx.P(i, i), -1.0)
                continue
            adjacent = abs(i - j) == 1
            r = idx.P(i, j)
            for k in nbr[i]:
                add(r, idx.P(k, j), D)
                add(r, r, -D)
            for k in nbr[j]:
                add(r, idx.P(i, k), D)
                add(r, r, -D)
            add(r, r, -(gamma[i] + gamma[j]))
            if adjacent:
                add(r, idx.B(i, j), -2 * D)
            r = idx.B(i, j)
            for k in nbr[i]:
                add(r, B_or_P(k, j), D)
                add(r, r, -D)
            for k in nbr[j]:
                add(r, B_or_P(i, k), D)
                add(r, r, -D)
            add(r, r, -(gamma[i] + gamma[j]))
            add(r, idx.m(j), gamma[i] * nu[i])
            add(r, idx.m(i), gamma[j] * nu[j])
            if adjacent:
                add(r, idx.P(i, j), -2 * D)
    K = sp.csr_matrix((vals, (rows, cols)), shape=(idx.dim, idx.dim))
    return K, source


def qssep_stationary(N, D, rate_left, rate_right, n_left, n_right):
    """Stationary ``(m, P, B)`` of continuous-time QSSEP by one sparse solve (any N >= 2)."""
    K, source = qssep_generator(N, D, rate_left, rate_right, n_left, n_right)
    x = spla.spsolve(K.tocsc(), -source)
    return ReducedIndex(N).split(x)


def cumulants_from_moments(m, P, B):
    """``C2[i, j] = E[G_ij G_ji] - E G_ij E G_ji`` (off-diagonal means vanish) and the
    connected density correlation ``Bc[i, j] = E[G_ii G_jj] - m_i m_j`` (``Bc_ii = C2_ii``)."""
    C2 = P.copy()
    C2[np.diag_indices_from(C2)] -= m**2
    Bc = B - np.outer(m, m)
    Bc[np.diag_indices_from(Bc)] = np.diag(C2)
    return C2, Bc


# ------------------------------------------------------------------------------------------
# 2. generic Ito equations on E[G (x) G]
# ------------------------------------------------------------------------------------------

def _ad(A):
    """``G -> A G - G A`` on row-major ``vec G`` (index ``i*N + j``)."""
    n = A.shape[0]
    eye = sp.identity(n, format="csr")
    return sp.kron(sp.csr_matrix(A), eye) - sp.kron(eye, sp.csr_matrix(A.T))


def _unit(N, i, j):
    e = np.zeros((N, N))
    e[i, j] = 1.0
    return e


def ito_generators(N, *, hamiltonian=None, bond_D=0.0, bonds=None, dephasing=0.0, rate_left,
                   rate_right, n_left, n_right, driven=None, second=True):
    """Generators of the mean and of the second moments of ``G`` (row-major vec).

    The SDE: ``dG = -i [H, G] dt`` + QSSEP bond noise of strength ``bond_D`` on ``bonds``
    (default: all N-1 bonds) + dephasing noise ``sqrt(gamma) dB_i`` on every site + the
    boundaries (on the sites ``driven = (left_sites, right_sites)``, default ``((0,), (N-1,))``),
    each noise in the form ``dG = -i [dh, G] - (1/2) [dh, [dh, G]]``.

    Returns ``(lin, source, K2)``: ``d vec(EG)/dt = lin vec(EG) + source`` and
    ``d M/dt = K2 M + source (x) m + m (x) source`` for ``M = E[vec G (x) vec G]``, with
    ``K2 = lin (x) 1 + 1 (x) lin + Cov``, ``Cov = -D sum_bonds (ad_A (x) ad_A+ + ad_A+ (x) ad_A)
    - gamma sum_i ad_Eii (x) ad_Eii`` (the noise's covariation). ``second=False``: K2 is None
    (large lattices, mean only).
    """
    n2 = N * N
    lin = sp.csr_matrix((n2, n2), dtype=complex)
    cov = sp.csr_matrix((n2 * n2, n2 * n2), dtype=complex) if second else None
    if hamiltonian is not None:
        lin = lin - 1j * _ad(np.asarray(hamiltonian, dtype=complex))
    for a in (range(N - 1) if bonds is None else bonds):
        if bond_D == 0:
            break
        up, down = _ad(_unit(N, a, a + 1)), _ad(_unit(N, a + 1, a))
        lin = lin - 0.5 * bond_D * (up @ down + down @ up)
        if second:
            cov = cov - bond_D * (sp.kron(up, down) + sp.kron(down, up))
    for i in range(N):
        if dephasing == 0:
            break
        ad_i = _ad(_unit(N, i, i))
        lin = lin - 0.5 * dephasing * (ad_i @ ad_i)
        if second:
            cov = cov - dephasing * sp.kron(ad_i, ad_i)
    source = np.zeros(n2, dtype=complex)
    left_sites, right_sites = ((0,), (N - 1,)) if driven is None else driven
    for sites, rate, density in ((left_sites, rate_left, n_left), (right_sites, rate_right, n_right)):
        for site in sites:
            proj = _unit(N, site, site)
            eye = np.eye(N)
            lin = lin - 0.5 * rate * sp.csr_matrix(np.kron(proj, eye) + np.kron(eye, proj))
            source[site * N + site] += rate * density
    if not second:
        return lin.tocsr(), source, None
    eye2 = sp.identity(n2, format="csr")
    K2 = sp.kron(lin, eye2) + sp.kron(eye2, lin) + cov
    return lin.tocsr(), source, K2.tocsr()


def ito_moments(N, **model):
    """Stationary mean ``E G`` (N, N) and second moments ``E[G_ij G_kl]`` (N, N, N, N) of the
    SDE of `ito_generators` (same keywords)."""
    lin, source, K2 = ito_generators(N, **model)
    mean = spla.spsolve(lin.tocsc(), -source)
    rhs = -(np.kron(source, mean) + np.kron(mean, source))
    second = spla.spsolve(K2.tocsc(), rhs)
    return mean.reshape(N, N), second.reshape(N, N, N, N)


def pair_moments_from_tensor(second):
    """``P_ij = E[G_ij G_ji]`` and ``B_ij = E[G_ii G_jj]`` from ``E[G_ij G_kl]`` (real parts)."""
    N = second.shape[0]
    i, j = np.meshgrid(np.arange(N), np.arange(N), indexing="ij")
    return second[i, j, j, i].real, second[i, i, j, j].real


def tight_binding(N, t):
    """``H0 = -t sum_i (c_i^+ c_{i+1} + h.c.)`` (open chain)."""
    return -t * (np.eye(N, k=1) + np.eye(N, k=-1))


# ------------------------------------------------------------------------------------------
# 3a. exact law of the discrete QSSEP scheme (reduced moments)
# ------------------------------------------------------------------------------------------

def spherical_bm_moments(tau):
    """``(E cos T, E cos^2 T)`` of the polar angle T of a Brownian motion on the unit sphere
    started at the pole, with ``E P_l(cos T) = exp(-l (l+1) tau)``: the exact law of the tilt
    of a bond's evolution over a time ``tau / D`` (see the module `anderson_mpi.engines.chains`)."""
    c1 = np.exp(-2 * tau)
    c2 = (1 + 2 * np.exp(-6 * tau)) / 3
    return c1, c2


def gaussian_bond_moments(tau):
    """``(E cos T, E cos^2 T)`` for ``T = 2|w|``, ``w`` complex Gaussian with ``E|w|^2 = tau``
    (the naive bond law). ``|w|`` is Rayleigh: ``E cos(k|w|) = 1 - k sqrt(tau) F(k sqrt(tau)/2)``
    with F Dawson's integral."""
    def e_cos(k):
        return 1 - k * np.sqrt(tau) * scipy.special.dawsn(k * np.sqrt(tau) / 2)
    return e_cos(2.0), (1 + e_cos(4.0)) / 2


class QssepScheme:
    """Exact moment maps of the simulated QSSEP scheme on the reduced moments ``(m, P, B)``.

    One bond ``(a, b)`` with tilt law moments ``c1 = E cos T``, ``c2 = E cos^2 T`` (the bond
    unitary rotates the Bloch vector of the 2x2 block by T about a uniformly distributed axis
    in the xy plane):

    * ``m_a, m_b`` and, for every site c outside the bond, ``(P_ac, P_bc)`` and ``(B_ac, B_bc)``
      are mixed by ``[[1-p, p], [p, 1-p]]``, ``p = (1 - c1)/2``;
    * in the block, with ``n0 = (G_aa + G_bb)/2``, ``vz = (G_aa - G_bb)/2``, ``|G_ab|^2 = vperp^2``:
      ``E n0^2`` is kept, ``E n0 vz -> c1 E n0 vz``,
      ``E vz^2 -> c2 E vz^2 + (1 - c2)/2 E vperp^2``, ``E vperp^2 -> (1 - c2) E vz^2
      + (1 + c2)/2 E vperp^2``.

    A step is ``E(tau/2) Bd(dt/2) O(tau) Bd(dt/2) E(tau/2)`` (E: bonds (0,1), (2,3), ...,
    O: bonds (1,2), ...; Bd: both boundaries); consecutive half layers are merged by the
    simulator, which does not change the law. ``bond_moments(tau) -> (c1, c2)`` selects the
    bond law (default: the exact spherical one).
    """

    def __init__(self, N, D, dt, rate_left, rate_right, n_left, n_right,
                 bond_moments=spherical_bm_moments):
        self.N, self.D, self.dt = N, D, dt
        self.gamma, self.nu = _boundary_arrays(N, rate_left, rate_right, n_left, n_right)
        self.bond_moments = bond_moments

    # -- the maps act in place on m (N, K), P (N, N, K), B (N, N, K), one (K,) --
    def _bond_layer(self, state, parity, tau):
        m, P, B, one = state
        N = self.N
        a = np.arange(parity, N - 1, 2)
        if a.size == 0:
            return
        b = a + 1
        c1, c2 = self.bond_moments(tau)
        p = (1 - c1) / 2
        # block values before anything changes
        Paa, Pbb, Bab, Pab = P[a, a].copy(), P[b, b].copy(), B[a, b].copy(), P[a, b].copy()
        for X in (P, B):
            Xa, Xb = X[a].copy(), X[b].copy()
            X[a], X[b] = (1 - p) * Xa + p * Xb, p * Xa + (1 - p) * Xb
            Xa, Xb = X[:, a].copy(), X[:, b].copy()
            X[:, a], X[:, b] = (1 - p) * Xa + p * Xb, p * Xa + (1 - p) * Xb
        ma, mb = m[a].copy(), m[b].copy()
        m[a], m[b] = (1 - p) * ma + p * mb, p * ma + (1 - p) * mb
        q1 = (Paa + Pbb + 2 * Bab) / 4
        q2 = (Paa - Pbb) / 4
        q3 = (Paa + Pbb - 2 * Bab) / 4
        q4 = Pab
        q2 = c1 * q2
        q3, q4 = c2 * q3 + (1 - c2) / 2 * q4, (1 - c2) * q3 + (1 + c2) / 2 * q4
        P[a, a], P[b, b] = q1 + 2 * q2 + q3, q1 - 2 * q2 + q3
        B[a, a], B[b, b] = P[a, a], P[b, b]
        B[a, b] = B[b, a] = q1 - q3
        P[a, b] = P[b, a] = q4

    def _boundary(self, state, h):
        m, P, B, one = state
        for site in (0, self.N - 1):
            g, nu = self.gamma[site], self.nu[site]
            if g == 0:
                continue
            e = np.exp(-g * h)
            drive = nu * (1 - e)           # G_ee <- drive + e G_ee: affine, so the constant
            m_old = m[site].copy()         # terms multiply the state's constant component
            P_old = P[site, site].copy()
            P[site, :] *= e                # G_ej and G_je both damped by sqrt(e)
            P[:, site] *= e
            B_row = e * B[site, :] + drive * m   # the other sites' old means
            B[site, :] = B_row
            B[:, site] = B_row
            P[site, site] = drive**2 * one + 2 * drive * e * m_old + e**2 * P_old
            B[site, site] = P[site, site]
            m[site] = drive * one + e * m_old

    def step(self, state):
        tau = self.D * self.dt
        self._bond_layer(state, 0, tau / 2)
        self._boundary(state, self.dt / 2)
        self._bond_layer(state, 1, tau)
        self._boundary(state, self.dt / 2)
        self._bond_layer(state, 0, tau / 2)

    def initial(self, m0):
        """State of the deterministic ``G = diag(m0)``."""
        m0 = np.asarray(m0, dtype=float)
        N = self.N
        outer = np.outer(m0, m0)
        P = np.zeros((N, N))
        P[np.diag_indices(N)] = m0**2
        return m0.copy(), P, outer.copy(), 1.0

    def evolve(self, m0, n_steps):
        """Exact moments ``(m, P, B)`` after ``n_steps`` steps from ``G = diag(m0)``."""
        m, P, B, one = self.initial(m0)
        state = (m[:, None], P[:, :, None], B[:, :, None], np.ones(1))
        for _ in range(n_steps):
            self.step(state)
        return state[0][:, 0], state[1][:, :, 0], state[2][:, :, 0]

    def stationary(self):
        """Fixed point of one step, by a dense solve (dimension ``N + 2 N^2``)."""
        N = self.N
        dim = N + 2 * N * N
        # columns: unit vectors of (m, P, B) and the affine constant
        basis = np.eye(dim + 1)
        m = basis[:N].copy()
        P = basis[N:N + N * N].reshape(N, N, dim + 1).copy()
        B = basis[N + N * N:dim].reshape(N, N, dim + 1).copy()
        one = basis[dim].copy()
        state = (m, P, B, one)
        self.step(state)
        S = np.concatenate([state[0], state[1].reshape(N * N, -1), state[2].reshape(N * N, -1)])
        lin, const = S[:, :dim], S[:, dim]
        x = np.linalg.solve(np.eye(dim) - lin, const)
        return ReducedIndex(N).split(x)


# ------------------------------------------------------------------------------------------
# 3b. exact law of the discrete dephasing scheme (full tensor, small N)
# ------------------------------------------------------------------------------------------

def brick_hopping(N, t, parity):
    """The bonds (parity + 2k, parity + 2k + 1) of ``tight_binding(N, t)``."""
    h = np.zeros((N, N))
    for a in range(parity, N - 1, 2):
        h[a, a + 1] = h[a + 1, a] = -t
    return h


def dephasing_scheme_maps(N, t, gamma, dt, rate_left, rate_right, n_left, n_right):
    """One step ``E(dt/2) C(dt/2) O(dt) C(dt/2) E(dt/2)`` of the discrete dephasing scheme
    (E, O: the even and odd bonds of H0, exact; C: dephasing and boundaries, which commute),
    as a map of the mean ``vec G`` and of ``vec G (x) vec G`` (flattened N^4).

    Returns ``step(M, x) -> (M', x')``.
    """
    n2 = N * N
    rates, nu = _boundary_arrays(N, rate_left, rate_right, n_left, n_right)
    i, j = np.divmod(np.arange(n2), N)

    def bonds(parity, tau):
        U = scipy.linalg.expm(-1j * tau * brick_hopping(N, t, parity))
        return np.kron(U, U.conj())          # vec(U G U^+) in row-major order

    def c_map(h):
        # dephasing over h: E exp(-i sqrt(gamma)(B_i - B_j + B_k - B_l)) with Var B = h
        deph1 = np.exp(-gamma * h * (i != j))
        I, J = np.meshgrid(np.arange(n2), np.arange(n2), indexing="ij")
        count = np.zeros((n2, n2))
        for site in range(N):
            count += ((i[I] == site).astype(float) - (j[I] == site) + (i[J] == site)
                      - (j[J] == site)) ** 2
        deph2 = np.exp(-gamma * h * count / 2)
        # boundaries over h (affine): G <- damp * G + shift
        damp = np.exp(-(rates[i] + rates[j]) * h / 2)
        shift = np.zeros(n2)
        for site in (0, N - 1):
            shift[site * N + site] = nu[site] * (1 - np.exp(-rates[site] * h))

        def apply(M, x):
            Md = deph2 * M.reshape(n2, n2)
            xd = deph1 * x
            M = (damp[:, None] * Md * damp[None, :] + np.outer(shift, damp * xd)
                 + np.outer(damp * xd, shift) + np.outer(shift, shift)).ravel()
            return M, damp * xd + shift
        return apply

    def unitary(T):
        def apply(M, x):
            return (T @ M.reshape(n2, n2) @ T.T).ravel(), T @ x
        return apply

    ops = [unitary(bonds(0, dt / 2)), c_map(dt / 2), unitary(bonds(1, dt)), c_map(dt / 2),
           unitary(bonds(0, dt / 2))]

    def step(M, x):
        for op in ops:
            M, x = op(M, x)
        return M, x

    return step


def dephasing_scheme_moments(N, t, gamma, dt, rate_left, rate_right, n_left, n_right, m0,
                             n_steps):
    """Exact ``(E G, E[G_ij G_kl])`` of the discrete dephasing scheme after n_steps from
    ``G = diag(m0)``: arrays (N, N) and (N, N, N, N)."""
    step = dephasing_scheme_maps(N, t, gamma, dt, rate_left, rate_right, n_left, n_right)
    x = np.diag(np.asarray(m0, dtype=complex)).ravel()
    M = np.kron(x, x)
    for _ in range(n_steps):
        M, x = step(M, x)
    return x.reshape(N, N), M.reshape(N, N, N, N)


def dephasing_scheme_stationary(N, t, gamma, dt, rate_left, rate_right, n_left, n_right):
    """Stationary ``(E G, E[G_ij G_kl])`` of the discrete dephasing scheme: the fixed point of
    its affine step map on ``(vec G (x) vec G, vec G)``, built column by column (small N)."""
    step = dephasing_scheme_maps(N, t, gamma, dt, rate_left, rate_right, n_left, n_right)
    n2 = N * N
    n4 = n2 * n2
    zero_M, zero_x = np.zeros(n4, dtype=complex), np.zeros(n2, dtype=complex)
    M_c, x_c = step(zero_M, zero_x)                      # the constant part
    columns = []
    for k in range(n4 + n2):
        M, x = zero_M.copy(), zero_x.copy()
        if k < n4:
            M[k] = 1.0
        else:
            x[k - n4] = 1.0
        M1, x1 = step(M, x)
        columns.append(np.concatenate([M1 - M_c, x1 - x_c]))
    S = np.array(columns).T
    const = np.concatenate([M_c, x_c])
    sol = np.linalg.solve(np.eye(n4 + n2) - S, const)
    return sol[n4:].reshape(N, N), sol[:n4].reshape(N, N, N, N)


# ------------------------------------------------------------------------------------------
# 3c. third moments of QSSEP (generic tensor, small N): continuum and discrete scheme
# ------------------------------------------------------------------------------------------

def qssep_moment_generator(N, D, bonds, rate_left, rate_right, n_left, n_right):
    """Generator of ``x = (E g(x)g(x)g, E g(x)g, E g, 1)``, ``g = vec G`` (row-major): the QSSEP
    noise on ``bonds`` and the boundaries (rates may be 0), ``dx/dt = A x`` (sparse).

    Ito: the third moments get the mean drift on each factor, the noise covariation on each
    pair of factors, and the boundary source on each factor times the second moment of the
    other two (no triple covariation for Brownian noise).
    """
    n2 = N * N
    n3, n4 = n2**3, n2 * n2
    eye = sp.identity(n2, format="csr")
    lin = sp.csr_matrix((n2, n2), dtype=complex)
    noises = []
    for a in bonds:
        up, down = _ad(_unit(N, a, a + 1)), _ad(_unit(N, a + 1, a))
        lin = lin - 0.5 * D * (up @ down + down @ up)
        noises.append((up, down))
    source = np.zeros(n2, dtype=complex)
    for site, rate, density in ((0, rate_left, n_left), (N - 1, rate_right, n_right)):
        proj, e = _unit(N, site, site), np.eye(N)
        lin = lin - 0.5 * rate * sp.csr_matrix(np.kron(proj, e) + np.kron(e, proj))
        source[site * N + site] += rate * density

    def k3(*ops):
        out = ops[0]
        for op in ops[1:]:
            out = sp.kron(out, op)
        return out

    K2 = k3(lin, eye) + k3(eye, lin)
    K3 = k3(lin, eye, eye) + k3(eye, lin, eye) + k3(eye, eye, lin)
    for up, down in noises:
        K2 = K2 - D * (k3(up, down) + k3(down, up))
        K3 = K3 - D * (k3(up, down, eye) + k3(down, up, eye) + k3(up, eye, down)
                       + k3(down, eye, up) + k3(eye, up, down) + k3(eye, down, up))
    col = sp.csr_matrix(source[:, None])
    eye4 = sp.identity(n4, format="csr")
    # s_i M_jk, s_j M_ik, s_k M_ij
    first, last = sp.kron(col, eye4), sp.kron(eye4, col)
    rows, cols, vals = [], [], []
    for j in np.flatnonzero(source):
        for i in range(n2):
            for k in range(n2):
                rows.append((i * n2 + j) * n2 + k)
                cols.append(i * n2 + k)
                vals.append(source[j])
    middle = sp.csr_matrix((vals, (rows, cols)), shape=(n3, n4))
    S21 = sp.kron(col, eye) + sp.kron(eye, col)
    return sp.bmat([[K3, first + middle + last, None, None],
                    [None, K2, S21, None],
                    [None, None, lin, col],
                    [None, None, None, sp.csr_matrix((1, 1))]], format="csr")


def split_moment_vector(x, N):
    """``(M3 (N,)*6, M2 (N,)*4, mean (N, N))`` from a vector of `qssep_moment_generator`."""
    n2 = N * N
    n3, n4 = n2**3, n2 * n2
    return (x[:n3].reshape((N,) * 6), x[n3:n3 + n4].reshape((N,) * 4),
            x[n3 + n4:n3 + n4 + n2].reshape(N, N))


def initial_moment_vector(m0):
    g = np.diag(np.asarray(m0, dtype=complex)).ravel()
    return np.concatenate([np.kron(np.kron(g, g), g), np.kron(g, g), g, [1.0]])


def qssep_third_moments_stationary(N, D, rate_left, rate_right, n_left, n_right):
    """Stationary moment vector of continuous-time QSSEP (one sparse solve)."""
    A = qssep_moment_generator(N, D, range(N - 1), rate_left, rate_right, n_left, n_right)
    dim = A.shape[0]
    x = spla.spsolve(A[:dim - 1, :dim - 1].tocsc(), -A[:dim - 1, dim - 1].toarray().ravel())
    return np.append(x, 1.0)


def qssep_scheme_third_moments(N, D, dt, rate_left, rate_right, n_left, n_right, m0, n_steps):
    """Moment vector of the simulated QSSEP samples (coin-mixed endings) after n_steps from
    ``G = diag(m0)``: the scheme's layers as the exact sub-flows they reproduce on
    gauge-invariant moments (`test_chains` checks the bond layer against the tilt law)."""
    even = qssep_moment_generator(N, D, range(0, N - 1, 2), 0.0, 0.0, n_left, n_right)
    odd = qssep_moment_generator(N, D, range(1, N - 1, 2), 0.0, 0.0, n_left, n_right)
    bd = qssep_moment_generator(N, D, [], rate_left, rate_right, n_left, n_right)

    def flow(A, t, x):
        return spla.expm_multiply(t * A, x)

    x = initial_moment_vector(m0)
    for _ in range(n_steps):
        x = flow(even, dt / 2, x)
        x = flow(bd, dt / 2, x)
        x = flow(odd, dt, x)
        x = flow(bd, dt / 2, x)
        x = flow(even, dt / 2, x)
    x_odd = flow(odd, dt / 2, flow(bd, dt / 2, flow(even, dt / 2, x)))
    return (x + x_odd) / 2


# ------------------------------------------------------------------------------------------
# 3d. the dephasing model on a lattice (Anderson's geometry): exact discrete law, small sizes
# ------------------------------------------------------------------------------------------

def lattice_sites(shape):
    """Site number ``(x * Ny + y) * Nz + z`` as an array (Nx, Ny, Nz)."""
    return np.arange(int(np.prod(shape))).reshape(shape)


def lattice_bond_layers(shape, hopping):
    """The scheme's layers of disjoint bonds as hopping matrices ``-t (E_ab + E_ba)``, written
    from the geometry: x bonds by the parity of x; a transverse ring of n sites has the bonds
    (i, i+1 mod n) for n >= 3 (one bond for n = 2, none for n = 1), in layers "i even, i < n-1",
    "i odd", "i = n-1 with n odd" (the wrap-around bond). Order: x, y, z; empty layers dropped."""
    idx = lattice_sites(shape)
    n_sites = idx.size
    layers = []

    def layer_matrix(pairs, t):
        h = np.zeros((n_sites, n_sites))
        for a, b in pairs:
            h[a, b] = h[b, a] = -t
        return h

    Nx = shape[0]
    for parity in (0, 1):
        pairs = [(idx[x, y, z], idx[x + 1, y, z]) for x in range(parity, Nx - 1, 2)
                 for y in range(shape[1]) for z in range(shape[2])]
        if pairs:
            layers.append(layer_matrix(pairs, hopping[0]))
    for axis in (1, 2):
        n = shape[axis]
        if n == 1:
            continue
        groups = {"even": [], "odd": [], "wrap": []}
        for i in range(n if n >= 3 else 1):
            j = (i + 1) % n
            kind = "wrap" if (i == n - 1 and n % 2) else ("odd" if i % 2 else "even")
            groups[kind].append((i, j))
        for kind in ("even", "odd", "wrap"):
            pairs = []
            for i, j in groups[kind]:
                a = np.take(idx, i, axis=axis).ravel()
                b = np.take(idx, j, axis=axis).ravel()
                pairs += list(zip(a, b))
            if pairs:
                layers.append(layer_matrix(pairs, hopping[axis]))
    return layers


def lattice_dephasing_scheme_moments(shape, hopping, gamma, dt, rate_left, rate_right, n_left,
                                     n_right, m0, n_steps):
    """Exact ``(E G, E[G_ij G_kl])`` of the lattice dephasing scheme after n_steps from
    ``G = diag(m0)``: the step ``A_0(dt/2) ... A_{K-2}(dt/2) C(dt/2) A_{K-1}(dt) C(dt/2)
    A_{K-2}(dt/2) ... A_0(dt/2)`` (K = 1: ``A_0(dt/2) C(dt) A_0(dt/2)``), C = dephasing and the
    driven slices x = 0 and x = Nx - 1."""
    layers = lattice_bond_layers(shape, hopping)
    n = int(np.prod(shape))
    n2 = n * n
    n_perp = shape[1] * shape[2]
    rates = np.zeros(n)
    nu = np.zeros(n)
    rates[:n_perp], nu[:n_perp] = rate_left, n_left
    rates[n - n_perp:], nu[n - n_perp:] = rate_right, n_right
    i, j = np.divmod(np.arange(n2), n)
    count = np.zeros((n2, n2))
    I, J = np.meshgrid(np.arange(n2), np.arange(n2), indexing="ij")
    for site in range(n):
        count += ((i[I] == site).astype(float) - (j[I] == site) + (i[J] == site)
                  - (j[J] == site)) ** 2

    def c_op(h):
        deph1 = np.exp(-gamma * h * (i != j))
        deph2 = np.exp(-gamma * h * count / 2)
        damp = np.exp(-(rates[i] + rates[j]) * h / 2)
        shift = np.where(i == j, nu[i] * (1 - np.exp(-rates[i] * h)), 0.0)

        def apply(M, x):
            Md, xd = deph2 * M, deph1 * x
            M = (damp[:, None] * Md * damp[None, :] + np.outer(shift, damp * xd)
                 + np.outer(damp * xd, shift) + np.outer(shift, shift))
            return M, damp * xd + shift
        return apply

    def u_op(h_layer, tau):
        U = scipy.linalg.expm(-1j * tau * h_layer)
        T = np.kron(U, U.conj())

        def apply(M, x):
            return T @ M @ T.T, T @ x
        return apply

    K = len(layers)
    if K == 1:
        step = [u_op(layers[0], dt / 2), c_op(dt), u_op(layers[0], dt / 2)]
    else:
        step = ([u_op(layers[l], dt / 2) for l in range(K - 1)] + [c_op(dt / 2)]
                + [u_op(layers[K - 1], dt)] + [c_op(dt / 2)]
                + [u_op(layers[l], dt / 2) for l in range(K - 2, -1, -1)])
    x = np.diag(np.asarray(m0, dtype=complex)).ravel()
    M = np.outer(x, x)
    for _ in range(n_steps):
        for op in step:
            M, x = op(M, x)
    return x.reshape(n, n), M.reshape(n, n, n, n)
