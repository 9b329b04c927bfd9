"""Worst-case width analysis (export/widths.py): hand cases, soundness against the golden
model on random and adversarial inputs, and tightness of the simplest case."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

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
from qsnn.export.widths import analyze, current_bounds, membrane_bounds, signed_bits


# -- hand cases -----------------------------------------------------------------------------
@pytest.mark.parametrize("lo,hi,bits", [
    (0, 0, 2), (-1, 0, 2), (-2, 1, 2), (0, 2, 3), (-3, 0, 3), (-4, 3, 3), (-5, 3, 4),
    (-4, 4, 4), (0, 7, 4), (0, 8, 5), (-128, 127, 8), (-129, 0, 9), (0, 128, 9),
    (-(2**31), 2**31 - 1, 32), (0, 2**31, 33), (-(2**31) - 1, 0, 33), (7, 7, 4), (-7, -7, 4),
])
def test_signed_bits(lo: int, hi: int, bits: int) -> None:
    assert signed_bits(lo, hi) == bits


def test_current_bounds_hand_case() -> None:
    w = np.array([[1, -2, 3], [-1, -1, 0], [0, 0, 0]])
    lo, hi = current_bounds(w, 16, 2)  # x_max * K^2 = 64
    assert lo.tolist() == [-128, -128, 0] and hi.tolist() == [256, 0, 0]
    lo, hi = current_bounds(w.reshape(3, 3, 1, 1), 1, 1)  # conv weights: per output channel
    assert lo.tolist() == [-2, -2, 0] and hi.tolist() == [4, 0, 0]


def _lif(theta, *, leak: str = "mult", param: int = 256, frac: int = 8,
         reset: str = "subtract", bits: int = 32, bias=None, shape=None) -> LIF:
    th = np.atleast_1d(np.asarray(theta, np.int64))
    shape = shape or (len(th),)
    return LIF("lif", tuple(shape), leak, param, frac, reset, bits, th,
               None if bias is None else np.atleast_1d(np.asarray(bias, np.int64)))


def _one_layer(weight, theta, *, encoding: str = "events", pixel_max: int = 1, steps: int = 3,
               **kw) -> Graph:
    w = np.asarray(weight, np.int64)
    nodes = (Flatten("flat"), Linear("fc", w.shape[1], w.shape[0], 8, w),
             dataclasses.replace(_lif(theta, **kw), shape=(w.shape[0],)),
             Readout("readout", w.shape[0]))
    return Graph("w", steps, InputEncoder("input", encoding, (1, 1, w.shape[1]), pixel_max, 1),
                 nodes)


def test_membrane_bounds_hand_case() -> None:
    # W = [2, -1], binary input: I in [-1, 2]; theta = 3, beta = 1, subtract
    # t0: [0-1, 0+2] = [-1, 2]; t1: [-2, 4]; t2: rest [-3, min(4,3)+2 = 5],
    #     reset (U in [4, 4]): [4-1-3, 4+2-3] = [0, 3]  ->  [-3, 5]
    lo, hi = membrane_bounds(_lif(3), np.array([-1]), np.array([2]), 3)
    assert (lo.tolist(), hi.tolist()) == ([-3], [5])
    (w,) = analyze(_one_layer([[2, -1]], 3))
    assert (w.current_lo, w.current_hi, w.current_bits) == (-1, 2, 3)
    assert (w.membrane_lo, w.membrane_hi, w.membrane_bits) == (-3, 5, 4)
    # the bound is reached: I = 2, 1 (U = 3, no spike), 2 -> 5
    res = golden.run(_one_layer([[2, -1]], 3), torch.tensor([[[[[1, 0]]], [[[1, 1]]],
                                                              [[[1, 0]]]]]), record=True)
    assert res.membranes[0][:, 0, 0].tolist() == [2, 3, 5]


def test_zero_reset_and_theta_bound() -> None:
    # zero reset: after a spike the membrane restarts from [I_lo, I_hi]
    lo, hi = membrane_bounds(_lif(1, reset="zero"), np.array([0]), np.array([5]), 4)
    assert (lo.tolist(), hi.tolist()) == ([0], [6])  # 5, then leak(min(5, 1)) + 5 = 6
    # theta counts towards the width even if the membrane never gets there
    (w,) = analyze(_one_layer([[1]], 100))
    assert (w.membrane_lo, w.membrane_hi, w.membrane_bits) == (0, 100, 8)


def test_first_layer_uses_pixel_max_later_layers_spikes() -> None:
    nodes = (Flatten("flat"), Linear("fc0", 2, 2, 8, np.array([[3, -2], [1, 1]])),
             _lif([1000, 1000], reset="none"), Linear("fc1", 2, 1, 8, np.array([[5, -4]])),
             dataclasses.replace(_lif([9], reset="none"), name="lif1"), Readout("r", 1))
    g = Graph("p", 2, InputEncoder("input", "direct", (1, 1, 2), 16), nodes)
    w0, w1 = analyze(g)
    assert (w0.current_lo, w0.current_hi) == (-32, 48)
    assert (w0.membrane_lo, w0.membrane_hi) == (-64, 1000)  # 2 steps, no leak; theta 1000
    assert (w1.current_lo, w1.current_hi) == (-4, 5)
    assert (w1.membrane_lo, w1.membrane_hi) == (-8, 10)
    rate = g.replace(input=dataclasses.replace(g.input, encoding="rate", lfsr_seed=1))
    assert (analyze(rate)[0].current_lo, analyze(rate)[0].current_hi) == (-2, 3)


@pytest.mark.parametrize("steps", [1, 2, 5, 20, 100])
@pytest.mark.parametrize("frac", [4, 8, 16])
def test_tightness_integrator(steps: int, frac: int) -> None:
    """Weight +7, input always 1, beta = 1 (m = 2^F), theta never reached: the bound is 7T."""
    lif = _lif(7 * steps, param=2**frac, frac=frac)
    lo, hi = membrane_bounds(lif, np.array([0]), np.array([7]), steps)
    assert (lo.tolist(), hi.tolist()) == ([0], [7 * steps])
    big = _lif(10**6, param=2**frac, frac=frac)
    assert membrane_bounds(big, np.array([0]), np.array([7]), steps)[1].tolist() == [7 * steps]
    g = _one_layer([[7]], 7 * steps, param=2**frac, frac=frac, steps=steps,
                   encoding="direct", pixel_max=1)
    (w,) = analyze(g)
    assert (w.current_lo, w.current_hi) == (0, 7)
    assert (w.membrane_lo, w.membrane_hi) == (0, 7 * steps)
    assert w.membrane_bits == signed_bits(0, 7 * steps)
    # the golden model reaches the bound, and with exactly that width does not saturate
    g = dataclasses.replace(g, nodes=tuple(dataclasses.replace(n, membrane_bits=w.membrane_bits)
                                           if isinstance(n, LIF) else n for n in g.nodes))
    validate(g)
    res = golden.run(g, torch.ones(1, 1, 1, 1, dtype=torch.int64), record=True)
    assert res.membranes[0][:, 0, 0].tolist() == [7 * (t + 1) for t in range(steps)]
    assert res.counts.tolist() == [[0]]
    # and the negative mirror image
    (wn,) = analyze(_one_layer([[-7]], 1, param=2**frac, frac=frac, steps=steps,
                               encoding="events"))
    assert (wn.membrane_lo, wn.current_lo) == (-7 * steps, -7)


# -- soundness: the golden model never leaves the analysed ranges --------------------------
@st.composite
def graphs(draw):
    """A random small graph with 32-bit membranes (no saturation)."""
    enc = draw(st.sampled_from(Encoding.values()))
    side = st.sampled_from([2, 3, 4, 5, 6, 6])
    shape = (draw(st.integers(1, 2)), draw(side), draw(side))
    pmax = 1 if enc == "events" else draw(st.sampled_from([1, 7, 255]))
    steps = draw(st.integers(1, 8))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    x_max = pmax if enc == "direct" else 1
    nblocks = draw(st.sampled_from([1, 2, 2, 3, 3]))
    nodes: list = []
    cur = shape
    for b in range(nblocks):
        wb = draw(st.integers(2, 5))
        lim = 2 ** (wb - 1) - 1
        pool = 1
        sign = draw(st.sampled_from(["mixed", "pos", "neg"]))
        lo_w, hi_w = {"mixed": (-lim, lim), "pos": (0, lim), "neg": (-lim, 0)}[sign]
        if b < nblocks - 1 and len(cur) == 3 and draw(st.booleans()):
            want = draw(st.sampled_from([1, 2, 2, 3]))  # sum pool kernel, if one fits
            fits = [(k, p) for k in (1, 2, 3) for p in (0, 1) if k <= min(cur[1], cur[2]) + 2 * p
                    and (cur[1] + 2 * p - k + 1) % want == 0
                    and (cur[2] + 2 * p - k + 1) % want == 0]
            fits = fits or [(1, 0)]
            k, pad = draw(st.sampled_from(fits))
            oc = draw(st.integers(1, 3))
            w = rng.integers(lo_w, hi_w + 1, (oc, cur[0], k, k))
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
            out = draw(st.integers(1, 5))
            w = rng.integers(lo_w, hi_w + 1, (out, cur[0]))
            nodes.append(Linear(f"fc{b}", cur[0], out, wb, w))
            cur = (out,)
        scale = max(1, x_max * pool * pool * lim * w[0].size // draw(st.sampled_from([1, 4, 32])))
        theta = rng.integers(1, scale + 1, cur[0])
        bias = rng.integers(-scale, scale + 1, cur[0]) if draw(st.booleans()) else None
        form = draw(st.sampled_from(Leak.values()))
        frac = draw(st.sampled_from([1, 4, 8]))
        if form == "shift":
            param = draw(st.integers(1, 8))
        else:
            param = draw(st.sampled_from([0, 1, 2**frac - 1, 2**frac, None]))
            param = draw(st.integers(0, 2**frac)) if param is None else param
        reset = draw(st.sampled_from(Reset.values()))
        nodes.append(LIF(f"lif{b}", cur, form, param, frac, reset, 32, theta, bias))
        x_max = 1
    nodes.append(Readout("readout", cur[0]))
    return Graph("s", steps, InputEncoder("input", enc, shape, pmax, 0xACE1), tuple(nodes))


def adversarial_inputs(graph: Graph, rng: np.random.Generator) -> np.ndarray:
    """Random, all-max, all-zero, alternating (space and time) and weight-sign patterns."""
    inp, steps = graph.input, graph.time_steps
    c, h, w = inp.shape
    top = inp.pixel_max if inp.encoding != "events" else 1
    chk = (np.indices((c, h, w)).sum(0) % 2) * top
    imgs = [rng.integers(0, top + 1, (c, h, w)) for _ in range(3)]
    imgs += [np.full((c, h, w), top), np.zeros((c, h, w), np.int64), chk, top - chk]
    first = next(n for n in graph.nodes if isinstance(n, (Linear, Conv2d)))
    if isinstance(first, Linear):  # drive neuron 0 of the first layer to I_lo and to I_hi
        imgs += [(first.weight[0] > 0).reshape(c, h, w) * top,
                 (first.weight[0] < 0).reshape(c, h, w) * top]
    if inp.encoding != "events":
        return np.stack(imgs).astype(np.int64)
    frames = [np.stack([im] * steps) for im in imgs]
    odd = (np.arange(steps) % 2).reshape(-1, 1, 1, 1)
    frames += [np.broadcast_to(odd, (steps, c, h, w)) * im for im in imgs[3:]]
    frames += [np.broadcast_to(1 - odd, (steps, c, h, w)) * im for im in imgs[3:]]
    frames.append(rng.integers(0, 2, (steps, c, h, w)))
    return np.stack(frames).astype(np.int64)


def layer_currents(graph: Graph, x: torch.Tensor, spikes: list[torch.Tensor]) -> list:
    """Per LIF: the current W x (+ pool) + bias, [T, B, ...] or [B, ...] (static)."""
    steps, batch = graph.time_steps, x.shape[0]
    h, static = golden.encode(graph, x)
    out, k, cur = [], 0, None
    for node in graph.nodes:
        if isinstance(node, (Linear, Conv2d)):
            cur = golden.weight_current(node, h if static else h.flatten(0, 1))
        elif isinstance(node, SumPool):
            cur = golden.sum_pool(cur, node.kernel)
        elif isinstance(node, LIF):
            if not static:
                cur = cur.reshape(steps, batch, *cur.shape[1:])
            if node.bias is not None:
                cur = cur + torch.from_numpy(node.bias.astype(np.int64)).reshape(
                    -1, *[1] * (len(node.shape) - 1))
            out.append(cur)
            h, static, k = spikes[k].to(torch.int64), False, k + 1
        elif isinstance(node, Flatten):
            h = h.flatten(1 if static else 2)
    return out


@settings(max_examples=40, deadline=None, database=None)
@given(graphs(), st.integers(0, 2**32 - 1))
def test_analysis_is_sound(graph: Graph, seed: int) -> None:
    rng = np.random.default_rng(seed)
    x = torch.as_tensor(adversarial_inputs(graph, rng))
    res = golden.run(graph, x, record=True)
    widths = analyze(graph)
    currents = layer_currents(graph, x, res.spikes)
    x_max = graph.input.pixel_max if graph.input.encoding == "direct" else 1
    pool = 1
    weight = None
    k = 0
    for node in graph.nodes:
        if isinstance(node, (Linear, Conv2d)):
            weight, pool = node.weight, 1
        elif isinstance(node, SumPool):
            pool = node.kernel
        if not isinstance(node, LIF):
            continue
        w, mem, cur = widths[k], res.membranes[k], currents[k]
        assert w.name == node.name
        assert w.membrane_lo <= int(mem.min()) and int(mem.max()) <= w.membrane_hi
        assert w.current_lo <= int(cur.min()) and int(cur.max()) <= w.current_hi
        half = 1 << (w.membrane_bits - 1)
        assert -half <= w.membrane_lo and w.membrane_hi < half
        assert w.membrane_bits == signed_bits(w.membrane_lo, w.membrane_hi)
        assert w.current_bits == signed_bits(w.current_lo, w.current_hi)
        # per channel, the finer bounds hold as well
        i_lo, i_hi = current_bounds(weight, x_max, pool)
        if node.bias is not None:
            i_lo, i_hi = i_lo + np.minimum(node.bias, 0), i_hi + np.maximum(node.bias, 0)
        m_lo, m_hi = membrane_bounds(node, i_lo, i_hi, graph.time_steps)
        ch_axis = mem.dim() - len(node.shape)
        mem_c = mem.movedim(ch_axis, 0).reshape(node.channels, -1)
        cur_c = cur.movedim(cur.dim() - len(node.shape), 0).reshape(node.channels, -1)
        assert (mem_c.min(1).values.numpy() >= m_lo).all()
        assert (mem_c.max(1).values.numpy() <= m_hi).all()
        assert (cur_c.min(1).values.numpy() >= i_lo).all()
        assert (cur_c.max(1).values.numpy() <= i_hi).all()
        x_max, k = 1, k + 1
    # with exactly the analysed widths the graph validates and nothing saturates
    need = {w.name: w.membrane_bits for w in widths}
    fitted = graph.replace(nodes=tuple(
        dataclasses.replace(n, membrane_bits=need[n.name]) if isinstance(n, LIF) else n
        for n in graph.nodes))
    validate(fitted)
    res2 = golden.run(fitted, x, record=True)
    for a, b in zip(res.membranes, res2.membranes, strict=True):
        assert torch.equal(a, b)
    assert torch.equal(res.counts, res2.counts)
