"""The Verilog generator and the cycle model (no simulator needed)."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from qsnn.cli import main
from qsnn.errors import QsnnError
from qsnn.export import serialize
from qsnn.export.ir import LIF, Conv2d, Flatten, Graph, InputEncoder, Linear, Readout, SumPool
from qsnn.hw import cycles
from qsnn.hw.generate import generate, layer_params, pack_words


def mlp(encoding: str = "direct", pixel_max: int = 16) -> Graph:
    rng = np.random.default_rng(0)
    nodes = (
        Flatten("flatten0"),
        Linear("fc0", 12, 10, 4, rng.integers(-7, 8, (10, 12)).astype(np.int8)),
        LIF("lif0", (10,), "mult", 230, 8, "subtract", 16, rng.integers(20, 60, 10).astype(
            np.int32), rng.integers(-5, 5, 10).astype(np.int32)),
        Linear("fc1", 10, 3, 4, rng.integers(-7, 8, (3, 10)).astype(np.int8)),
        LIF("lif1", (3,), "shift", 3, 8, "zero", 12, np.full(3, 5, np.int32)),
        Readout("readout", 3),
    )
    enc = InputEncoder("input", encoding, (1, 3, 4) if encoding != "events" else (1, 3, 4),
                       pixel_max, 0xACE1 if encoding == "rate" else 0)
    return Graph("t", 6, enc, nodes, {"dataset": "digits"})


@pytest.fixture
def ir(tmp_path):
    g = mlp()
    from qsnn.export.runner import assign_widths

    g = assign_widths(g.input, list(g.nodes), "t", 6, None, g.metadata)
    serialize.save(g, tmp_path / "build")
    x = torch.randint(0, 17, (5, 1, 3, 4), generator=torch.Generator().manual_seed(0))
    (tmp_path / "build/golden").mkdir()
    np.savez(tmp_path / "build/golden/vectors.npz", inputs=x.numpy().astype(np.uint8))
    return tmp_path / "build"


def test_generation_is_deterministic(ir, tmp_path) -> None:
    generate(ir, tmp_path / "a", lanes=4)
    generate(ir, tmp_path / "b", lanes=4)
    files = sorted(p.name for p in (tmp_path / "a").iterdir())
    assert files == sorted(p.name for p in (tmp_path / "b").iterdir())
    assert {"qsnn_top.v", "filelist.f", "params.json", "qsnn_t.core", "l0_w.mem"} <= set(files)
    for f in files:
        assert (tmp_path / "a" / f).read_bytes() == (tmp_path / "b" / f).read_bytes(), f


def test_weight_memory_layout(ir, tmp_path) -> None:
    params = generate(ir, tmp_path / "hw", lanes=4)
    mb = params["layers"][0]["mb"]
    g = serialize.load(ir)
    w = g.nodes[1].weight
    words = (tmp_path / "hw/l0_w.mem").read_text().split()
    k = 3  # ceil(10 / 4)
    assert len(words) == 12 * k
    for j in range(12):
        for c in range(k):
            word = int(words[j * k + c], 16)
            for lane in range(4):
                n = c * 4 + lane
                v = (word >> (4 * lane)) & 0xF
                v = v - 16 if v >= 8 else v
                assert v == (w[n, j] if n < 10 else 0)
    theta = [int(t, 16) for t in (tmp_path / "hw/l0_theta.mem").read_text().split()]
    lanes = [(theta[-1] >> (mb * lane)) & ((1 << mb) - 1) for lane in range(4)]
    assert lanes[2:] == [(1 << (mb - 1)) - 1] * 2  # padded neurons (10, 11) never fire
    assert lanes[:2] == g.nodes[2].theta[8:10].tolist()


def test_pack_words_twos_complement() -> None:
    assert pack_words(np.array([[-1, 2]]), 4) == ["2f"]
    assert pack_words(np.array([[-8, 7, 0]]), 4) == ["078"]


def test_refusals(ir, tmp_path, capsys) -> None:
    g = serialize.load(ir)
    with pytest.raises(QsnnError, match="--lanes 0"):
        layer_params(g, 0)
    conv = g.replace(nodes=(Conv2d("conv0", 1, 2, 2, 0, 4, np.ones((2, 1, 2, 2), np.int8)),
                            SumPool("pool0", 1), *g.nodes[2:]))
    with pytest.raises(QsnnError, match="'conv0': Conv2d is not supported"):
        layer_params(conv, 4)
    wide = g.replace(input=dataclasses.replace(g.input, pixel_max=1000))
    with pytest.raises(QsnnError, match="pixel_max 1000"):
        layer_params(wide, 4)
    assert main(["hw", str(ir), "--lanes", "100", "--out", str(tmp_path / "x")]) == 2
    assert "--lanes 100" in capsys.readouterr().err
    assert not (tmp_path / "x").exists()


def test_cycle_model_scales_with_lanes_and_spikes(ir) -> None:
    g = serialize.load(ir)
    x = torch.from_numpy(np.load(ir / "golden/vectors.npz")["inputs"])
    c1, c4 = cycles.image_cycles(g, 1, x), cycles.image_cycles(g, 4, x)
    assert all(a > b for a, b in zip(c1, c4, strict=True))
    zero = cycles.image_cycles(g, 4, torch.zeros_like(x))
    assert all(z < c for z, c in zip(zero, c4, strict=True))
    assert cycles.scan(np.zeros(5, bool), 3) == 7  # five idle items, one per cycle
    assert cycles.buf(np.zeros((4, 2), np.int8), 3) == 5
    mem = cycles.memory_bits(g, 4)
    assert mem[0]["weights"] == 12 * 12 * 4


def test_estimate_cli(ir, capsys) -> None:
    assert main(["hw", str(ir), "--estimate", "--lanes", "2"]) == 0
    out = capsys.readouterr().out
    assert "cycles per inference" in out and "layer 0" in out
