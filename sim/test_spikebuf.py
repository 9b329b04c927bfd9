"""qsnn_spikebuf: chunk masks in, spiking indices out in increasing order under random
back-pressure (``benches.spikebuf_bench``)."""

from __future__ import annotations

import pytest
import simlib

SRC = simlib.rtl("qsnn_spikebuf")

# (N, P): K = 3 with a padded last chunk; K = 1 with P > N; K = N (one lane); the
# smallest buffer (N = P = 1: one-bit index, chunk and lane fields).
SHAPES = [(10, 4), (5, 8), (7, 1), (1, 1)]


@pytest.mark.parametrize("n,p", SHAPES, ids=[f"N{n}-P{p}" for n, p in SHAPES])
def test_spikebuf(n, p, sim_seed):
    runner = simlib.build("qsnn_spikebuf", SRC, {"N": n, "P": p})
    simlib.run(runner, "benches.spikebuf_bench", seed=sim_seed)
