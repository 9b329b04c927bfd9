"""cocotb bench for qsnn_layer against ``qsnn.export.golden`` (driven by sim/test_layer.py).

The layer (weights, theta, bias) comes from the run's env (``LAYER``); the same arrays
were written as the core's ``$readmemh`` files by ``qsnn.hw.generate.layer_mems``.

Per "image": ``cmd_clear``; [direct: MAC events (j, p_j, to_c = 1), ``cmd_loadv``];
then T steps of spike events (j, 1, to_c = 0) followed by ``cmd_update``. The input of
step t is x[t] = p + (number of events on j in step t), so the golden reference is
``golden.lif_run(lif, golden.weight_current(linear, x), ...)`` (bias inside lif_run;
every step is ``golden.lif_step``):

* after the MAC phase the C memory equals bias + ``weight_current(linear, p)``;
* after step t's events (before the update) the V memory equals golden U[t], and after
  the last update it equals U[T] of one more golden step without events (x = p);
* the update's spk_valid/spk_chunk/spk_mask reports equal golden s[t] (chunks 0..K-1 in
  order, padded lanes silent).

Stimuli of the ``random`` layer stay inside the widths contract (no partial sum leaves
MB bits, checked here from the golden membranes); the ``saturate`` layer has single-sign
neurons, where the saturating accumulator equals the golden clamp at both ends.
Handshake and timing are checked too: clear/loadv keep ``busy`` for K + ACC_DRAIN cycles
and update for K + UPD_DRAIN (``qsnn.hw.cycles``), an event is accepted at
max(request, previous accept + K), and ``busy`` falls K + ACC_DRAIN cycles after the
last accept. With ``W_RUNTIME = 1`` the bench first writes the weights through the load
port (shuffled addresses, junk on the port while wl_we is low).
"""

from __future__ import annotations

import cocotb
import numpy as np
import torch
from cocotb.triggers import FallingEdge

from benches.common import env_int, env_json, params, rng, seed, start
from qsnn.export import golden
from qsnn.export.ir import LIF, Leak, Linear, Reset
from qsnn.hw.cycles import ACC_DRAIN, UPD_DRAIN


class Layer:
    """Driver, monitor and golden bookkeeping of one qsnn_layer."""

    def __init__(self, dut) -> None:
        self.dut = dut
        hp = params()
        self.n_in, self.n, self.p = int(hp["N_IN"]), int(hp["N"]), int(hp["P"])
        self.k = -(-self.n // self.p)
        self.mb, self.vb, self.wb = int(hp["MB"]), int(hp["VB"]), int(hp["WB"])
        self.hi, self.lo = (1 << (self.mb - 1)) - 1, -(1 << (self.mb - 1))
        lay = env_json("LAYER")
        self.kind = lay["kind"]
        self.w = np.array(lay["w"], np.int64)
        self.theta = np.array(lay["theta"], np.int64)
        self.bias = np.array(lay["bias"], np.int64)
        self.lin = Linear("fc", self.n_in, self.n, self.wb, self.w.astype(np.int8))
        self.lif = LIF("lif", (self.n,), Leak.from_code(hp["LEAK_MULT"]).value,
                       int(hp["LEAK_PARAM"]), int(hp["FRAC_BITS"]),
                       Reset.from_code(hp["RESET_MODE"]).value, self.mb,
                       self.theta.astype(np.int32), self.bias.astype(np.int32))
        self.cycle = 0
        self.spk: list[tuple[int, int, int]] = []  # (cycle, chunk, mask) of spk_valid
        self.stats = {"spikes": 0, "silent": 0, "fwd_pairs": 0, "sat_hi": 0, "sat_lo": 0,
                      "events": 0}

    # -- low level -------------------------------------------------------------------------
    async def setup(self) -> None:
        dut = self.dut
        for name in ("cmd_clear", "cmd_loadv", "cmd_update", "ev_valid", "ev_index",
                     "ev_value", "ev_to_c", "wl_we", "wl_addr", "wl_data"):
            getattr(dut, name).value = 0
        await start(dut)
        await self.tick()
        if int(params().get("W_RUNTIME", 0)):
            await self.load_weights()

    async def load_weights(self) -> None:
        """Write every W word (word j*K + c: lane p = W[c*P + p][j]) through the load
        port, in shuffled order with idle cycles carrying junk in between."""
        dut, r = self.dut, rng("wload")
        wmask = (1 << self.wb) - 1
        words = []
        for j in range(self.n_in):
            for c in range(self.k):
                word = 0
                for lane in range(self.p):
                    n = c * self.p + lane
                    if n < self.n:
                        word |= (int(self.w[n, j]) & wmask) << (lane * self.wb)
                words.append(word)
        order = list(range(len(words)))
        r.shuffle(order)
        for a in order:
            if r.random() < 0.3:
                dut.wl_we.value = 0
                dut.wl_addr.value = r.randrange(len(words))
                dut.wl_data.value = r.randrange(1 << (self.p * self.wb))
                await self.tick()
            dut.wl_we.value = 1
            dut.wl_addr.value = a
            dut.wl_data.value = words[a]
            await self.tick()
        dut.wl_we.value = 0
        await self.tick()

    async def tick(self) -> None:
        """Next falling edge; records a spike report sampled there."""
        dut = self.dut
        await FallingEdge(dut.clk)
        self.cycle += 1
        if int(dut.spk_valid.value):
            self.spk.append((self.cycle, int(dut.spk_chunk.value), int(dut.spk_mask.value)))

    def read_mem(self, name: str) -> np.ndarray:
        """A K x (P*MB) memory of the DUT as K*P signed lane values."""
        h = getattr(self.dut, name)
        mask = (1 << self.mb) - 1
        out = []
        for c in range(self.k):
            word = int(h[c].value)
            for lane in range(self.p):
                x = (word >> (lane * self.mb)) & mask
                out.append(x - ((x >> (self.mb - 1)) << self.mb))
        return np.array(out, np.int64)

    def check_mem(self, name: str, want: np.ndarray, where: str) -> None:
        got = self.read_mem(name)
        pad = np.zeros(self.k * self.p, np.int64)
        pad[: self.n] = want
        if not np.array_equal(got, pad):
            bad = np.nonzero(got != pad)[0].tolist()
            raise AssertionError(f"{where}: {name} neurons {bad}: got {got[bad].tolist()}, "
                                 f"golden {pad[bad].tolist()}")

    async def wait_idle(self, want_cycles: int | None, where: str) -> None:
        """Count the falling edges with busy = 1 (compared with ``want_cycles``)."""
        cycles = 0
        while int(self.dut.busy.value):
            cycles += 1
            assert cycles <= 4 * self.k + 16, f"{where}: busy does not fall"
            await self.tick()
        if want_cycles is not None:
            assert cycles == want_cycles, f"{where}: busy for {cycles} cycles, want {want_cycles}"

    async def command(self, name: str) -> None:
        dut = self.dut
        assert not int(dut.busy.value), f"cmd_{name} while busy"
        getattr(dut, f"cmd_{name}").value = 1
        await self.tick()
        getattr(dut, f"cmd_{name}").value = 0
        drain = UPD_DRAIN if name == "update" else ACC_DRAIN
        await self.wait_idle(self.k + drain, f"cmd_{name}")

    async def send(self, events: list[tuple[int, int, int]], gaps: list[int], r,
                   where: str) -> None:
        """Drive events (j, value, to_c) with ``gaps`` idle cycles before each one."""
        dut = self.dut
        prev_accept, prev = None, None
        for (j, v, to_c), gap in zip(events, gaps, strict=True):
            for _ in range(gap):
                dut.ev_valid.value = 0
                dut.ev_index.value = r.randrange(1 << len(dut.ev_index))  # junk: ignored
                dut.ev_value.value = r.randrange(1 << self.vb)
                dut.ev_to_c.value = r.randrange(2)
                await self.tick()
            dut.ev_valid.value = 1
            dut.ev_index.value = j
            dut.ev_value.value = v
            dut.ev_to_c.value = to_c
            request = self.cycle
            while True:
                ready = int(dut.ev_ready.value)  # a function of registers (no command)
                await self.tick()
                if ready:
                    break
                assert self.cycle - request <= self.k + 2, f"{where}: event {j} never accepted"
            accept = self.cycle
            want = request + 1 if prev_accept is None else max(request + 1, prev_accept + self.k)
            assert accept == want, (f"{where}: event {(j, v, to_c)} accepted at cycle "
                                    f"{accept - request} after the request, want "
                                    f"{want - request} (K = {self.k})")
            # the chunk is revisited before its write reached the RAM: a forwarding path
            if prev is not None and gap + self.k <= 2 and prev[2] == to_c:
                self.stats["fwd_pairs"] += 1
            prev_accept, prev = accept, (j, v, to_c)
            self.stats["events"] += 1
        dut.ev_valid.value = 0
        if prev_accept is not None:
            await self.wait_idle(self.k + ACC_DRAIN - (self.cycle - prev_accept),
                                 f"{where}: events")

    async def update(self, where: str) -> np.ndarray:
        """cmd_update; returns the reported spikes (K*P lanes)."""
        n0 = len(self.spk)
        await self.command("update")
        await self.tick()  # nothing more may follow
        recs = self.spk[n0:]
        chunks = [c for _, c, _ in recs]
        assert chunks == list(range(self.k)), f"{where}: spk_chunk sequence {chunks}"
        cycles = [cy for cy, _, _ in recs]
        assert cycles == list(range(cycles[0], cycles[0] + self.k)), (
            f"{where}: spike reports not on consecutive cycles: {cycles}")
        out = np.zeros(self.k * self.p, np.int64)
        for _, c, m in recs:
            for lane in range(self.p):
                out[c * self.p + lane] = (m >> lane) & 1
        return out

    # -- stimulus and golden -----------------------------------------------------------------
    def golden(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Spikes and membranes [T, N] of golden.lif_run on inputs x [T, N_IN]."""
        cur = golden.weight_current(self.lin, torch.from_numpy(x))
        spk, mem = golden.lif_run(self.lif, cur.unsqueeze(1), x.shape[0], False, True)
        return spk[:, 0].numpy().astype(np.int64), mem[:, 0].numpy()

    def in_contract(self, mac: list, steps: list[list], mems: np.ndarray) -> bool:
        """No partial sum of C or V leaves MB bits (then saturating == golden's clamp)."""
        aw = np.abs(self.w)
        c_bound = np.abs(self.bias) + sum((v * aw[:, j] for j, v, _ in mac), np.zeros(self.n))
        c = self.bias + golden.weight_current(self.lin, torch.from_numpy(
            self._x([(j, v) for j, v, _ in mac])[None]))[0].numpy()
        if c_bound.max() > self.hi:
            return False
        prev = np.zeros(self.n, np.int64)
        for t, evs in enumerate(steps):
            b = np.abs(prev) + np.abs(c) + self.theta + sum(
                (v * aw[:, j] for j, v, _ in evs), np.zeros(self.n))
            if b.max() > self.hi:
                return False
            prev = mems[t]
        return True

    def _x(self, pairs) -> np.ndarray:
        x = np.zeros(self.n_in, np.int64)
        for j, v in pairs:
            x[j] += v
        return x

    def draw(self, r, direct: bool, steps: int, scale: float):
        """(mac events, per-step events): events are (j, value, to_c)."""
        vmax = (1 << self.vb) - 1
        mac = []
        if direct:
            nz = r.choice([0, 1, 2, 3, self.n_in, r.randint(0, self.n_in)])
            pix = sorted(r.sample(range(self.n_in), nz))
            for j in pix:
                v = max(1, int(r.choice([vmax, 1, r.randint(1, vmax)]) * scale))
                if v > 1 and r.random() < 0.3:  # one pixel as two back-to-back events
                    a = r.randint(1, v - 1)
                    mac += [(j, a, 1), (j, v - a, 1)]
                else:
                    mac.append((j, v, 1))
            if r.random() < 0.3:
                r.shuffle(mac)
        out = []
        for _ in range(steps):
            kind = r.choice(["empty", "full", "one", "random", "random", "dup"])
            if kind == "empty":
                idx = []
            elif kind == "full":
                idx = list(range(self.n_in))
            elif kind == "one":
                idx = [r.randrange(self.n_in)]
            else:
                idx = sorted(r.sample(range(self.n_in), r.randint(0, self.n_in)))
            if kind == "dup" and idx:  # the same input again, right after itself
                extra = r.sample(idx, r.randint(1, len(idx)))
                idx = sorted(idx + extra)
            if r.random() < 0.25:
                r.shuffle(idx)
            out.append([(j, 1, 0) for j in idx])
        return mac, out

    def gaps(self, r, n: int) -> list[int]:
        return [0 if r.random() < 0.75 else r.randint(1, 3) for _ in range(n)]

    # -- one image ---------------------------------------------------------------------------
    async def image(self, r, name: str, direct: bool, steps: int) -> None:
        scale = 1.0
        for _attempt in range(200):
            mac, step_evs = self.draw(r, direct, steps, scale)
            p = self._x([(j, v) for j, v, _ in mac])
            # one extra step without events: its U is V right after the last update
            x = np.stack([p + self._x([(j, v) for j, v, _ in evs]) for evs in step_evs]
                         + [p])
            spikes, mems = self.golden(x)
            if self.kind == "saturate" or self.in_contract(mac, step_evs + [[]], mems):
                break
            scale *= 0.7
        else:
            raise AssertionError(f"{name}: no stimulus inside the widths contract")
        self.stats["spikes"] += int(spikes[:steps].sum())
        self.stats["silent"] += int((1 - spikes[:steps]).sum())
        self.stats["sat_hi"] += int((mems == self.hi).sum())
        self.stats["sat_lo"] += int((mems == self.lo).sum())

        await self.command("clear")
        self.check_mem("cmem", self.bias, f"{name} after clear")
        self.check_mem("vmem", self.bias, f"{name} after clear")
        if direct:
            await self.send(mac, self.gaps(r, len(mac)), r, f"{name} MAC")
            c = self.bias + golden.weight_current(self.lin, torch.from_numpy(p[None]))[0].numpy()
            self.check_mem("cmem", c, f"{name} after MAC {mac}")
            await self.command("loadv")
            self.check_mem("vmem", c, f"{name} after loadv")
            self.check_mem("cmem", c, f"{name} after loadv")
        for t, evs in enumerate(step_evs):
            where = f"{name} step {t} events {[e[0] for e in evs]}"
            await self.send(evs, self.gaps(r, len(evs)), r, where)
            self.check_mem("vmem", mems[t], f"{where}: V before the update (golden U[t])")
            got = await self.update(where)
            want = np.zeros(self.k * self.p, np.int64)
            want[: self.n] = spikes[t]
            if not np.array_equal(got, want):
                raise AssertionError(f"{where}: spikes {np.nonzero(got)[0].tolist()}, golden "
                                     f"{np.nonzero(want)[0].tolist()} (U = {mems[t].tolist()}, "
                                     f"theta = {self.theta.tolist()})")
        self.check_mem("vmem", mems[steps], f"{name}: V after the last update (golden U[T] "
                       "of a step without events)")


@cocotb.test()
async def images_vs_golden(dut):
    """Random images (direct MAC + steps, or hidden-layer steps only) back to back."""
    lay = Layer(dut)
    await lay.setup()
    r = rng("images")
    n = env_int("IMAGES", 6)
    dut._log.info("seed %d: %s layer, K = %d, %d images", seed(), lay.kind, lay.k, n)
    for i in range(n):
        direct = lay.kind == "random" and (i % 2 == 0)
        await lay.image(r, f"image {i} ({'direct' if direct else 'hidden'})", direct,
                        r.randint(1, 6))
    dut._log.info("stats: %s", lay.stats)
    assert lay.stats["spikes"] and lay.stats["silent"], f"no spiking contrast: {lay.stats}"
    if lay.kind == "saturate":
        assert lay.stats["sat_hi"] and lay.stats["sat_lo"], f"no saturation: {lay.stats}"
    if lay.k <= 2:
        assert lay.stats["fwd_pairs"], "forwarding (a chunk revisited within 2 cycles) not " \
                                       "exercised"


@cocotb.test()
async def corner_steps(dut):
    """Fixed step patterns: empty, full, one input repeated back to back, every input
    twice; directly after clear (hidden layer) and after a full-scale direct MAC."""
    lay = Layer(dut)
    await lay.setup()
    r = rng("corners")
    if lay.kind != "random":
        return
    full = [(j, 1, 0) for j in range(lay.n_in)]
    patterns = [[], full, [(0, 1, 0)] * 3, [], full + full, sorted(full + full),
                [(lay.n_in - 1, 1, 0)], full[::-1]]
    x = np.stack([lay._x([(j, v) for j, v, _ in evs]) for evs in patterns])
    spikes, mems = lay.golden(x)
    assert lay.in_contract([], patterns, mems), "corner pattern outside the widths contract"
    await lay.command("clear")
    for t, evs in enumerate(patterns):
        where = f"corner step {t}"
        await lay.send(evs, [0] * len(evs), r, where)
        lay.check_mem("vmem", mems[t], where)
        got = await lay.update(where)
        assert np.array_equal(got[: lay.n], spikes[t]), f"{where}: {got} != {spikes[t]}"
        assert not got[lay.n:].any(), f"{where}: a padded lane fired"
    # the largest MAC a neuron can take inside the contract: one pixel at full value
    vmax = (1 << lay.vb) - 1
    for j in (0, lay.n_in - 1):
        mac = [(j, vmax, 1)]
        p = lay._x([(j, vmax)])
        c = lay.bias + golden.weight_current(lay.lin, torch.from_numpy(p[None]))[0].numpy()
        if np.abs(lay.bias).max() + vmax * np.abs(lay.w[:, j]).max() > lay.hi:
            continue
        await lay.command("clear")
        await lay.send(mac, [0], r, f"full-scale MAC on input {j}")
        lay.check_mem("cmem", c, f"full-scale MAC on input {j}")
