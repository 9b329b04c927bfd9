"""docs/spec.md §1a: the convolution rules the hardware must match, checked on the golden model.

Hand cases for the kernel axis order, the bias (once per pooled neuron, after the pool) and
rate input with padding (the LFSR steps for real pixels only), and the fused-pooling
identity (K x K conv + Kp x Kp sum pool = one (K+Kp-1)^2 conv at stride Kp).
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from reference import conv2d_int, sum_pool

from qsnn.export import golden
from qsnn.export.ir import Graph, Reset
from qsnn.lfsr import rate_spikes, rate_table
from qsnn.testing import Conv, Fc, network

BIG = 10**6


def _conv_graph(w: np.ndarray, *, padding: int, pool: int, shape: tuple[int, int, int],
                bias: int | None = None, encoding: str = "direct", steps: int = 1) -> Graph:
    """Input -> Conv2d -> [SumPool] -> LIF (no leak, no reset, never fires) -> head."""
    o, _, k, _ = w.shape
    n = o * ((shape[1] + 2 * padding - k + 1) // pool) ** 2
    silent = dict(theta=np.int32(BIG), reset=Reset.NONE)
    layers = [Conv(weight=w, padding=padding, pool=pool,
                   bias=None if bias is None else np.int32(bias), **silent),
              Fc(weight=np.zeros((2, n), np.int8), **silent)]
    return network(layers=layers, shape=shape, encoding=encoding, steps=steps, weight_bits=8)


def _membrane(g: Graph, x: torch.Tensor) -> np.ndarray:
    """Membrane of the conv LIF, [T, C, H', W'] for the first image."""
    return golden.run(g, x, record=True).membranes[0][:, 0].numpy()


def test_kernel_axis_order_row_is_y_column_is_x() -> None:
    # one pixel at (y=1, x=2); a kernel with a single 1 at (i=0, j=1): the output at
    # (y, x) reads x[y + i, x + j], so only output (1, 1) sees the pixel
    w = np.zeros((1, 1, 2, 2), np.int8)
    w[0, 0, 0, 1] = 1
    img = torch.zeros(1, 1, 4, 4, dtype=torch.uint8)
    img[0, 0, 1, 2] = 7
    u = _membrane(_conv_graph(w, padding=0, pool=1, shape=(1, 4, 4)), img)[0, 0]
    want = np.zeros((3, 3), np.int64)
    want[1, 1] = 7
    assert np.array_equal(u, want)


def test_padding_reads_zeros_outside_the_map() -> None:
    w = np.ones((1, 1, 3, 3), np.int8)
    img = torch.ones(1, 1, 3, 3, dtype=torch.uint8)
    u = _membrane(_conv_graph(w, padding=1, pool=1, shape=(1, 3, 3)), img)[0, 0]
    assert np.array_equal(u, [[4, 6, 4], [6, 9, 6], [4, 6, 4]])


def test_bias_is_added_once_per_pooled_neuron_after_the_pool() -> None:
    w = np.ones((1, 1, 1, 1), np.int8)
    img = torch.zeros(1, 1, 4, 4, dtype=torch.uint8)
    u = _membrane(_conv_graph(w, padding=0, pool=2, shape=(1, 4, 4), bias=5), img)
    assert np.array_equal(u[0, 0], np.full((2, 2), 5))  # not 4 x 5


def test_rate_input_lfsr_steps_for_real_pixels_only() -> None:
    # with padding 2 the conv's centre tap reads the real pixels; their spikes must be the
    # LFSR table of the 9 real pixels (padding positions never step the LFSR)
    w = np.zeros((1, 1, 5, 5), np.int8)
    w[0, 0, 2, 2] = 1
    img = torch.tensor([[[[255, 128, 30], [0, 200, 90], [64, 255, 1]]]], dtype=torch.uint8)
    steps = 6
    g = _conv_graph(w, padding=2, pool=1, shape=(1, 3, 3), encoding="rate", steps=steps)
    u = _membrane(g, img)
    spikes = rate_spikes(img.flatten(1), rate_table(0xACE1, steps, 9), 255)  # [T, 1, 9]
    want = np.cumsum(spikes[:, 0].numpy().astype(np.int64), axis=0).reshape(steps, 3, 3)
    assert np.array_equal(u[:, 0], want)


def fused_kernel(w: np.ndarray, kp: int) -> np.ndarray:
    """Wf[o, c, u, v] = sum_{dy, dx < kp} W[o, c, u - dy, v - dx] (spec §1a)."""
    o, c, k, _ = w.shape
    out = np.zeros((o, c, k + kp - 1, k + kp - 1), np.int64)
    for dy in range(kp):
        for dx in range(kp):
            out[:, :, dy:dy + k, dx:dx + k] += w
    return out


@pytest.mark.parametrize(("k", "pad", "kp", "size"), [(5, 0, 2, 12), (3, 1, 2, 8),
                                                      (5, 2, 4, 8), (3, 0, 1, 5)])
def test_fused_pool_kernel_equals_conv_then_sum_pool(k: int, pad: int, kp: int,
                                                     size: int) -> None:
    rng = np.random.default_rng(k * 100 + pad * 10 + kp)
    w = rng.integers(-7, 8, (3, 2, k, k))
    x = rng.integers(0, 2, (2, size, size))
    want = sum_pool(conv2d_int(x, w, pad), kp)
    wf = fused_kernel(w, kp)
    got = F.conv2d(torch.from_numpy(x)[None].double(), torch.from_numpy(wf).double(),
                   padding=pad, stride=kp)[0].long().numpy()
    assert np.array_equal(got, want)
    assert np.abs(wf).max() <= kp * kp * 7
