"""RTL simulation speed: the per-image cocotb bench against the free-running bench.

Same design, same images, same run: today's cocotb bench (``hw/benches/net_bench.py``,
Verilator with VPI, one cocotb trigger per result) and the free-running Verilog bench
(``hw/benches/qsnn_net_tb.v``, Verilator with its own C++ main, ``qsnn.hw.netbench``).
Both must agree with the golden model on every image. Prints simulated cycles/s and
images/s of each and their ratio (wall time of the simulations; the cached builds are made
before the clock starts), and the free-running bench on a larger batch. Design: the
iCEBreaker configuration of the FashionMNIST MLP (P = 4, layer-0 weights streamed at run
time) from ``build/fashion-mnist-mlp``, or a random 784-128-10 int4 IR of the same shape
when it has not been exported; FashionMNIST test images when installed.

``--options`` also times Verilator option sets of the free-running build (one fresh
build each; minutes): the evidence behind ``qsnn.hw.netbench.VERILATOR_ARGS``.

    .venv/bin/python bench/sim_speed.py [--build build/fashion-mnist-mlp] [--images 100]
        [--free-images 2000] [--options]

Writes ``bench/out/sim_speed.json``.
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import time
from pathlib import Path

import numpy as np
import torch

from qsnn.errors import QsnnError
from qsnn.export import golden, serialize
from qsnn.hw import cycles, netbench
from qsnn.hw.design import Design
from qsnn.hw.generate import generate
from qsnn.hw.verify import cocotb_results, cocotb_runner, free_running_results

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "bench/out"
sys.path.insert(0, str(ROOT / "bench"))
from golden_speed import random_mlp  # noqa: E402

BASE = ("-Wall", "--default-language", "1364-2005", "--output-split", "0")
#: option sets timed by --options (the chosen one is netbench.VERILATOR_ARGS)
OPTION_SETS = {
    "default (-O as shipped), x unique": (*BASE, "--x-assign", "unique", "--x-initial",
                                          "unique"),
    "x fast": (*BASE, "--x-assign", "fast", "--x-initial", "fast"),
    "-O3, x fast": (*BASE, "-O3", "--x-assign", "fast", "--x-initial", "fast"),
    "-O3, x fast, C++ -O2": (*BASE, "-O3", "--x-assign", "fast", "--x-initial", "fast",
                             "-MAKEFLAGS", "OPT_FAST=-O2"),
    "-O3, x fast, C++ -O3": (*BASE, "-O3", "--x-assign", "fast", "--x-initial", "fast",
                             "-MAKEFLAGS", "OPT_FAST=-O3"),
}


def design(build_arg: str, lanes: int = 4) -> tuple[Path, str]:
    """(export folder, its description): the exported MLP or a random one of its shape."""
    try:
        serialize.load(build_arg)
        return Path(build_arg), build_arg
    except QsnnError:
        build = OUT / "sim_speed" / "random-mlp"
        if not (build / "model.json").is_file():
            serialize.save(random_mlp(), build)
        return build, "random 784-128-10 int4 IR"


def hw_design(build: Path, lanes: int) -> Path:
    """The generated design (regenerated only when the IR changed: keeps the cached builds)."""
    hw = OUT / "sim_speed" / f"hw-{build.name}-p{lanes}"
    try:
        Design.load(hw).check_fresh(build)
    except QsnnError:            # none yet, unreadable or stale
        generate(build, hw, lanes=lanes, runtime_weights=(0,))
    return hw


def images(n: int) -> tuple[torch.Tensor, str]:
    try:
        from qsnn.data import load_dataset

        return load_dataset("fashion-mnist").test.x[:n], "fashion-mnist test"
    except QsnnError:
        gen = torch.Generator().manual_seed(0)
        return torch.randint(0, 256, (n, 1, 28, 28), generator=gen, dtype=torch.uint8), "random"


def child_cpu() -> float:
    """CPU seconds of the finished child processes (the simulators) so far."""
    use = resource.getrusage(resource.RUSAGE_CHILDREN)
    return use.ru_utime + use.ru_stime


def measured(run, want: np.ndarray) -> dict:
    """Cycles/s and images/s of ``run()`` -> (results, wall s), by wall time and by the
    simulator's CPU time (this machine is shared); every image must equal the golden
    counts."""
    cpu0 = child_cpu()
    results, wall = run()
    cpu = child_cpu() - cpu0
    bad = [r["image"] for r in results if r["counts"] != want[r["image"]].tolist()]
    assert len(results) == len(want) and not bad, f"RTL != golden on images {bad[:5]}"
    cyc = sum(r["cycles"] for r in results)
    return {"images": len(results), "seconds": wall, "cpu_seconds": cpu, "cycles": cyc,
            "cycles_per_second": cyc / wall, "images_per_second": len(results) / wall,
            "cycles_per_cpu_second": cyc / cpu}


def compare_options(hw: Path, x: np.ndarray, want: np.ndarray, timeout: int) -> dict:
    """Build time and speed of every option set in OPTION_SETS."""
    dsg = netbench.bench_design(hw)
    out = {}
    for name, opts in OPTION_SETS.items():
        t0 = time.perf_counter()
        netbench.build_verilator(dsg, opts)
        built = time.perf_counter() - t0
        def run(opts=opts) -> tuple[list[dict], float]:
            t0 = time.perf_counter()
            got = netbench.run(dsg, x, timeout, 1, "verilator", opts)
            return [r.__dict__ for r in got], time.perf_counter() - t0

        out[name] = {"options": list(opts), "build_seconds": built, **measured(run, want)}
        print(f"  {name:34s} build {built:6.1f} s, "
              f"{out[name]['cycles_per_cpu_second'] / 1e6:6.2f} M cycles per CPU second")
    return out


def main() -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--build", default=str(ROOT / "build/fashion-mnist-mlp"))
    parser.add_argument("--images", type=int, default=100, help="images for both benches")
    parser.add_argument("--free-images", type=int, default=2000,
                        help="images for the free-running bench alone")
    parser.add_argument("--options", action="store_true", help="time Verilator option sets")
    parser.add_argument("--out", default=str(OUT / "sim_speed.json"))
    args = parser.parse_args()
    build, source = design(args.build)
    hw = hw_design(build, 4)
    graph = serialize.load(build)
    dsg = Design.load(hw)
    xt, data = images(max(args.images, args.free_images))
    x, want = xt.numpy().astype(np.uint8), golden.run_batched(graph, xt).counts.numpy()
    timeout = 2 * max(cycles.image_cycles(graph, 4, xt)) + 10_000
    n = args.images
    rec = {"ir": source, "data": data, "lanes": 4, "runtime_weights": [0],
           "verilator_args": list(netbench.VERILATOR_ARGS)}
    cocotb_runner(hw, dsg)  # both builds cached before any clock starts
    netbench.build_verilator(netbench.bench_design(hw))
    m = args.free_images
    rec["cocotb"] = measured(lambda: cocotb_results(hw, dsg, x[:n], want[:n], timeout, 1,
                                                    False), want[:n])
    rec["free_running"] = measured(lambda: free_running_results(hw, x[:n], timeout, 1,
                                                                "verilator"), want[:n])
    rec["free_running_large"] = measured(lambda: free_running_results(
        hw, x[:m], timeout, 1, "verilator"), want[:m])
    for key, run in (("", "free_running"), ("_large", "free_running_large")):
        for per in ("cycles_per_second", "cycles_per_cpu_second"):
            rec[f"speedup_{per}{key}"] = rec[run][per] / rec["cocotb"][per]
    if args.options:
        rec["option_sets"] = compare_options(hw, x[:m], want[:m], timeout)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(rec, indent=2, sort_keys=True) + "\n")
    print(f"sim_speed: {source}, P = 4, {data}")
    for name, key, ratio in (("cocotb bench", "cocotb", None),
                             ("free-running bench", "free_running", ""),
                             ("free-running bench", "free_running_large", "_large")):
        r = rec[key]
        line = (f"  {name:19s} {r['images']:5d} images: {r['cycles_per_second']:>11,.0f} "
                f"cycles/s {r['images_per_second']:8.1f} images/s "
                f"({r['cycles_per_cpu_second']:>11,.0f} cycles per CPU second)")
        if ratio is not None:
            line += (f" -> {rec['speedup_cycles_per_second' + ratio]:.1f}x "
                     f"({rec['speedup_cycles_per_cpu_second' + ratio]:.1f}x by CPU time)")
        print(line)
    return rec


if __name__ == "__main__":
    main()
