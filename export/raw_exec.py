"""The raw interpreter: runs a lowered graph at any point of the pass list, never the passes.

Every node executes on its own, with the trained model's eval-mode semantics
(``train/layers.py`` ``Block.int_current`` and ``train/lif.py``, float32 operations in
their order). Between the weight layer and the LIF of a block, the value is a current on
a per-channel integer grid, ``float current = unit * I + offset``:

    ScaledWeight  I = W x (integer),          unit = scale * in_scale
    Linear/Conv2d I = W x (integer),          unit as folded (the LIF's annotation)
    AvgPool(K)    I = sumpool_K(I),           unit = unit / (K * K)
    SumPool(K)    I = sumpool_K(I)
    BatchNorm     a = gamma / sqrt(var + eps), c = beta - a * mean  (running statistics)
                  I = sign(a) * I,            unit = unit * max(|a|, 1e-4),  offset = c
    BiasAdd       offset = offset + b         (b alone without an offset)
    FloatLIF      theta_int = clamp(round(theta / unit), 1, 2^20)
                  b_int     = clamp(round(offset / unit), -2^20, 2^20)
                  leak parameter k or m from beta; then the integer LIF of spec §1
    LIF           the integer LIF of spec §1 (theta and bias as given)

A FloatLIF's ``unit``/``offset`` annotations hold what passes already folded; those nodes
come first in the training order, so a block starts from its LIF's annotations and its
remaining raw nodes continue from there. Integer values are int64 and the integer nodes
(W x, sum pool, the LIF recurrence, the input encoders) run the golden model's node
functions, so a graph's result does not depend on how far it was folded. A graph no
training order can produce (a weight scale given twice, an offset before a BatchNorm, an
annotation before an integer LIF) is a one-line :class:`QsnnError`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from qsnn.errors import QsnnError
from qsnn.export import golden
from qsnn.export.ir import LIF, Conv2d, Flatten, Graph, InputEncoder, Linear, Readout, SumPool
from qsnn.export.lower import AvgPool, BatchNorm, BiasAdd, FloatLIF, RawNode, ScaledWeight
from qsnn.train.layers import MIN_BN_GAIN
from qsnn.train.lif import MAX_THETA_INT, quantize_beta

MEMBRANE_BITS = 32  # the width of LIFs before widths are assigned (never saturates here)


@dataclass
class GridCurrent:
    """A block's current: ``unit * value + offset`` per channel (``value`` int64 [N, C, ...])."""

    value: Tensor
    unit: Tensor | None  # float32 [C]
    offset: Tensor | None  # float32 [C]


@dataclass
class RawTrace:
    """Per LIF layer (in order): name, spikes [T, B, ...] int8, membranes [T, B, ...] int64."""

    names: list[str]
    spikes: list[Tensor]
    membranes: list[Tensor]
    counts: Tensor  # [B, classes]


def _t(a: np.ndarray | float) -> Tensor:
    return torch.as_tensor(a, dtype=torch.float32)


def _channel(v: Tensor, ndim: int) -> Tensor:
    return v.reshape(-1, *([1] * (ndim - 2)))


def _unit(cur: GridCurrent, node: RawNode) -> Tensor:
    if cur.unit is None:
        raise QsnnError(f"raw graph: '{node.name}' needs the block's unit, but its weight "
                        "scale is neither a node nor folded into the LIF")
    return cur.unit


# -- one step per node type ----------------------------------------------------------------
def scaled_weight(node: ScaledWeight, cur: GridCurrent) -> GridCurrent:
    """I = W x, unit = scale * in_scale (the input x arrives in ``cur.value``)."""
    if cur.unit is not None:
        raise QsnnError(f"raw graph: '{node.name}' has a weight scale that is also folded")
    value = golden.weight_current(node.layer, cur.value)
    return GridCurrent(value, _t(node.scale) * node.in_scale, cur.offset)


def int_weight(node: Linear | Conv2d, cur: GridCurrent) -> GridCurrent:
    """I = W x; the unit is the folded one."""
    return GridCurrent(golden.weight_current(node, cur.value), cur.unit, cur.offset)


def avg_pool(node: AvgPool, cur: GridCurrent) -> GridCurrent:
    """I = sumpool_K(I), unit = unit / (K * K)."""
    unit = _unit(cur, node) / (node.kernel * node.kernel)
    return GridCurrent(golden.sum_pool(cur.value, node.kernel), unit, cur.offset)


def sum_pool(node: SumPool, cur: GridCurrent) -> GridCurrent:
    """I = sumpool_K(I)."""
    return GridCurrent(golden.sum_pool(cur.value, node.kernel), cur.unit, cur.offset)


def batch_norm(node: BatchNorm, cur: GridCurrent) -> GridCurrent:
    """Running-statistics BN(y) = a y + c: I = sign(a) I, unit *= max(|a|, 1e-4), offset = c."""
    if cur.offset is not None:
        raise QsnnError(f"raw graph: '{node.name}' comes after an offset (bias) was folded")
    unit = _unit(cur, node)
    a = _t(node.gamma) / torch.sqrt(_t(node.var) + node.eps)
    c = _t(node.beta) - a * _t(node.mean)
    sign = _channel(torch.where(a < 0, -1, 1).to(torch.int64), cur.value.dim())
    return GridCurrent(cur.value * sign, unit * a.abs().clamp_min(MIN_BN_GAIN), c)


def bias_add(node: BiasAdd, cur: GridCurrent) -> GridCurrent:
    """offset = offset + b."""
    off = _t(node.bias) if cur.offset is None else cur.offset + _t(node.bias)
    return GridCurrent(cur.value, cur.unit, off)


STEPS: dict[type, Callable] = {
    ScaledWeight: scaled_weight, Linear: int_weight, Conv2d: int_weight, AvgPool: avg_pool,
    SumPool: sum_pool, BatchNorm: batch_norm, BiasAdd: bias_add,
}


# -- LIFs ----------------------------------------------------------------------------------
def grid_lif(node: FloatLIF, cur: GridCurrent) -> LIF:
    """The integer LIF a FloatLIF is on its block's grid (``train/lif.py`` ``theta_int``,
    ``leak_param``; ``train/layers.py`` ``b_int``)."""
    unit = _unit(cur, node)
    theta = torch.round(_t(node.threshold) / unit).clamp(1, MAX_THETA_INT)
    bias: np.ndarray | None = None
    if cur.offset is not None:
        b = torch.round(cur.offset / unit).clamp(-MAX_THETA_INT, MAX_THETA_INT)
        bias = b.numpy().astype(np.int64)
    param = quantize_beta(node.beta, node.leak, node.frac_bits)
    return LIF(node.name, node.shape, node.leak, param, node.frac_bits, node.reset,
               MEMBRANE_BITS, theta.numpy().astype(np.int64), bias)


def as_lif(node: FloatLIF | LIF, cur: GridCurrent) -> LIF:
    """The integer LIF to run: a FloatLIF on its grid, or an integer LIF as it is."""
    if isinstance(node, FloatLIF):
        return grid_lif(node, cur)
    if cur.unit is not None or cur.offset is not None:
        raise QsnnError(f"raw graph: integer LIF '{node.name}' follows unfolded annotations")
    return node


def start(nodes: list[RawNode], i: int, x: Tensor) -> GridCurrent:
    """A block's starting current: input ``x``, and its LIF's folded annotations."""
    if not isinstance(nodes[i], (ScaledWeight, Linear, Conv2d)):
        raise QsnnError(f"raw graph: '{nodes[i].name}' has no weight layer before it")
    lif = next((n for n in nodes[i:] if isinstance(n, (FloatLIF, LIF))), None)
    if lif is None:
        raise QsnnError(f"raw graph: '{nodes[i].name}' has no LIF after it")
    if isinstance(lif, LIF):
        return GridCurrent(x, None, None)
    unit = None if lif.unit is None else _t(lif.unit)
    offset = None if lif.offset is None else _t(lif.offset)
    return GridCurrent(x, unit, offset)


# -- the interpreter -----------------------------------------------------------------------
def run(enc: InputEncoder, nodes: list[RawNode], steps: int, x: Tensor) -> RawTrace:
    """Run ``nodes`` (raw, partly folded or integer) on integer inputs ``x`` (a batch)."""
    h, static = golden.encode(Graph("raw", steps, enc, (), {}), x)
    batch = x.shape[0]
    trace = RawTrace([], [], [], torch.zeros(0))
    cur: GridCurrent | None = None
    for i, node in enumerate(nodes):
        if isinstance(node, Flatten):
            h = h.flatten(1 if static else 2)
        elif isinstance(node, Readout):
            trace.counts = h.sum(0)
        elif isinstance(node, (FloatLIF, LIF)):
            if cur is None:
                raise QsnnError(f"raw graph: LIF '{node.name}' has no weight layer before it")
            value = cur.value if static else cur.value.reshape(steps, batch, *cur.value.shape[1:])
            spk, mem = golden.lif_run(as_lif(node, cur), value, steps, static, record=True)
            trace.names.append(node.name)
            assert mem is not None  # record=True
            trace.spikes.append(spk)
            trace.membranes.append(mem)
            h, static, cur = spk.to(torch.int64), False, None
        elif type(node) in STEPS:
            if cur is None:
                cur = start(nodes, i, h if static else h.reshape(steps * batch, *h.shape[2:]))
            cur = STEPS[type(node)](node, cur)
        else:
            raise QsnnError(f"raw graph: no execution for node type {type(node).__name__}")
    return trace
