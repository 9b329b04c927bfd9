"""cocotb bench for qsnn_spikebuf (driven by sim/test_spikebuf.py).

Masks are written chunk by chunk (random order, rewrites, idle cycles), then ``start``;
the emitted indices (accepted on ev_valid && ev_ready, ready random) must be exactly the
set bits in increasing index order. Also checked: ev_valid/ev_index hold until accepted,
``busy`` covers the walk, the masks persist for a second start, and with ev_ready held
high the walk takes one cycle per empty chunk and one per spike (the qsnn_spikebuf
header; ``qsnn.hw.cycles.buf``). Padded lanes (index >= N) are never set: the layer's
padded neurons cannot fire.

Convolutional layer (HO x WO > 1): chunk (Y·WO + X)·G + g holds channels g·P + p at
(Y, X); the walk emits in chunk order the packed {c, Y, X} (COORD = 1) or the flat index
c·HO·WO + Y·WO + X (COORD = 0, ``golden``'s flatten order, checked against
``torch.flatten`` of the map).
"""

from __future__ import annotations

import cocotb
import torch
from cocotb.triggers import FallingEdge

from benches.common import params, rng, seed, start


class Buf:
    def __init__(self, dut) -> None:
        self.dut = dut
        hp = params()
        self.n, self.p = int(hp["N"]), int(hp["P"])
        self.ho, self.wo = int(hp.get("HO", 1)), int(hp.get("WO", 1))
        self.coord = int(hp.get("COORD", 0))
        self.g = -(-self.n // self.p)
        self.k = self.ho * self.wo * self.g
        self.masks = [0] * self.k  # the model of the DUT's mask memory
        # flat index of neuron (c, Y, X): torch's row-major flatten of a [N, HO, WO] map
        self.flat = torch.arange(self.n * self.ho * self.wo).reshape(self.n, self.ho, self.wo)

    async def setup(self) -> None:
        dut = self.dut
        for name in ("wr_valid", "wr_chunk", "wr_mask", "start", "ev_ready"):
            getattr(dut, name).value = 0
        await start(dut)
        await FallingEdge(dut.clk)

    def lane_limit(self, c: int) -> int:
        """Lanes of chunk c that hold real neurons (channels g·P + p < N)."""
        return min(self.p, self.n - (c % self.g) * self.p)

    def index(self, chunk: int, lane: int) -> int:
        """The index the walk emits for a spike in ``lane`` of ``chunk``."""
        pos, g = divmod(chunk, self.g)
        y, x = divmod(pos, self.wo)
        c = g * self.p + lane
        if self.ho * self.wo > 1 and self.coord:
            yw, xw = (self.ho - 1).bit_length(), (self.wo - 1).bit_length()
            return (c << (yw + xw)) | (y << xw) | x
        return int(self.flat[c, y, x])

    def random_mask(self, r, c: int, kind: str) -> int:
        lanes = self.lane_limit(c)
        full = (1 << lanes) - 1
        if kind == "empty":
            return 0
        if kind == "full":
            return full
        if kind == "sparse":
            return sum(1 << i for i in range(lanes) if r.random() < 0.15)
        return r.randrange(full + 1)

    async def write(self, r, kind: str, idle: float = 0.3) -> None:
        """Write every chunk (random order, some twice, idle cycles in between)."""
        dut = self.dut
        order = list(range(self.k))
        r.shuffle(order)
        order += [r.randrange(self.k) for _ in range(r.randint(0, 2))]  # rewrites
        for c in order:
            while r.random() < idle:
                dut.wr_valid.value = 0
                dut.wr_chunk.value = r.randrange(1 << len(dut.wr_chunk))  # junk: ignored
                dut.wr_mask.value = r.randrange(1 << self.p)
                await FallingEdge(dut.clk)
            m = self.random_mask(r, c, kind)
            dut.wr_valid.value = 1
            dut.wr_chunk.value = c
            dut.wr_mask.value = m
            self.masks[c] = m
            await FallingEdge(dut.clk)
        dut.wr_valid.value = 0

    def expected(self) -> list[int]:
        return [self.index(c, i) for c in range(self.k) for i in range(self.p)
                if (self.masks[c] >> i) & 1]

    async def walk(self, r, p_ready: float, where: str) -> int:
        """start, collect indices under random ev_ready; returns the busy cycles."""
        dut = self.dut
        assert not int(dut.busy.value), f"{where}: busy before start"
        dut.start.value = 1
        await FallingEdge(dut.clk)
        dut.start.value = 0
        got: list[int] = []
        held = None  # (index) offered but not accepted in the previous cycle
        cycles = 0
        limit = 4 * (self.k + self.n) + 20 if p_ready >= 1 else 100 * (self.k + self.n) + 100
        while int(dut.busy.value):
            cycles += 1
            assert cycles <= limit, f"{where}: busy does not fall"
            valid = int(dut.ev_valid.value)
            if held is not None:
                assert valid, f"{where}: ev_valid dropped before index {held} was accepted"
                assert int(dut.ev_index.value) == held, (
                    f"{where}: ev_index changed from {held} to {int(dut.ev_index.value)} "
                    "while waiting for ev_ready")
            ready = int(r.random() < p_ready)
            dut.ev_ready.value = ready
            held = None
            if valid:
                idx = int(dut.ev_index.value)
                if ready:
                    got.append(idx)
                else:
                    held = idx
            await FallingEdge(dut.clk)
        assert held is None, f"{where}: busy fell while index {held} waited"
        assert not int(dut.ev_valid.value), f"{where}: ev_valid while idle"
        dut.ev_ready.value = 0
        want = self.expected()
        assert got == want, f"{where}: emitted {got}, want {want} (masks {self.masks})"
        if p_ready >= 1:
            want_cycles = sum(max(1, bin(m).count("1")) for m in self.masks)
            assert cycles == want_cycles, (f"{where}: walk took {cycles} cycles with ev_ready "
                                           f"high, want {want_cycles} (masks {self.masks})")
        return cycles


@cocotb.test()
async def random_masks(dut):
    b = Buf(dut)
    await b.setup()
    r = rng("random_masks")
    dut._log.info("seed %d: N = %d, P = %d, K = %d", seed(), b.n, b.p, b.k)
    for rnd in range(40):
        kind = r.choice(["random", "random", "sparse", "empty", "full"])
        await b.write(r, kind)
        for _ in range(r.randint(0, 2)):
            await FallingEdge(dut.clk)
        p_ready = r.choice([1.0, 0.7, 0.3, 0.05])
        await b.walk(r, p_ready, f"round {rnd} ({kind}, ready {p_ready})")
        if r.random() < 0.3:  # the masks persist: a second walk gives the same list
            await b.walk(r, r.choice([1.0, 0.5]), f"round {rnd} again")


@cocotb.test()
async def empty_and_full(dut):
    """No spikes: one cycle per chunk, nothing emitted; all spikes: every index."""
    b = Buf(dut)
    await b.setup()
    r = rng("empty_and_full")
    await b.write(r, "empty", idle=0)
    assert await b.walk(r, 1.0, "empty") == b.k
    await b.walk(r, 0.5, "empty, ready random")
    await b.write(r, "full", idle=0)
    assert await b.walk(r, 1.0, "full") == b.n * b.ho * b.wo
    await b.walk(r, 0.2, "full, ready random")
    # only the last neuron, then only the first
    b.masks = [0] * b.k
    for c, m in ((b.k - 1, 1 << ((b.n - 1) % b.p)), (0, 1)):
        for cc in range(b.k):
            dut.wr_valid.value = 1
            dut.wr_chunk.value = cc
            dut.wr_mask.value = m if cc == c else 0
            b.masks[cc] = m if cc == c else 0
            await FallingEdge(dut.clk)
        dut.wr_valid.value = 0
        await b.walk(r, 1.0, f"single spike in chunk {c}")
