"""``qsnn verify``: run the generated RTL on real test images and compare with the golden model.

Runs N test images through ``qsnn_top`` in the free-running bench (``qsnn.hw.netbench``:
``hw/benches/qsnn_net_tb.v``, one simulator launch per batch, no Python per cycle) on
Verilator (one cached build per design) or Icarus Verilog, and writes
``sim_report.json``: images, mismatches, accuracy, measured cycles per inference and
their ratio to the cycle model (``qsnn.hw.cycles``), simulated images and cycles per
second. On a mismatch the first differing image is re-run in the per-cycle cocotb bench
(``hw/benches/net_bench.py``) with per-layer spike monitors, and the report names the
first differing time step, layer and neuron. ``--waves`` runs the cocotb bench.
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
from qsnn.export.ir import Encoding, Graph
from qsnn.hw import cycles, netbench, simlib
from qsnn.hw.design import Design

PERIOD_NS = 10


def fst_ok() -> bool:
    """FST tracing needs lz4's headers (Debian liblz4-dev); without them waves are VCD."""
    return Path("/usr/include/lz4.h").is_file()


def check_design(build_dir: Path, hw_dir: Path) -> Design:
    """The up-to-date, complete design in ``hw_dir``, or a one-line error saying what to
    run."""
    design = Design.load(hw_dir, build_dir)
    design.check_fresh(build_dir)
    design.check_files(design.rtl + design.mem_files)
    return design


def stimulus(graph: Graph, build_dir: Path, images: int | None
             ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(inputs [N, ...] uint8, expected counts [N, classes], labels [N])."""
    vec = serialize.load_vectors(build_dir, graph, ("inputs", "counts", "labels"))
    if images is not None and images <= len(vec["labels"]):
        return vec["inputs"][:images], vec["counts"][:images], vec["labels"][:images]
    from qsnn.data import load_dataset

    name = graph.metadata.get("dataset")
    frames = graph.time_steps if graph.input.encoding == Encoding.EVENTS else 20
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
    design = check_design(build_dir, hw_dir)
    x, want, _ = stimulus(graph, build_dir, image + 1)
    model = cycles.image_cycles(graph, design.lanes, torch.from_numpy(x[image:]))
    got = _run_traced(cocotb_runner(hw_dir, design), hw_dir, x[image], want[image],
                      2 * max(model) + 10_000, seed, False)
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


def cocotb_results(hw_dir: Path, design: Design, x: np.ndarray, want: np.ndarray,
                    timeout: int, seed: int, waves: bool) -> tuple[list[dict], float]:
    """Today's per-image cocotb bench (``net_bench``): kept for waves and as the baseline of
    ``bench/sim_speed.py``. Returns (results, simulation wall time)."""
    stim = hw_dir / "sim_run" / "stimulus.npz"
    stim.parent.mkdir(parents=True, exist_ok=True)
    np.savez(stim, inputs=x.reshape(len(x), -1).astype(np.uint8), counts=want)
    runner = cocotb_runner(hw_dir, design, waves)
    t0 = time.perf_counter()
    got = _run(runner, hw_dir, stim, hw_dir / "sim_run" / "results.json", timeout, seed,
               None, waves)
    return got["results"], time.perf_counter() - t0


def cocotb_runner(hw_dir: Path, design: Design, waves: bool = False):
    """The cached cocotb build of the design's ``qsnn_top`` (Verilator with VPI)."""
    try:
        return simlib.build("qsnn_top", [hw_dir / f for f in design.rtl], {},
                            build_dir_root=hw_dir / "sim_build", waves=waves,
                            build_args=["--trace-fst"] if waves and fst_ok() else [])
    except RuntimeError as exc:  # simulator missing or the C++ build failed
        raise QsnnError(str(exc).splitlines()[0]) from None


def free_running_results(hw_dir: Path, x: np.ndarray, timeout: int, seed: int,
                          simulator: str) -> tuple[list[dict], float]:
    """The free-running bench (``qsnn.hw.netbench``); returns (results, wall time of the
    simulation, the cached build excluded)."""
    design = netbench.bench_design(hw_dir)
    if simulator == "verilator":
        netbench.build_verilator(design)
    t0 = time.perf_counter()
    got = netbench.run(design, x, timeout, seed, simulator)
    return [r.__dict__ for r in got], time.perf_counter() - t0


def verify(build_dir: str | Path, hw_dir: str | Path | None = None, images: int | None = 64,
           waves: bool = False, seed: int = 1, simulator: str = "verilator") -> dict[str, Any]:
    """Simulate ``images`` test images (None: the whole test split); writes sim_report.json.

    The free-running bench runs the images (``simulator``: ``verilator`` or ``icarus``);
    with ``waves`` the cocotb bench does (Verilator, a waveform of the run)."""
    build_dir = Path(build_dir)
    graph = serialize.load(build_dir)
    hw_dir = (Path(hw_dir) if hw_dir else Path("hw/build") / build_dir.name).resolve()
    design = check_design(build_dir, hw_dir)
    if simulator not in netbench.SIMULATORS:
        raise QsnnError(f"unknown simulator '{simulator}' (choose from "
                        f"{', '.join(netbench.SIMULATORS)})")
    if waves and simulator != "verilator":
        raise QsnnError("--waves needs --simulator verilator")
    x, want, labels = stimulus(graph, build_dir, images)
    model = cycles.image_cycles(graph, design.lanes, torch.from_numpy(x))
    timeout = 2 * max(model) + 10_000
    if waves:
        results, wall = cocotb_results(hw_dir, design, x, want, timeout, seed, True)
    else:
        results, wall = free_running_results(hw_dir, x, timeout, seed, simulator)
    bad = [r["image"] for r in results if r["counts"] != want[r["image"]].tolist()]
    first = None
    if bad:  # re-run the first differing image with per-layer monitors (cocotb)
        i = bad[0]
        traced = _run_traced(cocotb_runner(hw_dir, design), hw_dir, x[i], want[i], timeout,
                             seed, False)
        first = {"image": i, **(first_difference(graph, x[i], traced) or {})}
    report = _report(results, len(x) - len(results) + len(bad), first, labels, model, wall)
    report |= {"lanes": design.lanes, "seed": seed, "output_backpressure": True,
               "simulator": simulator, "bench": "cocotb" if waves else "free-running",
               "waves": next((str(p) for p in sorted((hw_dir / "sim_run").glob("dump.*"))),
                             None) if waves else None}
    atomic.write_json(hw_dir / "sim_report.json", report)
    return report


def _report(results: list[dict], mismatches: int, first: dict | None, labels: np.ndarray,
            model: list[int], wall: float) -> dict[str, Any]:
    """Counts, accuracy, measured cycles against the model, simulation speed."""
    measured = [r["cycles"] for r in results]
    preds = np.array([r["prediction"] for r in results])
    ratios = [m / c for m, c in zip(measured, model[: len(measured)], strict=True)]
    return {
        "images": len(results), "mismatches": mismatches, "first_mismatch": first,
        "accuracy": float((preds == labels[: len(preds)]).mean()) if len(preds) else 0.0,
        "cycles_per_inference_mean": float(np.mean(measured)),
        "cycles_model_mean": float(np.mean(model[: len(measured)])),
        "cycles_model_ratio": float(np.mean(measured) / np.mean(model[: len(measured)])),
        "cycles_model_ratio_min": min(ratios), "cycles_model_ratio_max": max(ratios),
        "sim_images_per_second": len(results) / wall,
        "sim_cycles_per_second": sum(measured) / wall,
    }
