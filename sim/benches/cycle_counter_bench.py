"""cocotb bench for qsnn_cycle_counter (driven by sim/test_top_cores.py).

Per "image": idle cycles in which a first byte must not start the count (no byte, or a
byte not taken: s_ready low, an image already loaded or running, a result waiting), the
cycle the first byte is taken, D busy cycles with random handshakes, then m_valid for H
cycles. Expected, from the documented contract (cycles from the first input byte to
m_valid): count = 1 after the first byte's clock edge, + 1 per edge until m_valid, then
held (D + 1) through m_valid and the next image's idle cycles; rst clears it.
"""

from __future__ import annotations

import cocotb
from cocotb.triggers import FallingEdge

from benches.common import env_int, rng, seed, start

INPUTS = ("s_valid", "s_ready", "loaded", "running", "m_valid")


async def cycle(dut, **values) -> int:
    """Drive ``values`` (other inputs 0) for one clock; returns count after that edge."""
    for name in INPUTS:
        getattr(dut, name).value = int(values.get(name, 0))
    await FallingEdge(dut.clk)
    return int(dut.count.value)


def no_start(r) -> dict[str, int]:
    """Inputs in which no first byte is taken."""
    return r.choice([{}, {"s_valid": 1}, {"s_ready": 1},
                     {"s_valid": 1, "s_ready": 1, "loaded": 1},
                     {"s_valid": 1, "s_ready": 1, "running": 1},
                     {"s_valid": 1, "s_ready": 1, "m_valid": 1}])


@cocotb.test()
async def first_byte_to_m_valid(dut):
    width = len(dut.count)
    r = rng("cycles")
    for name in INPUTS:
        getattr(dut, name).value = 0
    await start(dut)
    await FallingEdge(dut.clk)
    assert int(dut.count.value) == 0, "count not cleared by rst"
    held, images = 0, env_int("IMAGES", 40)
    dut._log.info("seed %d: WIDTH %d, %d images", seed(), width, images)
    for i in range(images):
        for _ in range(r.randint(0, 4)):
            got = await cycle(dut, **no_start(r))
            assert got == held, f"image {i}: count {got} moved before the first byte"
        got = await cycle(dut, s_valid=1, s_ready=1)
        assert got == 1, f"image {i}: count {got} after the first byte, want 1"
        busy = r.randint(0, min(40, (1 << width) - 2))
        for d in range(busy):
            got = await cycle(dut, s_valid=r.randint(0, 1), s_ready=r.randint(0, 1),
                              loaded=r.randint(0, 1), running=r.randint(0, 1))
            assert got == d + 2, f"image {i}: count {got} after {d + 1} busy cycles"
        for h in range(r.randint(1, 4)):
            got = await cycle(dut, m_valid=1, s_valid=r.randint(0, 1), s_ready=1)
            assert got == busy + 1, f"image {i}: count {got} on m_valid cycle {h}, want " \
                                    f"{busy + 1}"
        held = busy + 1
    got = await cycle(dut, s_valid=1, s_ready=1)
    assert got == 1
    dut.rst.value = 1
    got = await cycle(dut)
    dut.rst.value = 0
    assert got == 0, f"count {got} after rst"
