// qsnn_top_io: the fixed port logic of the generated qsnn_top (docs/hardware.md,
// streaming top); the design's numbers arrive as parameters.
//   info_id = INFO_ID, info_in_bytes = IN_BYTES, info_w_bytes = W_BYTES   (constants)
//   m_counts[c*OW +: OW] = counts[c*CW +: CW], zero-extended (c = 0 .. CLASSES-1)
//   w_ready  = !running                  weights are written only while no inference runs
//   w_take   = w_valid && w_ready        a weight byte for the loaders (qsnn_wload)
//   w_loaded = W_RUNTIME ? loaders_done : 1
// w_start and w_data reach the loaders directly; they are inputs here only so that a
// design without run-time weights still uses every top port.
// Illegal parameters stop elaboration (Verilator, Icarus, Yosys): an undefined module is
// instantiated in a generate-if, named after the rule that was broken.
`default_nettype none
module qsnn_top_io #(
    parameter [31:0] INFO_ID = 32'd0,
    parameter [31:0] IN_BYTES = 32'd1,
    parameter [31:0] W_BYTES = 32'd0,
    parameter integer CLASSES = 10,
    parameter integer CW = 5,
    parameter integer OW = 16,
    parameter integer W_RUNTIME = 0
) (
    input  wire running,
    /* verilator lint_off UNUSEDSIGNAL */
    input  wire w_start,
    input  wire [7:0] w_data,
    input  wire loaders_done,   // W_RUNTIME = 1 only
    /* verilator lint_on UNUSEDSIGNAL */
    input  wire w_valid,
    output wire w_ready,
    output wire w_take,
    output wire w_loaded,
    input  wire [CLASSES*CW-1:0] counts,
    output wire [CLASSES*OW-1:0] m_counts,
    output wire [31:0] info_id,
    output wire [31:0] info_in_bytes,
    output wire [31:0] info_w_bytes
);
    generate
        if (CLASSES < 1) begin : g_bad_classes
            ERROR_qsnn_top_io_CLASSES_must_be_at_least_1 u_error ();
        end
        if (CW < 1 || CW > OW) begin : g_bad_cw
            ERROR_qsnn_top_io_CW_must_be_1_to_OW u_error ();
        end
        if (W_RUNTIME < 0 || W_RUNTIME > 1) begin : g_bad_wr
            ERROR_qsnn_top_io_W_RUNTIME_must_be_0_or_1 u_error ();
        end
    endgenerate

    assign info_id = INFO_ID;
    assign info_in_bytes = IN_BYTES;
    assign info_w_bytes = W_BYTES;
    assign w_ready = !running;
    assign w_take = w_valid && !running;
    assign w_loaded = (W_RUNTIME != 0) ? loaders_done : 1'b1;

    genvar c;
    generate
        for (c = 0; c < CLASSES; c = c + 1) begin : g_counts
            if (CW < OW) begin : g_pad
                assign m_counts[c*OW +: OW] = {{(OW - CW){1'b0}}, counts[c*CW +: CW]};
            end else begin : g_same
                assign m_counts[c*OW +: OW] = counts[c*CW +: CW];
            end
        end
    endgenerate
endmodule
`default_nettype wire
