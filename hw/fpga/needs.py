"""What a design needs of a device, as lower bounds computed from ``params.json`` alone.

Used by the pre-synthesis fit check (:func:`qsnn.hw.fpga.fit.precheck_fit`); every figure is
a lower bound, so a design refused here cannot fit, while one that passes may still fail
in nextpnr (which then names the resource). Per layer l with P lanes, G = ceil(N/P)
groups, K = HO·WO·G chunks, membrane bits MB, weight lane bits WB:

    membranes V          K words of P·MB bits   (RAM)
    constant current C   K words of P·MB bits   (RAM; direct-input layer only, C_RAM = 1)
    weights              w_words of P·WB bits   (ROM, or run-time RAM: --runtime-weights)

- iCE40 block RAM (no LUT RAM): a RAM of D words × B bits in SB_RAM40_4K needs
  min over the modes (256×16, 512×8, 1024×4, 2048×2) of ceil(D/depth)·ceil(B/width)
  blocks (this is what Yosys used in every measured conv layer, docs/hardware.md). V, C and
  ROM weights count; the small θ, bias and spike-mask memories do not. A memory may
  instead live in logic: a RAM costs a logic cell (flip-flop) per bit, a ROM a LUT4 per 16
  bits; the bound gives the logic left after the lanes to the memories that save the most
  blocks per logic cell (fractionally: a lower bound of the knapsack). Run-time weights
  are counted against the 4 SPRAMs (16k × 16 each), and so are the membranes of a layer
  generated with ``--membranes spram`` (K words of ``spram_word_bits``: V, and C, each
  padded to nibbles), which take no EBR.
- Lanes' logic: at least ``LANE_LUTS[family]`` LUT4 per lane and membrane bit (the lanes'
  accumulate, leak and saturation adders; measured ~11 on the iCE40 and ~5.6 on the ECP5
  per lane and bit on the seed's layer 1, ``bench/layer_resources.py``).
- ECP5 multipliers: a direct-input layer (VB = 8) multiplies pixel × weight in every lane,
  which ``synth_ecp5`` maps to one MULT18X18D per lane (spike layers use a mux). The iCE40
  flow runs ``synth_ice40`` without ``-dsp``: its products are LUTs.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from qsnn.hw.design import Design, LayerParams
from qsnn.hw.fpga.boards import Board

#: LUT4 per lane and membrane bit, at least (about 3/4 of the measured slope)
LANE_LUTS = {"ice40": 8, "ecp5": 4}
#: iCE40 SB_RAM40_4K read/write modes (depth, width)
ICE40_MODES = ((256, 16), (512, 8), (1024, 4), (2048, 2))
SPRAM_DEPTH, SPRAM_WIDTH = 16384, 16


def ice40_blocks(depth: int, width: int) -> int:
    """SB_RAM40_4K blocks for a memory of ``depth`` words of ``width`` bits (best mode)."""
    return min(-(-depth // d) * -(-width // w) for d, w in ICE40_MODES)


def spram_blocks(depth: int, width: int) -> int:
    """SB_SPRAM256KA blocks (16k × 16) for ``depth`` words of ``width`` bits."""
    return -(-depth // SPRAM_DEPTH) * -(-width // SPRAM_WIDTH)


def membrane_words(p: LayerParams) -> tuple[int, int]:
    """(words, bits per word) of layer ``p``'s V memory (and of C when ``c_ram``)."""
    return p.chunks, p.lanes * p.mb


@dataclass(frozen=True)
class Needs:
    """Lower bounds of one design on one board's device."""

    membrane_blocks: int    # iCE40 EBR for V and C
    memory_blocks: int      # iCE40 EBR for V, C and the ROM weights
    spram_blocks: int       # SPRAM for the run-time weights and SPRAM membranes
    lane_luts: int          # LUT4 for the lanes
    dsps: int               # ECP5 MULT18X18D for direct-input lanes


def layer_membrane_blocks(p: LayerParams) -> int:
    """iCE40 EBR for layer ``p``'s V (and C) memory, if in block RAM (0 in SPRAM)."""
    if p.m_spram:
        return 0
    return ice40_blocks(*membrane_words(p)) * (2 if p.c_ram else 1)


def layer_spram_blocks(p: LayerParams) -> int:
    """SB_SPRAM256KA for layer ``p``'s run-time weights and SPRAM membranes."""
    return ((spram_blocks(p.w_words, p.lanes * p.wb) if p.w_runtime else 0)
            + (spram_blocks(p.chunks, p.spram_word_bits) if p.m_spram else 0))


def memories(p: LayerParams, weights: bool) -> list[tuple[int, float]]:
    """(EBR blocks, logic cells if in logic instead) of layer ``p``'s V, C and (with
    ``weights``, unless run-time) ROM weights."""
    words, bits = membrane_words(p)
    out = [] if p.m_spram else [(ice40_blocks(words, bits), float(words * bits))] * (
        2 if p.c_ram else 1)
    if weights and not p.w_runtime:
        out.append((ice40_blocks(p.w_words, p.lanes * p.wb), p.w_bits / 16))
    return out


def ebr_bound(items: list[tuple[int, float]], logic: float) -> int:
    """Fewest EBR the memories ``items`` need when ``logic`` cells may hold some of them
    (fractional greedy by blocks saved per cell: a lower bound)."""
    need = sum(b for b, _ in items)
    saved = 0.0
    for blocks, cells in sorted(items, key=lambda t: -t[0] / max(t[1], 1.0)):
        take = min(1.0, logic / max(cells, 1.0))
        saved += take * blocks
        logic -= take * cells
        if logic <= 0:
            break
    return max(0, need - int(saved))


def needs(board: Board, design: Design) -> Needs:
    """The lower bounds of ``design`` on ``board`` (block counts only for the iCE40)."""
    ice = board.family == "ice40"
    layers = design.layers
    lane_luts = LANE_LUTS.get(board.family, 0) * sum(p.lanes * p.mb for p in layers)
    logic = max(0, board.luts - lane_luts)

    def ebr(weights: bool) -> int:
        return ebr_bound([m for p in layers for m in memories(p, weights)], logic) if ice \
            else 0
    return Needs(
        membrane_blocks=ebr(False), memory_blocks=ebr(True),
        spram_blocks=sum(layer_spram_blocks(p) for p in layers) if ice else 0,
        lane_luts=lane_luts,
        dsps=sum(p.lanes for p in layers if p.vb > 1) if board.family == "ecp5" else 0)


def with_lanes(design: Design, lanes: list[int]) -> Design:
    """``design`` with other lanes per layer (sizes only; no files)."""
    layers = tuple(dataclasses.replace(p, lanes=n) for p, n in zip(design.layers, lanes,
                                                                    strict=True))
    return dataclasses.replace(design, layers=layers)


def spram_count(board: Board) -> int:
    """SB_SPRAM256KA blocks (16k × 16) of the board's device."""
    return board.spram_bits // (SPRAM_DEPTH * SPRAM_WIDTH)


def halve_widest(design: Design, lanes: list[int], direct_only: bool = False) -> int | None:
    """Halve, in ``lanes``, the lanes of the layer with the most lane·membrane bits among
    those with more than one lane (``direct_only``: among the direct-input layers, VB > 1);
    its index, or None if there is none."""
    cand = [i for i, p in enumerate(design.layers)
            if lanes[i] > 1 and (p.vb > 1 or not direct_only)]
    if not cand:
        return None
    i = max(cand, key=lambda i: lanes[i] * design.layers[i].mb)
    lanes[i] //= 2
    return i


def fewer_lanes(board: Board, design: Design) -> list[int] | None:
    """Lanes per layer that pass the lane, DSP and membrane bounds: halve, step by step,
    the layer with the most lane·membrane bits (among the direct-input layers while DSPs
    are short); None if even one lane per layer does not."""
    lanes = [p.lanes for p in design.layers]
    while True:
        n = needs(board, with_lanes(design, lanes))
        dsp_short = bool(board.dsps) and n.dsps > board.dsps
        ebr_short = board.family == "ice40" and n.membrane_blocks > board.bram_blocks
        if n.lane_luts <= board.luts and not dsp_short and not ebr_short:
            return lanes
        if halve_widest(design, lanes, direct_only=dsp_short) is None:
            return None
