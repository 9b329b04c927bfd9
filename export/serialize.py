"""Save, load and validate IR graphs (``model.json`` + ``weights.npz``).

Loading checks the format and version, every node's keys and types, array presence,
dtypes, shapes and value ranges, the node order and the shapes flowing through the
graph, and (through :mod:`qsnn.export.widths`) that no membrane can overflow its width.
Anything wrong is one :class:`~qsnn.errors.QsnnError` line naming the node and the
problem. Saving is atomic and deterministic (sorted keys, no timestamps).
"""

from __future__ import annotations

import dataclasses
import io
import json
import typing
import zipfile
from pathlib import Path
from typing import Any, cast

import numpy as np

from qsnn.atomic import atomic_write
from qsnn.errors import QsnnError
from qsnn.export import ir
from qsnn.export.ir import IR_FORMAT, IR_VERSION, Graph, InputEncoder, Node

MODEL_JSON = "model.json"
WEIGHTS_NPZ = "weights.npz"


# -- to/from dicts -----------------------------------------------------------------------
def to_json(graph: Graph) -> dict[str, Any]:
    """The JSON document of a graph (arrays referenced by key, stored in the npz)."""
    return {
        "format": IR_FORMAT, "version": IR_VERSION, "name": graph.name,
        "time_steps": graph.time_steps, "input": graph.input.scalars(),
        "nodes": [n.scalars() for n in graph.nodes], "metadata": graph.metadata,
    }


def arrays(graph: Graph) -> dict[str, np.ndarray]:
    """All arrays of a graph keyed ``<node>.<field>``."""
    out: dict[str, np.ndarray] = {}
    for n in graph.nodes:
        out.update(n.arrays())
    return out


def _typed(where: str, key: str, value: Any, hint: Any) -> Any:
    origin = typing.get_origin(hint)
    if hint is int:
        ok = isinstance(value, int) and not isinstance(value, bool)
    elif hint is str:
        ok = isinstance(value, str)
    elif origin is tuple:
        ok = isinstance(value, list) and all(
            isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in value)
        value = tuple(value) if ok else value
    else:
        ok = True
    if not ok:
        raise QsnnError(f"IR {where}: field '{key}' has a wrong type: {value!r}")
    return value


def _node_from(cls: type[Node], raw: dict[str, Any], npz: dict[str, np.ndarray],
               where: str) -> Node:
    hints = typing.get_type_hints(cls)
    fields = [f for f in dataclasses.fields(cls)]
    scalar_names = {f.name for f in fields if f.name not in cls.array_fields}
    optional = {f"has_{f.name}": f.name for f in fields
                if f.name in cls.array_fields and f.default is None}
    extra = set(raw) - scalar_names - set(optional) - {"op"}
    if extra:
        raise QsnnError(f"IR {where}: unknown field(s) {', '.join(sorted(extra))}")
    kwargs: dict[str, Any] = {}
    for f in fields:
        if f.name in cls.array_fields:
            key = f"{raw.get('name')}.{f.name}"
            flag = raw.get(f"has_{f.name}", True) if f.default is None else True
            if not isinstance(flag, bool):
                raise QsnnError(f"IR {where}: field 'has_{f.name}' must be true or false")
            if flag and key not in npz:
                raise QsnnError(f"IR {where}: array '{key}' missing from {WEIGHTS_NPZ}")
            if flag:
                kwargs[f.name] = npz[key]
            continue
        if f.name not in raw:
            if f.default is not dataclasses.MISSING:
                continue
            raise QsnnError(f"IR {where}: missing field '{f.name}'")
        kwargs[f.name] = _typed(where, f.name, raw[f.name], hints[f.name])
    return cls(**kwargs)


def from_json(doc: Any, npz: dict[str, np.ndarray]) -> Graph:
    """Build (and validate) a graph from its JSON document and arrays."""
    if not isinstance(doc, dict) or doc.get("format") != IR_FORMAT:
        raise QsnnError(f"{MODEL_JSON} is not a qsnn IR (format must be '{IR_FORMAT}')")
    version = doc.get("version")
    if type(version) is not int or version != IR_VERSION:
        raise QsnnError(
            f"IR version {doc.get('version')!r} is not supported (this qsnn reads {IR_VERSION})")
    for key in ("name", "time_steps", "input", "nodes"):
        if key not in doc:
            raise QsnnError(f"IR: missing top-level field '{key}'")
    extra = set(doc) - {"format", "version", "name", "time_steps", "input", "nodes", "metadata"}
    if extra:
        raise QsnnError(f"IR: unknown top-level field(s) {', '.join(sorted(extra))}")
    if not isinstance(doc["nodes"], list) or not isinstance(doc["input"], dict):
        raise QsnnError("IR: 'nodes' must be a list and 'input' a mapping")
    inp = dict(doc["input"])
    if inp.pop("op", "input") != "input":
        raise QsnnError("IR input: op must be 'input'")
    encoder = cast(InputEncoder, _node_from(InputEncoder, inp, npz, "input"))  # cls made it
    nodes = []
    for i, raw in enumerate(doc["nodes"]):
        if not isinstance(raw, dict) or raw.get("op") not in ir.NODE_TYPES:
            op = raw.get("op") if isinstance(raw, dict) else raw
            raise QsnnError(f"IR node {i}: unknown op {op!r} "
                            f"(known: {', '.join(ir.NODE_TYPES)})")
        nodes.append(_node_from(ir.NODE_TYPES[raw["op"]], raw, npz,
                                f"node {i} ({raw.get('name', '?')})"))
    ts = _typed("graph", "time_steps", doc["time_steps"], int)
    name = _typed("graph", "name", doc["name"], str)
    meta = doc.get("metadata", {})
    if not isinstance(meta, dict):
        raise QsnnError("IR: 'metadata' must be a mapping")
    graph = Graph(name=name, time_steps=ts, input=encoder, nodes=tuple(nodes), metadata=meta)
    from qsnn.export.validate import validate

    validate(graph)
    unused = set(npz) - set(arrays(graph))
    if unused:
        raise QsnnError(f"{WEIGHTS_NPZ}: unexpected array(s) {', '.join(sorted(unused))}")
    return graph


# -- files ------------------------------------------------------------------------------
def npz_bytes(arrs: dict[str, np.ndarray]) -> bytes:
    """Deterministic npz: sorted keys, fixed zip timestamps."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for key in sorted(arrs):
            info = zipfile.ZipInfo(f"{key}.npy", date_time=(1980, 1, 1, 0, 0, 0))
            info.compress_type = zipfile.ZIP_DEFLATED
            arr_buf = io.BytesIO()
            np.lib.format.write_array(arr_buf, np.ascontiguousarray(arrs[key]),
                                      allow_pickle=False)
            zf.writestr(info, arr_buf.getvalue())
    return buf.getvalue()


def save(graph: Graph, folder: str | Path) -> None:
    """Write ``model.json`` and ``weights.npz`` into ``folder`` (atomically, deterministic)."""
    from qsnn.export.validate import validate

    validate(graph)
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    npz = npz_bytes(arrays(graph))
    text = json.dumps(to_json(graph), indent=2, sort_keys=True) + "\n"
    atomic_write(folder / WEIGHTS_NPZ, lambda f: f.write(npz))
    atomic_write(folder / MODEL_JSON, lambda f: f.write(text.encode()))


def load(folder: str | Path) -> Graph:
    """Read and validate the IR in ``folder``; one-line error for anything wrong."""
    folder = Path(folder)
    from qsnn.outdir import recover

    recover(folder)     # a swap that a killed qsnn export left half-done
    jpath, wpath = folder / MODEL_JSON, folder / WEIGHTS_NPZ
    if not jpath.is_file():
        raise QsnnError(f"no IR in {folder}: {MODEL_JSON} not found (run qsnn export first)")
    if not wpath.is_file():
        raise QsnnError(f"no IR weights in {folder}: {WEIGHTS_NPZ} not found")
    try:
        doc = json.loads(jpath.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise QsnnError(f"{jpath} is not valid JSON: {exc}") from None
    try:
        with np.load(wpath, allow_pickle=False) as z:
            npz = {k: z[k] for k in z.files}
    except Exception as exc:  # noqa: BLE001 - zip/npy errors of many kinds mean corrupt
        raise QsnnError(f"{wpath} is corrupt or truncated ({type(exc).__name__})") from None
    return from_json(doc, npz)


def load_vectors(build_dir: str | Path, graph: Graph,
                 keys: tuple[str, ...] = ("inputs",)) -> dict[str, np.ndarray]:
    """``golden/vectors.npz`` of an export, checked: the ``keys`` present, one input per
    row of the IR's input size (times T for event frames); else a one-line error."""
    vfile = Path(build_dir) / "golden" / "vectors.npz"
    if not vfile.is_file():
        raise QsnnError(f"no golden vectors in {vfile.parent}: run qsnn export")
    try:
        with np.load(vfile, allow_pickle=False) as z:
            vec = {k: z[k] for k in z.files}
    except Exception as exc:  # noqa: BLE001 - any failure to read means a bad file
        raise QsnnError(f"{vfile} is not a golden-vector file ({type(exc).__name__}): "
                        "run qsnn export again") from None
    missing = [k for k in keys if k not in vec]
    if missing:
        raise QsnnError(f"{vfile} has no '{missing[0]}' array: run qsnn export again")
    x = vec.get("inputs")
    size = int(np.prod(graph.input.shape)) * (
        graph.time_steps if graph.input.encoding == ir.Encoding.EVENTS else 1)
    if x is not None and (x.ndim < 2 or len(x) == 0 or int(np.prod(x.shape[1:])) != size
                          or not np.issubdtype(x.dtype, np.integer)):
        raise QsnnError(f"{vfile}: 'inputs' {x.shape} {x.dtype} do not fit the IR's input "
                        f"({size} integers per image): run qsnn export again")
    return vec
