"""cocotb bench for qsnn_lfsr: bit-exact against qsnn.lfsr.step."""

from __future__ import annotations

import os

import cocotb
from cocotb.triggers import ClockCycles, FallingEdge, RisingEdge

from benches.common import env_int, params, rng, start
from qsnn.lfsr import step as lfsr_step


def _seed_param() -> int:
    return int(params()["SEED"])


async def _setup(dut) -> int:
    dut.load.value = 0
    dut.step.value = 0
    await start(dut)
    await FallingEdge(dut.clk)
    return _seed_param()


@cocotb.test()
async def reset_value(dut):
    """After rst the state is SEED, and it stays there without step."""
    seed = await _setup(dut)
    assert int(dut.state.value) == seed
    await ClockCycles(dut.clk, 5)
    await FallingEdge(dut.clk)
    assert int(dut.state.value) == seed


@cocotb.test()
async def random_load_step(dut):
    """Random load/step/rst patterns, checked every cycle against the Python model."""
    seed = await _setup(dut)
    r = rng("random_load_step")
    model = seed
    n = env_int("CYCLES", 4000)
    steps = 0
    for cycle in range(n):
        got = int(dut.state.value)
        assert got == model, f"cycle {cycle}: state {got:#010x} != model {model:#010x}"
        p_load = 0.05 if cycle % 500 < 250 else 0.002  # phases of short and long runs
        load = r.random() < p_load
        step = r.random() < 0.75
        rst = r.random() < 0.002
        dut.load.value = int(load)
        dut.step.value = int(step)
        dut.rst.value = int(rst)
        if rst or load:
            model = seed
        elif step:
            model = lfsr_step(model)
            steps += 1
        await FallingEdge(dut.clk)
    dut.rst.value = 0
    assert steps > n // 2


@cocotb.test()
async def load_wins_over_step(dut):
    seed = await _setup(dut)
    dut.step.value = 1
    await ClockCycles(dut.clk, 7)
    await FallingEdge(dut.clk)
    assert int(dut.state.value) != seed
    dut.load.value = 1
    await FallingEdge(dut.clk)
    assert int(dut.state.value) == seed, "load together with step must reload SEED"
    dut.load.value = 0
    await FallingEdge(dut.clk)
    assert int(dut.state.value) == lfsr_step(seed)


@cocotb.test()
async def long_run(dut):
    """step held for many cycles (one ClockCycles await), then compared."""
    seed = await _setup(dut)
    n = env_int("LONG_STEPS", 20000)
    dut.step.value = 1
    await ClockCycles(dut.clk, n, rising=True)
    await FallingEdge(dut.clk)
    dut.step.value = 0
    model = seed
    for _ in range(n):
        model = lfsr_step(model)
    got = int(dut.state.value)
    assert got == model, f"after {n} steps: {got:#010x} != {model:#010x}"
    await RisingEdge(dut.clk)


if os.environ.get("QSNN_TB_EXPECT_FAIL"):

    @cocotb.test()
    async def deliberate_failure(dut):
        """Only defined for the harness self-check: must make simlib.run raise."""
        seed = await _setup(dut)
        assert int(dut.state.value) == seed ^ 1, "deliberate failure"
