"""Per-sample fourth-order observables (anderson_mpi.observables.cutpairs) against their definitions.

Every field is computed here straight from docs/theory.md §7.1 with dense matrices: the full Gneq of tiny
samples (anderson_mpi.g_neq), its slice blocks G_ab, the transverse Fourier matrix U of the lead
modes, explicit products, traces and orbit sums. Agreement to 1e-10 (relative to the field's
scale) is required. The crossing field pairs each sample with the previous one of its block.
"""
import numpy as np
import pytest

import anderson_mpi as am
from anderson_mpi.system import transverse_fft
from anderson_mpi.observables import k_orbits
from anderson_mpi.observables import Layout, pair_slices
from anderson_mpi.observables import cutpairs
from anderson_mpi.observables.cutpairs import Carry, order4_field_shapes



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

def blocks_of(G, Nx, n_perp):
    """g[a, b] = G_ab (N_perp x N_perp) of a full (Nx N_perp)^2 matrix."""
    return G.reshape(Nx, n_perp, Nx, n_perp).transpose(0, 2, 1, 3)


def brute_force_fields(g, g_prev, U, orbit_index, n_orb, pairs):
    """Every order-4 field of one sample, by the definitions (module docstring of order4)."""
    Nx = g.shape[0]
    rot = lambda m: U.conj().T @ m @ U  # noqa: E731

    def osum(diag):
        out = np.zeros(n_orb, dtype=complex)
        np.add.at(out, orbit_index, diag)
        return out

    def osum2(mat):  # sum over k in o (rows), k' in o' (columns) of mat[k, k']
        out = np.zeros((n_orb, n_orb), dtype=complex)
        np.add.at(out, (orbit_index[:, None], orbit_index[None, :]), mat)
        return out

    shapes = order4_field_shapes(Nx, n_orb, len(pairs))
    ref = {name: np.zeros(shape, dtype) for name, (shape, dtype) in shapes.items()}
    for i, (c, d) in enumerate(pairs):
        Ycd = rot(g[c, d])
        for a in range(Nx):
            for b in range(Nx):
                ab, bc, cd, da = g[a, b], g[b, c], g[c, d], g[d, a]
                ref["c4_tr4"][i, a, b] = np.trace(ab @ bc @ cd @ da)
                ref["c4_k2c"][i, a, b] = osum(np.diag(rot(ab @ bc)))
                ref["c4_k2d"][i, a, b] = osum(np.diag(rot(ab @ g[b, d])))
                ref["c4_k123"][i, a, b] = osum(np.diag(rot(ab @ bc @ cd)))
                ref["c4_k234"][i, a, b] = osum(np.diag(rot(bc @ cd @ da)))
                ref["c4_k341"][i, a, b] = osum(np.diag(rot(cd @ da @ ab)))
                ref["c4_k412"][i, a, b] = osum(np.diag(rot(da @ ab @ bc)))
                # p13: sum_{k in o, k' in o'} G~_ab[k', k] G~_cd[k, k']  (matrix indexed [k, k'])
                ref["c4_p13"][i, a, b] = osum2(rot(ab).T * Ycd)
                # p24: sum_{k in o, k' in o'} G~_bc[k, k'] G~_da[k', k]
                ref["c4_p24"][i, a, b] = osum2(rot(bc) * rot(da).T)
                if g_prev is not None:
                    ref["c4_cross"][i, a, b] = np.trace(g_prev[a, b] @ bc @ g_prev[c, d] @ da)
    ref["c4_n_pairs"] = np.float64(0.0 if g_prev is None else 1.0)
    return ref


def assert_fields_close(obs, ref, tol=1e-10):
    assert set(obs) == set(ref)
    for name, expected in ref.items():
        assert np.shape(obs[name]) == np.shape(expected), name
        assert np.asarray(obs[name]).dtype == np.asarray(expected).dtype, name
        scale = max(1.0, float(np.abs(expected).max()))
        err = float(np.abs(np.asarray(obs[name]) - expected).max())
        assert err < tol * scale, (name, err, scale)


CUTS4 = [[0.3, 0.8], [0.9, 0.1], [0.5, 0.5]]  # c < d, c > d, c = d


@pytest.mark.parametrize("shape, hopping", [
    ((3, 3, 3), (1.0, 0.4, 0.4)),   # cube N = 3 (odd)
    ((4, 4, 4), (1.0, 0.4, 0.4)),   # cube N = 4 (even), y <-> z orbits
    ((4, 2, 1), (1.0, 0.4, 0.4)),   # transverse sizes 2 and 1
    ((3, 1, 2), (1.0, 0.4, 0.3)),
    ((4, 4, 3), (1.0, 0.4, 0.3)),   # Ny != Nz cross-section
])
def test_fields_equal_brute_force(shape, hopping, rng):
    Nx, Ny, Nz = shape
    n_perp = Ny * Nz
    orbit_index, orbit_size = k_orbits(Ny, Nz, hopping)
    U = am.lead_modes(Ny, Nz, 0.2, hopping).U
    pairs = pair_slices(Nx, CUTS4)
    assert pairs[2, 0] == pairs[2, 1] and pairs[1, 0] > pairs[1, 1]
    samples = [rng.uniform(-3, 3, shape) for _ in range(3)]
    carry, g_prev = None, None
    for V in samples:
        modes = am.mode_matrices(V, hopping)
        phi_k = transverse_fft(modes.phi, Ny, Nz, axis=1)
        obs, new_carry = order4_observables(modes.phi, phi_k, modes.signature, pairs,
                                            orbit_index, len(orbit_size), previous=carry)
        g = blocks_of(am.g_neq(V, hopping), Nx, n_perp)
        assert_fields_close(obs, brute_force_fields(g, g_prev, U, orbit_index, len(orbit_size), pairs))
        assert isinstance(new_carry, Carry)
        carry, g_prev = new_carry, g


def synthetic_sample(rng, Nx, n_perp, width):
    """A Hermitian-looking mode matrix of arbitrary width M (not 2 N_perp) and a signature
    with unsorted signs: G = Phi S Phi^+ is all the fields depend on."""
    phi = rng.normal(size=(Nx, n_perp, width)) + 1j * rng.normal(size=(Nx, n_perp, width))
    s = rng.choice([-1.0, 1.0], size=width)
    s[:2] = [1.0, -1.0]
    return phi, s


@pytest.mark.parametrize("widths", [(5, 5, 5), (7, 4, 9)])
def test_any_number_of_columns(widths, rng):
    """M != 2 N_perp (e.g. evanescent channels removed) and a width that changes between the
    paired samples: the fields depend on G = Phi S Phi^+ only."""
    Nx, Ny, Nz = 4, 3, 2
    n_perp = Ny * Nz
    orbit_index, orbit_size = k_orbits(Ny, Nz, am.DEFAULT_HOPPING)
    U = am.lead_modes(Ny, Nz, 0.2).U
    pairs = pair_slices(Nx, [[0.1, 0.6], [0.7, 0.7]])
    carry, g_prev = None, None
    for width in widths:
        phi, s = synthetic_sample(rng, Nx, n_perp, width)
        phi_k = transverse_fft(phi, Ny, Nz, axis=1)
        flat = phi.reshape(-1, width)
        g = blocks_of((flat * s) @ flat.conj().T, Nx, n_perp)
        ref = brute_force_fields(g, g_prev, U, orbit_index, len(orbit_size), pairs)
        for low_memory in (True, False):
            obs, carry_new = order4_observables(phi, phi_k, s, pairs, orbit_index, len(orbit_size),
                                                carry, low_memory=low_memory)
            assert_fields_close(obs, ref)
        carry, g_prev = carry_new, g


def test_field_shapes_and_inputs_untouched(rng):
    Nx, Ny, Nz = 5, 2, 2
    orbit_index, orbit_size = k_orbits(Ny, Nz, am.DEFAULT_HOPPING)
    phi, s = synthetic_sample(rng, Nx, Ny * Nz, 8)
    phi_k = transverse_fft(phi, Ny, Nz, axis=1)
    keep = (phi.copy(), phi_k.copy(), s.copy())
    pairs = pair_slices(Nx, [[0.2, 0.8]])
    obs, carry = order4_observables(phi, phi_k, s, pairs, orbit_index, len(orbit_size))
    shapes = order4_field_shapes(Nx, len(orbit_size), 1)
    assert set(obs) == set(shapes)
    for name, (shape, dtype) in shapes.items():
        assert np.shape(obs[name]) == shape and np.asarray(obs[name]).dtype == dtype, name
    assert obs["c4_n_pairs"] == 0.0 and not np.any(obs["c4_cross"])
    for before, after in zip(keep, (phi, phi_k, s)):
        assert np.array_equal(before, after)
    assert carry.phi_k is phi_k  # a reference, not a copy
    with pytest.raises(ValueError, match="signature"):
        order4_observables(phi, phi_k, s[:-1], pairs, orbit_index, len(orbit_size))
    with pytest.raises(ValueError, match="pair slices"):
        order4_observables(phi, phi_k, s, [[0, Nx]], orbit_index, len(orbit_size))


def test_pair_slices_rule():
    assert pair_slices(10, [[0.25, 0.75], [1.0, 0.0]]).tolist() == [[2, 7], [9, 0]]
    assert pair_slices(10, []).shape == (0, 2)
    with pytest.raises(ValueError, match="pairs"):
        pair_slices(10, [0.25, 0.75, 0.5])


def test_pairing_uses_only_the_order_inside_a_block(rng):
    """Block sums depend on the block's own samples in their fixed order: computing the blocks in
    another order, on other 'ranks', or after other blocks gives bit-identical sums; the first
    sample of every block is paired with nothing."""
    Nx, Ny, Nz = 4, 2, 2
    orbit_index, orbit_size = k_orbits(Ny, Nz, am.DEFAULT_HOPPING)
    pairs = pair_slices(Nx, [[0.3, 0.7]])
    samples = []
    for width in (8, 8, 8, 8, 8, 8, 8):
        phi, s = synthetic_sample(rng, Nx, Ny * Nz, width)
        samples.append((phi, transverse_fft(phi, Ny, Nz, axis=1), s))
    blocks = [samples[0:3], samples[3:4], samples[4:7]]  # block sizes 3, 1, 3

    def deal(order):  # one "rank" computing the blocks in this order
        return {b: order4_block_sums(blocks[b], pairs, orbit_index, len(orbit_size)) for b in order}

    first = deal([0, 1, 2])
    for order in ([2, 1, 0], [1, 2, 0]):
        other = deal(order)
        for b in range(3):
            for name in first[b][0]:
                assert np.array_equal(first[b][0][name], other[b][0][name]), (order, b, name)
    assert [first[b][0]["c4_n_pairs"] for b in range(3)] == [2.0, 0.0, 2.0]
    assert not np.any(first[1][0]["c4_cross"])
    # the crossing sum of a block is the sum over its consecutive pairs, by hand
    expect = 0
    for prev, cur in zip(blocks[2][:-1], blocks[2][1:]):
        obs, _ = order4_observables(*cur, pairs, orbit_index, len(orbit_size),
                                    previous=Carry(prev[1], prev[2]))
        expect = expect + obs["c4_cross"]
    assert np.allclose(first[2][0]["c4_cross"], expect, rtol=1e-13, atol=0)
    # reversing the samples inside a block changes the pairing (so the test above can fail)
    rev, _ = order4_block_sums(blocks[2][::-1], pairs, orbit_index, len(orbit_size))
    assert not np.allclose(rev["c4_cross"], first[2][0]["c4_cross"])


@pytest.mark.parametrize("rows, p13_bytes", [(1, 1), (2, 16 * 4 * 9 * 3), (5, 10**9)])
def test_blocking_over_momenta_does_not_change_the_fields(rows, p13_bytes, rng, monkeypatch):
    """The products are blocked over transverse momenta (to bound memory): any block size,
    including blocks that split k orbits, gives the same fields, with and without holding the
    slice blocks G~_bc, G~_ad (low_memory=False)."""
    order4 = cutpairs
    Nx, Ny, Nz = 4, 3, 3
    orbit_index, orbit_size = k_orbits(Ny, Nz, am.DEFAULT_HOPPING)
    pairs = pair_slices(Nx, [[0.2, 0.7], [0.6, 0.1]])
    data = []
    for _ in range(2):
        phi, s = synthetic_sample(rng, Nx, Ny * Nz, 9)
        data.append((phi, transverse_fft(phi, Ny, Nz, axis=1), s))
    ref, carry = order4_observables(*data[0], pairs, orbit_index, len(orbit_size))
    ref, _ = order4_observables(*data[1], pairs, orbit_index, len(orbit_size), carry)
    monkeypatch.setattr(order4, "_CHUNK_FRACTION", 0.0)
    monkeypatch.setattr(order4, "_MIN_ROWS", rows)
    monkeypatch.setattr(order4, "_P13_CHUNK_BYTES", p13_bytes)
    for low_memory in (True, False):
        obs, _ = order4_observables(*data[1], pairs, orbit_index, len(orbit_size), carry,
                                    low_memory=low_memory)
        assert_fields_close(obs, ref, tol=1e-12)
