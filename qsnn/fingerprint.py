"""Config fingerprints: a short hash that tells whether two configs describe the same study.

Experiments and sweeps store the hash of their base config and refuse to continue in a
folder (or an Optuna study) made from a different one. Keys that do not change what is
trained (device, data location) and the keys the study itself varies are left out.
"""

from __future__ import annotations

import copy
import hashlib
import json
from collections.abc import Iterable
from typing import Any

from qsnn.config import RunConfig

# Never part of a fingerprint: where the data lives and what device trains.
MACHINE_KEYS = (("train", "device"), ("data", "data_dir"), ("data", "download"))


def config_dict(cfg: RunConfig, vary: Iterable[tuple[str, str]] = ()) -> dict[str, Any]:
    """``cfg`` as a dict without ``name``, :data:`MACHINE_KEYS` and the ``vary`` keys."""
    raw = copy.deepcopy(cfg.to_dict())
    raw.pop("name", None)
    for section, key in (*MACHINE_KEYS, *vary):
        raw.get(section, {}).pop(key, None)
    return raw


def config_hash(cfg: RunConfig, vary: Iterable[tuple[str, str]] = ()) -> str:
    """First 16 hex digits of the SHA-256 of :func:`config_dict` as canonical JSON."""
    text = json.dumps(config_dict(cfg, vary), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def differences(saved: dict[str, Any], current: dict[str, Any]) -> list[str]:
    """Dotted keys whose values differ between two :func:`config_dict` results."""
    diffs = []
    for section in sorted(set(saved) | set(current)):
        a, b = saved.get(section), current.get(section)
        if isinstance(a, dict) and isinstance(b, dict):
            diffs += [f"{section}.{k}" for k in sorted(set(a) | set(b)) if a.get(k) != b.get(k)]
        elif a != b:
            diffs.append(section)
    return diffs
