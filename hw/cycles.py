"""The cycle model of the generated accelerator (``qsnn hw --estimate``).

Cycles per image, from the first input byte to ``m_valid``, as a transaction-level model
of ``hw/rtl`` (K_l = ceil(N_l / P)):

    cycles = B                                   input bytes, one per cycle
           + O_START + (K_max + 4)               clear pass (all layers at once)
           + [direct] scan(pixels, K_0) + O_PHASE + (K_0 + 4) + O_PHASE     MAC, V <- C
           + sum_t ( [rate/events] scan(frame t, K_0) + O_PHASE
                     + sum_l ( (K_l + 4) + O_PHASE                           update pass
                               + buf(l, t) + O_PHASE ) )                     spikes -> l+1
           + CLASSES + O_END                     argmax, output

``scan(items, K)``: the encoder issues one item per cycle; an item that is an event
(nonzero pixel, rate spike, event bit) waits until the layer can accept it (the layer
accepts while idle, or while issuing the last chunk of the previous event: one event
per K cycles); the phase ends when the layer has written the last event's last chunk.
``buf(l, t)``: the spike buffer walks layer l's K_l chunks, one cycle per chunk without
spikes, each spike waiting for the consumer (layer l+1: K_{l+1} cycles per event; the
readout counters of the last layer: one per cycle). O_* are the fixed handshake
overheads of the sequencer (registered start pulse, busy/idle check); the +4 are the
layer pipeline's drain (ACC_DRAIN, UPD_DRAIN: a pass is busy K + drain cycles).

The simulation (``qsnn verify``) reports measured cycles and their ratio to this model.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch

from qsnn.export import golden, serialize
from qsnn.export.ir import Encoding, Graph
from qsnn.hw.design import input_bytes
from qsnn.hw.generate import layer_params
from qsnn.lfsr import rate_spikes, rate_table

O_START = 3
O_PHASE = 2
O_END = 4
#: pipeline stages of qsnn_layer after a pass's last issued chunk: accumulate and update
#: write in stage 4 (clear and loadv in stage 2, but every pass keeps the layer busy
#: through stage 4)
ACC_DRAIN = 4
UPD_DRAIN = 4


def scan(events: np.ndarray, k: int) -> int:
    """Cycles of a producer scanning ``events`` (bool per item) into a K-cycle consumer."""
    p, free, last_accept, prev = 1, 0, None, -1
    for i in np.flatnonzero(events).tolist():
        p += i - prev - 1  # the items since the previous event: one cycle each
        a = max(p + 1, free)
        last_accept, free, p, prev = a, a + k, a, i
    p += len(events) - 1 - prev
    end = p + 1
    if last_accept is not None:
        end = max(end, last_accept + k + 1 + ACC_DRAIN)
    return end


def buf(masks: np.ndarray, k_next: int, drain: int = ACC_DRAIN) -> int:
    """Cycles of the spike buffer walking chunk masks [K, P] into a K_next-cycle consumer
    that is busy ``drain`` cycles after its last event (a layer; the readout: 1)."""
    return _buf(masks.sum(axis=1).tolist(), k_next, drain)


def _buf(spikes_per_chunk: list[int], k_next: int, drain: int) -> int:
    t, free, last_accept = 0, 0, None
    for n in spikes_per_chunk:
        if n == 0:
            t += 1
            continue
        for _ in range(n):
            a = max(t, free)
            last_accept, free, t = a, a + k_next, a + 1
    end = t + 1
    if last_accept is not None:
        end = max(end, last_accept + k_next + drain)
    return end


def _chunk_spikes(spikes: torch.Tensor, k: int, lanes: int) -> np.ndarray:
    """Spikes per chunk of P lanes, [T, B, K] (neurons padded to K * P)."""
    s = spikes.reshape(spikes.shape[0], spikes.shape[1], -1).numpy()
    pad = np.zeros((*s.shape[:2], k * lanes), np.int16)
    pad[..., : s.shape[2]] = s
    return pad.reshape(*s.shape[:2], k, lanes).sum(axis=-1, dtype=np.int16)


#: images per golden-model run of :func:`image_cycles` (bounds the recorded traces' memory)
MODEL_CHUNK = 1000


def image_cycles(graph: Graph, lanes: int, x: torch.Tensor) -> list[int]:
    """Modelled cycles of every image in the batch ``x``."""
    layers = layer_params(graph, lanes)
    return [c for i in range(0, x.shape[0], MODEL_CHUNK)
            for c in _image_cycles(graph, layers, x[i:i + MODEL_CHUNK])]


def _image_cycles(graph: Graph, layers: list, x: torch.Tensor) -> list[int]:
    res = golden.run(graph, x, record=True)
    inp = graph.input
    steps = graph.time_steps
    k = [p.chunks for p in layers]
    n_in = layers[0].n_in
    bytes_in = input_bytes(graph)
    flat = x.reshape(x.shape[0], -1).numpy()
    if inp.encoding == Encoding.RATE:
        table = rate_table(inp.lfsr_seed, steps, n_in)
        enc_events = rate_spikes(x.reshape(x.shape[0], -1), table, inp.pixel_max).numpy()
    chunks = [_chunk_spikes(res.spikes[i], k[i], p.lanes) for i, p in enumerate(layers)]
    out = []
    for b in range(x.shape[0]):
        c = bytes_in + O_START + max(k) + ACC_DRAIN
        if inp.encoding == Encoding.DIRECT:
            c += scan(flat[b] != 0, k[0]) + O_PHASE + k[0] + ACC_DRAIN + O_PHASE
        per_chunk = [ch[:, b].tolist() for ch in chunks]
        for t in range(steps):
            if inp.encoding == Encoding.RATE:
                c += scan(enc_events[t, b] != 0, k[0]) + O_PHASE
            elif inp.encoding == Encoding.EVENTS:
                c += scan(flat[b].reshape(steps, n_in)[t] != 0, k[0]) + O_PHASE
            for i in range(len(layers)):
                nxt = (k[i + 1], ACC_DRAIN) if i + 1 < len(layers) else (1, 1)
                c += k[i] + UPD_DRAIN + O_PHASE + _buf(per_chunk[i][t], *nxt) + O_PHASE
        out.append(c + graph.classes + O_END)
    return out


def memory_bits(graph: Graph, lanes: int) -> list[dict[str, int]]:
    """Bits of every memory of every layer (padded to K*P neurons)."""
    out = []
    for p in layer_params(graph, lanes):
        pad = p.chunks * p.lanes
        out.append({"layer": p.index, "weights": p.w_bits, "theta": pad * p.mb,
                    "bias": pad * p.mb, "c": pad * p.mb, "v": pad * p.mb, "spike_masks": pad})
    return out


def estimate_report(build_dir: str | Path, lanes: int, images: int) -> str:
    """Text report: modelled cycles per inference (over golden inputs) and memory bits."""
    graph = serialize.load(build_dir)
    vec = serialize.load_vectors(build_dir, graph)
    x = torch.from_numpy(vec["inputs"][:images])
    cyc = image_cycles(graph, lanes, x)
    mem = memory_bits(graph, lanes)
    lines = [f"cycle model: {graph.name}, P = {lanes}, T = {graph.time_steps}, "
             f"{len(cyc)} golden inputs",
             f"  cycles per inference: mean {np.mean(cyc):.0f}, min {min(cyc)}, max {max(cyc)}",
             "  memory bits per layer:"]
    for m in mem:
        total = sum(v for key, v in m.items() if key != "layer")
        lines.append(f"    layer {m['layer']}: " + ", ".join(
            f"{key} {v}" for key, v in m.items() if key != "layer") + f" (total {total})")
    return "\n".join(lines) + "\n" + json.dumps({"cycles_mean": float(np.mean(cyc))})
