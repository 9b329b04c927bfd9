"""Issue 15's bad inputs: each gets one line (``qsnn: error: ...``), exit 2, and no file
written; and the valid inputs that were refused are accepted."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from qsnn_testutil import ROOT, TINY
from test_outdir import ir  # noqa: F401  (fixture)

from qsnn import config
from qsnn.cli import main

CONFIG = str(ROOT / "configs/digits.yaml")


def one_line(capsys, argv: list[str], match: str) -> None:
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("qsnn: error: ") and "\n" not in err, err
    assert match in err, err


def files(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*"))


@pytest.mark.parametrize("extra, match", [
    (["--seed", str(10**20)], "train.seed' is out of range"),
    (["--seed", "-1"], "train.seed' is out of range"),
    (["--time-steps", "1000000000"], "GiB of memory"),
    (["--set", "model.layers=[fc0, lif, fc10, lif]"], "size of 0"),
    (["--name", "team/net"], "name 'team/net'"),
    (["--name", ""], "name ''"),
    (["--set", "name=a\nb"], "name 'a\\nb'"),
    (["--set", "train.lr=.inf"], "finite"),
    (["--set", "model.threshold=.inf"], "finite"),
    (["--set", "model.slope=.inf"], "finite"),
    (["--set", "model.beta=.nan"], "finite"),
    (["--set", "data.max_test=0"], "data.max_test' is out of range"),
])
def test_train_refuses(extra, match, tmp_path, capsys, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    sets = [a for t in TINY for a in ("--set", t)]
    one_line(capsys, ["train", "--config", CONFIG, *sets, *extra], match)
    assert files(tmp_path) == []


def test_train_refuses_bad_files_and_outputs(tmp_path, capsys) -> None:
    cfg = tmp_path / "c.yaml"
    cfg.write_bytes(b"name: \xff\xfe\n")
    one_line(capsys, ["train", "--config", str(cfg), "--out", str(tmp_path / "r")], "UTF-8")
    (tmp_path / "afile").write_text("mine")
    one_line(capsys, ["train", "--config", CONFIG, "--out", str(tmp_path / "afile")],
             "not a folder")
    one_line(capsys, ["train", "--config", CONFIG, "--out", str(tmp_path / "afile/run")],
             "not a folder")
    assert files(tmp_path) == ["afile", "c.yaml"]
    assert (tmp_path / "afile").read_text() == "mine"


def test_scientific_learning_rates_are_numbers(tmp_path) -> None:
    base = config.load(CONFIG)
    assert config.apply_overrides(base, ["train.lr=1e-3"]).train.lr == 1e-3
    assert config.apply_overrides(base, ["train.lr=1e-05"]).train.lr == 1e-5   # --lr 1e-5
    raw = yaml.safe_load(Path(CONFIG).read_text())
    raw["train"]["lr"] = "2e-3"          # what PyYAML makes of `lr: 2e-3`
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(raw).replace("'2e-3'", "2e-3"))
    assert "lr: 2e-3" in (tmp_path / "c.yaml").read_text()
    assert config.load(tmp_path / "c.yaml").train.lr == 2e-3
    with pytest.raises(Exception, match="must be a number"):
        config.apply_overrides(base, ["train.lr=1e-3x"])


def test_export_refuses(tmp_path, capsys) -> None:
    one_line(capsys, ["export", str(tmp_path / "run"), "--membrane-bits", "99",
                      "--out", str(tmp_path / "b")], "--membrane-bits 99")
    from qsnn.train import checkpoint
    from qsnn.train.runner import train

    run = tmp_path / "run"
    cfg = config.apply_overrides(config.load(CONFIG), TINY + ["train.epochs=1"])
    train(cfg, run)
    capsys.readouterr()
    ckpt = checkpoint.load(run / "best.pt")
    first = next(iter(ckpt["model"]))
    ckpt["model"][first] = torch.full_like(ckpt["model"][first], float("nan"))
    checkpoint.save(run / "best.pt", {k: v for k, v in ckpt.items()
                                      if k not in ("format", "version")})
    one_line(capsys, ["export", str(run), "--out", str(tmp_path / "b")], "non-finite")
    assert not (tmp_path / "b").exists()


def test_hw_verify_bitstream_refuse(ir, tmp_path, capsys) -> None:  # noqa: F811
    for n in ("0", "-1"):
        one_line(capsys, ["hw", str(ir), "--estimate", "--images", n], f"--images {n}")
    hw = tmp_path / "hw"
    assert main(["hw", str(ir), "--out", str(hw)]) == 0
    capsys.readouterr()
    mem = sorted(hw.glob("*.mem"))[0]
    mem.unlink()
    one_line(capsys, ["verify", str(ir), "--hw", str(hw)], f"({mem.name} missing)")
    assert main(["hw", str(ir), "--out", str(hw)]) == 0
    (hw / "qsnn_layer.v").unlink()
    one_line(capsys, ["bitstream", str(hw), "--board", "icebreaker"], "qsnn_layer.v missing")
    for text in ("[]", "{not json", json.dumps({"name": "t"})):
        (hw / "params.json").write_text(text)
        for argv in (["verify", str(ir), "--hw", str(hw)],
                     ["bitstream", str(hw), "--board", "icebreaker"]):
            one_line(capsys, argv, "params.json")
    vec = ir / "golden/vectors.npz"
    vec.write_bytes(np.random.default_rng(0).bytes(300))
    one_line(capsys, ["hw", str(ir), "--estimate"], "not a golden-vector file")
    np.savez(vec, inputs=np.zeros((3, 5), np.uint8))
    one_line(capsys, ["hw", str(ir), "--estimate"], "do not fit the IR's input")


def test_ir_names_reaching_files_are_validated(ir, tmp_path, capsys) -> None:  # noqa: F811
    doc = json.loads((ir / "model.json").read_text())
    doc["name"] = "t\nkey: injected"
    (ir / "model.json").write_text(json.dumps(doc))
    one_line(capsys, ["hw", str(ir), "--out", str(tmp_path / "hw")], "IR: name")
    assert not (tmp_path / "hw").exists()


def test_run_refuses_a_nan_timeout(tmp_path, capsys) -> None:
    one_line(capsys, ["run", "--port", "loop://", "--timeout", "nan"], "--timeout nan")


def test_experiment_retrains_over_a_hand_edited_result(tmp_path) -> None:
    from qsnn.experiment import read_json_object

    (tmp_path / "result.json").write_text("[]")
    assert read_json_object(tmp_path / "result.json", ("test_accuracy",)) is None
    (tmp_path / "result.json").write_text('{"test_accuracy": 0.5}')
    assert read_json_object(tmp_path / "result.json", ("test_accuracy",)) == {
        "test_accuracy": 0.5}


def test_sweep_refuses_an_infinite_range() -> None:
    from qsnn.errors import QsnnError
    from qsnn.sweep import search_space

    cfg = config.load(CONFIG)
    for rng in ("lr=1e-4:inf", "beta=nan:0.9", "lr=1e-5:1e-2x"):
        with pytest.raises(QsnnError, match="--range"):
            search_space(["lr", "beta"], [rng], cfg)
    assert search_space(["lr"], ["lr=1e-5:1e-2"], cfg)["lr"].low == 1e-5
