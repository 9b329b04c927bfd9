"""qsnn export / eval: agreement with the trained model, outputs, NIR, bad input."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import nir
import numpy as np
import pytest
import torch
from qsnn_testutil import ROOT, TINY

from qsnn import config
from qsnn.cli import main
from qsnn.errors import QsnnError
from qsnn.export import golden, lower, serialize
from qsnn.export.runner import export, load_run
from qsnn.train.runner import train

CONV = ["model.layers=[conv4k3, avgpool2, bn, lif, fc10, lif]", "model.per_channel=true",
        "train.epochs=2", "data.max_train=300", "data.max_test=120"]


@pytest.fixture(scope="module")
def mlp_run(tmp_path_factory) -> Path:
    cfg = config.apply_overrides(config.load(ROOT / "configs/digits.yaml"),
                                 TINY + ["data.max_test=null", "model.bias=true"])
    out = tmp_path_factory.mktemp("runs") / "mlp"
    train(cfg, out)
    return out


@pytest.fixture(scope="module")
def conv_run(tmp_path_factory) -> Path:
    cfg = config.apply_overrides(config.load(ROOT / "configs/digits.yaml"), TINY + CONV)
    out = tmp_path_factory.mktemp("runs") / "conv"
    train(cfg, out)
    return out


def test_mlp_export_agreement_and_outputs(mlp_run, tmp_path) -> None:
    out = tmp_path / "build"
    rep = export(mlp_run, out, vectors=16)
    assert rep["agreement"] == 1.0 and rep["test_images"] == 360  # the full digits test split
    assert rep["golden_accuracy"] == rep["torch_accuracy"]
    for key in ("ir_version", "golden_accuracy", "torch_accuracy", "agreement", "test_images",
                "membrane_bits", "weight_bits"):
        assert key in rep
    assert all(p["equal"] for p in rep["passes"])
    assert [p["graphs"] for p in rep["passes"]] == ["raw graph vs trained model"] + [
        f"after {n} vs before {n}" for n, _ in lower.PASSES]
    idle = [p["pass"] for p in rep["passes"] if p["compared"].startswith("nothing")]
    assert idle == ["avgpool_to_sumpool", "fold_batchnorm"]  # an MLP has no pool or BN
    assert {p["images"] for p in rep["passes"]} == {360}
    assert rep["qonnx"]["spike_mismatches"] == 0 and rep["qonnx"]["membrane_mismatches"] == 0
    for name in ("model.json", "weights.npz", "model.qonnx.onnx", "model.nir",
                 "export_report.json", "golden/vectors.npz", "golden/index.json"):
        assert (out / name).is_file(), name
    graph = serialize.load(out)
    vec = np.load(out / "golden/vectors.npz")
    assert vec["inputs"].shape[0] == 16
    res = golden.run(graph, torch.from_numpy(vec["inputs"][:4]), record=True)
    assert np.array_equal(res.counts.numpy(), vec["counts"][:4])
    for lif, spk, mem in zip(graph.lifs(), res.spikes, res.membranes, strict=True):
        assert np.array_equal(spk.numpy(), vec[f"trace.{lif.name}.spikes"])
        assert np.array_equal(mem.numpy(), vec[f"trace.{lif.name}.membranes"])
    assert graph.lifs()[0].bias is not None
    back = nir.read(out / "model.nir")
    assert "subtract" in back.metadata["note"] and "fc1" in back.nodes


def test_conv_bn_pool_export_agreement(conv_run, tmp_path) -> None:
    rep = export(conv_run, tmp_path / "b", vectors=8)
    assert rep["agreement"] == 1.0 and rep["test_images"] == 120
    ops = [n["op"] for n in json.loads((tmp_path / "b/model.json").read_text())["nodes"]]
    assert ops == ["conv2d", "sumpool", "lif", "flatten", "linear", "lif", "readout"]
    assert rep["qonnx"]["spike_mismatches"] == 0


def test_export_is_deterministic(mlp_run, tmp_path) -> None:
    export(mlp_run, tmp_path / "a", vectors=8)
    export(mlp_run, tmp_path / "b", vectors=8)
    for name in ("model.json", "weights.npz", "golden/vectors.npz", "model.qonnx.onnx"):
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes()


def test_eval_cli_prints_golden_accuracy(mlp_run, tmp_path, capsys) -> None:
    assert main(["export", str(mlp_run), "--out", str(tmp_path / "b"), "--no-qonnx"]) == 0
    capsys.readouterr()
    assert main(["eval", str(tmp_path / "b")]) == 0
    line = capsys.readouterr().out
    rep = json.loads((tmp_path / "b/export_report.json").read_text())
    assert f"{rep['golden_accuracy']:.4f}" in line


def run_cli(args: list[str], capsys) -> tuple[int, str]:
    code = main(args)
    err = capsys.readouterr().err.strip().splitlines()
    return code, err[-1] if err else ""


def test_bad_export_inputs(mlp_run, tmp_path, capsys) -> None:
    out = tmp_path / "b"
    code, msg = run_cli(["export", str(tmp_path / "nope"), "--out", str(out)], capsys)
    assert code == 2 and "run folder not found" in msg
    code, msg = run_cli(["export", str(mlp_run), "--out", str(out), "--membrane-bits", "4"],
                        capsys)
    assert code == 2 and "can overflow" in msg
    assert not out.exists() and not list(tmp_path.glob(".b.*"))


def test_a_broken_pass_stops_the_export_naming_it(mlp_run, tmp_path, capsys,
                                                 monkeypatch) -> None:
    def bias_plus_one(seg):  # fold_bias whose integer bias comes out one too high
        had = any(isinstance(n, lower.BiasAdd) for n in seg)
        out = lower.fold_bias(seg)
        if had:
            out = lower._with_lif(out, offset=out[-1].offset + out[-1].unit)
        return out

    monkeypatch.setattr(lower, "PASSES", [(n, bias_plus_one if n == "fold_bias" else fn)
                                          for n, fn in lower.PASSES])
    code, msg = run_cli(["export", str(mlp_run), "--out", str(tmp_path / "b")], capsys)
    assert code == 2
    assert msg.startswith("qsnn: error: export check of pass 'fold_bias' failed (after "
                          "fold_bias vs before fold_bias): lif0 "), msg
    assert msg.endswith("differ first at test image 0, step 0"), msg  # the bias acts at once
    assert not (tmp_path / "b").exists() and not list(tmp_path.glob(".b.*"))


def test_fp32_run_and_foreign_checkpoint(tmp_path, capsys) -> None:
    cfg = config.apply_overrides(config.load(ROOT / "configs/digits.yaml"),
                                 TINY + ["model.precision=fp32", "train.epochs=1"])
    train(cfg, tmp_path / "fp32")
    code, msg = run_cli(["export", str(tmp_path / "fp32"), "--out", str(tmp_path / "b")], capsys)
    assert code == 2 and "hardware-aware" in msg
    other = config.apply_overrides(
        cfg, ["model.precision=int4", "model.layers=[fc16, lif, fc10, lif]"])
    (tmp_path / "fp32/config.yaml").write_text(config.dump(other))
    with pytest.raises(QsnnError, match="another config"):
        load_run(tmp_path / "fp32")
    assert not (tmp_path / "b").exists()


def test_corrupt_ir_for_eval(tmp_path, capsys) -> None:
    (tmp_path / "model.json").write_text("{")
    (tmp_path / "weights.npz").write_bytes(b"")
    code, msg = run_cli(["eval", str(tmp_path)], capsys)
    assert code == 2 and "not valid JSON" in msg


def test_make_export_entry_point_runs(tmp_path, mlp_run) -> None:
    proc = subprocess.run([sys.executable, "-m", "qsnn.cli", "export", str(mlp_run), "--out",
                           str(tmp_path / "x"), "--no-qonnx", "--vectors", "all"],
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-800:]
    assert "agreement 1.0000" in proc.stdout
    assert np.load(tmp_path / "x/golden/vectors.npz")["inputs"].shape[0] == 360
