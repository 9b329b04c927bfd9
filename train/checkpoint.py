"""Training checkpoints: atomic save, validated load.

``last.pt`` holds everything needed to resume bit-exactly (model, optimiser, scheduler,
RNG state, history, best-so-far); ``best.pt`` holds the model selected on the
validation split. Both carry ``format``/``version`` and the resolved config.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from qsnn.atomic import atomic_write
from qsnn.errors import QsnnError

FORMAT = "qsnn-checkpoint"
VERSION = 1
# Config keys that may change between a run and its resume.
RESUMABLE_KEYS = {("train", "epochs"), ("train", "device"), ("data", "data_dir"),
                  ("data", "download")}


def save(path: str | Path, state: dict[str, Any]) -> None:
    """Atomically save a checkpoint dict (``format`` and ``version`` are added)."""
    payload = {"format": FORMAT, "version": VERSION, **state}
    atomic_write(path, lambda f: torch.save(payload, f))


def load(path: str | Path) -> dict[str, Any]:
    """Load and validate a checkpoint; one-line error if missing, corrupt or foreign."""
    p = Path(path)
    if not p.is_file():
        raise QsnnError(f"checkpoint not found: {p}")
    try:
        ckpt = torch.load(p, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - any unpickling failure means corrupt
        raise QsnnError(f"corrupt checkpoint {p}: {type(exc).__name__}") from None
    if not isinstance(ckpt, dict) or ckpt.get("format") != FORMAT:
        raise QsnnError(f"{p} is not a qsnn checkpoint")
    if ckpt.get("version") != VERSION:
        raise QsnnError(f"checkpoint {p} has version {ckpt.get('version')}, expected {VERSION}")
    for key in ("config", "model"):
        if key not in ckpt:
            raise QsnnError(f"checkpoint {p} has no '{key}' entry")
    return ckpt


def config_differences(saved: dict[str, Any], current: dict[str, Any]) -> list[str]:
    """Dotted keys whose values differ, ignoring :data:`RESUMABLE_KEYS`."""
    diffs = []
    for section, values in current.items():
        if not isinstance(values, dict):
            if saved.get(section) != values:
                diffs.append(section)
            continue
        for key, value in values.items():
            if (section, key) in RESUMABLE_KEYS:
                continue
            if saved.get(section, {}).get(key) != value:
                diffs.append(f"{section}.{key}")
    return diffs


# Config keys that must agree between a warm-start checkpoint and the run it starts:
# the network and its input (time steps, rates and the optimiser may differ).
INIT_KEYS = ("model", "data.dataset", "data.encoding", "data.frame_size")


def init_source(spec: str | Path) -> Path:
    """The checkpoint file a ``train.init_from`` value names (a run folder: its best.pt)."""
    p = Path(spec)
    if p.is_dir():
        p = p / "best.pt"
    if not p.is_file():
        raise QsnnError(f"config key 'train.init_from': no checkpoint at {p}")
    return p


def init_mismatches(saved: dict[str, Any], current: dict[str, Any]) -> list[str]:
    """Dotted keys of :data:`INIT_KEYS` whose values differ between two configs."""
    diffs = []
    for key in INIT_KEYS:
        section, _, name = key.partition(".")
        old, new = saved.get(section, {}), current.get(section, {})
        if name:
            if old.get(name) != new.get(name):
                diffs.append(key)
            continue
        diffs += [f"{section}.{k}" for k in sorted(set(old) | set(new))
                  if old.get(k) != new.get(k)]
    return diffs


def load_model_state(model: torch.nn.Module, ckpt: dict[str, Any], path: str | Path) -> None:
    """Load ``ckpt['model']`` into ``model``; a shape/key mismatch is a one-line error."""
    try:
        model.load_state_dict(ckpt["model"])
    except (RuntimeError, KeyError) as exc:
        first = str(exc).strip().splitlines()[0][:160]
        raise QsnnError(f"checkpoint {path} does not match the model: {first}") from None
