"""``qsnn experiment schedules``: end to end, resume after SIGKILL, bad input."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from qsnn_testutil import ROOT, TINY

from qsnn import config
from qsnn.cli import main
from qsnn.errors import QsnnError
from qsnn.experiment import make_grid, run_schedules
from qsnn.experiment_plots import lr_curve
from qsnn.experiment_report import epochs_to_fraction, stats
from qsnn.train import checkpoint

SETS = [*TINY, "train.epochs=2"]


def cli(out: Path, *extra: str) -> list[str]:
    sets = [a for t in SETS for a in ("--set", t)]
    return ["experiment", "schedules", "--config", str(ROOT / "configs/digits.yaml"),
            "--out", str(out), *sets, *extra]


@pytest.fixture
def base():
    return config.apply_overrides(config.load(ROOT / "configs/digits.yaml"), SETS)


def test_end_to_end_and_rerun_skips(base, tmp_path) -> None:
    grid = make_grid(["fp32", "int4"], ["constant", "cosine-restarts"], [0, 1])
    out = tmp_path / "exp"
    summary = run_schedules(base, grid, out, log=lambda _: None)
    for name in ("experiment.json", "results.json", "results.md", "plots/fp32.png",
                 "plots/int4.png", "plots/accuracy.png"):
        assert (out / name).is_file(), name
    assert len(summary["runs"]) == 8 and len(summary["cells"]) == 4
    assert json.loads((out / "results.json").read_text()) == summary
    for cell in summary["cells"]:
        acc = cell["test_accuracy"]
        assert acc["n"] == 2 and acc["std"] is not None
        assert acc["mean"] == pytest.approx(sum(acc["values"]) / 2)
        if cell["precision"] == "int4":
            assert cell["agreement"]["values"] == [1.0, 1.0]  # golden == torch
            assert cell["golden_accuracy"]["values"] == acc["values"]
        else:
            assert cell["golden_accuracy"]["n"] == 0
    for r in summary["runs"]:
        result = json.loads((out / r["run"] / "result.json").read_text())
        assert r["test_accuracy"] == result["test_accuracy"] and r["epochs"] == 2
        assert 1 <= r["epochs_to_95"] <= 2
    md = (out / "results.md").read_text()
    assert "| int4 | cosine-restarts |" in md and "±" in md
    # rerun: every run is skipped and the summary is byte-identical
    before = (out / "results.json").read_bytes()
    logs: list[str] = []
    run_schedules(base, grid, out, log=logs.append)
    assert sum("already finished" in m for m in logs) == 8
    assert (out / "results.json").read_bytes() == before
    assert not list(out.rglob("*.tmp"))


def test_resume_after_kill(base, tmp_path) -> None:
    args = cli(tmp_path / "killed", "--precisions", "int4", "--schedules", "cosine",
               "--seeds", "0", "1")
    env = dict(os.environ, QSNN_TEST_KILL_AFTER_EPOCH="1")
    killed = subprocess.run([sys.executable, "-m", "qsnn.cli", *args], env=env,
                            capture_output=True, cwd=tmp_path)
    assert killed.returncode == -9, killed.stderr.decode()[-500:]
    first = tmp_path / "killed/runs/int4-cosine-s0"
    assert (first / "last.pt").is_file() and not (first / "result.json").exists()
    assert not (tmp_path / "killed/results.json").exists()
    assert main(args) == 0  # continues where it stopped
    grid = make_grid(["int4"], ["cosine"], [0, 1])
    run_schedules(base, grid, tmp_path / "full", log=lambda _: None)
    for seed in (0, 1):
        a = checkpoint.load(tmp_path / f"killed/runs/int4-cosine-s{seed}/last.pt")["model"]
        b = checkpoint.load(tmp_path / f"full/runs/int4-cosine-s{seed}/last.pt")["model"]
        assert all(torch.equal(a[k], b[k]) for k in a)
    ra = json.loads((tmp_path / "killed/results.json").read_text())
    rb = json.loads((tmp_path / "full/results.json").read_text())
    for x, y in zip(ra["runs"], rb["runs"], strict=True):
        assert x["test_accuracy"] == y["test_accuracy"]
        assert x["best_val_accuracy"] == y["best_val_accuracy"]


def test_different_config_is_refused(tmp_path, capsys) -> None:
    out = tmp_path / "exp"
    args = ("--precisions", "fp32", "--schedules", "constant", "--seeds", "0")
    assert main(cli(out, *args)) == 0
    before = {p: p.read_bytes() for p in out.rglob("*") if p.is_file()}
    capsys.readouterr()
    assert main(cli(out, *args, "--set", "model.beta=0.8")) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "different configuration" in err and "model.beta" in err
    assert {p: p.read_bytes() for p in out.rglob("*") if p.is_file()} == before
    # the grid axes and the machine keys are not part of the configuration; the folder
    # keeps its name (run names are in each run's checkpointed config)
    assert main(cli(out, "--precisions", "fp32", "int4", "--schedules", "constant",
                    "--seeds", "0", "--set", "train.device=cpu", "--name", "other")) == 0
    results = json.loads((out / "results.json").read_text())
    assert results["experiment"] == "digits" and len(results["runs"]) == 2


@pytest.mark.parametrize("flag, value, words", [
    ("--precisions", "int3", "unknown precision 'int3'"),
    ("--schedules", "linear", "unknown schedule 'linear'"),
    ("--seeds", "x", "seed 'x' is not an integer"),
])
def test_unknown_names(tmp_path, capsys, flag, value, words) -> None:
    assert main(cli(tmp_path / "exp", flag, value)) == 2
    err = capsys.readouterr().err.strip()
    assert err == f"qsnn: error: {err.split('error: ')[1]}" and words in err
    assert "\n" not in err
    assert not (tmp_path / "exp").exists()


def test_foreign_folder_is_refused(base, tmp_path) -> None:
    (tmp_path / "exp").mkdir()
    (tmp_path / "exp/notes.txt").write_text("mine")
    with pytest.raises(QsnnError, match="not an experiment folder"):
        run_schedules(base, make_grid(["fp32"], ["constant"], [0]), tmp_path / "exp")
    (tmp_path / "exp/experiment.json").write_text("{broken")
    with pytest.raises(QsnnError, match="not a qsnn experiment file"):
        run_schedules(base, make_grid(["fp32"], ["constant"], [0]), tmp_path / "exp")


def test_epochs_to_fraction_and_stats() -> None:
    hist = [{"epoch": i + 1, "val_accuracy": v, "train_accuracy": 0.0}
            for i, v in enumerate([0.5, 0.9, 0.96, 0.94, 1.0])]
    assert epochs_to_fraction(hist) == 3  # first >= 0.95 * 1.0
    no_val = [{"epoch": 1, "val_accuracy": None, "train_accuracy": 0.2},
              {"epoch": 2, "val_accuracy": None, "train_accuracy": 0.4}]
    assert epochs_to_fraction(no_val) == 2
    s = stats([0.9, 1.0, None])
    assert s["n"] == 2 and s["mean"] == pytest.approx(0.95)
    assert s["std"] == pytest.approx(0.0707107, rel=1e-5)
    assert stats([0.5])["std"] is None and stats([])["mean"] is None


def test_lr_curve_shapes(base) -> None:
    t = base.train
    const = lr_curve(config.apply_overrides(base, ["train.schedule=constant"]).train, 4)[1]
    assert set(const) == {t.lr}
    cfg = config.apply_overrides(base, ["train.schedule=cosine-restarts",
                                        "train.restart_epochs=2"]).train
    xs, ys = lr_curve(cfg, 4, samples=10)
    assert len(xs) == 41 and xs[-1] == 4.0
    assert ys[0] == t.lr and ys[20] == t.lr and ys[19] < 0.05 * t.lr  # restart at epoch 2
