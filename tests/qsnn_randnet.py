"""Random small IRs (fully connected and convolutional) with golden vectors, for the
generator, the cycle model and the network benches (uniquely named: ``tests/`` and
``sim/`` both import it).

A network is a list of layer specs: ``("fc", N)`` or ``("conv", CO, K, pad, Kp)``
(``flatten`` is inserted before the first ``fc`` after a conv layer). Weights are random
int4 (a share of zeros); each layer's θ is calibrated on the golden model so that it
fires, but not everywhere: per channel, a quantile of its membranes with the later
layers silent. Leak, reset and bias vary with the seed.
"""

from __future__ import annotations

import dataclasses
import math
import random
from pathlib import Path

import numpy as np
import torch

from qsnn.export import golden, serialize
from qsnn.export.ir import LIF, Conv2d, Flatten, Graph, InputEncoder, Linear, Readout, SumPool
from qsnn.export.runner import assign_widths

PIXEL_MAX = {"direct": 255, "rate": 255, "events": 1}


def _nodes(spec: list[tuple], shape: tuple[int, ...], rng: np.random.Generator,
           wb: int) -> list:
    nodes: list = []
    top = (1 << (wb - 1)) - 1
    for i, layer in enumerate(spec):
        if layer[0] == "conv":
            _, co, k, pad, kp = layer
            w = rng.integers(-top, top + 1, (co, shape[0], k, k)) * (rng.random(
                (co, shape[0], k, k)) < 0.7)
            nodes.append(Conv2d(f"conv{i}", shape[0], co, k, pad, wb, w.astype(np.int8)))
            shape = nodes[-1].out_shape(shape)
            if kp > 1:
                nodes.append(SumPool(f"pool{i}", kp))
                shape = nodes[-1].out_shape(shape)
        else:
            if len(shape) == 3:
                nodes.append(Flatten(f"flatten{i}"))
                shape = (math.prod(shape),)
            w = rng.integers(-top, top + 1, (layer[1], shape[0])) * (rng.random(
                (layer[1], shape[0])) < 0.7)
            nodes.append(Linear(f"fc{i}", shape[0], layer[1], wb, w.astype(np.int8)))
            shape = (layer[1],)
        leak, param = ("shift", int(rng.integers(2, 6))) if rng.random() < 0.5 else (
            "mult", int(rng.integers(200, 256)))
        reset = ("subtract", "zero", "none")[int(rng.integers(0, 3))] if i else "subtract"
        bias = rng.integers(-3, 4, shape[0]).astype(np.int32) if rng.random() < 0.6 else None
        nodes.append(LIF(f"lif{i}", shape, leak, param, 8, reset, 32,
                         np.full(shape[0], 1 << 20, np.int32), bias))
    return [*nodes, Readout("readout", shape[0])]


def inputs(encoding: str, shape: tuple[int, ...], steps: int, n: int,
           rng: np.random.Generator) -> np.ndarray:
    """Random images (a third of the pixels zero) or event frames (~15 % ones), uint8."""
    if encoding == "events":
        return (rng.random((n, steps, *shape)) < 0.15).astype(np.uint8)
    x = rng.integers(1, PIXEL_MAX[encoding] + 1, (n, *shape)) * (rng.random((n, *shape)) < 0.66)
    return x.astype(np.uint8)


def _calibrate(graph: Graph, x: torch.Tensor, quantile: float) -> Graph:
    """θ of each LIF in turn: the ``quantile`` of its channel's positive membranes."""
    nodes = list(graph.nodes)
    for li, idx in enumerate([i for i, n in enumerate(nodes) if isinstance(n, LIF)]):
        g = graph.replace(nodes=tuple(nodes))
        mem = golden.run(g, x, record=True).membranes[li]   # [T, B, C, ...]
        per = mem.transpose(0, 2).reshape(mem.shape[2], -1).numpy().astype(np.float64)
        theta = np.array([max(1.0, np.quantile(np.maximum(row, 0), quantile)) for row in per])
        nodes[idx] = dataclasses.replace(nodes[idx], theta=theta.astype(np.int32))
    return graph.replace(nodes=tuple(nodes))


def make(build: Path, spec: list[tuple], encoding: str = "direct",
         shape: tuple[int, ...] = (1, 8, 8), steps: int = 6, images: int = 24, seed: int = 0,
         quantile: float = 0.85, wb: int = 4, name: str = "randnet") -> Graph:
    """A random IR in ``build`` (model.json, weights.npz, golden/vectors.npz)."""
    rng = np.random.default_rng(seed)
    enc = InputEncoder("input", encoding, shape, PIXEL_MAX[encoding],
                       0xACE1 + seed if encoding == "rate" else 0)
    x = inputs(encoding, shape, steps, images, rng)
    graph = Graph(name, steps, enc, tuple(_nodes(spec, shape, rng, wb)), {"dataset": "random"})
    graph = _calibrate(graph, torch.from_numpy(x), quantile)
    graph = assign_widths(graph.input, list(graph.nodes), name, steps, None, graph.metadata)
    serialize.save(graph, build)
    res = golden.run(graph, torch.from_numpy(x))
    (build / "golden").mkdir(exist_ok=True)
    np.savez(build / "golden" / "vectors.npz", inputs=x,
             labels=rng.integers(0, graph.classes, images),
             counts=res.counts.numpy().astype(np.int32),
             predictions=res.predictions.numpy().astype(np.int32))
    return graph


def random_spec(r: random.Random) -> dict:
    """A random network for :func:`make` (keys spec, encoding, shape, steps) and the
    generator (lanes, pool): 0-2 conv layers (kernel 1-3, any padding, pool 2 where it
    divides the map, fused or not), 1-2 fully connected layers, any encoder, lanes 1-5."""
    enc = r.choice(["direct", "rate", "events"])
    c, h, w = r.randint(1, 2), r.randint(4, 7), r.randint(4, 7)
    spec, shape = [], (c, h, w)
    for _ in range(r.choice([0, 1, 1, 2])):
        k = r.randint(1, 3)
        pad = r.randint(0, k - 1)
        hc, wc = shape[1] + 2 * pad - k + 1, shape[2] + 2 * pad - k + 1
        kp = 2 if hc % 2 == 0 and wc % 2 == 0 and r.random() < 0.7 else 1
        co = r.randint(2, 6)
        spec.append(("conv", co, k, pad, kp))
        shape = (co, hc // kp, wc // kp)
    spec += [("fc", r.randint(3, 9)) for _ in range(r.randint(0, 1))] + [("fc", r.randint(2, 5))]
    convs = sum(1 for s in spec if s[0] == "conv")
    return dict(spec=spec, encoding=enc, shape=(c, h, w), steps=r.randint(2, 4),
                lanes=[r.randint(1, 5) for _ in spec],
                pool=[r.choice(["fused", "map"]) for _ in range(convs)] or "auto")
