"""cocotb bench for qsnn_board_io (driven by sim/test_top_cores.py): power-on reset,
busy LED stretch, LED polarity and constant pins, against the documented rules:

* rst holds while ``locked`` is low and falls 2 (synchroniser) + 2**POR_BITS clocks after
  ``locked`` rises; it rises again within 3 clocks of ``locked`` falling;
* a one-cycle ``busy`` lights ``led_busy`` for 2**STRETCH_BITS - 1 clocks; a long one
  keeps it lit; ``led_ready`` = !rst; both inverted when LED_ACTIVE_LOW = 1;
* ``const_out`` = CONST_VALUE's low N_CONST bits.
"""

from __future__ import annotations

import cocotb
from cocotb.clock import Clock
from cocotb.triggers import FallingEdge

from benches.common import CLK_NS, params, seed


async def clocks(dut, n: int) -> None:
    for _ in range(n):
        await FallingEdge(dut.clk)


@cocotb.test()
async def reset_leds_constants(dut):
    hp = params()
    por, stretch = int(hp["POR_BITS"]), int(hp["STRETCH_BITS"])
    inv, n_const = int(hp["LED_ACTIVE_LOW"]), int(hp["N_CONST"])
    dut._log.info("seed %d: %s", seed(), hp)
    dut.locked.value = 0
    dut.busy.value = 0
    cocotb.start_soon(Clock(dut.clk, CLK_NS, unit="ns").start())
    await clocks(dut, 5)
    assert int(dut.rst.value) == 1 and int(dut.led_ready.value) == inv, "reset before lock"
    if n_const:
        assert int(dut.const_out.value) == int(hp["CONST_VALUE"]) & ((1 << n_const) - 1)

    for attempt in range(2):      # power-on, then a loss of lock
        dut.locked.value = 1
        n = 0
        while int(dut.rst.value):
            await clocks(dut, 1)
            n += 1
            assert n <= 2 + (1 << por), f"attempt {attempt}: rst still high after {n} clocks"
        assert n == 2 + (1 << por), f"attempt {attempt}: rst fell after {n} clocks, want " \
                                    f"{2 + (1 << por)}"
        assert int(dut.led_ready.value) == 1 - inv
        if attempt == 0:
            dut.locked.value = 0
            await clocks(dut, 3)
            assert int(dut.rst.value) == 1, "rst not back within 3 clocks of losing lock"
            await clocks(dut, 2)

    assert int(dut.led_busy.value) == inv, "busy LED lit without busy"
    dut.busy.value = 1
    await clocks(dut, 1)
    dut.busy.value = 0
    lit = 0
    while int(dut.led_busy.value) != inv:
        lit += 1
        await clocks(dut, 1)
        assert lit <= 1 << stretch
    assert lit == (1 << stretch) - 1, f"busy LED lit {lit} clocks, want {(1 << stretch) - 1}"
    dut.busy.value = 1
    await clocks(dut, 3 << stretch)
    assert int(dut.led_busy.value) == 1 - inv, "busy LED off while busy"
    dut.busy.value = 0
    await clocks(dut, 1 << stretch)
    assert int(dut.led_busy.value) == inv, "busy LED still lit"
