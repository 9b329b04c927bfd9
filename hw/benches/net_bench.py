"""cocotb bench of the generated qsnn_top: stream images, compare with the golden model.

Environment (set by the pytest runner / ``qsnn verify``):
  QSNN_STIMULUS  .npz with ``inputs`` (uint8 [N, bytes]), ``counts`` (expected [N, classes])
  QSNN_RESULT    where to write the JSON results (per image: counts, prediction, cycles)
  QSNN_TIMEOUT   per-image timeout in cycles (from the cycle model)
  QSNN_SEED      seed of the random output back-pressure (recorded in the result)
  QSNN_BACKPRESSURE  "1" to hold m_ready low for random stretches
  QSNN_TRACE_IMAGE   index of an image whose per-layer spike masks are recorded (one
                     monitor per layer, per-cycle Python for that image only)
  QSNN_WEIGHTS   weights.bin of a design with run-time weights: after reset the bench
                 checks w_loaded = 0, pulses w_start and drives the bytes on w_valid/
                 w_data (with random gaps), then checks w_loaded = 1

The hot path has no per-cycle Python: each image's bytes are driven one per clock (the
stream), then the bench waits for ``m_valid`` with a single trigger.
"""

from __future__ import annotations

import json
import os
import random

import cocotb
import numpy as np
from cocotb.clock import Clock
from cocotb.triggers import ClockCycles, FallingEdge, RisingEdge, with_timeout

from qsnn.hw.cores import localparam

PERIOD_NS = 10
UPDATE = localparam("qsnn_layer.v", "S_UPDATE")  # the update pass's pipeline kind code


async def reset(dut) -> None:
    dut.rst.value = 1
    dut.s_valid.value = 0
    dut.s_data.value = 0
    dut.m_ready.value = 0
    dut.w_start.value = 0
    dut.w_valid.value = 0
    dut.w_data.value = 0
    await ClockCycles(dut.clk, 3)
    dut.rst.value = 0
    await ClockCycles(dut.clk, 1)


async def load_weights(dut, blob: bytes, gaps: random.Random) -> None:
    """The weight stream: w_start, then every byte of ``blob`` while w_ready."""
    await FallingEdge(dut.clk)
    assert int(dut.w_loaded.value) == 0, "w_loaded before any weights were sent"
    dut.w_start.value = 1
    await FallingEdge(dut.clk)
    dut.w_start.value = 0
    for byte in blob:
        if gaps.random() < 0.05:
            dut.w_valid.value = 0
            await ClockCycles(dut.clk, gaps.randint(1, 3))
        dut.w_valid.value = 1
        dut.w_data.value = byte
        await RisingEdge(dut.clk)
        while not dut.w_ready.value:
            await RisingEdge(dut.clk)
    dut.w_valid.value = 0
    await ClockCycles(dut.clk, 2)
    assert int(dut.w_loaded.value) == 1, "w_loaded low after the whole weight blob"


async def send_image(dut, data: np.ndarray, gaps: random.Random | None = None) -> int:
    """Drive the image's bytes, one per cycle while s_ready; with ``gaps``, s_valid drops
    for a few random cycles now and then (input-side back-pressure). Returns the gap
    cycles between the first and the last byte taken (they count in m_cycles)."""
    idle = 0
    for n, byte in enumerate(data.tolist()):
        if gaps is not None and gaps.random() < 0.05:
            dut.s_valid.value = 0
            wait = gaps.randint(1, 3)
            idle += wait if n else 0
            await ClockCycles(dut.clk, wait)
        dut.s_valid.value = 1
        dut.s_data.value = int(byte)
        await RisingEdge(dut.clk)
        while not dut.s_ready.value:
            await RisingEdge(dut.clk)
    dut.s_valid.value = 0
    return idle


async def monitor_layer(dut, layer: int, log: list[dict]) -> None:
    """Record every update-pass chunk of layer ``layer``: the membrane U[t] it reads
    (stage 2 of the layer pipeline, where the RAM word is out) and the spike mask it
    reports (lane 0 first)."""
    inst = getattr(dut, f"u_l{layer}")
    lanes = len(inst.spk_mask)
    mb = len(inst.v_rd) // lanes
    while True:
        await RisingEdge(dut.clk)
        if inst.p2_valid.value == 1 and inst.p2_kind.value.to_unsigned() == UPDATE:
            v = inst.v_rd.value.to_unsigned()
            mem = [(v >> (b * mb)) & ((1 << mb) - 1) for b in range(lanes)]
            log.append({"layer": layer, "mem": [m - (1 << mb) if m >> (mb - 1) else m
                                                for m in mem]})
        if inst.spk_valid.value == 1:
            m = inst.spk_mask.value.to_unsigned()
            log.append({"layer": layer, "mask": [(m >> b) & 1 for b in range(lanes)]})


def layer_count(dut) -> int:
    n = 0
    while True:
        try:
            getattr(dut, f"u_l{n}")
        except AttributeError:
            return n
        n += 1


def unpack_counts(word: int, classes: int, bits: int) -> list[int]:
    mask = (1 << bits) - 1
    return [(word >> (i * bits)) & mask for i in range(classes)]


@cocotb.test()
async def run_network(dut) -> None:
    stim = np.load(os.environ["QSNN_STIMULUS"])
    inputs, expected = stim["inputs"], stim["counts"]
    classes = expected.shape[1]
    bits = len(dut.m_counts.value) // classes  # 16, or bits(T) when T >= 65,536
    timeout = int(os.environ.get("QSNN_TIMEOUT", "1000000"))
    seed = int(os.environ.get("QSNN_SEED", "1"))
    backpressure = os.environ.get("QSNN_BACKPRESSURE") == "1"
    rng = random.Random(seed)
    # cocotb 2 types start_soon(Task[Never]); Clock.start() is a Task[None]
    cocotb.start_soon(Clock(dut.clk, PERIOD_NS, unit="ns").start())  # type: ignore[arg-type]
    await reset(dut)
    if os.environ.get("QSNN_WEIGHTS"):
        with open(os.environ["QSNN_WEIGHTS"], "rb") as f:
            await load_weights(dut, f.read(), random.Random(seed + 1))
    trace_image = int(os.environ.get("QSNN_TRACE_IMAGE", "-1"))
    trace: list[dict] = []
    results, monitors = [], []
    for i in range(len(inputs)):
        if i == trace_image:
            monitors = [cocotb.start_soon(monitor_layer(dut, n, trace))
                        for n in range(layer_count(dut))]
        gaps = await send_image(dut, inputs[i], rng if backpressure else None)
        if not dut.m_valid.value:
            await with_timeout(RisingEdge(dut.m_valid), timeout * PERIOD_NS, "ns")
        await FallingEdge(dut.clk)
        counts = unpack_counts(dut.m_counts.value.to_unsigned(), classes, bits)
        pred = int(dut.m_pred.value.to_unsigned())
        cycles = int(dut.m_cycles.value.to_unsigned())
        if backpressure:
            hold = rng.randint(0, 5)
            await ClockCycles(dut.clk, hold)
            assert dut.m_valid.value == 1, "m_valid dropped before m_ready"
            assert unpack_counts(dut.m_counts.value.to_unsigned(), classes, bits) == counts
        dut.m_ready.value = 1
        await RisingEdge(dut.clk)
        dut.m_ready.value = 0
        results.append({"image": i, "counts": counts, "prediction": pred, "cycles": cycles,
                        "gaps": gaps})
        for m in monitors:
            m.cancel()
        monitors = []
    with open(os.environ["QSNN_RESULT"], "w") as f:
        json.dump({"seed": seed, "results": results, "trace": trace}, f)
