"""One object per FPGA family: its tools, commands, resource names and fit rules.

A family knows how to synthesize (Yosys script command), place and route (nextpnr
arguments), pack the bitstream, ask its PLL tool for a clock and read that tool's answer,
and which nextpnr cell types count as logic, block RAM, DSP, flip-flops. Adding a family
(Gowin via Apicula, Xilinx 7-series via openXC7) is one new module with a subclass of
:class:`Family`, registered with :func:`register`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar

from qsnn.errors import QsnnError

if TYPE_CHECKING:
    from qsnn.hw.fpga.boards import Board


class Family:
    """The flow of one FPGA family (subclasses fill the class attributes and commands)."""

    name: ClassVar[str] = ""
    #: command -> PyPI package that ships it (synthesis, place and route, pack)
    tools: ClassVar[dict[str, str]] = {}
    #: (PLL tool command, its PyPI package)
    pll_tool: ClassVar[tuple[str, str]] = ("", "")
    bitstream_suffix: ClassVar[str] = ".bit"
    layout_file: ClassVar[str] = ""          # nextpnr's output, input of the packer
    #: nextpnr cell type -> human name (for "does not fit" messages)
    resources: ClassVar[dict[str, str]] = {}
    logic_key: ClassVar[str] = ""            # nextpnr cell type of a logic cell
    bram_key: ClassVar[str] = ""
    dsp_key: ClassVar[str] = ""
    #: Verilog macros the family's synthesis defines (``read_verilog -D``)
    defines: ClassVar[tuple[str, ...]] = ()

    def synth_command(self) -> str:
        """The Yosys synthesis command (before ``-top``)."""
        raise NotImplementedError

    def pnr_command(self, tools: dict[str, str], board: Board, constraints: str
                    ) -> list[str]:
        """nextpnr for ``synth.json`` with the board's device and constraint file
        (clock, seed and report arguments are added by the flow)."""
        raise NotImplementedError

    def pack_command(self, tools: dict[str, str], bit_name: str) -> list[str]:
        """The packer: :attr:`layout_file` -> ``bit_name``."""
        raise NotImplementedError

    def pll_command(self, tools: dict[str, str], board: Board, mhz: float,
                    out_name: str) -> list[str]:
        """The PLL tool writing module ``board_pll`` (ports clock_in, clock_out, locked)
        for ``mhz`` from the board oscillator into ``out_name``."""
        raise NotImplementedError

    def pll_freq(self, verilog: str, f_in_mhz: float) -> float:
        """The output frequency of the PLL module the tool wrote."""
        raise NotImplementedError

    def usage(self, util: dict[str, dict[str, int]], stat: dict[str, Any]
              ) -> dict[str, int | None]:
        """``ff_used``, ``spram_used``, ``lutram_used`` from nextpnr's utilisation and
        Yosys' ``stat -json``."""
        raise NotImplementedError


FAMILIES: dict[str, Family] = {}


def register(cls: type[Family]) -> type[Family]:
    """Class decorator: make a family known by its name."""
    FAMILIES[cls.name] = cls()
    return cls


def get_family(name: str) -> Family:
    """The family called ``name`` (its module imported by ``qsnn.hw.fpga``)."""
    try:
        return FAMILIES[name]
    except KeyError:
        raise QsnnError(f"unknown FPGA family '{name}': known families are "
                        f"{', '.join(sorted(FAMILIES))}") from None


def cell_counts(stat: dict[str, Any]) -> dict[str, int]:
    """Cell type -> count from Yosys' ``stat -json`` (the design total, else the sum over
    modules)."""
    cells = dict((stat.get("design") or {}).get("num_cells_by_type") or {})
    if not cells:
        for m in (stat.get("modules") or {}).values():
            for k, v in (m.get("num_cells_by_type") or {}).items():
                cells[k] = cells.get(k, 0) + int(v)
    return {k: int(v) for k, v in cells.items()}

