// qsnn_mem_spram: a single-port membrane RAM with the protocol of the iCE40 UltraPlus
// SB_SPRAM256KA (docs/hardware.md "Membranes in SPRAM").
//
// One access per cycle at `addr`:
//   we = 0: read; rdata = mem[addr] from the next cycle on, until the next access
//   we = 1: write the 4-bit nibbles of wdata whose bit of wmask is 1 (the others keep
//           their value); rdata is undefined (x) from the next cycle on, as the
//           primitive's DATAOUT
// DEPTH <= 16384 words of WIDTH bits (a multiple of 4). With `QSNN_SB_SPRAM defined (the
// iCE40 synthesis of qsnn bitstream and qsnn verify --netlist ice40) it is
// ceil(WIDTH/16) SB_SPRAM256KA side by side, word i in the primitives' word i; otherwise
// the same protocol on a behavioural RAM (RTL simulation, other families).
`default_nettype none
module qsnn_mem_spram #(
    parameter integer DEPTH = 256,
    parameter integer WIDTH = 16
) (
    input  wire clk,
    input  wire we,
    input  wire [((DEPTH > 1) ? $clog2(DEPTH) : 1)-1:0] addr,
    input  wire [WIDTH/4-1:0] wmask,
    input  wire [WIDTH-1:0] wdata,
    output wire [WIDTH-1:0] rdata
);
    /* verilator lint_off UNUSEDPARAM */
    localparam integer AW = (DEPTH > 1) ? $clog2(DEPTH) : 1;
    localparam integer NS = (WIDTH + 15) / 16;       // SB_SPRAM256KA side by side
    /* verilator lint_on UNUSEDPARAM */
    generate
        if (DEPTH < 1 || DEPTH > 16384) begin : g_bad_depth
            // DEPTH must be 1..16384 (one SB_SPRAM256KA deep)
            ERROR_qsnn_mem_spram_DEPTH_must_be_1_to_16384 u_error ();
        end
        if (WIDTH < 4 || WIDTH % 4 != 0) begin : g_bad_width
            // WIDTH must be a positive multiple of 4 (nibble write masks)
            ERROR_qsnn_mem_spram_WIDTH_must_be_a_multiple_of_4 u_error ();
        end
    endgenerate
`ifdef QSNN_SB_SPRAM
    wire [NS*16-1:0] din;
    wire [NS*4-1:0]  msk;
    wire [NS*16-1:0] dout;
    wire [13:0]      a14;
    assign din[WIDTH-1:0] = wdata;
    assign msk[WIDTH/4-1:0] = wmask;
    assign a14[AW-1:0] = addr;
    genvar s;
    if (NS * 16 > WIDTH) begin : g_pad
        assign din[NS*16-1:WIDTH] = {(NS * 16 - WIDTH){1'b0}};
        assign msk[NS*4-1:WIDTH/4] = {(NS * 4 - WIDTH / 4){1'b0}};
    end
    if (AW < 14) begin : g_apad
        assign a14[13:AW] = {(14 - AW){1'b0}};
    end
    for (s = 0; s < NS; s = s + 1) begin : g_spram
        SB_SPRAM256KA u_spram (
            .ADDRESS(a14), .DATAIN(din[s*16 +: 16]), .MASKWREN(msk[s*4 +: 4]), .WREN(we),
            .CHIPSELECT(1'b1), .CLOCK(clk), .STANDBY(1'b0), .SLEEP(1'b0), .POWEROFF(1'b1),
            .DATAOUT(dout[s*16 +: 16])
        );
    end
    assign rdata = dout[WIDTH-1:0];
`else
    reg [WIDTH-1:0] mem [0:DEPTH-1];
    reg [WIDTH-1:0] q;
    integer n;
    always @(posedge clk) begin
        if (we) begin
            for (n = 0; n < WIDTH / 4; n = n + 1)
                if (wmask[n]) mem[addr][n*4 +: 4] <= wdata[n*4 +: 4];
            q <= {WIDTH{1'bx}};
        end else begin
            q <= mem[addr];
        end
    end
    assign rdata = q;
`endif
endmodule
`default_nettype wire
