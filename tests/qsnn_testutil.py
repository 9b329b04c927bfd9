"""Shared constants of the unit tests (a uniquely named module: ``tests/`` and ``sim/``
both have a ``conftest.py``, so tests must not import from ``conftest``)."""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

# A seconds-long digits run: small subsets, 4 steps, 3 epochs, a 64-32-10 MLP.
TINY = [
    "data.max_train=240", "data.max_test=60", "data.time_steps=4", "train.epochs=3",
    "train.batch_size=32", "model.layers=[fc32, lif, fc10, lif]",
]
