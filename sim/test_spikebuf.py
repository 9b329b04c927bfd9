"""qsnn_spikebuf: chunk masks in, spiking indices out in increasing order under random
back-pressure (``benches.spikebuf_bench``)."""

from __future__ import annotations

import pytest
import simlib

SRC = simlib.rtl("qsnn_spikebuf")

# (N, P): K = 3 with a padded last chunk; K = 1 with P > N; K = N (one lane); the
# smallest buffer (N = P = 1: one-bit index, chunk and lane fields).
SHAPES = [(10, 4), (5, 8), (7, 1), (1, 1)]
# conv layers (N channels, P, HO, WO, COORD): packed {c, Y, X} for a following conv (5
# channels on 2 lanes: a padded lane), the flat index for a following flatten + linear
MAPS = [(5, 2, 3, 4, 1), (6, 4, 2, 3, 0)]


@pytest.mark.parametrize("n,p", SHAPES, ids=[f"N{n}-P{p}" for n, p in SHAPES])
def test_spikebuf(n, p, sim_seed):
    runner = simlib.build("qsnn_spikebuf", SRC, {"N": n, "P": p})
    simlib.run(runner, "benches.spikebuf_bench", seed=sim_seed)


@pytest.mark.parametrize("n,p,ho,wo,coord", MAPS,
                         ids=[f"N{m[0]}-P{m[1]}-{m[2]}x{m[3]}-coord{m[4]}" for m in MAPS])
def test_spikebuf_conv_map(n, p, ho, wo, coord, sim_seed):
    runner = simlib.build("qsnn_spikebuf", SRC, {"N": n, "P": p, "HO": ho, "WO": wo,
                                                 "COORD": coord})
    simlib.run(runner, "benches.spikebuf_bench", seed=sim_seed)
