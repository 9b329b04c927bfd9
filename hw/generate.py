"""``qsnn hw``: an IR -> ``hw/build/<name>/`` (top-level wrapper, memory files, file list, .core).

Python writes only parameters, wiring and ``$readmemh`` files; the cores are the
hand-written Verilog of ``hw/rtl/`` (copied into the output folder so that it is
self-contained). Same IR and options give byte-identical files (no timestamps).
Supported: blocks ``[flatten] (linear | conv2d) [sumpool] lif`` and a readout, with direct,
rate or event input (per-layer parameters, limits, lanes and pooling: ``qsnn.hw.layers``;
the conv engine's memory layout: ``qsnn.hw.convmap``).
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np

from qsnn import outdir
from qsnn.export import serialize
from qsnn.export.ir import LIF, Conv2d, Linear
from qsnn.hw import convmap
from qsnn.hw.cores import (
    BOARD_FILES,
    CONV_FILES,
    RTL_DIR,
    RTL_FILES,
    SPRAM_FILES,
    UART_FILES,
)
from qsnn.hw.design import (
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
from qsnn.hw.layers import (
    DEFAULT_BOARD,
    MAX_LANES,
    Block,
    Lanes,
    Membranes,
    Pool,
    blocks,
    layer_params,
)
from qsnn.hw.top import top_verilog

__all__ = ["MAX_LANES", "RTL_DIR", "RTL_FILES", "UART_FILES", "Design",
           "LayerParams", "design_id", "generate", "input_bytes", "ir_sha256", "layer_mems",
           "layer_params", "pack_words", "top_verilog", "weight_blob"]


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


def layer_mems(p: LayerParams, lin: Linear | Conv2d, lif: LIF) -> dict[str, list[str]]:
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


def block_mems(p: LayerParams, block: Block) -> dict[str, list[str]]:
    """The ``$readmemh`` files of one layer: fully connected (:func:`layer_mems`) or
    convolutional (``convmap.conv_mems``: Wf fused, W for the address map)."""
    if not p.conv:
        return layer_mems(p, block.weight, block.lif)
    return convmap.conv_mems(p.geom(), block.weight.weight, block.lif.theta, block.lif.bias,
                             p.mb, prefix=f"l{p.index}")


def generate(build_dir: str | Path, out: str | Path, lanes: Lanes = 4,
             runtime_weights: tuple[int, ...] | str = (), pool: Pool = "auto",
             board: str = DEFAULT_BOARD, note=None, membranes: Membranes = "bram") -> dict:
    """Write the design for the IR in ``build_dir`` into ``out``; returns params.json.

    ``lanes``: one value for every layer or one per layer (capped at each layer's output
    channels/neurons); ``pool``: ``fused``, ``map`` or ``auto`` for every conv layer, or
    one per conv layer (``auto`` decides by ``board``'s block RAM: ``qsnn.hw.layers``);
    ``runtime_weights``: layers whose weights live in RAM loaded at run time from
    ``weights.bin`` (UART 'W' command) instead of bitstream-initialised ROM; ``note``:
    called with each note line (lanes capped, pooling chosen); ``membranes``: ``bram``
    or ``spram`` for every layer, or one per layer (``qsnn.hw.layers``)."""
    graph = serialize.load(build_dir)
    layers = layer_params(graph, lanes, runtime_weights, pool, board, note, membranes)
    mems: dict[str, list[str]] = {}
    for p, block in zip(layers, blocks(graph), strict=True):
        mems.update(block_mems(p, block))
    blob = weight_blob(mems, layers)
    ir_hash = ir_sha256(Path(build_dir))
    out = Path(out)
    cores = (RTL_FILES + (CONV_FILES if any(p.conv for p in layers) else ())
             + (SPRAM_FILES if any(p.m_spram for p in layers) else ()))
    design = Design(
        folder=out, name=graph.name, ir_sha256=ir_hash,
        lanes=lanes if isinstance(lanes, int) else max(lanes),
        time_steps=graph.time_steps, encoding=graph.input.encoding,
        pixel_max=graph.input.pixel_max, lfsr_seed=graph.input.lfsr_seed,
        classes=graph.classes, count_bits=m_count_bits(graph.time_steps),
        input_bytes=input_bytes(graph),
        layers=tuple(layers), runtime_weights=tuple(p.index for p in layers if p.w_runtime),
        weight_bytes=weight_bytes(layers), rtl=cores + (TOP_FILE,))
    with outdir.Output(out, "hw", inputs=[build_dir]) as staging:
        for f in cores + UART_FILES + BOARD_FILES:
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
