"""The fourth-order chain: per-sample fields -> block sums -> jackknife -> C4 (analysis.estimators.
cumulants4), against docs/theory.md §7.1's definition.

1. Brute force on real samples: every one of the 15 partition terms of the estimator equals the
   same term computed from dense Gneq blocks (sample means of dense products, projected on the
   k-diagonal orbit average as the estimator does; the crossing from consecutive samples).
2. A planted ensemble whose joint cumulants are known exactly: per sample the full matrix
   ``G = mu + sum_j xi_j A_j`` (Hermitian, (Nx N_perp)^2), with ``A_j`` the images of one random
   Hermitian matrix ``A`` under every transverse translation and reflection (so the ensemble has
   the symmetries the estimators use: means of products of blocks are k-diagonal and constant on
   orbits), ``mu`` the symmetrized mean, ``xi_j`` i.i.d. centred, scaled Bernoulli(0.4) (bounded,
   third cumulant 0.41, fourth -11/6). ``A`` couples different momenta, so the crossing term and the
   orbit-pair fields are far from trivial. Multilinearity of cumulants gives exactly
   ``Np^4 C4 = kappa4 sum_j Tr(A_j,ab A_j,bc A_j,cd A_j,da)``, and the crossing moment product
   ``sum E[X1 X3] E[X2 X4]`` follows from ``E[G_ab (x) G_cd] = mu_ab (x) mu_cd + sum_j A_j,ab (x)
   A_j,cd``. Each sample enters the production code as mode matrices ``Phi = V |lambda|^(1/2)``,
   ``S = sign(lambda)`` of its eigen-decomposition (``M = Nx N_perp`` columns, mixed signs).
"""
import numpy as np
import pytest

import anderson_mpi as am
from anderson_mpi.system import transverse_fft
from anderson_mpi.observables import k_orbits
from anderson_mpi.observables import Layout, pair_slices
from anderson_mpi.observables import cutpairs
from analysis.estimators import PARTITIONS4, Means, cumulants4, jackknife



def _layout(n_slices, orbit_index, pairs):
    """The Layout the order-4 fields need: sizes, orbits, pair slices (Ny*Nz folded into Ny)."""
    orbit_index = np.asarray(orbit_index, np.int64)
    return Layout(Nx=n_slices, Ny=len(orbit_index), Nz=1, orbit_index=orbit_index,
                  orbit_size=np.bincount(orbit_index), cut_slices=np.zeros(0, np.int64),
                  pair_slices=np.asarray(pairs, np.int64).reshape(-1, 2))


def order4_observables(phi, phi_k, s, pairs, orbit_index, n_orb, previous=None, low_memory=True):
    return cutpairs.order4_observables(phi_k, s, _layout(np.shape(phi_k)[0], orbit_index, pairs),
                                       previous=previous, low_memory=low_memory)


def order4_block_sums(samples, pairs, orbit_index, n_orb):
    samples = list(samples)
    layout = _layout(np.shape(samples[0][1])[0], orbit_index, pairs)
    return cutpairs.order4_block_sums([(pk, s) for _, pk, s in samples], layout)

def projector(U, orbit_index, orbit_size):
    def project(block):
        diag = np.einsum("pk,pq,qk->k", U.conj(), block, U)
        mean = np.zeros(len(orbit_size), dtype=complex)
        np.add.at(mean, orbit_index, diag)
        return (U * (mean / orbit_size)[orbit_index]) @ U.conj().T
    return project


def mean_k_field(phi_k, s, orbit_index, n_orb):
    """mean_k[a, b, o] = sum_{k in o} G~_ab[k, k] (the moments field the estimator reads)."""
    diag = np.einsum("akm,m,bkm->abk", phi_k, s, phi_k.conj())
    out = np.zeros(diag.shape[:2] + (n_orb,), dtype=complex)
    np.add.at(out, (slice(None), slice(None), orbit_index), diag)
    return out


def brute_terms(G, P, pairs, n_perp):
    """The 15 partition terms (order of PARTITIONS4), Np^-4 normalized, from dense blocks.

    G : (S, Nx, Nx, Np, Np) per-sample blocks (one block of consecutive samples)."""
    S, Nx = G.shape[:2]
    tr = np.trace
    Mb = {(x, y): P(G[:, x, y].mean(0)) for x in range(Nx) for y in range(Nx)}

    def Em(*factors):  # projected sample mean of a product of blocks
        out = np.zeros(G.shape[3:], dtype=complex)
        for g in G:
            prod = np.eye(G.shape[3], dtype=complex)
            for (x, y) in factors:
                prod = prod @ g[x, y]
            out += prod
        return P(out / S)

    out = np.empty((len(PARTITIONS4), len(pairs), Nx, Nx), dtype=complex)
    for i, (c, d) in enumerate(pairs):
        for a in range(Nx):
            for b in range(Nx):
                ab, bc, cd, da = (a, b), (b, c), (c, d), (d, a)
                t = {
                    "1234": np.mean([tr(g[ab] @ g[bc] @ g[cd] @ g[da]) for g in G]),
                    "123|4": tr(Em(ab, bc, cd) @ Mb[da]),
                    "234|1": tr(Em(bc, cd, da) @ Mb[ab]),
                    "341|2": tr(Em(cd, da, ab) @ Mb[bc]),
                    "412|3": tr(Em(da, ab, bc) @ Mb[cd]),
                    "12|34": tr(Em(ab, bc) @ Em(cd, da)),
                    "23|41": tr(Em(bc, cd) @ Em(da, ab)),
                    "13|24": np.mean([tr(G[s - 1][ab] @ G[s][bc] @ G[s - 1][cd] @ G[s][da])
                                      for s in range(1, S)]),
                    "12|3|4": tr(Em(ab, bc) @ Mb[cd] @ Mb[da]),
                    "23|1|4": tr(Em(bc, cd) @ Mb[da] @ Mb[ab]),
                    "34|1|2": tr(Em(cd, da) @ Mb[ab] @ Mb[bc]),
                    "41|2|3": tr(Em(da, ab) @ Mb[bc] @ Mb[cd]),
                    "13|2|4": np.mean([tr(g[ab] @ Mb[bc] @ g[cd] @ Mb[da]) for g in G]),
                    "24|1|3": np.mean([tr(Mb[ab] @ g[bc] @ Mb[cd] @ g[da]) for g in G]),
                    "1|2|3|4": tr(Mb[ab] @ Mb[bc] @ Mb[cd] @ Mb[da]),
                }
                for j, (label, _) in enumerate(PARTITIONS4):
                    out[j, i, a, b] = t[label] / n_perp**4
    return out


@pytest.mark.parametrize("shape, hopping", [((4, 3, 2), (1.0, 0.4, 0.3)), ((3, 2, 2), (1.0, 0.4, 0.4))])
def test_cumulants4_terms_equal_brute_force(shape, hopping):
    Nx, Ny, Nz = shape
    n_perp = Ny * Nz
    rng = np.random.default_rng(11)
    orbit_index, orbit_size = k_orbits(Ny, Nz, hopping)
    no = len(orbit_size)
    pairs = pair_slices(Nx, [[0.3, 0.8], [0.9, 0.2], [0.5, 0.5]])
    samples, G = [], []
    for _ in range(5):
        V = rng.uniform(-3, 3, shape)
        modes = am.mode_matrices(V, hopping)
        phi_k = transverse_fft(modes.phi, Ny, Nz, axis=1)
        samples.append((modes.phi, phi_k, modes.signature))
        G.append(am.g_neq(V, hopping).reshape(Nx, n_perp, Nx, n_perp).transpose(0, 2, 1, 3))
    sums, n = order4_block_sums(samples, pairs, orbit_index, no)
    sums["mean_k"] = sum(mean_k_field(pk, s, orbit_index, no) for _, pk, s in samples)
    est = cumulants4(Means({k: v / n for k, v in sums.items()}, n), n_perp, orbit_size, pairs)

    U = am.lead_modes(Ny, Nz, 0.2, hopping).U
    ref = brute_terms(np.array(G), projector(U, orbit_index, orbit_size), pairs, n_perp)
    scale = np.abs(ref).max()
    for j, (label, _) in enumerate(PARTITIONS4):
        assert np.abs(est["C4_terms"][j] - ref[j]).max() < 1e-11 * scale, label
    classical = np.array([(-1) ** (len(b) - 1) * [1, 1, 2, 6][len(b) - 1] for _, b in PARTITIONS4])
    c4 = np.tensordot(classical, ref, axes=1)
    assert np.allclose(est["C4"], c4.real, rtol=0, atol=1e-11 * scale)
    assert np.allclose(est["C4_imag"], c4.imag, rtol=0, atol=1e-11 * scale)
    assert np.allclose(est["C4_cross"] + 1j * est["C4_cross_imag"], ref[7], rtol=0, atol=1e-11 * scale)
    # free cumulant: NC(4) Moebius weights, written out by hand
    free = np.array([1, -1, -1, -1, -1, -1, -1, 0, 2, 2, 2, 2, 1, 1, -5])
    assert np.allclose(est["C4_free"], np.tensordot(free, ref, axes=1).real, rtol=0, atol=1e-11 * scale)
    # C4 is not small compared with its terms here, so a wrong sign or weight would show
    assert np.abs(c4).max() > 1e-3 * scale


# --- planted ensemble ---------------------------------------------------------------------------

HOPPING = (1.0, 0.4, 0.3)  # no y <-> z symmetry: the point group is the two reflections


def transverse_images(Ny, Nz):
    """Site permutations of every translation combined with every reflection (y -> -y, z -> -z)."""
    iy, iz = np.meshgrid(np.arange(Ny), np.arange(Nz), indexing="ij")
    perms = []
    for ty in range(Ny):
        for tz in range(Nz):
            for fy in (1, -1):
                for fz in (1, -1):
                    perms.append((((fy * iy + ty) % Ny) * Nz + (fz * iz + tz) % Nz).ravel())
    return perms


class PlantedFull:
    P_BERNOULLI = 0.4

    def __init__(self, rng, Nx, Ny, Nz, mu_scale=0.5, a_scale=0.25):
        self.Nx, self.Ny, self.Nz, self.Np = Nx, Ny, Nz, Ny * Nz
        n = Nx * self.Np

        def hermitian(scale):
            m = rng.normal(size=(n, n)) + 1j * rng.normal(size=(n, n))
            return scale * (m + m.conj().T) / 2

        self.perms = [np.concatenate([x * self.Np + p for x in range(Nx)])
                      for p in transverse_images(Ny, Nz)]
        A0 = hermitian(a_scale)
        self.A = np.array([A0[np.ix_(p, p)] for p in self.perms])        # A_j
        # mean: mu_xy = U diag(m_xy(o(k))) U^+, Hermitian in (x, y) per orbit
        orbit_index, orbit_size = k_orbits(Ny, Nz, HOPPING)
        no = len(orbit_size)
        m = mu_scale * (rng.normal(size=(Nx, Nx, no)) + 1j * rng.normal(size=(Nx, Nx, no)))
        m = (m + m.transpose(1, 0, 2).conj()) / 2
        U = am.lead_modes(Ny, Nz, 0.2, HOPPING).U
        self.mu = np.einsum("pk,xyk,qk->xpyq", U, m[:, :, orbit_index], U.conj()).reshape(n, n)
        pq = self.P_BERNOULLI * (1 - self.P_BERNOULLI)
        self.kappa4 = (1 - 6 * pq) / pq

    def blocks(self, full):
        return full.reshape(self.Nx, self.Np, self.Nx, self.Np).transpose(0, 2, 1, 3)

    def sample(self, rng):
        p = self.P_BERNOULLI
        xi = ((rng.random(len(self.A)) < p) - p) / np.sqrt(p * (1 - p))
        G = self.mu + np.tensordot(xi, self.A, axes=1)
        lam, vec = np.linalg.eigh(G)
        phi = (vec * np.sqrt(np.abs(lam))).reshape(self.Nx, self.Np, -1)
        return phi, transverse_fft(phi, self.Ny, self.Nz, axis=1), np.sign(lam)

    def kappa(self, n):
        p, q = self.P_BERNOULLI, 1 - self.P_BERNOULLI
        return {1: 0.0, 2: 1.0, 3: (q - p) / np.sqrt(p * q), 4: self.kappa4}[n]

    def moment(self, factors):
        """Exact E[X_1 ... X_n] (ordered product of blocks, n <= 4), X_i = mu_i + sum_j xi_j A_j,i.

        Moment-cumulant formula for the xi's: a sum over the partitions of a subset of the
        positions into blocks of size >= 2 (kappa1 = 0), each block carrying one momentum-free
        index j summed over all images and the weight kappa_|block|."""
        mu, A = self._blocks()
        n = len(factors)
        letters = "pqrstu"
        total = np.zeros((self.Np, self.Np), dtype=complex)
        for blocks in _partial_partitions(list(range(n))):
            weight = np.prod([self.kappa(len(b)) for b in blocks])
            if weight == 0.0:
                continue
            label = {i: "jklm"[k] for k, b in enumerate(blocks) for i in b}
            operands, subs = [], []
            for i, (x, y) in enumerate(factors):
                ij = letters[i] + letters[i + 1]
                if i in label:
                    operands.append(A[:, x, y])
                    subs.append(label[i] + ij)
                else:
                    operands.append(mu[x, y])
                    subs.append(ij)
            expr = ",".join(subs) + "->" + letters[0] + letters[n]
            total += weight * np.einsum(expr, *operands, optimize=True)
        return total

    def _blocks(self):
        if not hasattr(self, "_cache"):
            self._cache = (self.blocks(self.mu), np.array([self.blocks(a) for a in self.A]))
        return self._cache

    def exact_terms(self, pairs):
        """Exact value of each of the 15 partition terms (order of PARTITIONS4), Np^-4 normalized,
        and the exact C4 from multilinearity, kappa4 sum_j Tr(A_ab A_bc A_cd A_da)."""
        mu, A = self._blocks()
        Nx, npp4 = self.Nx, float(self.Np) ** 4
        tr = np.trace
        terms = np.zeros((len(PARTITIONS4), len(pairs), Nx, Nx), dtype=complex)
        c4 = np.zeros((len(pairs), Nx, Nx), dtype=complex)
        for i, (c, d) in enumerate(pairs):
            for a in range(Nx):
                for b in range(Nx):
                    ab, bc, cd, da = (a, b), (b, c), (c, d), (d, a)
                    E = self.moment
                    m = {f: mu[f] for f in (ab, bc, cd, da)}
                    t = {
                        "1234": tr(E([ab, bc, cd, da])),
                        "123|4": tr(E([ab, bc, cd]) @ m[da]), "234|1": tr(E([bc, cd, da]) @ m[ab]),
                        "341|2": tr(E([cd, da, ab]) @ m[bc]), "412|3": tr(E([da, ab, bc]) @ m[cd]),
                        "12|34": tr(E([ab, bc]) @ E([cd, da])), "23|41": tr(E([bc, cd]) @ E([da, ab])),
                        "12|3|4": tr(E([ab, bc]) @ m[cd] @ m[da]),
                        "23|1|4": tr(E([bc, cd]) @ m[da] @ m[ab]),
                        "34|1|2": tr(E([cd, da]) @ m[ab] @ m[bc]),
                        "41|2|3": tr(E([da, ab]) @ m[bc] @ m[cd]),
                        "1|2|3|4": tr(m[ab] @ m[bc] @ m[cd] @ m[da]),
                    }
                    # E[X1 (x) X3] = mu_ab (x) mu_cd + sum_j A_j,ab (x) A_j,cd (kappa2 = 1)
                    a_ab, a_bc, a_cd, a_da = A[:, a, b], A[:, b, c], A[:, c, d], A[:, d, a]
                    t["13|2|4"] = t["1|2|3|4"] + np.einsum("jpq,qr,jrs,sp->", a_ab, m[bc], a_cd, m[da])
                    t["24|1|3"] = t["1|2|3|4"] + np.einsum("pq,jqr,rs,jsp->", m[ab], a_bc, m[cd], a_da)
                    e13 = np.einsum("pq,rs->pqrs", m[ab], m[cd]) + np.einsum("jpq,jrs->pqrs", a_ab, a_cd)
                    e24 = np.einsum("qr,sp->qrsp", m[bc], m[da]) + np.einsum("jqr,jsp->qrsp", a_bc, a_da)
                    t["13|24"] = np.einsum("pqrs,qrsp->", e13, e24)
                    for j, (label, _) in enumerate(PARTITIONS4):
                        terms[j, i, a, b] = t[label] / npp4
                    c4[i, a, b] = self.kappa4 * np.einsum(
                        "jpq,jqr,jrs,jsp->", A[:, a, b], A[:, b, c], A[:, c, d], A[:, d, a]) / npp4
        return terms, c4


def _partial_partitions(items):
    """All partitions of all subsets of ``items`` into blocks (each a tuple), including the empty one."""
    if not items:
        yield []
        return
    first, rest = items[0], items[1:]
    for part in _partial_partitions(rest):
        yield part                                            # first not used
        yield [(first,)] + part                               # first alone
        for k in range(len(part)):
            yield part[:k] + [(first,) + part[k]] + part[k + 1:]


def test_planted_exact_terms_add_up_to_the_multilinear_cumulant():
    """Internal check of the planted model's exact moments: the 15 exact partition terms with the
    classical weights give kappa4 sum_j Tr(A_ab A_bc A_cd A_da) (multilinearity), to rounding."""
    planted = PlantedFull(np.random.default_rng(5), 3, 3, 2, mu_scale=1.0)
    terms, c4 = planted.exact_terms(pair_slices(3, [[0.1, 0.5], [0.5, 0.5]]))
    classical = np.array([(-1) ** (len(b) - 1) * [1, 1, 2, 6][len(b) - 1] for _, b in PARTITIONS4])
    assert np.allclose(np.tensordot(classical, terms, axes=1), c4, rtol=0, atol=1e-12 * np.abs(terms).max())
    assert np.abs(c4).max() > 1e-3 * np.abs(terms).max()


def test_planted_ensemble_through_the_jackknife():
    rng = np.random.default_rng(2024)
    Nx, Ny, Nz = 3, 3, 2
    planted = PlantedFull(rng, Nx, Ny, Nz, mu_scale=1.0)
    orbit_index, orbit_size = k_orbits(Ny, Nz, HOPPING)
    no = len(orbit_size)
    pairs = pair_slices(Nx, [[0.1, 0.5], [0.9, 0.4]])
    sizes = [20] * 40 + [7]  # a short last block
    per_block = []
    for m in sizes:
        samples = [planted.sample(rng) for _ in range(m)]
        sums, n = order4_block_sums(samples, pairs, orbit_index, no)
        assert n == m and sums["c4_n_pairs"] == m - 1
        sums["mean_k"] = sum(mean_k_field(pk, s, orbit_index, no) for _, pk, s in samples)
        per_block.append(sums)
    block_sums = {k: np.stack([b[k] for b in per_block]) for k in per_block[0]}
    est = jackknife(block_sums, sizes, lambda M: cumulants4(M, planted.Np, orbit_size, pairs))
    exact_terms, exact_c4 = planted.exact_terms(pairs)
    tiny = 1e-12 * np.abs(exact_terms).max()  # entries that vanish exactly (Im at coinciding slices)

    def max_pull(value, error, exact):
        value, error = np.asarray(value), np.asarray(error)
        assert np.all((error > 0) | (np.abs(exact) < tiny))
        return (np.abs(value - exact) / (error + tiny)).max()

    assert max_pull(est.value["C4"], est.error["C4"], exact_c4.real) < 5.0
    assert max_pull(est.value["C4_imag"], est.error["C4_imag"], exact_c4.imag) < 5.0
    cross = [label for label, _ in PARTITIONS4].index("13|24")
    assert max_pull(est.value["C4_cross"], est.error["C4_cross"], exact_terms[cross].real) < 5.0
    assert max_pull(est.value["C4_cross_imag"], est.error["C4_cross_imag"], exact_terms[cross].imag) < 5.0
    # every partition term on its own: real and imaginary parts
    terms, errs = np.asarray(est.value["C4_terms"]), est["C4_terms"].map(np.real).error
    errs_im = est["C4_terms"].map(np.imag).error
    for j, (label, _) in enumerate(PARTITIONS4):
        assert max_pull(terms[j].real, errs[j], exact_terms[j].real) < 5.0, label
        assert max_pull(terms[j].imag, errs_im[j], exact_terms[j].imag) < 5.0, label
        # each term is measured well away from zero, so a wrong index or weight would show
        assert np.median(np.abs(exact_terms[j]) / np.abs(errs[j] + 1j * errs_im[j])) > 3, label
    # the test has power on C4 itself, and the crossing term is many of its error bars
    err = np.asarray(est.error["C4"])
    assert np.median(np.abs(exact_c4.real) / err) > 3
    assert np.median(np.abs(exact_terms[cross].real) / err) > 5
