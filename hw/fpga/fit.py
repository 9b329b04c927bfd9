"""Fit rules: does a design fit a board's device?

Before synthesis (:func:`precheck_fit`): ROM weights (initialised by the bitstream) may
use block RAM and LUTs as ROM (16 bits per LUT4); run-time-loaded weights also the SPRAM.
A design whose weights alone exceed that is refused without running the tools. After
place and route (:func:`fit_error`): every resource nextpnr reports over its capacity.
"""

from __future__ import annotations

import math

from qsnn.hw.design import Design
from qsnn.hw.fpga.boards import Board
from qsnn.hw.fpga.tools import first_error

LUT_ROM_BITS = 16              # bits of ROM in one LUT4


def precheck_fit(board: Board, design: Design) -> str | None:
    """The 'does not fit' message when the weights alone exceed every memory bit the device
    has, so that synthesis is not even tried; else None (nextpnr decides)."""
    rom = design.weight_bits(runtime=False)
    total = design.weight_bits()
    bram = board.bram_blocks * board.bram_block_bits
    if not bram:
        return None
    luts = LUT_ROM_BITS * board.luts
    where = f"{board.device} ({board.name})"
    if rom > bram + luts:
        need = -(-rom // board.bram_block_bits)
        hint = (f"; generate with qsnn hw --runtime-weights 0 to keep the first layer's "
                f"weights in the {board.spram_bits} bits of SPRAM, loaded over the UART"
                if board.spram_bits and total <= board.spram_bits + bram + luts
                else "; use a smaller network or a larger board")
        return (f"design does not fit {where}: block RAM: the ROM weights alone need {rom} "
                f"bits = at least {need} blocks of {board.bram_block_bits} bits, the device "
                f"has {board.bram_blocks} ({bram} bits; checked before synthesis){hint}")
    if total > board.spram_bits + bram + luts:
        return (f"design does not fit {where}: the weights need {total} bits, the device has "
                f"{bram} bits of block RAM and {board.spram_bits} of SPRAM (checked before "
                "synthesis); use a smaller network or a larger board")
    return None


def overflow(util: dict[str, dict[str, int]], board: Board) -> str | None:
    """Every resource whose use exceeds the device, worst first, e.g.
    'block RAM 117/30 (ICESTORM_RAM, 390%)'."""
    names = board.fpga.resources
    bad = sorted(((v["used"] / max(v["available"], 1), key, v) for key, v in util.items()
                  if v["used"] > v["available"]), key=lambda t: (-t[0], t[1]))
    return ", ".join(f"{names.get(key, key)} {v['used']}/{v['available']}"
                     f" ({key}, {math.floor(100 * ratio)}%)" for ratio, key, v in bad) or None


def fit_error(board: Board, util: dict[str, dict[str, int]], log: str) -> str:
    """The one-line 'does not fit' message (resource and numbers, else nextpnr's error)."""
    over = overflow(util, board)
    if over:
        return (f"design does not fit {board.device} ({board.name}): {over} "
                "(used/available); use fewer lanes or a smaller network, or a larger board")
    return f"place and route failed for {board.name}: {first_error(log)}"
