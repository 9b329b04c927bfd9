"""Reading NIR files and a float reference interpreter that follows the NIR spec.

:func:`read` loads a NIR file (one-line :class:`QsnnError` for anything that is not NIR or
is truncated); :func:`chain` orders a feed-forward graph from its Input to its Output and
names what cannot be ordered (branches, recurrent edges, subgraphs). :func:`run` executes
the chain in float64 on a batch, every node as the NIR spec defines it, the neurons with
forward Euler at time step ``dt`` (batch axis 0 added to NIR's shapes)::

    Affine:    y = W x + b                Linear: y = W x
    Conv2d:    y = conv(x, W, stride, padding, dilation, groups) + b
    SumPool2d: window sums                AvgPool2d: window means
    Flatten:   start_dim..end_dim of the per-image shape
    LIF:       v <- v + dt/tau (v_leak - v + r I);  z = v > v_threshold;  v <- v_reset where z
    IF:        v <- v + dt r I;                     z = v > v_threshold;  v <- v_reset where z

The input is held constant over ``steps`` steps; the output is the spike count of the
last layer, prediction argmax (lowest index on ties).
"""

from __future__ import annotations

from pathlib import Path

import nir
import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from qsnn.errors import QsnnError

NEURONS = (nir.LIF, nir.IF)
LAYERS = (nir.Affine, nir.Linear, nir.Conv2d, nir.SumPool2d, nir.AvgPool2d, nir.Flatten)


def read(path: str | Path) -> nir.NIRGraph:
    """The NIR graph in ``path``; one line if the file is missing, not NIR or truncated."""
    path = Path(path)
    if not path.is_file():
        raise QsnnError(f"NIR file not found: {path}")
    try:  # NIR's type check rejects some graphs (cycles); :func:`chain` names the problem
        graph = nir.read(path, type_check=False)
    except Exception as exc:  # noqa: BLE001 - h5py/nir raise many kinds for a bad file
        raise QsnnError(f"{path} is not a readable NIR file (not HDF5/NIR, or truncated: "
                        f"{type(exc).__name__})") from None
    if not isinstance(graph, nir.NIRGraph):
        raise QsnnError(f"{path} holds a single NIR node, not a graph")
    return graph


def chain(graph: nir.NIRGraph) -> list[tuple[str, nir.NIRNode]]:
    """The nodes from Input to Output (both excluded) of a feed-forward chain."""
    succ: dict[str, list[str]] = {}
    for a, b in graph.edges:
        succ.setdefault(a, []).append(b)
    inputs = [k for k, n in graph.nodes.items() if isinstance(n, nir.Input)]
    if len(inputs) != 1:
        raise QsnnError(f"NIR graph has {len(inputs)} Input nodes; one is supported")
    order, seen, cur = [], set(inputs), inputs[0]
    while True:
        nxt = succ.get(cur, [])
        if len(nxt) != 1:
            what = "no successor" if not nxt else f"{len(nxt)} successors (a branch)"
            raise QsnnError(f"NIR node '{cur}': {what}; only chains Input -> ... -> Output "
                            "are supported")
        cur = nxt[0]
        if cur in seen:
            raise QsnnError(f"NIR node '{cur}': recurrent edge (a cycle); not supported")
        seen.add(cur)
        node = graph.nodes.get(cur)
        if node is None:
            raise QsnnError(f"NIR edge to unknown node '{cur}'")
        if isinstance(node, nir.Output):
            return order
        order.append((cur, node))


def _pool(x: Tensor, node: nir.NIRNode) -> Tensor:
    k = tuple(int(v) for v in np.broadcast_to(node.kernel_size, 2))
    s = tuple(int(v) for v in np.broadcast_to(node.stride, 2))
    p = tuple(int(v) for v in np.broadcast_to(node.padding, 2))
    y = F.avg_pool2d(x, k, s, p, count_include_pad=True)
    return y * (k[0] * k[1]) if isinstance(node, nir.SumPool2d) else y


def _layer(node: nir.NIRNode, x: Tensor) -> Tensor:
    t = lambda a: torch.as_tensor(np.asarray(a), dtype=torch.float64)  # noqa: E731
    if isinstance(node, (nir.Affine, nir.Linear)):
        y = x @ t(node.weight).T
        return y + t(node.bias) if isinstance(node, nir.Affine) else y
    if isinstance(node, nir.Conv2d):
        pad = node.padding if isinstance(node.padding, str) else tuple(
            int(v) for v in np.broadcast_to(node.padding, 2))
        return F.conv2d(x, t(node.weight), t(node.bias), tuple(np.broadcast_to(node.stride, 2)),
                        pad, tuple(np.broadcast_to(node.dilation, 2)), int(node.groups))
    if isinstance(node, (nir.SumPool2d, nir.AvgPool2d)):
        return _pool(x, node)
    end = int(node.end_dim)
    return x.flatten(int(node.start_dim) + 1, end + 1 if end >= 0 else end)


def _neuron_step(node: nir.NIRNode, v: Tensor, i: Tensor, dt: float) -> tuple[Tensor, Tensor]:
    t = lambda a: torch.as_tensor(np.asarray(a), dtype=torch.float64)  # noqa: E731
    if isinstance(node, nir.LIF):
        v = v + dt / t(node.tau) * (t(node.v_leak) - v + t(node.r) * i)
    else:
        v = v + dt * t(node.r) * i
    z = v > t(node.v_threshold)
    return z.to(torch.float64), torch.where(z, t(node.v_reset).expand_as(v), v)


def run(nodes: list[tuple[str, nir.NIRNode]], x: Tensor, steps: int, dt: float) -> Tensor:
    """Spike counts [B, classes] of the chain for inputs ``x`` [B, ...] held over ``steps``."""
    x = x.to(torch.float64)
    state: dict[str, Tensor] = {}
    counts = None
    for _ in range(steps):
        h = x
        for name, node in nodes:
            if isinstance(node, NEURONS):
                h, state[name] = _neuron_step(node, state.get(name, torch.zeros_like(h)), h, dt)
            elif isinstance(node, LAYERS):
                h = _layer(node, h)
            else:
                raise QsnnError(f"NIR node '{name}': {type(node).__name__} is not supported "
                                "by the reference interpreter")
        counts = h if counts is None else counts + h
    return counts
