// qsnn_gate_tb_top: the clock of qsnn_gate_tb for Icarus Verilog (the Verilator build runs
// qsnn_gate_tb from its C++ main, qsnn_gate_tb_main.cpp). The bench counts clock edges.
`default_nettype none
module qsnn_gate_tb_top #(
    parameter integer CLKS_PER_BIT = 8,
    parameter integer READY_LEVEL = 1,
    parameter integer STIM_BYTES = 1 << 20,
    parameter integer MAX_REQ = 1 << 14,
    parameter integer COUNTS_W = 8
);
    reg clk;
    initial clk = 1'b0;
    always #5 clk = ~clk;
    qsnn_gate_tb #(
        .CLKS_PER_BIT(CLKS_PER_BIT), .READY_LEVEL(READY_LEVEL), .STIM_BYTES(STIM_BYTES),
        .MAX_REQ(MAX_REQ), .COUNTS_W(COUNTS_W)
    ) tb (.clk(clk));
endmodule
`default_nettype wire
