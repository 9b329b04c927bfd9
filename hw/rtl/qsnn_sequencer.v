// qsnn_sequencer: runs one inference per loaded image (docs/hardware.md):
//   clear all layers -> [direct: encoder MAC into layer 0's C, then layer 0 V <- C]
//   -> for t < T: [rate/events: encoder step into layer 0]
//                 for l < L: update layer l; then its spike buffer feeds layer l+1
//                 (the last layer's feeds the readout counters)
//   -> readout argmax -> output handshake -> release the image.
// Every wait is on the `busy` of the unit just started (plus the consumer it feeds).
`default_nettype none
module qsnn_sequencer #(
    parameter integer L = 2,
    parameter integer T = 20,
    parameter integer ENC = 0
) (
    input  wire clk,
    input  wire rst,
    input  wire loaded,
    output reg  enc_start,
    input  wire enc_busy,
    output reg  [L-1:0] cmd_clear,
    output reg  [L-1:0] cmd_loadv,
    output reg  [L-1:0] cmd_update,
    input  wire [L-1:0] layer_busy,
    output reg  [L-1:0] buf_start,
    input  wire [L-1:0] buf_busy,
    output reg  ro_clear,
    output reg  ro_start,
    input  wire ro_done,
    output reg  out_valid,
    input  wire out_ready,
    output reg  release_image,
    output wire running
);
    localparam integer LW = (L > 1) ? $clog2(L) : 1;
    localparam integer TW = (T > 1) ? $clog2(T) + 1 : 2;
    localparam [3:0] S_WAIT = 4'd0, S_CLEAR = 4'd1, S_MAC = 4'd2, S_LOADV = 4'd3,
                     S_ENC = 4'd4, S_UPD = 4'd5, S_BUF = 4'd6, S_READ = 4'd7,
                     S_OUT = 4'd8, S_NEXT = 4'd9;

    generate
        if (L < 1 || T < 1) begin : g_bad
            // L and T must be >= 1
            ERROR_qsnn_sequencer_L_and_T_must_be_at_least_1 u_error ();
        end
    endgenerate

    reg [3:0]    state;
    reg          armed;   // the unit started in this state has had a cycle to raise busy
    reg [LW-1:0] l;
    reg [TW-1:0] t;
    wire all_idle = !enc_busy && (layer_busy == {L{1'b0}}) && (buf_busy == {L{1'b0}});
    assign running = (state != S_WAIT);

    always @(posedge clk) begin
        enc_start <= 1'b0;
        cmd_clear <= {L{1'b0}};
        cmd_loadv <= {L{1'b0}};
        cmd_update <= {L{1'b0}};
        buf_start <= {L{1'b0}};
        ro_clear <= 1'b0;
        ro_start <= 1'b0;
        release_image <= 1'b0;
        if (rst) begin
            state <= S_WAIT;
            armed <= 1'b0;
            l <= {LW{1'b0}};
            t <= {TW{1'b0}};
            out_valid <= 1'b0;
        end else begin
            case (state)
                S_WAIT: if (loaded) begin
                    cmd_clear <= {L{1'b1}};
                    ro_clear <= 1'b1;
                    armed <= 1'b0;
                    state <= S_CLEAR;
                end
                S_CLEAR: begin
                    armed <= 1'b1;
                    if (armed && all_idle) begin
                        armed <= 1'b0;
                        t <= {TW{1'b0}};
                        if (ENC == 0) begin
                            enc_start <= 1'b1;
                            state <= S_MAC;
                        end else begin
                            enc_start <= 1'b1;
                            state <= S_ENC;
                        end
                    end
                end
                S_MAC: begin
                    armed <= 1'b1;
                    if (armed && all_idle) begin
                        armed <= 1'b0;
                        cmd_loadv[0] <= 1'b1;
                        state <= S_LOADV;
                    end
                end
                S_LOADV, S_ENC: begin  // layer 0's input is in: update layer 0
                    armed <= 1'b1;
                    if (armed && all_idle) begin
                        armed <= 1'b0;
                        l <= {LW{1'b0}};
                        cmd_update[0] <= 1'b1;
                        state <= S_UPD;
                    end
                end
                S_UPD: begin
                    armed <= 1'b1;
                    if (armed && all_idle) begin
                        armed <= 1'b0;
                        buf_start[l] <= 1'b1;
                        state <= S_BUF;
                    end
                end
                S_BUF: begin
                    armed <= 1'b1;
                    if (armed && all_idle) begin
                        armed <= 1'b0;
                        /* verilator lint_off WIDTHEXPAND */
                        if (l != L - 1) begin
                        /* verilator lint_on WIDTHEXPAND */
                            l <= l + 1'b1;
                            cmd_update[l + 1'b1] <= 1'b1;
                            state <= S_UPD;
                        /* verilator lint_off WIDTHEXPAND */
                        end else if (t != T - 1) begin
                        /* verilator lint_on WIDTHEXPAND */
                            t <= t + 1'b1;
                            l <= {LW{1'b0}};
                            if (ENC == 0) begin
                                cmd_update[0] <= 1'b1;
                                state <= S_UPD;
                            end else begin
                                enc_start <= 1'b1;
                                state <= S_ENC;
                            end
                        end else begin
                            ro_start <= 1'b1;
                            state <= S_READ;
                        end
                    end
                end
                S_READ: if (ro_done) begin
                    out_valid <= 1'b1;
                    state <= S_OUT;
                end
                S_OUT: if (out_ready) begin
                    out_valid <= 1'b0;
                    release_image <= 1'b1;
                    state <= S_NEXT;
                end
                S_NEXT: state <= S_WAIT;  // let `loaded` fall before looking again
                default: state <= S_WAIT;
            endcase
        end
    end
endmodule
`default_nettype wire
