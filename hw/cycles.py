"""The cycle model of the generated accelerator (``qsnn hw --estimate``).

Cycles per image, from the first input byte to ``m_valid`` (``m_cycles``), with the input
streamed at one byte per cycle, as an edge-exact transaction model of ``hw/rtl``
(docs/hardware.md, "Cycle model"). Per layer l: K_l = HO·WO·G chunks (fully connected:
G = ceil(N/P)); an event costs the consumer c cycles: K (fully connected), or nY·nX·G for
a conv layer (the engine positions its (y, x) reaches, ``convmap.event_cycles``).

    cycles = B                                   input bytes, one per cycle
           + K_max + 6                           clear pass (all layers at once)
           + [direct] scan(pixels) + K_0 + 6     MAC into C once per image, then V <- C
           + sum_t ( [rate/events] scan(frame t)
                     + sum_l ( K_l + 6           update pass of layer l
                               + buf(l, t) ) )   layer l's spikes into layer l+1
           + CLASSES + 3                         argmax, m_valid

A pass of K chunks keeps its layer busy K + 4 cycles (``ACC_DRAIN``/``UPD_DRAIN``: the
pipeline after the last chunk) and the sequencer sees it idle 2 cycles after it started
it (start pulse, then its ``armed`` check): K + 6.
``scan``: the encoder reads one item per cycle from 2 cycles after its start; an event is
accepted at max(the cycle after it is read, the consumer free: the previous event's
accept + its cost); the phase ends one cycle after both the scan and the consumer's
last event (accept + cost + 4) are done.
``buf``: the spike buffer walks its K chunks from 2 cycles after its start, one cycle per
chunk without spikes; a chunk's spikes are accepted one after another (a spike waits
for the consumer), the chunk done the cycle after its last accept; the phase ends as a
scan does (the readout takes a spike per cycle and is never busy).

Membranes in SPRAM (``m_spram``, ``qsnn hw --membranes spram``): every chunk of that
layer's passes and events takes 2 cycles (K_l becomes 2·K_l in the clear, loadv and
update passes, c becomes 2·c), and an event that would be accepted the cycle after the
consumer became free (``free + 1``) waits one more cycle (its first read would meet the
last chunk's write).

Everything runs on the golden model's spike trains, vectorised over the images.
:func:`bound` is the event-driven bound beside it: synaptic events ÷ lanes (per input
event the engine positions it reaches × output channels / P; fully connected N / P) plus
the update passes (sum over steps and layers of K_l).
The simulation (``qsnn verify``) reports measured cycles (less the bench's input gaps)
and their ratio to this model, image by image.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from qsnn.export import golden, serialize
from qsnn.export.ir import Encoding, Graph
from qsnn.hw import convmap
from qsnn.hw.design import LayerParams, input_bytes
from qsnn.lfsr import rate_spikes, rate_table

#: pipeline stages of qsnn_layer after a pass's last issued chunk: accumulate and update
#: write in stage 4 (clear and loadv in stage 2, but every pass keeps the layer busy
#: through stage 4)
ACC_DRAIN = 4
UPD_DRAIN = 4
#: cycles from the sequencer's start pulse to its first idle check (pulse, ``armed``)
O_PHASE = 2
#: readout: the argmax walks CLASSES counters, ``done``, the sequencer's ``m_valid``
O_END = 3
#: memory the recorded golden traces of one chunk of images may take
TRACE_BYTES = 1 << 28
_NONE = -(1 << 40)


def pass_cycles(k: int) -> int:
    """A clear/loadv/update pass of k chunks, as the sequencer sees it: K + 4 + 2."""
    return k + UPD_DRAIN + O_PHASE


def _spram_wait(a: np.ndarray, free: np.ndarray, spram: bool) -> np.ndarray:
    """An SPRAM consumer does not accept at free + 1 (its last chunk's write)."""
    return np.where(a == free + 1, a + 1, a) if spram else a


def scan(start: np.ndarray, events: np.ndarray, cost: np.ndarray, spram: bool = False
         ) -> np.ndarray:
    """End of an encoder phase (the sequencer's next state edge) per image.

    ``start``: the edge of the start pulse [B]; ``events`` [B, N] bool (item j an event);
    ``cost`` [N]: cycles the consumer spends on item j. Item j is read at edge R_j
    (R_0 = start + 2); a non-event moves on at R_j + 1, an event is accepted at
    A_j = max(R_j + 1, free) (``spram``: not free + 1) and the next item read then;
    free = A_j + cost."""
    r = start + O_PHASE
    free = np.full_like(r, _NONE)
    busy_end = np.full_like(r, _NONE)
    idle = 0    # items since the last one that was an event in some image
    for j in np.flatnonzero(events.any(axis=0)).tolist():
        r = r + (j - idle)
        ev = events[:, j]
        a = _spram_wait(np.maximum(r + 1, free), free, spram)
        r = np.where(ev, a, r + 1)
        free = np.where(ev, a + cost[j], free)
        busy_end = np.where(ev, a + cost[j] + ACC_DRAIN, busy_end)
        idle = j + 1
    r = r + (events.shape[1] - idle)
    return np.maximum(r, busy_end) + 1


def buf(start: np.ndarray, spikes: np.ndarray, cost: np.ndarray | None, spram: bool = False
        ) -> np.ndarray:
    """End of a spike-buffer phase per image: ``spikes`` [B, K] per chunk, ``cost`` [K]
    of the consumer layer per spike of chunk k (None: the readout, one spike per cycle,
    never busy). The walk reaches chunk 0 at start + 2; a chunk's n spikes are accepted
    at a_1 = max(walk, free) (``spram``: not free + 1), a_i = a_{i-1} + max(1, cost);
    the walk goes on at a_n + 1."""
    tau = start + O_PHASE
    free = np.full_like(tau, _NONE)
    busy_end = np.full_like(tau, _NONE)
    idle = 0
    for k in np.flatnonzero(spikes.any(axis=0)).tolist():
        tau = tau + (k - idle)
        n = spikes[:, k].astype(np.int64)
        c = 1 if cost is None else int(cost[k])
        a_n = _spram_wait(np.maximum(tau, free), free, spram) + (n - 1) * max(1, c)
        has = n > 0
        tau = np.where(has, a_n + 1, tau + 1)
        free = np.where(has, a_n + c, free)
        busy_end = np.where(has, a_n + c + ACC_DRAIN, busy_end)
        idle = k + 1
    tau = tau + (spikes.shape[1] - idle)
    if cost is None:
        return tau
    return np.maximum(tau - 1, busy_end) + 1


def event_costs(p: LayerParams) -> np.ndarray:
    """Cycles per input event of layer ``p`` by input position, [H_IN, W_IN] (fully
    connected: [1, 1] = K): nY·nX·G (``convmap.event_cycles``)."""
    g = p.geom()
    ny = np.array([hi - lo + 1 for lo, hi, _ in (convmap.axis_range(g, y, g.he)
                                                 for y in range(g.h))])
    nx = np.array([hi - lo + 1 for lo, hi, _ in (convmap.axis_range(g, x, g.we)
                                                 for x in range(g.w))])
    return np.outer(ny, nx) * g.groups


def positions(p: LayerParams) -> np.ndarray:
    """Engine positions an input event reaches, by position [H_IN, W_IN] (cost / G)."""
    return event_costs(p) // p.groups


def chunk_costs(p: LayerParams, nxt: LayerParams) -> np.ndarray:
    """Cost to layer ``nxt`` of a spike in each of layer ``p``'s chunks, [K_p]: chunk
    (Y·WO + X)·G + g holds neurons at (Y, X)."""
    per_pos = event_costs(nxt).reshape(-1) if nxt.conv else np.full(p.ho * p.wo, nxt.chunks)
    return np.repeat(per_pos, p.groups)


def chunk_spikes(spikes: torch.Tensor, p: LayerParams) -> np.ndarray:
    """Spikes per chunk [T, B, K] of a layer's spike train [T, B, N(, HO, WO)]: chunk
    (Y·WO + X)·G + g holds channels g·P + p at (Y, X) (channels padded to G·P)."""
    s = spikes.numpy().reshape(spikes.shape[0], spikes.shape[1], p.n, p.ho * p.wo)
    pad = np.zeros((*s.shape[:2], p.groups * p.lanes, p.ho * p.wo), np.int16)
    pad[:, :, : p.n] = s
    per = pad.reshape(*s.shape[:2], p.groups, p.lanes, p.ho * p.wo).sum(axis=3)
    return per.transpose(0, 1, 3, 2).reshape(*s.shape[:2], p.chunks)


def resolve(graph: Graph, layers: int | Sequence[LayerParams]) -> list[LayerParams]:
    """The design's layers, or those ``qsnn hw --lanes`` would make (default pooling)."""
    if isinstance(layers, int):
        from qsnn.hw.layers import layer_params

        return layer_params(graph, layers)
    return list(layers)


def encoder_events(graph: Graph, x: torch.Tensor) -> np.ndarray:
    """The first layer's input events: [1, B, N] (direct: nonzero pixels, once) or
    [T, B, N] (rate spikes, event bits per step)."""
    inp, steps, b = graph.input, graph.time_steps, x.shape[0]
    flat = x.reshape(b, -1)
    if inp.encoding == Encoding.DIRECT:
        return (flat != 0).numpy()[None]
    if inp.encoding == Encoding.RATE:
        table = rate_table(inp.lfsr_seed, steps, flat.shape[1])
        return rate_spikes(flat, table, inp.pixel_max).numpy() != 0
    return (flat.reshape(b, steps, -1) != 0).numpy().transpose(1, 0, 2)


def _chunk_size(graph: Graph) -> int:
    per_image = 9 * graph.time_steps * sum(int(np.prod(lif.shape)) for lif in graph.lifs())
    return max(1, min(1000, TRACE_BYTES // max(per_image, 1)))


def model(graph: Graph, layers: int | Sequence[LayerParams], x: torch.Tensor
          ) -> tuple[np.ndarray, np.ndarray]:
    """(modelled cycles, event-driven bound) of every image of the batch ``x``, [B] each."""
    layers = resolve(graph, layers)
    parts = [_model(graph, layers, x[i:i + _chunk_size(graph)])
             for i in range(0, x.shape[0], _chunk_size(graph))]
    if not parts:
        return np.zeros(0, np.int64), np.zeros(0)
    return np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])


def image_cycles(graph: Graph, layers: int | Sequence[LayerParams], x: torch.Tensor
                 ) -> list[int]:
    """Modelled cycles of every image in the batch ``x`` (``layers``: the design's, or a
    lane count for the default design)."""
    return model(graph, layers, x)[0].tolist()


def _model(graph: Graph, layers: list[LayerParams], x: torch.Tensor
           ) -> tuple[np.ndarray, np.ndarray]:
    res = golden.run(graph, x, record=True)
    assert res.spikes is not None  # record=True
    enc = encoder_events(graph, x)
    cost0 = np.tile(event_costs(layers[0]).reshape(-1), enc.shape[2] // (
        layers[0].h_in * layers[0].w_in))
    spikes = [chunk_spikes(s, p) for s, p in zip(res.spikes, layers, strict=True)]
    costs = [chunk_costs(p, q) * q.chunk_cycles for p, q in zip(layers, layers[1:],
                                                               strict=False)] + [None]
    spram = [bool(q.m_spram) for q in layers[1:]] + [False]
    t = np.full(x.shape[0], input_bytes(graph), np.int64)
    t = t + pass_cycles(max(p.chunks * p.chunk_cycles for p in layers))
    direct = graph.input.encoding == Encoding.DIRECT
    c0, s0 = cost0 * layers[0].chunk_cycles, bool(layers[0].m_spram)
    if direct:
        t = pass_cycles(layers[0].chunks * layers[0].chunk_cycles) + scan(t, enc[0], c0, s0)
    for step in range(graph.time_steps):
        if not direct:
            t = scan(t, enc[step], c0, s0)
        for p, s, c, sp in zip(layers, spikes, costs, spram, strict=True):
            t = buf(t + pass_cycles(p.chunks * p.chunk_cycles), s[step], c, sp)
    cycles = t + graph.classes + O_END
    return cycles, _bound(graph, layers, enc, res.spikes, cost0)


def _bound(graph: Graph, layers: list[LayerParams], enc: np.ndarray,
           spikes: list[torch.Tensor], cost0: np.ndarray) -> np.ndarray:
    """Synaptic events / lanes + update passes, per image."""
    p0 = layers[0]
    syn0 = cost0 // p0.groups * p0.n / p0.lanes          # per input item
    total = (enc * syn0).sum(axis=(0, 2)).astype(np.float64)
    for p, nxt, s in zip(layers, layers[1:], spikes, strict=False):
        if nxt.conv:
            per = positions(nxt).reshape(-1) * nxt.n / nxt.lanes
        else:
            per = np.full(p.ho * p.wo, nxt.n / nxt.lanes)
        sp = s.numpy().reshape(s.shape[0], s.shape[1], p.n, p.ho * p.wo).sum(axis=(0, 2))
        total += (sp * per).sum(axis=1)
    return total + graph.time_steps * sum(p.chunks for p in layers)


def memory_bits(graph: Graph, layers: int | Sequence[LayerParams]) -> list[dict[str, int]]:
    """Bits of every memory of every layer (channels padded to G·P)."""
    out = []
    for p in resolve(graph, layers):
        words = p.chunks * p.lanes * p.mb
        out.append({"layer": p.index, "weights": p.w_bits, "theta": p.groups * p.lanes * p.mb,
                    "bias": p.groups * p.lanes * p.mb, "c": words if p.c_ram else 0,
                    "v": words, "spike_masks": p.chunks * p.lanes})
    return out


def estimate_report(build_dir: str | Path, layers: int | Sequence[LayerParams],
                    images: int) -> str:
    """Text report: modelled cycles per inference and the event-driven bound (over golden
    inputs), and memory bits."""
    graph = serialize.load(build_dir)
    layers = resolve(graph, layers)
    vec = serialize.load_vectors(build_dir, graph)
    x = torch.from_numpy(vec["inputs"][:images])
    cyc, bnd = model(graph, layers, x)
    mem = memory_bits(graph, layers)
    lanes = ",".join(str(p.lanes) for p in layers)
    lines = [f"cycle model: {graph.name}, P = {lanes}, T = {graph.time_steps}, "
             f"{len(cyc)} golden inputs",
             f"  cycles per inference: mean {np.mean(cyc):.0f}, min {cyc.min()}, max {cyc.max()}",
             f"  event-driven bound: mean {np.mean(bnd):.0f} (synaptic events / lanes + "
             f"update passes); model / bound {np.mean(cyc) / np.mean(bnd):.3f}",
             "  memory bits per layer:"]
    for m in mem:
        total = sum(v for key, v in m.items() if key != "layer")
        lines.append(f"    layer {m['layer']}: " + ", ".join(
            f"{key} {v}" for key, v in m.items() if key != "layer") + f" (total {total})")
    return "\n".join(lines) + "\n" + json.dumps(
        {"cycles_mean": float(np.mean(cyc)), "bound_mean": float(np.mean(bnd))})
