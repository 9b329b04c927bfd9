"""``qsnn import model.nir --out build/<name>``: read, map, check, write (all-or-nothing).

1. read the NIR file and order it as a chain (:mod:`qsnn.export.nir_interp`);
2. map it to the integer IR (:mod:`qsnn.export.nir_import`), assign minimal membrane
   widths and validate; an LI/I readout's threshold is calibrated on the first
   ``CALIBRATION_IMAGES`` training images (:func:`calibrate_readout`);
3. on the dataset's test split: the float NIR network (reference interpreter, input
   ``pixels * input_scale`` held for T steps) against the integer golden model:
   prediction agreement, exact-count agreement, both accuracies;
4. write ``model.json``, ``weights.npz``, ``golden/`` and ``import_report.json`` into a
   staging folder that replaces ``out`` only when everything succeeded
   (:func:`write_output`: the output-folder rules of :mod:`qsnn.outdir`).

Settings not in the file: time steps (``--time-steps``, else the file's ``time_steps``
metadata), time step ``dt`` (``--dt``, else metadata ``dt``, else 1e-4 s as snnTorch),
input scale (``--input-scale``, else metadata ``input_scale``, else 1 / pixel_max) and the
dataset (``--calibration``, else metadata ``dataset``).
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

from qsnn import atomic, outdir
from qsnn.errors import QsnnError
from qsnn.export import golden, nir_interp, serialize
from qsnn.export.ir import LIF, Encoding, Graph, InputEncoder, Readout
from qsnn.export.nir_import import block_nodes, parse
from qsnn.export.runner import assign_widths, golden_vectors, write_golden

DEFAULT_DT = 1e-4
REPORT = "import_report.json"
CALIBRATION_IMAGES = 512  # training images that choose an LI/I readout's threshold
THETA_STEPS = range(-8, 9)  # candidate thresholds theta_0 * 2^(k/2)


def _meta(graph: Any) -> dict[str, Any]:
    raw = dict(getattr(graph, "metadata", {}) or {})
    return {k: v.decode() if isinstance(v, bytes) else v for k, v in raw.items()}


def settings(meta: dict[str, Any], time_steps: int | None, dt: float | None,
             input_scale: float | None, dataset: str | None) -> dict[str, Any]:
    """The run settings: options first, then the file's metadata, then defaults."""
    steps = time_steps or meta.get("time_steps")
    if not steps:
        raise QsnnError("the NIR file does not say its time steps: give --time-steps")
    name = dataset or meta.get("dataset")
    if not name:
        raise QsnnError("the NIR file does not name a dataset: give --calibration DATA")
    return {"time_steps": int(steps), "dt": float(dt or meta.get("dt", DEFAULT_DT)),
            "input_scale": input_scale or meta.get("input_scale"), "dataset": str(name),
            "qsnn": meta.get("source") == "qsnn"}


def to_graph(chain: list, meta: dict[str, Any], opts: dict[str, Any], image_shape: tuple,
             pixel_max: int, bits: int, name: str, readout_theta: float | None = None
             ) -> tuple[Graph, list[dict[str, Any]]]:
    """The validated IR graph of a NIR chain, and the per-layer changes
    (``readout_theta``: the threshold of an LI/I readout)."""
    in_scale = float(opts["input_scale"] or 1.0 / pixel_max)
    encoding = str(meta.get("encoding", Encoding.DIRECT)) if opts["qsnn"] else Encoding.DIRECT
    seed = int(meta.get("lfsr_seed", 0)) if encoding == Encoding.RATE else 0
    enc = InputEncoder("input", encoding, tuple(image_shape), pixel_max, seed)
    nodes, changes, used, shape = [], [], {"input", "readout"}, tuple(image_shape)
    for block in parse(chain):
        part, shape = block_nodes(block, shape, in_scale, bits, opts["dt"], used,
                                  readout_theta)
        nodes += part
        changes.append({"layer": part[-1].name, **block.changes})
        in_scale = 1.0
    if len(shape) != 1:
        raise QsnnError(f"the last neuron layer has shape {shape}; the readout needs a vector")
    nodes.append(Readout("readout", shape[0]))
    precision = str(meta["precision"]) if opts["qsnn"] and "precision" in meta else f"int{bits}"
    metadata = {"dataset": opts["dataset"], "precision": precision, "classes": shape[0]}
    graph = assign_widths(enc, nodes, name, opts["time_steps"], None, metadata)
    if opts["qsnn"]:
        graph = _keep_widths(graph, chain)
    return graph, changes


def _keep_widths(graph: Graph, chain: list) -> Graph:
    """qsnn files: keep the exported membrane widths (at least the minimal ones)."""
    cells = [n.neuron if isinstance(n, nir_interp.Membrane) else n for _, n in chain]
    wanted = [int(dict(n.metadata).get("membrane_bits", 0)) for n in cells
              if hasattr(n, "v_threshold")]
    lifs = iter(wanted)
    nodes = tuple(dataclasses.replace(n, membrane_bits=max(n.membrane_bits, next(lifs)))
                  if isinstance(n, LIF) else n for n in graph.nodes)
    return graph.replace(nodes=nodes)


def float_output(chain: list, x: torch.Tensor, nir_shape: tuple, steps: int, dt: float,
                 in_scale: float) -> torch.Tensor:
    """The float NIR network's output [B, classes] (spike counts, or an LI/I readout's
    membrane; a leading axis of 1 in the file's shapes, as traced exports write, dropped)."""
    out = nir_interp.run(chain, x.reshape(len(x), *nir_shape).double() * in_scale, steps, dt)
    return out.reshape(len(x), -1)


def compare(chain: list, graph: Graph, x: torch.Tensor, y: torch.Tensor, nir_shape: tuple,
            opts: dict[str, Any], in_scale: float) -> dict[str, Any]:
    """Float NIR network (reference interpreter) vs integer golden model on ``x``
    (exact counts: null for an LI/I readout, whose float output is a membrane)."""
    ref = float_output(chain, x, nir_shape, graph.time_steps, opts["dt"], in_scale)
    res = golden.run_batched(graph, x)
    ref_pred = torch.argmax(ref, 1)
    exact = None if _li_readout(chain) else float(
        (ref.round().long() == res.counts).all(1).float().mean())
    return {"images": int(len(y)),
            "agreement": float((ref_pred == res.predictions).float().mean()),
            "exact_count_agreement": exact,
            "float_accuracy": float((ref_pred == y).float().mean()),
            "integer_accuracy": float((res.predictions == y).float().mean())}


def write_output(out: Path, source: str | Path, graph: Graph, vectors: dict[str, np.ndarray],
                 report: dict[str, Any]) -> None:
    """Write the IR folder through :class:`qsnn.outdir.Output` (staged, locked, swapped in
    whole; ``out`` is replaced only if it is a qsnn IR folder and never the input)."""
    with outdir.Output(out, "export", inputs=[source]) as stage:
        serialize.save(graph, stage)
        write_golden(stage / "golden", vectors)
        atomic.write_json(stage / REPORT, report)


def import_nir(path: str | Path, out: str | Path, *, bits: int = 4,
               calibration: str | None = None, time_steps: int | None = None,
               dt: float | None = None, input_scale: float | None = None,
               data_dir: str | None = None, vectors: int = 64) -> dict[str, Any]:
    """Import a NIR file into ``out``; returns the contents of ``import_report.json``."""
    from qsnn.data import load_dataset

    if not 2 <= bits <= 8:
        raise QsnnError(f"--bits {bits} outside 2..8")
    out = Path(out)
    outdir.check(out, "export", inputs=[path])     # before any work: never lose a folder
    nir_graph = nir_interp.read(path)
    chain = nir_interp.chain(nir_graph)
    meta = _meta(nir_graph)
    opts = settings(meta, time_steps, dt, input_scale, calibration)
    data = load_dataset(opts["dataset"], data_dir, time_steps=opts["time_steps"])
    nir_shape = tuple(int(v) for v in nir_graph.nodes[_input_key(nir_graph)].input_type["input"])
    if int(np.prod(nir_shape)) != int(np.prod(data.input_shape)):
        raise QsnnError(f"NIR input shape {nir_shape} does not fit {opts['dataset']} images "
                        f"{tuple(data.input_shape)}")
    in_scale = float(opts["input_scale"] or 1.0 / data.pixel_max)
    build = functools.partial(to_graph, chain, meta, opts, tuple(data.input_shape),
                              data.pixel_max, bits, out.name)
    if _li_readout(chain):
        ref = float_output(chain, data.train.x[:CALIBRATION_IMAGES], nir_shape,
                           opts["time_steps"], opts["dt"], in_scale)
        graph, changes = calibrate_readout(build, data.train.x[:CALIBRATION_IMAGES], ref,
                                           opts["time_steps"])
    else:
        graph, changes = build()
    report = {"source": str(path), "nir_source": meta.get("source", "unknown"),
              "weight_bits": bits, "time_steps": graph.time_steps, "dt": opts["dt"],
              "input_scale": in_scale, "dataset": opts["dataset"], "layers": changes,
              "test": compare(chain, graph, data.test.x, data.test.y, nir_shape, opts,
                              in_scale)}
    write_output(out, path, graph, golden_vectors(graph, data.test, vectors), report)
    return report


def _li_readout(chain: list) -> bool:
    return bool(chain) and isinstance(chain[-1][1], nir_interp.READOUTS)


def calibrate_readout(build: Callable[[float], tuple[Graph, list]], x: torch.Tensor,
                      membrane: torch.Tensor, steps: int) -> tuple[Graph, list[dict[str, Any]]]:
    """An LI/I readout's threshold: theta_0 * 2^(k/2), k = -2..8, theta_0 = the 95th
    percentile of the winning membrane over ``steps`` (the float network's readout on the
    calibration images ``x``); the one whose integer network agrees best with the
    membrane's predictions (lowest theta on ties). The layer's changes record every
    candidate's agreement."""
    want = membrane.argmax(1)
    top = float(torch.quantile(membrane.max(1).values, 0.95))
    theta0 = (top if top > 0 else float(membrane.abs().max()) or 1.0) / steps
    best: tuple[float, Graph, list] | None = None
    scores: dict[str, float] = {}
    for k in THETA_STEPS:
        theta = theta0 * 2.0 ** (k / 2)
        graph, changes = build(theta)
        agree = float((golden.run_batched(graph, x).predictions == want).float().mean())
        scores[f"{theta:.6g}"] = agree
        if best is None or agree > best[0]:
            best = (agree, graph, changes)
    assert best is not None  # THETA_STEPS is not empty
    _, graph, changes = best
    changes[-1]["readout_calibration"] = {"images": int(len(x)), "agreement": scores}
    return graph, changes


def _input_key(graph: Any) -> str:
    return next(k for k, n in graph.nodes.items() if type(n).__name__ == "Input")
