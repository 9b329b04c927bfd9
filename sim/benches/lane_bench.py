"""cocotb bench for qsnn_lif_lane (through the ``qsnn_lane_tb`` wrapper of sim/test_lane.py):
every lane (one per leak form x reset mode) against ``qsnn.export.golden``.

Expected values, per vector (v, c, theta) and lane config:

* ``golden.lif_step`` (spec §1, one step) on int64 tensors with a small ``ir.LIF`` node:
  the lane's update (docs/hardware.md) is one step from U[t-1] = v with current c
  (bias inside c): s = ``golden.fires(v, theta)`` (the reset r of that step) and
  v_next = U[t];
* and, for theta >= 0, ``golden.lif_run`` over two steps with currents (v, c): step 0
  gives U[0] = v (U[-1] = 0), step 1 gives U[1] = the lane's v_next and s[0] = the
  lane's s (the reset of step 1 is s[0]). Both must agree with each other and the RTL.

Pipelined: one vector of one width (``MB`` from the run's env) enters per clock; its
(s, v_next) must appear exactly LATENCY = 2 clocks later (back-to-back vectors also
check that the stages do not mix neurons).
"""

from __future__ import annotations

import cocotb
import numpy as np
import torch
from cocotb.clock import Clock
from cocotb.triggers import FallingEdge

from benches.common import CLK_NS, env_int, env_json, rng, seed
from qsnn.export import golden
from qsnn.export.ir import LIF, Leak, Reset

LATENCY = 2


def _node(cfg, mb: int, theta: np.ndarray) -> LIF:
    mult, param, frac, reset = cfg
    return LIF(name="lane", shape=(len(theta),), leak=Leak.from_code(mult).value,
               leak_param=int(param), frac_bits=int(frac),
               reset=Reset.from_code(reset).value, membrane_bits=mb,
               theta=theta.astype(np.int64))


def expected_step(cfg, mb: int, v: torch.Tensor, c: torch.Tensor, th: torch.Tensor):
    """(s, v_next) from golden.lif_step (any theta)."""
    node = _node(cfg, mb, th.numpy())
    _, v_next = golden.lif_step(node, v, c, th)
    return golden.fires(v, th), v_next


def expected_run(cfg, mb: int, v: torch.Tensor, c: torch.Tensor, th: torch.Tensor):
    """(s, v_next) from golden.lif_run over two steps (needs theta >= 0: U[-1] = 0 must
    not count as a reset)."""
    node = _node(cfg, mb, th.numpy())
    current = torch.stack([v, c]).unsqueeze(1)  # [T=2, B=1, neurons]
    spikes, mems = golden.lif_run(node, current, 2, static=False, record=True)
    assert torch.equal(mems[0, 0], v), "test construction: step 0 must give U[0] = v"
    return spikes[0, 0].bool(), mems[1, 0]


def _vectors(mb: int, n_random: int, r) -> list[tuple[int, int, int]]:
    lo, hi = -(1 << (mb - 1)), (1 << (mb - 1)) - 1
    vecs = []
    thetas = {1, 2, hi - 1, hi, r.randint(1, hi), r.randint(1, max(1, hi // 8))}
    thetas = sorted(x for x in thetas if 1 <= x <= hi)
    for th in thetas:
        vs = {lo, lo + 1, -th, -1, 0, 1, th - 1, th, th + 1, hi - 1, hi}
        cs = {lo, lo + 1, -1, 0, 1, hi - 1, hi, r.randint(lo, hi)}
        for v in sorted(x for x in vs if lo <= x <= hi):
            for c in sorted(cs):
                vecs.append((v, c, th))
    for _ in range(n_random):
        x = r.random()
        if x < 0.8:  # the contract: theta >= 1
            th = r.choice([r.randint(1, hi), r.randint(1, max(1, hi >> r.randint(0, mb - 1)))])
        else:  # any theta (the lane is a plain signed compare)
            th = r.randint(lo, hi)
        if r.random() < 0.3:  # around the threshold
            v = max(lo, min(hi, th + r.randint(-3, 3)))
        else:
            v = r.randint(lo, hi)
        c = r.randint(lo, hi) if r.random() < 0.7 else r.choice([lo, hi, 0])
        vecs.append((v, c, th))
    return vecs


@cocotb.test()
async def lanes_vs_golden(dut):
    mb = env_int("MB")
    configs = [tuple(c) for c in env_json("CONFIGS")]
    n = len(configs)
    r = rng("lanes")
    vecs = _vectors(mb, env_int("VECTORS", 2000), r)
    dut._log.info("seed %d: %d vectors x %d lanes, MB = %d", seed(), len(vecs), n, mb)
    v = torch.tensor([x[0] for x in vecs], dtype=torch.int64)
    c = torch.tensor([x[1] for x in vecs], dtype=torch.int64)
    th = torch.tensor([x[2] for x in vecs], dtype=torch.int64)
    want = []
    nonneg = th >= 0
    for cfg in configs:
        s1, vn1 = expected_step(cfg, mb, v, c, th)
        s2, vn2 = expected_run(cfg, mb, v[nonneg], c[nonneg], th[nonneg])
        assert torch.equal(s1[nonneg], s2) and torch.equal(vn1[nonneg], vn2), (
            f"golden.lif_step and golden.lif_run disagree for {cfg} (bench bug)")
        want.append((s1.tolist(), vn1.tolist()))

    mask = (1 << mb) - 1
    sat_hits = {"hi": 0, "lo": 0}
    hi, lo = (1 << (mb - 1)) - 1, -(1 << (mb - 1))
    errors = []
    h_v, h_c, h_th = (getattr(dut, f"{name}_{mb}") for name in ("v", "c", "theta"))
    h_s, h_vn = getattr(dut, f"s_{mb}"), getattr(dut, f"v_next_{mb}")
    cocotb.start_soon(Clock(dut.clk, CLK_NS, unit="ns").start())
    await FallingEdge(dut.clk)
    for step in range(len(vecs) + LATENCY):
        if step < len(vecs):
            vv, cc, tt = vecs[step]
            h_v.value = vv & mask
            h_c.value = cc & mask
            h_th.value = tt & mask
        await FallingEdge(dut.clk)
        k = step - LATENCY + 1   # the vector whose result is on the outputs now
        if k < 0:
            continue
        if k >= len(vecs):
            break
        vv, cc, tt = vecs[k]
        s_bits = int(h_s.value)
        vn_bits = int(h_vn.value)
        for i, cfg in enumerate(configs):
            ws, wv = want[i][0][k], want[i][1][k]
            gs = (s_bits >> i) & 1
            gv = (vn_bits >> (i * mb)) & mask
            gv -= (gv >> (mb - 1)) << mb
            sat_hits["hi"] += wv == hi
            sat_hits["lo"] += wv == lo
            if gs != ws or gv != wv:
                errors.append(f"lane {cfg} (LEAK_MULT, LEAK_PARAM, FRAC_BITS, RESET_MODE): "
                              f"v={vv} c={cc} theta={tt}: got s={gs} v_next={gv}, "
                              f"golden s={int(ws)} v_next={wv}")
    assert sat_hits["hi"] and sat_hits["lo"], f"saturation not exercised: {sat_hits}"
    assert not errors, f"{len(errors)} mismatches, first:\n" + "\n".join(errors[:10])
