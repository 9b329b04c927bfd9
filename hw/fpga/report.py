"""``report.json`` of a bitstream: nextpnr's utilisation and fmax, cycles per inference,
latency and throughput; the timing verdict; a human-readable table.

    latency = cycles / f;   compute rate = f / cycles
    UART rate = 1 / ((input_bytes + 1) * 10 / (f / CLKS_PER_BIT) + latency)
"""

from __future__ import annotations

import json
import math
import re
from pathlib import Path
from typing import Any

from qsnn.errors import QsnnError
from qsnn.hw.design import Design
from qsnn.hw.fpga.boards import Board
from qsnn.hw.fpga.pll import BAUD, Clock

DEFAULT_MODEL_IMAGES = 64      # golden inputs the cycle model averages over

_UTIL_RE = re.compile(r"^\s*(?:Info:\s*)?([A-Za-z0-9_]+):\s+(\d+)\s*/\s*(\d+)\s+(\d+)%",
                      re.MULTILINE)
_FMAX_RE = re.compile(r"Max frequency for clock\s+'([^']+)':\s+([\d.]+)\s+MHz\s+\((PASS|FAIL)"
                      r" at\s+([\d.]+)\s+MHz\)")


def parse_utilisation_log(text: str) -> dict[str, dict[str, int]]:
    """nextpnr's "Device utilisation:" block -> {cell type: {"used", "available"}}."""
    start = text.rfind("Device utilisation:")
    if start < 0:
        return {}
    out: dict[str, dict[str, int]] = {}
    for m in _UTIL_RE.finditer(text[start:]):
        out.setdefault(m.group(1), {"used": int(m.group(2)), "available": int(m.group(3))})
    return out


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
    return {"utilisation": util or parse_utilisation_log(log),
            "fmax": fmax or parse_fmax_log(log)}


def timing_error(report: dict[str, Any]) -> str:
    """The one-line 'timing not met' message: by how much, and what to do."""
    f, c = report["fmax_mhz"], report["clock_mhz"]
    return (f"timing not met on {report['board']}: fmax {f:.2f} MHz < clock {c:.2f} MHz "
            f"(short by {c - f:.2f} MHz, {100 * (c - f) / c:.0f}%); use fewer lanes "
            f"(qsnn hw --lanes) or a clock of at most {math.floor(f * 10) / 10:g} MHz "
            "(bitstream and report.json written with timing_met false)")


def cycles_per_inference(design: Design, build_dir: str | Path | None,
                         images: int = DEFAULT_MODEL_IMAGES) -> tuple[float | None, str]:
    """(mean cycles per inference, where from): the RTL simulation's ``sim_report.json``
    in the design folder if present, else the cycle model of the design's own layers
    (lanes and pooling from ``params.json``, as ``qsnn hw --estimate`` with the options
    that made it) on the IR's first ``images`` golden inputs."""
    sim = design.folder / "sim_report.json"
    if sim.is_file():
        rep = _read_sim_report(sim)
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
    design.check_fresh(build_dir)
    graph = serialize.load(build_dir)
    x = torch.from_numpy(serialize.load_vectors(build_dir, graph)["inputs"][:images])
    cyc = image_cycles(graph, design.layers, x)   # its lanes, pooling and membranes
    return float(np.mean(cyc)), f"cycle model ({len(cyc)} golden inputs)"


def _read_sim_report(path: Path) -> dict[str, Any]:
    """``sim_report.json`` of ``qsnn verify``, or a one-line error when it is not one."""
    try:
        rep = json.loads(path.read_text())
    except (OSError, ValueError, UnicodeDecodeError) as exc:
        raise QsnnError(f"{path} is corrupt ({type(exc).__name__}): run qsnn verify again "
                        "or delete it") from None
    if not isinstance(rep, dict) or not isinstance(
            rep.get("cycles_per_inference_mean", 0), (int, float)):
        raise QsnnError(f"{path} is not a qsnn verify report: run qsnn verify again or "
                        "delete it")
    return rep


def performance(design: Design, clock: Clock, fmax: float | None,
                cycles: float | None) -> dict[str, Any]:
    """Timing verdict, latency and throughput at the achieved clock."""
    f_hz = clock.achieved_mhz * 1e6
    latency_us = cycles / clock.achieved_mhz if cycles else None
    uart_s = (design.input_bytes + 1) * 10 / (f_hz / clock.clks_per_bit)
    return {
        "fmax_mhz": fmax,
        "clock_mhz": clock.achieved_mhz,
        "clock_requested_mhz": clock.requested_mhz,
        "pll": clock.pll_verilog is not None,
        "uart_baud": BAUD,
        "uart_clks_per_bit": clock.clks_per_bit,
        "uart_baud_error": round(clock.baud_error, 6),
        "timing_met": fmax is not None and fmax >= clock.achieved_mhz,
        "latency_us": latency_us,
        "inferences_per_second": (f_hz / cycles) if cycles else None,
        "uart_inferences_per_second": 1.0 / (uart_s + (latency_us or 0) * 1e-6),
    }


def utilisation(board: Board, util: dict[str, dict[str, int]], stat: dict[str, Any]
                ) -> dict[str, Any]:
    """Resource counts of the report (names common to every family)."""
    fam = board.fpga

    def used(key: str) -> int:
        return util.get(key, {}).get("used", 0)

    def avail(key: str) -> int | None:
        return util.get(key, {}).get("available")

    return {"logic_cells_used": used(fam.logic_key), "logic_cells_total": avail(fam.logic_key),
            "bram_used": used(fam.bram_key), "bram_total": avail(fam.bram_key),
            "dsp_used": used(fam.dsp_key), **fam.usage(util, stat)}


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
