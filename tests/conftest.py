"""Shared fixtures: small configs and a quick trained run."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from qsnn_testutil import ROOT, TINY  # tests/ is on pytest's pythonpath (pyproject.toml)

os.environ.setdefault("PYTHONHASHSEED", "0")


@pytest.fixture
def root() -> Path:
    return ROOT


@pytest.fixture
def tiny_cfg():
    from qsnn import config

    return config.apply_overrides(config.load(ROOT / "configs/digits.yaml"), TINY)
