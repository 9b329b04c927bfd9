"""Keyword-only IR builders for the tests (``tests/``, ``sim/``) and benches.

A network is a list of layer specs, :class:`Fc` (Linear -> LIF) and :class:`Conv`
(Conv2d -> SumPool -> LIF); :func:`network` turns them into a :class:`~qsnn.export.ir.Graph`
with the node names the exporter uses (``conv{i}``, ``pool{i}``, ``flatten{i}``, ``fc{i}``,
``lif{i}``, ``readout``; ``flatten{i}`` goes before the first fully connected layer that
follows an image-shaped input). Each LIF follows the IR's update (docs/spec.md):

    U[t] = leak(U[t-1]) + I[t] + b,   S[t] = U[t] >= theta,   then reset (subtract / zero / none)
    leak: U - (U >>> k) (``Leak.SHIFT``, k = leak_param) or (m U) >>> F (``Leak.MULT``).

:func:`random_net` (with :func:`random_spec` drawing its arguments) writes a random,
calibrated IR with golden vectors, for the generator, the cycle model and the benches.
The builders do not validate: tests of the validator build bad graphs with them.
"""

from __future__ import annotations

import dataclasses
import math
import random
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from qsnn.export import golden, serialize
from qsnn.export.ir import (
    LIF,
    Conv2d,
    Encoding,
    Flatten,
    Graph,
    InputEncoder,
    Leak,
    Linear,
    Readout,
    Reset,
    SumPool,
    conv_out_size,
    pool_out_size,
)
from qsnn.export.runner import assign_widths

PIXEL_MAX = {Encoding.DIRECT: 255, Encoding.RATE: 255, Encoding.EVENTS: 1}


@dataclass(frozen=True, kw_only=True)
class Fc:
    """A fully connected layer: ``weight`` [out, in] (``weight_bits``: the network's
    when None), then LIF neurons (θ and bias are a scalar for all neurons or one value
    per neuron). Defaults: no leak (m = 2^F), subtractive reset, 32-bit membranes."""

    weight: Any
    weight_bits: int | None = None
    theta: Any
    bias: Any = None
    leak: Leak | str = Leak.MULT
    leak_param: int = 256
    frac_bits: int = 8
    reset: Reset | str = Reset.SUBTRACT
    membrane_bits: int = 32


@dataclass(frozen=True, kw_only=True)
class Conv(Fc):
    """A stride-1 convolution: ``weight`` [out, in, k, k], zero ``padding``, then
    ``pool`` x ``pool`` sum pooling (none when 1), then LIF neurons per channel."""

    padding: int = 0
    pool: int = 1


def lif(*, name: str, shape: Sequence[int], theta: Any, bias: Any = None,
        leak: Leak | str = Leak.MULT, leak_param: int = 256, frac_bits: int = 8,
        reset: Reset | str = Reset.SUBTRACT, membrane_bits: int = 32) -> LIF:
    """One LIF node; θ and bias broadcast to one value per channel (``shape[0]``)."""
    n = (int(shape[0]),)
    th = np.broadcast_to(np.asarray(theta, dtype=_int_dtype(theta)), n).copy()
    b = None if bias is None else np.broadcast_to(
        np.asarray(bias, dtype=_int_dtype(bias)), n).copy()
    return LIF(name, tuple(int(s) for s in shape), Leak(leak).value, int(leak_param),
               int(frac_bits), Reset(reset).value, int(membrane_bits), th, b)


def _int_dtype(values: Any) -> np.dtype:
    """An array keeps its integer dtype; Python numbers become int64."""
    return values.dtype if isinstance(values, (np.ndarray, np.generic)) else np.dtype(np.int64)


def _neurons(layer: Fc, name: str, shape: tuple[int, ...]) -> LIF:
    return lif(name=name, shape=shape, theta=layer.theta, bias=layer.bias, leak=layer.leak,
               leak_param=layer.leak_param, frac_bits=layer.frac_bits, reset=layer.reset,
               membrane_bits=layer.membrane_bits)


def layer_nodes(layers: Sequence[Fc], shape: tuple[int, ...], weight_bits: int) -> list:
    """The nodes of ``layers`` on an input of ``shape`` (C, H, W), ending in a Readout."""
    nodes: list = []
    for i, layer in enumerate(layers):
        w = np.asarray(layer.weight)
        wb = layer.weight_bits or weight_bits
        if isinstance(layer, Conv):
            nodes.append(Conv2d(f"conv{i}", int(w.shape[1]), int(w.shape[0]), int(w.shape[2]),
                                layer.padding, wb, w))
            shape = nodes[-1].out_shape(shape)
            if layer.pool > 1:
                nodes.append(SumPool(f"pool{i}", layer.pool))
                shape = nodes[-1].out_shape(shape)
        else:
            if len(shape) == 3:
                nodes.append(Flatten(f"flatten{i}"))
                shape = (math.prod(shape),)
            nodes.append(Linear(f"fc{i}", int(w.shape[1]), int(w.shape[0]), wb, w))
            shape = (int(w.shape[0]),)
        nodes.append(_neurons(layer, f"lif{i}", shape))
    return [*nodes, Readout("readout", shape[0])]


def network(*, layers: Sequence[Fc], shape: Sequence[int] | None = None,
            encoding: Encoding | str = Encoding.DIRECT, pixel_max: int = 255,
            lfsr_seed: int | None = None, steps: int = 4, weight_bits: int = 4,
            name: str = "t", metadata: dict[str, Any] | None = None) -> Graph:
    """Input -> ``layers`` -> Readout. ``shape`` defaults to (1, 1, in) of the first
    layer; ``lfsr_seed`` to 0xACE1 for rate encoding, else 0. Not validated."""
    shape = tuple(shape) if shape else (1, 1, int(np.asarray(layers[0].weight).shape[1]))
    enc = Encoding(encoding)
    seed = lfsr_seed if lfsr_seed is not None else (0xACE1 if enc is Encoding.RATE else 0)
    nodes = layer_nodes(layers, shape, weight_bits)
    return Graph(name, steps, InputEncoder("input", enc.value, shape, pixel_max, seed),
                 tuple(nodes), dict(metadata or {}))


def int_weights(rng: np.random.Generator, shape: Sequence[int], bits: int = 4,
                density: float = 1.0) -> np.ndarray:
    """Random signed ``bits``-bit weights (symmetric range), int8; with ``density`` < 1 a
    share of them zero (drawn after the values)."""
    top = (1 << (bits - 1)) - 1
    w = rng.integers(-top, top + 1, tuple(shape))
    if density < 1:
        w = w * (rng.random(tuple(shape)) < density)
    return w.astype(np.int8)



def small_mlp(*, encoding: Encoding | str = Encoding.DIRECT, pixel_max: int = 16) -> Graph:
    """The generator tests' 12 -> 10 -> 3 network on (1, 3, 4) images, 6 steps, random
    int4 weights (seed 0): a multiplicative leak with random θ and bias, then a shift
    leak with reset to zero."""
    rng = np.random.default_rng(0)
    w0 = int_weights(rng, (10, 12))
    th0, b0 = (rng.integers(lo, hi, 10).astype(np.int32) for lo, hi in ((20, 60), (-5, 5)))
    layers = [
        Fc(weight=w0, theta=th0, bias=b0, leak=Leak.MULT, leak_param=230, membrane_bits=16),
        Fc(weight=int_weights(rng, (3, 10)), theta=np.int32(5), leak=Leak.SHIFT, leak_param=3,
           reset=Reset.ZERO, membrane_bits=12),
    ]
    return network(layers=layers, shape=(1, 3, 4), encoding=encoding, pixel_max=pixel_max,
                   steps=6, metadata={"dataset": "digits"})


def seed_conv_ir(*, steps: int) -> Graph:
    """The seed's FashionMNIST network (16C5-AP2-LIF-64C5-AP2-LIF-FC10) on (1, 28, 28),
    random int4 weights (seed 0), no leak, θ 3000 / 200 / 100."""
    r = np.random.default_rng(0)
    w1, w2 = r.integers(-7, 8, (16, 1, 5, 5)), r.integers(-7, 8, (64, 16, 5, 5))
    layers = [Conv(weight=w1, pool=2, theta=3000, membrane_bits=24),
              Conv(weight=w2, pool=2, theta=200, membrane_bits=20),
              Fc(weight=r.integers(-7, 8, (10, 1024)), theta=100, membrane_bits=20)]
    return network(layers=layers, shape=(1, 28, 28), lfsr_seed=1, steps=steps, name="s")


def pixels(*, images: int, shape: Sequence[int], high: int = 17, seed: int = 0) -> torch.Tensor:
    """``images`` random images of ``shape``, values 0..high-1 (torch generator ``seed``)."""
    return torch.randint(0, high, (images, *shape), generator=torch.Generator().manual_seed(seed))


def save_ir(graph: Graph, folder: Path, *, inputs: torch.Tensor | None = None,
            labels: np.ndarray | None = None) -> Graph:
    """``graph`` with minimal membrane widths in ``folder``; returns the saved graph.
    With ``inputs``, golden/vectors.npz too: the inputs alone (what the generator
    reads), or with ``labels`` the golden counts and predictions as well, as
    ``qsnn export`` writes them."""
    g = assign_widths(graph.input, list(graph.nodes), graph.name, graph.time_steps, None,
                      graph.metadata)
    serialize.save(g, folder)
    if inputs is None:
        return g
    vectors = {"inputs": inputs.numpy().astype(np.uint8)}
    if labels is not None:
        res = golden.run(g, inputs)
        vectors.update(labels=labels, counts=res.counts.numpy().astype(np.int32),
                       predictions=res.predictions.numpy().astype(np.int32))
    (folder / "golden").mkdir(exist_ok=True)
    np.savez(folder / "golden" / "vectors.npz", **vectors)
    return g

# -- random calibrated networks -----------------------------------------------------------
def small_ir(folder: Path) -> Path:
    """:func:`small_mlp` saved in ``folder`` with 5 golden input images: an exported IR
    for the output-folder and fault tests."""
    save_ir(small_mlp(), folder, inputs=pixels(images=5, shape=(1, 3, 4)))
    return folder


def _random_layers(spec: Sequence[tuple], shape: tuple[int, ...], rng: np.random.Generator,
                   wb: int) -> list[Fc]:
    """Layer specs of ``spec`` (``("fc", N)`` / ``("conv", CO, K, pad, Kp)``) on ``shape``:
    int``wb`` weights (30 % zeros), leak, reset (the first layer subtracts) and bias drawn
    from ``rng`` in that order, layer by layer."""
    layers: list[Fc] = []
    for i, s in enumerate(spec):
        if s[0] == "conv":
            _, co, k, pad, kp = s
            w = int_weights(rng, (co, shape[0], k, k), wb, density=0.7)
            shape = (co, *(pool_out_size(conv_out_size(d, k, pad), kp) for d in shape[1:]))
        else:
            w = int_weights(rng, (s[1], math.prod(shape)), wb, density=0.7)
            shape = (s[1],)
        leak, param = (Leak.SHIFT, int(rng.integers(2, 6))) if rng.random() < 0.5 else (
            Leak.MULT, int(rng.integers(200, 256)))
        reset = Reset.from_code(int(rng.integers(0, 3))) if i else Reset.SUBTRACT
        bias = rng.integers(-3, 4, shape[0]).astype(np.int32) if rng.random() < 0.6 else None
        kw = dict(weight=w, theta=np.int32(1 << 20), bias=bias, leak=leak, leak_param=param,
                  frac_bits=8, reset=reset, membrane_bits=32)
        layers.append(Conv(padding=pad, pool=kp, **kw) if s[0] == "conv" else Fc(**kw))
    return layers


def random_inputs(encoding: Encoding | str, shape: Sequence[int], steps: int, n: int,
                  rng: np.random.Generator) -> np.ndarray:
    """Random images (a third of the pixels zero) or event frames (~15 % ones), uint8."""
    if Encoding(encoding) is Encoding.EVENTS:
        return (rng.random((n, steps, *shape)) < 0.15).astype(np.uint8)
    x = rng.integers(1, PIXEL_MAX[Encoding(encoding)] + 1, (n, *shape)) * (
        rng.random((n, *shape)) < 0.66)
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


def random_net(build: Path, *, spec: Sequence[tuple], encoding: Encoding | str = Encoding.DIRECT,
               shape: tuple[int, ...] = (1, 8, 8), steps: int = 6, images: int = 24,
               seed: int = 0, quantile: float = 0.85, wb: int = 4,
               name: str = "randnet") -> Graph:
    """A random IR in ``build`` (as :func:`save_ir`, random labels): weights,
    leak, reset and bias drawn from ``seed``; each layer's θ calibrated on the golden
    model so that it fires, but not everywhere (per channel, the ``quantile`` of its
    membranes with the later layers silent)."""
    rng = np.random.default_rng(seed)
    enc = Encoding(encoding)
    x = random_inputs(enc, shape, steps, images, rng)
    layers = _random_layers(spec, shape, rng, wb)
    graph = network(layers=layers, shape=shape, encoding=enc, pixel_max=PIXEL_MAX[enc],
                    lfsr_seed=0xACE1 + seed if enc is Encoding.RATE else 0, steps=steps,
                    weight_bits=wb, name=name, metadata={"dataset": "random"})
    graph = _calibrate(graph, torch.from_numpy(x), quantile)
    labels = rng.integers(0, graph.classes, images)
    return save_ir(graph, build, inputs=torch.from_numpy(x), labels=labels)


def random_spec(r: random.Random) -> dict:
    """A random network for :func:`random_net` (keys spec, encoding, shape, steps) and the
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
