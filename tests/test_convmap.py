"""qsnn.hw.convmap: the engine's per-event chunk sequence against a brute-force enumeration,
and the memory layout against the golden model (scatter every event's chunks through the
packed weight words = ``sum_pool(weight_current(conv, x))``)."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch

from qsnn.errors import QsnnError
from qsnn.export import golden
from qsnn.export.ir import Conv2d
from qsnn.hw import convmap
from qsnn.hw.convmap import ConvGeom

# (ci, h, w, k, pad, kp, co, lanes): kernels 1, 3, 5; padding 0..k-1; pool 1, 2, 4;
# channel counts that are not multiples of the lanes; non-square maps
GEOMS = [
    (2, 6, 6, 3, 0, 1, 5, 2),
    (1, 7, 7, 3, 2, 1, 3, 4),
    (3, 8, 6, 3, 1, 2, 4, 4),
    (2, 9, 9, 5, 2, 1, 7, 3),
    (1, 12, 12, 5, 0, 2, 6, 4),
    (2, 8, 6, 5, 4, 2, 3, 1),
    (1, 10, 10, 3, 1, 2, 2, 8),
    (1, 11, 11, 2, 1, 4, 3, 2),
    (4, 1, 1, 1, 0, 1, 10, 4),  # fully connected: the degenerate case
]
IDS = ["-".join(map(str, g)) for g in GEOMS]


def geoms(fused_too: bool = True):
    for t in GEOMS:
        for fused in ((True, False) if fused_too else (True,)):
            yield ConvGeom(*t, fused=fused, wb=4 if t[5] <= 2 else 2)


def brute_chunks(g: ConvGeom, c: int, y: int, x: int) -> list[tuple[int, int]]:
    """Every engine position and kernel tap whose window holds (y, x), by enumeration."""
    out = []
    for ye, xe in itertools.product(range(g.he), range(g.we)):
        u, v = y + g.pad - g.se * ye, x + g.pad - g.se * xe
        if 0 <= u < g.ke and 0 <= v < g.ke:
            pos = (ye // g.div) * g.wo + xe // g.div
            tap = (c * g.ke + u) * g.ke + v
            out += [(pos * g.groups + gi, tap * g.groups + gi) for gi in range(g.groups)]
    return out


@pytest.mark.parametrize("t", GEOMS, ids=IDS)
@pytest.mark.parametrize("fused", [True, False])
def test_event_chunks_equal_brute_force(t, fused) -> None:
    g = ConvGeom(*t, fused=fused, wb=2)
    g.check()
    for c, y, x in itertools.product(range(g.ci), range(g.h), range(g.w)):
        want = brute_chunks(g, c, y, x)
        assert want, f"pixel {(c, y, x)} reaches no neuron"
        assert convmap.event_chunks(g, c, y, x) == want, (c, y, x)
        assert convmap.event_cycles(g, y, x) == len(want)


def test_fused_kernel_is_the_spec_sum() -> None:
    rs = np.random.default_rng(1)
    w = rs.integers(-7, 8, size=(3, 2, 3, 3))
    wf = convmap.fused_kernel(w, 2)
    for o, c, u, v in itertools.product(range(3), range(2), range(4), range(4)):
        want = sum(int(w[o, c, u - dy, v - dx]) for dy in range(2) for dx in range(2)
                   if 0 <= u - dy < 3 and 0 <= v - dx < 3)
        assert wf[o, c, u, v] == want
    assert np.abs(wf).max() <= 4 * 7


def scatter(g: ConvGeom, rows: np.ndarray, x: np.ndarray) -> np.ndarray:
    """The engine's accumulate: every event (c, y, x, value) adds value × weight word to
    its chunks (membrane words × lanes), as the RTL does."""
    acc = np.zeros((g.words, g.lanes), np.int64)
    for c, y, xx in zip(*np.nonzero(x), strict=True):
        for chunk, waddr in convmap.event_chunks(g, int(c), int(y), int(xx)):
            acc[chunk] += int(x[c, y, xx]) * rows[waddr]
    return acc.reshape(-1)


@pytest.mark.parametrize("t", GEOMS, ids=IDS)
@pytest.mark.parametrize("fused", [True, False])
def test_scatter_through_packed_words_equals_golden(t, fused) -> None:
    g = ConvGeom(*t, fused=fused, wb=4 if t[5] <= 2 else 2)
    rs = np.random.default_rng(hash(t) & 0xFFFF)
    wmax = (1 << (g.wb - 1)) - 1
    w = rs.integers(-wmax, wmax + 1, size=(g.co, g.ci, g.k, g.k))
    x = rs.integers(0, 4, size=(g.ci, g.h, g.w)) * (rs.random((g.ci, g.h, g.w)) < 0.5)
    x[:, 0, 0] = x[:, -1, -1] = 3  # corners
    conv = Conv2d("conv", g.ci, g.co, g.k, g.pad, g.wb, w.astype(np.int8))
    want = golden.sum_pool(golden.weight_current(conv, torch.from_numpy(x)[None]), g.kp)[0]
    rows = convmap.weight_rows(g, w)
    assert rows.shape == (g.w_words, g.lanes)
    assert np.abs(rows).max() < 1 << (g.weight_bits - 1)
    got = scatter(g, rows, x)
    assert np.array_equal(convmap.unpack_map(g, got), want.numpy())
    assert not convmap.padded_lanes(g, got).any()


def test_scatter_check_fails_on_a_wrong_tap() -> None:
    """The golden comparison sees a mirrored kernel (the check can fail)."""
    g = ConvGeom(1, 5, 5, 3, 1, 1, 1, 1, fused=False)
    w = np.arange(9).reshape(1, 1, 3, 3) - 4
    x = np.zeros((1, 5, 5), np.int64)
    x[0, 1, 3] = 1
    conv = Conv2d("conv", 1, 1, 3, 1, 4, w.astype(np.int8))
    want = golden.weight_current(conv, torch.from_numpy(x)[None])[0].numpy()
    assert np.array_equal(convmap.unpack_map(g, scatter(g, convmap.weight_rows(g, w), x)), want)
    flipped = convmap.weight_rows(g, w[:, :, ::-1, ::-1])
    assert not np.array_equal(convmap.unpack_map(g, scatter(g, flipped, x)), want)


def test_channel_rows_and_unpack_layout() -> None:
    g = ConvGeom(1, 4, 4, 1, 0, 2, 5, 2)
    rows = convmap.channel_rows(g, np.arange(5), 99)
    assert rows.tolist() == [[0, 1], [2, 3], [4, 99]]
    lanes = np.arange(g.words * g.lanes)
    m = convmap.unpack_map(g, lanes)
    assert m.shape == (5, 2, 2)
    # neuron (o, Y, X) sits in word (Y*WO + X)*G + o // P, lane o % P
    for o, yy, xx in itertools.product(range(5), range(2), range(2)):
        assert m[o, yy, xx] == ((yy * 2 + xx) * 3 + o // 2) * 2 + o % 2


@pytest.mark.parametrize("kw,message", [
    (dict(kp=3, h=9, w=9, k=1), "pool 3 is not a power of two"),
    (dict(kp=2, h=7, w=7, k=1), "pool 2 does not divide the 7x7 conv map"),
    (dict(pad=3, k=3), "padding 3 outside 0..2"),
    (dict(k=9, h=4, w=4, pad=1), "kernel 9 larger than the padded 4x4 map"),
    (dict(kp=4, h=8, w=8, k=1, wb=5), "fused pooling needs 9-bit weights"),
])
def test_limits_name_the_value(kw, message) -> None:
    base = dict(ci=1, h=8, w=8, k=3, pad=0, kp=1, co=4, lanes=4)
    g = ConvGeom(**{**base, **kw})
    with pytest.raises(QsnnError, match=message):
        g.check("node 'conv1'")


def test_fused_width_limit_is_the_boundary() -> None:
    """4 + 2·log2(4) = 8 bits fits; 5-bit weights fit only as an address map."""
    ConvGeom(1, 8, 8, 1, 0, 4, 4, 4, wb=4).check()
    ConvGeom(1, 8, 8, 1, 0, 4, 4, 4, wb=5, fused=False).check()


def test_conv_mems_words() -> None:
    """Hex words: lane 0 lowest, two's complement, fused weights 6 bits wide."""
    g = ConvGeom(1, 4, 4, 1, 0, 2, 3, 2, fused=True, wb=4)
    w = np.array([-7, 5, 1]).reshape(3, 1, 1, 1)
    mems = convmap.conv_mems(g, w, np.array([3, 4, 5]), None, 8)
    # Wf of a 1x1 kernel at Kp 2 is the 2x2 all-w kernel: 4 taps x G = 2 words each
    wmask = (1 << 6) - 1
    want0 = f"{((-7 & wmask) | (5 << 6)):03x}"
    assert mems["l0_w.mem"][0::2] == [want0] * 4
    assert mems["l0_w.mem"][1::2] == [f"{1:03x}"] * 4
    assert mems["l0_theta.mem"] == ["0403", "7f05"]
    assert mems["l0_bias.mem"] == ["0000", "0000"]
