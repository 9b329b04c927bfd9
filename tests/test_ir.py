"""The deployment IR: save/load round trips, deterministic files, one-line errors."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest

from qsnn.errors import QsnnError
from qsnn.export import serialize
from qsnn.export.ir import (
    LIF,
    Conv2d,
    Graph,
    Leak,
    Linear,
    Reset,
    SumPool,
)
from qsnn.export.serialize import from_json, load, save, to_json
from qsnn.export.validate import validate
from qsnn.export.widths import analyze
from qsnn.testing import Conv, Fc, int_weights, network


def fit_bits(graph: Graph) -> Graph:
    """Each LIF's membrane_bits := the minimum the width analysis allows."""
    need = {w.name: w.membrane_bits for w in analyze(graph)}
    return graph.replace(nodes=tuple(
        dataclasses.replace(n, membrane_bits=need[n.name]) if isinstance(n, LIF) else n
        for n in graph.nodes))


def conv_graph(bias: bool = True) -> Graph:
    rng = np.random.default_rng(1)
    w0, w1 = int_weights(rng, (2, 1, 3, 3)), int_weights(rng, (3, 18))
    layers = [Conv(weight=w0, padding=1, pool=2, theta=np.array([40, 55], np.int32),
                   bias=np.array([-3, 4], np.int32) if bias else None, leak=Leak.MULT,
                   leak_param=230),
              Fc(weight=w1, theta=np.array([5, 6, 7], np.int32), leak=Leak.SHIFT, leak_param=3,
                 reset=Reset.ZERO)]
    return fit_bits(network(layers=layers, shape=(1, 6, 6), pixel_max=16, steps=6, name="conv",
                            metadata={"dataset": "digits", "precision": "int4", "classes": 3}))


def mlp_graph(bias: bool = False, encoding: str = "rate", seed: int = 0xACE1) -> Graph:
    rng = np.random.default_rng(2)
    w0 = rng.integers(-127, 128, (5, 36)).astype(np.int16)
    b0 = rng.integers(-20, 20, 5) if bias else None
    w1 = rng.integers(-1, 2, (3, 5)).astype(np.int8)
    layers = [Fc(weight=w0, weight_bits=8, theta=100, bias=b0, leak=Leak.SHIFT, leak_param=2,
                 reset=Reset.NONE),
              Fc(weight=w1, weight_bits=2, theta=np.array([1, 2, 3], np.int64),
                 bias=np.array([0, -1, 1]) if bias else None)]
    meta = {"dataset": "mnist", "nested": {"a": [1, 2, {"b": None}], "c": 1.5}, "ok": True}
    return fit_bits(network(layers=layers, shape=(1, 6, 6), encoding=encoding, lfsr_seed=seed,
                            steps=4, name="mlp", metadata=meta))


GRAPHS = {
    "conv-bias": lambda: conv_graph(True),
    "conv-nobias": lambda: conv_graph(False),
    "mlp-rate-nobias": lambda: mlp_graph(False),
    "mlp-rate-bias": lambda: mlp_graph(True, seed=0xFFFFFFFF),
    "mlp-direct-bias": lambda: mlp_graph(True, "direct", 0),
    "mlp-events": lambda: mlp_graph(False, "events", 0),
}


def _replace_node(graph: Graph, name: str, **changes) -> Graph:
    return graph.replace(nodes=tuple(
        dataclasses.replace(n, **changes) if n.name == name else n for n in graph.nodes))


# -- round trip, equality, determinism -------------------------------------------------
@pytest.mark.parametrize("case", sorted(GRAPHS))
def test_round_trip(case: str, tmp_path: Path) -> None:
    g = GRAPHS[case]()
    validate(g)
    save(g, tmp_path)
    back = load(tmp_path)
    assert back == g and not (back != g)
    assert back.metadata == g.metadata and back.input == g.input
    assert from_json(json.loads(json.dumps(to_json(g))), serialize.arrays(g)) == g
    for a, b in zip(back.nodes, g.nodes, strict=True):
        for key in a.array_fields:
            va, vb = getattr(a, key), getattr(b, key)
            assert (va is None) == (vb is None)
            if va is not None:
                assert va.dtype == vb.dtype and np.array_equal(va, vb)


@pytest.mark.parametrize("case", sorted(GRAPHS))
def test_one_differing_value_breaks_equality(case: str) -> None:
    g = GRAPHS[case]()
    first = next(n for n in g.nodes if isinstance(n, (Linear, Conv2d)))
    w = first.weight.copy()
    w.flat[3] = 0 if w.flat[3] else 1
    assert _replace_node(g, first.name, weight=w) != g
    lif = g.lifs()[0]
    theta = lif.theta.copy()
    theta[0] += 1
    assert _replace_node(g, lif.name, theta=theta) != g
    assert _replace_node(g, lif.name, bias=None if lif.bias is not None
                         else np.zeros(lif.channels, np.int64)) != g
    assert g.replace(metadata={**g.metadata, "x": 1}) != g
    assert g.replace(input=dataclasses.replace(g.input, lfsr_seed=7)) != g
    assert g.replace(time_steps=g.time_steps + 1) != g
    assert _replace_node(g, lif.name, reset="none" if lif.reset != "none" else "zero") != g
    assert g != "not a graph"


def _files(folder: Path) -> tuple[bytes, bytes]:
    return (folder / "model.json").read_bytes(), (folder / "weights.npz").read_bytes()


@pytest.mark.parametrize("case", sorted(GRAPHS))
def test_saving_is_deterministic(case: str, tmp_path: Path) -> None:
    g = GRAPHS[case]()
    save(g, tmp_path / "a")
    save(g, tmp_path / "b")
    assert _files(tmp_path / "a") == _files(tmp_path / "b")
    save(g, tmp_path / "a")  # overwrite in place
    save(load(tmp_path / "b"), tmp_path / "c")  # and after a round trip
    assert _files(tmp_path / "a") == _files(tmp_path / "b") == _files(tmp_path / "c")
    assert sorted(p.name for p in (tmp_path / "a").iterdir()) == ["model.json", "weights.npz"]


def test_save_rejects_an_invalid_graph_and_writes_nothing(tmp_path: Path) -> None:
    g = _replace_node(conv_graph(), "lif1", theta=np.array([0, 1, 1]))
    with pytest.raises(QsnnError, match="theta"):
        save(g, tmp_path / "out")
    assert not (tmp_path / "out" / "model.json").exists()


# -- bad input: one QsnnError line naming the problem ------------------------------------
def _saved(tmp_path: Path) -> tuple[dict, dict[str, np.ndarray]]:
    save(conv_graph(), tmp_path)
    doc = json.loads((tmp_path / "model.json").read_text())
    with np.load(tmp_path / "weights.npz") as z:
        arrs = {k: z[k] for k in z.files}
    return doc, arrs


def _write(folder: Path, doc, arrs: dict[str, np.ndarray]) -> None:
    (folder / "model.json").write_text(json.dumps(doc))
    np.savez(folder / "weights.npz", **arrs)


def _node(doc: dict, name: str) -> dict:
    return next(n for n in doc["nodes"] if n["name"] == name)


def _raises(folder: Path, match: str) -> str:
    with pytest.raises(QsnnError, match=match) as exc:
        load(folder)
    msg = str(exc.value)
    assert "\n" not in msg and msg.strip() == msg and msg
    return msg


def _set(d: dict, key: str, value) -> None:
    d[key] = value


def _swap(doc: dict, i: int, j: int) -> None:
    doc["nodes"][i], doc["nodes"][j] = doc["nodes"][j], doc["nodes"][i]


BAD_DOC = {
    # doc mutations -> expected message regex
    "wrong format": (lambda d, a: _set(d, "format", "onnx"), r"not a qsnn IR"),
    "not a mapping": (lambda d, a: d.clear() or d.update({"0": [1, 2]}), r"not a qsnn IR"),
    "wrong version": (lambda d, a: _set(d, "version", 2), r"IR version 2 is not supported"),
    "version as string": (lambda d, a: _set(d, "version", "1"), r"IR version '1'"),
    "unknown op": (lambda d, a: _set(d["nodes"][1], "op", "maxpool"),
                   r"node 1: unknown op 'maxpool'"),
    "node not a mapping": (lambda d, a: d["nodes"].insert(0, 3), r"node 0: unknown op 3"),
    "unknown field": (lambda d, a: _set(_node(d, "fc1"), "stride", 1),
                      r"node 4 \(fc1\): unknown field\(s\) stride"),
    "unknown input field": (lambda d, a: _set(d["input"], "colour", "red"),
                            r"input: unknown field\(s\) colour"),
    "input op": (lambda d, a: _set(d["input"], "op", "lif"), r"input: op must be 'input'"),
    "missing field": (lambda d, a: _node(d, "lif0").pop("reset"),
                      r"node 2 \(lif0\): missing field 'reset'"),
    "missing name": (lambda d, a: _node(d, "fc1").pop("name"),
                     r"node 4 \(\?\): missing field 'name'"),
    "missing top-level": (lambda d, a: d.pop("time_steps"), r"missing top-level field"),
    "nodes not a list": (lambda d, a: _set(d, "nodes", {}), r"'nodes' must be a list"),
    "metadata not a mapping": (lambda d, a: _set(d, "metadata", [1]), r"'metadata'"),
    "wrong type str": (lambda d, a: _set(_node(d, "fc1"), "in_features", "18"),
                       r"field 'in_features' has a wrong type: '18'"),
    "wrong type bool": (lambda d, a: _set(_node(d, "lif0"), "membrane_bits", True),
                        r"field 'membrane_bits' has a wrong type: True"),
    "wrong type float": (lambda d, a: _set(d["input"], "pixel_max", 16.0),
                         r"field 'pixel_max' has a wrong type: 16\.0"),
    "wrong type shape": (lambda d, a: _set(_node(d, "lif0"), "shape", "2x3x3"),
                         r"field 'shape' has a wrong type"),
    "wrong type name": (lambda d, a: _set(_node(d, "pool0"), "name", 7),
                        r"field 'name' has a wrong type: 7"),
    "wrong type time_steps": (lambda d, a: _set(d, "time_steps", "6"),
                              r"field 'time_steps' has a wrong type"),
    "wrong encoding": (lambda d, a: _set(d["input"], "encoding", "latency"),
                       r"encoding 'latency' not one of"),
    "time_steps zero": (lambda d, a: _set(d, "time_steps", 0), r"time_steps 0 outside 1\.\.100000"),
    "missing array": (lambda d, a: a.pop("fc1.weight"),
                      r"node 4 \(fc1\): array 'fc1\.weight' missing from weights\.npz"),
    "wrong array shape": (lambda d, a: _set(a, "fc1.weight", a["fc1.weight"][:, :17]),
                          r"'fc1': weight has shape \(3, 17\), expected \(3, 18\)"),
    "wrong theta shape": (lambda d, a: _set(a, "lif1.theta", np.ones(4, np.int32)),
                          r"'lif1': theta has shape \(4,\), expected \(3,\)"),
    "float weight": (lambda d, a: _set(a, "conv0.weight", a["conv0.weight"].astype(np.float32)),
                     r"'conv0': weight must be an integer array"),
    "float theta": (lambda d, a: _set(a, "lif0.theta", a["lif0.theta"].astype(np.float64)),
                    r"'lif0': theta must be an integer array"),
    "weight out of range": (lambda d, a: a["fc1.weight"].__setitem__((0, 0), -8),
                            r"'fc1': weight out of range for 4 bits \(\|W\| <= 7\)"),
    "weight_bits too big": (lambda d, a: _set(_node(d, "fc1"), "weight_bits", 9),
                            r"'fc1': weight_bits 9 outside 2\.\.8"),
    # np.abs(INT64_MIN) is INT64_MIN (negative): these must not slip past the range checks
    "weight INT64_MIN": (lambda d, a: _set(a, "fc1.weight", np.where(
        np.arange(54).reshape(3, 18) == 0, np.int64(np.iinfo(np.int64).min),
        a["fc1.weight"]).astype(np.int64)), r"'fc1': weight out of range for 4 bits"),
    "bias INT64_MIN": (lambda d, a: _set(a, "lif0.bias", np.array([1, np.iinfo(np.int64).min])),
                       r"'lif0': bias exceeds the \d+-bit membrane range"),
    "theta < 1": (lambda d, a: a["lif1.theta"].__setitem__(1, 0),
                  r"'lif1': theta must lie in 1\.\."),
    "theta negative": (lambda d, a: a["lif0.theta"].__setitem__(0, -5),
                       r"'lif0': theta must lie in 1\.\."),
    "bias too big": (lambda d, a: a["lif0.bias"].__setitem__(0, 2**20),
                     r"'lif0': bias exceeds the \d+-bit membrane range"),
    "membrane overflow": (lambda d, a: _set(_node(d, "lif1"), "membrane_bits",
                                            _node(d, "lif1")["membrane_bits"] - 1),
                          r"'lif1': membrane_bits \d+ can overflow \(worst case \[-?\d+, \d+\]"),
    "membrane_bits > 32": (lambda d, a: _set(_node(d, "lif0"), "membrane_bits", 33),
                           r"'lif0': membrane_bits 33 outside 2\.\.32"),
    "bad leak": (lambda d, a: _set(_node(d, "lif0"), "leak", "exp"), r"'lif0': reset must be"),
    "bad reset": (lambda d, a: _set(_node(d, "lif1"), "reset", "soft"), r"'lif1': reset must"),
    "leak_param": (lambda d, a: _set(_node(d, "lif0"), "leak_param", 257),
                   r"'lif0': leak_param 257 outside 0\.\.256"),
    "shift param 0": (lambda d, a: _set(_node(d, "lif1"), "leak_param", 0),
                      r"'lif1': leak_param 0 outside 1\.\.30"),
    "lif shape": (lambda d, a: _set(_node(d, "lif0"), "shape", [2, 9]),
                  r"'lif0': shape \(2, 9\) does not match its input \(2, 3, 3\)"),
    "readout classes": (lambda d, a: _set(_node(d, "readout"), "classes", 5),
                        r"'readout': classes 5 does not match the last LIF \(3,\)"),
    "lif before weight layer": (lambda d, a: _swap(d, 0, 2),
                                r"'lif0': LIF must follow a weight layer or SumPool"),
    "pool after linear": (lambda d, a: d["nodes"].insert(5, {"op": "sumpool", "name": "p",
                                                             "kernel": 1}),
                          r"'p': SumPool must follow a Conv2d"),
    "pool kernel": (lambda d, a: _set(_node(d, "pool0"), "kernel", 4),
                    r"'pool0': kernel 4 does not divide"),
    "linear needs flatten": (lambda d, a: d["nodes"].pop(3),
                             r"'fc1': in_features 18 does not match input \(2, 3, 3\)"),
    "conv in_channels": (lambda d, a: _set(_node(d, "conv0"), "in_channels", 2),
                         r"'conv0': in_channels 2 does not match"),
    "readout not last": (lambda d, a: d["nodes"].append({"op": "flatten", "name": "f9"}),
                         r"'readout': Readout must be the last node"),
    "no readout": (lambda d, a: d["nodes"].pop(), r"must end with a Readout"),
    "duplicate names": (lambda d, a: _set(_node(d, "lif1"), "name", "lif0"),
                        r"node name '\w+' is used more than once"),
    "rate seed zero": (lambda d, a: d["input"].update(encoding="rate", lfsr_seed=0),
                       r"lfsr_seed 0 outside 1\.\.2\^32-1"),
    "pixel_max zero": (lambda d, a: _set(d["input"], "pixel_max", 0), r"pixel_max 0 outside"),
    "input not 3-D": (lambda d, a: _set(d["input"], "shape", [36]), r"shape \(36,\) must be"),
}


@pytest.mark.parametrize("case", sorted(BAD_DOC))
def test_bad_ir_is_one_line_error(case: str, tmp_path: Path) -> None:
    doc, arrs = _saved(tmp_path)
    mutate, match = BAD_DOC[case]
    mutate(doc, arrs)
    _write(tmp_path, doc, arrs)
    _raises(tmp_path, match)


def test_the_unmutated_rewrite_loads(tmp_path: Path) -> None:
    """The helpers above write a valid IR when nothing is changed (np.savez, plain json)."""
    doc, arrs = _saved(tmp_path)
    _write(tmp_path, doc, arrs)
    assert load(tmp_path) == conv_graph()


def test_truncated_weights(tmp_path: Path) -> None:
    save(conv_graph(), tmp_path)
    data = (tmp_path / "weights.npz").read_bytes()
    (tmp_path / "weights.npz").write_bytes(data[: len(data) // 2])
    _raises(tmp_path, r"weights\.npz is corrupt or truncated")
    (tmp_path / "weights.npz").write_bytes(b"")
    _raises(tmp_path, r"weights\.npz is corrupt or truncated")


def test_pickled_weights_are_refused(tmp_path: Path) -> None:
    doc, arrs = _saved(tmp_path)
    arrs["fc1.weight"] = np.array([object()], dtype=object)
    (tmp_path / "model.json").write_text(json.dumps(doc))
    np.savez(tmp_path / "weights.npz", **arrs)
    _raises(tmp_path, r"weights\.npz is corrupt or truncated")


@pytest.mark.parametrize("text", [b"{\"format\": \"qsnn-ir\",", b"", b"\xff\xfe\x00garbage",
                                  b"nan nan"])
def test_not_json(text: bytes, tmp_path: Path) -> None:
    save(conv_graph(), tmp_path)
    (tmp_path / "model.json").write_bytes(text)
    _raises(tmp_path, r"model\.json is not valid JSON")


def test_json_not_an_object(tmp_path: Path) -> None:
    save(conv_graph(), tmp_path)
    for doc in ([1, 2], None, "qsnn-ir", 3):
        (tmp_path / "model.json").write_text(json.dumps(doc))
        _raises(tmp_path, r"model\.json is not a qsnn IR")


def test_missing_files(tmp_path: Path) -> None:
    _raises(tmp_path / "nowhere", r"no IR in .*nowhere: model\.json not found")
    save(conv_graph(), tmp_path)
    (tmp_path / "weights.npz").unlink()
    _raises(tmp_path, r"no IR weights in .*: weights\.npz not found")
    (tmp_path / "model.json").unlink()
    _raises(tmp_path, r"model\.json not found")


def test_validate_width_check_is_exact() -> None:
    """The minimal width passes, one bit less is refused."""
    g = conv_graph()
    for w in analyze(g):
        narrower = _replace_node(g, w.name, membrane_bits=w.membrane_bits - 1)
        with pytest.raises(QsnnError, match=f"'{w.name}': membrane_bits .* can overflow"):
            validate(narrower)
    assert validate(g) is g


# -- strictness: version type, unknown keys, unexpected arrays ---------------------------
@pytest.mark.parametrize("version", [True, 1.0])
def test_version_must_be_the_integer_1(version, tmp_path: Path) -> None:
    doc, arrs = _saved(tmp_path)
    doc["version"] = version
    _write(tmp_path, doc, arrs)
    _raises(tmp_path, r"IR version .* is not supported")


def test_unknown_top_level_field(tmp_path: Path) -> None:
    doc, arrs = _saved(tmp_path)
    doc["timesteps"] = 8
    _write(tmp_path, doc, arrs)
    _raises(tmp_path, r"unknown top-level field.*timesteps")


def test_unexpected_array_in_npz(tmp_path: Path) -> None:
    doc, arrs = _saved(tmp_path)
    arrs["lif0.bais"] = arrs["lif0.bias"]
    _write(tmp_path, doc, arrs)
    _raises(tmp_path, r"lif0\.bais")


# -- the contract vocabulary: enums and the shape rule ------------------------------------
def test_enums_keep_their_spellings_and_rtl_codes() -> None:
    import json

    from qsnn.export.ir import Encoding, Leak, Reset

    assert Reset.values() == ("subtract", "zero", "none")
    assert Leak.values() == ("shift", "mult")
    assert Encoding.values() == ("direct", "rate", "events")
    assert Reset.ZERO == "zero" and f"{Reset.ZERO}" == "zero" and str(Leak.MULT) == "mult"
    assert json.dumps({"r": Reset.NONE}) == '{"r": "none"}'
    # RTL parameters: RESET_MODE, LEAK_MULT, ENC (hw/rtl/qsnn_lif_lane.v, qsnn_encoder.v)
    assert [r.code for r in Reset] == [0, 1, 2] and Leak.MULT.code == 1
    assert Encoding.EVENTS.code == 2
    assert all(Reset.from_code(r.code) is r for r in Reset)


def test_conv_and_pool_shape_rule_is_shared() -> None:
    from qsnn.export.ir import conv_out_size, pool_out_size
    from qsnn.train.model import parse_layers

    assert conv_out_size(28, 5, 0) == 24 and conv_out_size(28, 3, 1) == 28
    assert pool_out_size(24, 2) == 12 and pool_out_size(7, 2) == 3
    conv = Conv2d("c", 1, 4, 5, 1, 4, np.zeros((4, 1, 5, 5), np.int8))
    assert conv.out_shape((1, 28, 28)) == (4, 26, 26)
    assert SumPool("p", 2).out_shape((4, 26, 26)) == (4, 13, 13)
    spec = parse_layers(["conv4k5p1", "avgpool2", "lif", "fc10", "lif"], (1, 28, 28))
    assert spec[1].in_ch == 4 * 13 * 13
