"""qsnn_encoder: direct, rate and event encoders against ``golden.encode`` / ``qsnn.lfsr``
(``benches.encoder_bench``)."""

from __future__ import annotations

import pytest
import simlib

SRC = simlib.rtl("qsnn_encoder", "qsnn_lfsr")

BUILDS = {
    "direct": dict(N_IN=16, T=2, ENC=0, PIXEL_MAX=255, VB=8, LFSR_SEED=0xACE1),
    "rate-pm16": dict(N_IN=20, T=4, ENC=1, PIXEL_MAX=16, VB=1, LFSR_SEED=0xACE1),
    "rate-pm255": dict(N_IN=13, T=3, ENC=1, PIXEL_MAX=255, VB=1, LFSR_SEED=0xDEADBEEF),
    "events": dict(N_IN=12, T=5, ENC=2, PIXEL_MAX=1, VB=1, LFSR_SEED=0xACE1),
    # convolutional first layer: (c, y, x) coordinates beside the flat index
    "direct-map-2x5x6": dict(N_IN=60, T=1, ENC=0, PIXEL_MAX=255, VB=8, LFSR_SEED=0xACE1,
                             H=5, W=6),
    "rate-map-1x4x7": dict(N_IN=28, T=3, ENC=1, PIXEL_MAX=255, VB=1, LFSR_SEED=0xACE1,
                           H=4, W=7),
    "events-map-2x3x4": dict(N_IN=24, T=3, ENC=2, PIXEL_MAX=1, VB=1, LFSR_SEED=0xACE1,
                             H=3, W=4),
}


@pytest.mark.parametrize("build", list(BUILDS))
def test_encoder(build, sim_seed):
    runner = simlib.build("qsnn_encoder", SRC, BUILDS[build])
    simlib.run(runner, "benches.encoder_bench", seed=sim_seed)
