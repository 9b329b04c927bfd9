"""qsnn_uart_top end to end: the host's exact bytes as UART frames in, the golden
model's predictions out (``hw/benches/uart_net_bench.py``).

A small generated design (pixel_max 255, so the stream covers every byte value) is built
once with CLKS_PER_BIT = 8 in ``sim_build/`` (cached across runs: the IR and design are
written to a fixed folder named by their content).
"""

from __future__ import annotations

import hashlib
import json

import numpy as np
import simlib
import torch

from qsnn.export import golden, serialize
from qsnn.export.ir import LIF, Flatten, Graph, InputEncoder, Linear, Readout
from qsnn.export.runner import assign_widths
from qsnn.hw import cycles, host
from qsnn.hw.generate import generate

CPB = 8
LANES = 4
IMAGES = 8


def small_ir() -> Graph:
    """16 pixels (0..255) -> 12 LIF -> 4 classes, 6 steps, weights 4 bit; on random
    images every class wins 13..36% of the time."""
    rng = np.random.default_rng(0)
    nodes = (
        Flatten("flatten0"),
        Linear("fc0", 16, 12, 4, rng.integers(-7, 8, (12, 16)).astype(np.int8)),
        LIF("lif0", (12,), "mult", 230, 8, "subtract", 32,
            rng.integers(500, 3000, 12).astype(np.int32),
            rng.integers(-200, 200, 12).astype(np.int32)),
        Linear("fc1", 12, 4, 4, rng.integers(-7, 8, (4, 12)).astype(np.int8)),
        LIF("lif1", (4,), "shift", 3, 8, "zero", 12, np.full(4, 15, np.int32)),
        Readout("readout", 4),
    )
    g = Graph("uartnet", 6, InputEncoder("input", "direct", (1, 4, 4), 255), nodes,
              {"dataset": "none"})
    return assign_widths(g.input, list(g.nodes), g.name, g.time_steps, None, g.metadata)


def design(g: Graph):
    """(IR folder, design folder, params) in sim_build/gen/uart_net-<content hash>/."""
    tag = hashlib.sha256(json.dumps(serialize.to_json(g), sort_keys=True).encode()
                         + serialize.npz_bytes(serialize.arrays(g))).hexdigest()[:12]
    base = simlib.SIM_BUILD / "gen" / f"uart_net-{tag}"
    if not (base / "ir" / "model.json").is_file():
        serialize.save(g, base / "ir")
    params = generate(base / "ir", base / "hw", lanes=LANES)
    return base / "ir", base / "hw", params


def test_uart_top_classifies_host_bytes(sim_seed, tmp_path) -> None:
    g = small_ir()
    _, hw, params = design(g)
    gen = torch.Generator().manual_seed(sim_seed)
    x = torch.randint(0, 256, (IMAGES, 1, 4, 4), generator=gen, dtype=torch.int64)
    x[0] = 0
    x[1] = 255
    res = golden.run(g, x)
    frames = np.stack([np.frombuffer(host.encode_image(img, "direct"), np.uint8) for img in x])
    assert frames.shape == (IMAGES, params["input_bytes"])
    stim = tmp_path / "stimulus.npz"
    np.savez(stim, frames=frames, predictions=res.predictions.numpy())
    model = cycles.image_cycles(g, LANES, x)
    runner = simlib.build("qsnn_uart_top", [hw / f for f in
                                            (hw / "filelist_uart.f").read_text().split()],
                          {"CLKS_PER_BIT": CPB})
    out = tmp_path / "result.json"
    simlib.run(runner, "uart_net_bench", seed=sim_seed, files=sorted(hw.glob("*.mem")),
               env={"STIMULUS": str(stim), "RESULT": str(out),
                    "TIMEOUT": 2 * max(model) + 1000}, timeout_s=300)
    got = json.loads(out.read_text())
    assert got["predictions"] == res.predictions.tolist()
    assert got["errors"] == []
    # the core computes after the last byte: the answer never precedes the compute time
    assert all(0 < lat <= 2 * max(model) for lat in got["latency_cycles"]), got
