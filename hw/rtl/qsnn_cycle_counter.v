// qsnn_cycle_counter: cycles per inference on qsnn_top's m_cycles (docs/hardware.md,
// streaming top): from the first input byte of an image to m_valid.
//   start: the cycle the first byte of an image is taken (s_valid && s_ready while the
//          core holds no image: !loaded && !running, and no result waits: !m_valid):
//          count <= 1;
//   then:  count <= count + 1 every cycle until m_valid; count holds while m_valid and
//          until the next image's first byte. rst clears it.
// Illegal parameters stop elaboration (Verilator, Icarus, Yosys): an undefined module is
// instantiated in a generate-if, named after the rule that was broken.
`default_nettype none
module qsnn_cycle_counter #(
    parameter integer WIDTH = 32
) (
    input  wire clk,
    input  wire rst,
    input  wire s_valid,
    input  wire s_ready,
    input  wire loaded,
    input  wire running,
    input  wire m_valid,
    output reg  [WIDTH-1:0] count
);
    generate
        if (WIDTH < 2 || WIDTH > 64) begin : g_bad_width
            ERROR_qsnn_cycle_counter_WIDTH_must_be_2_to_64 u_error ();
        end
    endgenerate

    reg counting;
    always @(posedge clk) begin
        if (rst) begin
            counting <= 1'b0;
            count <= {WIDTH{1'b0}};
        end else if (!counting && !m_valid && s_valid && s_ready && !loaded && !running) begin
            counting <= 1'b1;
            count <= {{(WIDTH - 1){1'b0}}, 1'b1};
        end else if (counting && !m_valid) begin
            count <= count + 1'b1;
        end else if (m_valid) begin
            counting <= 1'b0;
        end
    end
endmodule
`default_nettype wire
