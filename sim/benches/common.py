"""Bench-side helpers: read what ``simlib.run`` passed, clock and reset the DUT."""

from __future__ import annotations

import json
import os
import random

import cocotb
from cocotb.clock import Clock
from cocotb.triggers import ClockCycles, RisingEdge

PREFIX = "QSNN_TB_"
CLK_NS = 10


def env_str(name: str, default: str | None = None) -> str:
    value = os.environ.get(PREFIX + name.upper(), default)
    if value is None:
        raise KeyError(f"{PREFIX}{name.upper()} not set (pass it with simlib.run(env=...))")
    return value


def env_int(name: str, default: int | None = None) -> int:
    return int(env_str(name, None if default is None else str(default)), 0)


def env_json(name: str, default=None):
    value = os.environ.get(PREFIX + name.upper())
    return default if value is None else json.loads(value)


def seed() -> int:
    return env_int("SEED", 1)


def params() -> dict:
    """The build's parameters (as passed to simlib.build)."""
    return env_json("PARAMS", {})


def rng(salt: str = "") -> random.Random:
    """A private RNG from the run's seed (plus ``salt`` per test)."""
    return random.Random(f"{seed()}:{salt}")


async def start(dut, reset_cycles: int = 3, clk=None, rst=None) -> None:
    """Start a CLK_NS clock on ``dut.clk`` and hold ``dut.rst`` high for a few cycles.

    Other inputs should be driven to their idle values by the caller before this.
    Returns after the falling edge that follows the reset release is not awaited: the
    caller is just past the rising edge where rst was sampled low for the first time.
    """
    clk = dut.clk if clk is None else clk
    rst = dut.rst if rst is None else rst
    cocotb.start_soon(Clock(clk, CLK_NS, unit="ns").start())
    rst.value = 1
    await ClockCycles(clk, reset_cycles)
    rst.value = 0
    await RisingEdge(clk)
