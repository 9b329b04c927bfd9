// qsnn_net_tb_top: the clock of qsnn_net_tb for event-driven simulators (Icarus Verilog);
// the Verilator build runs qsnn_net_tb from a C++ main (qsnn_net_tb_main.cpp). No timescale:
// time units do not matter to the bench, which counts clock edges.
`default_nettype none
module qsnn_net_tb_top #(
    parameter integer IN_BYTES = 64,
    parameter integer CLASSES = 10,
    parameter integer COUNT_BITS = 16,
    parameter integer W_BYTES = 0,
    parameter integer DEPTH = 1 << 16
);
    reg clk;
    initial clk = 1'b0;
    always #5 clk = ~clk;
    qsnn_net_tb #(
        .IN_BYTES(IN_BYTES), .CLASSES(CLASSES), .COUNT_BITS(COUNT_BITS),
        .W_BYTES(W_BYTES), .DEPTH(DEPTH)
    ) tb (.clk(clk));
endmodule
`default_nettype wire
