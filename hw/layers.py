"""From an IR to the per-layer parameters of ``qsnn hw``: blocks, lanes, pooling, limits.

An IR is a list of blocks ``[flatten] (linear | conv2d) [sumpool] lif`` and a readout
(docs/spec.md §5); each block becomes one ``qsnn_layer`` and its spike buffer
(:class:`~qsnn.hw.design.LayerParams`). Everything the hardware cannot build is refused
here with one line naming the node, the value and the limit, before ``qsnn hw`` writes
a file.

- **Lanes** (``--lanes P`` or one value per layer ``P0,P1,...``): P_l = min(requested,
  output channels / neurons of layer l); lanes past those would only be padding (a note
  says so).
- **Pooling** of a conv layer (``--pool fused|map|auto`` or one value per conv layer):
  ``fused`` (kernel K + Kp − 1 at stride Kp, weights of wb + 2·log2 Kp bits, fewer cycles
  per event) or ``map`` (the pool as an address map, wb-bit weights).
  ``auto`` (:func:`auto_fused`): fused iff the fused weights fit the engine's 8-bit weight
  lanes and take at most half of the target board's block RAM (``--board``, default the
  iCEBreaker's UP5K), else the address map. A layer without a pool is always "fused"
  (both forms are the same engine then).
- **Membranes** (``--membranes bram|spram`` or one value per layer): ``spram`` keeps a
  layer's V (and C) in one single-port ``qsnn_mem_spram`` (iCE40 SB_SPRAM256KA, 16k
  words deep), word {C, V}; every chunk of its passes and events then takes 2 cycles.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import cast

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
from qsnn.hw.convmap import MAX_WB, ConvGeom
from qsnn.hw.design import LayerParams

MAX_LANES = 64
POOL_MODES = ("fused", "map", "auto")
DEFAULT_BOARD = "icebreaker"
#: ``auto`` fuses a layer whose fused weights take at most this share of the block RAM
AUTO_BRAM_SHARE = 0.5
#: qsnn_conv_addr computes addresses in 20 bits (CB): chunks and weight words below 2^20
MAX_CONV_WORDS = 1 << 20
MEMBRANE_MODES = ("bram", "spram")
#: qsnn_mem_spram: one SB_SPRAM256KA deep
MAX_SPRAM_WORDS = 1 << 14

Lanes = int | Sequence[int]
Pool = str | Sequence[str]
Membranes = str | Sequence[str]


@dataclass(frozen=True)
class Block:
    """One layer of the IR: its weight node, optional sum pool and LIF."""

    weight: Linear | Conv2d
    pool: SumPool | None
    lif: LIF

    @property
    def conv(self) -> bool:
        return isinstance(self.weight, Conv2d)


def blocks(graph: Graph) -> list[Block]:
    """The IR's layers in order; a node the generator has no hardware for is refused."""
    out: list[Block] = []
    weight: Linear | Conv2d  # set by the weight layer that validate() puts before every LIF
    pool: SumPool | None = None
    for node in graph.nodes:
        if isinstance(node, (Linear, Conv2d)):
            weight, pool = node, None
        elif isinstance(node, SumPool):
            pool = node
        elif isinstance(node, LIF):
            out.append(Block(weight, pool, node))
        elif not isinstance(node, (Flatten, Readout)):
            raise QsnnError(f"IR node '{node.name}': {type(node).__name__} is not supported "
                            "by the hardware generator")
    return out


def per_layer(value: Lanes | Pool, count: int, option: str, what: str) -> list:
    """One value for every layer (a scalar) or the list as given (its length checked)."""
    if isinstance(value, (int, str)):
        return [value] * count
    values = list(value)
    if len(values) != count:
        raise QsnnError(f"{option} {','.join(map(str, values))}: give one value or {count} "
                        f"(one per {what})")
    return values


def layer_params(graph: Graph, lanes: Lanes = 4, runtime_weights: tuple[int, ...] | str = (),
                 pool: Pool = "auto", board: str = DEFAULT_BOARD,
                 note: Callable[[str], None] | None = None, membranes: Membranes = "bram"
                 ) -> list[LayerParams]:
    """Per-layer parameters; refuses what the hardware cannot express (one line each).

    ``runtime_weights``: indices of the layers whose weights are loaded at run time
    (RAM, ``weights.bin``) instead of ROM initialised from the bitstream; ``"all"``: every
    layer. ``note`` receives one line per lane count capped and per ``auto`` pooling
    choice. ``membranes``: ``bram`` or ``spram`` for every layer, or one per layer."""
    note = note or (lambda _line: None)
    _check_graph(graph)
    bl = blocks(graph)
    want = per_layer(lanes, len(bl), "--lanes", "layer")
    for p in want:
        if not isinstance(p, int) or not 1 <= p <= MAX_LANES:
            raise QsnnError(f"--lanes {p}: must be 1..{MAX_LANES}")
    convs = [i for i, b in enumerate(bl) if b.conv]
    modes = dict(zip(convs, per_layer(pool, len(convs), "--pool", "conv layer"), strict=True))
    for m in modes.values():
        if m not in POOL_MODES:
            raise QsnnError(f"--pool {m}: choose from {', '.join(POOL_MODES)}")
    rt = _runtime_set(runtime_weights, len(bl))
    mem = per_layer(membranes, len(bl), "--membranes", "layer")
    for m in mem:
        if m not in MEMBRANE_MODES:
            raise QsnnError(f"--membranes {m}: choose from {', '.join(MEMBRANE_MODES)}")
    out = []
    for i, b in enumerate(bl):
        n = b.weight.out_channels if isinstance(b.weight, Conv2d) else b.weight.out_features
        p = min(want[i], n)
        if p < want[i]:
            note(f"layer {i} ('{b.weight.name}'): {want[i]} lanes capped to its {n} output "
                 f"{'channels' if b.conv else 'neurons'}")
        common = dict(index=i, n=n, lanes=p, mb=b.lif.membrane_bits,
                      vb=8 if i == 0 and graph.input.encoding == Encoding.DIRECT else 1,
                      leak_mult=Leak(b.lif.leak).code, leak_param=b.lif.leak_param,
                      frac_bits=b.lif.frac_bits, reset_mode=Reset(b.lif.reset).code,
                      w_runtime=int(i in rt), m_spram=int(mem[i] == "spram"))
        if isinstance(b.weight, Conv2d):  # b.conv, narrowed for mypy
            out.append(_conv_params(graph, bl, i, common, modes[i], board, note))
        else:
            out.append(LayerParams(n_in=b.weight.in_features, wb=b.weight.weight_bits,
                                   **common))
        _check_spram(out[-1], b)
    return out


def _check_spram(p: LayerParams, b: Block) -> None:
    """Membranes in SPRAM: at most one SB_SPRAM256KA deep (16,384 words)."""
    if p.m_spram and p.chunks > MAX_SPRAM_WORDS:
        raise QsnnError(f"IR node '{b.lif.name}': {p.chunks} membrane words exceed the "
                        f"SPRAM depth of {MAX_SPRAM_WORDS} (--membranes spram); use more "
                        "lanes")


def _check_graph(graph: Graph) -> None:
    if graph.input.pixel_max > 255 and graph.input.encoding != Encoding.EVENTS:  # 0/1 frames
        raise QsnnError(f"IR input: pixel_max {graph.input.pixel_max} exceeds the 8-bit input "
                        "stream (limit 255)")
    for lif in graph.lifs():
        if lif.membrane_bits > 32:
            raise QsnnError(f"IR node '{lif.name}': membrane_bits {lif.membrane_bits} "
                            "exceeds the hardware limit of 32")
    if graph.classes > 256:
        raise QsnnError(f"IR readout: {graph.classes} classes exceed the limit of 256")


def _runtime_set(runtime_weights: tuple[int, ...] | str, layers: int) -> set[int]:
    if isinstance(runtime_weights, str):
        if runtime_weights != "all":
            raise QsnnError(f"--runtime-weights {runtime_weights!r}: give layer indices or 'all'")
        return set(range(layers))
    bad = sorted(set(runtime_weights) - set(range(layers)))
    if bad:
        raise QsnnError(f"--runtime-weights: no layer {bad[0]} (the network has layers "
                        f"0..{layers - 1})")
    return set(runtime_weights)


def _conv_params(graph: Graph, bl: list[Block], i: int, common: dict, mode: str, board: str,
                 note: Callable[[str], None]) -> LayerParams:
    """A conv layer: its geometry checked against the engine's limits, pooling chosen."""
    b = bl[i]
    conv, kp = cast(Conv2d, b.weight), b.pool.kernel if b.pool else 1  # a conv block
    shape = _input_shape(graph, b)
    where = f"IR node '{conv.name}'"
    g = ConvGeom(conv.in_channels, shape[1], shape[2], conv.kernel, conv.padding, kp,
                 common["n"], common["lanes"], False, conv.weight_bits)
    g.check(where)   # every limit but the fused weight width
    fused = kp == 1 or mode == "fused" or (
        mode == "auto" and auto_fused(replace(g, fused=True), board, where, note))
    g = replace(g, fused=fused)
    g.check(where)
    for what, n in (("weight words", g.w_words), ("membrane words", g.words)):
        if n > MAX_CONV_WORDS:
            raise QsnnError(f"{where}: {n} {what} exceed the conv engine's limit of "
                            f"{MAX_CONV_WORDS} (20-bit address arithmetic); use more lanes")
    nxt = bl[i + 1] if i + 1 < len(bl) else None
    return LayerParams(
        n_in=g.ci, wb=g.weight_bits, h_in=g.h, w_in=g.w, kernel=g.k, pad=g.pad, pool=kp,
        fused=int(fused), c_ram=int(common["vb"] > 1), coord=int(nxt is not None and nxt.conv),
        **common)


def _input_shape(graph: Graph, block: Block) -> tuple[int, ...]:
    """(C, H, W) at the input of ``block``'s weight node."""
    shape = tuple(graph.input.shape)
    for node in graph.nodes:
        if node is block.weight:
            return shape
        shape = node.out_shape(shape)
    raise AssertionError("block not in graph")


def auto_fused(g: ConvGeom, board: str, where: str, note: Callable[[str], None]) -> bool:
    """``--pool auto``: fuse iff the fused weights fit 8-bit lanes and at most
    :data:`AUTO_BRAM_SHARE` of ``board``'s block RAM."""
    from qsnn.hw.fpga.boards import get_board

    target = get_board(board)
    budget = int(AUTO_BRAM_SHARE * target.bram_blocks * target.bram_block_bits)
    bits = g.w_words * g.lanes * g.weight_bits
    if g.weight_bits > MAX_WB:
        note(f"{where}: pool {g.kp} as an address map (fused weights would need "
             f"{g.weight_bits} bits, limit {MAX_WB})")
        return False
    if bits > budget:
        note(f"{where}: pool {g.kp} as an address map (fused weights {bits} bits > half "
             f"of the {board}'s {2 * budget}-bit block RAM)")
        return False
    return True
