"""The boards: data only (device, pins, clock, memories, programmer name).

A board names its FPGA family (:mod:`qsnn.hw.fpga.family`); its pins are constrained in
``hw/boards/<constraints>``, whose ports are those of the generated ``board_top``
(``clk_in``, ``uart_rx``, ``uart_tx``, ``led_busy``, ``led_ready`` and the board's
constant outputs).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from qsnn.errors import QsnnError
from qsnn.hw.fpga.family import Family, get_family

BOARDS_DIR = Path(__file__).resolve().parent.parent / "boards"


@dataclass(frozen=True)
class Board:
    """One target board: device, package, pins (in ``hw/boards/<constraints>``), clock."""

    name: str
    family: str                    # a registered Family name: "ice40" | "ecp5"
    device: str                    # part number as printed
    nextpnr_device: tuple[str, ...]
    constraints: str               # file in hw/boards/
    clock_mhz: float               # board oscillator
    pins: dict[str, str]           # port of board_top -> package pin (documentation)
    led_active_low: bool
    loader: str                    # openFPGALoader -b <loader> (its board names)
    constant_outputs: dict[str, int] = field(default_factory=dict)
    pll_pad: bool = False          # iCE40: the clock pin is the PLL's pad (SB_PLL40_PAD)
    bram_blocks: int = 0           # block RAMs and their bits (EBR 4 kbit, DP16KD 18 kbit)
    bram_block_bits: int = 0
    spram_bits: int = 0            # iCE40 UltraPlus single-port RAM (4 x 256 kbit)
    luts: int = 0                  # LUT4s
    dsps: int = 0                  # multipliers the flow maps products to (ECP5 MULT18X18D;
    #                                the iCE40 flow runs synth_ice40 without -dsp: 0)
    notes: str = ""

    @property
    def fpga(self) -> Family:
        """The family object that runs this board's flow."""
        return get_family(self.family)

    @property
    def bitstream_suffix(self) -> str:
        return self.fpga.bitstream_suffix


BOARDS: dict[str, Board] = {
    "icebreaker": Board(
        name="icebreaker", family="ice40", device="iCE40UP5K-SG48",
        nextpnr_device=("--up5k", "--package", "sg48"), constraints="icebreaker.pcf",
        clock_mhz=12.0,
        pins={"clk_in": "35", "uart_rx": "6", "uart_tx": "9", "led_busy": "11 (LEDR_N)",
              "led_ready": "37 (LEDG_N)"},
        led_active_low=True, loader="ice40_generic", pll_pad=True, bram_blocks=30,
        bram_block_bits=4096, spram_bits=4 * 262144, luts=5280,
        notes="UART on the FTDI FT2232H channel B (second USB serial port)"),
    "ulx3s": Board(
        name="ulx3s", family="ecp5", device="LFE5U-85F-6BG381C",
        nextpnr_device=("--85k", "--package", "CABGA381"), constraints="ulx3s.lpf",
        clock_mhz=25.0,
        pins={"clk_in": "G2", "uart_rx": "M1 (ftdi_txd)", "uart_tx": "L4 (ftdi_rxd)",
              "led_busy": "B2 (led[0])", "led_ready": "C2 (led[1])",
              "wifi_gpio0": "L2 (held high)"},
        led_active_low=False, loader="ulx3s", constant_outputs={"wifi_gpio0": 1},
        bram_blocks=208, bram_block_bits=18432, luts=83640, dsps=156,
        notes="UART on the FT231X (US1 port); wifi_gpio0 high keeps the ESP32 from "
              "resetting the board"),
    "orangecrab": Board(
        name="orangecrab", family="ecp5", device="LFE5U-25F-8MG285C",
        nextpnr_device=("--25k", "--package", "CSFBGA285"), constraints="orangecrab.lpf",
        clock_mhz=48.0,
        pins={"clk_in": "A9", "uart_rx": "N17 (Feather pin 0 / RX)",
              "uart_tx": "M18 (Feather pin 1 / TX)", "led_busy": "K4 (RGB red)",
              "led_ready": "M3 (RGB green)", "led_blue": "J3 (RGB blue, off)"},
        led_active_low=True, loader="orangeCrab", constant_outputs={"led_blue": 1},
        bram_blocks=56, bram_block_bits=18432, luts=24288, dsps=28,
        notes="no USB-serial bridge: the UART is on Feather header pins 0 (RX, N17) and "
              "1 (TX, M18); wire a 3.3 V USB-serial adapter there"),
}


def get_board(name: str) -> Board:
    """The board called ``name`` or a one-line error listing the known ones."""
    try:
        return BOARDS[name]
    except KeyError:
        raise QsnnError(f"unknown board '{name}': known boards are "
                        f"{', '.join(sorted(BOARDS))}") from None
