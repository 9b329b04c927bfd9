"""Reading NIR files and a float reference interpreter that follows the NIR spec.

:func:`read` loads a NIR file (one-line :class:`QsnnError` for anything that is not NIR or
is truncated); :func:`chain` orders a feed-forward graph from its Input to its Output and
names what cannot be ordered (branches, recurrent edges, subgraphs), after
:func:`collapse` has replaced each membrane loop (qsnn's form of the subtract and no reset,
``docs/spec.md`` §5) by one :class:`Membrane` node. :func:`run` executes
the chain in float64 on a batch, every node as the NIR spec defines it, the neurons with
forward Euler at time step ``dt`` (batch axis 0 added to NIR's shapes)::

    Affine:    y = W x + b                Linear: y = W x
    Conv2d:    y = conv(x, W, stride, padding, dilation, groups) + b
    SumPool2d: window sums                AvgPool2d: window means
    Flatten:   start_dim..end_dim of the per-image shape
    LIF:       v <- v + dt/tau (v_leak - v + r I);  z = v > v_threshold;  v <- v_reset where z
    IF:        v <- v + dt r I;                     z = v > v_threshold;  v <- v_reset where z
    LI:        v <- v + dt/tau (v_leak - v + r I);  output v (no spikes)
    I:         v <- v + dt r I;                     output v (no spikes)
    Membrane:  u = U(I + leak[t-1] + reset[t-1]);  z = neuron(u);  leak[t] = L(u);
               reset[t] = F(z)   (recurrent edges delayed one step, as NIR's executors do)

The input is held constant over ``steps`` steps; the output is the spike count of the
last layer, or, when the last layer is a non-spiking LI or I (a readout), its membrane
after the last step; prediction argmax (lowest index on ties).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import nir
import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from qsnn.errors import QsnnError

LAYERS = (nir.Affine, nir.Linear, nir.Conv2d, nir.SumPool2d, nir.AvgPool2d, nir.Flatten)
LOOP = (nir.Affine, nir.Linear, nir.Conv2d)


@dataclass
class Membrane:
    """A neuron whose membrane lives in a loop of linear nodes: ``u`` sums the forward
    input and the previous step's ``leak`` (a function of ``u``) and ``reset`` (a function
    of the spikes, absent for no reset); ``neuron`` fires on ``u``."""

    u: nir.NIRNode
    leak: nir.NIRNode
    neuron: nir.NIRNode
    reset: nir.NIRNode | None = None


READOUTS = (nir.LI, nir.I)
NEURONS = (nir.LIF, nir.IF, Membrane, *READOUTS)


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


def _links(edges: list) -> tuple[dict[str, list[str]], dict[str, list[str]]]:
    succ: dict[str, list[str]] = {}
    pred: dict[str, list[str]] = {}
    for a, b in edges:
        succ.setdefault(a, []).append(b)
        pred.setdefault(b, []).append(a)
    return succ, pred


def _loop(u: str, nodes: dict, succ: dict, pred: dict) -> tuple[str, str, str | None] | None:
    """(leak, neuron, reset) keys if ``u`` heads a membrane loop, else None."""
    only = lambda k, to: succ.get(k) == [to] and pred.get(k) == [to]  # noqa: E731
    leaks = [k for k in succ.get(u, []) if only(k, u) and isinstance(nodes[k], LOOP)]
    outs = [k for k in succ.get(u, []) if k not in leaks]
    if len(leaks) != 1 or len(outs) != 1 or not isinstance(nodes[outs[0]], (nir.LIF, nir.IF)):
        return None
    neuron = outs[0]
    resets = [k for k in succ.get(neuron, []) if succ.get(k) == [u] and pred.get(k) == [neuron]
              and isinstance(nodes[k], LOOP)]
    if len(resets) > 1 or pred.get(neuron) != [u] or not isinstance(nodes[u], LOOP):
        return None
    return leaks[0], neuron, (resets[0] if resets else None)


def collapse(graph: nir.NIRGraph) -> tuple[dict[str, nir.NIRNode], list[tuple[str, str]]]:
    """Nodes and edges with every membrane loop replaced by one :class:`Membrane` node
    (named after its neuron); other cycles are left for :func:`chain` to name."""
    nodes, edges = dict(graph.nodes), list(graph.edges)
    for u in list(nodes):
        succ, pred = _links(edges)
        found = _loop(u, nodes, succ, pred) if u in nodes else None
        if found is None:
            continue
        leak, neuron, reset = found
        inner = {u, leak, reset} - {None}
        nodes[neuron] = Membrane(nodes[u], nodes[leak], nodes[neuron],
                                 nodes[reset] if reset else None)
        edges = [(a, neuron if b == u else b) for a, b in edges
                 if not (a in inner | {neuron} and b in inner | {neuron})]
        for k in inner:
            del nodes[k]
    return nodes, edges


def chain(graph: nir.NIRGraph) -> list[tuple[str, nir.NIRNode]]:
    """The nodes from Input to Output (both excluded) of a feed-forward chain (membrane
    loops collapsed)."""
    nodes, edges = collapse(graph)
    succ, _ = _links(edges)
    inputs = [k for k, n in nodes.items() if isinstance(n, nir.Input)]
    if len(inputs) != 1:
        raise QsnnError(f"NIR graph has {len(inputs)} Input nodes; one is supported")
    order: list[tuple[str, nir.NIRNode]] = []
    seen, cur = set(inputs), inputs[0]
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
        node = nodes.get(cur)
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


def _membrane_step(node: Membrane, state: tuple | None, i: Tensor, dt: float
                   ) -> tuple[Tensor, tuple]:
    """One step of a :class:`Membrane`; ``state`` = (leak, reset, neuron v) of step t-1."""
    if state is not None:
        i = i + state[0] + (state[1] if node.reset is not None else 0)
    u = _layer(node.u, i)
    z, v = _neuron_step(node.neuron, state[2] if state else torch.zeros_like(u), u, dt)
    reset = _layer(node.reset, z) if node.reset is not None else None
    return z, (_layer(node.leak, u), reset, v)


def _integrator_step(node: nir.NIRNode, v: Tensor, i: Tensor, dt: float
                     ) -> tuple[Tensor, Tensor]:
    """LI or I: the membrane is the output."""
    t = lambda a: torch.as_tensor(np.asarray(a), dtype=torch.float64)  # noqa: E731
    if isinstance(node, nir.LI):
        v = v + dt / t(node.tau) * (t(node.v_leak) - v + t(node.r) * i)
    else:
        v = v + dt * t(node.r) * i
    return v, v


def _step(node: nir.NIRNode, state: Any, h: Tensor, dt: float) -> tuple[Tensor, Any]:
    if isinstance(node, READOUTS):
        return _integrator_step(node, torch.zeros_like(h) if state is None else state, h, dt)
    if isinstance(node, Membrane):
        return _membrane_step(node, state, h, dt)
    return _neuron_step(node, torch.zeros_like(h) if state is None else state, h, dt)


def run(nodes: list[tuple[str, nir.NIRNode]], x: Tensor, steps: int, dt: float) -> Tensor:
    """Spike counts [B, classes] of the chain for inputs ``x`` [B, ...] held over ``steps``
    (an LI or I last layer: its membrane after the last step)."""
    x = x.to(torch.float64)
    state: dict[str, object] = {}
    counts: Tensor | None = None
    membrane_out = bool(nodes) and isinstance(nodes[-1][1], READOUTS)
    for _ in range(steps):
        h = x
        for name, node in nodes:
            if isinstance(node, NEURONS):
                h, state[name] = _step(node, state.get(name), h, dt)
            elif isinstance(node, LAYERS):
                h = _layer(node, h)
            else:
                raise QsnnError(f"NIR node '{name}': {type(node).__name__} is not supported "
                                "by the reference interpreter")
        counts = h if counts is None or membrane_out else counts + h
    if counts is None:
        raise QsnnError(f"NIR interpreter: {steps} time steps (need at least 1)")
    return counts
