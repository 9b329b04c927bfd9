"""The integer golden model (export/golden.py) is the arithmetic contract of docs/spec.md §1.

Hand-computed traces for every rule on tiny graphs, then hypothesis property tests of random
small graphs against a slow scalar implementation built from ``tests/reference.py`` (and an
independent scalar LFSR), spikes, membranes and counts equal exactly.
"""

from __future__ import annotations

import dataclasses
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from reference import conv2d_int, leak_int, lif_reference, sum_pool

from qsnn.export import golden
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
)
from qsnn.export.validate import validate
from qsnn.export.widths import analyze
from qsnn.testing import Conv, Fc, lif, network, seed_conv_ir

BIG = 10**6  # a threshold no test membrane reaches
BETA1 = {"leak": "mult", "leak_param": 256, "frac_bits": 8}  # m = 2^F: no leak
NOLEAK_NOMEM = {"leak": "mult", "leak_param": 0, "frac_bits": 8, "reset": "none",
                "theta": BIG}  # U = I


# -- tiny graph builders ------------------------------------------------------------------
def mlp(weight, theta=BIG, *, encoding: str = "direct", pixel_max: int = 255,
        shape: tuple[int, ...] | None = None, steps: int = 4, seed: int = 0xACE1,
        **lif_kw) -> Graph:
    """Input -> Flatten -> Linear(weight, 8 bits) -> LIF -> Readout, not validated."""
    layer = Fc(weight=np.asarray(weight, dtype=np.int64), theta=theta, **lif_kw)
    return network(layers=[layer], shape=shape, encoding=encoding, pixel_max=pixel_max,
                   lfsr_seed=seed, steps=steps, weight_bits=8)


def trace(graph: Graph, x, neuron: int = 0) -> tuple[list[int], list[int]]:
    """(spikes, membranes) over time of one neuron of the first LIF, image 0."""
    res = golden.run(graph, torch.as_tensor(np.asarray(x, dtype=np.int64)), record=True)
    return (res.spikes[0][:, 0, neuron].tolist(), res.membranes[0][:, 0, neuron].tolist())


def one(w: int, pixel: int, theta: int, steps: int, **kw) -> tuple[list[int], list[int]]:
    """One neuron, weight ``w``, one direct-encoded pixel."""
    return trace(mlp([[w]], theta, steps=steps, **kw), [[[[pixel]]]])


# -- the arithmetic shift the golden model relies on ----------------------------------------
def test_torch_right_shift_on_negative_int64_is_floor() -> None:
    v = torch.tensor([-5, -4, -1, 0, 1, 5, -(2**40) - 3], dtype=torch.int64)
    assert (v >> 1).tolist() == [-3, -2, -1, 0, 0, 2, -(2**39) - 2]
    rng = np.random.default_rng(0)
    vals = rng.integers(-(2**52), 2**52, 500).tolist() + [-1, -2, -3, -(2**62)]
    t = torch.tensor(vals, dtype=torch.int64)
    for k in range(0, 41):
        assert (t >> k).tolist() == [a >> k for a in vals]  # Python >> is floor division
        assert (t >> torch.full_like(t, k)).tolist() == [a >> k for a in vals]


def test_leak_floors_negative_membranes() -> None:
    u = torch.tensor([-5, -1, 5, 0], dtype=torch.int64)
    mult = lif(name="l", shape=(1,), theta=1, leak="mult", leak_param=128, frac_bits=8)
    shift = lif(name="l", shape=(1,), theta=1, leak="shift", leak_param=1)
    assert golden.leak(u, mult).tolist() == [-3, -1, 2, 0]  # floor(-2.5) = -3
    assert golden.leak(u, shift).tolist() == [-2, 0, 3, 0]  # -5 - floor(-5/2) = -5 + 3


# -- hand-computed traces, one per rule ------------------------------------------------------
def test_membrane_equal_to_theta_does_not_spike() -> None:
    # beta = 1, I = 3, theta = 3: U = 3 (== theta: no spike), 6 (spike), 6 + 3 - 3 = 6
    assert one(1, 3, 3, 3, **BETA1) == ([0, 1, 1], [3, 6, 6])


def test_reset_uses_the_previous_membrane() -> None:
    # beta = 0.5 (m = 128), I = 5, theta = 4, subtract. The spike at t is subtracted at t + 1:
    # t0: 0 + 5 = 5 (spike, no subtraction yet); t1: floor(5/2) + 5 - 4 = 3;
    # t2: 1 + 5 = 6 (spike); t3: 3 + 5 - 4 = 4 (== theta); t4: 2 + 5 = 7
    spikes, mems = one(1, 5, 4, 5, leak="mult", leak_param=128, frac_bits=8)
    assert mems == [5, 3, 6, 4, 7]
    assert spikes == [1, 0, 1, 0, 1]


@pytest.mark.parametrize("form,param,expected", [
    # mult m=128, F=8: leak(-5) = floor(-640/256) = -3 (truncation would give -2)
    ("mult", 128, [-5, -8, -9, -10]),
    # shift k=1: leak(-5) = -5 - floor(-5/2) = -2; leak(-7) = -3; leak(-8) = -4
    ("shift", 1, [-5, -7, -8, -9]),
])
def test_negative_membranes_are_floored(form: str, param: int, expected: list[int]) -> None:
    spikes, mems = one(-5, 1, 1, 4, leak=form, leak_param=param, frac_bits=8)
    assert mems == expected
    assert spikes == [0, 0, 0, 0]


def test_shift_leak_positive_hand_trace() -> None:
    # shift k=2: leak(U) = U - floor(U/4); I = 8, theta = BIG: 8, 8-2+8 = 14, 14-3+8 = 19
    assert one(1, 8, BIG, 3, leak="shift", leak_param=2)[1] == [8, 14, 19]


def test_saturation_at_both_ends() -> None:
    # 4-bit membrane: [-8, 7]. validate() rejects these graphs (they can overflow), so the
    # golden model is run without validating.
    assert one(7, 1, 7, 3, membrane_bits=4, **BETA1) == ([0, 0, 0], [7, 7, 7])  # 14 -> 7
    assert one(-7, 1, 7, 3, membrane_bits=4, **BETA1) == ([0, 0, 0], [-7, -8, -8])  # -14 -> -8
    # saturation applies after the subtraction: sat(7 + 7 - 3) = 7 (not sat(14) - 3 = 4)
    assert one(7, 1, 3, 3, membrane_bits=4, **BETA1) == ([1, 1, 1], [7, 7, 7])
    # negative saturation with a leak: sat(floor(-8 * 0.5) - 7) = sat(-11) = -8
    assert one(-7, 1, 7, 3, membrane_bits=4, leak="mult", leak_param=128,
               frac_bits=8)[1] == [-7, -8, -8]


def test_saturation_via_lif_run() -> None:
    node = lif(name="l", shape=(2,), theta=5, membrane_bits=5, **BETA1)  # [-16, 15]
    cur = torch.tensor([[9, -6]], dtype=torch.int64)
    spk, mem = golden.lif_run(node, cur, 4, True, True)
    # neuron 0: 9 (s), 9+9-5 = 13 (s), 13+9-5 = 17 -> 15 (s), 15+9-5 = 19 -> 15
    # neuron 1: -6, -12, -18 -> -16, -16-6 = -22 -> -16
    assert mem[:, 0].tolist() == [[9, -6], [13, -12], [15, -16], [15, -16]]
    assert spk[:, 0].tolist() == [[1, 0], [1, 0], [1, 0], [1, 0]]
    spk2, mem2 = golden.lif_run(node, cur.expand(4, 1, 2).clone(), 4, False, False)
    assert mem2 is None and torch.equal(spk2, spk)


def test_zero_reset() -> None:
    # beta = 1, I = 3, theta = 4: 3, 6 (s), reset to 0 then + 3 = 3, 6 (s)
    assert one(1, 3, 4, 4, reset="zero", **BETA1) == ([0, 1, 0, 1], [3, 6, 3, 6])
    # with a leak, the zeroed membrane is not leaked from U: m=128, I = 5, theta = 4
    # 5 (s), 0 + 5 = 5 (s), ...
    assert one(1, 5, 4, 3, reset="zero", leak="mult", leak_param=128, frac_bits=8)[1] == [5, 5, 5]


def test_subtract_reset_differs_from_zero() -> None:
    assert one(1, 3, 4, 4, reset="subtract", **BETA1) == ([0, 1, 1, 0], [3, 6, 5, 4])


def test_no_reset() -> None:
    assert one(1, 3, 4, 4, reset="none", **BETA1) == ([0, 1, 1, 1], [3, 6, 9, 12])


def test_bias() -> None:
    # I = 1 * 2 - 1 = 1, theta = 2, beta = 1: 1, 2 (== theta), 3 (s), 3 + 1 - 2 = 2, 3 (s)
    assert one(1, 2, 2, 5, bias=-1, **BETA1) == ([0, 0, 1, 0, 1], [1, 2, 3, 2, 3])
    # bias alone drives the neuron (zero weight); it is added every step
    assert one(0, 9, 5, 3, bias=3, reset="none", **BETA1)[1] == [3, 6, 9]


def test_direct_encoding_same_current_every_step() -> None:
    g = mlp([[2, -1, 3], [0, 1, 0]], steps=5, shape=(1, 1, 3), **NOLEAK_NOMEM)
    res = golden.run(g, torch.tensor([[[[3, 4, 1]]], [[[0, 7, 2]]]]), record=True)
    mem = res.membranes[0]
    assert mem[:, 0].tolist() == [[5, 4]] * 5  # 6 - 4 + 3, 4
    assert mem[:, 1].tolist() == [[-1, 7]] * 5
    # no leak, no reset: the constant current accumulates
    g = mlp([[2, -1, 3]], steps=3, reset="none", **BETA1)
    assert trace(g, [[[[3, 4, 1]]]])[1] == [5, 10, 15]


def _lfsr_low_bytes(seed: int, count: int) -> list[int]:
    """Independent scalar Galois LFSR (taps 0x80200003), low byte after each step."""
    s, out = seed, []
    for _ in range(count):
        s = (s >> 1) ^ 0x80200003 if s & 1 else s >> 1
        out.append(s & 0xFF)
    return out


def test_rate_encoding_hand_values() -> None:
    # seed 0xACE1: first states 0x80205673, 0xC0302B3A, 0x6018159D -> low bytes 115, 58, 157
    assert _lfsr_low_bytes(0xACE1, 3) == [115, 58, 157]
    g = mlp(np.eye(3, dtype=np.int64), encoding="rate", pixel_max=16, steps=1,
            **NOLEAK_NOMEM)
    # p = 8 of 16 fires iff r * 16 < 8 * 256, i.e. r < 128: 115 yes, 58 yes, 157 no
    res = golden.run(g, torch.tensor([[[[8, 8, 8]]]]), record=True)
    assert res.membranes[0][0, 0].tolist() == [1, 1, 0]


def test_rate_encoding_matches_lfsr_table() -> None:
    from qsnn.lfsr import rate_table

    pixels = np.array([0, 1, 5, 8, 15, 16, 3, 16], dtype=np.int64)
    steps, pmax, seed = 40, 16, 0x1234567
    g = mlp(np.eye(8, dtype=np.int64), encoding="rate", pixel_max=pmax, steps=steps,
            seed=seed, shape=(2, 2, 2), **NOLEAK_NOMEM)
    img = pixels.reshape(2, 2, 2)
    res = golden.run(g, torch.as_tensor(np.stack([img, img[::-1].copy(), img])), record=True)
    got = res.membranes[0].numpy()  # [T, B, 8] = x[t] (identity weights, U = I)
    r = np.array(_lfsr_low_bytes(seed, steps * 8)).reshape(steps, 8)
    assert np.array_equal(r, rate_table(seed, steps, 8).numpy())
    want = (r * pmax < pixels * 256).astype(np.int64)
    assert np.array_equal(got[:, 0], want)
    assert np.array_equal(got[:, 2], want)  # re-seeded for every image of the batch
    assert np.array_equal(got[:, 1], (r * pmax < img[::-1].reshape(-1) * 256))
    assert (got[:, 0, [5, 7]] == 1).all() and (got[:, 0, 0] == 0).all()  # max / zero pixels
    # the hardware-level view: spikes of the golden encoder itself
    enc, static = golden.encode(g, torch.as_tensor(img[None]))
    assert not static and np.array_equal(enc.numpy().reshape(steps, 8), want)


def test_events_frames_pass_through() -> None:
    rng = np.random.default_rng(3)
    steps = 5
    frames = rng.integers(0, 2, (2, steps, 1, 2, 3))
    g = mlp(np.eye(6, dtype=np.int64), encoding="events", pixel_max=1, steps=steps,
            shape=(1, 2, 3), **NOLEAK_NOMEM)
    res = golden.run(g, torch.as_tensor(frames), record=True)
    mem = res.membranes[0].numpy()
    for b in range(2):
        for t in range(steps):
            assert mem[t, b].tolist() == frames[b, t].reshape(-1).tolist()


def _conv_graph(w, pad: int, pool: int, shape, encoding: str = "direct", steps: int = 3,
                bias=None) -> Graph:
    """conv(w, pad) -> pool -> LIF with U = I (bias) -> Flatten -> fc of ones -> LIF."""
    oc, _, k, _ = w.shape
    n = oc * ((shape[1] + 2 * pad - k + 1) // pool) * ((shape[2] + 2 * pad - k + 1) // pool)
    layers = [Conv(weight=w, padding=pad, pool=pool, theta=BIG, bias=bias, leak_param=0,
                   reset="none"),
              Fc(weight=np.ones((2, n), np.int64), theta=1)]
    return network(layers=layers, shape=tuple(shape), encoding=encoding, lfsr_seed=1,
                   steps=steps, weight_bits=8, name="c")


@pytest.mark.parametrize("k,pad,pool", [(3, 1, 2), (3, 0, 2), (2, 1, 1), (1, 0, 3), (3, 2, 1)])
def test_conv2d_padding_and_sum_pool_match_reference(k: int, pad: int, pool: int) -> None:
    rng = np.random.default_rng(k * 10 + pad + pool)
    hw = pool * 3 - 2 * pad + k - 1
    shape = (2, hw, hw)
    w = rng.integers(-127, 128, (3, 2, k, k))
    bias = rng.integers(-50, 50, 3)
    x = rng.integers(0, 256, (2, *shape))
    res = golden.run(_conv_graph(w, pad, pool, shape, bias=bias), torch.as_tensor(x),
                     record=True)
    for b in range(2):
        want = sum_pool(conv2d_int(x[b], w, pad), pool) + bias[:, None, None]
        for t in range(3):
            assert np.array_equal(res.membranes[0][t, b].numpy(), want)
    # events: one current per frame
    ev = rng.integers(0, 2, (2, 3, *shape))
    res = golden.run(_conv_graph(w, pad, pool, shape, "events"), torch.as_tensor(ev),
                     record=True)
    for b in range(2):
        for t in range(3):
            want = sum_pool(conv2d_int(ev[b, t], w, pad), pool)
            assert np.array_equal(res.membranes[0][t, b].numpy(), want)


def test_sum_pool_hand_case() -> None:
    x = torch.arange(16, dtype=torch.int64).reshape(1, 1, 4, 4)
    assert golden.sum_pool(x, 2).tolist() == [[[[0 + 1 + 4 + 5, 2 + 3 + 6 + 7],
                                                [8 + 9 + 12 + 13, 10 + 11 + 14 + 15]]]]


def test_flatten_order_is_c_h_w_row_major() -> None:
    x = np.array([[[100 * c + 10 * h + w for w in range(3)] for h in range(2)]
                  for c in range(2)])
    g = mlp(np.eye(12, dtype=np.int64), shape=(2, 2, 3), steps=1, **NOLEAK_NOMEM)
    res = golden.run(g, torch.as_tensor(x[None]), record=True)
    want = [0, 1, 2, 10, 11, 12, 100, 101, 102, 110, 111, 112]
    assert res.membranes[0][0, 0].tolist() == want


def test_flatten_after_a_conv_lif_is_c_h_w_row_major() -> None:
    # conv 1x1 with weight 2 * identity and theta = 1: spikes = event frame; then Flatten and
    # an identity Linear with U = I: membrane index c*H*W + h*W + w holds spike (c, h, w)
    c, h, w, steps = 2, 2, 3, 4
    n = c * h * w
    wc = (2 * np.eye(c, dtype=np.int64)).reshape(c, c, 1, 1)
    layers = [Conv(weight=wc, theta=1, reset="zero", leak_param=0, weight_bits=4),
              Fc(weight=np.eye(n, dtype=np.int64), theta=BIG, leak_param=0, reset="none",
                 weight_bits=2)]
    g = network(layers=layers, shape=(c, h, w), encoding="events", pixel_max=1, steps=steps,
                name="f")
    validate(g)
    ev = np.zeros((1, steps, c, h, w), dtype=np.int64)
    for t, (ci, hi, wi) in enumerate([(0, 0, 0), (0, 1, 2), (1, 0, 1), (1, 1, 2)]):
        ev[0, t, ci, hi, wi] = 1
    res = golden.run(g, torch.as_tensor(ev), record=True)
    hot = [int(np.flatnonzero(res.membranes[1][t, 0].numpy())[0]) for t in range(steps)]
    assert hot == [0, 5, 7, 11]
    assert res.membranes[1].sum().item() == steps


def test_readout_argmax_lowest_index_on_ties() -> None:
    # reset zero, beta = 1, theta = 2, I = w: counts by hand over T = 4
    # w=1: 1,2,3(s),1 -> 1;  w=3: 3(s),3(s),3(s),3(s) -> 4;  w=2: 2,4(s),2,4(s) -> 2
    g = mlp([[1], [3], [3], [2]], 2, steps=4, reset="zero", **BETA1)
    res = golden.run(g, torch.tensor([[[[1]]], [[[0]]]]))
    assert res.counts.tolist() == [[1, 4, 4, 2], [0, 0, 0, 0]]
    assert res.predictions.tolist() == [1, 0]  # tie 1/2 -> 1; all zero -> 0
    g = mlp([[2], [1], [2]], 2, steps=4, reset="zero", **BETA1)
    assert golden.run(g, torch.tensor([[[[1]]]])).predictions.tolist() == [0]


# -- property tests against a slow scalar implementation -----------------------------------
PROFILE = settings(max_examples=40, deadline=None, database=None)


def _set_bits(graph: Graph, extra: list[int]) -> Graph:
    """Each LIF's membrane_bits := the analysis' minimum + extra (at most 32). The scalar
    reference does not saturate, so this relies on the analysis being sound (test_widths)."""
    widths = {w.name: w.membrane_bits for w in analyze(graph)}
    nodes, i = [], 0
    for n in graph.nodes:
        if isinstance(n, LIF):
            bits = min(32, widths[n.name] + extra[i])
            i += 1
            n = dataclasses.replace(n, membrane_bits=bits)
        nodes.append(n)
    return graph.replace(nodes=tuple(nodes))


@st.composite
def graphs_and_inputs(draw):
    """A random small valid graph (membrane_bits just large enough) and an input batch."""
    enc = draw(st.sampled_from(Encoding.values()))
    side = st.sampled_from([2, 3, 4, 5, 6, 6])
    shape = (draw(st.integers(1, 2)), draw(side), draw(side))
    pmax = 1 if enc == "events" else draw(st.sampled_from([1, 3, 16, 255]))
    steps = draw(st.integers(1, 6))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    x_max = pmax if enc == "direct" else 1
    nblocks = draw(st.sampled_from([1, 2, 2, 2]))
    nodes: list = []
    cur = shape
    for b in range(nblocks):
        wb = draw(st.integers(2, 8))
        lim = 2 ** (wb - 1) - 1
        pool = 1
        if b < nblocks - 1 and len(cur) == 3 and draw(st.booleans()):
            want = draw(st.sampled_from([1, 2, 2, 3]))  # sum pool kernel, if one fits
            fits = [(k, p) for k in (1, 2, 3) for p in (0, 1) if k <= min(cur[1], cur[2]) + 2 * p
                    and (cur[1] + 2 * p - k + 1) % want == 0
                    and (cur[2] + 2 * p - k + 1) % want == 0]
            fits = fits or [(1, 0)]
            k, pad = draw(st.sampled_from(fits))
            oc = draw(st.integers(1, 3))
            w = rng.integers(-lim, lim + 1, (oc, cur[0], k, k))
            nodes.append(Conv2d(f"conv{b}", cur[0], oc, k, pad, wb, w))
            cur = (oc, cur[1] + 2 * pad - k + 1, cur[2] + 2 * pad - k + 1)
            if want > 1 and cur[1] % want == 0 and cur[2] % want == 0:
                pool = want
                nodes.append(SumPool(f"pool{b}", pool))
                cur = (oc, cur[1] // pool, cur[2] // pool)
        else:
            if len(cur) == 3:
                nodes.append(Flatten(f"flatten{b}"))
                cur = (int(np.prod(cur)),)
            out = draw(st.integers(1, 6))
            w = rng.integers(-lim, lim + 1, (out, cur[0]))
            nodes.append(Linear(f"fc{b}", cur[0], out, wb, w))
            cur = (out,)
        typical = x_max * pool * pool * np.abs(w).reshape(len(w), -1).sum(1).mean()
        scale = max(1, int(typical) // draw(st.sampled_from([1, 4, 16, 64])))
        theta = rng.integers(1, scale + 1, cur[0])
        bias = rng.integers(-scale, scale + 1, cur[0]) if draw(st.booleans()) else None
        form = draw(st.sampled_from(Leak.values()))
        frac = draw(st.sampled_from([1, 4, 8]))
        param = draw(st.integers(1, 6)) if form == "shift" else draw(st.integers(0, 2**frac))
        reset = draw(st.sampled_from(Reset.values()))
        nodes.append(LIF(f"lif{b}", cur, form, param, frac, reset, 32, theta, bias))
        x_max = 1
    nodes.append(Readout("readout", cur[0]))
    seed = draw(st.integers(1, 2**32 - 1))
    graph = Graph("h", steps, InputEncoder("input", enc, shape, pmax, seed), tuple(nodes))
    graph = _set_bits(graph, [draw(st.integers(0, 2)) for _ in range(nblocks)])
    validate(graph)
    batch = draw(st.integers(1, 3))
    kind = draw(st.sampled_from(["random"] * 4 + ["max", "zero"]))
    if enc == "events":
        x = rng.integers(0, 2, (batch, steps, *shape))
    else:
        x = rng.integers(0, pmax + 1, (batch, *shape))
    x = np.full_like(x, pmax) if kind == "max" else (np.zeros_like(x) if kind == "zero" else x)
    return graph, x


def scalar_reference(graph: Graph, x: np.ndarray):
    """Per image: per LIF (spikes [T][N], membranes [T][N]) and counts, all Python ints."""
    steps, inp = graph.time_steps, graph.input
    out = []
    for img in x:
        if inp.encoding == "direct":
            frames = [img] * steps
        elif inp.encoding == "rate":
            p = img.reshape(-1)
            r = np.array(_lfsr_low_bytes(inp.lfsr_seed, steps * p.size)).reshape(steps, -1)
            frames = [(r[t] * inp.pixel_max < p * 256).astype(np.int64).reshape(img.shape)
                      for t in range(steps)]
        else:
            frames = list(img)
        layers = []
        currents: list = []
        for node in graph.nodes:
            if isinstance(node, Flatten):
                frames = [f.reshape(-1) for f in frames]
            elif isinstance(node, Linear):
                currents = [node.weight.astype(np.int64) @ f for f in frames]
            elif isinstance(node, Conv2d):
                currents = [conv2d_int(f, node.weight, node.padding) for f in frames]
            elif isinstance(node, SumPool):
                currents = [sum_pool(c, node.kernel) for c in currents]
            elif isinstance(node, LIF):
                shape = currents[0].shape
                per = np.ones(shape, dtype=np.int64)
                ch = per * np.asarray(node.theta, np.int64).reshape(-1, *[1] * (len(shape) - 1))
                cur = [c.reshape(-1) for c in currents]
                if node.bias is not None:
                    b = (per * node.bias.astype(np.int64).reshape(-1, *[1] * (len(shape) - 1)))
                    cur = [c + b.reshape(-1) for c in cur]
                spikes, mems = lif_reference([c.tolist() for c in cur], ch.reshape(-1).tolist(),
                                             node.leak, node.leak_param, node.frac_bits,
                                             node.reset)
                layers.append((spikes, mems))
                frames = [np.array(s, dtype=np.int64).reshape(shape) for s in spikes]
        counts = np.array(layers[-1][0]).sum(0).tolist()
        out.append((layers, counts))
    return out


@PROFILE
@given(graphs_and_inputs())
def test_golden_equals_scalar_reference(case) -> None:
    graph, x = case
    res = golden.run(graph, torch.as_tensor(x), record=True)
    ref = scalar_reference(graph, x)
    lifs = graph.lifs()
    assert len(res.spikes) == len(res.membranes) == len(lifs)
    for b, (layers, counts) in enumerate(ref):
        for k, (spikes, mems) in enumerate(layers):
            assert res.spikes[k].dtype == torch.int8 and res.membranes[k].dtype == torch.int64
            assert tuple(res.membranes[k].shape[2:]) == tuple(lifs[k].shape)
            got_s = res.spikes[k][:, b].reshape(graph.time_steps, -1).tolist()
            got_m = res.membranes[k][:, b].reshape(graph.time_steps, -1).tolist()
            assert got_m == mems, f"membranes of {lifs[k].name}, image {b}"
            assert got_s == spikes, f"spikes of {lifs[k].name}, image {b}"
        assert res.counts[b].tolist() == counts
        assert res.predictions[b].item() == counts.index(max(counts))


def test_scalar_reference_leak_is_the_spec() -> None:
    """The reference's own leak agrees with the hand values used above."""
    assert leak_int(-5, "mult", 128, 8) == -3 and leak_int(-5, "shift", 1, 8) == -2


@settings(max_examples=15, deadline=None, database=None)
@given(graphs_and_inputs(), st.integers(1, 4), st.integers(0, 5))
def test_run_batched_equals_run(case, batch_size: int, extra: int) -> None:
    graph, x = case
    x = np.concatenate([x] + [x[:1]] * extra)
    full = golden.run(graph, torch.as_tensor(x))
    chunked = golden.run_batched(graph, torch.as_tensor(x), batch_size=batch_size)
    assert torch.equal(chunked.counts, full.counts)
    assert torch.equal(chunked.predictions, full.predictions)


# -- memory-bounded chunks ------------------------------------------------------------------
def test_auto_batch_fits_the_seed_conv_at_t100() -> None:
    """A fixed 2048-image chunk asked for 42 GB here (the im2col of the second conv)."""
    g = seed_conv_ir(steps=100)
    per = golden.bytes_per_image(g)
    assert golden.MAX_BATCH * per > 40e9
    assert 1 <= golden.auto_batch_size(g) < golden.MAX_BATCH
    assert golden.auto_batch_size(g) * per <= golden.BATCH_BYTES
    mlp_graph = mlp(np.ones((10, 784), np.int64), shape=(1, 28, 28), steps=25)
    assert golden.auto_batch_size(mlp_graph) == golden.MAX_BATCH


PEAK_SCRIPT = """
import torch
from qsnn.testing import seed_conv_ir
from qsnn.export import golden

def hwm():  # this process's peak RSS in bytes (ru_maxrss would include the parent's)
    line = [ln for ln in open("/proc/self/status") if ln.startswith("VmHWM:")][0]
    return int(line.split()[1]) * 1024

g = seed_conv_ir(steps=100)
golden.BATCH_BYTES = 128 << 20
x = torch.randint(0, 256, (24, 1, 28, 28), generator=torch.Generator().manual_seed(0))
base = hwm()
res = golden.run_batched(g, x)
grown = hwm() - base
assert torch.equal(res.counts[:2], golden.run(g, x[:2]).counts)
print(golden.auto_batch_size(g), golden.bytes_per_image(g), grown)
"""


def test_run_batched_peak_memory_follows_the_estimate() -> None:
    """Measured peak RSS of a chunked run stays near the budget the estimate sets, and the
    estimate is of the right size."""
    script = PEAK_SCRIPT
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                         env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert out.returncode == 0, out.stderr[-800:]
    chunk, per_image, grown = map(int, out.stdout.split())
    assert chunk == 4  # 4 x 30.7 MB within the 128 MB budget
    # measured 1.02-1.15x the estimate; unchunked, 24 images take ~700 MB
    assert 0.5 * chunk * per_image < grown < 2 * (128 << 20), (grown, chunk * per_image)


def test_lif_step_is_the_step_of_lif_run() -> None:
    """lif_run is lif_step applied T times; bench/golden_speed.py's step-by-step baseline
    (built on lif_step) equals the golden model with bias and zero reset too."""
    import importlib.util

    node = lif(name="l", shape=(3,), theta=[4, 4, 4], reset="zero", leak="shift", leak_param=1,
               bias=[1, -2, 0])
    cur = torch.tensor([[[5, 3, 9]], [[0, 7, -4]], [[6, 6, 6]]], dtype=torch.int64)
    spikes, mems = golden.lif_run(node, cur, 3, static=False, record=True)
    theta = torch.tensor([4, 4, 4])
    u = torch.zeros(1, 3, dtype=torch.int64)
    for t in range(3):
        s, u = golden.lif_step(node, u, cur[t], theta, torch.tensor([1, -2, 0]))
        assert torch.equal(s.to(torch.int8), spikes[t]) and torch.equal(u, mems[t])
    spec = importlib.util.spec_from_file_location(
        "golden_speed", Path(__file__).resolve().parents[1] / "bench/golden_speed.py")
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    g = mlp(np.array([[3, -2, 1], [1, 1, 1]]), [3, 2], steps=5, reset="zero", leak="shift",
            leak_param=1, bias=[2, -1], pixel_max=7)
    x = torch.randint(0, 8, (6, 1, 1, 3), generator=torch.Generator().manual_seed(1))
    assert torch.equal(bench.naive_counts(g, x), golden.run(g, x).counts)
