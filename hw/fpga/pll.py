"""The clock of a board: the oscillator, or a PLL module computed by the family's PLL
tool (``yowasp-icepll`` / ``yowasp-ecppll``), and the UART divisor at that clock.

    CLKS_PER_BIT = max(4, round(f / BAUD));  baud error = |f / CLKS_PER_BIT - BAUD| / BAUD
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

from qsnn.errors import QsnnError
from qsnn.hw.fpga.boards import Board
from qsnn.hw.fpga.tools import first_error, run

BAUD = 115200
MAX_BAUD_ERROR = 0.02          # UART tolerates ~4-5 % total; keep our side under 2 %


@dataclass(frozen=True)
class Clock:
    requested_mhz: float
    achieved_mhz: float
    pll_verilog: str | None        # board_pll module, or None (oscillator used directly)

    @property
    def clks_per_bit(self) -> int:
        return max(4, round(self.achieved_mhz * 1e6 / BAUD))

    @property
    def baud_error(self) -> float:
        return abs(self.achieved_mhz * 1e6 / self.clks_per_bit - BAUD) / BAUD


def check_clock(clock_mhz: float | None) -> None:
    """One-line error for a requested clock outside (0, 1000] MHz (also NaN)."""
    if clock_mhz is not None and not 0 < clock_mhz <= 1000:
        raise QsnnError(f"--clock-mhz {clock_mhz:g}: must be in (0, 1000]")


def needs_pll(board: Board, clock_mhz: float | None) -> bool:
    """True when ``clock_mhz`` is not the board oscillator's frequency."""
    return clock_mhz is not None and not math.isclose(clock_mhz, board.clock_mhz,
                                                      rel_tol=1e-9)


def make_clock(board: Board, clock_mhz: float | None, tools: dict[str, str],
               out: Path) -> Clock:
    """The board oscillator, or a PLL module for ``clock_mhz`` (written by the family's
    PLL tool in ``out``)."""
    check_clock(clock_mhz)
    if clock_mhz is None or not needs_pll(board, clock_mhz):
        return Clock(board.clock_mhz, board.clock_mhz, None)
    fam, name = board.fpga, "pll.tmp.v"
    res = run(fam.pll_command(tools, board, clock_mhz, name), out, out / "pll.log")
    tmp = out / name
    if res.returncode != 0 or not tmp.is_file():
        raise QsnnError(f"no PLL setting for {clock_mhz:g} MHz from the {board.clock_mhz:g} "
                        f"MHz oscillator of {board.name}: "
                        f"{first_error(res.stdout + res.stderr)}")
    verilog = tmp.read_text()
    tmp.unlink()
    achieved = fam.pll_freq(verilog, board.clock_mhz)
    if abs(achieved - clock_mhz) > 0.05 * clock_mhz:
        raise QsnnError(f"the {board.name} PLL cannot make {clock_mhz:g} MHz from "
                        f"{board.clock_mhz:g} MHz (nearest {achieved:.3f} MHz)")
    return Clock(clock_mhz, achieved, verilog)


def check_baud(clock: Clock) -> None:
    """One-line error when the UART divisor misses 115200 baud by more than 2 %."""
    if clock.baud_error > MAX_BAUD_ERROR:
        raise QsnnError(f"{clock.achieved_mhz:.3f} MHz gives {BAUD} baud only within "
                        f"{100 * clock.baud_error:.1f}% (limit {100 * MAX_BAUD_ERROR:g}%): "
                        "choose another clock")
