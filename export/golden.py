"""The integer golden model: runs an IR graph, exactly ``docs/spec.md`` §1.

It needs only the IR (no trained model), works on PyTorch integer tensors, batched over
images and vectorised over neurons. Per LIF layer and step t (all int64)::

    r     = U > theta                                   (previous membrane)
    U     = 0 where r                                   (zero reset)
    U     = sat_B(leak(U) + I[t] + b - r * theta)       (subtract; no "- r*theta" otherwise)
    s[t]  = U > theta                                   (one step: :func:`lif_step`)
    leak(U) = U - (U >> k)  |  (m * U) >> F              (>> arithmetic: floor division)

Currents are computed once per image for direct input (the first layer's input does
not change over time) and for all T x B spike maps at once otherwise; matrix products
run in float64, exact for the integer ranges the IR admits (|values| < 2^53), and are
converted back to int64.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TypeVar

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from qsnn.errors import QsnnError
from qsnn.export.ir import (
    LIF,
    Conv2d,
    Encoding,
    Flatten,
    Graph,
    Leak,
    Linear,
    Readout,
    Reset,
    SumPool,
)
from qsnn.lfsr import rate_spikes, rate_table

IntArray = TypeVar("IntArray", Tensor, np.ndarray)  # leak(): torch, or numpy (widths.py)


@dataclass
class GoldenResult:
    """Output spike counts [B, classes], predictions [B] and optional per-LIF traces."""

    counts: Tensor
    predictions: Tensor
    spikes: list[Tensor] | None = None  # per LIF: [T, B, ...] int8
    membranes: list[Tensor] | None = None  # per LIF: [T, B, ...] int64


def encode(graph: Graph, x: Tensor) -> tuple[Tensor, bool]:
    """First-layer input as int64: ([B, C, H, W], static) or ([T, B, C, H, W], False)."""
    inp, steps = graph.input, graph.time_steps
    check_input(graph, x)
    if inp.encoding == Encoding.DIRECT:
        return x.to(torch.int64), True
    if inp.encoding == Encoding.RATE:
        table = rate_table(inp.lfsr_seed, steps, x[0].numel())
        spk = rate_spikes(x.flatten(1), table, inp.pixel_max).to(torch.int64)
        return spk.reshape(steps, x.shape[0], *x.shape[1:]), False
    return x.to(torch.int64).transpose(0, 1), False


def check_input(graph: Graph, x: Tensor) -> None:
    """One-line error for inputs the IR's encoder does not accept."""
    inp = graph.input
    want = ((graph.time_steps,) if inp.encoding == Encoding.EVENTS else ()) + tuple(inp.shape)
    if tuple(x.shape[1:]) != want:
        raise QsnnError(f"golden model: input shape {tuple(x.shape[1:])} does not match the "
                        f"IR's {want}")
    if x.numel() == 0:
        return
    top = 1 if inp.encoding == Encoding.EVENTS else inp.pixel_max
    lo, hi = int(x.min()), int(x.max())
    if lo < 0 or hi > top:
        raise QsnnError(f"golden model: input values {lo}..{hi} outside 0..{top}")


def weight_current(node: Linear | Conv2d, x: Tensor) -> Tensor:
    """Integer W x (float64 products, exact) for x [N, ...] int64."""
    w = torch.from_numpy(node.weight.astype("float64"))
    xf = x.to(torch.float64)
    out = F.linear(xf, w) if isinstance(node, Linear) else F.conv2d(xf, w, padding=node.padding)
    return out.to(torch.int64)


def sum_pool(x: Tensor, k: int) -> Tensor:
    """Sum over non-overlapping k x k windows of [N, C, H, W] int64."""
    n, c, h, w = x.shape
    return x.reshape(n, c, h // k, k, w // k, k).sum(dim=(3, 5))


def leak(u: IntArray, node: LIF) -> IntArray:
    """The integer leak (arithmetic shifts); also used on numpy int64 arrays by the width
    analysis, so the bound and the model share one definition."""
    if node.leak == Leak.SHIFT:
        return u - (u >> node.leak_param)
    return (u * node.leak_param) >> node.frac_bits


def _channel(v: Tensor, ndim: int) -> Tensor:
    return v.reshape(-1, *([1] * (ndim - 2)))


def fires(u: Tensor, theta: Tensor) -> Tensor:
    """The spike condition s = U > theta (strictly greater, as snnTorch's Heaviside)."""
    return u > theta


def lif_step(node: LIF, u: Tensor, current: Tensor, theta: Tensor,
             bias: Tensor | None = None) -> tuple[Tensor, Tensor]:
    """One time step of ``docs/spec.md`` §1 for the membranes ``u`` = U[t-1]::

        r    = U[t-1] > theta
        U    = 0 where r                                 (zero reset only)
        U[t] = sat_B(leak(U) + I[t] + b - r * theta)     ("- r * theta": subtract only)
        s[t] = U[t] > theta

    ``theta`` and ``bias`` broadcast against ``u`` (int64); returns (s[t] bool, U[t]).
    The golden model, the lane and layer benches and the step-by-step baseline of
    ``bench/golden_speed.py`` all run this one function."""
    lo, hi = -(1 << (node.membrane_bits - 1)), (1 << (node.membrane_bits - 1)) - 1
    r = fires(u, theta)
    if node.reset == Reset.ZERO:
        u = u.masked_fill(r, 0)
    u = leak(u, node) + current
    if bias is not None:
        u = u + bias
    if node.reset == Reset.SUBTRACT:
        u = u - r * theta
    u = u.clamp(lo, hi)
    return fires(u, theta), u


def lif_run(node: LIF, current: Tensor, steps: int, static: bool, record: bool
            ) -> tuple[Tensor, Tensor | None]:
    """LIF over ``steps`` steps; current [B, ...] (static) or [T, B, ...] (int64).

    Returns spikes [T, B, ...] (int8) and, if ``record``, membranes [T, B, ...] (int64).
    """
    first = current if static else current[0]
    theta = _channel(torch.from_numpy(node.theta.astype("int64")), first.dim())
    bias = None
    if node.bias is not None:
        bias = _channel(torch.from_numpy(node.bias.astype("int64")), first.dim())
    u = torch.zeros_like(first)
    spikes = torch.empty((steps, *first.shape), dtype=torch.int8)
    mems = torch.empty((steps, *first.shape), dtype=torch.int64) if record else None
    for t in range(steps):
        spikes[t], u = lif_step(node, u, current if static else current[t], theta, bias)
        if mems is not None:
            mems[t] = u
    return spikes, mems


def run(graph: Graph, x: Tensor, record: bool = False) -> GoldenResult:
    """Run ``graph`` on a batch ``x`` of integer inputs (images [B, C, H, W] or event
    frames [B, T, C, H, W]); returns counts, predictions and (``record``) traces."""
    steps = graph.time_steps
    h, static = encode(graph, x)
    batch = x.shape[0]
    spikes_rec: list[Tensor] = []
    mems_rec: list[Tensor] = []
    cur: Tensor  # set by the weight layer that validate() puts before every pool and LIF
    for node in graph.nodes:
        if isinstance(node, (Linear, Conv2d)):
            inp = h if static else h.reshape(steps * batch, *h.shape[2:])
            cur = weight_current(node, inp)
        elif isinstance(node, SumPool):
            cur = sum_pool(cur, node.kernel)
        elif isinstance(node, LIF):
            if not static:
                cur = cur.reshape(steps, batch, *cur.shape[1:])
            spk, mem = lif_run(node, cur, steps, static, record)
            spikes_rec.append(spk)
            if mem is not None:
                mems_rec.append(mem)
            h, static = spk.to(torch.int64), False
        elif isinstance(node, Flatten):
            h = h.flatten(1 if static else 2)
        elif isinstance(node, Readout):
            counts = h.sum(0)
    return GoldenResult(
        counts=counts, predictions=torch.argmax(counts, dim=1),
        spikes=spikes_rec if record else None, membranes=mems_rec if record else None)


MAX_BATCH = 2048  # images per chunk of :func:`run_batched`, at most
BATCH_BYTES = 1 << 30  # working memory a chunk of :func:`run_batched` may use


def bytes_per_image(graph: Graph) -> int:
    """Peak working memory of :func:`run` per image (no traces), estimated.

    Per weight node: its int64 input and float64 copy, the float64 im2col buffer of a
    convolution (in_channels * K^2 * out pixels), the float64 and int64 outputs; per LIF
    its int8 and int64 spike maps and the membrane; all times T where the node runs on
    every step (1 for the first layer of direct input). For the seed's conv network at
    T=100 the measured peak RSS is 1.0-1.15x this figure.
    """
    steps, static = graph.time_steps, graph.input.encoding == Encoding.DIRECT
    shape = tuple(graph.input.shape)
    peak = 0
    for node in graph.nodes:
        size, out = math.prod(shape), node.out_shape(shape)
        reps = 1 if static else steps
        if isinstance(node, (Linear, Conv2d)):
            cols = 0
            if isinstance(node, Conv2d):
                cols = node.in_channels * node.kernel**2 * out[1] * out[2]
            need = reps * 8 * (2 * size + cols + 2 * math.prod(out))
        elif isinstance(node, SumPool):
            need = reps * 8 * (size + math.prod(out))
        elif isinstance(node, LIF):
            need = steps * size * (1 + 8) + reps * size * 8 + 4 * size * 8
            static = False
        else:  # Flatten (a view), Readout (the counts)
            need = 0 if isinstance(node, Flatten) else steps * size * 8
        peak, shape = max(peak, need), out
    return max(peak, 1)


def auto_batch_size(graph: Graph) -> int:
    """Images per chunk so that one chunk stays within :data:`BATCH_BYTES`."""
    return max(1, min(MAX_BATCH, BATCH_BYTES // bytes_per_image(graph)))


def run_batched(graph: Graph, x: Tensor, batch_size: int | None = None) -> GoldenResult:
    """:func:`run` over ``x`` in chunks (no traces); counts and predictions concatenated.

    ``batch_size`` defaults to :func:`auto_batch_size` (memory-bounded: the seed's conv
    network at T=100 needs ~30 MB per image, the MLP at T=25 ~0.2 MB).
    """
    if batch_size is None:
        batch_size = auto_batch_size(graph)
    parts = [run(graph, x[i : i + batch_size]) for i in range(0, len(x), batch_size)]
    if not parts:
        counts = torch.zeros((0, graph.classes), dtype=torch.int64)
        return GoldenResult(counts=counts, predictions=torch.zeros(0, dtype=torch.int64))
    counts = torch.cat([p.counts for p in parts])
    return GoldenResult(counts=counts, predictions=torch.argmax(counts, dim=1))
