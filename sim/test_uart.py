"""qsnn_uart_tx / qsnn_uart_rx: tx timing, loopback, rx baud error and glitches, lint."""

from __future__ import annotations

import pytest
import simlib

SRC = simlib.rtl("qsnn_uart_tx", "qsnn_uart_rx")

# Bench-only loopback wrapper, generated into sim_build/gen/ (not part of hw/rtl).
LOOP_TB = """\
`default_nettype none
module qsnn_uart_loop_tb #(
    parameter integer CLKS_PER_BIT = 8
) (
    input  wire       clk,
    input  wire       rst,
    input  wire [7:0] tx_data,
    input  wire       tx_valid,
    output wire       tx_ready,
    output wire       tx,
    input  wire       force_en,
    input  wire       force_val,
    output wire [7:0] rx_data,
    output wire       rx_valid
);
    wire line = force_en ? force_val : tx;
    qsnn_uart_tx #(.CLKS_PER_BIT(CLKS_PER_BIT)) u_tx (
        .clk(clk), .rst(rst), .data(tx_data), .valid(tx_valid), .ready(tx_ready), .tx(tx)
    );
    qsnn_uart_rx #(.CLKS_PER_BIT(CLKS_PER_BIT)) u_rx (
        .clk(clk), .rst(rst), .rx(line), .data(rx_data), .valid(rx_valid)
    );
endmodule
`default_nettype wire
"""


@pytest.mark.parametrize("cpb", [4, 7])
def test_uart(cpb, sim_seed):
    wrapper = simlib.write_source(LOOP_TB, "qsnn_uart_loop_tb.v")
    runner = simlib.build("qsnn_uart_loop_tb", [*SRC, wrapper], {"CLKS_PER_BIT": cpb})
    simlib.run(runner, "benches.uart_bench", seed=sim_seed)


@pytest.mark.parametrize("top", ["qsnn_uart_tx", "qsnn_uart_rx"])
def test_cpb_below_4_fails_elaboration(top):
    res = simlib.lint(simlib.rtl(top), top, {"CLKS_PER_BIT": 3})
    assert res.returncode != 0
    assert "CLKS_PER_BIT_must_be_at_least_4" in res.stderr


@pytest.mark.parametrize("top", ["qsnn_uart_tx", "qsnn_uart_rx"])
@pytest.mark.parametrize("params", [{}, *({"CLKS_PER_BIT": c} for c in (4, 5, 868))], ids=str)
def test_lint(top, params):
    res = simlib.lint(simlib.rtl(top), top, params)
    assert res.returncode == 0, res.stderr
    res = simlib.yosys_check(simlib.rtl(top), top, params)
    assert res.returncode == 0, res.stderr + res.stdout


def test_lint_loop_wrapper():
    wrapper = simlib.write_source(LOOP_TB, "qsnn_uart_loop_tb.v")
    res = simlib.lint([*SRC, wrapper], "qsnn_uart_loop_tb")
    assert res.returncode == 0, res.stderr
