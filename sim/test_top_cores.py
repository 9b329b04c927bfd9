"""The cores that hold qsnn_top's and board_top's fixed logic (``qsnn_cycle_counter``,
``qsnn_top_io``, ``qsnn_board_io``): unit benches against their documented rules, lint
(``verilator --lint-only -Wall``), Yosys elaboration without latches, Icarus Verilog
(``-g2005``: plain Verilog-2005), and illegal parameters that stop elaboration in all
three tools.

Parameter checks are portable: a generate-if instantiates an undefined module named after
the broken rule (e.g. ``ERROR_qsnn_board_io_POR_BITS_must_be_1_to_30``), an elaboration
error in Verilator, Icarus and Yosys alike.
"""

from __future__ import annotations

import shutil
import subprocess

import pytest
import simlib

SOURCES = {name: simlib.rtl(name) for name in
           ("qsnn_cycle_counter", "qsnn_top_io", "qsnn_board_io")}

TOP_IO = [dict(INFO_ID=0xDEADBEEF, IN_BYTES=784, W_BYTES=50176, CLASSES=3, CW=5, OW=16,
               W_RUNTIME=0),
          dict(INFO_ID=0x00000001, IN_BYTES=64, W_BYTES=0, CLASSES=10, CW=16, OW=16,
               W_RUNTIME=1)]
BOARD_IO = [dict(POR_BITS=3, STRETCH_BITS=4, LED_ACTIVE_LOW=1, N_CONST=3, CONST_VALUE=5),
            dict(POR_BITS=1, STRETCH_BITS=1, LED_ACTIVE_LOW=0, N_CONST=0, CONST_VALUE=0)]

LEGAL = [("qsnn_cycle_counter", {}), ("qsnn_cycle_counter", {"WIDTH": 2}),
         *(("qsnn_top_io", p) for p in TOP_IO), ("qsnn_top_io", {"CLASSES": 1, "CW": 1}),
         *(("qsnn_board_io", p) for p in BOARD_IO), ("qsnn_board_io", {"N_CONST": 32})]

#: (core, parameters, the rule named in the error)
ILLEGAL = [
    ("qsnn_cycle_counter", {"WIDTH": 1}, "WIDTH_must_be_2_to_64"),
    ("qsnn_top_io", {"CLASSES": 0}, "CLASSES_must_be_at_least_1"),
    ("qsnn_top_io", {"CW": 17}, "CW_must_be_1_to_OW"),
    ("qsnn_top_io", {"W_RUNTIME": 2}, "W_RUNTIME_must_be_0_or_1"),
    ("qsnn_board_io", {"POR_BITS": 0}, "POR_BITS_must_be_1_to_30"),
    ("qsnn_board_io", {"STRETCH_BITS": 32}, "STRETCH_BITS_must_be_1_to_31"),
    ("qsnn_board_io", {"LED_ACTIVE_LOW": 2}, "LED_ACTIVE_LOW_must_be_0_or_1"),
]


def _ids(cases) -> list[str]:
    return [f"{c[0]}-" + ("-".join(f"{k}{v}" for k, v in c[1].items()) or "defaults")
            for c in cases]


@pytest.mark.parametrize("width", [32, 4])
def test_cycle_counter(width, sim_seed):
    runner = simlib.build("qsnn_cycle_counter", SOURCES["qsnn_cycle_counter"],
                          {"WIDTH": width})
    simlib.run(runner, "benches.cycle_counter_bench", seed=sim_seed)


@pytest.mark.parametrize("params", TOP_IO, ids=lambda p: f"CW{p['CW']}-WR{p['W_RUNTIME']}")
def test_top_io(params, sim_seed):
    runner = simlib.build("qsnn_top_io", SOURCES["qsnn_top_io"], params)
    simlib.run(runner, "benches.top_io_bench", seed=sim_seed)


@pytest.mark.parametrize("params", BOARD_IO, ids=lambda p: f"POR{p['POR_BITS']}-"
                                                          f"LOW{p['LED_ACTIVE_LOW']}")
def test_board_io(params, sim_seed):
    runner = simlib.build("qsnn_board_io", SOURCES["qsnn_board_io"], params)
    simlib.run(runner, "benches.board_io_bench", seed=sim_seed)


def icarus(core: str, params: dict) -> subprocess.CompletedProcess:
    """Icarus Verilog elaboration (``-g2005``) of ``core`` with ``params``."""
    exe = shutil.which("iverilog")
    if exe is None:
        pytest.skip("iverilog not installed (apt-get install iverilog)")
    cmd = [exe, "-g2005", "-o", "/dev/null", "-s", core,
           *(f"-P{core}.{k}={v}" for k, v in params.items()),
           *(str(s) for s in SOURCES[core])]
    return subprocess.run(cmd, capture_output=True, text=True, check=False)


@pytest.mark.parametrize("core,params", LEGAL, ids=_ids(LEGAL))
def test_legal_params_pass_every_tool(core, params):
    res = simlib.lint(SOURCES[core], core, params)
    assert res.returncode == 0, res.stderr
    res = simlib.yosys_check(SOURCES[core], core, params)
    assert res.returncode == 0, res.stderr + res.stdout
    res = icarus(core, params)
    assert res.returncode == 0, res.stderr + res.stdout


@pytest.mark.parametrize("core,params,rule", ILLEGAL, ids=_ids(ILLEGAL))
def test_illegal_params_stop_every_tool(core, params, rule):
    for tool, res in (("verilator", simlib.lint(SOURCES[core], core, params)),
                      ("yosys", simlib.yosys_check(SOURCES[core], core, params)),
                      ("icarus", icarus(core, params))):
        assert res.returncode != 0, f"{tool} accepted {core} {params}"
        assert f"ERROR_{core}_{rule}" in res.stderr + res.stdout, (tool, res.stderr)
