"""qsnn_lfsr: cocotb bench against qsnn.lfsr.step, SEED = 0 refused, lint."""

from __future__ import annotations

import pytest
import simlib

SRC = simlib.rtl("qsnn_lfsr")
SEEDS = [0xACE1, 0xFFFFFFFF]


@pytest.mark.parametrize("seed_param", SEEDS, ids=lambda s: f"SEED{s:#x}")
def test_lfsr(seed_param, sim_seed):
    runner = simlib.build("qsnn_lfsr", SRC, {"SEED": seed_param})
    simlib.run(runner, "benches.lfsr_bench", seed=sim_seed)


def test_failing_bench_fails_pytest(sim_seed):
    """Harness self-check: a failing cocotb assertion must raise SimError."""
    runner = simlib.build("qsnn_lfsr", SRC, {"SEED": SEEDS[0]})
    with pytest.raises(simlib.SimError, match=r"deliberate_failure.*deliberate failure"):
        simlib.run(
            runner,
            "benches.lfsr_bench",
            "deliberate_failure",
            seed=sim_seed,
            env={"EXPECT_FAIL": 1},
        )


def test_seed_zero_fails_verilator():
    res = simlib.lint(SRC, "qsnn_lfsr", {"SEED": 0})
    assert res.returncode != 0
    assert "SEED_must_be_nonzero" in res.stderr


def test_seed_zero_fails_yosys():
    # every synth_* script runs hierarchy -check, where the missing module stops Yosys
    script = "read_verilog {}; chparam -set SEED {} qsnn_lfsr; hierarchy -check -top qsnn_lfsr"
    ok = simlib.yosys(script.format(SRC[0], 1))
    assert ok.returncode == 0, ok.stderr
    bad = simlib.yosys(script.format(SRC[0], 0))
    assert bad.returncode != 0
    assert "SEED_must_be_nonzero" in bad.stderr + bad.stdout


def test_seed_zero_fails_build(tmp_path):
    with pytest.raises(simlib.BuildError, match="SEED_must_be_nonzero"):
        simlib.build("qsnn_lfsr", SRC, {"SEED": 0}, build_dir_root=tmp_path)


@pytest.mark.parametrize("params", [{}, {"SEED": 1}, {"SEED": 0x80000000}], ids=str)
def test_lint(params):
    res = simlib.lint(SRC, "qsnn_lfsr", params)
    assert res.returncode == 0, res.stderr
    res = simlib.yosys_check(SRC, "qsnn_lfsr", params)
    assert res.returncode == 0, res.stderr + res.stdout
