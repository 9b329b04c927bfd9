"""``qsnn verify --netlist`` without a simulator or Yosys (:mod:`qsnn.hw.gate`,
:mod:`qsnn.hw.gatebench`): the UART timing of the simulated top, the host's requests and
their ``$readmemh`` files, the parsing of the bench's answers, the comparison with the
golden counts (each check fails on a broken answer), the counts net and the ECP5 model
edits. The simulations themselves are in ``sim/test_gate_level.py``."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest

from qsnn import cli
from qsnn.errors import QsnnError
from qsnn.export import golden
from qsnn.hw import gate, gatebench, host
from qsnn.hw.design import Design
from qsnn.hw.fpga.pll import Clock
from qsnn.hw.fpga.wrapper import board_top_verilog
from qsnn.hw.generate import generate
from qsnn.testing import pixels, save_ir, small_mlp

ID = 0x660DCDAB
ROM = SimpleNamespace(id=ID, runtime_weights=False)
RAM = SimpleNamespace(id=ID, runtime_weights=True)


def info(loaded: bool) -> bytes:
    return ID.to_bytes(4, "big") + bytes([int(loaded)])


# ------------------------------------------------------------------ UART timing, board
def test_simulated_top_has_the_short_uart_divisor_and_no_pll() -> None:
    board = gate.gate_board("ice40")
    clock = Clock(board.clock_mhz, board.clock_mhz, None)
    sim = board_top_verilog(board, clock, gate.GATE_CLKS_PER_BIT)
    real = board_top_verilog(board, clock)
    assert f".CLKS_PER_BIT({gate.GATE_CLKS_PER_BIT})" in sim and "board_pll" not in sim
    assert ".CLKS_PER_BIT(104)" in real  # 12 MHz / 115200
    assert sim.replace(f"({gate.GATE_CLKS_PER_BIT})", "(104)").splitlines()[2:] == \
        real.splitlines()[1:]  # only the divisor (and its comment line) differ
    assert gate.GATE_CLKS_PER_BIT >= 4  # qsnn_uart_rx's minimum


@pytest.mark.parametrize("target,board,level", [("ice40", "icebreaker", 0),
                                                ("ecp5", "ulx3s", 1),
                                                ("orangecrab", "orangecrab", 0)])
def test_families_and_boards(target, board, level) -> None:
    b = gate.gate_board(target)
    assert b.name == board
    probe = gate.Probe("\\u_qsnn.u_core.m_counts", 48)
    assert gate.tb_params(b, 8, 100, 3, probe) == {
        "CLKS_PER_BIT": 8, "READY_LEVEL": level, "STIM_BYTES": 100, "MAX_REQ": 3,
        "COUNTS_W": 48}
    assert gate.counts_define(probe) == "-DQSNN_GATE_COUNTS=dut.\\u_qsnn.u_core.m_counts"


def test_unknown_target_is_one_line(capsys) -> None:
    with pytest.raises(QsnnError, match="--netlist gowin: choose a family"):
        gate.gate_board("gowin")
    assert cli.main(["verify", "build/x", "--netlist", "ice40", "--waves"]) == 2
    assert "--waves is for the RTL benches" in capsys.readouterr().err


def test_answer_timeout_follows_the_cycle_model() -> None:
    assert gatebench.answer_timeout([3000, 4000, 3500]) == 18_000
    assert gatebench.FLOOR_SPEED["icarus"] < 250 and gatebench.FLOOR_SPEED["verilator"] < 80_000


# ------------------------------------------------------------------ requests and files
@pytest.fixture(scope="module")
def designs(tmp_path_factory):
    root = tmp_path_factory.mktemp("gate")
    x, build = pixels(images=3, shape=(1, 3, 4)), root / "build"
    save_ir(small_mlp(), build, inputs=x, labels=golden.run(small_mlp(), x).predictions.numpy())
    generate(build, root / "rom", lanes=2)
    generate(build, root / "ram", lanes=2, runtime_weights=(0,))
    return build, Design.load(root / "rom"), Design.load(root / "ram")


def test_host_session_rom_and_runtime_weights(designs) -> None:
    build, rom, ram = designs
    from qsnn.export import serialize

    x = np.load(build / "golden/vectors.npz")["inputs"]
    reqs, model = gatebench.session(rom, serialize.load(build), x)
    assert [r.label for r in reqs] == ["the info request", "image 0", "image 1", "image 2"]
    assert reqs[0].send == host.info_request() and reqs[0].reply == host.INFO_BYTES
    assert reqs[1].send == host.image_request(x[0].astype(np.uint8).tobytes())
    assert [r.reply for r in reqs[1:]] == [1, 1, 1] and len(model) == 3
    reqs, _ = gatebench.session(ram, serialize.load(build), x[:1])
    blob = (ram.folder / "weights.bin").read_bytes()
    assert [r.send for r in reqs[:3]] == [host.info_request(), host.weights_request(blob),
                                          host.info_request()]
    assert [r.reply for r in reqs] == [5, 1, 5, 1]



def test_session_cycles_are_the_design_s_own(tmp_path) -> None:
    """The answer timeout's cycle model is the design's (lanes 3, 2 from params.json),
    not the default design for its largest lane count (3, 3), which the old call made."""
    from qsnn.export import serialize
    from qsnn.hw import cycles

    x, build = pixels(images=3, shape=(1, 3, 4)), tmp_path / "build"
    save_ir(small_mlp(), build, inputs=x)
    generate(build, tmp_path / "hw", lanes=[3, 2])
    design, graph = Design.load(tmp_path / "hw"), serialize.load(build)
    _, model = gatebench.session(design, graph, x.numpy())
    assert model == cycles.image_cycles(graph, design.layers, x)
    assert model != cycles.image_cycles(graph, design.lanes, x)

def test_stimulus_files_are_readmemh(tmp_path) -> None:
    reqs = [gatebench.Request(b"?", 5, "a"), gatebench.Request(b"I\x00\xff\x10", 1, "b")]
    index, data = gatebench.stimulus_files(reqs, tmp_path, "t")
    assert index.read_text().split() == ["0000000105", "0000000401"]
    assert data.read_text().split() == ["3f", "49", "00", "ff", "10"]


# ------------------------------------------------------------------ the bench's answers
REQS = [gatebench.Request(b"?", 5, "the info request"), gatebench.Request(b"I12", 1, "image 0"),
        gatebench.Request(b"I34", 1, "image 1")]


def bench_text(counts=("0000", "0302", "0105"), preds=(1, 0), done=True) -> str:
    rows = ["S 0 100"] + [f"B 0 {b:02x} {120 + 80 * i} {counts[0]}"
                          for i, b in enumerate(info(True))]
    rows += ["S 1 900", f"B 1 {preds[0]:02x} 4000 {counts[1]}",
             "S 2 5000", f"B 2 {preds[1]:02x} 8100 {counts[2]}"]
    return "\n".join(rows + (["DONE 3 9000"] if done else [])) + "\n"


def test_answers_latency_and_counts_are_parsed() -> None:
    ans = gatebench.parse(bench_text(), REQS, "for icebreaker")
    assert ans.data == [info(True), b"\x01", b"\x00"] and ans.cycles == 9000
    assert ans.latency == [20, 3100, 3100] and ans.counts == ["0000", "0302", "0105"]
    res = gatebench.check(ROM, REQS, ans, np.array([[2, 3], [5, 1]]), 8)
    assert res["mismatches"] == [] and res["errors"] == [] and res["predictions"] == [1, 0]
    assert res["latency_cycles"] == [3100, 3100] and res["weights_loaded"] == [True]


def test_error_line_names_the_request() -> None:
    text = bench_text() + "ERROR request 2: no answer within the timeout (cycle 99)\n"
    with pytest.raises(QsnnError, match=r"icebreaker: image 1: no answer within the timeout"):
        gatebench.parse(text, REQS, "for icebreaker")


def test_missing_done_line_fails() -> None:
    with pytest.raises(QsnnError, match="after 3 of 3 answers, with no DONE line"):
        gatebench.parse(bench_text(done=False), REQS, "for icebreaker")


@pytest.mark.parametrize("want,what", [
    ([[2, 3], [5, 2]], "class 1: count 1, golden model 2"),       # a wrong expected count
    ([[3, 2], [5, 1]], "class 0: count 2, golden model 3"),
])
def test_a_wrong_count_is_a_mismatch_naming_image_and_class(want, what) -> None:
    ans = gatebench.parse(bench_text(), REQS, "")
    res = gatebench.check(ROM, REQS, ans, np.array(want), 8)
    assert len(res["mismatches"]) == 1 and res["mismatches"][0]["what"] == what


def test_a_wrong_prediction_with_equal_counts_is_a_mismatch() -> None:
    ans = gatebench.parse(bench_text(preds=(1, 1)), REQS, "")
    res = gatebench.check(ROM, REQS, ans, np.array([[2, 3], [5, 1]]), 8)
    assert [(m["image"], m["what"]) for m in res["mismatches"]] == [
        (1, "prediction 1, golden model 0")]


def test_x_on_the_counts_is_a_mismatch() -> None:
    ans = gatebench.parse(bench_text(counts=("0000", "0302", "01x5")), REQS, "")
    res = gatebench.check(ROM, REQS, ans, np.array([[2, 3], [5, 1]]), 8)
    assert res["mismatches"][0]["what"] == "the counts net is x/z or unread"
    assert gatebench.decode_counts("0105", 2, 8).tolist() == [5, 1]
    assert gatebench.decode_counts("01z5", 2, 8) is None


def test_protocol_errors() -> None:
    ans = gatebench.parse(bench_text(), REQS, "")
    other = SimpleNamespace(id=ID + 1, runtime_weights=False)
    assert gatebench.check(other, REQS, ans, np.array([[2, 3], [5, 1]]), 8)["errors"] == [
        "the netlist answers design id 660dcdab, the IR is 660dcdac"]
    wreqs = [REQS[0], gatebench.Request(b"Wxx", 1, "w"), REQS[0], REQS[1]]
    wans = gatebench.Answers([info(True), b"W", info(True), b"\x01"], [1] * 4,
                             ["0", "0", "0", "0302"], 10)
    assert gatebench.check(RAM, wreqs, wans, np.array([[2, 3]]), 8)["errors"] == [
        "weights status [True, True] before/after 'W', want [False, True]"]


# ------------------------------------------------------------------ counts net, models
def test_counts_probe_takes_the_first_kept_name(tmp_path) -> None:
    net = tmp_path / "netlist.v"
    net.write_text("module board_top;\n  wire [8:0] \\u_qsnn.u_core.u_ro.counts ;\n"
                   "  wire [7:0] \\u_qsnn.u_core.ro_counts ;\nendmodule\n")
    assert gate.counts_probe(net, 3) == gate.Probe("\\u_qsnn.u_core.u_ro.counts", 9)
    assert gate.counts_probe(net, 2) == gate.Probe("\\u_qsnn.u_core.ro_counts", 8)
    with pytest.raises(QsnnError, match="keeps none of the nets u_qsnn.u_core.m_counts"):
        gate.counts_probe(net, 5)


def test_ecp5_models_edit_the_shipped_cells(tmp_path) -> None:
    shim = gate.ecp5_shim(gate.share_dir() / "ecp5")
    assert "module DP16KD" not in shim and "$error" not in shim
    assert "module LUT4" in shim and shim.count('`include "cells_ff.vh"') == 1
    models = gate.cell_models("ecp5", tmp_path)
    assert [f.name for f in models.files] == ["ecp5_cells_sim.v", *gate.ECP5_MODELS]
    fake = tmp_path / "share"
    fake.mkdir()
    (fake / "common_sim.vh").write_text("")
    (fake / "cells_sim.v").write_text('`include "common_sim.vh"\nmodule DP16KD(); endmodule\n')
    with pytest.raises(QsnnError, match="cannot remove the DP16KD blackbox"):
        gate.ecp5_shim(fake)


def test_cell_types_leave_out_scope_records(tmp_path) -> None:
    (tmp_path / "synth_stat.json").write_text(
        '{"design": {"num_cells_by_type": {"$scopeinfo": 23, "SB_LUT4": 7}}}')
    assert gate.cell_types(tmp_path / "netlist.v") == {"SB_LUT4": 7}
    assert gate.cell_types(tmp_path / "missing" / "netlist.v") == {}
