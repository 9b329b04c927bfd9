"""cocotb bench of ``qsnn_uart_top``: host requests as 8N1 frames on ``rx``, answers from ``tx``.

A replayer of the host protocol of ``docs/hardware.md`` (UART wrapper): the pytest side
builds the requests with ``qsnn.hw.host`` (``info_request``, ``weights_request``,
``image_request``: the exact bytes ``qsnn run`` sends); the bench sends each request,
waits for its answer (as the host does, one command at a time) and records it.

Environment (``simlib.run(env=...)`` adds the ``QSNN_TB_`` prefix):
  QSNN_TB_REQUESTS  JSON: [{"send": hex string, "reply": answer length in bytes}, ...]
  QSNN_TB_RESULT    JSON written at the end: per request the answer bytes and the latency
                    in cycles (end of the request's last stop bit to the first answer
                    start bit), plus monitor errors
  QSNN_TB_TIMEOUT   cycles to wait for each answer after its request is sent
  QSNN_TB_SEED      seed of the random idle gaps between bytes and requests
  QSNN_TB_PARAMS    the build parameters (JSON): ``CLKS_PER_BIT``

The rx line is driven by a coroutine one bit per ``CLKS_PER_BIT`` clocks (LSB first,
random idle gaps of up to two bit times between some bytes); a monitor decodes ``tx``
by sampling each bit in its middle and checks the start and stop bits. No byte may
appear on tx before its request is complete, and none after the expected answer.
"""

from __future__ import annotations

import json
import os
import random

import cocotb
from cocotb.clock import Clock
from cocotb.triggers import ClockCycles, Event, FallingEdge, SimTimeoutError, with_timeout
from cocotb.utils import get_sim_time

PERIOD_NS = 10
PREFIX = "QSNN_TB_"


def _env(name: str, default: str | None = None) -> str:
    value = os.environ.get(PREFIX + name, default)
    if value is None:
        raise KeyError(f"{PREFIX}{name} not set")
    return value


def frame_levels(byte: int) -> list[int]:
    """Line levels of one 8N1 frame: start (0), data LSB first, stop (1)."""
    return [0] + [(byte >> i) & 1 for i in range(8)] + [1]


def cycle_now() -> int:
    return int(get_sim_time("ns")) // PERIOD_NS


async def send_byte(dut, byte: int, cpb: int) -> None:
    """Drive one frame on rx (levels change just after rising edges)."""
    for level in frame_levels(byte):
        dut.rx.value = level
        await ClockCycles(dut.clk, cpb)


class TxMonitor:
    """Decodes every frame on ``tx`` into ``got`` = [(byte, start cycle)]."""

    def __init__(self, dut, cpb: int) -> None:
        self.dut, self.cpb = dut, cpb
        self.got: list[tuple[int, int]] = []
        self.errors: list[str] = []
        self.event = Event()
        self.task = cocotb.start_soon(self._run())

    async def _run(self) -> None:
        dut, cpb = self.dut, self.cpb
        while True:
            await FallingEdge(dut.tx)
            start = cycle_now()
            await ClockCycles(dut.clk, cpb // 2)  # middle of the start bit
            if int(dut.tx.value) != 0:
                self.errors.append(f"cycle {start}: tx glitch (start bit not low mid-bit)")
                continue
            value = 0
            for i in range(8):
                await ClockCycles(dut.clk, cpb)
                value |= int(dut.tx.value) << i
            await ClockCycles(dut.clk, cpb)
            if int(dut.tx.value) != 1:
                self.errors.append(f"cycle {start}: bad stop bit after byte {value:#04x}")
            self.got.append((value, start))
            self.event.set()

    async def wait_for(self, count: int, timeout_cycles: int) -> None:
        """Until ``count`` bytes were decoded (raises cocotb's timeout error otherwise)."""
        while len(self.got) < count:
            self.event.clear()
            await with_timeout(self.event.wait(), timeout_cycles * PERIOD_NS, "ns")


@cocotb.test()
async def uart_requests(dut) -> None:
    with open(_env("REQUESTS")) as f:
        requests = json.load(f)
    cpb = int(json.loads(_env("PARAMS", "{}")).get("CLKS_PER_BIT", 104))
    timeout = int(_env("TIMEOUT", "1000000"))
    rng = random.Random(int(_env("SEED", "1")))

    dut.rx.value = 1  # idle line
    dut.rst.value = 1
    # cocotb 2 types start_soon(Task[Never]); Clock.start() is a Task[None]
    cocotb.start_soon(Clock(dut.clk, PERIOD_NS, unit="ns").start())  # type: ignore[arg-type]
    await ClockCycles(dut.clk, 3)
    dut.rst.value = 0
    await ClockCycles(dut.clk, 2)
    assert int(dut.tx.value) == 1, "tx not idle (high) after reset"

    mon = TxMonitor(dut, cpb)
    answers, latency = [], []
    for i, req in enumerate(requests):
        data = bytes.fromhex(req["send"])
        before = len(mon.got)
        for k, byte in enumerate(data):
            await send_byte(dut, byte, cpb)
            if k + 1 < len(data) and rng.random() < 0.3:  # idle gap of up to two bit times
                await ClockCycles(dut.clk, rng.randrange(1, 2 * cpb))
        sent = cycle_now()
        assert len(mon.got) == before, (
            f"request {i}: {len(mon.got) - before} byte(s) on tx before it was complete")
        want = before + int(req["reply"])
        try:
            await mon.wait_for(want, timeout + 10 * cpb * int(req["reply"]))
        except SimTimeoutError:
            raise AssertionError(f"request {i}: {len(mon.got) - before} of {req['reply']} "
                                 f"answer bytes within {timeout} cycles") from None
        got = mon.got[before:want]
        answers.append([b for b, _ in got])
        latency.append(got[0][1] - sent if got else 0)
        if rng.random() < 0.5:  # the host may take a while before the next request
            await ClockCycles(dut.clk, rng.randrange(1, 4 * cpb))
    await ClockCycles(dut.clk, 20 * cpb)
    total = sum(int(r["reply"]) for r in requests)
    assert len(mon.got) == total, f"{len(mon.got)} bytes on tx, want {total}"
    mon.task.cancel()
    with open(_env("RESULT"), "w") as f:
        json.dump({"answers": answers, "latency_cycles": latency, "errors": mon.errors}, f)
    assert not mon.errors, mon.errors
