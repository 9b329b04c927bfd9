"""Lint and elaboration checks of the cores: ``verilator --lint-only -Wall`` clean as
Verilog-2005, Icarus Verilog (``iverilog -g2005``) elaboration clean, and Yosys elaboration
without latches (``simlib.yosys_check``) for legal parameters; illegal parameters stop
Verilator (lint and build), Icarus and Yosys at the core's check, an instance of the
missing module ``ERROR_<core>_<rule>`` (docs/hardware.md).

qsnn_layer reads its memories with ``$readmemh`` at elaboration in Yosys: the files are
written by ``qsnn.hw.generate.layer_mems`` into ``sim_build/gen/`` (the YoWASP Yosys
cannot see /tmp) and passed as absolute-path string parameters.
"""

from __future__ import annotations

import shutil

import numpy as np
import pytest
import simlib

from qsnn.export.ir import LIF, Linear
from qsnn.hw.generate import LayerParams, layer_mems

SOURCES = {
    "qsnn_lif_lane": simlib.rtl("qsnn_lif_lane"),
    "qsnn_layer": simlib.rtl("qsnn_layer", "qsnn_lif_lane", "qsnn_conv_addr",
                             "qsnn_mem_spram"),
    "qsnn_mem_spram": simlib.rtl("qsnn_mem_spram"),
    "qsnn_spikebuf": simlib.rtl("qsnn_spikebuf"),
    "qsnn_encoder": simlib.rtl("qsnn_encoder", "qsnn_lfsr"),
    "qsnn_sequencer": simlib.rtl("qsnn_sequencer"),
    "qsnn_readout": simlib.rtl("qsnn_readout"),
    "qsnn_wload": simlib.rtl("qsnn_wload"),
    "qsnn_uart_rx": simlib.rtl("qsnn_uart_rx"),
    "qsnn_uart_tx": simlib.rtl("qsnn_uart_tx"),
}
ICARUS = shutil.which("iverilog") is not None

LAYER_DEFAULTS = dict(N_IN=64, N=128, P=4, WB=4, MB=16, VB=1, LEAK_MULT=1, LEAK_PARAM=230,
                      FRAC_BITS=8, RESET_MODE=0)

LEGAL = [
    ("qsnn_lif_lane", {}),
    ("qsnn_lif_lane", {"MB": 2, "LEAK_MULT": 0, "LEAK_PARAM": 1, "RESET_MODE": 1}),
    ("qsnn_lif_lane", {"MB": 12, "LEAK_MULT": 0, "LEAK_PARAM": 30, "RESET_MODE": 2}),
    ("qsnn_lif_lane", {"MB": 32, "LEAK_MULT": 1, "LEAK_PARAM": 65536, "FRAC_BITS": 16,
                       "RESET_MODE": 0}),
    ("qsnn_lif_lane", {"MB": 8, "LEAK_MULT": 1, "LEAK_PARAM": 0, "FRAC_BITS": 1}),
    ("qsnn_layer", {}),
    ("qsnn_layer", {"N_IN": 12, "N": 10, "P": 16, "WB": 4, "MB": 12, "VB": 8,
                    "LEAK_MULT": 1, "LEAK_PARAM": 128, "RESET_MODE": 2}),
    ("qsnn_layer", {"N_IN": 12, "N": 10, "P": 1, "WB": 4, "MB": 12, "VB": 8,
                    "LEAK_MULT": 0, "LEAK_PARAM": 2, "RESET_MODE": 1}),
    ("qsnn_layer", {"N_IN": 1, "N": 1, "P": 1, "WB": 2, "MB": 2, "VB": 1}),
    ("qsnn_layer", {"N_IN": 784, "N": 100, "P": 7, "WB": 8, "MB": 32, "VB": 16}),
    # convolutional: fused pool, address-map pool, no pool; direct (C RAM) and hidden
    ("qsnn_layer", {"N_IN": 3, "N": 5, "P": 2, "H_IN": 8, "W_IN": 8, "KS": 3, "PAD": 1,
                    "KP": 2, "WB": 6, "C_RAM": 0}),
    ("qsnn_layer", {"N_IN": 1, "N": 16, "P": 4, "H_IN": 28, "W_IN": 28, "KS": 5, "KP": 2,
                    "FUSED": 0, "VB": 8, "MB": 22}),
    ("qsnn_layer", {"N_IN": 16, "N": 64, "P": 16, "H_IN": 12, "W_IN": 12, "KS": 5, "KP": 2,
                    "WB": 6, "MB": 18, "C_RAM": 0, "W_RUNTIME": 1}),
    ("qsnn_layer", {"N_IN": 2, "N": 1, "P": 1, "H_IN": 1, "W_IN": 5, "KS": 3, "PAD": 2,
                    "C_RAM": 0}),
    # membranes in SPRAM: fully connected, direct conv (word {C, V}), hidden conv
    ("qsnn_layer", {"M_SPRAM": 1}),
    ("qsnn_layer", {"N_IN": 1, "N": 16, "P": 1, "H_IN": 28, "W_IN": 28, "KS": 5, "KP": 2,
                    "WB": 6, "VB": 8, "MB": 21, "M_SPRAM": 1}),
    ("qsnn_layer", {"N_IN": 3, "N": 5, "P": 2, "H_IN": 8, "W_IN": 8, "KS": 3, "PAD": 1,
                    "KP": 2, "WB": 6, "C_RAM": 0, "M_SPRAM": 1}),
    ("qsnn_mem_spram", {}),
    ("qsnn_mem_spram", {"DEPTH": 16384, "WIDTH": 48}),
    ("qsnn_mem_spram", {"DEPTH": 1, "WIDTH": 4}),
    ("qsnn_spikebuf", {}),
    ("qsnn_spikebuf", {"N": 1, "P": 1}),
    ("qsnn_spikebuf", {"N": 10, "P": 16}),
    ("qsnn_spikebuf", {"N": 7, "P": 1}),
    ("qsnn_spikebuf", {"N": 5, "P": 2, "HO": 3, "WO": 4, "COORD": 1}),
    ("qsnn_spikebuf", {"N": 64, "P": 16, "HO": 4, "WO": 4, "COORD": 0}),
    ("qsnn_spikebuf", {"N": 1, "P": 1, "HO": 1, "WO": 2, "COORD": 1}),
    ("qsnn_encoder", {}),
    ("qsnn_encoder", {"N_IN": 784, "T": 25, "ENC": 0, "PIXEL_MAX": 255, "VB": 8}),
    ("qsnn_encoder", {"N_IN": 13, "T": 3, "ENC": 1, "PIXEL_MAX": 255, "VB": 1}),
    ("qsnn_encoder", {"N_IN": 1, "T": 1, "ENC": 1, "PIXEL_MAX": 1, "VB": 1}),
    ("qsnn_encoder", {"N_IN": 12, "T": 5, "ENC": 2, "VB": 1}),
    ("qsnn_encoder", {"N_IN": 64, "T": 20, "ENC": 2, "VB": 1}),
    ("qsnn_encoder", {"N_IN": 784, "ENC": 0, "PIXEL_MAX": 255, "VB": 8, "H": 28, "W": 28}),
    ("qsnn_encoder", {"N_IN": 2048, "T": 20, "ENC": 2, "VB": 1, "H": 32, "W": 32}),
    ("qsnn_encoder", {"N_IN": 12, "T": 2, "ENC": 1, "VB": 1, "H": 1, "W": 6}),
    ("qsnn_sequencer", {}),
    ("qsnn_sequencer", {"L": 1, "T": 1, "ENC": 0}),
    ("qsnn_sequencer", {"L": 3, "T": 7, "ENC": 2}),
    ("qsnn_readout", {"CLASSES": 10, "CW": 5}),
    ("qsnn_wload", {"WD": 3136, "WBITS": 16}),
    ("qsnn_uart_rx", {"CLKS_PER_BIT": 4}),
    ("qsnn_uart_tx", {"CLKS_PER_BIT": 868}),
]

#: (core, parameters, the missing module that names the rule; prefixed ERROR_)
ILLEGAL = [
    ("qsnn_lif_lane", {"RESET_MODE": 3}, "qsnn_lif_lane_RESET_MODE_must_be_0_1_or_2"),
    ("qsnn_lif_lane", {"MB": 33}, "qsnn_lif_lane_MB_must_be_2_to_32"),
    ("qsnn_lif_lane", {"LEAK_MULT": 0, "LEAK_PARAM": 0},
     "qsnn_lif_lane_shift_leak_needs_k_1_to_30"),
    ("qsnn_lif_lane", {"LEAK_MULT": 0, "LEAK_PARAM": 31},
     "qsnn_lif_lane_shift_leak_needs_k_1_to_30"),
    ("qsnn_lif_lane", {"LEAK_MULT": 1, "LEAK_PARAM": 257, "FRAC_BITS": 8},
     "qsnn_lif_lane_mult_leak_needs_F_1_to_16"),
    ("qsnn_lif_lane", {"LEAK_MULT": 1, "LEAK_PARAM": 1, "FRAC_BITS": 17},
     "qsnn_lif_lane_mult_leak_needs_F_1_to_16"),
    ("qsnn_layer", {"WB": 9}, "qsnn_layer_WB_must_be_2_to_8"),
    ("qsnn_layer", {"WB": 1}, "qsnn_layer_WB_must_be_2_to_8"),
    ("qsnn_layer", {"VB": 17}, "qsnn_layer_VB_must_be_1_to_16"),
    ("qsnn_layer", {"RESET_MODE": 3}, "qsnn_lif_lane_RESET_MODE_must_be_0_1_or_2"),
    ("qsnn_encoder", {"PIXEL_MAX": 300}, "qsnn_encoder_PIXEL_MAX_must_be_1_to_255"),
    ("qsnn_encoder", {"PIXEL_MAX": 0}, "qsnn_encoder_PIXEL_MAX_must_be_1_to_255"),
    ("qsnn_encoder", {"ENC": 3}, "qsnn_encoder_ENC_must_be_0_1_or_2"),
    ("qsnn_encoder", {"ENC": 0, "VB": 7}, "qsnn_encoder_direct_input_needs_VB_at_least_8"),
    ("qsnn_encoder", {"ENC": 1, "VB": 1, "LFSR_SEED": 0}, "qsnn_lfsr_SEED_must_be_nonzero"),
    ("qsnn_sequencer", {"L": 0}, "qsnn_sequencer_L_and_T_must_be_at_least_1"),
    ("qsnn_sequencer", {"T": 0}, "qsnn_sequencer_L_and_T_must_be_at_least_1"),
    ("qsnn_layer", {"W_RUNTIME": 2}, "qsnn_layer_W_RUNTIME_must_be_0_or_1"),
    ("qsnn_readout", {"CLASSES": 257}, "qsnn_readout_CLASSES_must_be_1_to_256"),
    ("qsnn_readout", {"CW": 33}, "qsnn_readout_CW_must_be_1_to_32"),
    ("qsnn_wload", {"WD": 0}, "qsnn_wload_WD_and_WBITS_must_be_at_least_1"),
    ("qsnn_uart_rx", {"CLKS_PER_BIT": 3}, "qsnn_uart_rx_CLKS_PER_BIT_must_be_at_least_4"),
    ("qsnn_uart_tx", {"CLKS_PER_BIT": 2}, "qsnn_uart_tx_CLKS_PER_BIT_must_be_at_least_4"),
    # convolution engine and coordinate producers
    ("qsnn_layer", {"H_IN": 9, "W_IN": 9, "KS": 1, "KP": 3},
     "qsnn_layer_KP_must_be_a_power_of_two"),
    ("qsnn_layer", {"H_IN": 8, "W_IN": 8, "KS": 3, "PAD": 3},
     "qsnn_layer_PAD_must_be_0_to_KS_minus_1"),
    ("qsnn_layer", {"H_IN": 7, "W_IN": 8, "KS": 1, "KP": 2},
     "qsnn_layer_KP_must_divide_the_conv_map"),
    ("qsnn_layer", {"H_IN": 4, "W_IN": 4, "KS": 9, "PAD": 1},
     "qsnn_layer_KS_larger_than_the_padded_input_map"),
    ("qsnn_layer", {"H_IN": 8, "W_IN": 8, "KS": 3, "FUSED": 2},
     "qsnn_layer_FUSED_and_C_RAM_must_be_0_or_1"),
    ("qsnn_spikebuf", {"HO": 2, "WO": 2, "COORD": 2}, "qsnn_spikebuf_COORD_must_be_0_or_1"),
    ("qsnn_layer", {"M_SPRAM": 2}, "qsnn_layer_M_SPRAM_must_be_0_or_1"),
    ("qsnn_mem_spram", {"DEPTH": 16385}, "qsnn_mem_spram_DEPTH_must_be_1_to_16384"),
    ("qsnn_mem_spram", {"WIDTH": 18}, "qsnn_mem_spram_WIDTH_must_be_a_multiple_of_4"),
    ("qsnn_encoder", {"N_IN": 70, "H": 6, "W": 6}, "qsnn_encoder_HxW_must_divide_N_IN"),
]


def _ids(cases) -> list[str]:
    return [f"{c[0]}-" + ("-".join(f"{k}{v}" for k, v in c[1].items()) or "defaults")
            for c in cases]


def conv_mem_params(hp: dict) -> dict:
    """W_FILE/TH_FILE/B_FILE for a convolutional build: random words, as many as the
    core's memories hold (N_IN·KE²·G weight words, G theta/bias words)."""
    g = -(-hp["N"] // hp["P"])
    ke = hp.get("KS", 1) + (hp.get("KP", 1) - 1 if hp.get("FUSED", 1) == 1 else 0)
    rs = np.random.default_rng(hp["N"] * 1000 + hp["N_IN"])
    out = {}
    for key, words, bits in (("W_FILE", hp["N_IN"] * ke * ke * g, hp["WB"]),
                             ("TH_FILE", g, hp["MB"]), ("B_FILE", g, hp["MB"])):
        digits = -(-hp["P"] * bits // 4)
        lines = [f"{int(v):0{digits}x}" for v in rs.integers(0, 1 << min(bits, 30), words)]
        path = simlib.write_source("\n".join(lines) + "\n", f"conv_{key}_{words}.mem")
        out[key] = f'"{path}"'
    return out


def layer_mem_params(params: dict) -> dict:
    """W_FILE/TH_FILE/B_FILE (absolute paths, as Verilog strings) for a deterministic
    random layer with these parameters, in the layout of ``layer_mems``."""
    hp = {**LAYER_DEFAULTS, **params}
    if any(k in hp for k in ("H_IN", "W_IN", "KS", "KP")):
        return conv_mem_params(hp)
    if not (2 <= hp["WB"] <= 8 and 2 <= hp["MB"] <= 32 and hp["P"] >= 1):
        hp = {**hp, "WB": min(max(hp["WB"], 2), 8)}  # files for an illegal build: any layout
    n, n_in, mb = hp["N"], hp["N_IN"], hp["MB"]
    rs = np.random.default_rng(n * 1000 + n_in)
    wmax = (1 << (hp["WB"] - 1)) - 1
    w = rs.integers(-wmax, wmax + 1, size=(n, n_in))
    theta = rs.integers(1, (1 << (mb - 1)) - 1, size=n, endpoint=True)
    bias = rs.integers(-(1 << (mb - 2)), 1 << (mb - 2), size=n)
    p = LayerParams(0, n_in, n, hp["P"], hp["WB"], mb, hp["VB"], hp["LEAK_MULT"],
                    hp["LEAK_PARAM"], hp["FRAC_BITS"], hp["RESET_MODE"])
    lin = Linear("fc", n_in, n, hp["WB"], w.astype(np.int8))
    lif = LIF("lif", (n,), "mult", 230, 8, "subtract", mb, theta.astype(np.int64),
              bias.astype(np.int64))
    out = {}
    for name, words in layer_mems(p, lin, lif).items():
        path = simlib.write_source("\n".join(words) + "\n", name)
        key = {"l0_w.mem": "W_FILE", "l0_theta.mem": "TH_FILE", "l0_bias.mem": "B_FILE"}[name]
        out[key] = f'"{path}"'
    return out


@pytest.mark.parametrize("core,params", LEGAL, ids=_ids(LEGAL))
def test_lint_clean(core, params):
    res = simlib.lint(SOURCES[core], core, params)
    assert res.returncode == 0, res.stderr


@pytest.mark.parametrize("core,params", LEGAL, ids=_ids(LEGAL))
def test_yosys_no_latches(core, params):
    full = {**params, **(layer_mem_params(params) if core == "qsnn_layer" else {})}
    res = simlib.yosys_check(SOURCES[core], core, full)
    assert res.returncode == 0, res.stderr + res.stdout


@pytest.mark.parametrize("core,params,message", ILLEGAL, ids=_ids(ILLEGAL))
def test_illegal_params_fail_lint(core, params, message):
    res = simlib.lint(SOURCES[core], core, params)
    assert res.returncode != 0, f"{core} {params} passed lint"
    assert f"ERROR_{message}" in res.stderr, res.stderr


@pytest.mark.skipif(not ICARUS, reason="iverilog not installed (apt-get install iverilog)")
@pytest.mark.parametrize("core,params", LEGAL, ids=_ids(LEGAL))
def test_icarus_elaborates_clean(core, params):
    res = simlib.icarus_check(SOURCES[core], core, params)
    assert res.returncode == 0, res.stderr
    assert "warning" not in res.stderr.lower(), res.stderr


@pytest.mark.skipif(not ICARUS, reason="iverilog not installed (apt-get install iverilog)")
@pytest.mark.parametrize("core,params,message", ILLEGAL, ids=_ids(ILLEGAL))
def test_illegal_params_fail_icarus(core, params, message):
    res = simlib.icarus_check(SOURCES[core], core, params)
    assert res.returncode != 0, f"{core} {params} passed Icarus elaboration"
    assert f"ERROR_{message}" in res.stderr, res.stderr


@pytest.mark.parametrize("core,params,message", ILLEGAL, ids=_ids(ILLEGAL))
def test_illegal_params_fail_yosys(core, params, message):
    full = {**params, **(layer_mem_params(params) if core == "qsnn_layer" else {})}
    res = simlib.yosys_check(SOURCES[core], core, full)
    assert res.returncode != 0, f"{core} {params} passed Yosys elaboration"
    assert f"ERROR_{message}" in res.stderr + res.stdout, res.stderr + res.stdout


BUILD_ILLEGAL = [ILLEGAL[0], ILLEGAL[6], ILLEGAL[10]]


@pytest.mark.parametrize("core,params,message", BUILD_ILLEGAL, ids=_ids(BUILD_ILLEGAL))
def test_illegal_params_fail_build(core, params, message, tmp_path):
    with pytest.raises(simlib.BuildError, match=message):
        simlib.build(core, SOURCES[core], params, build_dir_root=tmp_path)
