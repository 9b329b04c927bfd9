"""``qsnn verify``: run the generated RTL on real test images and compare with the golden model.

Builds ``hw/build/<name>/`` with Verilator (one cached build per design), streams N test
images through ``qsnn_top`` in one simulator launch (``hw/benches/net_bench.py``: images
streamed byte by byte, one trigger per result, no per-cycle Python), and writes
``sim_report.json``: images, mismatches, accuracy, measured cycles per inference and
their ratio to the cycle model (``qsnn.hw.cycles``), simulated images and cycles per
second. On a mismatch the first differing image is re-run with per-layer spike monitors
and the report names the first differing time step, layer and neuron.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from qsnn import atomic
from qsnn.errors import QsnnError
from qsnn.export import golden, serialize
from qsnn.export.ir import Graph
from qsnn.hw import cycles, simlib
from qsnn.hw.generate import ir_sha256

PERIOD_NS = 10


def fst_ok() -> bool:
    """FST tracing needs lz4's headers (Debian liblz4-dev); without them waves are VCD."""
    return Path("/usr/include/lz4.h").is_file()


def check_design(build_dir: Path, hw_dir: Path) -> dict[str, Any]:
    """params.json of an up-to-date design, or a one-line error saying what to run."""
    from qsnn.hw.params import read_params

    if not (hw_dir / "params.json").is_file():
        raise QsnnError(f"no generated design in {hw_dir}: run qsnn hw {build_dir}")
    params = read_params(hw_dir, need=("ir_sha256", "time_steps", "rtl"))
    from qsnn.outdir import missing_files

    gone = missing_files(hw_dir)
    if gone:
        raise QsnnError(f"{hw_dir} is incomplete ({gone[0]} missing): regenerate it with "
                        f"qsnn hw {build_dir}")
    if params.get("ir_sha256") != ir_sha256(build_dir):
        raise QsnnError(f"{hw_dir} is stale (the IR changed since it was generated): "
                        f"run qsnn hw {build_dir} --lanes {params.get('lanes', 4)}")
    return params


def stimulus(graph: Graph, build_dir: Path, images: int | None
             ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(inputs [N, ...] uint8, expected counts [N, classes], labels [N])."""
    vec = serialize.load_vectors(build_dir, graph, ("inputs", "counts", "labels"))
    if images is not None and images <= len(vec["labels"]):
        return vec["inputs"][:images], vec["counts"][:images], vec["labels"][:images]
    from qsnn.data import load_dataset

    name = graph.metadata.get("dataset")
    frames = graph.time_steps if graph.input.encoding == "events" else 20
    data = load_dataset(name, time_steps=frames)
    x = data.test.x if images is None else data.test.x[:images]
    res = golden.run_batched(graph, x)
    return x.numpy(), res.counts.numpy(), data.test.y[: len(x)].numpy()


def rtl_traces(graph: Graph, traced: list[dict], key: str) -> list[np.ndarray]:
    """Per-LIF [T, N] arrays of the RTL's recorded spike masks (``mask``) or membranes
    (``mem``), padded lanes dropped; missing steps are left as -1."""
    sizes = [int(np.prod(lif.shape)) for lif in graph.lifs()]
    rows: dict[int, list[int]] = {}
    for ev in traced:
        if key in ev:
            rows.setdefault(ev["layer"], []).extend(ev[key])
    out = []
    for layer, n in enumerate(sizes):
        vals = rows.get(layer, [])
        lanes_total = len(vals) // graph.time_steps if vals else 0
        arr = np.full((graph.time_steps, n), -1, dtype=np.int64)
        if lanes_total >= n:
            arr[:] = np.array(vals).reshape(graph.time_steps, lanes_total)[:, :n]
        out.append(arr)
    return out


def first_difference(graph: Graph, x: np.ndarray, traced: list[dict]) -> dict[str, int] | None:
    """First (time step, layer, neuron) where the RTL's spikes differ from the golden model."""
    res = golden.run(graph, torch.from_numpy(x[None]), record=True)
    got = rtl_traces(graph, traced, "mask")
    for t in range(graph.time_steps):
        for layer, spk in enumerate(res.spikes):
            want = spk[t, 0].reshape(-1).numpy()
            diff = np.nonzero(got[layer][t] != want)[0]
            if diff.size:
                return {"time_step": t, "layer": layer, "neuron": int(diff[0])}
    return None


def trace(build_dir: str | Path, hw_dir: str | Path, image: int, seed: int = 1
          ) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """RTL spike trains and membranes U[t] ([T, N] per LIF) of one golden-vector image."""
    build_dir, hw_dir = Path(build_dir), Path(hw_dir).resolve()
    graph = serialize.load(build_dir)
    params = check_design(build_dir, hw_dir)
    x, want, _ = stimulus(graph, build_dir, image + 1)
    model = cycles.image_cycles(graph, params["lanes"], torch.from_numpy(x[image:]))
    runner = simlib.build("qsnn_top", [hw_dir / f for f in params["rtl"]], {},
                          build_dir_root=hw_dir / "sim_build")
    got = _run_traced(runner, hw_dir, x[image], want[image], 2 * max(model) + 10_000, seed,
                      False)
    return rtl_traces(graph, got, "mask"), rtl_traces(graph, got, "mem")


def _run_traced(runner, hw_dir: Path, x: np.ndarray, want: np.ndarray, timeout: int,
                seed: int, waves: bool) -> list[dict]:
    """Simulate one image with the per-layer monitors on; returns the recorded trace."""
    one = hw_dir / "sim_run" / "stimulus_one.npz"
    one.parent.mkdir(parents=True, exist_ok=True)
    np.savez(one, inputs=x.reshape(1, -1).astype(np.uint8), counts=want[None])
    got = _run(runner, hw_dir, one, hw_dir / "sim_run" / "trace.json", timeout, seed, 0, waves)
    return got.get("trace", [])


def _run(runner, hw_dir: Path, stim: Path, out: Path, timeout: int, seed: int,
         trace_image: int | None, waves: bool) -> list[dict]:
    env: dict[str, object] = {"QSNN_STIMULUS": str(stim), "QSNN_RESULT": str(out),
                              "QSNN_TIMEOUT": timeout, "QSNN_SEED": seed,
                              "QSNN_BACKPRESSURE": "1", "COCOTB_LOG_LEVEL": "WARNING"}
    if trace_image is not None:
        env["QSNN_TRACE_IMAGE"] = trace_image
    if (hw_dir / "weights.bin").is_file():  # run-time weights: loaded through w_* first
        env["QSNN_WEIGHTS"] = str(hw_dir / "weights.bin")
    simlib.run(runner, "net_bench", seed=seed, env=env, test_dir=hw_dir / "sim_run",
               files=sorted(hw_dir.glob("*.mem")), waves=waves, timeout_s=3600)
    return json.loads(out.read_text())


def verify(build_dir: str | Path, hw_dir: str | Path | None = None, images: int | None = 64,
           waves: bool = False, seed: int = 1) -> dict[str, Any]:
    """Simulate ``images`` test images (None: the whole test split); writes sim_report.json."""
    build_dir = Path(build_dir)
    graph = serialize.load(build_dir)
    hw_dir = (Path(hw_dir) if hw_dir else Path("hw/build") / build_dir.name).resolve()
    params = check_design(build_dir, hw_dir)
    x, want, labels = stimulus(graph, build_dir, images)
    model = cycles.image_cycles(graph, params["lanes"], torch.from_numpy(x))
    stim = hw_dir / "sim_run" / "stimulus.npz"
    stim.parent.mkdir(parents=True, exist_ok=True)
    np.savez(stim, inputs=x.reshape(len(x), -1).astype(np.uint8), counts=want)
    files = [hw_dir / f for f in params["rtl"]]
    try:
        runner = simlib.build("qsnn_top", files, {}, build_dir_root=hw_dir / "sim_build",
                              waves=waves, build_args=["--trace-fst"] if waves and fst_ok()
                              else [])
    except RuntimeError as exc:  # simulator missing or the C++ build failed
        raise QsnnError(str(exc).splitlines()[0]) from None
    timeout = 2 * max(model) + 10_000
    t0 = time.perf_counter()
    got = _run(runner, hw_dir, stim, hw_dir / "sim_run" / "results.json", timeout, seed,
               None, waves)
    wall = time.perf_counter() - t0
    results = got["results"]
    bad = [r["image"] for r in results if r["counts"] != want[r["image"]].tolist()]
    first = None
    if bad:
        i = bad[0]
        traced = _run_traced(runner, hw_dir, x[i], want[i], timeout, seed, waves)
        first = {"image": i, **(first_difference(graph, x[i], traced) or {})}
    measured = [r["cycles"] for r in results]
    preds = np.array([r["prediction"] for r in results])
    sim_cycles = sum(measured)
    ratios = [m / c for m, c in zip(measured, model[: len(measured)], strict=True)]
    report = {
        "images": len(results), "mismatches": len(bad) + (len(x) - len(results)),
        "first_mismatch": first,
        "accuracy": float((preds == labels[: len(preds)]).mean()) if len(preds) else 0.0,
        "cycles_per_inference_mean": float(np.mean(measured)),
        "cycles_model_mean": float(np.mean(model[: len(measured)])),
        "cycles_model_ratio": float(np.mean(measured) / np.mean(model[: len(measured)])),
        "cycles_model_ratio_min": min(ratios), "cycles_model_ratio_max": max(ratios),
        "sim_images_per_second": len(results) / wall,
        "sim_cycles_per_second": sim_cycles / wall,
        "lanes": params["lanes"], "seed": seed, "output_backpressure": True,
        "waves": next((str(p) for p in sorted((hw_dir / "sim_run").glob("dump.*"))), None)
        if waves else None,
    }
    atomic.write_json(hw_dir / "sim_report.json", report)
    return report
