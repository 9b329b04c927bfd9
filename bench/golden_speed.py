"""Golden-model speed on the FashionMNIST 784-128-10 MLP over 10,000 test images.

Measures images per second of ``qsnn.export.golden.run_batched`` on the exported IR
(``build/fashion-mnist-mlp``, or a random int4 IR of the same shape when it has not been
exported) and on real FashionMNIST test images when installed (random images otherwise).
Baseline in the same run: the same arithmetic evaluated step by step without the static
first-layer reuse and time batching (currents recomputed for every step, one step of one
layer at a time). Writes ``bench/out/golden_speed.json`` with ``images_per_second``.

    .venv/bin/python bench/golden_speed.py [--build build/fashion-mnist-mlp] [--images 10000]
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import time
from pathlib import Path

import numpy as np
import torch

from qsnn.errors import QsnnError
from qsnn.export import golden, serialize, widths
from qsnn.export.ir import LIF, Flatten, Graph, InputEncoder, Linear, Readout

ROOT = Path(__file__).resolve().parent.parent


def random_mlp(steps: int = 25) -> Graph:
    """A random 784-128-10 int4 IR (used when no exported MLP exists)."""
    rng = np.random.default_rng(0)
    w1 = rng.integers(-7, 8, (128, 784), dtype=np.int8)
    w2 = rng.integers(-7, 8, (10, 128), dtype=np.int8)
    nodes = [Flatten("flatten0"), Linear("fc0", 784, 128, 4, w1),
             LIF("lif0", (128,), "mult", 230, 8, "subtract", 32, np.full(128, 20000, np.int32)),
             Linear("fc1", 128, 10, 4, w2),
             LIF("lif1", (10,), "mult", 230, 8, "subtract", 32, np.full(10, 20, np.int32)),
             Readout("readout", 10)]
    g = Graph("random-mlp", steps, InputEncoder("input", "direct", (1, 28, 28), 255), tuple(nodes))
    bits = {w.name: w.membrane_bits for w in widths.analyze(g)}
    return g.replace(nodes=tuple(
        dataclasses.replace(n, membrane_bits=bits[n.name]) if isinstance(n, LIF) else n
        for n in g.nodes))


def naive_counts(graph: Graph, x: torch.Tensor) -> torch.Tensor:
    """Baseline: every layer's current recomputed at every step, one step at a time."""
    layers = [n for n in graph.nodes if isinstance(n, Linear)]
    lifs = graph.lifs()
    mems = [None] * len(lifs)
    counts = torch.zeros(x.shape[0], graph.classes, dtype=torch.int64)
    thetas = [torch.from_numpy(lif.theta.astype("int64")) for lif in lifs]
    biases = [None if lif.bias is None else torch.from_numpy(lif.bias.astype("int64"))
              for lif in lifs]
    for _t in range(graph.time_steps):
        h = x.flatten(1).to(torch.int64)
        for i, (lin, lif) in enumerate(zip(layers, lifs, strict=True)):
            cur = golden.weight_current(lin, h)
            if mems[i] is None:
                mems[i] = torch.zeros_like(cur)
            spk, mems[i] = golden.lif_step(lif, mems[i], cur, thetas[i], biases[i])
            h = spk.to(torch.int64)
        counts += h
    return counts


def main() -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--build", default=str(ROOT / "build/fashion-mnist-mlp"))
    parser.add_argument("--images", type=int, default=10000)
    parser.add_argument("--out", default=str(ROOT / "bench/out/golden_speed.json"))
    args = parser.parse_args()
    try:
        graph, source = serialize.load(args.build), args.build
    except QsnnError:
        graph, source = random_mlp(), "random 784-128-10 int4 IR"
    try:
        from qsnn.data import load_dataset

        x, data = load_dataset("fashion-mnist").test.x[: args.images], "fashion-mnist test"
    except QsnnError:
        gen = torch.Generator().manual_seed(0)
        x = torch.randint(0, 256, (args.images, 1, 28, 28), generator=gen, dtype=torch.uint8)
        data = "random images"
    t0 = time.perf_counter()
    res = golden.run_batched(graph, x)
    fast = time.perf_counter() - t0
    n_base = min(len(x), 2000)
    t0 = time.perf_counter()
    base = naive_counts(graph, x[:n_base])
    slow = time.perf_counter() - t0
    assert torch.equal(base, res.counts[:n_base]), "baseline and golden model disagree"
    rec = {"images": len(x), "seconds": fast, "images_per_second": len(x) / fast,
           "baseline_images_per_second": n_base / slow,
           "speedup": (len(x) / fast) / (n_base / slow), "ir": source, "data": data,
           "time_steps": graph.time_steps}
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(rec, indent=2, sort_keys=True) + "\n")
    print(f"golden_speed: {len(x)} images ({data}) on {source}: {fast:.2f} s, "
          f"{rec['images_per_second']:.0f} images/s; step-by-step baseline "
          f"{rec['baseline_images_per_second']:.0f} images/s -> {rec['speedup']:.1f}x")
    return rec


if __name__ == "__main__":
    main()
