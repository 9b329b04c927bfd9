"""Shared fixtures: small configs and a quick trained run."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
os.environ.setdefault("PYTHONHASHSEED", "0")

from qsnn_testutil import ROOT, TINY  # noqa: E402


@pytest.fixture
def root() -> Path:
    return ROOT


@pytest.fixture
def tiny_cfg():
    from qsnn import config

    return config.apply_overrides(config.load(ROOT / "configs/digits.yaml"), TINY)
