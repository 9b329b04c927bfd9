"""cocotb bench for qsnn_readout: saturating counters and the sequential argmax."""

from __future__ import annotations

import cocotb
from cocotb.triggers import FallingEdge

from benches.common import params, rng, start


class Model:
    def __init__(self, classes: int, cw: int) -> None:
        self.classes, self.cw = classes, cw
        self.max = (1 << cw) - 1
        self.iw = (classes - 1).bit_length() if classes > 1 else 1
        self.counts = [0] * classes

    def clear(self) -> None:
        self.counts = [0] * self.classes

    def inc(self, index: int) -> None:
        if index < self.classes:
            self.counts[index] = min(self.counts[index] + 1, self.max)

    def argmax(self) -> int:
        best = 0
        for i, c in enumerate(self.counts):
            if c > self.counts[best]:
                best = i
        return best

    def packed(self) -> int:
        return sum(c << (i * self.cw) for i, c in enumerate(self.counts))


def _model() -> Model:
    p = params()
    return Model(int(p["CLASSES"]), int(p["CW"]))


async def _setup(dut) -> Model:
    for name in ("clear", "inc", "inc_index", "start"):
        getattr(dut, name).value = 0
    await start(dut)
    await FallingEdge(dut.clk)
    return _model()


def _check_counts(dut, m: Model, where: str) -> None:
    got = int(dut.counts.value)
    if got != m.packed():
        cw = m.cw
        unpacked = [(got >> (i * cw)) & m.max for i in range(m.classes)]
        raise AssertionError(f"{where}: counts {unpacked} != model {m.counts}")


async def _step(dut, m: Model, *, inc: int | None = None, clear: bool = False) -> None:
    """Drive one cycle (at a falling edge), update the model, check at the next one."""
    dut.inc.value = int(inc is not None)
    dut.inc_index.value = 0 if inc is None else inc
    dut.clear.value = int(clear)
    if clear:
        m.clear()  # clear wins over inc in the same cycle
    elif inc is not None:
        m.inc(inc)
    await FallingEdge(dut.clk)
    dut.inc.value = 0
    dut.clear.value = 0
    _check_counts(dut, m, f"after inc={inc} clear={clear}")


async def _argmax(dut, m: Model, where: str) -> None:
    """start, then check: done after exactly CLASSES cycles, one cycle long; pred."""
    assert int(dut.done.value) == 0
    dut.start.value = 1
    await FallingEdge(dut.clk)  # start sampled at the rising edge just passed
    dut.start.value = 0
    cycles = 0
    while not int(dut.done.value):
        await FallingEdge(dut.clk)
        cycles += 1
        assert cycles <= m.classes + 4, f"{where}: no done"
    assert cycles == m.classes, f"{where}: done after {cycles} cycles, want {m.classes}"
    want = m.argmax()
    got = int(dut.pred.value)
    assert got == want, f"{where}: pred {got} != {want} for counts {m.counts}"
    await FallingEdge(dut.clk)
    assert int(dut.done.value) == 0, f"{where}: done longer than one cycle"
    assert int(dut.pred.value) == want, f"{where}: pred not held"
    _check_counts(dut, m, where)


@cocotb.test()
async def all_zero(dut):
    m = await _setup(dut)
    _check_counts(dut, m, "after reset")
    assert int(dut.done.value) == 0
    await _argmax(dut, m, "all zero")
    await _argmax(dut, m, "all zero again")


@cocotb.test()
async def saturation(dut):
    m = await _setup(dut)
    r = rng("saturation")
    target = r.randrange(m.classes)
    for _ in range(m.max + 3):
        await _step(dut, m, inc=target)
    assert m.counts[target] == m.max
    if m.classes > 1:  # a second class saturating too: tie at the maximum -> lowest index
        other = (target + 1 + r.randrange(m.classes - 1)) % m.classes
        for _ in range(m.max + 2):
            await _step(dut, m, inc=other)
    await _argmax(dut, m, "saturated")
    await _step(dut, m, clear=True)
    await _argmax(dut, m, "cleared")


@cocotb.test()
async def ties(dut):
    """All equal (nonzero) -> 0; a tie among a random subset -> its lowest index."""
    m = await _setup(dut)
    r = rng("ties")
    for _ in range(2):
        for i in range(m.classes):
            await _step(dut, m, inc=i)
    await _argmax(dut, m, "all equal")
    for rnd in range(6):
        await _step(dut, m, clear=True)
        top = r.randint(1, m.max)
        k = r.randint(1, m.classes)
        winners = r.sample(range(m.classes), k)
        plan = [top if i in winners else r.randint(0, top - 1) for i in range(m.classes)]
        order = [i for i, c in enumerate(plan) for _ in range(c)]
        r.shuffle(order)
        for i in order:
            await _step(dut, m, inc=i)
        assert m.argmax() == min(winners)
        await _argmax(dut, m, f"tie round {rnd} winners {sorted(winners)}")


@cocotb.test()
async def random_traffic(dut):
    """Random inc (including indices >= CLASSES), clear, idle cycles and argmax."""
    m = await _setup(dut)
    r = rng("random_traffic")
    span = 1 << m.iw
    for rnd in range(25):
        for _ in range(r.randint(0, 6 * m.max + 10)):
            x = r.random()
            if x < 0.02:
                await _step(dut, m, clear=True)
            elif x < 0.04:  # clear and inc together: clear wins
                await _step(dut, m, inc=r.randrange(span), clear=True)
            elif x < 0.15:
                await _step(dut, m)
            else:
                # favour a few classes so that maxima and ties are common
                idx = r.choice([0, m.classes - 1, r.randrange(span), r.randrange(m.classes)])
                await _step(dut, m, inc=idx)
        await _argmax(dut, m, f"round {rnd}")


@cocotb.test()
async def restart_and_reset(dut):
    """start during a scan restarts it; rst clears counts and stops the scan."""
    m = await _setup(dut)
    r = rng("restart")
    for _ in range(3 * m.classes):
        await _step(dut, m, inc=r.randrange(m.classes))
    if m.classes > 2:
        dut.start.value = 1
        await FallingEdge(dut.clk)
        dut.start.value = 0
        await FallingEdge(dut.clk)
        assert int(dut.done.value) == 0
    await _argmax(dut, m, "after restart")
    dut.start.value = 1
    await FallingEdge(dut.clk)
    dut.start.value = 0
    dut.rst.value = 1
    await FallingEdge(dut.clk)
    dut.rst.value = 0
    m.clear()
    for _ in range(m.classes + 2):
        assert int(dut.done.value) == 0, "scan must stop at rst"
        assert int(dut.pred.value) == 0
        _check_counts(dut, m, "after rst")
        await FallingEdge(dut.clk)
