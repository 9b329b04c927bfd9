"""``model.nir`` runs as written in snnTorch's and Norse's NIR importers: predictions agree
with the integer golden model (exact counts cannot always: NIR has no subtract reset, no
reset from the previous membrane and no floor leak; ``docs/spec.md`` §5)."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import nir
import numpy as np
import pytest
import torch
from nir_consumers import norse_counts, one_thread, snntorch_counts
from qsnn_testutil import ROOT

from qsnn import config
from qsnn.export import golden, serialize
from qsnn.export.ir import LIF, Graph
from qsnn.export.nir_export import DT, floor_bias, lif_node, to_nir
from qsnn.export.runner import export
from qsnn.train.runner import train

DIGITS = ["train.epochs=4", "data.time_steps=10"]
FASHION = ["data.max_train=1500", "data.max_test=200", "train.epochs=1", "data.time_steps=10",
           "data.val_fraction=0.1"]


@pytest.fixture(scope="module", autouse=True)
def _one_thread():
    with one_thread():
        yield


def _build(tmp_path_factory, cfg_file: str, overrides: list[str], name: str) -> Path:
    cfg = config.apply_overrides(config.load(ROOT / cfg_file), overrides)
    base = tmp_path_factory.mktemp(name)
    train(cfg, base / "run")
    export(base / "run", base / "build", vectors=8, qonnx=False)
    return base / "build"


@pytest.fixture(scope="module")
def digits_build(tmp_path_factory) -> Path:
    return _build(tmp_path_factory, "configs/digits.yaml", DIGITS, "digits")


@pytest.fixture(scope="module")
def fashion_build(tmp_path_factory) -> Path:
    return _build(tmp_path_factory, "configs/fashion-mnist-mlp.yaml", FASHION, "fashion")


def zero_reset(graph: Graph) -> Graph:
    """The IR with NIR's reset (to zero, after the spike): spike-equivalent to ``zero``."""
    return graph.replace(nodes=tuple(dataclasses.replace(n, reset="zero")
                                     if isinstance(n, LIF) else n for n in graph.nodes))


def consumer_agreement(build: Path, graph_nir: nir.NIRGraph | None = None) -> dict[str, float]:
    """Prediction and exact-count agreement of both importers with the golden model (and
    with the golden model of the same IR with NIR's zero reset) on the test split."""
    from qsnn.data import load_dataset

    graph = serialize.load(build)
    max_test = {"fashion-mnist": 200}.get(graph.metadata["dataset"])
    x = load_dataset(graph.metadata["dataset"]).test.x[:max_test]
    ref, ref_zero = golden.run_batched(graph, x), golden.run_batched(zero_reset(graph), x)
    graph_nir = graph_nir or nir.read(build / "model.nir")
    out = {}
    for name, counts in (("snntorch", snntorch_counts(graph_nir, x, graph.time_steps)),
                         ("norse", norse_counts(graph_nir, x, graph.time_steps, DT))):
        for tag, want in (("", ref), ("_zero_reset", ref_zero)):
            out[f"{name}{tag}"] = float((counts.argmax(1) == want.predictions).float().mean())
            out[f"{name}{tag}_exact"] = float((counts == want.counts).all(1).float().mean())
        out[f"{name}_spikes"] = int(counts.sum())
    return out


def test_digits_nir_runs_in_snntorch_and_norse(digits_build: Path) -> None:
    agree = consumer_agreement(digits_build)
    print("digits", agree)
    for name in ("snntorch", "norse"):
        assert agree[f"{name}_zero_reset"] >= 0.97  # what NIR can express
        assert agree[f"{name}_zero_reset_exact"] >= 0.5
        assert agree[name] >= 0.85  # subtract reset from the previous membrane: not in NIR


def test_fashion_mlp_nir_runs_in_snntorch_and_norse(fashion_build: Path) -> None:
    agree = consumer_agreement(fashion_build)
    print("fashion-mnist mlp", agree)
    for name in ("snntorch", "norse"):  # agreement with the subtract-reset golden: reported
        assert agree[f"{name}_zero_reset"] >= 0.97
        assert agree[f"{name}_zero_reset_exact"] >= 0.5


def test_batched_run_equals_per_image_run(digits_build: Path) -> None:
    """The batch-axis shift of the importers' Flatten (``nir_consumers``) changes nothing."""
    from qsnn.data import load_dataset

    g = nir.read(digits_build / "model.nir")
    x = load_dataset("digits").test.x[:12]
    for run in (lambda b: snntorch_counts(g, x, 10, batched=b),
                lambda b: norse_counts(g, x, 10, DT, batched=b)):
        batched = run(True)
        assert torch.equal(batched, run(False)) and int(batched.sum()) > 0


def test_old_parameterisation_is_caught(digits_build: Path) -> None:
    """The file's former convention (tau = 1/(1-beta), r = tau, dt = 1) gives no output
    spikes in either importer: the agreement check fails on it."""
    g = nir.read(digits_build / "model.nir")
    for node in g.nodes.values():
        if isinstance(node, nir.LIF):
            gain = DT / node.tau
            node.v_threshold = node.v_threshold / gain
            node.tau = 1.0 / gain
            node.r = node.tau.copy()
    agree = consumer_agreement(digits_build, g)
    assert agree["snntorch_spikes"] == 0 and agree["norse_spikes"] == 0
    assert agree["snntorch"] < 0.5


def test_metadata_states_convention_and_limits(digits_build: Path) -> None:
    g = nir.read(digits_build / "model.nir")
    meta = {k: v.decode() if isinstance(v, bytes) else v for k, v in g.metadata.items()}
    assert meta["dt"] == DT and meta["source"] == "qsnn" and meta["time_steps"] == 10
    assert meta["input_scale"] == 1.0 and meta["pixel_max"] == 16
    for word in ("subtract", "previous membrane", "floor", "saturat", "bit widths", "per-channel"):
        assert word in meta["note"].lower(), word
    assert "dt = 1e-4" in meta["convention"] and "norse" in meta["convention"].lower()


def _lif(leak: str, param: int, theta: list[int]) -> LIF:
    return LIF("lif0", (len(theta),), leak, param, 8, "subtract", 16,
               np.array(theta, np.int32))


@pytest.mark.parametrize("leak,param,beta", [("mult", 230, 230 / 256), ("shift", 3, 0.875)])
def test_lif_parameters_follow_the_convention(leak: str, param: int, beta: float) -> None:
    node = lif_node(_lif(leak, param, [5, 9]))
    assert isinstance(node, nir.LIF)
    assert np.allclose(node.tau, DT / (1 - beta), rtol=1e-15) and np.all(node.r == 1)
    assert np.array_equal(node.v_threshold, np.array([5, 9]) * (1 - beta))
    assert np.all(node.v_leak == 0) and np.all(node.v_reset == 0)
    assert node.metadata["leak_param"] == param and node.metadata["reset"] == "subtract"
    assert node.metadata["floor_bias"] == floor_bias(_lif(leak, param, [1]))


def test_floor_bias_is_the_mean_rounding_of_the_leak() -> None:
    u = np.arange(-4096, 4096)
    for leak, param in (("mult", 230), ("mult", 249), ("mult", 192), ("shift", 3)):
        node = _lif(leak, param, [1])
        exact = golden.leak(u, node) - u * (param / 256 if leak == "mult" else 1 - 2.0**-param)
        assert floor_bias(node) == pytest.approx(exact.mean(), abs=1e-9), (leak, param)
    assert floor_bias(_lif("mult", 256, [1])) == 0.0 and floor_bias(_lif("mult", 0, [1])) == 0


def test_leak_free_layer_is_an_if_with_unit_gain() -> None:
    node = lif_node(_lif("mult", 256, [3]))
    assert isinstance(node, nir.IF)
    assert node.r[0] * DT == pytest.approx(1.0) and node.v_threshold[0] == 3


def test_to_nir_without_dataset_metadata(digits_build: Path) -> None:
    graph = serialize.load(digits_build).replace(metadata={})
    meta = to_nir(graph).metadata
    assert "dataset" not in meta and meta["encoding"] == "direct"
