"""The trained checkpoints shipped in ``checkpoints/`` (issue 16): whole, consistent with
their config and result, and exporting bit-exact (golden model = torch) on test images."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest
import torch

from qsnn import config
from qsnn.export import golden
from qsnn.export.runner import assign_widths, load_run, lower_and_fold
from qsnn.train import checkpoint
from qsnn.train.loop import spike_counts

ROOT = Path(__file__).resolve().parents[1]
SHIPPED = ROOT / "checkpoints"
NAMES = ("fashion-mnist-conv", "fashion-mnist-conv-t25")
FILES = ("best.pt", "config.yaml", "result.json", "metrics.jsonl")
MAX_BYTES = 400_000     # "a few hundred kB each at most"
FMNIST = Path("/usr/share/datasets/fashion-mnist/t10k-images-idx3-ubyte.gz")
#: test images run through torch and the golden model (the full 10,000: `make test-full`)
IMAGES = 64


def sums() -> dict[str, str]:
    """``checkpoints/SHA256SUMS``: relative path -> hex digest."""
    lines = (SHIPPED / "SHA256SUMS").read_text().splitlines()
    return {name.strip(): digest for digest, name in (ln.split("  ", 1) for ln in lines if ln)}


def test_every_shipped_file_is_listed_and_whole() -> None:
    listed = sums()
    files = sorted(str(p.relative_to(SHIPPED)) for p in SHIPPED.glob("*/*") if p.is_file())
    assert files == sorted(listed), "checkpoints/SHA256SUMS out of date"
    for rel, digest in listed.items():
        assert hashlib.sha256((SHIPPED / rel).read_bytes()).hexdigest() == digest, rel


@pytest.mark.parametrize("name", NAMES)
def test_checkpoint_matches_its_config_and_result(name: str) -> None:
    folder = SHIPPED / name
    assert all((folder / f).is_file() for f in FILES)
    assert (folder / "best.pt").stat().st_size <= MAX_BYTES
    ckpt = checkpoint.load(folder / "best.pt")
    assert set(ckpt) == {"format", "version", "config", "model", "epoch"}  # no optimiser
    cfg = config.load(folder / "config.yaml")
    assert checkpoint.config_differences(ckpt["config"], cfg.to_dict()) == []
    result = json.loads((folder / "result.json").read_text())
    history = [json.loads(ln) for ln in (folder / "metrics.jsonl").read_text().splitlines()]
    assert result["name"] == cfg.name and result["time_steps"] == cfg.data.time_steps
    assert result["epochs"] == len(history) == cfg.train.epochs
    assert result["best_epoch"] == ckpt["epoch"]
    best = max(history, key=lambda h: h["val_accuracy"])
    assert best["epoch"] == ckpt["epoch"] and best["val_accuracy"] == result["best_val_accuracy"]
    assert result["test_images"] == 10_000


@pytest.mark.skipif(not FMNIST.exists(), reason="FashionMNIST not installed (make data)")
@pytest.mark.parametrize("name", NAMES)
def test_checkpoint_exports_bit_exact(name: str) -> None:
    """Lowered with every pass checked, golden counts = torch counts on test images."""
    cfg, model, data = load_run(SHIPPED / name)
    x = data.test.x[:IMAGES]
    enc, nodes, _ = lower_and_fold(model, cfg, data, x[:4])
    graph = assign_widths(enc, nodes, cfg.name, cfg.data.time_steps, None, {})
    counts = golden.run_batched(graph, x).counts
    test = type(data.test)(x, data.test.y[:IMAGES])
    assert torch.equal(counts, spike_counts(model, test, IMAGES, torch.device("cpu")))
    assert int(counts.sum()) > 0
