"""The shipped run configs: this folder's ``*.yaml`` files, installed as ``qsnn.configs``.

Package data, so ``qsnn train --config NAME`` finds them outside a checkout too
(:func:`qsnn.config.resolve`). No imports beyond the standard library: the CLI lists the
names in its help.
"""

from __future__ import annotations

from pathlib import Path

FOLDER = Path(__file__).resolve().parent


def shipped() -> dict[str, Path]:
    """The shipped configs, sorted by name: name (file stem) -> file."""
    return {p.stem: p for p in sorted(FOLDER.glob("*.yaml"), key=lambda p: p.stem)}
