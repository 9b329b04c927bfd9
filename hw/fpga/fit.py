"""Fit rules: does a design fit a board's device?

Before synthesis (:func:`precheck_fit`), one line naming the resource, the need and the
option that fits, from lower bounds (:mod:`qsnn.hw.fpga.needs`), in this order: ROM
weights (initialised by the bitstream) may use block RAM and LUTs as ROM (16 bits per
LUT4), run-time-loaded weights also the SPRAM; ECP5 multipliers of the direct-input lanes;
iCE40 block RAM for the membranes (V, and C of the direct-input layer), then for membranes
and ROM weights together; SPRAM for the run-time weights; LUT4s for the lanes. After place
and route (:func:`fit_error`): every resource nextpnr reports over its capacity.
"""

from __future__ import annotations

import dataclasses
import math

from qsnn.hw.design import Design, LayerParams
from qsnn.hw.fpga.boards import BOARDS, Board
from qsnn.hw.fpga.needs import (
    fewer_lanes,
    halve_widest,
    ice40_blocks,
    layer_membrane_blocks,
    needs,
    spram_count,
)
from qsnn.hw.fpga.tools import first_error

LUT_ROM_BITS = 16              # bits of ROM in one LUT4


def precheck_fit(board: Board, design: Design) -> str | None:
    """The 'does not fit' message when a lower bound of the design exceeds the device
    (weights, multipliers, block RAM, SPRAM, lanes' LUTs), so that synthesis is not even
    tried; else None (nextpnr decides)."""
    return (dsp_check(board, design) or membrane_check(board, design)
            or weights_check(board, design) or resource_check(board, design))


def weights_check(board: Board, design: Design) -> str | None:
    """The weights alone against every memory bit of the device."""
    rom = design.weight_bits(runtime=False)
    total = design.weight_bits()
    bram = board.bram_blocks * board.bram_block_bits
    if not bram:
        return None
    luts = LUT_ROM_BITS * board.luts
    where = f"{board.device} ({board.name})"
    if rom > bram + luts:
        need = -(-rom // board.bram_block_bits)
        moved = _runtime_layers(design, rom - bram - luts)
        hint = (f"; generate with qsnn hw --runtime-weights {moved} to keep the weights of "
                f"layer(s) {moved} in the {board.spram_bits} bits of SPRAM, loaded over the "
                "UART" if board.spram_bits and total <= board.spram_bits + bram + luts
                else "; use a smaller network or a larger board")
        return (f"design does not fit {where}: block RAM: the ROM weights alone need {rom} "
                f"bits = at least {need} blocks of {board.bram_block_bits} bits, the device "
                f"has {board.bram_blocks} ({bram} bits; checked before synthesis){hint}")
    if total > board.spram_bits + bram + luts:
        return (f"design does not fit {where}: the weights need {total} bits, the device has "
                f"{bram} bits of block RAM and {board.spram_bits} of SPRAM (checked before "
                "synthesis); use a smaller network or a larger board")
    return None


def _lanes_hint(board: Board, design: Design) -> str:
    lanes = fewer_lanes(board, design)
    if lanes is None:
        return "use a smaller network or a larger board"
    return f"use fewer lanes (e.g. --lanes {','.join(map(str, lanes))})"


WHERE = "design does not fit {device} ({name}): "
NOTE = " (a lower bound, checked before synthesis)"


def _where(board: Board) -> str:
    return WHERE.format(device=board.device, name=board.name)


def dsp_check(board: Board, design: Design) -> str | None:
    """ECP5: one MULT18X18D per lane of a direct-input layer."""
    n = needs(board, design)
    if board.dsps and n.dsps > board.dsps:
        return (f"{_where(board)}multipliers: the direct-input layers' lanes need {n.dsps} "
                f"MULT18X18D, the device has {board.dsps}{NOTE}; "
                f"{_lanes_hint(board, design)}")
    return None


def membrane_check(board: Board, design: Design) -> str | None:
    """iCE40: the membranes (V, C) in block RAM or logic."""
    n = needs(board, design)
    if board.family != "ice40" or n.membrane_blocks <= board.bram_blocks:
        return None
    big = max(design.layers, key=layer_membrane_blocks)
    hint = (_lanes_hint(board, design) if fewer_lanes(board, design) else
            _spram_hint(board, design) or "use a smaller network or a larger board "
            "(orangecrab, ulx3s)")
    return (f"{_where(board)}block RAM: the membranes (V, and C of the direct-input layer) "
            f"need at least {n.membrane_blocks} EBR (layer {big.index}'s alone "
            f"{layer_membrane_blocks(big)}), the device has {board.bram_blocks}{NOTE}; "
            f"{hint}")


def spram_membranes(board: Board, design: Design) -> list[int] | None:
    """Layers whose membranes, moved to SPRAM (largest EBR need first), bring the EBR
    membranes within the device with the SPRAM (run-time weights too) still enough;
    None if no such choice."""
    count = spram_count(board)
    layers = list(design.layers)
    for i in sorted(range(len(layers)), key=lambda i: -layer_membrane_blocks(layers[i])):
        if layers[i].m_spram or layers[i].chunks > 16384:
            continue
        before = layers[i]
        layers[i] = dataclasses.replace(before, m_spram=1)
        n = needs(board, dataclasses.replace(design, layers=tuple(layers)))
        if n.spram_blocks > count:      # too wide for the SPRAM left: keep it in EBR
            layers[i] = before
            continue
        if n.membrane_blocks <= board.bram_blocks:
            return [p.index for p in layers if p.m_spram]
    return None


def _spram_hint(board: Board, design: Design) -> str | None:
    chosen = spram_membranes(board, design)
    if not board.spram_bits or chosen is None:
        return None
    modes = ",".join("spram" if p.index in chosen else "bram" for p in design.layers)
    return (f"generate with qsnn hw --membranes {modes} (layer(s) "
            f"{','.join(map(str, chosen))} keep V and C in SPRAM, 2 cycles per chunk)")


def resource_check(board: Board, design: Design) -> str | None:
    """iCE40 block RAM for membranes and ROM weights, SPRAM, lanes' LUTs."""
    n = needs(board, design)
    where, note = _where(board), NOTE
    total = n.memory_blocks
    if total > board.bram_blocks:
        return (f"{where}block RAM: membranes and ROM weights need at least {total} EBR, "
                f"the device has {board.bram_blocks}{note}; "
                f"{_memory_hint(board, design)}")
    spram = spram_count(board)
    if n.spram_blocks > spram:
        return (f"{where}SPRAM: the run-time weights and SPRAM membranes need "
                f"{n.spram_blocks} SPRAMs of 16k x 16, "
                f"the device has {spram}{note}; use fewer lanes or a smaller network")
    if n.lane_luts > board.luts:
        return (f"{where}logic: the lanes ({sum(p.lanes * p.mb for p in design.layers)} "
                f"lane-membrane bits) need at least {n.lane_luts} LUT4, the device has "
                f"{board.luts}{note}; {_lanes_hint(board, design)}")
    return None


def _rom_blocks(p: LayerParams) -> int:
    return 0 if p.w_runtime else ice40_blocks(p.w_words, p.lanes * p.wb)


def _fits(board: Board, design: Design, layers: list[LayerParams]) -> bool:
    n = needs(board, dataclasses.replace(design, layers=tuple(layers)))
    return n.memory_blocks <= board.bram_blocks


def _memory_hint(board: Board, design: Design) -> str:
    """The first option that brings membranes + ROM weights within the EBR: the address
    map instead of a fused pool, then run-time weights (SPRAM), layer by layer, the largest
    ROM first."""
    layers = list(design.layers)
    for i, p in enumerate(layers):
        if p.conv and p.fused and p.pool > 1:
            layers[i] = dataclasses.replace(p, fused=0, wb=p.wb - 2 * (p.pool.bit_length() - 1))
    mapped = [str(p.index) for p, q in zip(design.layers, layers, strict=True) if p != q]
    if mapped and _fits(board, design, layers):
        return f"generate with qsnn hw --pool map for layer(s) {','.join(mapped)}"
    if board.spram_bits:
        layers = list(design.layers)
        for i in sorted(range(len(layers)), key=lambda i: -_rom_blocks(layers[i])):
            layers[i] = dataclasses.replace(layers[i], w_runtime=1)
            if _fits(board, design, layers):
                rt = ",".join(str(p.index) for p in layers if p.w_runtime)
                return (f"generate with qsnn hw --runtime-weights {rt} (weights in SPRAM, "
                        "loaded over the UART)")
    return "use fewer lanes or a smaller network, or a larger board"


def _runtime_layers(design: Design, excess: int) -> str:
    """The ROM layers, largest first, whose weights moved to run-time RAM cover
    ``excess`` bits (e.g. '1' or '0,1')."""
    rom = sorted((p for p in design.layers if not p.w_runtime), key=lambda p: -p.w_bits)
    chosen: list[int] = []
    for p in rom:
        if excess <= 0:
            break
        chosen.append(p.index)
        excess -= p.w_bits
    return ",".join(map(str, sorted(chosen)))


def overflow(util: dict[str, dict[str, int]], board: Board) -> str | None:
    """Every resource whose use exceeds the device, worst first, e.g.
    'block RAM 117/30 (ICESTORM_RAM, 390%)'."""
    names = board.fpga.resources
    bad = sorted(((v["used"] / max(v["available"], 1), key, v) for key, v in util.items()
                  if v["used"] > v["available"]), key=lambda t: (-t[0], t[1]))
    return ", ".join(f"{names.get(key, key)} {v['used']}/{v['available']}"
                     f" ({key}, {math.floor(100 * ratio)}%)" for ratio, key, v in bad) or None


def fit_error(board: Board, util: dict[str, dict[str, int]], log: str,
              design: Design | None = None) -> str:
    """The one-line 'does not fit' message (resource and numbers, else nextpnr's error).
    Logic cells over the device with the ``design`` known: the option to try
    (:func:`logic_hint`)."""
    over = overflow(util, board)
    if over:
        logic = util.get(board.fpga.logic_key, {})
        hint = (logic_hint(board, design, logic["used"], util)
                if design is not None and logic.get("used", 0) > logic.get("available", 0)
                else "use fewer lanes or a smaller network, or a larger board")
        return f"design does not fit {board.device} ({board.name}): {over} (used/available); {hint}"
    return f"place and route failed for {board.name}: {first_error(log)}"


def logic_hint(board: Board, design: Design, used: int,
               util: dict[str, dict[str, int]]) -> str:
    """After place and route, logic cells short: halve the lanes of the layer with the most
    lane·membrane bits (the lanes are most of the logic; a suggestion to try, not a
    promise), and name the smallest board of the family whose logic cells and block RAM
    hold what this run used."""
    lanes = [p.lanes for p in design.layers]
    parts = []
    i = halve_widest(design, lanes)
    if i is not None:
        parts.append(f"fewer lanes (try --lanes {','.join(map(str, lanes))}: layer {i}'s "
                     "halved, the most lane-membrane bits)")
    bram = util.get(board.fpga.bram_key, {}).get("used", 0)
    larger = sorted((b for b in BOARDS.values() if b.family == board.family
                     and b.name != board.name and b.luts >= used and b.bram_blocks >= bram),
                    key=lambda b: b.luts)
    if larger:
        parts.append(f"a larger board (--board {larger[0].name}: {larger[0].luts} logic cells)")
    return "use " + " or ".join(parts) if parts else "use a smaller network"
