"""``qsnn hw``: an IR -> ``hw/build/<name>/`` (top-level wrapper, memory files, file list, .core).

Python writes only parameters, wiring and ``$readmemh`` files; the cores are the
hand-written Verilog of ``hw/rtl/`` (copied into the output folder so that it is
self-contained). Same IR and options give byte-identical files (no timestamps).
Supported: ``[flatten] (linear lif)+ readout`` with direct, rate or event input.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from qsnn import outdir
from qsnn.errors import QsnnError
from qsnn.export import serialize
from qsnn.export.ir import LIF, Flatten, Graph, Linear, Readout

RTL_DIR = Path(__file__).resolve().parent / "rtl"
RTL_FILES = ("qsnn_lif_lane.v", "qsnn_layer.v", "qsnn_spikebuf.v", "qsnn_lfsr.v",
             "qsnn_encoder.v", "qsnn_readout.v", "qsnn_sequencer.v", "qsnn_wload.v")
UART_FILES = ("qsnn_uart_rx.v", "qsnn_uart_tx.v", "qsnn_uart_top.v")
ENC_CODES = {"direct": 0, "rate": 1, "events": 2}
RESET_CODES = {"subtract": 0, "zero": 1, "none": 2}
MAX_LANES = 64
COUNT_BITS = 16


@dataclass(frozen=True)
class LayerParams:
    """Verilog parameters of one ``qsnn_layer`` instance."""

    index: int
    n_in: int
    n: int
    lanes: int
    wb: int
    mb: int
    vb: int
    leak_mult: int
    leak_param: int
    frac_bits: int
    reset_mode: int
    w_runtime: int = 0   # 1: weights in RAM loaded at run time (weights.bin), 0: ROM

    @property
    def chunks(self) -> int:
        """K = ceil(N / P)."""
        return -(-self.n // self.lanes)

    @property
    def w_words(self) -> int:
        """Words of the weight memory (N_IN * K)."""
        return self.n_in * self.chunks

    @property
    def w_word_bytes(self) -> int:
        """Bytes per weight word in weights.bin (P * WB bits, rounded up)."""
        return -(-self.lanes * self.wb // 8)


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
    if inp.pixel_max > 255:
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
            direct = not out and inp.encoding == "direct"
            out.append(LayerParams(
                len(out), pending.in_features, pending.out_features, min(lanes,
                pending.out_features), pending.weight_bits, node.membrane_bits,
                8 if direct else 1, int(node.leak == "mult"), node.leak_param,
                node.frac_bits, RESET_CODES[node.reset],
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
    return {
        f"l{p.index}_w.mem": pack_words(w_words, p.wb),
        f"l{p.index}_theta.mem": pack_words(theta.reshape(k, lanes), p.mb),
        f"l{p.index}_bias.mem": pack_words(bias.reshape(k, lanes), p.mb),
    }


# -- top-level wrapper -----------------------------------------------------------------------
def _iw(n: int) -> int:
    return max(1, (n - 1).bit_length()) if n > 1 else 1


def top_verilog(graph: Graph, layers: list[LayerParams], ir_id: int = 0) -> str:
    """The generated ``qsnn_top``: parameters and instances only.

    ``ir_id``: 32-bit design identifier (the first 4 bytes of the IR hash) on ``info_id``."""
    enc = graph.input
    n_in0 = layers[0].n_in
    classes = graph.classes
    nl = len(layers)
    in_bytes = input_bytes(graph)
    cw = min(COUNT_BITS, max(1, graph.time_steps.bit_length()))
    rt = [p for p in layers if p.w_runtime]
    w_bytes = sum(p.w_words * p.w_word_bytes for p in rt)
    lines = [
        "// Generated by qsnn hw from the IR; parameters and wiring only (cores: hw/rtl).",
        "`default_nettype none",
        "module qsnn_top (",
        "    input  wire clk,",
        "    input  wire rst,",
        "    input  wire s_valid,",
        "    output wire s_ready,",
        "    input  wire [7:0] s_data,",
        "    output wire m_valid,",
        "    input  wire m_ready,",
        "    output wire [7:0] m_pred,",
        f"    output wire [{classes * COUNT_BITS - 1}:0] m_counts,",
        "    output reg  [31:0] m_cycles,",
        "    input  wire w_start,",
        "    input  wire w_valid,",
        "    output wire w_ready,",
        "    input  wire [7:0] w_data,",
        "    output wire w_loaded,",
        "    output wire [31:0] info_id,",
        "    output wire [31:0] info_in_bytes,",
        "    output wire [31:0] info_w_bytes",
        ");",
        f"    localparam integer L = {nl};",
        f"    assign info_id = 32'h{ir_id & 0xFFFFFFFF:08x};",
        f"    assign info_in_bytes = 32'd{in_bytes};",
        f"    assign info_w_bytes = 32'd{w_bytes};",
        "    // weights are written only while no inference runs",
        "    assign w_ready = !running;",
        "    wire loaded, enc_start, enc_busy, release_image, ro_clear, ro_start, ro_done;",
        "    wire running;",
        "    wire [L-1:0] cmd_clear, cmd_loadv, cmd_update, layer_busy, buf_start, buf_busy;",
        "    wire enc_valid, enc_ready, enc_to_c;",
        f"    wire [{_iw(n_in0) - 1}:0] enc_index;",
        f"    wire [{layers[0].vb - 1}:0] enc_value;",
        "",
        "    qsnn_encoder #(",
        f"        .N_IN({n_in0}), .T({graph.time_steps}), .ENC({ENC_CODES[enc.encoding]}),",
        f"        .PIXEL_MAX({enc.pixel_max}), .VB({layers[0].vb}),"
        f" .LFSR_SEED(32'h{max(enc.lfsr_seed, 1):08x})",
        "    ) u_enc (",
        "        .clk(clk), .rst(rst), .s_valid(s_valid), .s_ready(s_ready), .s_data(s_data),",
        "        .loaded(loaded), .release_image(release_image), .start(enc_start),",
        "        .busy(enc_busy), .ev_valid(enc_valid), .ev_ready(enc_ready),",
        "        .ev_index(enc_index), .ev_value(enc_value), .ev_to_c(enc_to_c)",
        "    );",
    ]
    lines += _loader_lines(rt)
    for p in layers:
        i = p.index
        kw = _iw(p.chunks)
        src_valid, src_index = ("enc_valid", "enc_index") if i == 0 else (
            f"b{i - 1}_valid", f"b{i - 1}_index")
        src_ready = "enc_ready" if i == 0 else f"b{i - 1}_ready"
        value = "enc_value" if i == 0 else "1'b1"
        to_c = "enc_to_c" if i == 0 else "1'b0"
        lines += [
            "",
            f"    // layer {i}: {p.n_in} -> {p.n}, {p.lanes} lanes, {p.mb}-bit membranes",
            f"    wire l{i}_spk_valid;",
            f"    wire [{kw - 1}:0] l{i}_spk_chunk;",
            f"    wire [{p.lanes - 1}:0] l{i}_spk_mask;",
            f"    wire b{i}_valid, b{i}_ready;",
            f"    wire [{_iw(p.n) - 1}:0] b{i}_index;",
            "    qsnn_layer #(",
            f"        .N_IN({p.n_in}), .N({p.n}), .P({p.lanes}), .WB({p.wb}), .MB({p.mb}),"
            f" .VB({p.vb}),",
            f"        .LEAK_MULT({p.leak_mult}), .LEAK_PARAM({p.leak_param}),"
            f" .FRAC_BITS({p.frac_bits}), .RESET_MODE({p.reset_mode}),",
            f"        .W_RUNTIME({p.w_runtime}),"
            f' .W_FILE("l{i}_w.mem"), .TH_FILE("l{i}_theta.mem"),'
            f' .B_FILE("l{i}_bias.mem")',
            f"    ) u_l{i} (",
            f"        .clk(clk), .rst(rst), .cmd_clear(cmd_clear[{i}]),"
            f" .cmd_loadv(cmd_loadv[{i}]),",
            f"        .cmd_update(cmd_update[{i}]), .busy(layer_busy[{i}]),",
            f"        .ev_valid({src_valid}), .ev_ready({src_ready}), .ev_index({src_index}),",
            f"        .ev_value({value}), .ev_to_c({to_c}),",
            f"        .spk_valid(l{i}_spk_valid), .spk_chunk(l{i}_spk_chunk),"
            f" .spk_mask(l{i}_spk_mask),",
            (f"        .wl_we(wl{i}_we), .wl_addr(wl{i}_addr), .wl_data(wl{i}_data)"
             if p.w_runtime else
             f"        .wl_we(1'b0), .wl_addr({_iw(p.w_words)}'d0),"
             f" .wl_data({p.lanes * p.wb}'d0)"),
            "    );",
            f"    qsnn_spikebuf #(.N({p.n}), .P({p.lanes})) u_b{i} (",
            f"        .clk(clk), .rst(rst), .wr_valid(l{i}_spk_valid),"
            f" .wr_chunk(l{i}_spk_chunk), .wr_mask(l{i}_spk_mask),",
            f"        .start(buf_start[{i}]), .busy(buf_busy[{i}]), .ev_valid(b{i}_valid),",
            f"        .ev_ready(b{i}_ready), .ev_index(b{i}_index)",
            "    );",
        ]
    last = nl - 1
    lines += [
        "",
        f"    assign b{last}_ready = 1'b1;",
        "    // counters hold at most T spikes: CW = bits of T, zero-extended on m_counts",
        f"    wire [{classes * cw - 1}:0] ro_counts;",
        "    genvar gc;",
        "    generate",
        f"        for (gc = 0; gc < {classes}; gc = gc + 1) begin : g_counts",
        f"            assign m_counts[gc*{COUNT_BITS} +: {COUNT_BITS}] ="
        + (f" {{{COUNT_BITS - cw}'d0, ro_counts[gc*{cw} +: {cw}]}};" if cw < COUNT_BITS
           else f" ro_counts[gc*{cw} +: {cw}];"),
        "        end",
        "    endgenerate",
        f"    qsnn_readout #(.CLASSES({classes}), .CW({cw})) u_ro (",
        "        .clk(clk), .rst(rst), .clear(ro_clear),",
        f"        .inc(b{last}_valid), .inc_index(b{last}_index[{_iw(classes) - 1}:0]),",
        "        .start(ro_start), .done(ro_done), .pred(m_pred), .counts(ro_counts)",
        "    );",
        "",
        f"    qsnn_sequencer #(.L(L), .T({graph.time_steps}),"
        f" .ENC({ENC_CODES[enc.encoding]})) u_seq (",
        "        .clk(clk), .rst(rst), .loaded(loaded), .enc_start(enc_start),"
        " .enc_busy(enc_busy),",
        "        .cmd_clear(cmd_clear), .cmd_loadv(cmd_loadv), .cmd_update(cmd_update),",
        "        .layer_busy(layer_busy), .buf_start(buf_start), .buf_busy(buf_busy),",
        "        .ro_clear(ro_clear), .ro_start(ro_start), .ro_done(ro_done),",
        "        .out_valid(m_valid), .out_ready(m_ready), .release_image(release_image),",
        "        .running(running)",
        "    );",
        "",
        "    // cycles from the first input byte of an image to m_valid",
        "    reg counting;",
        "    always @(posedge clk) begin",
        "        if (rst) begin",
        "            counting <= 1'b0;",
        "            m_cycles <= 32'd0;",
        "        end else if (!counting && !m_valid && s_valid && s_ready && !loaded",
        "                     && !running) begin",
        "            counting <= 1'b1;",
        "            m_cycles <= 32'd1;",
        "        end else if (counting && !m_valid) begin",
        "            m_cycles <= m_cycles + 32'd1;",
        "        end else if (m_valid) begin",
        "            counting <= 1'b0;",
        "        end",
        "    end",
        "endmodule",
        "`default_nettype wire",
        "",
    ]
    return "\n".join(lines)


def _loader_lines(rt: list[LayerParams]) -> list[str]:
    """qsnn_wload instances for the run-time-loaded layers, fed in layer order."""
    if not rt:
        return ["    assign w_loaded = 1'b1;", "    /* verilator lint_off UNUSEDSIGNAL */",
                "    wire unused_w = &{1'b0, w_start, w_valid, w_data};",
                "    /* verilator lint_on UNUSEDSIGNAL */"]
    lines = ["", "    // run-time weights: weights.bin bytes, layer by layer"]
    done = []
    for p in rt:
        i = p.index
        turn = " && ".join(done) or "1'b1"
        lines += [
            f"    wire wl{i}_we, wl{i}_done;",
            f"    wire [{_iw(p.w_words) - 1}:0] wl{i}_addr;",
            f"    wire [{p.lanes * p.wb - 1}:0] wl{i}_data;",
            f"    qsnn_wload #(.WD({p.w_words}), .WBITS({p.lanes * p.wb})) u_wl{i} (",
            "        .clk(clk), .rst(rst), .restart(w_start),"
            f" .en({turn}), .in_valid(w_valid && w_ready),",
            f"        .in_data(w_data), .done(wl{i}_done), .we(wl{i}_we), .addr(wl{i}_addr),"
            f" .data(wl{i}_data)",
            "    );",
        ]
        done.append(f"wl{i}_done")
    lines.append(f"    assign w_loaded = {' && '.join(done)};")
    return lines


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
    file_type: verilogSource
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
        verilator_options: [-Wall]
"""


def input_bytes(graph: Graph) -> int:
    """Bytes per image on the input stream (``params.json`` ``input_bytes``): the pixels,
    or for event input T frames of them."""
    n = int(np.prod(graph.input.shape))
    return n * (graph.time_steps if graph.input.encoding == "events" else 1)


def design_id(ir_hash: str) -> int:
    """The 32-bit id a design reports on ``info_id``: the first 4 bytes of its IR hash."""
    return int(ir_hash[:8], 16)


def ir_sha256(build_dir: Path) -> str:
    """Hash of the IR files (model.json + weights.npz), recorded in params.json; its first
    4 bytes are the design id the hardware reports (``info_id``)."""
    return hashlib.sha256((build_dir / "model.json").read_bytes()
                          + (build_dir / "weights.npz").read_bytes()).hexdigest()


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
    params = {
        "name": graph.name, "ir_sha256": ir_hash, "lanes": lanes,
        "time_steps": graph.time_steps, "encoding": graph.input.encoding,
        "pixel_max": graph.input.pixel_max, "lfsr_seed": graph.input.lfsr_seed,
        "classes": graph.classes, "count_bits": COUNT_BITS,
        "input_bytes": input_bytes(graph),
        "layers": [p.__dict__ | {"chunks": p.chunks} for p in layers],
        "runtime_weights": [p.index for p in layers if p.w_runtime],
        "weight_bytes": len(blob),
        "rtl": list(RTL_FILES) + ["qsnn_top.v"],
    }
    out = Path(out)
    with outdir.Output(out, "hw", inputs=[build_dir]) as staging:
        for f in RTL_FILES + UART_FILES:
            shutil.copyfile(RTL_DIR / f, staging / f)
        (staging / "qsnn_top.v").write_text(top_verilog(graph, layers,
                                                        design_id(ir_hash)))
        if blob:
            (staging / "weights.bin").write_bytes(blob)
        for name, words in sorted(mems.items()):
            (staging / name).write_text("\n".join(words) + "\n")
        files = list(RTL_FILES) + ["qsnn_top.v"]
        (staging / "filelist.f").write_text("\n".join(files) + "\n")
        (staging / "filelist_uart.f").write_text("\n".join(files + list(UART_FILES)) + "\n")
        (staging / f"qsnn_{graph.name}.core").write_text(
            core_file(graph.name, files, sorted(mems)))
        (staging / "params.json").write_text(json.dumps(params, indent=2, sort_keys=True) + "\n")
    return params
