// qsnn_lfsr: the 32-bit Galois LFSR of qsnn.lfsr (taps 0x80200003,
// x^32 + x^22 + x^2 + x + 1). One step, exactly as qsnn.lfsr.step:
//     out = s & 1;  s = s >> 1;  if (out) s = s ^ 0x80200003
// rst or load: state <= SEED (load wins over step); step: one step per cycle.
// SEED = 0 (the all-zero lock-up state) is refused at elaboration.
`default_nettype none
module qsnn_lfsr #(
    parameter [31:0] SEED = 32'h0000ACE1
) (
    input  wire        clk,
    input  wire        rst,
    input  wire        load,
    input  wire        step,
    output reg  [31:0] state
);
    localparam [31:0] TAPS = 32'h80200003;

    // Parameter check (Verilog-2005, docs/hardware.md): an illegal value elaborates an
    // instance of a module that does not exist, named after the rule, so Verilator,
    // Icarus and Yosys all stop with that name in the error.
    generate
        if (SEED == 32'd0) begin : g_bad_seed
            // SEED must be nonzero (0 is the LFSR lock-up state)
            ERROR_qsnn_lfsr_SEED_must_be_nonzero u_error ();
        end
    endgenerate

    wire [31:0] next = {1'b0, state[31:1]} ^ (state[0] ? TAPS : 32'd0);

    always @(posedge clk) begin
        if (rst || load) state <= SEED;
        else if (step) state <= next;
    end
endmodule
`default_nettype wire
