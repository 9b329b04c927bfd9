"""Agreement of NIR's importers with the integer golden model on an exported ``model.nir``.

Runs ``build/<name>/model.nir`` as written in snnTorch (``import_from_nir``), Norse
(``from_nir(graph, dt=1e-4)``) and qsnn's reference interpreter (``nir_interp.run``) on the
dataset's test split, input held for T steps (``tests/nir_consumers.py``), and compares
predictions and exact spike counts with the golden model of ``model.json``. Baseline in
the same run: the file as it was written before the membrane loops (every LIF as NIR's
own neuron, reset to 0 right after the spike; ``to_nir`` of the IR with zero reset),
against the same golden model, and the zero- against the subtract-reset golden model.

    .venv/bin/python bench/nir_agreement.py [--build build/digits] [--images N]

Prints one JSON object; writes ``bench/out/nir_agreement.json``.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from pathlib import Path

import nir
import torch

from qsnn.data import load_dataset
from qsnn.export import golden, nir_interp, serialize
from qsnn.export.ir import LIF, Graph, Reset
from qsnn.export.nir_export import DT, to_nir

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))
from nir_consumers import norse_counts, snntorch_counts  # noqa: E402


def zero_reset(graph: Graph) -> Graph:
    """The IR with every LIF reset to zero (NIR's own neuron reset)."""
    return graph.replace(nodes=tuple(dataclasses.replace(n, reset=Reset.ZERO)
                                     if isinstance(n, LIF) else n for n in graph.nodes))


def consumers(g: nir.NIRGraph, x: torch.Tensor, steps: int) -> dict[str, torch.Tensor]:
    """Spike counts [B, classes] of each NIR consumer."""
    return {"snntorch": snntorch_counts(g, x, steps),
            "norse": norse_counts(g, x, steps, DT),
            "interpreter": nir_interp.run(nir_interp.chain(g), x.double(), steps,
                                          DT).round().long()}


def agreement(counts: torch.Tensor, ref: golden.GoldenResult) -> dict[str, float]:
    return {"predictions": float((counts.argmax(1) == ref.predictions).float().mean()),
            "exact_counts": float((counts == ref.counts).all(1).float().mean()),
            "spikes": int(counts.sum())}


def measure(build: Path, images: int | None) -> dict:
    graph = serialize.load(build)
    data = load_dataset(graph.metadata["dataset"]).test
    x, y = data.x[:images], torch.as_tensor(data.y[:images])
    ref = golden.run_batched(graph, x)
    ref_zero = golden.run_batched(zero_reset(graph), x)
    written = consumers(nir.read(build / "model.nir"), x, graph.time_steps)
    before = consumers(to_nir(zero_reset(graph)), x, graph.time_steps)
    return {
        "build": str(build), "images": len(x), "time_steps": graph.time_steps,
        "golden_accuracy": float((ref.predictions == y).float().mean()),
        "as_written": {k: agreement(c, ref) for k, c in written.items()},
        "baseline_zero_reset_file": {k: agreement(c, ref) for k, c in before.items()},
        "zero_vs_subtract_golden": float((ref_zero.predictions == ref.predictions)
                                         .float().mean()),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--build", default=str(ROOT / "build/digits"))
    ap.add_argument("--images", type=int, default=None)
    args = ap.parse_args()
    torch.set_num_threads(1)
    out = measure(Path(args.build), args.images)
    print(json.dumps(out, indent=1))
    (ROOT / "bench/out").mkdir(exist_ok=True)
    (ROOT / "bench/out/nir_agreement.json").write_text(json.dumps(out, indent=1) + "\n")


if __name__ == "__main__":
    main()
