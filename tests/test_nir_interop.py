"""``model.nir`` runs as written in snnTorch's and Norse's NIR importers: predictions agree
with the integer golden model, and counts are exact where NIR's float arithmetic equals the
integer one (leak-free layers); ``docs/spec.md`` §5 "NIR convention"."""

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
from qsnn.export import golden, nir_interp, serialize
from qsnn.export.ir import LIF, Graph
from qsnn.export.nir_export import DT, floor_bias, lif_node, membrane_nodes, to_nir
from qsnn.export.runner import export
from qsnn.testing import Conv, Fc, lif, network
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


def with_reset(graph: Graph, reset: str) -> Graph:
    """The IR with every LIF's reset set to ``reset``."""
    return graph.replace(nodes=tuple(dataclasses.replace(n, reset=reset)
                                     if isinstance(n, LIF) else n for n in graph.nodes))


def consumer_agreement(graph: Graph, x: torch.Tensor, graph_nir: nir.NIRGraph | None = None
                       ) -> dict[str, float]:
    """Prediction and exact-count agreement of both importers with the golden model."""
    ref = golden.run_batched(graph, x)
    graph_nir = graph_nir or to_nir(graph)
    out = {}
    for name, counts in (("snntorch", snntorch_counts(graph_nir, x, graph.time_steps)),
                         ("norse", norse_counts(graph_nir, x, graph.time_steps, DT))):
        out[name] = float((counts.argmax(1) == ref.predictions).float().mean())
        out[f"{name}_exact"] = float((counts == ref.counts).all(1).float().mean())
        out[f"{name}_spikes"] = int(counts.sum())
    return out


def _test_images(graph: Graph, n: int | None = None) -> torch.Tensor:
    from qsnn.data import load_dataset

    return load_dataset(graph.metadata["dataset"]).test.x[:n]


def test_digits_nir_runs_in_snntorch_and_norse(digits_build: Path) -> None:
    """The written file, subtract reset (qsnn's default) as a membrane loop."""
    graph = serialize.load(digits_build)
    agree = consumer_agreement(graph, _test_images(graph), nir.read(digits_build / "model.nir"))
    print("digits", agree)
    for name in ("snntorch", "norse"):
        assert agree[name] >= 0.97 and agree[f"{name}_exact"] >= 0.5
    assert agree["snntorch_spikes"] == agree["norse_spikes"] > 0


@pytest.mark.parametrize("reset", ["zero", "none"])
def test_zero_and_no_reset_forms(digits_build: Path, reset: str) -> None:
    """Zero reset as NIR's own LIF, no reset as a membrane loop without its reset node."""
    graph = with_reset(serialize.load(digits_build), reset)
    agree = consumer_agreement(graph, _test_images(graph))
    print(reset, agree)
    for name in ("snntorch", "norse"):
        assert agree[name] >= 0.97 and agree[f"{name}_spikes"] > 0


def test_fashion_mlp_nir_runs_in_snntorch_and_norse(fashion_build: Path) -> None:
    graph = serialize.load(fashion_build)
    agree = consumer_agreement(graph, _test_images(graph, 200),
                               nir.read(fashion_build / "model.nir"))
    print("fashion-mnist mlp", agree)
    for name in ("snntorch", "norse"):
        assert agree[name] >= 0.97 and agree[f"{name}_exact"] >= 0.5


def test_batched_run_equals_per_image_run(digits_build: Path) -> None:
    """The batch-axis shift of the importers' Flatten (``nir_consumers``) changes nothing."""
    g = nir.read(digits_build / "model.nir")
    x = _test_images(serialize.load(digits_build), 12)
    for run in (lambda b: snntorch_counts(g, x, 10, batched=b),
                lambda b: norse_counts(g, x, 10, DT, batched=b)):
        batched = run(True)
        assert torch.equal(batched, run(False)) and int(batched.sum()) > 0


def _drop_resets(g: nir.NIRGraph) -> nir.NIRGraph:
    """The file without its reset nodes: the membrane loops of reset ``none``."""
    keep = {k: n for k, n in g.nodes.items() if not k.endswith("_reset")}
    edges = [(a, b) for a, b in g.edges if a in keep and b in keep]
    return nir.NIRGraph(nodes=keep, edges=edges, metadata=g.metadata, type_check=False)


def _old_convention(g: nir.NIRGraph) -> nir.NIRGraph:
    """The file's first convention (tau = 1/(1-beta), r = tau, dt = 1) on a zero-reset file."""
    for node in g.nodes.values():
        if isinstance(node, nir.LIF):
            gain = DT / node.tau
            node.v_threshold = node.v_threshold / gain
            node.tau = 1.0 / gain
            node.r = node.tau.copy()
    return g


def test_wrong_files_are_caught(digits_build: Path) -> None:
    """The agreement check fails on a file without the subtract reset, and on the former
    convention (no output spikes in either importer)."""
    graph = serialize.load(digits_build)
    x = _test_images(graph)
    dropped = consumer_agreement(graph, x, _drop_resets(nir.read(digits_build / "model.nir")))
    assert dropped["snntorch"] < 0.97 and dropped["snntorch_exact"] < 0.1
    zero = with_reset(graph, "zero")
    old = consumer_agreement(zero, x, _old_convention(to_nir(zero)))
    assert old["snntorch_spikes"] == 0 and old["norse_spikes"] == 0 and old["snntorch"] < 0.5


def test_metadata_states_convention_and_limits(digits_build: Path) -> None:
    g = nir.read(digits_build / "model.nir")
    meta = {k: v.decode() if isinstance(v, bytes) else v for k, v in g.metadata.items()}
    assert meta["dt"] == DT and meta["source"] == "qsnn" and meta["time_steps"] == 10
    assert meta["input_scale"] == 1.0 and meta["pixel_max"] == 16
    for word in ("subtract", "previous membrane", "floor", "saturat", "bit widths", "per-channel"):
        assert word in meta["note"].lower(), word
    assert "dt = 1e-4" in meta["convention"] and "norse" in meta["convention"].lower()


def _lif(leak: str, param: int, theta: list[int]) -> LIF:
    return lif(name="lif0", shape=(len(theta),), theta=np.array(theta, np.int32), leak=leak,
               leak_param=param, membrane_bits=16)


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


def test_membrane_loop_nodes() -> None:
    """Subtract reset: identity membrane, beta leak, -theta reset on the spikes, a LIF
    with tau = dt; loops listed before the forward edge."""
    nodes, edges = membrane_nodes(_lif("mult", 230, [5, 9]))
    assert np.array_equal(nodes["lif0_u"].weight, np.eye(2))
    assert np.array_equal(nodes["lif0_leak"].weight, np.eye(2) * 230 / 256)
    assert np.array_equal(nodes["lif0_reset"].weight, -np.diag([5.0, 9.0]))
    cell = nodes["lif0"]
    assert np.all(cell.tau == DT) and np.all(cell.r == 1) and list(cell.v_threshold) == [5, 9]
    assert edges == [("lif0_u", "lif0_leak"), ("lif0_leak", "lif0_u"), ("lif0_u", "lif0"),
                     ("lif0", "lif0_reset"), ("lif0_reset", "lif0_u")]
    none = dataclasses.replace(_lif("shift", 3, [5, 9]), reset="none")
    assert "lif0_reset" not in membrane_nodes(none)[0]


def leak_free_conv_graph(reset: str) -> Graph:
    """conv 3x3 (pad 1) + sum pool 2 + LIF (per-channel theta) -> flatten -> fc -> LIF,
    leak-free (m = 2^F): NIR's float arithmetic is the integer one."""
    rng = np.random.default_rng(3)
    w1 = rng.integers(-7, 8, (4, 1, 3, 3)).astype(np.int8)
    w2 = rng.integers(-7, 8, (10, 64)).astype(np.int8)
    layers = [Conv(weight=w1, padding=1, pool=2, theta=np.array([40, 60, 80, 100]),
                   bias=np.array([3, -2, 0, 5]), reset=reset, membrane_bits=24),
              Fc(weight=w2, theta=9, reset=reset, membrane_bits=24)]
    return network(layers=layers, shape=(1, 8, 8), pixel_max=16, steps=8, name="conv")


@pytest.mark.parametrize("reset", ["subtract", "none"])
def test_leak_free_conv_counts_are_exact(reset: str) -> None:
    """Norse and the reference interpreter give the golden counts exactly (conv, sum pool,
    per-channel theta and bias, 1x1-conv membrane loops); snnTorch has no SumPool2d."""
    graph = leak_free_conv_graph(reset)
    x = torch.randint(0, 17, (40, 1, 8, 8))
    want = golden.run_batched(graph, x).counts
    g = to_nir(graph)
    assert torch.equal(norse_counts(g, x, graph.time_steps, DT), want)
    got = nir_interp.run(nir_interp.chain(g), x.double(), graph.time_steps, DT)
    assert torch.equal(got.round().long(), want) and int(want.sum()) > 0
