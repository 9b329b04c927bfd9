"""The one typed reader of a generated design's ``params.json`` (written by ``qsnn hw``).

Every command that reads a design folder (``verify``, ``bitstream``, ``run``) goes
through :func:`read_params`, so that a missing, hand-edited or foreign ``params.json`` is
one line naming the problem, never a traceback deep inside the command.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from qsnn.errors import QsnnError

NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$")
TOP_KEYS: dict[str, type] = {
    "name": str, "ir_sha256": str, "lanes": int, "time_steps": int, "encoding": str,
    "classes": int, "input_bytes": int, "layers": list, "rtl": list,
}
# what every reader needs; a reader asks for more with ``need``
NEEDED = ("name", "lanes", "layers")
LAYER_KEYS = ("n_in", "lanes", "wb", "chunks")


def read_params(hw_dir: str | Path, need: tuple[str, ...] = ()) -> dict[str, Any]:
    """``hw_dir/params.json``: the keys of :data:`NEEDED` and ``need`` present, and every
    key of :data:`TOP_KEYS` that is present of its type (else one line)."""
    from qsnn.outdir import recover

    hw_dir = Path(hw_dir)
    recover(hw_dir)     # a swap that a killed qsnn hw left half-done
    pfile = hw_dir / "params.json"
    if not pfile.is_file():
        raise QsnnError(f"no generated design in {hw_dir} (no params.json): run qsnn hw")
    try:
        params = json.loads(pfile.read_text())
    except (OSError, ValueError, UnicodeDecodeError) as exc:
        raise QsnnError(f"{pfile} is not valid JSON ({type(exc).__name__}): regenerate "
                        "it with qsnn hw") from None
    problem = _problem(params, NEEDED + need)
    if problem:
        raise QsnnError(f"{pfile} is not a qsnn hw parameter file ({problem}): regenerate "
                        "it with qsnn hw")
    return params


def _problem(params: Any, need: tuple[str, ...]) -> str | None:
    if not isinstance(params, dict):
        return "not a JSON object"
    missing = [k for k in need if k not in params]
    if missing:
        return f"no '{missing[0]}'"
    for key, typ in TOP_KEYS.items():
        value = params.get(key, typ())
        if not isinstance(value, typ) or isinstance(value, bool):
            return f"'{key}' is not a {typ.__name__}"
    if not NAME.match(params["name"]):
        return f"bad name {params['name']!r}"
    if "ir_sha256" in params and not re.fullmatch(r"[0-9a-f]{64}", params["ir_sha256"]):
        return "'ir_sha256' is not a SHA-256"
    if params["lanes"] < 1 or params.get("time_steps", 1) < 1 or not params["layers"]:
        return "lanes, time_steps and layers must be positive"
    for i, layer in enumerate(params["layers"]):
        if not isinstance(layer, dict) or not all(
                isinstance(layer.get(k), int) and layer[k] >= 1 for k in LAYER_KEYS):
            return f"layer {i} lacks one of {', '.join(LAYER_KEYS)}"
    if not all(isinstance(f, str) and "/" not in f for f in params.get("rtl", [])):
        return "'rtl' must list file names"
    return None
