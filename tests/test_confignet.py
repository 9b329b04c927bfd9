"""Random-weight IRs of a config's exact network (``qsnn.confignet``): what the hardware
flow tests of the shipped configs build (sim/test_config_flow.py)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from qsnn import config
from qsnn.confignet import config_ir, geometry
from qsnn.export import golden, serialize
from qsnn.export.ir import LIF, Conv2d, Flatten, Linear, Readout, SumPool

CONFIGS = Path(__file__).resolve().parents[1] / "configs"


def test_dataset_geometry_without_the_files() -> None:
    """MNIST and FashionMNIST 1x28x28 (0..255, 10 classes), DVS Gesture 2 polarities on
    the config's frame (0/1, 11 classes)."""
    got = {name: geometry(config.load(CONFIGS / f"{name}.yaml"))
           for name in ("mnist-conv", "fashion-mnist-conv", "dvs-gesture-conv")}
    assert got == {"mnist-conv": ((1, 28, 28), 10, 255),
                   "fashion-mnist-conv": ((1, 28, 28), 10, 255),
                   "dvs-gesture-conv": ((2, 32, 32), 11, 1)}


def test_seed_config_gives_the_seed_geometry_and_fires(tmp_path) -> None:
    """fashion-mnist-conv-t25: 16C5 -> pool 2 -> LIF -> 64C5 -> pool 2 -> LIF -> flatten ->
    fc10 -> LIF, T = 25, direct input, as saved; every LIF layer fires on the random
    input, none everywhere (θ calibrated: an untrained network would not)."""
    g = config_ir(CONFIGS / "fashion-mnist-conv-t25.yaml", tmp_path, images=1)
    assert serialize.load(tmp_path) == g
    assert (g.time_steps, g.input.encoding, g.input.shape) == (25, "direct", (1, 28, 28))
    kinds = [type(n) for n in g.nodes]
    assert kinds == [Conv2d, SumPool, LIF, Conv2d, SumPool, LIF, Flatten, Linear, LIF,
                     Readout]
    c0, c1, fc = g.nodes[0], g.nodes[3], g.nodes[7]
    assert (c0.in_channels, c0.out_channels, c0.kernel, c0.padding) == (1, 16, 5, 0)
    assert (c1.in_channels, c1.out_channels, c1.kernel, c1.padding) == (16, 64, 5, 0)
    assert (fc.in_features, fc.out_features) == (1024, 10)
    assert [n.shape for n in g.nodes if isinstance(n, LIF)] == [(16, 12, 12), (64, 4, 4),
                                                                (10,)]
    x = torch.from_numpy(np.load(tmp_path / "golden" / "vectors.npz")["inputs"])
    res = golden.run(g, x, record=True)
    rates = [float(s.float().mean()) for s in res.spikes]
    assert all(0 < r < 0.5 for r in rates), rates
