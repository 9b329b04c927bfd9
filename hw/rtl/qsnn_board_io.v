// qsnn_board_io: the board side of a qsnn bitstream (qsnn.hw.fpga): power-on reset,
// LEDs and pins held at a constant level. The generated board_top wires it to the
// clock (oscillator or PLL) and to qsnn_uart_top.
//   lock_sync <= {lock_sync[0], locked}              (two-flop synchroniser)
//   por       <= 0 while !lock_sync[1], else +1 until por[POR_BITS]
//   rst        = !por[POR_BITS]      held until the clock is stable, then 2**POR_BITS clocks
//   act       <= all ones while busy, else act - 1 down to 0    (STRETCH_BITS bits)
//   led_busy   = (act != 0), led_ready = !rst      (inverted when LED_ACTIVE_LOW = 1)
//   const_out  = CONST_VALUE                         (N_CONST pins; none when 0)
// Illegal parameters stop elaboration (Verilator, Icarus, Yosys): an undefined module is
// instantiated in a generate-if, named after the rule that was broken.
`default_nettype none
module qsnn_board_io #(
    parameter integer POR_BITS = 10,
    parameter integer STRETCH_BITS = 20,
    parameter integer LED_ACTIVE_LOW = 0,
    parameter integer N_CONST = 0,
    parameter [31:0] CONST_VALUE = 32'd0
) (
    input  wire clk,
    input  wire locked,
    input  wire busy,
    output wire rst,
    output wire led_busy,
    output wire led_ready,
    output wire [((N_CONST > 0) ? N_CONST : 1)-1:0] const_out
);
    localparam integer CB = (N_CONST > 0) ? N_CONST : 1;

    generate
        if (POR_BITS < 1 || POR_BITS > 30) begin : g_bad_por
            ERROR_qsnn_board_io_POR_BITS_must_be_1_to_30 u_error ();
        end
        if (STRETCH_BITS < 1 || STRETCH_BITS > 31) begin : g_bad_stretch
            ERROR_qsnn_board_io_STRETCH_BITS_must_be_1_to_31 u_error ();
        end
        if (LED_ACTIVE_LOW < 0 || LED_ACTIVE_LOW > 1) begin : g_bad_led
            ERROR_qsnn_board_io_LED_ACTIVE_LOW_must_be_0_or_1 u_error ();
        end
        if (N_CONST < 0 || N_CONST > 32) begin : g_bad_const
            ERROR_qsnn_board_io_N_CONST_must_be_0_to_32 u_error ();
        end
    endgenerate

    reg [1:0] lock_sync;
    reg [POR_BITS:0] por;
    reg [STRETCH_BITS-1:0] act;
    initial begin           // power-up values (FPGA bitstream initialisation)
        lock_sync = 2'b00;
        por = {(POR_BITS + 1){1'b0}};
        act = {STRETCH_BITS{1'b0}};
    end

    always @(posedge clk) begin
        lock_sync <= {lock_sync[0], locked};
        if (!lock_sync[1])
            por <= {(POR_BITS + 1){1'b0}};
        else if (!por[POR_BITS])
            por <= por + 1'b1;
    end
    assign rst = !por[POR_BITS];

    always @(posedge clk) begin
        if (busy)
            act <= {STRETCH_BITS{1'b1}};
        else if (act != {STRETCH_BITS{1'b0}})
            act <= act - 1'b1;
    end
    wire inv = (LED_ACTIVE_LOW != 0);
    assign led_busy = (act != {STRETCH_BITS{1'b0}}) ^ inv;
    assign led_ready = !rst ^ inv;
    /* verilator lint_off UNUSEDPARAM */
    assign const_out = CONST_VALUE[CB-1:0];
    /* verilator lint_on UNUSEDPARAM */
endmodule
`default_nettype wire
