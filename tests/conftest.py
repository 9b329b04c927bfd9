"""Shared fixtures: small configs and a quick trained run."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).resolve().parent))
os.environ.setdefault("PYTHONHASHSEED", "0")

TINY = [
    "data.max_train=240", "data.max_test=60", "data.time_steps=4", "train.epochs=3",
    "train.batch_size=32", "model.layers=[fc32, lif, fc10, lif]",
]


@pytest.fixture
def root() -> Path:
    return ROOT


@pytest.fixture
def tiny_cfg():
    from qsnn import config

    return config.apply_overrides(config.load(ROOT / "configs/digits.yaml"), TINY)
