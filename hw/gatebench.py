"""``qsnn verify --netlist``: the bitstream's netlist (:mod:`qsnn.hw.gate`) driven through
its UART pins by the host's own requests, compared with the golden model.

The requests are the bytes ``qsnn run`` sends (:mod:`qsnn.hw.host`): ``'?'`` (design id and
weights status), for a run-time-weight design ``'W'`` + ``weights.bin`` and ``'?'`` again,
then ``'I'`` + each encoded image. Python writes them once as two ``$readmemh`` files; the
Verilog bench ``hw/benches/qsnn_gate_tb.v`` sends them as 8N1 frames on ``uart_rx``, one
request at a time as the host does, decodes ``uart_tx`` and writes every answer byte with
the netlist's spike counts at its start bit (the counts net, :func:`qsnn.hw.gate.
counts_probe`), so no Python runs per bit or byte. The answers are read with the host's
parser (:func:`qsnn.hw.host.parse_info`) and checked: the design id equals the IR's, the
weights status is as expected before and after ``'W'``, ``'W'`` is acknowledged, and every
image's counts and prediction equal the golden model's (the report names the first
differing image and class).

A simulation that stops answering ends at the bench's per-answer timeout, from the cycle
model: twice the worst image of the run plus 10,000 cycles, plus the answer's own UART
time; a wall-clock guard above that ends a simulator that hangs itself.
"""

from __future__ import annotations

import os
import re
import resource
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from qsnn.errors import QsnnError
from qsnn.export.ir import Graph
from qsnn.hw import cycles, gate, host
from qsnn.hw.design import Design
from qsnn.hw.fpga.boards import Board

BITS = 10  # 8N1 frame


@dataclass(frozen=True)
class Request:
    """One host request: its bytes, the answer length, what it is (for messages)."""

    send: bytes
    reply: int
    label: str


def host_requests(design: Design, frames: list[bytes]) -> list[Request]:
    """The host's session: '?', ('W' + weights.bin, '?') for run-time weights, images."""
    reqs = [Request(host.info_request(), host.INFO_BYTES, "the info request")]
    if design.runtime_weights:
        blob = host._weights_blob(design.folder, design.id)
        reqs += [Request(host.weights_request(blob), 1, f"the weights ({len(blob)} bytes)"),
                 Request(host.info_request(), host.INFO_BYTES, "the second info request")]
    reqs += [Request(host.image_request(f), 1, f"image {i}") for i, f in enumerate(frames)]
    return reqs


def session(design: Design, graph: Graph, x: np.ndarray) -> tuple[list[Request], list[int]]:
    """The host's requests for the images ``x`` (encoded by :func:`qsnn.hw.host.
    encode_image`) and the cycle model's cycles per image."""
    frames = [host.encode_image(img, graph.input.encoding) for img in x]
    model = cycles.image_cycles(graph, design.layers, torch.from_numpy(np.asarray(x)))
    return host_requests(design, frames), [int(c) for c in model]


def answer_timeout(model: list[int]) -> int:
    """Cycles the bench waits for an answer after its request: twice the cycle model's
    worst image plus 10,000 (the answer's own UART time is added by the bench)."""
    return 2 * max(model, default=0) + 10_000


def stimulus_files(reqs: list[Request], work: Path, tag: str) -> tuple[Path, Path]:
    """``$readmemh`` files: per request ``{bytes[31:0], answer[7:0]}``; all request bytes."""
    index = work / f"requests-{tag}.hex"
    data = work / f"stimulus-{tag}.hex"
    index.write_text("".join(f"{len(r.send):08x}{r.reply:02x}\n" for r in reqs))
    raw = np.frombuffer(b"".join(r.send for r in reqs), np.uint8)
    hexd = np.frombuffer(b"0123456789abcdef", np.uint8)
    text = np.empty((raw.size, 3), np.uint8)
    text[:, 0], text[:, 1], text[:, 2] = hexd[raw >> 4], hexd[raw & 15], ord("\n")
    data.write_bytes(text.tobytes())
    return index, data


@dataclass(frozen=True)
class Answers:
    """Per request: the answer bytes, the cycles from the end of the request to the
    start of its first answer byte (None without answer) and the counts net at that start
    bit (hex as the bench wrote it, x/z included; None without answer)."""

    data: list[bytes]
    latency: list[int | None]
    counts: list[str | None]
    cycles: int           # simulated clock cycles in all


def parse(text: str, reqs: list[Request], where: str) -> Answers:
    """The bench's output -> :class:`Answers`; one-line :class:`QsnnError` on an ERROR
    line (naming the request: image i, the weights, ...) or a missing DONE line."""
    got: list[bytearray] = [bytearray() for _ in reqs]
    sent: dict[int, int] = {}
    first: dict[int, int] = {}
    counts: dict[int, str] = {}
    for line in text.splitlines():
        word = line.split()
        if not word:
            continue
        if word[0] == "ERROR":
            m = re.match(r"ERROR request (\d+): (.*)", line)
            what = (f"{reqs[int(m[1])].label}: {m[2]}" if m and int(m[1]) < len(reqs)
                    else line[6:])
            raise QsnnError(f"gate-level netlist {where}: {what}")
        if word[0] == "S":
            sent[int(word[1])] = int(word[2])
        elif word[0] == "B":
            r = int(word[1])
            got[r].append(int(word[2], 16))
            first.setdefault(r, int(word[3]))
            counts.setdefault(r, word[4])
    done_line = re.search(rf"^DONE {len(reqs)} (\d+)$", text, re.M)
    if not done_line:
        done = sum(len(g) == r.reply for g, r in zip(got, reqs, strict=True))
        raise QsnnError(f"gate-level netlist {where}: the simulation ended after {done} of "
                        f"{len(reqs)} answers, with no DONE line (the simulator died?)")
    lat = [first[i] - sent[i] if i in first and i in sent else None for i in range(len(reqs))]
    return Answers([bytes(g) for g in got], lat, [counts.get(i) for i in range(len(reqs))],
                   int(done_line[1]))


@dataclass(frozen=True)
class Target:
    """What the bench drives: Verilog files defining ``board_top`` (the netlist), the cell
    models, the counts net, and the folder for the simulator builds and runs."""

    sources: tuple[Path, ...]
    models: gate.CellModels
    probe: gate.Probe
    out: Path
    name: str             # for messages: "icebreaker"


def netlist_target(design: Design, board: Board,
                   clks_per_bit: int = gate.GATE_CLKS_PER_BIT) -> Target:
    """The synthesized netlist of ``board``'s top (cached, :func:`qsnn.hw.gate.netlist`)."""
    net = gate.netlist(design, board, clks_per_bit)
    return Target((net,), gate.cell_models(board.family, net.parent),
                  gate.counts_probe(net, design.classes), net.parent, board.name)


#: slowest simulated clock rates assumed by the wall-clock guard (cycles/s; measured on
#: the digits netlists: Verilator 50,000-150,000, Icarus 135-630)
FLOOR_SPEED = {"verilator": 2000, "icarus": 25}


@dataclass(frozen=True)
class Run:
    """A bench run: the answers, and the wall-clock seconds of the simulator's build
    (compile, or the cached Verilator executable's look-up) and of the simulation."""

    answers: Answers
    build_seconds: float
    sim_seconds: float
    sim_cpu_seconds: float  # the simulator's CPU time (user + system): load-independent


def child_cpu_seconds() -> float:
    """CPU seconds (user + system) of this process's finished child processes."""
    ru = resource.getrusage(resource.RUSAGE_CHILDREN)
    return ru.ru_utime + ru.ru_stime


def run(target: Target, board: Board, reqs: list[Request], timeout: int, seed: int,
        simulator: str, clks_per_bit: int = gate.GATE_CLKS_PER_BIT) -> Run:
    """Build (cached for Verilator) and simulate the bench around ``target`` answering
    ``reqs`` (``timeout``: cycles per answer)."""
    if simulator not in gate.SIMULATORS:
        raise QsnnError(f"unknown simulator '{simulator}' (choose from "
                        f"{', '.join(gate.SIMULATORS)})")
    nbytes = sum(len(r.send) for r in reqs)
    if simulator == "verilator":  # one build for any run up to 2^24 bytes / 2^16 requests
        if nbytes > 1 << 24 or len(reqs) > 1 << 16:
            raise QsnnError(f"{len(reqs)} requests of {nbytes} bytes: more than the gate "
                            "bench holds (2^16 requests, 2^24 bytes); ask for fewer images")
        sizes = (1 << 24, 1 << 16)
    else:
        sizes = (max(nbytes, 1), max(len(reqs), 1))
    params = gate.tb_params(board, clks_per_bit, *sizes, target.probe)
    work = target.out / "sim_run"
    work.mkdir(parents=True, exist_ok=True)
    tag = str(os.getpid())
    res, vvp = work / f"results-{tag}.txt", work / f"bench-{tag}.vvp"
    index, data = stimulus_files(reqs, work, tag)
    t0 = time.perf_counter()
    try:
        if simulator == "verilator":
            cmd = [str(gate.build_verilator(target.sources, target.models, params,
                                            target.probe, target.out / "sim_build"))]
        else:
            cmd = ["vvp", "-n", str(gate.build_icarus(target.sources, target.models, params,
                                                      target.probe, vvp))]
        cmd += [f"+requests={index}", f"+stimulus={data}", f"+results={res}",
                f"+n={len(reqs)}", f"+timeout={timeout}", f"+seed={seed}"]
        cycles = sum(BITS * 3 * clks_per_bit * len(r.send) + timeout for r in reqs)
        t1, c1 = time.perf_counter(), child_cpu_seconds()
        _launch(cmd, target.out, 600 + cycles / FLOOR_SPEED[simulator], target.name)
        t2, c2 = time.perf_counter(), child_cpu_seconds()
        text = res.read_text() if res.is_file() else ""
        return Run(parse(text, reqs, f"for {target.name}"), t1 - t0, t2 - t1, c2 - c1)
    finally:
        for f in (index, data, res, vvp):
            f.unlink(missing_ok=True)


def _launch(cmd: list[str], cwd: Path, wall_limit: float, board: str) -> None:
    try:
        res = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, check=False,
                             timeout=wall_limit)
    except subprocess.TimeoutExpired:
        raise QsnnError(f"gate-level simulation for {board}: no end after {wall_limit:.0f} s "
                        "of wall-clock time") from None
    if res.returncode != 0:
        tail = (res.stderr or res.stdout).strip().splitlines()[-1:] or ["(no output)"]
        raise QsnnError(f"gate-level simulation for {board} exited with status "
                        f"{res.returncode}: {tail[0]}")


def decode_counts(text: str | None, classes: int, bits: int) -> np.ndarray | None:
    """Per-class counts from the bench's hex of the counts net (class c in bits
    [bits c +: bits]); None when missing or any bit is x/z."""
    if text is None or not re.fullmatch(r"[0-9a-fA-F]+", text):
        return None
    value = int(text, 16)
    mask = (1 << bits) - 1
    return np.array([(value >> (bits * c)) & mask for c in range(classes)], dtype=np.int64)


def image_mismatch(image: int, pred: int, counts: np.ndarray | None, want: np.ndarray
                   ) -> dict[str, Any] | None:
    """How image ``image``'s answer differs from the golden counts ``want`` (the first
    differing class, else the prediction), or None when it is equal."""
    golden = int(np.argmax(want))  # lowest index on ties, as the readout
    out: dict[str, Any] = {"image": image, "prediction": pred, "golden_prediction": golden}
    if counts is None:
        return {**out, "what": "the counts net is x/z or unread"}
    diff = np.nonzero(counts != want)[0]
    if diff.size:
        c = int(diff[0])
        return {**out, "what": f"class {c}: count {int(counts[c])}, golden model "
                               f"{int(want[c])}", "class": c}
    if pred != golden:
        return {**out, "what": f"prediction {pred}, golden model {golden}"}
    return None


def check(design: Design, reqs: list[Request], ans: Answers, want: np.ndarray,
          count_bits: int) -> dict[str, Any]:
    """The answers against the host's expectations and the golden counts ``want``
    [images, classes] (``count_bits``: bits per class of the counts net): ``design_id``,
    ``weights_loaded`` (before and after 'W'), ``predictions``, ``mismatches`` (per
    differing image: :func:`image_mismatch`), ``errors`` (protocol, one line each;
    empty when all is well)."""
    errors: list[str] = []
    board_id, loaded = host.parse_info(ans.data[0])
    if board_id != design.id:
        errors.append(f"the netlist answers design id {board_id:08x}, the IR is "
                      f"{design.id:08x}")
    status = [loaded]
    n_pre = 1
    if design.runtime_weights:
        n_pre = 3
        if ans.data[1] != bytes([host.CMD_WEIGHTS]):
            errors.append(f"'W' answered {ans.data[1].hex()}, want {host.CMD_WEIGHTS:02x}")
        status.append(host.parse_info(ans.data[2])[1])
        if status != [False, True]:
            errors.append(f"weights status {status} before/after 'W', want [False, True]")
    elif not loaded:
        errors.append("the netlist reports its weights missing, but they are all in ROM")
    preds = [a[0] for a in ans.data[n_pre:]]
    counts = [decode_counts(c, want.shape[1], count_bits) for c in ans.counts[n_pre:]]
    bad = [m for i, (p, c) in enumerate(zip(preds, counts, strict=True))
           if (m := image_mismatch(i, p, c, want[i])) is not None]
    return {"design_id": f"{board_id:08x}", "weights_loaded": status,
            "predictions": preds, "mismatches": bad, "errors": errors,
            "latency_cycles": [v for v in ans.latency[n_pre:] if v is not None]}
