"""Convolutional qsnn_layer (qsnn_conv_addr): events, passes and timing against
``qsnn.export.golden`` (``benches.conv_bench``).

Per build a random conv layer is drawn from the test seed and written as ``$readmemh``
files in the layout of ``qsnn.hw.convmap`` (fused kernel Wf, or W for the pool address
map). Two layer kinds: ``random`` (weights over the whole int range; stimuli inside the
widths contract) and ``saturate`` (single-sign output channels driven into both
saturation ends, where the saturating accumulator equals the golden clamp).

The CI set (:data:`CI_BUILDS`) covers kernels 3 and 5, padding 0..2, pooling 1, 2 fused
and 2 as an address map, channel counts that are not multiples of the lanes, one group
(G = 1: chunks repeat back to back inside an event of the address map) and the direct
path (C RAM, value × weight into C); ``QSNN_FULL=1`` adds the larger sweep.
"""

from __future__ import annotations

import os
import random

import numpy as np
import pytest
import simlib
from benches.conv_bench import geometry

from qsnn.hw import convmap

SRC = simlib.rtl("qsnn_layer", "qsnn_lif_lane", "qsnn_conv_addr", "qsnn_mem_spram")
COMMON = dict(LEAK_MULT=1, LEAK_PARAM=230, FRAC_BITS=8, RESET_MODE=0)

BUILDS = {
    # hidden layer, kernel 3, padding 1, no pool; 5 channels on 2 lanes (G = 3)
    "k3p1-pool1-co5-P2": dict(N_IN=2, H_IN=5, W_IN=5, N=5, P=2, KS=3, PAD=1, KP=1, FUSED=1,
                              C_RAM=0, WB=4, MB=14, VB=1, **COMMON),
    # direct first layer: kernel 5, padding 2, pool 2 fused (6x6 kernel, stride 2, 6-bit
    # weights), 3 channels on 2 lanes; shift leak, zero reset
    "k5p2-fused2-direct": dict(N_IN=1, H_IN=6, W_IN=6, N=3, P=2, KS=5, PAD=2, KP=2, FUSED=1,
                               C_RAM=1, WB=6, MB=20, VB=8, LEAK_MULT=0, LEAK_PARAM=2,
                               FRAC_BITS=8, RESET_MODE=1),
    # hidden layer, kernel 3, no padding, pool 2 as an address map, G = 1 (3 channels on
    # 4 lanes): an event's chunks repeat back to back; no reset
    "k3p0-map2-G1": dict(N_IN=2, H_IN=6, W_IN=6, N=3, P=4, KS=3, PAD=0, KP=2, FUSED=0,
                         C_RAM=0, WB=4, MB=14, VB=1, LEAK_MULT=1, LEAK_PARAM=128,
                         FRAC_BITS=8, RESET_MODE=2),
}
#: membranes in SPRAM (M_SPRAM = 1: one single-port word {C, V}, 2 cycles per chunk)
SPRAM_BUILDS = {
    "k5p2-fused2-direct-spram": dict(BUILDS["k5p2-fused2-direct"], M_SPRAM=1),
    # G = 1, address map: an event's chunks repeat 2 cycles apart (forwarded)
    "k3p0-map2-G1-spram": dict(BUILDS["k3p0-map2-G1"], M_SPRAM=1),
}
FULL_BUILDS = {
    "k5p1-map2-direct": dict(N_IN=2, H_IN=8, W_IN=6, N=5, P=4, KS=5, PAD=1, KP=2, FUSED=0,
                             C_RAM=1, WB=4, MB=20, VB=8, **COMMON),
    "k3p2-fused2-P1": dict(N_IN=1, H_IN=4, W_IN=6, N=2, P=1, KS=3, PAD=2, KP=2, FUSED=1,
                           C_RAM=0, WB=6, MB=14, VB=1, **COMMON),
    "k5p1-pool1-P8": dict(N_IN=3, H_IN=6, W_IN=6, N=7, P=8, KS=5, PAD=1, KP=1, FUSED=1,
                          C_RAM=0, WB=4, MB=16, VB=1, **COMMON),
    "k3p1-fused4": dict(N_IN=1, H_IN=8, W_IN=8, N=3, P=2, KS=3, PAD=1, KP=4, FUSED=1,
                        C_RAM=0, WB=6, MB=14, VB=1, **COMMON),
    "k3p1-map4-runtime": dict(N_IN=2, H_IN=8, W_IN=8, N=4, P=4, KS=3, PAD=1, KP=4, FUSED=0,
                              C_RAM=0, WB=4, MB=16, VB=1, W_RUNTIME=1, **COMMON),
}
FULL = os.environ.get("QSNN_FULL", "") not in ("", "0")
ALL = {**BUILDS, **SPRAM_BUILDS, **FULL_BUILDS}

CI_CASES = [(b, "random") for b in {**BUILDS, **SPRAM_BUILDS}] + [
    ("k3p1-pool1-co5-P2", "saturate")]
FULL_CASES = [(b, "random") for b in FULL_BUILDS] + [("k3p0-map2-G1", "saturate"),
                                                     ("k3p2-fused2-P1", "saturate")]
CASES = CI_CASES + [pytest.param(*c, marks=pytest.mark.skipif(not FULL, reason="QSNN_FULL=1"))
                    for c in FULL_CASES]


def draw_layer(hp: dict, kind: str, seed: int) -> dict:
    """Random conv weights [CO, CI, K, K], per-channel theta and bias (``kind``)."""
    g = geometry(hp)
    r = random.Random(f"{seed}:conv:{kind}")
    wmax = (1 << (g.wb - 1)) - 1
    hi = (1 << (hp["MB"] - 1)) - 1
    shape = (g.ci, g.k, g.k)
    w = np.zeros((g.co, *shape), np.int64)
    theta = np.zeros(g.co, np.int64)
    bias = np.zeros(g.co, np.int64)
    for o in range(g.co):
        if kind == "random":
            w[o] = np.array([r.choice([-wmax, wmax, 0, r.randint(-wmax, wmax)])
                             for _ in range(w[o].size)]).reshape(shape)
            theta[o] = r.choice([1, r.randint(1, 8 * wmax), r.randint(1, 40 * wmax)])
            bias[o] = r.randint(-4 * wmax, 4 * wmax)
        else:  # first channels W >= 0, big bias (top end); the others W <= 0 (bottom end)
            sign = 1 if o < (g.co + 1) // 2 else -1
            w[o] = sign * np.array([r.choice([0, wmax, r.randint(0, wmax)])
                                    for _ in range(w[o].size)]).reshape(shape)
            theta[o] = r.randint(1, hi // 4)
            bias[o] = sign * r.randint(hi // 2, hi)
    if kind == "random":  # one channel at +max everywhere, one at -max
        w[0] = wmax
        w[-1] = -wmax
    return {"w": w.tolist(), "theta": theta.tolist(), "bias": bias.tolist(), "kind": kind}


def write_mems(hp: dict, layer: dict, folder) -> list:
    """w.mem / theta.mem / bias.mem in the engine's layout (``convmap.conv_mems``)."""
    g = geometry(hp)
    assert g.weight_bits == hp["WB"], "build WB is not the layout's weight width"
    mems = convmap.conv_mems(g, np.array(layer["w"]), np.array(layer["theta"]),
                             np.array(layer["bias"]), hp["MB"])
    paths = []
    for name, words in mems.items():
        path = folder / name.removeprefix("l0_")
        path.write_text("\n".join(words) + "\n")
        paths.append(path)
    return paths


@pytest.mark.parametrize("build,kind", CASES, ids=[
    f"{c.values[0]}-{c.values[1]}" if hasattr(c, "values") else f"{c[0]}-{c[1]}" for c in CASES])
def test_conv_layer(build, kind, sim_seed, tmp_path):
    hp = ALL[build]
    geometry(hp).check(build)
    layer = draw_layer(hp, kind, sim_seed)
    files = write_mems(hp, layer, tmp_path)
    runner = simlib.build("qsnn_layer", SRC, hp)
    simlib.run(runner, "benches.conv_bench", seed=sim_seed, files=files,
               env={"LAYER": layer, "IMAGES": 4 if kind == "random" else 3})


#: (mutation of the RTL source, what the bench reports): each check can fail
MUTATIONS = {
    "no-forwarding-s4": ("qsnn_layer.v", "sel_s4 <= p2_proc && p3_proc",
                         "sel_s4 <= 1'b0 && p2_proc && p3_proc", "V before the update"),
    "row-step-off-by-one": ("qsnn_conv_addr.v", "row_waddr - SE * KE * G",
                            "row_waddr - SE * KE * G + 1", "V before the update"),
    # M_SPRAM: an event accepted the cycle after a chunk issued (its first read meets
    # that chunk's write); the bench sees the early accept (or the lost write)
    "spram-early-accept": ("qsnn_layer.v", "&& !(M_SPRAM != 0 && p1_valid)", "",
                           "accepted -1 cycles from the model|V before the update"),
    # M_SPRAM: no bubble, a chunk every cycle: reads and writes of the single port meet
    "spram-no-bubble": ("qsnn_layer.v", "wire         step = (M_SPRAM == 0) || ph;",
                        "wire         step = 1'b1;", "busy for|accepted|V "),
    # the RAM answers a read in the same cycle (no output register): every word one
    # cycle early
    "spram-read-early": ("qsnn_mem_spram.v", "assign rdata = q;",
                         "assign rdata = mem[addr];", "after clear|V |C |spikes"),
}
#: the build each mutation runs on
MUTATION_BUILD = {"spram-early-accept": "k3p0-map2-G1-spram",
                  "spram-no-bubble": "k3p0-map2-G1-spram",
                  "spram-read-early": "k5p2-fused2-direct-spram"}


@pytest.mark.parametrize("name", [
    "no-forwarding-s4", "spram-early-accept", "spram-no-bubble", "spram-read-early",
    pytest.param("row-step-off-by-one",
                 marks=pytest.mark.skipif(not FULL, reason="QSNN_FULL=1"))])
def test_conv_bench_fails_on_a_mutated_engine(name, sim_seed, tmp_path):
    """A disabled forwarding path / a wrong weight-address step is seen by the bench."""
    fname, old, new, message = MUTATIONS[name]
    srcs = []
    for path in SRC:
        if path.name == fname:
            text = path.read_text()
            assert old in text, f"mutation target {old!r} not in {fname}"
            path = simlib.write_source(text.replace(old, new), fname)
        srcs.append(path)
    hp = ALL[MUTATION_BUILD.get(name, "k3p0-map2-G1")]
    layer = draw_layer(hp, "random", sim_seed)
    files = write_mems(hp, layer, tmp_path)
    runner = simlib.build("qsnn_layer", srcs, hp)
    with pytest.raises(simlib.SimError, match=message):
        simlib.run(runner, "benches.conv_bench", seed=sim_seed, files=files,
                   env={"LAYER": layer, "IMAGES": 2})
