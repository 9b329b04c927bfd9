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
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from qsnn import atomic
from qsnn.errors import QsnnError
from qsnn.export import golden, serialize
from qsnn.export.ir import Encoding, Graph
from qsnn.hw import cycles, netbench, simlib
from qsnn.hw.design import Design, LayerParams

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
    data = load_dataset(str(name), time_steps=frames)  # None: "unknown dataset 'None'"
    x = data.test.x if images is None else data.test.x[:images]
    res = golden.run_batched(graph, x)
    return x.numpy(), res.counts.numpy(), data.test.y[: len(x)].numpy()


def rtl_traces(graph: Graph, layers: Sequence[LayerParams], traced: list[dict], key: str
               ) -> list[np.ndarray]:
    """Per-LIF [T, N] arrays of the RTL's recorded spike masks (``mask``) or membranes
    (``mem``) in the golden model's neuron order (c·HO·WO + y·WO + x; padded lanes
    dropped): the update pass reports chunk (Y·WO + X)·G + g with lane p = neuron
    (g·P + p, Y, X). A layer with missing records is left as -1."""
    steps = graph.time_steps
    rows: dict[int, list[int]] = {}
    for ev in traced:
        if key in ev:
            rows.setdefault(ev["layer"], []).extend(ev[key])
    out = []
    for p in layers:
        vals = rows.get(p.index, [])
        arr = np.full((steps, p.neurons), -1, dtype=np.int64)
        if len(vals) == steps * p.chunks * p.lanes:
            words = np.array(vals).reshape(steps, p.ho * p.wo, p.groups * p.lanes)
            arr[:] = words.transpose(0, 2, 1)[:, : p.n].reshape(steps, -1)
        out.append(arr)
    return out


def first_difference(graph: Graph, layers: Sequence[LayerParams], x: np.ndarray,
                     traced: list[dict]) -> dict[str, int] | None:
    """First (time step, layer, neuron) where the RTL's spikes differ from the golden model
    (neuron: the golden model's flat index)."""
    res = golden.run(graph, torch.from_numpy(x[None]), record=True)
    assert res.spikes is not None  # record=True
    got = rtl_traces(graph, layers, traced, "mask")
    for t in range(graph.time_steps):
        for layer, spk in enumerate(res.spikes):
            want = spk[t, 0].reshape(-1).numpy()
            diff = np.nonzero(got[layer][t] != want)[0]
            if diff.size:
                return {"time_step": t, "layer": layer, "neuron": int(diff[0])}
    return None


def trace(build_dir: str | Path, hw_dir: str | Path, image: int, seed: int = 1
          ) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """RTL spike trains and membranes U[t] ([T, N] per LIF, the golden model's neuron
    order) of one test image (``image``: its index in the golden vectors or test split)."""
    build_dir, hw_dir = Path(build_dir), Path(hw_dir).resolve()
    graph = serialize.load(build_dir)
    design = check_design(build_dir, hw_dir)
    x, want, _ = stimulus(graph, build_dir, image + 1)
    model = cycles.image_cycles(graph, design.layers, torch.from_numpy(x[image:image + 1]))
    got = _run_traced(cocotb_runner(hw_dir, design), hw_dir, x[image], want[image],
                      2 * max(model) + 10_000, seed, False)
    return (rtl_traces(graph, design.layers, got, "mask"),
            rtl_traces(graph, design.layers, got, "mem"))


def compare_trace(build_dir: str | Path, hw_dir: str | Path, image: int, seed: int = 1
                  ) -> list[dict[str, Any]]:
    """``qsnn verify --trace-image``: per layer, the RTL's spike trains and membranes of
    one image against the golden model's (``equal``, ``first_difference``: step and
    neuron, or None), also written to ``trace_report.json`` in the design folder."""
    graph = serialize.load(Path(build_dir))
    x, _, _ = stimulus(graph, Path(build_dir), image + 1)
    res = golden.run(graph, torch.from_numpy(x[image:image + 1]), record=True)
    assert res.spikes is not None and res.membranes is not None  # record=True
    spikes, mems = trace(build_dir, hw_dir, image, seed)
    out = []
    for layer, lif in enumerate(graph.lifs()):
        row: dict[str, Any] = {"layer": layer, "name": lif.name, "image": image}
        for what, got, ref in (("spikes", spikes, res.spikes), ("membranes", mems, res.membranes)):
            want = ref[layer][:, 0].reshape(graph.time_steps, -1).numpy()
            bad = np.argwhere(got[layer] != want)
            row[what] = {"equal": not bad.size, "total": int(want.sum()) if what == "spikes"
                         else None, "first_difference": None if not bad.size else {
                             "time_step": int(bad[0, 0]), "neuron": int(bad[0, 1]),
                             "rtl": int(got[layer][tuple(bad[0])]),
                             "golden": int(want[tuple(bad[0])])}}
        out.append(row)
    atomic.write_json(Path(hw_dir) / "trace_report.json", {"image": image, "layers": out})
    return out


def _run_traced(runner, hw_dir: Path, x: np.ndarray, want: np.ndarray, timeout: int,
                seed: int, waves: bool) -> list[dict]:
    """Simulate one image with the per-layer monitors on; returns the recorded trace."""
    one = hw_dir / "sim_run" / "stimulus_one.npz"
    one.parent.mkdir(parents=True, exist_ok=True)
    np.savez(one, inputs=x.reshape(1, -1).astype(np.uint8), counts=want[None])
    got = _run(runner, hw_dir, one, hw_dir / "sim_run" / "trace.json", timeout, seed, 0, waves)
    return got.get("trace", [])


def _run(runner, hw_dir: Path, stim: Path, out: Path, timeout: int, seed: int,
         trace_image: int | None, waves: bool) -> dict[str, Any]:
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
    model, bound = cycles.model(graph, design.layers, torch.from_numpy(x))
    timeout = 2 * int(model.max()) + 10_000
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
        first = {"image": i, **(first_difference(graph, design.layers, x[i], traced) or {})}
    report = _report(results, len(x) - len(results) + len(bad), first, labels, model, bound,
                     wall)
    report |= {"lanes": design.lanes, "layer_lanes": [p.lanes for p in design.layers],
               "seed": seed, "output_backpressure": True,
               "simulator": simulator, "bench": "cocotb" if waves else "free-running",
               "waves": next((str(p) for p in sorted((hw_dir / "sim_run").glob("dump.*"))),
                             None) if waves else None}
    atomic.write_json(hw_dir / "sim_report.json", report)
    return report


def _report(results: list[dict], mismatches: int, first: dict | None, labels: np.ndarray,
            model: np.ndarray, bound: np.ndarray, wall: float) -> dict[str, Any]:
    """Counts, accuracy, measured cycles against the model and the bound, simulation speed.

    Measured cycles are ``m_cycles`` less the bench's input gaps (the cycles of a host
    streaming one byte per cycle), so measured / model is 1 where the model is exact."""
    measured = np.array([r["cycles"] - r.get("gaps", 0) for r in results], np.int64)
    gaps = [r.get("gaps", 0) for r in results]
    preds = np.array([r["prediction"] for r in results])
    model, bound = model[: len(measured)], bound[: len(measured)]
    ratios = measured / model
    return {
        "images": len(results), "mismatches": mismatches, "first_mismatch": first,
        "accuracy": float((preds == labels[: len(preds)]).mean()) if len(preds) else 0.0,
        "cycles_per_inference_mean": float(np.mean(measured)),
        "cycles_per_inference_min": int(measured.min()),
        "cycles_per_inference_max": int(measured.max()),
        "cycles_input_gaps_mean": float(np.mean(gaps)),
        "cycles_model_mean": float(np.mean(model)),
        "cycles_model_ratio": float(np.mean(measured) / np.mean(model)),
        "cycles_model_ratio_min": float(ratios.min()),
        "cycles_model_ratio_max": float(ratios.max()),
        "cycles_model_exact": int((measured == model).sum()),
        "cycles_bound_mean": float(np.mean(bound)),
        "cycles_bound_ratio": float(np.mean(measured) / np.mean(bound)),
        "cycles_bound_ratio_max": float((measured / bound).max()),
        "sim_images_per_second": len(results) / wall,
        "sim_cycles_per_second": float(measured.sum() + sum(gaps)) / wall,
    }


def verify_netlist(build_dir: str | Path, hw_dir: str | Path | None, target: str,
                   images: int | None = 64, seed: int = 1, simulator: str = "verilator"
                   ) -> dict[str, Any]:
    """``qsnn verify --netlist``: the bitstream's netlist for ``target`` (a family or a
    board; :mod:`qsnn.hw.gate`) answers the host's requests over its UART pins
    (:mod:`qsnn.hw.gatebench`); every prediction, and the spike counts read from the
    netlist's counts net, must equal the golden model's. Writes
    ``<hw>/gate/<board>/gate_report.json``.

    Report: ``images``, ``mismatches`` (count), ``first_mismatch`` (image, prediction,
    golden prediction, ``what``: the first differing class and its counts),
    ``mismatch_images``, ``errors`` (design id, weights status, 'W' acknowledgement),
    ``accuracy``, ``latency_cycles_mean`` (end of an image request to its answer) beside
    ``cycles_model_mean``, the netlist's ``cells``, ``counts_net``, simulated cycles and
    speed (``sim_seconds``: the simulation alone, all requests, UART included; and its
    ``sim_cpu_seconds``), ``synth_seconds`` (+ ``synth_cpu_seconds``) and
    ``build_seconds`` (Yosys, the simulator's build: near 0 when cached)."""
    from qsnn.hw import gate, gatebench

    build_dir = Path(build_dir)
    graph = serialize.load(build_dir)
    hw_dir = (Path(hw_dir) if hw_dir else Path("hw/build") / build_dir.name).resolve()
    design = check_design(build_dir, hw_dir)
    board = gate.gate_board(target)
    x, counts, labels = stimulus(graph, build_dir, images)
    t0, c0 = time.perf_counter(), gatebench.child_cpu_seconds()
    tgt = gatebench.netlist_target(design, board)
    synth_s, synth_cpu = time.perf_counter() - t0, gatebench.child_cpu_seconds() - c0
    reqs, model = gatebench.session(design, graph, x)
    run = gatebench.run(tgt, board, reqs, gatebench.answer_timeout(model), seed, simulator)
    ans, wall = run.answers, run.sim_seconds
    res = gatebench.check(design, reqs, ans, counts, tgt.probe.width // design.classes)
    report = _gate_report(board, tgt, res, ans, labels, simulator, seed, design.lanes)
    report.update(cycles_model_mean=float(np.mean(model)), sim_seconds=wall,
                  sim_cycles_per_second=ans.cycles / wall if wall > 0 else 0.0,
                  sim_images_per_second=len(x) / wall if wall > 0 else 0.0,
                  sim_cpu_seconds=run.sim_cpu_seconds, synth_seconds=synth_s,
                  synth_cpu_seconds=synth_cpu, build_seconds=run.build_seconds)
    atomic.write_json(tgt.out / "gate_report.json", report)
    return report


def _gate_report(board: Any, tgt: Any, res: dict, ans: Any, labels: np.ndarray,
                 simulator: str, seed: int, lanes: int) -> dict[str, Any]:
    from qsnn.hw import gate

    preds = np.array(res["predictions"], dtype=np.int64)
    bad = res["mismatches"]
    return {
        "board": board.name, "family": board.family, "netlist": str(tgt.sources[0]),
        "clks_per_bit": gate.GATE_CLKS_PER_BIT, "pll": False, "simulator": simulator,
        "seed": seed, "lanes": lanes, "images": len(preds), "mismatches": len(bad),
        "first_mismatch": bad[0] if bad else None,
        "mismatch_images": [m["image"] for m in bad], "errors": res["errors"],
        "design_id": res["design_id"], "weights_loaded": res["weights_loaded"],
        "counts_net": tgt.probe.name.lstrip("\\"),
        "accuracy": float((preds == labels[: len(preds)]).mean()) if len(preds) else 0.0,
        "latency_cycles_mean": float(np.mean(res["latency_cycles"] or [0])),
        "sim_cycles": ans.cycles, "cells": gate.cell_types(tgt.sources[0]),
    }
