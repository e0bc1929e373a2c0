"""Fourth order on cut pairs (docs/theory.md §7.4): block-local unbiased estimators of C4.

A run fixes cut pairs ``(c, d)``; every ``(a, b)`` is computed. With ``X1 = G_ab, X2 = G_bc,
X3 = G_cd, X4 = G_da`` (slice blocks of Gneq, ``G_xy = Phi_x S Phi_y^+``) and ``M_xy = E G_xy``
(docs/theory.md §7),

    Np^4 C4(a,b,c,d) = sum over the 15 set partitions pi of {1,2,3,4} of
                       (-1)^(|pi|-1) (|pi|-1)!  T_pi,   T_pi = sum_perp prod_{B in pi} E[prod_{j in B} X_j]

and every ``T_pi`` is a trace around a -> b -> c -> d -> a. This module estimates each of the 15
``T_pi`` separately and without bias: per sample it returns increments of (Nx, Nx) sums and of
counts (`field_shapes`); over any set of whole seed blocks ``T_pi = sum c4_terms / sum
c4_counts`` (`analysis.estimators.cumulants4`). The counts are deterministic (they depend on the block sizes and
the schedule only), so the ratio is exactly unbiased and the jackknife has nothing to correct.
File size per pair and block: ``15 Nx^2`` complex numbers and 15 counts shared by all pairs.

Notation. Everything is computed in the transverse Fourier basis (``P_x = phi_k[x]``, ``G~_xy =
P_x S P_y^+``, ``Y = G~_cd``), where the mean of a product of cyclically consecutive blocks is
diagonal and constant on a k orbit (transverse translations and the point symmetries of the
ensemble). ``[Q]_o = sum_{k in o} (Q~)_kk`` is the k-orbit sum of a per-sample product,
``m_xy = [G_xy]_o`` (the ``mean_k`` field of the base group), ``|o|`` the orbit size,
``D_xy`` the diagonal matrix ``m_xy(o(k)) / |o(k)|`` (the k-orbit average of ``G~_xy``). The
samples of a block are numbered ``s = 0, 1, ...`` in the block's fixed order; class A = the even
positions, class B = the odd ones. Every product below takes its factors from *distinct* samples
of the block, which are independent, so its expectation is the product of the factors' means: the
estimators are unbiased at any number of samples.

* ``1234 = Tr(G_ab G_bc G_cd G_da)`` of every sample (count 1).
* k-diagonal products: within-block U-statistics, the sum over ordered tuples of distinct samples
  ``(s_1, .., s_r)`` of ``sum_o prod_i f_i(s_i) / |o|^(r-1)`` (count: the number of tuples):
  ``123|4: ([G_ab G_bc G_cd], m_da)``, ``234|1: ([G_bc G_cd G_da], m_ab)``,
  ``412|3: ([G_da G_ab G_bc], m_cd)``, ``12|34: ([G_ab G_bc], [G_cd G_da])``,
  ``23|41: ([G_bc G_cd], [G_da G_ab])``, ``12|3|4: ([G_ab G_bc], m_cd, m_da)``,
  ``23|1|4: ([G_bc G_cd], m_ab, m_da)``, ``34|1|2: ([G_cd G_da], m_ab, m_bc)``,
  ``41|2|3: ([G_da G_ab], m_bc, m_cd)``, ``1|2|3|4: (m_ab, m_bc, m_cd, m_da)``.
  They are accumulated causally: a sample adds the tuples in which it is the latest,
  ``sum_i f_i(s) U_prev(other factors)``, from running power sums of the factors over the
  previous samples (held in the state, never written).
* ``341|2``: ``Tr(G_cd G_da G_ab D^A_bc)``, ``D^A_bc`` = ``D_bc`` summed over the previous class-A
  samples (count: their number n_A).
* ``13|2|4``: ``Tr(G_ab D^A_bc G_cd D^B_da)`` and ``24|1|3``: ``Tr(D^A_ab G_bc D^B_cd G_da)``: the
  two means sit at different momenta, so they come from disjoint classes of previous samples
  (count n_A n_B).
* the crossing ``13|24``: ``Tr(G^s_ab G^t_bc G^s_cd G^t_da)``, ``t = s - 1`` (count 1).

Schedules (`SCHEDULES`): besides the terms every sample computes, a sample computes the optional
groups of its position modulo the schedule's period: "L" (the products ``G_cb P_b``: the factors
``[G_ab G_bc]``, ``[G_da G_ab G_bc]`` of 412|3, 12|34, 12|3|4, and the term 24|1|3), "Z"
(``G_dc D^A_cb P_b``: 341|2, 13|2|4) and "X" (the crossing with the previous sample, which then
carries ``G~_cb`` and ``G~_da``). ``"full"``: every group on every sample (the crossing on every
consecutive pair); ``"half"``: L and Z at even positions, X at odd ones (disjoint pairs);
``"quarter"``: L at positions 4j, X at 4j + 1, Z at 4j + 2. Every term stays unbiased under every
schedule: a factor that a sample does not compute enters the U-statistics with weight 0 and is not
counted. The schedules differ in cost and in the variance of the optional terms only; ``1234``,
which carries most of the variance of C4 at distinct slices, is computed on every sample.

Cost, in ``U = Nx Np^2 M`` complex multiply-adds per sample and pair (a recursion is about 2 U of
flops): always ``G~_dc G~_cb`` and ``G~_da`` for all slices (2 U, one product, row sources
``Y^+ P_c S`` and ``P_d S``) and the products ``G_dc G_cb P_b``, ``G_da P_a`` (2 U); group L:
``G~_cb`` instead of ``G~_dc G~_cb`` plus ``Y^+ G~_cb`` (+0.5 U) and ``G_cb P_b`` (1 U); Z: 1 U;
X: ``Y^+ G~^t_cb`` (0.5 U), ``G^s_dc G^t_cb P_b`` and ``G^t_da P_a`` (2 U). So 4 U to 9 U per
sample, 6.5 U on average under "half", 5.25 U under "quarter", 9 U under "full"; the k-resolved
diagonals and Grams over (a, b) add ``O(Nx^2 Np M)`` (a fraction Nx / Np of U each). The products
are blocked over rows k of the transverse momenta (`_CHUNK_FRACTION`, `_MIN_ROWS`).

Memory besides the sample's mode matrix: ``G~_cb`` / ``G~_dc G~_cb`` and ``G~_da`` (one mode matrix),
the blocks of rows (about ``_CHUNK_FRACTION`` of one), the carry for a crossing (``G~_cb``, ``G~_da``
of the previous sample, one mode matrix, held from one sample to the next), running sums
``O(Nx^2 n_orb)`` per pair.

Pure numpy/scipy: arrays in, arrays out; no MPI, no files.
"""
from __future__ import annotations

from itertools import combinations
from math import factorial

import numpy as np
from scipy.linalg import blas

from ..contracts import COMPLEX_BYTES, Cost, Field
from .kernels import checked_modes

__all__ = ["CUT_PAIRS", "TERMS", "SCHEDULES", "field_shapes", "CutPairState", "cutpair_fields"]

TERMS = ("1234", "123|4", "234|1", "341|2", "412|3", "12|34", "23|41", "13|24",
         "12|3|4", "23|1|4", "34|1|2", "41|2|3", "13|2|4", "24|1|3", "1|2|3|4")
# Which optional groups of products a sample computes, by its position in the block modulo the
# period: "L" = the products G_cb P_b (terms 412|3, 12|34, 12|3|4, 24|1|3), "Z" = G_dc D^A_cb P_b
# (341|2, 13|2|4), "X" = the crossing with the previous sample (never at position 0).
SCHEDULES = {
    "full": ({"L", "Z", "X"},),
    "half": ({"L", "Z"}, {"X"}),
    "quarter": ({"L"}, {"X"}, {"Z"}, set()),
}

# Factors of the U-statistic terms. Per-sample factor values (k-orbit sums) and their (a, b, o)
# broadcast shapes: ab (Nx, Nx), bc (1, Nx), cd (1, 1), da (Nx, 1); "12" = [G_ab G_bc],
# "23" = [G_bc G_cd] (1, Nx), "34" = [G_cd G_da] (Nx, 1), "41" = [G_da G_ab], "123", "234", "412".
_U_TERMS = {
    "123|4": ("123", "da"), "234|1": ("234", "ab"), "412|3": ("412", "cd"),
    "12|34": ("12", "34"), "23|41": ("23", "41"),
    "12|3|4": ("12", "cd", "da"), "23|1|4": ("23", "ab", "da"), "34|1|2": ("34", "ab", "bc"),
    "41|2|3": ("41", "bc", "cd"), "1|2|3|4": ("ab", "bc", "cd", "da"),
}
# factors computed only by samples of group "L" (the products G_cb P_b)
_L_FACTORS = ("12", "412")

# Temporaries of one block of k rows relative to one mode matrix (bytes), and its minimum rows.
_CHUNK_FRACTION = 0.5
_MIN_ROWS = 64


def field_shapes(nx, n_pairs):
    """Name -> (shape, dtype, meaning) of the per-sample fields (and so of the block sums).

    =============  ==========================  ==================================================
    name           shape                       per-sample value
    =============  ==========================  ==================================================
    c4_terms       (n_pairs, 15, Nx, Nx) c128  increment of the block's unbiased sum of each
                                               partition term ``T_pi`` (order `TERMS`), not
                                               normalized by ``Np^4``
    c4_counts      (15,) f64                   increment of the number of sample tuples behind
                                               each term's sum (the same for every pair)
    =============  ==========================  ==================================================

    Over any set of whole blocks, ``T_pi = sum c4_terms / sum c4_counts`` (`analysis.estimators.cumulants4`).
    """
    return {
        "c4_terms": ((n_pairs, len(TERMS), nx, nx), np.complex128,
                     "increment of the unbiased block sum of each partition term (order TERMS)"),
        "c4_counts": ((len(TERMS),), np.float64,
                      "increment of the number of sample tuples behind each term"),
    }


# --- running power sums: causal within-block U-statistics ----------------------------------------

def _set_partitions(items):
    if not items:
        yield []
        return
    first, rest = items[0], items[1:]
    for part in _set_partitions(rest):
        yield [(first,)] + part
        for k in range(len(part)):
            yield part[:k] + [(first,) + part[k]] + part[k + 1:]


def _moebius(part):
    return int(np.prod([(-1) ** (len(b) - 1) * factorial(len(b) - 1) for b in part]))


class _PowerSums:
    """``sums[B] = sum over previous samples of prod_{f in B} value_f`` for every proper subset B
    of every term's factors. The U-statistic over distinct previous samples of a set of factors is
    ``sum over set partitions pi of mu(pi) prod_{B in pi} sums[B]``; a sample adds, for each term,
    the tuples in which it is the latest: ``sum_i value_i U(other factors)``."""

    def __init__(self, terms):
        self.terms = terms
        self.sums = {}
        needed = set()
        for factors in terms.values():
            for r in range(1, len(factors)):
                needed.update(frozenset(sub) for sub in combinations(factors, r))
        self.needed = sorted(needed, key=sorted)

    def ustat(self, names):
        if not names:
            return 1.0
        total = 0.0
        for part in _set_partitions(tuple(names)):
            prod = float(_moebius(part))
            for block in part:
                value = self.sums.get(frozenset(block))
                if value is None:  # no previous sample had all these factors
                    prod = 0.0
                    break
                prod = prod * value
            total = total + prod
        return total

    def increments(self, values):
        """``term -> sum_i value_i U_prev(other factors)`` (0.0 where nothing contributes)."""
        out = {}
        for term, factors in self.terms.items():
            inc = 0.0
            for i, name in enumerate(factors):
                value = values.get(name)
                if value is not None:
                    inc = inc + value * self.ustat(factors[:i] + factors[i + 1:])
            out[term] = inc
        return out

    def update(self, values):
        for block in self.needed:
            if all(values.get(name) is not None for name in block):
                prod = 1.0
                for name in sorted(block):
                    prod = prod * values[name]
                self.sums[block] = self.sums[block] + prod if block in self.sums else prod


class _PairRunning:
    """Running data of one cut pair over the previous samples of the block."""

    def __init__(self):
        self.power = _PowerSums(_U_TERMS)
        self.sum_a_bc = self.sum_a_ab = self.sum_b_da = self.sum_b_cd = 0.0
        self.carry = None   # (H_all, F_all) of the previous sample: G~_cb, G~_da rows


class CutPairState:
    """What the samples of one seed block share: running sums over the previous samples and the
    carry of the previous sample (for the crossing). Create one per block (fresh, position 0) and
    pass it to `cutpair_fields` for every sample of the block in the block's fixed order: the
    fields then depend only on the block's own samples and their order.

    Parameters
    ----------
    schedule : {"half", "quarter", "full"}
        Which sample computes which terms (`SCHEDULES`, module docstring).
    """

    def __init__(self, schedule="half"):
        if schedule not in SCHEDULES:
            raise ValueError(f"schedule must be one of {tuple(SCHEDULES)}, got {schedule!r}")
        self.schedule = schedule
        self.position = 0
        self.n_a = 0
        self.n_b = 0
        self.counts = _PowerSums(_U_TERMS)
        self.pairs = None
        self.signature_of = None   # (Nx, N_perp, n_orb, pair slices) fixed at the first sample

    def groups(self, position=None):
        """The optional groups ("L", "Z", "X") of the sample at ``position`` (default: current)."""
        j = self.position if position is None else position
        table = SCHEDULES[self.schedule]
        groups = set(table[j % len(table)])
        if j == 0:
            groups.discard("X")
        return groups


def _rows_of(flat, rows):
    """``rows flat^+`` as a C-contiguous (n, Nx N_perp) array: row k holds G~_xb[k, :] for every
    slice b when ``rows = P_x[k] S`` (zgemm conjugates; nothing of the size of Phi is copied)."""
    return blas.zgemm(1.0, flat.T, np.ascontiguousarray(rows).T, trans_a=2).T


def _chunk_rows(nx, n_perp, width, n_slots):
    """k rows per block: temporaries near _CHUNK_FRACTION of one mode matrix, at least _MIN_ROWS
    (fewer rows make the products with P inefficient)."""
    per_row = 16 * nx * (n_slots * width + 4 * n_perp)
    rows = int(_CHUNK_FRACTION * 16 * nx * n_perp * width // max(per_row, 1))
    return int(max(1, min(n_perp, max(rows, _MIN_ROWS))))


def _orbit_reduce(indicator, kresolved):
    """(n_orb, ...) k-orbit sums of a (Np, ...) array."""
    shape = kresolved.shape
    return (indicator @ kresolved.reshape(shape[0], -1)).reshape((indicator.shape[0],) + shape[1:])


def _per_k(left, right, n_plus):
    """``out[k, a, b] = sum_m s_m left[a, k, m] right[b, k, m]`` for a signature of ``n_plus``
    leading +1 and then -1 (views in, no copies of the operands)."""
    lt, rt = left.transpose(1, 0, 2), right.transpose(1, 2, 0)
    out = np.matmul(lt[:, :, :n_plus], rt[:, :n_plus])
    if n_plus < left.shape[2]:
        out -= np.matmul(lt[:, :, n_plus:], rt[:, n_plus:])
    return out


class _Buffers:
    """Reusable work arrays (a fresh allocation per block of rows would fault its pages in again)."""

    def __init__(self):
        self.arrays = {}

    def get(self, name, shape):
        arr = self.arrays.get(name)
        if arr is None or arr.shape != shape:
            arr = self.arrays[name] = np.empty(shape, dtype=complex)
        return arr


def _pair_sample(P, n_plus, mk, oi, indicator, size, c, d, run, groups, keep_carry, buffers):
    """One pair's increments: (15, Nx, Nx) values; updates ``run`` (except the class sums).
    ``P``: Fourier-basis modes whose signature is ``n_plus`` times +1, then -1."""
    with_l, with_z, with_cross = "L" in groups, "Z" in groups, "X" in groups
    nx, n_perp, width = P.shape
    s = np.where(np.arange(width) < n_plus, 1.0, -1.0)
    no = indicator.shape[0]
    flat = P.reshape(nx * n_perp, width)
    pc_s, pd_s = P[c] * s, P[d] * s
    Y = pc_s @ P[d].conj().T                        # G~_cd
    Yh = np.ascontiguousarray(Y.conj().T)
    # rows [k, (b, q)]: H = G~_cb, H2 = G~_dc G~_cb = Y^+ H, F = G~_da (for all slices b, a)
    if with_l:
        hf = _rows_of(flat, np.concatenate([pc_s, pd_s]))
        H_all, F_all, H2_all = hf[:n_perp], hf[n_perp:], None
    else:   # H itself is not needed: H2 from its own row source, Y^+ P_c S
        hf = _rows_of(flat, np.concatenate([Yh @ pc_s, pd_s]))
        H_all, F_all, H2_all = None, hf[n_perp:], hf[:n_perp]
    if keep_carry and not with_l:
        raise AssertionError("a sample that carries G~_cb must compute it")
    if with_cross:
        Ht_all, Ft_all = run.carry
    # sums over the class's previous samples of k-orbit averages, k-resolved
    d_b_da = np.broadcast_to(run.sum_b_da / size, (nx, no))[:, oi]
    d_b_cd = np.broadcast_to(run.sum_b_cd / size, (no,))[oi]
    d_a_ab = np.broadcast_to(run.sum_a_ab / size, (nx, nx, no))
    d_a_bc = np.broadcast_to(run.sum_a_bc / size, (nx, no))[:, oi] if with_z else None

    # b-side objects, conjugated: conj(Q_b P_b) (Z and X also times S); a-side objects W_a P_a
    b_slots = ["L2"] + (["L"] if with_l else []) + (["Z"] if with_z else []) + (["X"] if with_cross else [])
    a_slots = ["R"] + (["DP"] if with_z else []) + (["RX"] if with_cross else [])
    ib = {name: i for i, name in enumerate(b_slots)}
    ia = {name: i for i, name in enumerate(a_slots)}
    chunk = _chunk_rows(nx, n_perp, width, len(b_slots) + len(a_slots))
    n_chunks = -(-n_perp // chunk)
    chunk = -(-n_perp // n_chunks)                  # equal blocks: the buffers are reused
    n_left = 2 if with_l else 1
    n_q = 2 if with_l else 1
    kd_p = np.zeros((no, nx, n_left * nx), complex)      # P_a x conj[L2, L]: k123, k12
    kd_r = np.zeros((no, nx, n_left * nx), complex)      # R_a x conj[L2, L]: (1234), k412
    kd_41 = np.zeros((no, nx, nx), complex)              # conj(R_a) x P_b
    g_1234 = np.zeros((nx, nx), complex)
    g_341 = np.zeros((nx, nx), complex)
    g_13 = np.zeros((nx, nx), complex)
    g_cross = np.zeros((nx, nx), complex)
    acc_q = np.zeros((n_perp, n_q * nx, nx), complex)      # [k, (H2 | H d_cd), a]
    k23 = np.zeros((nx, n_perp), complex)
    k34 = np.zeros((nx, n_perp), complex)
    for k0 in range(0, n_perp, chunk):
        ks = slice(k0, min(n_perp, k0 + chunk))
        nk = ks.stop - k0
        rows = np.arange(nk)
        Fr = F_all[ks].reshape(nk, nx, n_perp)                       # [k, a, q] = G~_da[k, q]
        if with_l:
            Hr = H_all[ks].reshape(nk, nx, n_perp)                   # [k, b, q] = G~_cb[k, q]
            H2r = np.matmul(Yh[ks], H_all, out=buffers.get("h2", (nk, nx * n_perp))).reshape(nk, nx, n_perp)
        else:
            H2r = H2_all[ks].reshape(nk, nx, n_perp)                 # (G~_dc G~_cb)[k, q]
        ob = buffers.get("ob", (len(b_slots), nx, nk, width))
        oa = buffers.get("oa", (len(a_slots), nx, nk, width))
        pk = P[:, ks]
        # b side: L2 = G_dc G_cb P_b, L = G_cb P_b, Z = G_dc conj(D^A_cb) P_b,
        # X = G^s_dc G^t_cb P_b; then conjugated in place
        np.matmul(H2r.transpose(1, 0, 2), P, out=ob[ib["L2"]])
        if with_l:
            np.matmul(Hr.transpose(1, 0, 2), P, out=ob[ib["L"]])
        if with_z:
            np.matmul((Yh[ks][:, None, :] * d_a_bc.conj()[None]).transpose(1, 0, 2), P, out=ob[ib["Z"]])
        if with_cross:
            np.matmul((Yh[ks] @ Ht_all).reshape(nk, nx, n_perp).transpose(1, 0, 2), P, out=ob[ib["X"]])
        np.conjugate(ob, out=ob)
        if with_z or with_cross:   # these enter only Grams over (k, m): fold S in, then flat products
            ob[len(b_slots) - with_z - with_cross:] *= s
        # a side: R = G_da P_a, D^B_da P_a, RX = G^t_da P_a
        np.matmul(Fr.transpose(1, 0, 2), P, out=oa[ia["R"]])
        if with_z:
            np.multiply(pk, d_b_da[:, ks, None], out=oa[ia["DP"]])
        if with_cross:
            np.matmul(Ft_all[ks].reshape(nk, nx, n_perp).transpose(1, 0, 2), P, out=oa[ia["RX"]])
        # per k (S between the factors): [P_a S L2_b^+]_kk = (G_ab G_bc G_cd)_kk,
        # [P_a S L_b^+] = G_ab G_bc, [R_a S L2_b^+] = G_da G_ab G_bc G_cd, [R_a S L_b^+] =
        # G_da G_ab G_bc; Grams: Tr(R_a S Z_b^+), Tr(D^B_da P_a S Z_b^+), Tr(RX_a S X_b^+)
        ind = indicator[:, ks]
        left = ob[:n_left].reshape(n_left * nx, nk, width)
        kd_p += _orbit_reduce(ind, _per_k(pk, left, n_plus))
        kd = _per_k(oa[ia["R"]], left, n_plus)
        g_1234 += kd[:, :, :nx].sum(axis=0)
        kd_r += _orbit_reduce(ind, kd)
        del kd
        if with_z:
            zs = ob[ib["Z"]].reshape(nx, -1).T
            g_341 += oa[ia["R"]].reshape(nx, -1) @ zs
            g_13 += oa[ia["DP"]].reshape(nx, -1) @ zs
        if with_cross:
            g_cross += oa[ia["RX"]].reshape(nx, -1) @ ob[ib["X"]].reshape(nx, -1).T
        # (G_da G_ab)_kk = [R_a S P_b^+]_kk = conj [conj(R_a) S P_b^T]_kk
        r = oa[ia["R"]]
        np.conjugate(r, out=r)
        kd_41 += _orbit_reduce(ind, _per_k(r, pk, n_plus))
        # sums over the rows q of this block, for every k: (G_bc G_cd G_da)_kk =
        # sum_q conj(H2[q, k]) F[q, k]; 24|1|3: sum_q conj(H[q, k]) d^B_cd(q) F[q, k]
        lq = buffers.get("lq", (n_perp, n_q * nx, nk))
        lq[:, :nx] = H2r.transpose(2, 1, 0)
        if with_l:
            lq[:, nx:] = (Hr * d_b_cd[ks, None, None].conj()).transpose(2, 1, 0)
        np.conjugate(lq, out=lq)
        fq = buffers.get("fq", (n_perp, nk, nx))
        fq[...] = Fr.transpose(2, 0, 1)
        acc_q += np.matmul(lq, fq)
        k23[:, ks] = H2r[rows, :, k0 + rows].T.conj()                # (G_bc G_cd)_kk = conj (G_dc G_cb)_kk
        k34 += np.einsum("qak,kq->ak", Fr, Y[:, ks])                 # (G_cd G_da)_kk

    run.carry = (H_all, F_all) if keep_carry else None
    values = {"ab": mk, "bc": mk[:, c][None], "cd": mk[c, d][None, None], "da": mk[d][:, None],
              "123": kd_p[:, :, :nx].transpose(1, 2, 0), "41": kd_41.conj().transpose(1, 2, 0),
              "234": _orbit_reduce(indicator, acc_q[:, :nx]).transpose(2, 1, 0),
              "23": (indicator @ k23.T).T[None], "34": (indicator @ k34.T).T[:, None]}
    out = np.zeros((len(TERMS), nx, nx), complex)
    if with_l:
        values["12"] = kd_p[:, :, nx:].transpose(1, 2, 0)
        values["412"] = kd_r[:, :, nx:].transpose(1, 2, 0)
        w24 = _orbit_reduce(indicator, acc_q[:, nx:])                # [o, b, a]
        out[TERMS.index("24|1|3")] = np.einsum("abo,oba->ab", d_a_ab, w24)
    incs = run.power.increments(values)
    for term, factors in _U_TERMS.items():
        inc = incs[term]
        if np.ndim(inc):
            out[TERMS.index(term)] = np.sum(inc / size ** (len(factors) - 1), axis=-1)
    out[TERMS.index("1234")] = g_1234
    out[TERMS.index("341|2")] = g_341
    out[TERMS.index("13|2|4")] = g_13
    out[TERMS.index("13|24")] = g_cross
    run.power.update(values)
    return out


def cutpair_fields(phi_k, signature, mean_k, orbit_index, orbit_size, pair_slices, state):
    """Per-sample fourth-order fields on the cut pairs (`field_shapes`); updates ``state``.

    Parameters
    ----------
    phi_k : ndarray (Nx, N_perp, M), complex
        The sample's stacked mode matrix in the transverse Fourier basis
        (`anderson_mpi.system.transverse_fft`, axis 1); any number M of columns.
    signature : ndarray (M,)
        +1 / -1 per column, in any order.
    mean_k : ndarray (Nx, Nx, n_orb), complex
        This sample's k-orbit sums ``sum_{k in o} G~_xy[k, k]`` (the ``mean_k`` field of the
        base group).
    orbit_index : int array (N_perp,)
        k orbit of each transverse mode (`anderson_mpi.observables.layout.k_orbits`).
    orbit_size : int array (n_orb,)
    pair_slices : int array (n_pairs, 2)
        ``(c, d)`` per cut pair; ``c == d`` is allowed.
    state : CutPairState
        The state of the sample's seed block (fresh for the block's first sample).

    Returns
    -------
    dict
        name -> array, shapes and meanings of `field_shapes`.
    """
    P, s = checked_modes(phi_k, signature)
    nx, n_perp, width = P.shape
    n_plus = int(np.count_nonzero(s > 0))
    if not np.all(s[:n_plus] == 1.0):   # G = P S P^+ does not depend on the order of the columns
        order = np.argsort(-s, kind="stable")
        P, s = np.ascontiguousarray(P[:, :, order]), s[order]
    pairs = np.asarray(pair_slices, dtype=np.int64).reshape(-1, 2)
    if pairs.size and (pairs.min() < 0 or pairs.max() >= nx):
        raise ValueError(f"pair slices must lie in [0, Nx = {nx}), got {pairs.tolist()}")
    oi = np.asarray(orbit_index, dtype=np.int64).reshape(-1)
    size = np.asarray(orbit_size, dtype=float).reshape(-1)
    no = len(size)
    if oi.shape != (n_perp,) or (n_perp and (oi.min() < 0 or oi.max() >= no)):
        raise ValueError(f"orbit_index must hold N_perp = {n_perp} orbits in [0, {no})")
    if not np.array_equal(np.bincount(oi, minlength=no), size):
        raise ValueError("orbit_size does not match orbit_index")
    mk = np.asarray(mean_k)
    if mk.shape != (nx, nx, no):
        raise ValueError(f"mean_k must have shape ({nx}, {nx}, {no}), got {mk.shape}")
    if not isinstance(state, CutPairState):
        raise TypeError("state must be a CutPairState (one per seed block)")
    key = (nx, n_perp, no, tuple(map(tuple, pairs.tolist())))
    if state.signature_of is None:
        state.signature_of = key
        state.pairs = [_PairRunning() for _ in range(len(pairs))]
    elif state.signature_of != key:
        raise ValueError("every sample of a block must have the same shape, orbits and pairs")

    indicator = np.zeros((no, n_perp))
    indicator[oi, np.arange(n_perp)] = 1.0
    groups = state.groups()
    keep_carry = "X" in state.groups(state.position + 1)
    shapes = field_shapes(nx, len(pairs))
    out = {name: np.zeros(shape, dtype) for name, (shape, dtype, _) in shapes.items()}
    buffers = _Buffers()
    for i, (c, d) in enumerate(pairs):
        out["c4_terms"][i] = _pair_sample(P, n_plus, mk, oi, indicator, size, int(c), int(d),
                                          state.pairs[i], groups, keep_carry, buffers)

    # counts: the same U-statistics of indicator weights, and the causal counts
    present = {name: 1.0 for name in ("ab", "bc", "cd", "da", "123", "41", "234", "23", "34")}
    if "L" in groups:
        present.update({name: 1.0 for name in _L_FACTORS})
    counts = out["c4_counts"]
    for term, inc in state.counts.increments(present).items():
        counts[TERMS.index(term)] = inc
    counts[TERMS.index("1234")] = 1.0
    counts[TERMS.index("341|2")] = state.n_a if "Z" in groups else 0.0
    counts[TERMS.index("13|2|4")] = state.n_a * state.n_b if "Z" in groups else 0.0
    counts[TERMS.index("24|1|3")] = state.n_a * state.n_b if "L" in groups else 0.0
    counts[TERMS.index("13|24")] = 1.0 if "X" in groups else 0.0
    state.counts.update(present)

    # class sums (after use: they hold previous samples only)
    even = state.position % 2 == 0
    for (c, d), run in zip(pairs, state.pairs):
        if even:
            run.sum_a_bc = run.sum_a_bc + mk[:, c]
            run.sum_a_ab = run.sum_a_ab + mk
        else:
            run.sum_b_da = run.sum_b_da + mk[d]
            run.sum_b_cd = run.sum_b_cd + mk[c, d]
    state.n_a += even
    state.n_b += not even
    state.position += 1
    return out


class CutPairsGroup:
    """C4 on the job's cut pairs (``cuts4``; ``cuts4_schedule``), one `CutPairState` per block."""

    name = "cut_pairs"

    def active(self, layout):
        return layout.n_pairs > 0

    def fields(self, layout):
        return {name: Field(shape, dtype, meaning)
                for name, (shape, dtype, meaning) in field_shapes(layout.Nx, layout.n_pairs).items()}

    def steps(self, layout):
        return [(40, self.compute)]

    def compute(self, work, state):
        layout = work.layout
        if self.name not in state:  # the block's first sample
            state[self.name] = CutPairState(layout.pair_schedule)
        return cutpair_fields(work.phi_k, work.s, work.mean_k, layout.orbit_index, layout.orbit_size,
                              layout.pair_slices, state[self.name])

    def cost(self, layout, width):
        """Per pair, averaged over a block's positions: 4 U on every sample (``G_dc G_cb``, ``G_da``
        for all slices, then their products with ``P``), the optional groups of products of the
        schedule (L 1.5 U, Z 1 U, X 2.5 U), and the Grams and k-resolved diagonals over (a, b)."""
        nx, n_perp, no = layout.Nx, layout.n_perp, layout.n_orbits
        unit = nx * n_perp**2 * width
        groups = SCHEDULES[layout.pair_schedule]
        optional = sum({"L": 1.5, "Z": 1.0, "X": 2.5}[g] for position in groups for g in position)
        per_pair = Cost(gemm=(4.0 + optional / len(groups)) * unit,
                        batched=12 * nx**2 * n_perp * width + 20 * nx**2 * no,
                        calls=40 * max(1, n_perp // _MIN_ROWS) + 60,
                        # G_cb / G_dc G_cb and G_da (one mode matrix), the rows being worked on,
                        # the carry of the previous sample (one mode matrix), buffers
                        memory=COMPLEX_BYTES * 3.0 * nx * n_perp * width)
        return per_pair * layout.n_pairs


CUT_PAIRS = CutPairsGroup()
