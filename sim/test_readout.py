"""qsnn_readout: counters, saturation, argmax (lowest index on ties), lint."""

from __future__ import annotations

import pytest
import simlib

SRC = simlib.rtl("qsnn_readout")


@pytest.mark.parametrize("classes,cw", [(1, 2), (10, 3), (11, 4)], ids=lambda v: str(v))
def test_readout(classes, cw, sim_seed):
    runner = simlib.build("qsnn_readout", SRC, {"CLASSES": classes, "CW": cw})
    simlib.run(runner, "benches.readout_bench", seed=sim_seed)


@pytest.mark.parametrize("params", [{"CLASSES": 0}, {"CLASSES": 257}, {"CW": 0}, {"CW": 33}])
def test_bad_params_fail_elaboration(params):
    res = simlib.lint(SRC, "qsnn_readout", params)
    assert res.returncode != 0
    assert "ERROR_qsnn_readout_" in res.stderr


LINT_PARAMS = [
    {},
    {"CLASSES": 1, "CW": 1},
    {"CLASSES": 2, "CW": 16},
    {"CLASSES": 11, "CW": 4},
    {"CLASSES": 255, "CW": 3},
    {"CLASSES": 256, "CW": 16},
    {"CLASSES": 2, "CW": 17},
]


@pytest.mark.parametrize("params", LINT_PARAMS, ids=str)
def test_lint(params):
    res = simlib.lint(SRC, "qsnn_readout", params)
    assert res.returncode == 0, res.stderr


@pytest.mark.parametrize("params", [{}, {"CLASSES": 1, "CW": 1}, {"CLASSES": 11, "CW": 4}], ids=str)
def test_yosys(params):
    res = simlib.yosys_check(SRC, "qsnn_readout", params)
    assert res.returncode == 0, res.stderr + res.stdout
