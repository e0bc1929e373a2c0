"""Order four: the cost of one cut pair relative to one recursion, and the memory it adds.

Cube, W = 6, one BLAS thread; the recursion (`mode_matrices`), one pair of a sample with a
previous one in its block (crossing included; both memory modes), the first sample of a block
(no crossing) are timed alternately (best of several,
`common.interleaved`). Memory: `common.PeakRSS` of one pair's call, in MB and in mode matrices
(the carry, a reference to the previous sample's ``phi_k``, is one more mode matrix).
"""
from __future__ import annotations

import numpy as np

from ..engines.transfer import mode_matrices
from ..observables import make_layout
from ..observables.cutpairs import Carry, order4_observables
from ..system import DEFAULT_HOPPING, transverse_fft
from .common import MB, PeakRSS, interleaved

__all__ = ["bench_order4"]


def bench_order4(sizes=(8, 12, 16), cuts4=((0.25, 0.75),), W=6.0, repeats=3):
    probe = PeakRSS()
    print("\n== Order four: one cut pair versus one recursion (cube, W = %g, 1 BLAS thread) ==" % W)
    print(f"(timed alternately, best of {repeats}; ratio = seconds / recursion seconds; memory: "
          f"{probe.method} of one pair's call, MB and in mode matrices)")
    print(f"{'N':>4} {'n_orb':>5} {'recursion s':>11} {'pair s':>8} {'ratio':>6} {'hold-G':>7} "
          f"{'1st sample':>10} {'peak MB':>8} {'/Phi':>5} {'hold-G /Phi':>11}")
    rng = np.random.default_rng(3)
    rows = []
    for N in sizes:
        V = [rng.uniform(-W / 2, W / 2, (N, N, N)) for _ in range(2)]
        modes = [mode_matrices(v) for v in V]
        phik = [transverse_fft(m.phi, N, N, axis=1) for m in modes]
        layout = make_layout(N, N, N, DEFAULT_HOPPING, (), cuts4=cuts4)
        carry = Carry(phik[0], modes[0].signature)

        def pair(prev, low_memory=True):
            return order4_observables(phik[1], modes[1].signature, layout, prev, low_memory=low_memory)

        pair(carry)  # warm up
        best = interleaved({"rec": lambda: mode_matrices(V[1]), "pair": lambda: pair(carry),
                            "hold": lambda: pair(carry, False), "first": lambda: pair(None)}, repeats)
        for key in ("pair", "hold", "first"):
            best[key] /= layout.n_pairs
        peaks = []
        for low_memory in (True, False):
            with probe:
                pair(carry, low_memory)
            peaks.append(probe.mb)
        mode_mb = phik[1].nbytes / MB
        rec = best["rec"]
        row = {"N": N, "n_orb": layout.n_orbits, **best, "peak_mb": peaks[0], "peak_modes": peaks[0] / mode_mb,
               "hold_peak_modes": peaks[1] / mode_mb}
        rows.append(row)
        print(f"{N:4d} {layout.n_orbits:5d} {rec:11.4f} {best['pair']:8.4f} {best['pair'] / rec:6.2f} "
              f"{best['hold'] / rec:7.2f} {best['first'] / rec:10.2f} "
              f"{peaks[0]:8.1f} {peaks[0] / mode_mb:5.2f} {peaks[1] / mode_mb:11.2f}")
    return rows
