"""cocotb bench for qsnn_top_io (driven by sim/test_top_cores.py): the fixed port logic of
qsnn_top, combinational. Random inputs; every output against its documented rule:
info_* = the parameters, m_counts = each class's CW-bit counter zero-extended to OW bits,
w_ready = !running, w_take = w_valid && !running, w_loaded = loaders_done (W_RUNTIME = 1)
or 1.
"""

from __future__ import annotations

import cocotb
from cocotb.triggers import Timer

from benches.common import env_int, params, rng, seed


@cocotb.test()
async def port_rules(dut):
    hp = params()
    classes, cw, ow = int(hp["CLASSES"]), int(hp["CW"]), int(hp["OW"])
    runtime = int(hp["W_RUNTIME"])
    r = rng("top_io")
    dut._log.info("seed %d: %s", seed(), hp)
    for n in range(env_int("VECTORS", 300)):
        ins = {"running": r.randint(0, 1), "w_start": r.randint(0, 1),
               "w_data": r.randrange(256), "loaders_done": r.randint(0, 1),
               "w_valid": r.randint(0, 1)}
        counts = [r.choice([0, (1 << cw) - 1, r.randrange(1 << cw)]) for _ in range(classes)]
        for name, v in ins.items():
            getattr(dut, name).value = v
        dut.counts.value = sum(c << (i * cw) for i, c in enumerate(counts))
        await Timer(1, unit="ns")
        word = int(dut.m_counts.value)
        got = [(word >> (i * ow)) & ((1 << ow) - 1) for i in range(classes)]
        assert got == counts, f"vector {n}: m_counts {got}, want {counts}"
        assert word >> (classes * ow) == 0
        assert int(dut.w_ready.value) == 1 - ins["running"], f"vector {n}: w_ready"
        assert int(dut.w_take.value) == (ins["w_valid"] and not ins["running"]), \
            f"vector {n}: w_take"
        want = ins["loaders_done"] if runtime else 1
        assert int(dut.w_loaded.value) == want, f"vector {n}: w_loaded"
        assert int(dut.info_id.value) == int(hp["INFO_ID"])
        assert int(dut.info_in_bytes.value) == int(hp["IN_BYTES"])
        assert int(dut.info_w_bytes.value) == int(hp["W_BYTES"])
