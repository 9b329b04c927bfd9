"""The Verilog generator and the cycle model (no simulator needed)."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest
import torch

from qsnn.cli import main
from qsnn.errors import QsnnError
from qsnn.export import serialize
from qsnn.export.ir import Conv2d, SumPool
from qsnn.hw import cycles
from qsnn.hw.generate import generate, layer_params, pack_words
from qsnn.testing import pixels, save_ir, small_mlp


@pytest.fixture
def ir(tmp_path):
    save_ir(small_mlp(), tmp_path / "build", inputs=pixels(images=5, shape=(1, 3, 4)))
    return tmp_path / "build"


def test_generation_is_deterministic(ir, tmp_path) -> None:
    generate(ir, tmp_path / "a", lanes=4)
    generate(ir, tmp_path / "b", lanes=4)
    files = sorted(p.name for p in (tmp_path / "a").iterdir())
    assert files == sorted(p.name for p in (tmp_path / "b").iterdir())
    assert {"qsnn_top.v", "filelist.f", "params.json", "qsnn_t.core", "l0_w.mem"} <= set(files)
    for f in files:
        assert (tmp_path / "a" / f).read_bytes() == (tmp_path / "b" / f).read_bytes(), f


def test_weight_memory_layout(ir, tmp_path) -> None:
    params = generate(ir, tmp_path / "hw", lanes=4)
    mb = params["layers"][0]["mb"]
    g = serialize.load(ir)
    w = g.nodes[1].weight
    words = (tmp_path / "hw/l0_w.mem").read_text().split()
    k = 3  # ceil(10 / 4)
    assert len(words) == 12 * k
    for j in range(12):
        for c in range(k):
            word = int(words[j * k + c], 16)
            for lane in range(4):
                n = c * 4 + lane
                v = (word >> (4 * lane)) & 0xF
                v = v - 16 if v >= 8 else v
                assert v == (w[n, j] if n < 10 else 0)
    theta = [int(t, 16) for t in (tmp_path / "hw/l0_theta.mem").read_text().split()]
    lanes = [(theta[-1] >> (mb * lane)) & ((1 << mb) - 1) for lane in range(4)]
    assert lanes[2:] == [(1 << (mb - 1)) - 1] * 2  # padded neurons (10, 11) never fire
    assert lanes[:2] == g.nodes[2].theta[8:10].tolist()


def test_pack_words_twos_complement() -> None:
    assert pack_words(np.array([[-1, 2]]), 4) == ["2f"]
    assert pack_words(np.array([[-8, 7, 0]]), 4) == ["078"]


def test_refusals(ir, tmp_path, capsys) -> None:
    g = serialize.load(ir)
    with pytest.raises(QsnnError, match="--lanes 0"):
        layer_params(g, 0)
    conv = g.replace(nodes=(Conv2d("conv0", 1, 2, 2, 0, 4, np.ones((2, 1, 2, 2), np.int8)),
                            SumPool("pool0", 3), *g.nodes[2:]))
    with pytest.raises(QsnnError, match="'conv0': pool 3 is not a power of two"):
        layer_params(conv, 4)
    wide = g.replace(input=dataclasses.replace(g.input, pixel_max=1000))
    with pytest.raises(QsnnError, match="pixel_max 1000"):
        layer_params(wide, 4)
    assert main(["hw", str(ir), "--lanes", "100", "--out", str(tmp_path / "x")]) == 2
    assert "--lanes 100" in capsys.readouterr().err
    assert not (tmp_path / "x").exists()


def test_pixel_max_over_255_accepted_for_event_input(ir, tmp_path) -> None:
    """Event frames are 0/1 bytes: pixel_max plays no part there (the encoder gets 1),
    while pixels above 255 cannot cross the 8-bit stream (refused, test_refusals)."""
    g = serialize.load(ir)
    events = g.replace(input=dataclasses.replace(g.input, encoding="events", pixel_max=1000))
    serialize.save(events, tmp_path / "ev")
    params = generate(tmp_path / "ev", tmp_path / "hw", lanes=4)
    assert params["pixel_max"] == 1000 and params["input_bytes"] == 12 * 6
    assert ".PIXEL_MAX(1)" in (tmp_path / "hw/qsnn_top.v").read_text()


@pytest.mark.parametrize(("steps", "cw", "ow"), [(6, 3, 16), (65_535, 16, 16),
                                                  (65_536, 17, 17), (100_000, 17, 17)])
def test_readout_counters_hold_t_spikes(ir, tmp_path, steps, cw, ow) -> None:
    """A class can spike at every step: the counters are bits(T) wide (17 from T = 65,536,
    where 16 bits would saturate at 65,535), and m_counts carries max(16, bits(T)) per
    class (params.json count_bits)."""
    from qsnn.export.runner import assign_widths

    g = serialize.load(ir)
    serialize.save(assign_widths(g.input, list(g.nodes), "t", steps, None, {}), tmp_path / "b")
    params = generate(tmp_path / "b", tmp_path / "hw", lanes=4)
    top = (tmp_path / "hw/qsnn_top.v").read_text()
    assert params["count_bits"] == ow
    assert f"output wire [{3 * ow - 1}:0] m_counts" in top
    assert f"wire [{3 * cw - 1}:0] ro_counts;" in top
    assert f".CLASSES(3), .CW({cw})" in top and f".CW({cw}), .OW({ow})" in top


def test_cycle_model_scales_with_lanes_and_spikes(ir) -> None:
    g = serialize.load(ir)
    x = torch.from_numpy(np.load(ir / "golden/vectors.npz")["inputs"])
    c1, c4 = cycles.image_cycles(g, 1, x), cycles.image_cycles(g, 4, x)
    assert all(a > b for a, b in zip(c1, c4, strict=True))
    zero = cycles.image_cycles(g, 4, torch.zeros_like(x))
    assert all(z < c for z, c in zip(zero, c4, strict=True))
    mem = cycles.memory_bits(g, 4)
    assert mem[0]["weights"] == 12 * 12 * 4


def test_estimate_cli(ir, capsys) -> None:
    assert main(["hw", str(ir), "--estimate", "--lanes", "2"]) == 0
    out = capsys.readouterr().out
    assert "cycles per inference" in out and "layer 0" in out


# -- the typed design (hw/design.py) and the cores' constants (hw/cores.py) ---------------
def test_generated_top_has_no_logic(ir, tmp_path) -> None:
    """qsnn_top.v is ports, wires and instances: the logic lives in hw/rtl."""
    for lanes, rt in ((4, ()), (3, "all")):
        generate(ir, tmp_path / f"hw{lanes}", lanes=lanes, runtime_weights=rt)
        top = (tmp_path / f"hw{lanes}/qsnn_top.v").read_text()
        for word in ("assign", "always", "generate", "reg ", "initial", "&&", "||"):
            assert word not in top, word
        assert "qsnn_cycle_counter #(.WIDTH(32)) u_cycles" in top and "qsnn_top_io #(" in top


def test_design_is_the_params_json_reader(ir, tmp_path) -> None:
    from qsnn.hw.design import Design

    params = generate(ir, tmp_path / "hw", lanes=4, runtime_weights=(0,))
    d = Design.load(tmp_path / "hw")
    assert d.to_params() == params
    assert d.params_json() == (tmp_path / "hw/params.json").read_text()
    assert d.weight_bits() == sum(p["n_in"] * p["chunks"] * p["lanes"] * p["wb"]
                                  for p in params["layers"])
    assert d.weight_bits(runtime=True) == 12 * 3 * 4 * 4
    assert d.layers[0].w_bits == 12 * 3 * 16 and d.mem_files[:2] == ("l0_w.mem", "l0_theta.mem")
    assert d.id == int(params["ir_sha256"][:8], 16)
    assert d.weight_bytes == (tmp_path / "hw/weights.bin").stat().st_size == 12 * 3 * 2
    d.check_fresh(ir)
    d.check_files(d.board_sources + d.mem_files)


def test_design_errors_are_one_line(ir, tmp_path) -> None:
    from qsnn.hw.design import Design

    hw = tmp_path / "hw"
    with pytest.raises(QsnnError, match=f"^no generated design in {hw}: run qsnn hw {ir} "):
        Design.load(hw, ir)
    generate(ir, hw, lanes=4, runtime_weights=(0,))
    good = (hw / "params.json").read_text()
    (hw / "params.json").write_text(good[:40])
    with pytest.raises(QsnnError, match=r"params.json is corrupt \(JSONDecodeError\)"):
        Design.load(hw)
    (hw / "params.json").write_text(good.replace('"lanes"', '"lanez"'))
    with pytest.raises(QsnnError, match=r"params.json is corrupt \(no 'lanes'\): regenerate"):
        Design.load(hw)
    (hw / "params.json").write_text(good.replace('"lanes": 4', '"lanes": "four"'))
    with pytest.raises(QsnnError, match=r"params.json is corrupt"):
        Design.load(hw)
    (hw / "params.json").write_text(good)
    d = Design.load(hw)
    for name in ("l1_bias.mem", "qsnn_board_io.v", "weights.bin"):
        (hw / name).rename(tmp_path / name)
        with pytest.raises(QsnnError, match=f"incomplete \\({name} missing\\): regenerate"):
            d.check_files(d.board_sources + d.mem_files)
        (tmp_path / name).rename(hw / name)
    stale = dataclasses.replace(d, ir_sha256="0" * 64)
    with pytest.raises(QsnnError, match=f"is stale .* run qsnn hw {ir} --lanes 4$"):
        stale.check_fresh(ir)


@pytest.mark.parametrize(("edit", "problem"), [
    (lambda p: p.update(lanes=True), "'lanes' is not an integer"),
    (lambda p: p.update(lanes="4"), "'lanes' is not an integer"),
    (lambda p: p.update(time_steps=25.0), "'time_steps' is not an integer"),
    (lambda p: p.update(name="t\nkey: x"), "bad name"),
    (lambda p: p.update(name="../t"), "bad name"),
    (lambda p: p.update(ir_sha256="abc"), "'ir_sha256' is not a SHA-256"),
    (lambda p: p.update(encoding="morse"), "unknown encoding 'morse'"),
    (lambda p: p.update(lanes=0), "'lanes' must be positive"),
    (lambda p: p.update(layers=[]), "'layers' is not a list of layers"),
    (lambda p: p["layers"][1].pop("wb"), "layer 1 lacks one of"),
    (lambda p: p["layers"][0].update(n_in=0), "layer 0 lacks one of .* a size below 1"),
    (lambda p: p.update(runtime_weights=[7]), "'runtime_weights' is not a list of layer"),
    (lambda p: p.update(rtl=["../../etc/x.v"]), "'rtl' is not a list of file names"),
    (lambda p: p.update(rtl=[]), "'rtl' is not a list of file names"),
])
def test_hand_edited_params_json_is_one_line(ir, tmp_path, edit, problem) -> None:
    """Every key of params.json is checked for presence, type and range on reading."""
    from qsnn.hw.design import Design

    hw = tmp_path / "hw"
    generate(ir, hw, lanes=4)
    params = json.loads((hw / "params.json").read_text())
    edit(params)
    (hw / "params.json").write_text(json.dumps(params))
    with pytest.raises(QsnnError, match=f"params.json is corrupt \\({problem}.*\\): "
                                        "regenerate it with qsnn hw$"):
        Design.load(hw)


def test_rtl_constants_are_read_from_the_cores() -> None:
    """Python copies no RTL constant: the host's command bytes and the network bench's
    state code come from the Verilog (a wrong parse would break the UART and trace
    tests; here: the parser itself)."""
    from qsnn.hw import cores, host

    uart = cores.localparams("qsnn_uart_top.v")
    assert (uart["CMD_IMAGE"], uart["CMD_WEIGHTS"], uart["CMD_INFO"]) == (
        ord("I"), ord("W"), ord("?")) == (host.CMD_IMAGE, host.CMD_WEIGHTS, host.CMD_INFO)
    layer = cores.localparams("qsnn_layer.v")
    assert sorted(layer[k] for k in ("S_IDLE", "S_PROC", "S_CLEAR", "S_LOADV",
                                     "S_UPDATE")) == [0, 1, 2, 3, 4]
    assert "K" not in layer            # expressions are not constants
    with pytest.raises(QsnnError, match="has no integer localparam S_NOPE"):
        cores.localparam("qsnn_layer.v", "S_NOPE")


def test_runtime_weights_word_other_than_all_is_refused() -> None:
    """A string other than 'all' used to be read as a set of characters ("1" -> "no layer
    1" on a two-layer network); found by mypy (str | tuple not narrowed)."""
    graph = small_mlp()
    with pytest.raises(QsnnError, match="--runtime-weights '1': give layer indices or 'all'"):
        layer_params(graph, 4, "1")
    assert [p.w_runtime for p in layer_params(graph, 4, "all")] == [1] * len(graph.lifs())
