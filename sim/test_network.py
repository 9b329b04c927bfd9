"""Whole-network benches: the generated RTL equals the golden model on real test images.

The digits network (default config, trained here in seconds) runs on its full test split
for P = 1, 4 and 16 lanes; a FashionMNIST 784-128-10 MLP (one short epoch: bit-exactness,
not accuracy, is under test) runs on 400 test images when the Debian dataset is
installed, in the iCEBreaker configuration (P = 4, first-layer weights loaded at run time
through the weight stream). Every output spike count and prediction must be equal, and
the measured cycles within 1.1x of the cycle model.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from qsnn import config
from qsnn.errors import QsnnError
from qsnn.export.runner import export
from qsnn.hw.generate import generate
from qsnn.hw.verify import verify
from qsnn.train.runner import train

ROOT = Path(__file__).resolve().parents[1]
FMNIST = Path("/usr/share/datasets/fashion-mnist/t10k-images-idx3-ubyte.gz")


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
    assert 1 / 1.1 <= rep["cycles_model_ratio"] <= 1.1
    assert 1 / 1.1 <= rep["cycles_model_ratio_min"] and rep["cycles_model_ratio_max"] <= 1.1
    assert json.loads((hw / "sim_report.json").read_text()) == rep


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


@pytest.mark.skipif(not FMNIST.exists(), reason="FashionMNIST not installed (make data)")
def test_fashion_mnist_mlp_rtl_equals_golden(tmp_path, sim_seed) -> None:
    """The iCEBreaker configuration: P = 4, first-layer weights loaded at run time."""
    build = _export(tmp_path, "fashion-mnist-mlp",
                    ["train.epochs=1", "data.max_train=6000"], 400)
    generate(build, tmp_path / "hw", lanes=4, runtime_weights=(0,))
    rep = verify(build, tmp_path / "hw", images=400, seed=sim_seed)
    assert rep["images"] == 400 and rep["mismatches"] == 0, rep["first_mismatch"]
    assert 1 / 1.1 <= rep["cycles_model_ratio"] <= 1.1


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
    assert np.load(digits_build / "golden/vectors.npz")["inputs"].shape[0] == 360
