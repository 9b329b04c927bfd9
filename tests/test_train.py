"""Training runs: outputs, determinism, resume after SIGKILL, bad input, torchrun/DDP."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from qsnn_testutil import ROOT, TINY

from qsnn import config
from qsnn.cli import main
from qsnn.train import checkpoint, runner
from qsnn.train.runner import RUN_FILES, train

QSNN = [sys.executable, "-m", "qsnn.cli"]


def cli_args(out: Path, *extra: str) -> list[str]:
    sets = [a for t in TINY for a in ("--set", t)]
    return ["train", "--config", str(ROOT / "configs/digits.yaml"), "--out", str(out),
            *sets, *extra]


def weights(path: Path) -> dict[str, torch.Tensor]:
    return checkpoint.load(path)["model"]


def test_run_outputs(tiny_cfg, tmp_path) -> None:
    result = train(tiny_cfg, tmp_path / "run")
    for name in RUN_FILES:
        assert (tmp_path / "run" / name).is_file(), name
    saved = json.loads((tmp_path / "run/result.json").read_text())
    assert saved == result
    for key in ("dataset", "precision", "epochs", "best_val_accuracy", "test_accuracy",
                "seconds"):
        assert key in saved
    lines = (tmp_path / "run/metrics.jsonl").read_text().splitlines()
    assert len(lines) == 3
    first = json.loads(lines[0])
    assert set(first) == {"epoch", "lr", "train_loss", "train_accuracy", "val_accuracy",
                          "seconds"}
    assert config.load(tmp_path / "run/config.yaml") == tiny_cfg
    assert not list((tmp_path / "run").glob("*.tmp"))


def test_curves_redrawn_first_epoch_and_at_the_end(tiny_cfg, tmp_path, monkeypatch) -> None:
    drawn: list[int] = []
    real = runner.plot_curves

    def counting(history, path, title) -> None:
        drawn.append(len(history))
        real(history, path, title)

    monkeypatch.setattr(runner, "plot_curves", counting)
    train(tiny_cfg, tmp_path / "fast")
    epochs = tiny_cfg.train.epochs
    assert drawn == [1, epochs]  # fast epochs: not redrawn in between
    monkeypatch.setattr(runner, "PLOT_INTERVAL_S", 0.0)
    drawn.clear()
    train(tiny_cfg, tmp_path / "every")
    assert drawn == [*range(1, epochs + 1), epochs]


def test_same_seed_bitwise_identical(tiny_cfg, tmp_path) -> None:
    train(tiny_cfg, tmp_path / "a")
    train(tiny_cfg, tmp_path / "b")
    wa, wb = weights(tmp_path / "a/last.pt"), weights(tmp_path / "b/last.pt")
    assert all(torch.equal(wa[k], wb[k]) for k in wa)
    other = config.apply_overrides(tiny_cfg, ["train.seed=1"])
    train(other, tmp_path / "c")
    wc = weights(tmp_path / "c/last.pt")
    assert not all(torch.equal(wa[k], wc[k]) for k in wa)


def test_resume_after_kill_equals_uninterrupted(tmp_path) -> None:
    extra = ["--set", "train.epochs=4", "--set", "model.dropout=0.2",
             "--set", "model.layers=[fc32, lif, dropout, fc10, lif]"]
    full = subprocess.run(QSNN + cli_args(tmp_path / "full", *extra), capture_output=True)
    assert full.returncode == 0, full.stderr.decode()[-500:]
    env = dict(os.environ, QSNN_TEST_KILL_AFTER_EPOCH="2")
    killed = subprocess.run(QSNN + cli_args(tmp_path / "res", *extra), env=env,
                            capture_output=True)
    assert killed.returncode == -9
    assert len((tmp_path / "res/metrics.jsonl").read_text().splitlines()) == 2
    assert not (tmp_path / "res/result.json").exists()
    resumed = subprocess.run(QSNN + cli_args(tmp_path / "res", "--resume", *extra),
                             capture_output=True)
    assert resumed.returncode == 0, resumed.stderr.decode()[-500:]
    wa, wb = weights(tmp_path / "full/last.pt"), weights(tmp_path / "res/last.pt")
    assert all(torch.equal(wa[k], wb[k]) for k in wa)
    ra = json.loads((tmp_path / "full/result.json").read_text())
    rb = json.loads((tmp_path / "res/result.json").read_text())
    for key in ("test_accuracy", "best_val_accuracy", "best_epoch", "epochs"):
        assert ra[key] == rb[key]
    strip = [{k: v for k, v in json.loads(line).items() if k != "seconds"}
             for line in (tmp_path / "full/metrics.jsonl").read_text().splitlines()]
    strip_b = [{k: v for k, v in json.loads(line).items() if k != "seconds"}
               for line in (tmp_path / "res/metrics.jsonl").read_text().splitlines()]
    assert strip == strip_b


def run_cli(args: list[str], capsys) -> tuple[int, str]:
    code = main(args)
    err = capsys.readouterr().err.strip().splitlines()
    return code, err[-1] if err else ""


@pytest.mark.parametrize("extra,match", [
    (["--set", "model.foo=1"], "unknown config key 'model.foo'"),
    (["--set", "train.epochs=abc"], "'train.epochs' must be an integer"),
    (["--set", "data.dataset=cifar"], "cifar"),
    (["--set", "data.dataset=mnist"], "--data-dir"),
    (["--set", "data.dataset=mnist", "--data-dir", "/nonexistent/mnist"], "/nonexistent/mnist"),
    (["--set", "data.encoding=events"], "encoding"),
    (["--config", "/nonexistent.yaml"], "config file not found"),
])
def test_bad_input_one_line_nothing_written(extra, match, tmp_path, capsys) -> None:
    code, msg = run_cli(cli_args(tmp_path / "run", *extra), capsys)
    assert code == 2
    assert msg.startswith("qsnn: error:") and match in msg
    assert not (tmp_path / "run").exists()


def test_existing_resume_and_corrupt_checkpoint(tiny_cfg, tmp_path, capsys) -> None:
    out = tmp_path / "run"
    assert run_cli(cli_args(out, "--resume"), capsys)[1].endswith(
        "to resume from (there is no run there)")
    assert main(cli_args(out)) == 0
    code, msg = run_cli(cli_args(out), capsys)
    assert code == 2 and "already holds a run" in msg
    code, msg = run_cli(cli_args(out, "--resume", "--set", "model.beta=0.5"), capsys)
    assert code == 2 and "different config: model.beta" in msg
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    data = (out / "last.pt").read_bytes()
    (out / "last.pt").write_bytes(data[: len(data) // 2])
    code, msg = run_cli(cli_args(out, "--resume", "--epochs", "5"), capsys)
    assert code == 2 and "corrupt checkpoint" in msg
    after = {p.name: p.read_bytes() for p in out.iterdir()}
    assert set(after) == set(before)
    (out / "last.pt").write_bytes(b"not a checkpoint")
    code, msg = run_cli(cli_args(out, "--resume", "--epochs", "5"), capsys)
    assert code == 2 and "corrupt checkpoint" in msg


def test_checkpoint_of_another_model(tiny_cfg, tmp_path) -> None:
    train(tiny_cfg, tmp_path / "run")
    other = config.apply_overrides(tiny_cfg, ["model.layers=[fc16, lif, fc10, lif]"])
    from qsnn.data import load_dataset
    from qsnn.errors import QsnnError
    from qsnn.train.model import QSNN

    data = load_dataset("digits")
    model = QSNN(other, data.input_shape, data.num_classes, data.pixel_max)
    with pytest.raises(QsnnError, match="does not match the model"):
        checkpoint.load_model_state(model, checkpoint.load(tmp_path / "run/best.pt"), "x")


def test_torchrun_ddp_gloo_two_processes(tmp_path) -> None:
    torchrun = shutil.which("torchrun", path=str(Path(sys.executable).parent))
    assert torchrun, "torchrun not installed beside python"
    out = tmp_path / "ddp"
    cmd = [torchrun, "--standalone", "--nproc_per_node", "2", "-m", "qsnn.cli",
           *cli_args(out, "--device", "cpu")]
    proc = subprocess.run(cmd, capture_output=True, timeout=300,
                          env=dict(os.environ, OMP_NUM_THREADS="1"))
    assert proc.returncode == 0, proc.stderr.decode()[-2000:]
    result = json.loads((out / "result.json").read_text())
    assert result["world_size"] == 2 and result["epochs"] == 3
    assert 0.0 <= result["test_accuracy"] <= 1.0


def test_default_digits_targets(root, tmp_path) -> None:
    """The README's numbers: 4-bit >= 96 % and within 1 point of fp32, same config."""
    cfg = config.load(root / "configs/digits.yaml")
    q = train(cfg, tmp_path / "int4")
    f = train(config.apply_overrides(cfg, ["model.precision=fp32"]), tmp_path / "fp32")
    assert q["test_accuracy"] >= 0.96
    assert q["test_accuracy"] >= f["test_accuracy"] - 0.01


def test_default_config_outside_a_checkout(tmp_path, monkeypatch, capsys) -> None:
    """``qsnn train`` without --config in an empty folder trains the shipped digits config."""
    monkeypatch.chdir(tmp_path)
    assert main(["train", *(a for t in TINY for a in ("--set", t))]) == 0
    assert config.load(tmp_path / "runs/digits/config.yaml") == config.apply_overrides(
        config.load(ROOT / "configs/digits.yaml"), TINY)


def test_init_from_loads_the_weights_and_allows_other_time_steps(tiny_cfg, tmp_path) -> None:
    train(tiny_cfg, tmp_path / "a")
    longer = config.apply_overrides(tiny_cfg, ["data.time_steps=6", "train.epochs=1",
                                               f"train.init_from={tmp_path / 'a'}"])
    from qsnn.train.distributed import DistInfo

    run = runner.Run(longer, tmp_path / "b", DistInfo(0, 1, torch.device("cpu")))
    fresh = {k: v.clone() for k, v in run.model.state_dict().items()}
    run.warm_start(str(tmp_path / "a"))
    saved = weights(tmp_path / "a/best.pt")
    assert any(not torch.equal(fresh[k], saved[k]) for k in saved)
    assert all(torch.equal(v, saved[k]) for k, v in run.model.state_dict().items())
    result = train(longer, tmp_path / "b")
    assert result["init_from"] == str(tmp_path / "a")
    assert config.load(tmp_path / "b/config.yaml").train.init_from == str(tmp_path / "a")


def test_init_from_refuses_another_network_or_a_missing_file(tiny_cfg, tmp_path,
                                                             capsys) -> None:
    train(tiny_cfg, tmp_path / "a")
    capsys.readouterr()
    args = cli_args(tmp_path / "b", "--set", "model.layers=[fc16, lif, fc10, lif]",
                    "--init-from", str(tmp_path / "a"))
    assert main(args) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "is another network: model.layers differ" in err
    assert not (tmp_path / "b").exists()
    assert main(cli_args(tmp_path / "c", "--init-from", str(tmp_path / "nope.pt"))) == 2
    assert "train.init_from': no checkpoint at" in capsys.readouterr().err
    assert not (tmp_path / "c").exists()
