// qsnn_spikebuf: holds one layer's spike masks of the current step (written chunk by chunk
// by the update pass) and, on `start`, emits the spiking neurons' indices in increasing
// order as events (valid/ready). A chunk without spikes costs one cycle; each spike
// costs the cycles until the consumer accepts it.
// Convolutional layer (HO x WO > 1): N channels on a HO x WO map, chunk (Y*WO + X)*G + g
// (G = ceil(N/P)) holds channels c = g*P + p at (Y, X); the walk keeps (Y, X, g) counters
// beside the chunk and emits, in chunk order, for COORD = 1 the packed coordinate
// {c, Y, X} (a following convolution; a size-1 dimension has no bits) and for COORD = 0
// the flat index c*HO*WO + Y*WO + X (a following flatten + linear). Counters, no divider.
`default_nettype none
module qsnn_spikebuf #(
    parameter integer N = 128,
    parameter integer P = 4,
    parameter integer HO = 1,
    parameter integer WO = 1,
    parameter integer COORD = 0
) (
    input  wire clk,
    input  wire rst,
    input  wire wr_valid,
    input  wire [(((HO * WO * ((N + P - 1) / P)) > 1) ? $clog2(HO * WO * ((N + P - 1) / P))
                  : 1)-1:0] wr_chunk,
    input  wire [P-1:0] wr_mask,
    input  wire start,
    output wire busy,
    output wire ev_valid,
    input  wire ev_ready,
    output wire [((COORD != 0)
                  ? ((((N > 1) ? $clog2(N) : 0) + ((HO > 1) ? $clog2(HO) : 0)
                      + ((WO > 1) ? $clog2(WO) : 0)) > 0
                     ? (((N > 1) ? $clog2(N) : 0) + ((HO > 1) ? $clog2(HO) : 0)
                        + ((WO > 1) ? $clog2(WO) : 0)) : 1)
                  : ((N * HO * WO > 1) ? $clog2(N * HO * WO) : 1))-1:0] ev_index
);
    localparam integer G = (N + P - 1) / P;
    localparam integer K = HO * WO * G;
    localparam integer KW = (K > 1) ? $clog2(K) : 1;
    localparam integer IW = (COORD != 0)
        ? (((((N > 1) ? $clog2(N) : 0) + ((HO > 1) ? $clog2(HO) : 0)
             + ((WO > 1) ? $clog2(WO) : 0)) > 0)
           ? (((N > 1) ? $clog2(N) : 0) + ((HO > 1) ? $clog2(HO) : 0)
              + ((WO > 1) ? $clog2(WO) : 0)) : 1)
        : ((N * HO * WO > 1) ? $clog2(N * HO * WO) : 1);
    localparam integer PW = (P > 1) ? $clog2(P) : 1;

    generate
        if (N < 1 || P < 1 || HO < 1 || WO < 1) begin : g_bad_size
            // N, P, HO and WO must be >= 1
            ERROR_qsnn_spikebuf_N_P_HO_and_WO_must_be_at_least_1 u_error ();
        end
        if (COORD < 0 || COORD > 1) begin : g_bad_coord
            // COORD must be 0 or 1
            ERROR_qsnn_spikebuf_COORD_must_be_0_or_1 u_error ();
        end
    endgenerate

    reg [P-1:0]  masks [0:K-1];
    reg          running;
    reg [KW-1:0] chunk;
    reg [P-1:0]  done_bits;

    wire [P-1:0] cur = masks[chunk] & ~done_bits;
    // lowest set bit of cur
    reg [PW-1:0] low;
    integer i;
    always @* begin
        low = {PW{1'b0}};
        for (i = P - 1; i >= 0; i = i - 1)
            if (cur[i]) low = i[PW-1:0];
    end
    wire [P-1:0] low_bit = {{(P - 1){1'b0}}, 1'b1} << low;
    wire last_chunk = (chunk == K[KW-1:0] - 1'b1) || (K == 1);

    assign busy = running;
    assign ev_valid = running && (cur != {P{1'b0}});
    generate
        if (HO * WO == 1) begin : g_flat
            /* verilator lint_off WIDTH */
            /* verilator lint_off UNUSEDSIGNAL */
            wire [31:0] index_full = chunk * P + low;
            /* verilator lint_on UNUSEDSIGNAL */
            /* verilator lint_on WIDTH */
            assign ev_index = index_full[IW-1:0];
        end else begin : g_map
            localparam integer GW = (G > 1) ? $clog2(G) : 1;
            localparam integer YW = (HO > 1) ? $clog2(HO) : 1;
            localparam integer XW = (WO > 1) ? $clog2(WO) : 1;
            localparam integer YF = (HO > 1) ? $clog2(HO) : 0;   // packed field widths
            localparam integer XF = (WO > 1) ? $clog2(WO) : 0;
            reg [GW-1:0] g;
            reg [YW-1:0] yy;
            reg [XW-1:0] xx;
            reg [31:0]   jpos;      // Y*WO + X
            reg [31:0]   jg;        // g*P*HO*WO
            // the chunk is done (the walk advances): the (Y, X, g) counters advance with it
            wire step = running && (cur == {P{1'b0}}
                                    || (ev_ready && (cur & ~low_bit) == {P{1'b0}}));
            always @(posedge clk) begin
                if (rst || !running) begin
                    g <= {GW{1'b0}};
                    yy <= {YW{1'b0}};
                    xx <= {XW{1'b0}};
                    jpos <= 32'd0;
                    jg <= 32'd0;
                end else if (step) begin
                    /* verilator lint_off WIDTH */
                    if (g == G - 1 || G == 1) begin
                        g <= {GW{1'b0}};
                        jg <= 32'd0;
                        jpos <= jpos + 1;
                        if (xx == WO - 1 || WO == 1) begin
                            xx <= {XW{1'b0}};
                            yy <= yy + 1'b1;
                        end else begin
                            xx <= xx + 1'b1;
                        end
                    end else begin
                        g <= g + 1'b1;
                        jg <= jg + P * HO * WO;
                    end
                    /* verilator lint_on WIDTH */
                end
            end
            /* verilator lint_off WIDTH */
            /* verilator lint_off UNUSEDSIGNAL */
            wire [31:0] c = g * P + low;
            wire [31:0] flat = jg + low * (HO * WO) + jpos;
            wire [31:0] coord = (c << (YF + XF)) | ((YF > 0) ? (yy << XF) : 0)
                                 | ((XF > 0) ? xx : 0);
            /* verilator lint_on UNUSEDSIGNAL */
            /* verilator lint_on WIDTH */
            assign ev_index = (COORD != 0) ? coord[IW-1:0] : flat[IW-1:0];
        end
    endgenerate

    always @(posedge clk) begin
        if (wr_valid) masks[wr_chunk] <= wr_mask;
        if (rst) begin
            running <= 1'b0;
            chunk <= {KW{1'b0}};
            done_bits <= {P{1'b0}};
        end else if (!running) begin
            if (start) begin
                running <= 1'b1;
                chunk <= {KW{1'b0}};
                done_bits <= {P{1'b0}};
            end
        end else if (cur == {P{1'b0}} || (ev_ready && (cur & ~low_bit) == {P{1'b0}})) begin
            done_bits <= {P{1'b0}};
            if (last_chunk) running <= 1'b0;
            else chunk <= chunk + 1'b1;
        end else if (ev_ready) begin
            done_bits <= done_bits | low_bit;
        end
    end
endmodule
`default_nettype wire
