"""cocotb bench for a convolutional qsnn_layer against ``qsnn.export.golden`` (driven by
sim/test_conv_layer.py).

The layer (conv weights [CO, CI, K, K], per-channel θ and bias) comes from the run's env
(``LAYER``); the same arrays were written as the core's ``$readmemh`` files in the layout
of ``qsnn.hw.convmap`` (fused kernel Wf or plain W, per the build's FUSED).

Per "image": ``cmd_clear``; [direct (C_RAM = 1): MAC events (c, y, x, p, to_c = 1),
``cmd_loadv``]; then steps of spike events (c, y, x, 1, to_c = 0) each followed by
``cmd_update``. The input of step t is x[t] = p + (events on (c, y, x) in step t), so the
reference is ``golden.lif_run(lif, golden.sum_pool(golden.weight_current(conv, x), Kp))``
(bias inside lif_run); the V memory (word (Y·WO + X)·G + g, lane p = neuron (g·P + p, Y,
X): ``convmap.unpack_map``) equals golden U[t] after step t's events, the C memory the
bias + pooled conv of p after the MAC, and the update's spike reports golden s[t].

Timing: an event is accepted at max(request, previous accept + nY·nX·G of the previous
event) (``convmap.event_cycles``), ``busy`` falls ACC_DRAIN cycles after the last event's
last chunk, passes take HO·WO·G + drain cycles. With ``M_SPRAM = 1`` (membranes in one
single-port ``qsnn_mem_spram``, word {C, V}) every chunk takes 2 cycles (event cost
2·nY·nX·G, passes 2·HO·WO·G + drain, spike reports every other cycle) and an event that
arrives the cycle after the previous event's last chunk issued waits one more cycle.
The driver wakes on ``ev_ready`` edges only (a few Python resumptions per event, none
per chunk); the update pass's spike reports are sampled per cycle.
"""

from __future__ import annotations

import cocotb
import numpy as np
import torch
from cocotb.triggers import FallingEdge, RisingEdge
from cocotb.utils import get_sim_time

from benches.common import CLK_NS, env_int, env_json, params, rng, seed, start
from qsnn.export import golden
from qsnn.export.ir import LIF, Conv2d, Reset
from qsnn.hw import convmap
from qsnn.hw.cycles import ACC_DRAIN, UPD_DRAIN


def geometry(hp: dict) -> convmap.ConvGeom:
    """The build's ConvGeom (its wb: the IR weight bits the bench draws)."""
    fused = bool(int(hp.get("FUSED", 1)))
    kp = int(hp.get("KP", 1))
    wb = int(hp["WB"]) - (2 * (kp.bit_length() - 1) if fused else 0)
    return convmap.ConvGeom(int(hp["N_IN"]), int(hp["H_IN"]), int(hp["W_IN"]), int(hp["KS"]),
                            int(hp.get("PAD", 0)), kp, int(hp["N"]), int(hp["P"]), fused, wb)


_T0 = [0]  # time of a rising edge (ps): the clock's phase in this test


def ps() -> int:
    return round(get_sim_time("ps"))  # (the "ns" float drifts: 26599.999999999985)


def now() -> int:
    """The current simulation time in clock periods (a rising edge is a whole number)."""
    return (ps() - _T0[0]) // (CLK_NS * 1000)


class ConvLayer:
    """Driver, monitor and golden bookkeeping of one convolutional qsnn_layer."""

    def __init__(self, dut) -> None:
        self.dut = dut
        hp = params()
        self.g = g = geometry(hp)
        self.mb, self.vb = int(hp["MB"]), int(hp["VB"])
        self.c_ram = bool(int(hp.get("C_RAM", 1)))
        self.ms = bool(int(hp.get("M_SPRAM", 0)))
        self.per_chunk = 2 if self.ms else 1   # stage-0 cycles per chunk
        self.field = 4 * -(-g.lanes * self.mb // 4)   # M_SPRAM: bits per {C, V} field
        self.hi, self.lo = (1 << (self.mb - 1)) - 1, -(1 << (self.mb - 1))
        self.yw = (g.h - 1).bit_length() if g.h > 1 else 0
        self.xw = (g.w - 1).bit_length() if g.w > 1 else 0
        lay = env_json("LAYER")
        self.kind = lay["kind"]
        self.w = np.array(lay["w"], np.int64)
        self.theta = np.array(lay["theta"], np.int64)
        self.bias = np.array(lay["bias"], np.int64)
        self.conv = Conv2d("conv", g.ci, g.co, g.k, g.pad, g.wb, self.w.astype(np.int8))
        self.conv_abs = Conv2d("conv", g.ci, g.co, g.k, g.pad, g.wb,
                               np.abs(self.w).astype(np.int8))
        self.lif = LIF("lif", (g.co, g.ho, g.wo), "mult" if int(hp["LEAK_MULT"]) else "shift",
                       int(hp["LEAK_PARAM"]), int(hp["FRAC_BITS"]),
                       Reset.from_code(int(hp["RESET_MODE"])).value, self.mb,
                       self.theta.astype(np.int32), self.bias.astype(np.int32))
        self.stats = {"events": 0, "chunks": 0, "spikes": 0, "silent": 0, "fwd_pairs": 0,
                      "sat_hi": 0, "sat_lo": 0, "corner_events": 0}

    # -- low level -------------------------------------------------------------------------
    async def setup(self) -> None:
        dut = self.dut
        for name in ("cmd_clear", "cmd_loadv", "cmd_update", "ev_valid", "ev_index",
                     "ev_value", "ev_to_c", "wl_we", "wl_addr", "wl_data"):
            getattr(dut, name).value = 0
        await start(dut)
        _T0[0] = ps()  # start() returns just past a rising edge
        await FallingEdge(dut.clk)
        if int(params().get("W_RUNTIME", 0)):
            await self.load_weights()

    async def load_weights(self) -> None:
        """W_RUNTIME = 1: write every weight word (convmap.weight_rows) through the load
        port in shuffled order, with idle cycles carrying junk in between."""
        dut, r = self.dut, rng("wload")
        rows = convmap.weight_rows(self.g, self.w)
        mask = (1 << self.g.weight_bits) - 1
        words = [sum((int(v) & mask) << (lane * self.g.weight_bits)
                     for lane, v in enumerate(row)) for row in rows]
        order = list(range(len(words)))
        r.shuffle(order)
        for a in order:
            if r.random() < 0.3:
                dut.wl_we.value = 0
                dut.wl_addr.value = r.randrange(len(words))
                dut.wl_data.value = r.randrange(1 << len(dut.wl_data))
                await FallingEdge(dut.clk)
            dut.wl_we.value = 1
            dut.wl_addr.value = a
            dut.wl_data.value = words[a]
            await FallingEdge(dut.clk)
        dut.wl_we.value = 0
        await FallingEdge(dut.clk)

    def index(self, c: int, y: int, x: int) -> int:
        """The packed event index {c, y, x}."""
        return (c << (self.yw + self.xw)) | (y << self.xw) | x

    def read_map(self, name: str) -> np.ndarray:
        """V or C memory as neurons [CO, HO, WO] (padded lanes checked to be idle)."""
        if self.ms:   # one word {C, V} per chunk in the qsnn_mem_spram
            h = self.dut.g_vspram.u_vmem.mem
            shift = self.field if name == "cmem" else 0
        else:
            h, shift = getattr(self.dut, name), 0
        mask = (1 << self.mb) - 1
        lanes = []
        for c in range(self.g.words):
            word = int(h[c].value) >> shift
            for lane in range(self.g.lanes):
                x = (word >> (lane * self.mb)) & mask
                lanes.append(x - ((x >> (self.mb - 1)) << self.mb))
        return convmap.unpack_map(self.g, np.array(lanes, np.int64))

    def check_map(self, name: str, want: np.ndarray, where: str) -> None:
        got = self.read_map(name)
        if not np.array_equal(got, want):
            bad = np.argwhere(got != want)[:6].tolist()
            raise AssertionError(f"{where}: {name} neurons (o, Y, X) {bad}: got "
                                 f"{[int(got[tuple(b)]) for b in bad]}, golden "
                                 f"{[int(want[tuple(b)]) for b in bad]}")

    async def wait_busy_falls(self, at: int, where: str) -> None:
        """``busy`` must fall exactly at rising edge ``at`` (clock periods)."""
        dut = self.dut
        if int(dut.busy.value):
            await FallingEdge(dut.busy)
        got = now()
        assert got == at, f"{where}: busy fell at {got - at:+d} cycles from the model"
        await FallingEdge(dut.clk)

    async def command(self, name: str) -> list[tuple[int, int, int]]:
        """A command pulse; returns the spike reports (cycle, chunk, mask) it produced."""
        dut = self.dut
        assert not int(dut.busy.value), f"cmd_{name} while busy"
        getattr(dut, f"cmd_{name}").value = 1
        await RisingEdge(dut.clk)
        t0 = now()
        await FallingEdge(dut.clk)
        getattr(dut, f"cmd_{name}").value = 0
        drain = UPD_DRAIN if name == "update" else ACC_DRAIN
        recs = []
        while int(dut.busy.value):
            if int(dut.spk_valid.value):
                recs.append((now(), int(dut.spk_chunk.value), int(dut.spk_mask.value)))
            await FallingEdge(dut.clk)
            assert now() - t0 <= self.per_chunk * self.g.words + 16, (
                f"cmd_{name}: busy does not fall")
        if int(dut.spk_valid.value):  # the last report comes with busy low
            recs.append((now(), int(dut.spk_chunk.value), int(dut.spk_mask.value)))
        busy = now() - t0  # falling edges with busy high
        want = self.per_chunk * self.g.words + drain
        assert busy == want, f"cmd_{name}: busy for {busy} cycles, want {want}"

        return recs

    async def send(self, events: list[tuple[int, int, int, int, int]], gaps: list[int],
                   r, where: str) -> None:
        """Drive events (c, y, x, value, to_c), ``gaps`` idle cycles before each; checks
        every accept cycle against the model and busy's fall after the last event."""
        dut = self.dut
        prev_accept, prev_cost = None, 0
        for (c, y, x, v, to_c), gap in zip(events, gaps, strict=True):
            if gap:
                dut.ev_valid.value = 0
                dut.ev_index.value = r.randrange(1 << len(dut.ev_index))  # junk: ignored
                dut.ev_value.value = r.randrange(1 << self.vb)
                for _ in range(gap):
                    await FallingEdge(dut.clk)
            dut.ev_valid.value = 1
            dut.ev_index.value = self.index(c, y, x)
            dut.ev_value.value = v
            dut.ev_to_c.value = to_c
            request = now() + 1  # the next rising edge
            while not int(dut.ev_ready.value):
                await RisingEdge(dut.ev_ready)
                await FallingEdge(dut.clk)
            await RisingEdge(dut.clk)
            accept = now()
            want = request if prev_accept is None else max(request, prev_accept + prev_cost)
            if self.ms and prev_accept is not None and want == prev_accept + prev_cost + 1:
                want += 1   # its first read would meet the last chunk's write
            assert accept == want, (f"{where}: event {(c, y, x, v, to_c)} (gap {gap}) "
                                    f"accepted {accept - want:+d} cycles from the model "
                                    f"(previous accept {prev_accept}, cost {prev_cost}, "
                                    f"request {request})")
            await FallingEdge(dut.clk)
            prev_accept = accept
            prev_cost = self.per_chunk * convmap.event_cycles(self.g, y, x)
            self.stats["events"] += 1
            self.stats["chunks"] += convmap.event_cycles(self.g, y, x)
        dut.ev_valid.value = 0
        if prev_accept is not None:
            await self.wait_busy_falls(prev_accept + prev_cost + ACC_DRAIN, f"{where}: events")

    def count_forwarding(self, events, gaps) -> None:
        """Chunk pairs the RTL must forward (same word, same to_c, issued ≤ 2 cycles
        apart), from the engine's issue stream (convmap.event_chunks)."""
        stream: list = []
        pad = [None] * (self.per_chunk - 1)  # M_SPRAM: a bubble after every chunk
        for (c, y, x, _v, to_c), gap in zip(events, gaps, strict=True):
            stream += [None] * (3 if gap else 0)  # a gap: no forwarding across it
            stream += [e for ch, _ in convmap.event_chunks(self.g, c, y, x)
                       for e in [(ch, to_c), *pad]]
        for i, s in enumerate(stream):
            if s is not None and (s in stream[max(0, i - 2):i]):
                self.stats["fwd_pairs"] += 1

    async def update(self, where: str) -> np.ndarray:
        """cmd_update; returns the reported spikes as [CO, HO, WO] (padded lanes idle)."""
        recs = await self.command("update")
        chunks = [c for _, c, _ in recs]
        assert chunks == list(range(self.g.words)), f"{where}: spk_chunk sequence {chunks}"
        cycles = [cy for cy, _, _ in recs]
        k = self.per_chunk
        assert cycles == list(range(cycles[0], cycles[0] + k * self.g.words, k)), (
            f"{where}: spike reports not {k} cycles apart")
        lanes = np.zeros(self.g.words * self.g.lanes, np.int64)
        for _, c, m in recs:
            for lane in range(self.g.lanes):
                lanes[c * self.g.lanes + lane] = (m >> lane) & 1
        assert not convmap.padded_lanes(self.g, lanes).any(), f"{where}: a padded lane fired"
        return convmap.unpack_map(self.g, lanes)

    # -- golden ------------------------------------------------------------------------------
    def pooled(self, node: Conv2d, x: np.ndarray) -> np.ndarray:
        """sum_pool(weight_current(node, x)) for maps x [N, CI, H, W]."""
        cur = golden.weight_current(node, torch.from_numpy(x))
        return golden.sum_pool(cur, self.g.kp).numpy()

    def golden(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Spikes and membranes [T, CO, HO, WO] of golden.lif_run on inputs x [T, CI, H, W]."""
        cur = torch.from_numpy(self.pooled(self.conv, x))
        spk, mem = golden.lif_run(self.lif, cur.unsqueeze(1), x.shape[0], False, True)
        return spk[:, 0].numpy().astype(np.int64), mem[:, 0].numpy()

    def counts(self, events) -> np.ndarray:
        x = np.zeros((self.g.ci, self.g.h, self.g.w), np.int64)
        for c, y, xx, v, _ in events:
            x[c, y, xx] += v
        return x

    def in_contract(self, mac, steps, mems) -> bool:
        """No partial sum of C or V leaves MB bits (then saturating == golden's clamp)."""
        bias = self.bias[:, None, None]
        theta = self.theta[:, None, None]
        c = bias + self.pooled(self.conv, self.counts(mac)[None])[0]
        if (np.abs(bias) + self.pooled(self.conv_abs, self.counts(mac)[None])[0]).max() > self.hi:
            return False
        prev = np.zeros_like(c)
        for t, evs in enumerate(steps):
            b = np.abs(prev) + np.abs(c) + theta + self.pooled(self.conv_abs,
                                                               self.counts(evs)[None])[0]
            if b.max() > self.hi:
                return False
            prev = mems[t]
        return True

    # -- stimulus ----------------------------------------------------------------------------
    def corners(self) -> list[tuple[int, int]]:
        g = self.g
        return sorted({(0, 0), (0, g.w - 1), (g.h - 1, 0), (g.h - 1, g.w - 1)})

    def edges(self) -> list[tuple[int, int]]:
        g = self.g
        return sorted({(y, x) for y in range(g.h) for x in range(g.w)
                       if y in (0, g.h - 1) or x in (0, g.w - 1)})

    def draw_step(self, r) -> list[tuple[int, int, int, int, int]]:
        g = self.g
        every = [(c, y, x) for c in range(g.ci) for y in range(g.h) for x in range(g.w)]
        kind = r.choice(["empty", "full", "one", "random", "random", "sparse", "dup",
                         "corners", "edges"])
        if kind == "empty":
            sel = []
        elif kind == "full":
            sel = every
        elif kind == "one":
            sel = [r.choice(every)]
        elif kind == "sparse":
            sel = [e for e in every if r.random() < 0.08]
        elif kind == "corners":
            sel = [(r.randrange(g.ci), y, x) for y, x in self.corners()]
        elif kind == "edges":
            sel = [(c, y, x) for c in range(g.ci) for y, x in self.edges() if r.random() < 0.5]
        else:
            sel = [e for e in every if r.random() < r.random()]
        if kind == "dup" or (sel and r.random() < 0.2):  # repeats right after themselves
            sel = [e for e in (sel or [r.choice(every)]) for _ in range(r.choice([1, 2, 3]))]
        elif r.random() < 0.3:
            r.shuffle(sel)
        return [(c, y, x, 1, 0) for c, y, x in sel]

    def draw_mac(self, r, scale: float) -> list[tuple[int, int, int, int, int]]:
        g = self.g
        vmax = (1 << self.vb) - 1
        pix = [(c, y, x) for c in range(g.ci) for y in range(g.h) for x in range(g.w)
               if r.random() < r.choice([0.0, 0.1, 0.5, 1.0])]
        pix += [(r.randrange(g.ci), y, x) for y, x in self.corners()]
        mac = []
        for c, y, x in pix:
            v = max(1, int(r.choice([vmax, 1, r.randint(1, vmax)]) * scale))
            mac.append((c, y, x, v, 1))
        if r.random() < 0.3:
            r.shuffle(mac)
        return mac

    def gaps(self, r, n: int) -> list[int]:
        return [0 if r.random() < 0.8 else r.randint(1, 3) for _ in range(n)]

    # -- one image ---------------------------------------------------------------------------
    async def image(self, r, name: str, direct: bool, steps: list | None = None) -> None:
        scale = 1.0
        for _attempt in range(1 if steps is not None else 200):
            mac = self.draw_mac(r, scale) if direct else []
            step_evs = steps if steps is not None else [self.draw_step(r)
                                                        for _ in range(r.randint(1, 5))]
            p = self.counts(mac)
            x = np.stack([p + self.counts(evs) for evs in step_evs] + [p])
            spikes, mems = self.golden(x)
            if self.kind == "saturate" or self.in_contract(mac, step_evs + [[]], mems):
                break
            scale *= 0.7
        else:
            raise AssertionError(f"{name}: no stimulus inside the widths contract")
        n = len(step_evs)
        self.stats["spikes"] += int(spikes[:n].sum())
        self.stats["silent"] += int((1 - spikes[:n]).sum())
        self.stats["sat_hi"] += int((mems == self.hi).sum())
        self.stats["sat_lo"] += int((mems == self.lo).sum())
        corner_set = set(self.corners())
        self.stats["corner_events"] += sum((e[1], e[2]) in corner_set
                                           for evs in step_evs for e in evs)
        bias_map = np.broadcast_to(self.bias[:, None, None], mems.shape[1:])

        await self.command("clear")
        self.check_map("vmem", bias_map, f"{name} after clear")
        if direct:
            gaps = self.gaps(r, len(mac))
            self.count_forwarding(mac, gaps)
            await self.send(mac, gaps, r, f"{name} MAC")
            c = self.bias[:, None, None] + self.pooled(self.conv, p[None])[0]
            self.check_map("cmem", c, f"{name} after MAC")
            await self.command("loadv")
            self.check_map("vmem", c, f"{name} after loadv")
        for t, evs in enumerate(step_evs):
            where = f"{name} step {t} ({len(evs)} events)"
            gaps = self.gaps(r, len(evs))
            self.count_forwarding(evs, gaps)
            await self.send(evs, gaps, r, where)
            self.check_map("vmem", mems[t], f"{where}: V before the update (golden U[t])")
            got = await self.update(where)
            if not np.array_equal(got, spikes[t]):
                bad = np.argwhere(got != spikes[t])[:6].tolist()
                raise AssertionError(f"{where}: spikes differ at (o, Y, X) {bad}")
        self.check_map("vmem", mems[n], f"{name}: V after the last update (golden U[T] "
                       "of a step without events)")
        if direct:
            self.check_map("cmem", c, f"{name}: C after the steps")


@cocotb.test()
async def images_vs_golden(dut):
    """Random images: [direct MAC (C_RAM builds), loadv,] steps of random spike events."""
    lay = ConvLayer(dut)
    await lay.setup()
    r = rng("images")
    n = env_int("IMAGES", 4)
    dut._log.info("seed %d: %s layer %s, %d images", seed(), lay.kind, lay.g, n)
    for i in range(n):
        direct = lay.c_ram and lay.kind == "random" and i % 2 == 0
        await lay.image(r, f"image {i} ({'direct' if direct else 'hidden'})", direct)
    dut._log.info("stats: %s", lay.stats)
    assert lay.stats["spikes"] and lay.stats["silent"], f"no spiking contrast: {lay.stats}"
    if lay.kind == "saturate":
        assert lay.stats["sat_hi"] and lay.stats["sat_lo"], f"no saturation: {lay.stats}"
    g = lay.g
    shortest = min(convmap.event_cycles(g, y, x) for y in range(g.h) for x in range(g.w))
    lim = 1 if lay.ms else 2   # chunks a chunk can repeat after within 2 cycles
    if shortest <= lim or (g.div > 1 and g.groups <= lim):
        assert lay.stats["fwd_pairs"], f"forwarding not exercised: {lay.stats}"


@cocotb.test()
async def corner_steps(dut):
    """Fixed steps: each corner alone, every edge pixel, the full map, one corner event
    repeated back to back, and the full map twice in a row (repeated chunk addresses)."""
    lay = ConvLayer(dut)
    await lay.setup()
    if lay.kind != "random":
        return
    g = lay.g
    full = [(c, y, x, 1, 0) for c in range(g.ci) for y in range(g.h) for x in range(g.w)]
    steps = [[(g.ci - 1, y, x, 1, 0)] for y, x in lay.corners()]
    steps += [[(c, y, x, 1, 0) for c in range(g.ci) for y, x in lay.edges()], full,
              [(0, 0, 0, 1, 0)] * 4, [(0, g.h - 1, g.w - 1, 1, 0)] * 3,
              [e for e in full for _ in range(2)], [], full[::-1]]
    await lay.image(rng("corners"), "corner steps", False, steps)
    assert lay.stats["corner_events"] >= 4
