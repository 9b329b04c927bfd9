"""Lint and elaboration checks of the datapath cores: ``verilator --lint-only -Wall`` clean
and Yosys elaboration without latches (``simlib.yosys_check``) for legal parameters;
illegal parameters stop Verilator (lint and build) and Yosys with the core's ``$error``.

qsnn_layer reads its memories with ``$readmemh`` at elaboration in Yosys: the files are
written by ``qsnn.hw.generate.layer_mems`` into ``sim_build/gen/`` (the YoWASP Yosys
cannot see /tmp) and passed as absolute-path string parameters.
"""

from __future__ import annotations

import numpy as np
import pytest
import simlib

from qsnn.export.ir import LIF, Linear
from qsnn.hw.generate import LayerParams, layer_mems

SOURCES = {
    "qsnn_lif_lane": simlib.rtl("qsnn_lif_lane"),
    "qsnn_layer": simlib.rtl("qsnn_layer", "qsnn_lif_lane", "qsnn_conv_addr"),
    "qsnn_spikebuf": simlib.rtl("qsnn_spikebuf"),
    "qsnn_encoder": simlib.rtl("qsnn_encoder", "qsnn_lfsr"),
    "qsnn_sequencer": simlib.rtl("qsnn_sequencer"),
}

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
]

#: (core, parameters, the $error text)
ILLEGAL = [
    ("qsnn_lif_lane", {"RESET_MODE": 3}, "RESET_MODE must be 0, 1 or 2"),
    ("qsnn_lif_lane", {"MB": 33}, "MB must be 2..32"),
    ("qsnn_lif_lane", {"LEAK_MULT": 0, "LEAK_PARAM": 0}, "shift leak needs 1 <= k <= 30"),
    ("qsnn_lif_lane", {"LEAK_MULT": 0, "LEAK_PARAM": 31}, "shift leak needs 1 <= k <= 30"),
    ("qsnn_lif_lane", {"LEAK_MULT": 1, "LEAK_PARAM": 257, "FRAC_BITS": 8},
     "mult leak needs 1 <= F <= 16"),
    ("qsnn_lif_lane", {"LEAK_MULT": 1, "LEAK_PARAM": 1, "FRAC_BITS": 17},
     "mult leak needs 1 <= F <= 16"),
    ("qsnn_layer", {"WB": 9}, "WB must be 2..8"),
    ("qsnn_layer", {"WB": 1}, "WB must be 2..8"),
    ("qsnn_layer", {"VB": 17}, "VB must be 1..16"),
    ("qsnn_layer", {"RESET_MODE": 3}, "RESET_MODE must be 0, 1 or 2"),
    ("qsnn_encoder", {"PIXEL_MAX": 300}, "PIXEL_MAX must be 1..255"),
    ("qsnn_encoder", {"PIXEL_MAX": 0}, "PIXEL_MAX must be 1..255"),
    ("qsnn_encoder", {"ENC": 3}, "ENC must be 0 (direct), 1 (rate) or 2 (events)"),
    ("qsnn_encoder", {"ENC": 0, "VB": 7}, "direct input needs VB >= 8"),
    ("qsnn_encoder", {"ENC": 1, "VB": 1, "LFSR_SEED": 0}, "SEED must be nonzero"),
    ("qsnn_sequencer", {"L": 0}, "L and T must be >= 1"),
    ("qsnn_sequencer", {"T": 0}, "L and T must be >= 1"),
    # convolution engine and coordinate producers
    ("qsnn_layer", {"H_IN": 9, "W_IN": 9, "KS": 1, "KP": 3}, "KP must be a power of two"),
    ("qsnn_layer", {"H_IN": 8, "W_IN": 8, "KS": 3, "PAD": 3}, "PAD must be 0..KS-1"),
    ("qsnn_layer", {"H_IN": 7, "W_IN": 8, "KS": 1, "KP": 2}, "KP must divide the conv map"),
    ("qsnn_layer", {"H_IN": 4, "W_IN": 4, "KS": 9, "PAD": 1}, "KS larger than the padded"),
    ("qsnn_layer", {"H_IN": 8, "W_IN": 8, "KS": 3, "FUSED": 2}, "FUSED and C_RAM must be 0"),
    ("qsnn_spikebuf", {"HO": 2, "WO": 2, "COORD": 2}, "COORD must be 0 or 1"),
    ("qsnn_encoder", {"N_IN": 70, "H": 6, "W": 6}, "H*W must divide N_IN"),
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
    assert message in res.stderr, res.stderr


@pytest.mark.parametrize("core,params,message", ILLEGAL, ids=_ids(ILLEGAL))
def test_illegal_params_fail_yosys(core, params, message):
    full = {**params, **(layer_mem_params(params) if core == "qsnn_layer" else {})}
    res = simlib.yosys_check(SOURCES[core], core, full)
    assert res.returncode != 0, f"{core} {params} passed Yosys elaboration"
    assert message in res.stderr + res.stdout, res.stderr + res.stdout


BUILD_ILLEGAL = [ILLEGAL[0], ILLEGAL[6], ILLEGAL[10]]


@pytest.mark.parametrize("core,params,message", BUILD_ILLEGAL, ids=_ids(BUILD_ILLEGAL))
def test_illegal_params_fail_build(core, params, message, tmp_path):
    with pytest.raises(simlib.BuildError, match=message):
        simlib.build(core, SOURCES[core], params, build_dir_root=tmp_path)
