"""qsnn_uart_top end to end: the host's exact requests (``qsnn.hw.host``) as UART frames
in, the design id, weight acknowledgements and the golden model's predictions out
(``hw/benches/uart_net_bench.py``).

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
from qsnn.export.ir import Graph, Leak, Reset
from qsnn.export.runner import assign_widths
from qsnn.hw import cycles, host
from qsnn.hw.generate import generate, ir_sha256
from qsnn.hw.layers import layer_params
from qsnn.testing import Fc, int_weights, network

CPB = 8
LANES = 4
IMAGES = 8


def small_ir() -> Graph:
    """16 pixels (0..255) -> 12 LIF -> 4 classes, 6 steps, weights 4 bit; on random
    images every class wins 13..36% of the time."""
    rng = np.random.default_rng(0)
    w0 = int_weights(rng, (12, 16))
    th0, b0 = (rng.integers(lo, hi, 12).astype(np.int32) for lo, hi in ((500, 3000), (-200, 200)))
    layers = [Fc(weight=w0, theta=th0, bias=b0, leak=Leak.MULT, leak_param=230),
              Fc(weight=int_weights(rng, (4, 12)), theta=np.int32(15), leak=Leak.SHIFT,
                 leak_param=3, reset=Reset.ZERO, membrane_bits=12)]
    g = network(layers=layers, shape=(1, 4, 4), steps=6, name="uartnet",
                metadata={"dataset": "none"})
    return assign_widths(g.input, list(g.nodes), g.name, g.time_steps, None, g.metadata)


def design(g: Graph, runtime_weights: tuple[int, ...] = ()):
    """(IR folder, design folder, params) in sim_build/gen/uart_net-<content hash>/."""
    tag = hashlib.sha256(json.dumps(serialize.to_json(g), sort_keys=True).encode()
                         + serialize.npz_bytes(serialize.arrays(g))).hexdigest()[:12]
    base = simlib.SIM_BUILD / "gen" / f"uart_net-{tag}"
    if not (base / "ir" / "model.json").is_file():
        serialize.save(g, base / "ir")
    hw = base / ("hw-rt" if runtime_weights else "hw")
    params = generate(base / "ir", hw, lanes=LANES, runtime_weights=runtime_weights)
    return base / "ir", hw, params


def replay(hw, requests: list[bytes], replies: list[int], timeout: int, seed: int,
           tmp_path, timeout_s: int = 300) -> dict:
    """Send the requests through qsnn_uart_top (CLKS_PER_BIT = CPB); the answers
    (``timeout_s``: the simulation's wall-clock limit)."""
    reqs = tmp_path / "requests.json"
    reqs.write_text(json.dumps([{"send": r.hex(), "reply": n}
                                for r, n in zip(requests, replies, strict=True)]))
    runner = simlib.build("qsnn_uart_top", [hw / f for f in
                                            (hw / "filelist_uart.f").read_text().split()],
                          {"CLKS_PER_BIT": CPB})
    out = tmp_path / "result.json"
    simlib.run(runner, "uart_net_bench", seed=seed, files=sorted(hw.glob("*.mem")),
               env={"REQUESTS": str(reqs), "RESULT": str(out), "TIMEOUT": timeout},
               timeout_s=timeout_s)
    got = json.loads(out.read_text())
    assert got["errors"] == []
    return got


def images(sim_seed: int) -> torch.Tensor:
    gen = torch.Generator().manual_seed(sim_seed)
    x = torch.randint(0, 256, (IMAGES, 1, 4, 4), generator=gen, dtype=torch.int64)
    x[0] = 0
    x[1] = 255
    return x


def test_uart_top_classifies_host_bytes(sim_seed, tmp_path) -> None:
    """ROM weights: '?' says loaded; 'W' with no bytes is acknowledged; 'I' + image gives
    the golden prediction; junk command bytes are ignored."""
    g = small_ir()
    ir, hw, params = design(g)
    x = images(sim_seed)
    res = golden.run(g, x)
    frames = [host.encode_image(img, "direct") for img in x]
    assert all(len(f) == params["input_bytes"] for f in frames)
    model = cycles.image_cycles(g, LANES, x)
    reqs = [host.info_request(), b"\x00Z", host.weights_request(b"")]
    reqs += [host.image_request(f) for f in frames]
    got = replay(hw, reqs, [host.INFO_BYTES, 0, 1] + [1] * IMAGES, 2 * max(model) + 1000,
                 sim_seed, tmp_path)
    ans = got["answers"]
    want_id = host.design_id(ir_sha256(ir))
    assert host.parse_info(bytes(ans[0])) == (want_id, True)
    assert ans[1] == [] and ans[2] == [host.CMD_WEIGHTS]
    assert [a[0] for a in ans[3:]] == res.predictions.tolist()
    # the core computes after the last byte: the answer never precedes the compute time
    lat = got["latency_cycles"][3:]
    assert all(0 < v <= 2 * max(model) for v in lat), lat


def test_uart_top_runtime_weights(sim_seed, tmp_path) -> None:
    """Run-time weights: '?' says not loaded, 'W' + weights.bin is acknowledged, then
    '?' says loaded and images give the golden predictions; a second 'W' reloads."""
    g = small_ir()
    ir, hw, params = design(g, runtime_weights=(0, 1))
    blob = (hw / "weights.bin").read_bytes()
    assert len(blob) == params["weight_bytes"] == (16 * 3 + 12 * 1) * 2
    x = images(sim_seed)[:4]
    res = golden.run(g, x)
    model = cycles.image_cycles(g, LANES, x)
    frames = [host.image_request(host.encode_image(img, "direct")) for img in x]
    reqs = [host.info_request(), host.weights_request(blob), host.info_request(),
            *frames[:2], host.weights_request(blob), *frames[2:]]
    replies = [host.INFO_BYTES, 1, host.INFO_BYTES, 1, 1, 1, 1, 1]
    got = replay(hw, reqs, replies, 2 * max(model) + 1000, sim_seed, tmp_path)
    ans = got["answers"]
    want_id = host.design_id(ir_sha256(ir))
    assert host.parse_info(bytes(ans[0])) == (want_id, False)
    assert ans[1] == [host.CMD_WEIGHTS] == ans[5]
    assert host.parse_info(bytes(ans[2])) == (want_id, True)
    assert [ans[i][0] for i in (3, 4, 6, 7)] == res.predictions.tolist()


def test_uart_top_conv_design(sim_seed, tmp_path) -> None:
    """A convolutional design (1x8x8 -> 4C3 pad 1 -> pool 2 -> 6C3 pad 1 -> pool 2 -> fc5,
    layer 0 fused, layer 1 as an address map) through the same UART path as ``qsnn run``:
    the design id, then the golden model's predictions for the host's image frames."""
    from qsnn.testing import random_net

    base = simlib.SIM_BUILD / "gen" / "uart_net-conv"
    g = random_net(base / "ir", spec=[("conv", 4, 3, 1, 2), ("conv", 6, 3, 1, 2), ("fc", 5)],
                   encoding="direct", shape=(1, 8, 8), steps=4, images=6,
                   seed=sim_seed % 1000)
    x = torch.from_numpy(np.load(base / "ir" / "golden" / "vectors.npz")["inputs"])
    hw = base / "hw"
    params = generate(base / "ir", hw, lanes=[3, 4, 2], pool=["fused", "map"])
    res = golden.run(g, x)
    frames = [host.encode_image(img, "direct") for img in x]
    assert all(len(f) == params["input_bytes"] == 64 for f in frames)
    model, _ = cycles.model(g, layer_params(g, [3, 4, 2], pool=["fused", "map"]), x)
    reqs = [host.info_request()] + [host.image_request(f) for f in frames]
    got = replay(hw, reqs, [host.INFO_BYTES] + [1] * len(frames), 2 * int(max(model)) + 1000,
                 sim_seed, tmp_path)
    ans = got["answers"]
    assert host.parse_info(bytes(ans[0])) == (host.design_id(ir_sha256(base / "ir")), True)
    assert [a[0] for a in ans[1:]] == res.predictions.tolist()
