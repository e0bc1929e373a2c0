"""Bias tables of the chain schemes from their exact discrete-time laws (not a test module).

    PYTHONPATH=. python tests/chain_bias.py [--quick]

Prints, against the exact continuous-time stationary state: the relative bias of C1, of C2
(split into contact a = b, nearest neighbours |a-b| = 1, and |a-b| >= 2), of the connected
density correlation, of the least-squares amplitude of C2 over a != b and of m2 = sum C2, for the
simulated QSSEP scheme (coin-mixed endings), its even-phase ending alone and the naive Gaussian
bond law; the transient left by the default relax_time; the dephasing scheme's mean (N = 24)
and C2 (N = 6) biases.
"""
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import chain_reference as ref  # noqa: E402
from anderson_mpi.engines.chains import ChainSetup  # noqa: E402


def _odd_ending(scheme, m, P, B, tau, dt):
    state = (m[:, None].copy(), P[:, :, None].copy(), B[:, :, None].copy(), np.ones(1))
    scheme._bond_layer(state, 0, tau / 2)
    scheme._boundary(state, dt / 2)
    scheme._bond_layer(state, 1, tau / 2)
    return tuple(x[..., 0] for x in state[:3])


def _row(m, P, B, exact):
    me, C2e, Bce = exact
    C2, Bc = ref.cumulants_from_moments(m, P, B)
    N = len(m)
    sep = np.abs(np.subtract.outer(np.arange(N), np.arange(N)))
    rel = C2 / C2e - 1
    amp = (C2[sep > 0] * C2e[sep > 0]).sum() / (C2e[sep > 0] ** 2).sum() - 1
    far = sep >= 2
    return (np.max(np.abs(m - me) / me.clip(1e-300)), np.abs(rel[sep == 0]).max(),
            np.abs(rel[sep == 1]).max(), np.abs(rel[far]).max(),
            np.abs(Bc - Bce)[far].max() / np.abs(Bce[far]).max(), amp, C2.sum() / C2e.sum() - 1)


def qssep_table(sizes, dts):
    print("QSSEP, D = 1, boundary_rate = 2, n = (0, 1): relative bias of the stationary state")
    print(f"{'N':>3} {'D dt':>5} {'law':>12} | {'C1 max':>8} {'C2 a=b':>8} {'|a-b|=1':>8} "
          f"{'|a-b|>=2':>8} {'Bc far':>8} {'C2 amp':>9} {'m2':>9}")
    for N in sizes:
        m, P, B = ref.qssep_stationary(N, 1.0, 2.0, 2.0, 0.0, 1.0)
        exact = (m,) + ref.cumulants_from_moments(m, P, B)
        for dt in dts:
            for label, law, mix in (("coin (used)", ref.spherical_bm_moments, True),
                                    ("even end", ref.spherical_bm_moments, False),
                                    ("gauss w", ref.gaussian_bond_moments, True)):
                scheme = ref.QssepScheme(N, 1.0, dt, 2.0, 2.0, 0.0, 1.0, bond_moments=law)
                even = scheme.stationary()
                moments = even
                if mix:
                    odd = _odd_ending(scheme, *even, dt, dt)
                    moments = tuple((a + b) / 2 for a, b in zip(even, odd))
                vals = _row(*moments, exact)
                print(f"{N:>3} {dt:>5.3g} {label:>12} | " + " ".join(f"{v:>8.1e}" for v in vals[:5])
                      + " " + " ".join(f"{v:>+9.1e}" for v in vals[5:]))


def transient_table(sizes):
    print("\nQSSEP transient: exact moments after the default relax_time (from the exact mean, "
          "no coherences) against the scheme's stationary state, D dt = 0.1")
    for N in sizes:
        setup = ChainSetup.build("qssep", N)
        scheme = ref.QssepScheme(N, 1.0, setup.dt, 2.0, 2.0, 0.0, 1.0)
        stat = ref.cumulants_from_moments(*scheme.stationary())
        for factor in (1.0, 2.0):
            n = int(np.ceil(factor * setup.relax_time / setup.dt))
            now = ref.cumulants_from_moments(*scheme.evolve(setup.initial_density, n))
            off = ~np.eye(N, dtype=bool)
            print(f"  N = {N:>3}, {factor:g} x relax_time ({n} steps): sum C2 off-diagonal "
                  f"{now[0][off].sum() / stat[0][off].sum() - 1:+.1e}, diagonal "
                  f"{np.trace(now[0]) / np.trace(stat[0]) - 1:+.1e}, connected density "
                  f"{now[1][off].sum() / stat[1][off].sum() - 1:+.1e}")


def dephasing_table(gammas, N_mean=24, N_second=6):
    print("\nDephasing, t = 1, boundary_rate = 2 D_eff: relative bias against continuous time")
    for gamma in gammas:
        base = ChainSetup.build("dephasing", N_second, gamma=gamma)
        for factor in (2.0, 1.0, 0.5):
            dt = base.dt * factor
            rate = base.rate_left
            mean_c, second_c = ref.ito_moments(N_second, hamiltonian=ref.tight_binding(N_second, 1.0),
                                               dephasing=gamma, rate_left=rate, rate_right=rate,
                                               n_left=0.0, n_right=1.0)
            mean_d, second_d = ref.dephasing_scheme_stationary(N_second, 1.0, gamma, dt, rate, rate,
                                                               0.0, 1.0)
            Pc, Bc = ref.pair_moments_from_tensor(second_c)
            Pd, Bd = ref.pair_moments_from_tensor(second_d)
            C2c, _ = ref.cumulants_from_moments(np.diag(mean_c).real, Pc, Bc)
            C2d, _ = ref.cumulants_from_moments(np.diag(mean_d).real, Pd, Bd)
            dm = np.abs(np.diag(mean_d).real - np.diag(mean_c).real).max()
            print(f"  gamma = {gamma:>5g}, dt = {dt:.4f} ({factor:g} x default), gamma dt = "
                  f"{gamma * dt:.3f}: C1 max abs {dm:.1e}, C2 max rel "
                  f"{np.abs(C2d / C2c - 1).max():.1e}, sum C2 {C2d.sum() / C2c.sum() - 1:+.1e}")


if __name__ == "__main__":
    quick = "--quick" in sys.argv
    qssep_table((16,) if quick else (16, 32), (0.5, 0.25, 0.1, 0.05))
    transient_table((16,) if quick else (16, 32))
    dephasing_table((0.5, 1.0, 4.0, 16.0))
