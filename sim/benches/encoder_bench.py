"""cocotb bench for qsnn_encoder (driven by sim/test_encoder.py).

Images go in through the byte stream (random s_valid gaps; bytes offered while
``loaded`` must be refused), then ``start`` once per step: the events emitted (accepted on
ev_valid && ev_ready, ready random) must be exactly

* ENC = 0 (direct): the nonzero pixels (j, p_j, to_c = 1) in index order, from
  ``golden.encode`` (static input);
* ENC = 1 (rate): step t's spikes (j, 1, to_c = 0) of ``golden.encode`` -- i.e.
  ``qsnn.lfsr.rate_spikes(rate_table(LFSR_SEED, T, N_IN))``, checked to agree -- the LFSR
  continuing across the starts of one image and re-seeded for the next image after
  ``release_image`` (also when the previous image was released early); some images put
  their pixels at the rate compare's edge (r * PIXEL_MAX == p * 256) for one step;
* ENC = 2 (events): the 1-bits of frame t (``golden.encode``).

With H x W > 1 (a convolutional first layer) the image is (N_IN/(H·W), H, W) and every
event's index is the packed coordinate {c, y, x} of pixel j (``golden.encode`` on that
shape; the rate LFSR steps once per real pixel).

ev_valid/ev_index/ev_value/ev_to_c hold until accepted; with ev_ready high a scan takes
one cycle per pixel plus one (``busy``).
"""

from __future__ import annotations

import cocotb
import torch
from cocotb.triggers import FallingEdge

from benches.common import params, rng, seed, start
from qsnn.export import golden
from qsnn.export.ir import Encoding, Graph, InputEncoder
from qsnn.lfsr import rate_spikes, rate_table


class Enc:
    def __init__(self, dut) -> None:
        self.dut = dut
        hp = params()
        self.n_in, self.t = int(hp["N_IN"]), int(hp["T"])
        self.enc, self.pmax = int(hp["ENC"]), int(hp["PIXEL_MAX"])
        self.vb, self.lfsr_seed = int(hp["VB"]), int(hp["LFSR_SEED"])
        self.h, self.w = int(hp.get("H", 1)), int(hp.get("W", 1))
        self.shape = (self.n_in // (self.h * self.w), self.h, self.w)
        self.graph = Graph(
            name="enc", time_steps=self.t,
            input=InputEncoder(name="input", encoding=Encoding.from_code(self.enc).value,
                               shape=self.shape, pixel_max=self.pmax,
                               lfsr_seed=self.lfsr_seed),
            nodes=())
        self.cycle = 0

    async def setup(self) -> None:
        dut = self.dut
        for name in ("s_valid", "s_data", "release_image", "start", "ev_ready"):
            getattr(dut, name).value = 0
        await start(dut)
        await self.tick()

    async def tick(self) -> None:
        await FallingEdge(self.dut.clk)
        self.cycle += 1

    def index(self, j: int) -> int:
        """ev_index of pixel j: j, or with H·W > 1 the packed {c, y, x} of its (C, H, W)."""
        if self.h * self.w == 1:
            return j
        yw, xw = (self.h - 1).bit_length(), (self.w - 1).bit_length()
        c, rest = divmod(j, self.h * self.w)
        y, x = divmod(rest, self.w)
        return (c << (yw + xw)) | (y << xw) | x

    # -- golden ------------------------------------------------------------------------------
    def expected(self, image: list[int]) -> list[list[tuple[int, int, int]]]:
        """Per step (direct: one scan), the events (j, value, to_c) in order."""
        if self.enc == 2:
            x = torch.tensor(image, dtype=torch.int64).reshape(1, self.t, *self.shape)
        else:
            x = torch.tensor(image, dtype=torch.int64).reshape(1, *self.shape)
        h, static = golden.encode(self.graph, x)
        if self.enc == 0:
            assert static
            flat = h.reshape(-1).tolist()
            return [[(self.index(j), v, 1) for j, v in enumerate(flat) if v != 0]]
        assert not static
        if self.enc == 1:  # the same spikes straight from qsnn.lfsr
            table = rate_table(self.lfsr_seed, self.t, self.n_in)
            ref = rate_spikes(x.reshape(1, -1), table, self.pmax)
            assert torch.equal(ref.reshape(-1).to(torch.int64), h.reshape(-1)), "bench bug"
        frames = h.reshape(self.t, self.n_in).tolist()
        return [[(self.index(j), 1, 0) for j, v in enumerate(f) if v] for f in frames]

    def random_image(self, r, kind: str) -> list[int]:
        """Pixels (direct, rate) or T frames of 0/1 bytes (events)."""
        top = 1 if self.enc == 2 else self.pmax
        size = self.n_in * (self.t if self.enc == 2 else 1)
        if kind == "zero":
            return [0] * size
        if kind == "full":
            return [top] * size
        if kind == "extremes":
            return [r.choice([0, top]) for _ in range(size)]
        if kind == "boundary" and self.enc == 1:
            # pixels at the compare's edge for one step: r * PIXEL_MAX vs p * 256 equal
            # where possible (no spike), or one pixel level either side
            table = rate_table(self.lfsr_seed, self.t, self.n_in)
            out = []
            for j in range(size):
                edge = int(table[r.randrange(self.t), j]) * self.pmax / 256
                p = int(edge) + r.choice([0, 0, 1, -1]) if edge == int(edge) else \
                    r.choice([int(edge), int(edge) + 1])
                out.append(min(max(p, 0), top))
            return out
        density = r.random()
        return [r.randint(1, top) if r.random() < density else 0 for _ in range(size)]

    # -- stream, scan ------------------------------------------------------------------------
    async def load(self, r, data: list[int], where: str) -> None:
        dut = self.dut
        assert not int(dut.loaded.value), f"{where}: loaded before the image"
        i = 0
        while i < len(data):
            if r.random() < 0.3:
                dut.s_valid.value = 0
                dut.s_data.value = r.randrange(256)  # junk: ignored
                await self.tick()
                continue
            dut.s_valid.value = 1
            dut.s_data.value = data[i]
            ready = int(dut.s_ready.value)
            assert ready, f"{where}: s_ready low at byte {i} of {len(data)}"
            await self.tick()
            i += 1
            if i < len(data):
                assert not int(dut.loaded.value), f"{where}: loaded after {i} bytes"
        dut.s_valid.value = 0
        assert int(dut.loaded.value), f"{where}: not loaded after {len(data)} bytes"
        # bytes offered while loaded must be refused (they would overwrite the image)
        for _ in range(r.randint(0, 3)):
            dut.s_valid.value = 1
            dut.s_data.value = r.randrange(256) if self.enc != 2 else r.randrange(2)
            assert not int(dut.s_ready.value), f"{where}: s_ready while loaded"
            await self.tick()
        dut.s_valid.value = 0

    async def release(self) -> None:
        dut = self.dut
        dut.release_image.value = 1
        await self.tick()
        dut.release_image.value = 0
        assert not int(dut.loaded.value), "loaded after release_image"
        assert int(dut.s_ready.value), "s_ready low after release_image"

    async def scan(self, r, p_ready: float, where: str) -> list[tuple[int, int, int]]:
        dut = self.dut
        assert not int(dut.busy.value), f"{where}: busy before start"
        dut.start.value = 1
        await self.tick()
        dut.start.value = 0
        got, held, cycles = [], None, 0
        limit = 2 * self.n_in + 10 if p_ready >= 1 else 200 * self.n_in + 100
        while int(dut.busy.value):
            cycles += 1
            assert cycles <= limit, f"{where}: busy does not fall"
            valid = int(dut.ev_valid.value)
            ev = None
            if valid:
                ev = (int(dut.ev_index.value), int(dut.ev_value.value), int(dut.ev_to_c.value))
            if held is not None:
                assert ev == held, f"{where}: offered event changed from {held} to {ev} " \
                                   "before it was accepted"
            ready = int(r.random() < p_ready)
            dut.ev_ready.value = ready
            held = None
            if ev is not None:
                if ready:
                    got.append(ev)
                else:
                    held = ev
            await self.tick()
        dut.ev_ready.value = 0
        assert held is None, f"{where}: busy fell while {held} waited"
        assert not int(dut.ev_valid.value), f"{where}: ev_valid while idle"
        if p_ready >= 1:
            assert cycles == self.n_in + 1, (f"{where}: scan took {cycles} cycles with ev_ready "
                                             f"high, want N_IN + 1 = {self.n_in + 1}")
        return got

    async def image(self, r, kind: str, steps: int, where: str) -> None:
        data = self.random_image(r, kind)
        want = self.expected(data)
        await self.load(r, data, where)
        for _ in range(r.randint(0, 2)):
            await self.tick()
        scans = 2 if self.enc == 0 else steps  # direct: a second start scans again
        for s in range(scans):
            t = 0 if self.enc == 0 else s
            p_ready = r.choice([1.0, 1.0, 0.6, 0.2])
            got = await self.scan(r, p_ready, f"{where} step {t}")
            if got != want[t]:
                raise AssertionError(f"{where} step {t} (ready {p_ready}): events {got}, "
                                     f"golden {want[t]}; image {data}")
            for _ in range(r.randint(0, 2)):
                await self.tick()
        await self.release()


@cocotb.test()
async def images(dut):
    e = Enc(dut)
    await e.setup()
    r = rng("images")
    dut._log.info("seed %d: ENC %d, N_IN %d, T %d, PIXEL_MAX %d, seed %#x", seed(), e.enc,
                  e.n_in, e.t, e.pmax, e.lfsr_seed)
    kinds = ["zero", "full", "extremes"] + ["random"] * 9
    if e.enc == 1:
        kinds += ["boundary"] * 4
    r.shuffle(kinds)
    for i, kind in enumerate(kinds):
        # rate/events: every T steps, or (re-seed / frame restart check) an early release
        steps = e.t if r.random() < 0.7 else r.randint(1, e.t)
        await e.image(r, kind, steps, f"image {i} ({kind}, {steps} steps)")


@cocotb.test()
async def reset_mid_image(dut):
    """rst during a scan: the encoder forgets the image; the next one starts clean
    (rate: LFSR re-seeded by the first byte)."""
    e = Enc(dut)
    await e.setup()
    r = rng("reset")
    data = e.random_image(r, "random")
    await e.load(r, data, "first image")
    dut.start.value = 1
    await e.tick()
    dut.start.value = 0
    dut.ev_ready.value = 0
    for _ in range(r.randint(0, e.n_in)):
        await e.tick()
    dut.rst.value = 1
    await e.tick()
    dut.rst.value = 0
    await e.tick()
    assert not int(dut.busy.value) and not int(dut.loaded.value), "rst must clear the scan"
    await e.image(r, "random", e.t, "after rst")
