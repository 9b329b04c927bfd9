// qsnn_spikebuf: holds one layer's spike masks of the current step (written chunk by chunk
// by the update pass) and, on `start`, emits the spiking neurons' indices in increasing
// order as events (valid/ready). A chunk without spikes costs one cycle; each spike
// costs the cycles until the consumer accepts it.
`default_nettype none
module qsnn_spikebuf #(
    parameter integer N = 128,
    parameter integer P = 4
) (
    input  wire clk,
    input  wire rst,
    input  wire wr_valid,
    input  wire [((((N + P - 1) / P) > 1) ? $clog2((N + P - 1) / P) : 1)-1:0] wr_chunk,
    input  wire [P-1:0] wr_mask,
    input  wire start,
    output wire busy,
    output wire ev_valid,
    input  wire ev_ready,
    output wire [((N > 1) ? $clog2(N) : 1)-1:0] ev_index
);
    localparam integer K = (N + P - 1) / P;
    localparam integer KW = (K > 1) ? $clog2(K) : 1;
    localparam integer IW = (N > 1) ? $clog2(N) : 1;
    localparam integer PW = (P > 1) ? $clog2(P) : 1;

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
    /* verilator lint_off WIDTH */
    /* verilator lint_off UNUSEDSIGNAL */
    wire [31:0] index_full = chunk * P + low;
    /* verilator lint_on UNUSEDSIGNAL */
    /* verilator lint_on WIDTH */
    assign ev_index = index_full[IW-1:0];

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
