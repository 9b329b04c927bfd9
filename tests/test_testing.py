"""The shared IR builders (``qsnn.testing``): what they build is what the IR spells out."""

from __future__ import annotations

import numpy as np
import pytest

from qsnn.export import serialize
from qsnn.export.ir import (
    LIF,
    Conv2d,
    Flatten,
    Graph,
    InputEncoder,
    Leak,
    Linear,
    Readout,
    Reset,
    SumPool,
)
from qsnn.export.validate import validate
from qsnn.testing import Conv, Fc, network, random_net, random_spec


def test_network_spells_out_the_nodes() -> None:
    wc, wf = np.ones((2, 1, 3, 3), np.int8), np.ones((3, 2 * 2 * 2), np.int8)
    g = network(layers=[Conv(weight=wc, padding=1, pool=2, theta=9, bias=[1, -1],
                             leak=Leak.SHIFT, leak_param=3, membrane_bits=16),
                        Fc(weight=wf, weight_bits=2, theta=[4, 5, 6], reset=Reset.ZERO)],
                shape=(1, 4, 4), encoding="rate", pixel_max=16, steps=5, name="n")
    want = Graph("n", 5, InputEncoder("input", "rate", (1, 4, 4), 16, 0xACE1), (
        Conv2d("conv0", 1, 2, 3, 1, 4, wc), SumPool("pool0", 2),
        LIF("lif0", (2, 2, 2), "shift", 3, 8, "subtract", 16, np.array([9, 9]),
            np.array([1, -1])),
        Flatten("flatten1"), Linear("fc1", 8, 3, 2, wf),
        LIF("lif1", (3,), "mult", 256, 8, "zero", 32, np.array([4, 5, 6])),
        Readout("readout", 3)))
    assert g == want
    assert g.nodes[2].leak == Leak.SHIFT and type(g.nodes[2].leak) is str
    with pytest.raises(ValueError):
        network(layers=[Fc(weight=wf, theta=1, reset="sometimes")])


def test_random_net_is_valid_and_reproducible(tmp_path) -> None:
    import random

    cfg = random_spec(random.Random(1))
    kw = dict(spec=cfg["spec"], encoding=cfg["encoding"], shape=cfg["shape"],
              steps=cfg["steps"], images=4, seed=5)
    a, b = random_net(tmp_path / "a", **kw), random_net(tmp_path / "b", **kw)
    validate(a)
    assert a == b == serialize.load(tmp_path / "a")
    assert a != random_net(tmp_path / "c", **{**kw, "seed": 6})
    assert (tmp_path / "a/golden/vectors.npz").read_bytes() == (
        tmp_path / "b/golden/vectors.npz").read_bytes()
