"""Worst-case width analysis of currents and membranes.

Per LIF layer and channel c, from the integer weights, the input range [0, x_max]
(x_max = pixel_max for direct input, 1 for spikes), the optional sum pool (K^2 windows)
and bias b::

    I_lo = K^2 * x_max * sum(min(W, 0)) + min(b, 0)      (<= 0: covers every partial sum)
    I_hi = K^2 * x_max * sum(max(W, 0)) + max(b, 0)      (>= 0)

then the membrane interval [lo, hi] is propagated through the T steps of §1 (the leak is
monotone, so interval endpoints bound it), splitting U[t-1] at theta into the no-reset
part (U <= theta) and the reset part (U > theta)::

    no reset: [leak(lo) + I_lo, leak(min(hi, theta)) + I_hi]
    subtract: [leak(max(lo, theta + 1)) + I_lo - theta, leak(hi) + I_hi - theta]
    zero:     [I_lo, I_hi]

Because I_lo <= 0 <= I_hi, the bound also covers every partial sum the hardware forms
while it adds the weights of one step in any order (after the leak and the reset). The
minimal membrane width B is the smallest signed width holding [min(lo), max(hi)] and
theta; ``current_bits`` is the width of [I_lo, I_hi].
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from qsnn.export.golden import leak
from qsnn.export.ir import LIF, Conv2d, Encoding, Graph, Linear, Reset, SumPool


@dataclass(frozen=True)
class LayerWidth:
    """Worst-case ranges of one LIF layer (over all its neurons)."""

    name: str
    current_lo: int
    current_hi: int
    membrane_lo: int
    membrane_hi: int
    membrane_bits: int
    current_bits: int


def signed_bits(lo: int, hi: int) -> int:
    """Smallest two's-complement width (at least 2) holding [lo, hi]."""
    bits = 2
    while not (-(1 << (bits - 1)) <= lo and hi <= (1 << (bits - 1)) - 1):
        bits += 1
    return bits


def current_bounds(weight: np.ndarray, x_max: int, pool: int) -> tuple[np.ndarray, np.ndarray]:
    """Per-output-channel (I_lo, I_hi) of a Linear [O, N] or Conv2d [O, C, K, K] weight."""
    w = weight.reshape(weight.shape[0], -1).astype(np.int64)
    scale = x_max * pool * pool
    return np.minimum(w, 0).sum(1) * scale, np.maximum(w, 0).sum(1) * scale


def membrane_bounds(lif: LIF, i_lo: np.ndarray, i_hi: np.ndarray, steps: int
                    ) -> tuple[np.ndarray, np.ndarray]:
    """Per-channel worst-case (min, max) membrane over ``steps`` steps."""
    theta = lif.theta.astype(np.int64)
    lo = np.zeros_like(theta)
    hi = np.zeros_like(theta)
    peak_lo, peak_hi = lo.copy(), hi.copy()
    for _ in range(steps):
        can_rest = lo <= theta
        can_reset = hi > theta
        big = np.iinfo(np.int64).max // 4
        n_lo = np.where(can_rest, leak(lo, lif) + i_lo, big)
        n_hi = np.where(can_rest, leak(np.minimum(hi, theta), lif) + i_hi, -big)
        if lif.reset == Reset.NONE:
            n_lo = np.minimum(n_lo, leak(lo, lif) + i_lo)
            n_hi = np.maximum(n_hi, leak(hi, lif) + i_hi)
        elif lif.reset == Reset.SUBTRACT:
            r_lo = leak(np.maximum(lo, theta + 1), lif) + i_lo - theta
            r_hi = leak(hi, lif) + i_hi - theta
            n_lo = np.where(can_reset, np.minimum(n_lo, r_lo), n_lo)
            n_hi = np.where(can_reset, np.maximum(n_hi, r_hi), n_hi)
        else:
            n_lo = np.where(can_reset, np.minimum(n_lo, i_lo), n_lo)
            n_hi = np.where(can_reset, np.maximum(n_hi, i_hi), n_hi)
        if np.array_equal(n_lo, lo) and np.array_equal(n_hi, hi):
            break  # a fixed point: later steps repeat this interval
        lo, hi = n_lo, n_hi
        peak_lo, peak_hi = np.minimum(peak_lo, lo), np.maximum(peak_hi, hi)
    return peak_lo, peak_hi


def analyze(graph: Graph) -> list[LayerWidth]:
    """Worst-case ranges and minimal widths of every LIF layer of ``graph``."""
    out = []
    x_max = graph.input.pixel_max if graph.input.encoding == Encoding.DIRECT else 1
    weight: np.ndarray  # set by the weight layer that validate() puts before every LIF
    pool = 1
    for node in graph.nodes:
        if isinstance(node, (Linear, Conv2d)):
            weight, pool = node.weight, 1
        elif isinstance(node, SumPool):
            pool = node.kernel
        elif isinstance(node, LIF):
            i_lo, i_hi = current_bounds(weight, x_max, pool)
            if node.bias is not None:
                b = node.bias.astype(np.int64)
                i_lo, i_hi = i_lo + np.minimum(b, 0), i_hi + np.maximum(b, 0)
            m_lo, m_hi = membrane_bounds(node, i_lo, i_hi, graph.time_steps)
            theta_max = int(node.theta.max())
            lo, hi = int(m_lo.min()), max(int(m_hi.max()), theta_max)
            out.append(LayerWidth(node.name, int(i_lo.min()), int(i_hi.max()), lo, hi,
                                  signed_bits(lo, hi), signed_bits(int(i_lo.min()),
                                                                   int(i_hi.max()))))
            x_max = 1
    return out
