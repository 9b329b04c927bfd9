"""qsnn.hw.fpga: bitstreams for boards with the open YoWASP flow, and programming them.

Split by job: :mod:`~qsnn.hw.fpga.boards` (boards as data), :mod:`~qsnn.hw.fpga.family`
(one object per FPGA family: tools, commands, resource names; :mod:`~qsnn.hw.fpga.ice40`,
:mod:`~qsnn.hw.fpga.ecp5`), :mod:`~qsnn.hw.fpga.tools` (finding and running tools),
:mod:`~qsnn.hw.fpga.pll` (clock and UART divisor), :mod:`~qsnn.hw.fpga.wrapper` (the
generated ``board_top``), :mod:`~qsnn.hw.fpga.fit` (fit rules; the lower bounds in
:mod:`~qsnn.hw.fpga.needs`),
:mod:`~qsnn.hw.fpga.report` (``report.json``), :mod:`~qsnn.hw.fpga.flow` (``qsnn
bitstream``), :mod:`~qsnn.hw.fpga.program` (``qsnn program``). Adding a family is one
new module registering a :class:`~qsnn.hw.fpga.family.Family`, imported here.
"""

from qsnn.hw.fpga import ecp5, ice40, needs  # noqa: F401  (register the families)
from qsnn.hw.fpga.boards import BOARDS, BOARDS_DIR, Board, get_board
from qsnn.hw.fpga.family import FAMILIES, Family, get_family
from qsnn.hw.fpga.fit import fit_error, overflow, precheck_fit
from qsnn.hw.fpga.flow import bitstream
from qsnn.hw.fpga.pll import BAUD, MAX_BAUD_ERROR, Clock, make_clock
from qsnn.hw.fpga.program import LOADER, program
from qsnn.hw.fpga.report import (
    DEFAULT_MODEL_IMAGES,
    cycles_per_inference,
    format_report,
    parse_fmax_log,
    parse_nextpnr,
    parse_utilisation_log,
    timing_error,
)
from qsnn.hw.fpga.tools import find_tool, toolchain
from qsnn.hw.fpga.wrapper import LED_STRETCH_S, POR_BITS, board_top_verilog

__all__ = ["BAUD", "BOARDS", "BOARDS_DIR", "DEFAULT_MODEL_IMAGES", "FAMILIES", "LED_STRETCH_S",
           "LOADER", "MAX_BAUD_ERROR", "POR_BITS", "Board", "Clock", "Family",
           "bitstream", "board_top_verilog", "cycles_per_inference", "find_tool",
           "fit_error", "format_report", "get_board", "get_family", "make_clock", "needs",
           "overflow", "parse_fmax_log", "parse_nextpnr", "parse_utilisation_log",
           "precheck_fit", "program", "timing_error", "toolchain"]
