"""``qsnn hw``: an IR -> ``hw/build/<name>/`` (top-level wrapper, memory files, file list, .core).

Python writes only parameters, wiring and ``$readmemh`` files; the cores are the
hand-written Verilog of ``hw/rtl/`` (copied into the output folder so that it is
self-contained). Same IR and options give byte-identical files (no timestamps).
Supported: ``[flatten] (linear lif)+ readout`` with direct, rate or event input.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np

from qsnn import outdir
from qsnn.errors import QsnnError
from qsnn.export import serialize
from qsnn.export.ir import LIF, Encoding, Flatten, Graph, Leak, Linear, Readout, Reset
from qsnn.hw.cores import BOARD_FILES, RTL_DIR, RTL_FILES, UART_FILES
from qsnn.hw.design import (
    COUNT_BITS,
    PARAMS_FILE,
    TOP_FILE,
    WEIGHTS_FILE,
    Design,
    LayerParams,
    design_id,
    input_bytes,
    ir_sha256,
    m_count_bits,
    weight_bytes,
)
from qsnn.hw.top import top_verilog

MAX_LANES = 64

__all__ = ["COUNT_BITS", "RTL_DIR", "RTL_FILES", "UART_FILES", "Design", "LayerParams",
           "design_id", "generate", "input_bytes", "ir_sha256", "layer_mems", "layer_params",
           "pack_words", "top_verilog", "weight_blob"]


def layer_params(graph: Graph, lanes: int,
                 runtime_weights: tuple[int, ...] | str = ()) -> list[LayerParams]:
    """Per-layer parameters; refuses what the hardware cannot express (one line each).

    ``runtime_weights``: indices of the layers whose weights are loaded at run time
    (RAM, ``weights.bin``) instead of ROM initialised from the bitstream; ``"all"``: every
    layer."""
    everything = runtime_weights == "all"
    runtime_weights = () if everything else tuple(runtime_weights)
    if not 1 <= lanes <= MAX_LANES:
        raise QsnnError(f"--lanes {lanes}: must be 1..{MAX_LANES}")
    inp = graph.input
    if inp.pixel_max > 255 and inp.encoding != Encoding.EVENTS:  # event frames: 0/1 bytes
        raise QsnnError(f"IR input: pixel_max {inp.pixel_max} exceeds the 8-bit input stream "
                        "(limit 255)")
    out, pending = [], None
    for node in graph.nodes:
        if isinstance(node, Linear):
            pending = node
        elif isinstance(node, LIF):
            if node.membrane_bits > 32:
                raise QsnnError(f"IR node '{node.name}': membrane_bits {node.membrane_bits} "
                                "exceeds the hardware limit of 32")
            direct = not out and inp.encoding == Encoding.DIRECT
            out.append(LayerParams(
                len(out), pending.in_features, pending.out_features, min(lanes,
                pending.out_features), pending.weight_bits, node.membrane_bits,
                8 if direct else 1, Leak(node.leak).code, node.leak_param,
                node.frac_bits, Reset(node.reset).code,
                int(everything or len(out) in runtime_weights)))
        elif not isinstance(node, (Flatten, Readout)):
            raise QsnnError(f"IR node '{node.name}': {type(node).__name__} is not supported by "
                            "the hardware generator yet (fully connected layers only)")
    if graph.classes > 256:
        raise QsnnError(f"IR readout: {graph.classes} classes exceed the limit of 256")
    bad = sorted(set(runtime_weights) - set(range(len(out))))
    if bad:
        raise QsnnError(f"--runtime-weights: no layer {bad[0]} (the network has layers "
                        f"0..{len(out) - 1})")
    return out


def weight_blob(mems: dict[str, list[str]], layers: list[LayerParams]) -> bytes:
    """``weights.bin``: for every run-time-loaded layer in order, its weight words
    (address 0 first), each ``w_word_bytes`` bytes, least significant byte first."""
    out = bytearray()
    for p in layers:
        if p.w_runtime:
            for word in mems[f"l{p.index}_w.mem"]:
                out += int(word, 16).to_bytes(p.w_word_bytes, "little")
    return bytes(out)


# -- memory files ----------------------------------------------------------------------------
def pack_words(values: np.ndarray, bits: int) -> list[str]:
    """Rows of lane values (two's complement, lane 0 lowest) as fixed-width hex words."""
    mask = (1 << bits) - 1
    digits = -(-values.shape[1] * bits // 4)
    words = []
    for row in values.astype(np.int64):
        word = 0
        for lane, v in enumerate(row.tolist()):
            word |= (int(v) & mask) << (lane * bits)
        words.append(f"{word:0{digits}x}")
    return words


def layer_mems(p: LayerParams, lin: Linear, lif: LIF) -> dict[str, list[str]]:
    """``l<i>_w.mem``, ``l<i>_theta.mem``, ``l<i>_bias.mem`` (neurons padded to K*P)."""
    k, lanes = p.chunks, p.lanes
    pad = k * lanes
    w = np.zeros((pad, p.n_in), np.int64)
    w[: p.n] = lin.weight
    theta = np.full(pad, (1 << (p.mb - 1)) - 1, np.int64)
    theta[: p.n] = lif.theta
    bias = np.zeros(pad, np.int64)
    if lif.bias is not None:
        bias[: p.n] = lif.bias
    # word j*K + c = W[c*P + lane][j]
    w_words = w.T.reshape(p.n_in * k, lanes)
    w_file, th_file, b_file = p.mem_files()
    return {
        w_file: pack_words(w_words, p.wb),
        th_file: pack_words(theta.reshape(k, lanes), p.mb),
        b_file: pack_words(bias.reshape(k, lanes), p.mb),
    }


def core_file(name: str, files: list[str], mems: list[str]) -> str:
    """A FuseSoC CAPI2 core description of the generated design."""
    safe = "".join(c if c.isalnum() else "_" for c in name)
    rtl = "\n".join(f"      - {f}" for f in files)
    mem = "\n".join(f"      - {m}: {{file_type: user, copyto: {m}}}" for m in mems)
    return f"""CAPI=2:
name: qsnn:generated:{safe}:0.1.0
description: qsnn LIF accelerator generated from the IR '{name}'

filesets:
  rtl:
    files:
{rtl}
    file_type: verilogSource-2005
  mem:
    files:
{mem}

targets:
  default:
    filesets: [rtl, mem]
    toplevel: qsnn_top
  lint:
    default_tool: verilator
    filesets: [rtl, mem]
    toplevel: qsnn_top
    tools:
      verilator:
        mode: lint-only
        verilator_options: [-Wall, --default-language, 1364-2005]
"""


def generate(build_dir: str | Path, out: str | Path, lanes: int = 4,
             runtime_weights: tuple[int, ...] | str = ()) -> dict:
    """Write the design for the IR in ``build_dir`` into ``out``; returns params.json.

    ``runtime_weights``: layers whose weights live in RAM loaded at run time from
    ``weights.bin`` (UART 'W' command) instead of bitstream-initialised ROM."""
    graph = serialize.load(build_dir)
    layers = layer_params(graph, lanes, runtime_weights)
    lins = [n for n in graph.nodes if isinstance(n, Linear)]
    mems: dict[str, list[str]] = {}
    for p, lin, lif in zip(layers, lins, graph.lifs(), strict=True):
        mems.update(layer_mems(p, lin, lif))
    blob = weight_blob(mems, layers)
    ir_hash = ir_sha256(Path(build_dir))
    out = Path(out)
    design = Design(
        folder=out, name=graph.name, ir_sha256=ir_hash, lanes=lanes,
        time_steps=graph.time_steps, encoding=graph.input.encoding,
        pixel_max=graph.input.pixel_max, lfsr_seed=graph.input.lfsr_seed,
        classes=graph.classes, count_bits=m_count_bits(graph.time_steps),
        input_bytes=input_bytes(graph),
        layers=tuple(layers), runtime_weights=tuple(p.index for p in layers if p.w_runtime),
        weight_bytes=weight_bytes(layers), rtl=RTL_FILES + (TOP_FILE,))
    with outdir.Output(out, "hw", inputs=[build_dir]) as staging:
        for f in RTL_FILES + UART_FILES + BOARD_FILES:
            shutil.copyfile(RTL_DIR / f, staging / f)
        (staging / TOP_FILE).write_text(top_verilog(graph, layers, design.id))
        if blob:
            (staging / WEIGHTS_FILE).write_bytes(blob)
        for name, words in sorted(mems.items()):
            (staging / name).write_text("\n".join(words) + "\n")
        files = list(design.rtl)
        (staging / "filelist.f").write_text("\n".join(files) + "\n")
        (staging / "filelist_uart.f").write_text("\n".join(files + list(UART_FILES)) + "\n")
        (staging / f"qsnn_{graph.name}.core").write_text(
            core_file(graph.name, files, sorted(mems)))
        (staging / PARAMS_FILE).write_text(design.params_json())
    return design.to_params()
