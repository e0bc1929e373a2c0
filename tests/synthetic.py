"""A synthetic ensemble with planted cumulants, and result files written through the schema.

Test data shared by the estimator, report and figure tests (not a test module).

The synthetic ensemble is k-diagonal: per sample and per transverse momentum k,
``G_ab(k) = mu_o[a, b] + xi_k A_o[a, b] + zeta_k B_o[a, b]`` (Nx x Nx Hermitian matrices that
depend only on the k orbit o; ``xi`` centred exponential with variance 1 and third cumulant 2,
``zeta`` standard normal, independent for every k and sample). Every stored field is then a
sum over k of products of these entries, and the connected cumulants are known exactly::

    C1(a)     = Np^-1 sum_o |o| mu_o[a, a]
    C2(a, b)  = Np^-2 sum_o |o| (|A_o[a, b]|^2 + |B_o[a, b]|^2)
    C3(a,b,c) = Np^-3 sum_o |o| 2 A_o[a, b] A_o[b, c] A_o[c, a]
    m3        = Np^-3 sum_o |o| 2 Tr A_o^3

(and the parts of m3 from coinciding indices follow from the whole C3 tensor by brute force),
while the disconnected parts (products of the means) are large, so a wrong subtraction shows.
"""
import dataclasses
import json

import h5py
import numpy as np

import anderson_mpi as am
from anderson_mpi.system import transverse_fft

from anderson_mpi.io import schema
from anderson_mpi.observables import k_orbits, make_layout
from analysis.estimators import PARTITIONS4
from anderson_mpi.run.config import make_plan

HOPPING = (1.0, 0.4, 0.4)


# --- the synthetic ensemble ---------------------------------------------------------------------

def _hermitian(rng, n, scale=1.0):
    m = rng.normal(size=(n, n)) + 1j * rng.normal(size=(n, n))
    return scale * (m + m.conj().T) / 2


class Planted:
    """Orbit-wise parameters of the synthetic ensemble and its exact cumulants."""

    def __init__(self, rng, Nx, Ny, Nz, cuts):
        self.layout = make_layout(Nx, Ny, Nz, HOPPING, cuts)
        self.cuts = list(cuts)
        no = self.layout.n_orbits
        self.mu = np.stack([_hermitian(rng, Nx, 1.5) for _ in range(no)])
        self.A = np.stack([_hermitian(rng, Nx, 0.6) for _ in range(no)])
        self.B = np.stack([_hermitian(rng, Nx, 0.4) for _ in range(no)])
        self.Nx, self.Np = Nx, Ny * Nz

    def exact(self):
        lay, npp, size = self.layout, float(self.Np), self.layout.orbit_size.astype(float)
        A, B, mu = self.A, self.B, self.mu
        out = {"C1": np.einsum("o,oaa->a", size, mu).real / npp}
        out["C2"] = np.einsum("o,oab->ab", size, np.abs(A) ** 2 + np.abs(B) ** 2) / npp**2
        out["m2"] = out["C2"].sum()
        c3 = []
        for c in lay.cut_slices:
            c3.append(2 * np.einsum("o,oab,ob,oa->ab", size, A, A[:, :, c], A[:, c, :]) / npp**3)
        out["C3"] = np.real(np.array(c3))
        out["C3_imag"] = np.imag(np.array(c3))
        out["m3"] = 2 * np.einsum("o,oab,obc,oca->", size, A, A, A).real / npp**3
        # m3 split by brute force over the whole C3 tensor (no inclusion-exclusion used)
        c3_all = 2 * np.einsum("o,oab,obc,oca->abc", size, A, A, A).real / npp**3
        a, b, c = np.meshgrid(*(np.arange(self.Nx),) * 3, indexing="ij")
        coinciding = (a == b) | (b == c) | (c == a)
        out["m3_coinciding"] = c3_all[coinciding].sum()
        out["m3_distinct"] = c3_all[~coinciding].sum()
        out["c3_sum_aac"] = c3_all[a == b].sum()
        out["c3_sum_aaa"] = c3_all[(a == b) & (b == c)].sum()
        out["map1"] = np.einsum("o,oab->ab", size, mu) / npp
        npp2 = npp**2
        out["map2"] = np.array([self.Nx * np.einsum("o,oa,ob->ab", size, X[:, :, c], X[:, c, :]) / npp2
                                for c in lay.cut_slices for X in (mu, A, B)]).reshape(
            len(lay.cut_slices), 3, self.Nx, self.Nx).sum(axis=1)
        out["conductance"], out["conductance_var"], out["fano"] = 5.0, 0.25, 0.3
        return out

    def samples(self, rng, S):
        """Per-sample fields (dict name -> (S, ...)) of S samples."""
        lay = self.layout
        o_of_k = lay.orbit_index
        xi = rng.exponential(size=(S, lay.n_perp)) - 1.0
        zeta = rng.normal(size=(S, lay.n_perp))
        c = (self.mu[o_of_k][None] + xi[..., None, None] * self.A[o_of_k][None]
             + zeta[..., None, None] * self.B[o_of_k][None])  # (S, k, a, b)
        ind = lay.orbit_matrix.T  # (k, o)
        f = {"tr_g": np.einsum("skaa->sa", c).real,
             "tr_gg": np.einsum("skab,skba->sab", c, c).real,
             "mean_k": np.einsum("skab,ko->sabo", c, ind)}
        c2 = c @ c
        f["g2_kdiag"] = np.einsum("skab,ko->sabo", c2, ind)
        f["tr_g3"] = np.einsum("skab,skba->s", c2, c).real
        # the optional fields of the m3 split (k-diagonal: G_aa(k) is the number c[k, a, a])
        diag = np.einsum("skaa->ska", c)
        f["diag_tr_g_g2"] = np.einsum("ska,skaa->s", diag, c2).real
        f["diag_tr_g3"] = np.einsum("ska->sa", diag**3).real
        f["diag_kdiag_aa_ac"] = np.einsum("ska,skac,ko->saco", diag, c, ind)
        nc = len(lay.cut_slices)
        shape = (S, nc, self.Nx, self.Nx)
        for name in ("cut_pair", "cut_tr_ggg"):
            f[name] = np.empty(shape, complex)
        for name in ("cut_kdiag_ab_bc", "cut_kdiag_bc_ca"):
            f[name] = np.empty(shape + (lay.n_orbits,), complex)
        for i, cc in enumerate(lay.cut_slices):
            to_c, from_c = c[:, :, :, cc], c[:, :, cc, :]  # [s,k,a] = G_ac, [s,k,b] = G_cb
            f["cut_pair"][:, i] = np.einsum("ska,skb->sab", to_c, from_c)
            f["cut_tr_ggg"][:, i] = np.einsum("skab,skb,ska->sab", c, to_c, from_c)
            f["cut_kdiag_ab_bc"][:, i] = np.einsum("skab,skb,ko->sabo", c, to_c, ind)
            f["cut_kdiag_bc_ca"][:, i] = np.einsum("skb,ska,ko->sabo", to_c, from_c, ind)
        g = 5.0 + 0.5 * (rng.exponential(size=S) - 1.0)
        f["g"], f["g_sq"] = g, g * g
        f["fano_num"] = g * rng.uniform(0.2, 0.4, size=S)
        return f


def block_sums(per_sample, sizes):
    edges = np.concatenate([[0], np.cumsum(sizes)])
    return {k: np.stack([v[a:b].sum(axis=0) for a, b in zip(edges[:-1], edges[1:])])
            for k, v in per_sample.items()}


def write_synthetic_file(path, planted, sums, n_per_block, done=None, valid=True, W=6.0,
                         m3_split=False, job_toml=""):
    """A result file written through `anderson_mpi.schema`, as `anderson_mpi.store` writes one
    (serial h5py instead of mpio): a change of the layout reaches these tests too.
    ``m3_split`` adds the optional fields of the m3 split, ``job_toml`` the job file text."""
    lay = dataclasses.replace(planted.layout, m3_split=m3_split)
    n_blocks = len(n_per_block)
    done = np.ones(n_blocks, np.int8) if done is None else np.asarray(done, np.int8)
    run = make_plan({"geometry": "quasi1d", "sizes": [lay.Nx], "transverse": [lay.Ny, lay.Nz],
                     "W": [W], "samples": int(np.sum(n_per_block)), "block_size": int(max(n_per_block)),
                     "cuts": list(planted.cuts), "hopping": list(HOPPING), "m3_split": m3_split},
                    "synthetic")[0]
    run_json = json.loads(run.to_json())
    run_json["geometry"] = "cube"  # the estimators only read geometry, sizes and W
    attrs = {"code_version": "test", "model": "anderson", "job_toml": job_toml, "run": json.dumps(run_json),
             "physics": json.dumps(run.physics()), "created": "test", "n_blocks": n_blocks,
             "block_size": run.block_size, "samples": run.samples}
    with h5py.File(path, "w") as f:
        schema.create_datasets(f, attrs, schema.layout_datasets(run, lay, (lay.n_perp, lay.n_perp)),
                               lay, n_blocks)
        for name, spec in schema.block_fields(lay).items():
            assert sums[name].shape == (n_blocks,) + spec.shape, name  # same layout as the real files
            f["blocks"][name][...] = sums[name]
            f["totals"][name][...] = sums[name][done == 1].sum(axis=0)
        f["blocks/n_samples"][...] = np.asarray(n_per_block)
        f["blocks/done"][...] = done
        f["attempts"][()] = 1
        f["totals/n_samples"][()] = int(np.sum(np.asarray(n_per_block)[done == 1]))
        f["totals/valid"][()] = 1 if valid else 0
    return path


# --- a planted ensemble of full matrices (order four) ---------------------------------------------------------------------------

HOPPING_FULL = (1.0, 0.4, 0.3)  # no y <-> z symmetry: the point group is the two reflections


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
        orbit_index, orbit_size = k_orbits(Ny, Nz, HOPPING_FULL)
        no = len(orbit_size)
        m = mu_scale * (rng.normal(size=(Nx, Nx, no)) + 1j * rng.normal(size=(Nx, Nx, no)))
        m = (m + m.transpose(1, 0, 2).conj()) / 2
        U = am.lead_modes(Ny, Nz, 0.2, HOPPING_FULL).U
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
