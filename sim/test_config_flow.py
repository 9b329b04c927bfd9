"""The shipped convolutional configs through the hardware flow, unchanged: ``qsnn hw`` ->
``qsnn verify`` -> the bitstream's fit check -> the host's ``qsnn run`` session over the
UART (the exact request bytes of :mod:`qsnn.hw.host`, replayed into ``qsnn_uart_top``).

Each network is a random-weight IR of the config's exact geometry (:func:`qsnn.confignet.
config_ir`: the config's model lowered by the exporter's own code; MNIST and DVS Gesture
data and trained checkpoints are not needed). Two Verilator builds of a seed-sized design
per config, minutes each under load: QSNN_FULL=1 runs them (``make test`` does not).
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import torch

from qsnn.cli import main
from qsnn.confignet import config_ir
from qsnn.export import golden
from qsnn.hw import fpga, host
from qsnn.hw.design import Design
from qsnn.hw.gatebench import answer_timeout, session
from qsnn.hw.generate import ir_sha256
from qsnn.hw.verify import verify

FULL = os.environ.get("QSNN_FULL", "") not in ("", "0")
CONFIGS = Path(__file__).resolve().parents[1] / "configs"
BOARD = "orangecrab"
#: (config, lanes qsnn hw gives with --lanes 64: capped at each layer's channels)
CASES = [("fashion-mnist-conv", [16, 64, 10]), ("fashion-mnist-conv-t25", [16, 64, 10]),
         ("mnist-conv", [16, 64, 10]), ("dvs-gesture-conv", [16, 32, 11])]


@pytest.mark.skipif(not FULL, reason="QSNN_FULL=1 (two seed-sized Verilator builds each)")
@pytest.mark.parametrize("name,lanes", CASES, ids=[c[0] for c in CASES])
def test_config_goes_through_hw_verify_fit_and_run(name, lanes, tmp_path, sim_seed) -> None:
    from test_uart_net import replay

    build, hw = tmp_path / "build", tmp_path / "hw"
    graph = config_ir(CONFIGS / f"{name}.yaml", build, images=2, seed=sim_seed % 1000)
    assert main(["hw", str(build), "--out", str(hw), "--lanes", "64", "--board", BOARD]) == 0
    design = Design.load(hw, build)
    assert [p.lanes for p in design.layers] == lanes
    assert all(p.fused for p in design.layers if p.conv)
    rep = verify(build, hw, images=2, seed=sim_seed)
    assert rep["mismatches"] == 0 and rep["cycles_model_ratio"] == 1.0, rep
    assert fpga.precheck_fit(fpga.BOARDS[BOARD], design) is None
    x = np.load(build / "golden" / "vectors.npz")["inputs"][:1]
    reqs, model = session(design, graph, x)
    nbytes = sum(len(r.send) for r in reqs)     # DVS: 40,961 bytes, a Python await per edge
    got = replay(hw, [r.send for r in reqs], [r.reply for r in reqs], answer_timeout(model),
                 sim_seed, tmp_path, timeout_s=300 + nbytes // 20)
    ans = got["answers"]
    assert host.parse_info(bytes(ans[0])) == (host.design_id(ir_sha256(build)), True)
    assert ans[1][0] == int(golden.run(graph, torch.from_numpy(x)).predictions[0])
