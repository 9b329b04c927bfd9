// qsnn_readout: per-class spike counters and a sequential argmax.
//   clear (or rst):   every count <= 0
//   inc:              count[inc_index] += 1, saturating at 2^CW - 1
//                     (an inc_index >= CLASSES is ignored)
//   start:            begin the argmax. It compares one class per cycle, class 0 first,
//                     keeping the first strictly larger count, so ties go to the lowest
//                     index and all-zero counts give 0. With start sampled at clock edge
//                     e, pred is updated and done is high for one cycle after edge
//                     e + CLASSES (CLASSES cycles of latency). pred holds until the next
//                     done. A start while busy restarts the scan; counts should not
//                     change during the scan (an inc of a class already passed is not
//                     seen).
//   counts:           all counts, class 0 in the least significant CW bits.
`default_nettype none
module qsnn_readout #(
    parameter integer CLASSES = 10,
    parameter integer CW = 8
) (
    input  wire                              clk,
    input  wire                              rst,
    input  wire                              clear,
    input  wire                              inc,
    input  wire [((CLASSES > 1) ? $clog2(CLASSES) : 1)-1:0] inc_index,
    input  wire                              start,
    output reg                               done,
    output reg  [7:0]                        pred,
    output wire [CLASSES*CW-1:0]             counts
);
    localparam integer IW = (CLASSES > 1) ? $clog2(CLASSES) : 1;

    generate
        if (CLASSES < 1 || CLASSES > 256) begin : g_bad_classes
            // CLASSES must be 1..256
            ERROR_qsnn_readout_CLASSES_must_be_1_to_256 u_error ();
        end
        if (CW < 1 || CW > 32) begin : g_bad_cw
            // CW must be 1..32 (qsnn hw: bits(T), 17 for T = 65,536 .. 100,000)
            ERROR_qsnn_readout_CW_must_be_1_to_32 u_error ();
        end
    endgenerate

    // ---- counters ------------------------------------------------------------------
    genvar i;
    generate
        for (i = 0; i < CLASSES; i = i + 1) begin : g_count
            reg [CW-1:0] count;
            always @(posedge clk) begin
                if (rst || clear) count <= {CW{1'b0}};
                else if (inc && inc_index == i[IW-1:0] && count != {CW{1'b1}})
                    count <= count + 1'b1;
            end
            assign counts[i*CW +: CW] = count;
        end
    endgenerate

    // ---- argmax scan ---------------------------------------------------------------
    reg           busy;
    reg  [IW-1:0] idx;        // class compared this cycle
    reg  [CW-1:0] best_val;
    reg  [IW-1:0] best_idx;
    wire [CW-1:0] cur_val;
    wire          better = (cur_val > best_val);
    wire          last;

    generate
        if (CLASSES == 1) begin : g_one
            assign cur_val = counts[CW-1:0];
            assign last = 1'b1;
            wire unused_idx = &{1'b0, idx};
        end else begin : g_many
            localparam integer LAST = CLASSES - 1;
            assign cur_val = counts[idx*CW +: CW];
            assign last = (idx == LAST[IW-1:0]);
        end
    endgenerate

    wire [IW-1:0] win_idx = better ? idx : best_idx;
    wire [7:0]    win_idx8;
    generate
        if (IW < 8) begin : g_pad
            assign win_idx8 = {{(8 - IW){1'b0}}, win_idx};
        end else begin : g_nopad
            assign win_idx8 = win_idx;
        end
    endgenerate

    always @(posedge clk) begin
        if (rst) begin
            busy     <= 1'b0;
            done     <= 1'b0;
            pred     <= 8'd0;
            idx      <= {IW{1'b0}};
            best_val <= {CW{1'b0}};
            best_idx <= {IW{1'b0}};
        end else begin
            done <= 1'b0;
            if (start) begin
                busy     <= 1'b1;
                idx      <= {IW{1'b0}};
                best_val <= {CW{1'b0}};
                best_idx <= {IW{1'b0}};
            end else if (busy) begin
                if (better) best_val <= cur_val;
                best_idx <= win_idx;
                idx      <= idx + 1'b1;
                if (last) begin
                    busy <= 1'b0;
                    done <= 1'b1;
                    pred <= win_idx8;
                end
            end
        end
    end
endmodule
`default_nettype wire
