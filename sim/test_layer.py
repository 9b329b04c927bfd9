"""qsnn_layer: command/event sequences against ``qsnn.export.golden`` (``benches.layer_bench``).

Per build (:data:`BUILDS`: N_IN = 12, N = 10 with P = 1, 4, 5, 16, i.e. K = 10, 3, 2, 1 -- K
= 1 and K = 2 exercise the two write->read forwarding paths -- every reset mode, both leak
forms, plus one odd shape with 8-bit weights; two builds with W_RUNTIME = 1 whose weights
the bench writes through the load port instead), a random layer is drawn from the test seed
and written as ``$readmemh`` files by ``qsnn.hw.generate.layer_mems`` (the generator's own
layout). Two layer kinds: ``random`` (weights over the whole int range, including +-max;
sequences kept inside the widths contract) and ``saturate`` (single-sign neurons driven into
both saturation ends, where the saturating accumulator still equals the golden clamp).
"""

from __future__ import annotations

import random

import numpy as np
import pytest
import simlib

from qsnn.export.ir import LIF, Leak, Linear, Reset
from qsnn.hw.generate import LayerParams, layer_mems

SRC = simlib.rtl("qsnn_layer", "qsnn_lif_lane")

BUILDS = {
    "P1-shift2-sub": dict(N_IN=12, N=10, P=1, WB=4, MB=12, VB=8, LEAK_MULT=0, LEAK_PARAM=2,
                          FRAC_BITS=8, RESET_MODE=0),
    "P4-m249-zero": dict(N_IN=12, N=10, P=4, WB=4, MB=12, VB=8, LEAK_MULT=1, LEAK_PARAM=249,
                         FRAC_BITS=8, RESET_MODE=1),
    "P16-m128-none": dict(N_IN=12, N=10, P=16, WB=4, MB=12, VB=8, LEAK_MULT=1,
                          LEAK_PARAM=128, FRAC_BITS=8, RESET_MODE=2),
    "P3-shift1-sub-wb8": dict(N_IN=5, N=7, P=3, WB=8, MB=16, VB=8, LEAK_MULT=0,
                              LEAK_PARAM=1, FRAC_BITS=8, RESET_MODE=0),
    "P5-shift3-sub-K2": dict(N_IN=12, N=10, P=5, WB=4, MB=12, VB=8, LEAK_MULT=0,
                             LEAK_PARAM=3, FRAC_BITS=8, RESET_MODE=0),
    "P4-m249-zero-runtime": dict(N_IN=12, N=10, P=4, WB=4, MB=12, VB=8, LEAK_MULT=1,
                                 LEAK_PARAM=249, FRAC_BITS=8, RESET_MODE=1, W_RUNTIME=1),
    "P16-m128-sub-runtime": dict(N_IN=12, N=10, P=16, WB=4, MB=12, VB=8, LEAK_MULT=1,
                                 LEAK_PARAM=128, FRAC_BITS=8, RESET_MODE=0, W_RUNTIME=1),
}


def layer_nodes(hp: dict, kind: str, seed: int) -> tuple[LayerParams, Linear, LIF]:
    """A random layer for the build parameters ``hp`` (``kind``: random | saturate)."""
    r = random.Random(f"{seed}:layer:{kind}")
    n, n_in, mb = hp["N"], hp["N_IN"], hp["MB"]
    wmax = (1 << (hp["WB"] - 1)) - 1
    hi = (1 << (mb - 1)) - 1
    w = np.zeros((n, n_in), np.int64)
    theta = np.zeros(n, np.int64)
    bias = np.zeros(n, np.int64)
    for i in range(n):
        if kind == "random":
            for j in range(n_in):
                w[i, j] = r.choice([-wmax, wmax, 0, r.randint(-wmax, wmax), r.randint(-wmax, wmax)])
            theta[i] = r.choice([1, r.randint(1, 4 * wmax), r.randint(1, 16 * wmax)])
            bias[i] = r.randint(-4 * wmax, 4 * wmax)
        else:  # first half: W >= 0, big bias (top end); second half: W <= 0 (bottom end)
            sign = 1 if i < (n + 1) // 2 else -1
            w[i] = [sign * r.choice([0, wmax, r.randint(0, wmax)]) for _ in range(n_in)]
            theta[i] = r.randint(1, hi // 4)
            bias[i] = sign * r.randint(hi // 2, hi)
    if kind == "random":  # one neuron with every weight at +max, one at -max
        w[0] = wmax
        w[n - 1] = -wmax
    p = LayerParams(0, n_in, n, hp["P"], hp["WB"], mb, hp["VB"], hp["LEAK_MULT"],
                    hp["LEAK_PARAM"], hp["FRAC_BITS"], hp["RESET_MODE"])
    lin = Linear("fc", n_in, n, hp["WB"], w.astype(np.int8))
    lif = LIF("lif", (n,), Leak.from_code(hp["LEAK_MULT"]).value, hp["LEAK_PARAM"],
              hp["FRAC_BITS"], Reset.from_code(hp["RESET_MODE"]).value, mb,
              theta.astype(np.int32), bias.astype(np.int32))
    return p, lin, lif


def write_mems(p: LayerParams, lin: Linear, lif: LIF, folder) -> list:
    """The generator's memory files under the core's default names (w/theta/bias.mem)."""
    names = {"l0_w.mem": "w.mem", "l0_theta.mem": "theta.mem", "l0_bias.mem": "bias.mem"}
    paths = []
    for name, words in layer_mems(p, lin, lif).items():
        path = folder / names[name]
        path.write_text("\n".join(words) + "\n")
        paths.append(path)
    return paths


CASES = [(b, "random") for b in BUILDS] + [("P1-shift2-sub", "saturate"),
                                           ("P16-m128-none", "saturate")]


@pytest.mark.parametrize("build,kind", CASES, ids=[f"{b}-{k}" for b, k in CASES])
def test_layer(build, kind, sim_seed, tmp_path):
    hp = BUILDS[build]
    p, lin, lif = layer_nodes(hp, kind, sim_seed)
    files = write_mems(p, lin, lif, tmp_path)
    runner = simlib.build("qsnn_layer", SRC, hp)
    layer = {"w": lin.weight.tolist(), "theta": lif.theta.tolist(), "bias": lif.bias.tolist(),
             "kind": kind}
    simlib.run(runner, "benches.layer_bench", seed=sim_seed, files=files,
               env={"LAYER": layer, "IMAGES": 10 if kind == "random" else 4})
