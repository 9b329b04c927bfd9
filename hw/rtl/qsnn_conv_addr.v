// qsnn_conv_addr: stage-0 address generator of a convolutional qsnn_layer
// (docs/hardware.md "Convolution engine"; Python model: qsnn.hw.convmap).
//
// Engine kernel KE, stride SE, DIV engine positions per pooled neuron and axis, engine
// map HE x WE = HO*DIV x WO*DIV, G channel groups of P lanes.
// An event (c, y, x), yp = y + PAD, visits the engine positions Ye with
// 0 <= yp - SE*Ye < KE, Ye < HE (a range [ylo, yhi]; the same for x), row-major, and per
// position the G groups, one chunk per cycle:
//   chunk = ((Ye >> log2 DIV)*WO + (Xe >> log2 DIV))*G + g        membrane word
//   waddr = ((c*KE + yp - SE*Ye)*KE + xp - SE*Xe)*G + g          weight word
// Start values are computed from the event's coordinates when it is accepted (`load`)
// and registered; later chunks are counters (no multiplier or divider on the way):
//   next g:        chunk + 1, waddr + 1
//   next Xe:       chunk + 1 (DIV = 1, or Xe crosses a pool window) else chunk - (G-1);
//                  waddr - (SE*G + G - 1)
//   next Ye:       row chunk + WO*G (DIV = 1, or Ye crosses a pool window) else the row's
//                  first chunk again; row waddr - SE*KE*G
// A linear pass (update, clear, loadv) runs chunk = 0 .. HO*WO*G-1 with g = chunk mod G.
// `adv` issues the next chunk; with neither `load` nor `adv` nor `hold` the generator
// returns to the start of a linear pass (chunk 0, g 0); `hold` keeps everything (the
// first of a chunk's two cycles in a qsnn_layer with M_SPRAM = 1). `last`: the current chunk is the event's (or the
// pass's) last one. SE and DIV are powers of two (checked by qsnn_layer).
`default_nettype none
module qsnn_conv_addr #(
    parameter integer H = 8,
    parameter integer W = 8,
    parameter integer PAD = 0,
    parameter integer KE = 3,
    parameter integer SE = 1,
    parameter integer DIV = 1,
    parameter integer HO = 6,
    parameter integer WO = 6,
    parameter integer G = 1,
    parameter integer EW = 7,   // event index bits: {c, y, x} packed (widths below)
    parameter integer MAW = 6,  // chunk bits
    parameter integer WAW = 4,  // weight address bits
    parameter integer GW = 1    // group bits
) (
    input  wire clk,
    input  wire rst,
    input  wire load,
    input  wire adv,
    input  wire hold,
    input  wire [EW-1:0] ev_index,
    output reg  [MAW-1:0] chunk,
    output reg  [GW-1:0] g,
    output reg  [WAW-1:0] waddr,
    output wire last
);
    localparam integer YW = (H > 1) ? $clog2(H) : 0;
    localparam integer XW = (W > 1) ? $clog2(W) : 0;
    localparam integer HE = HO * DIV;
    localparam integer WE = WO * DIV;
    localparam integer MW = HO * WO * G;
    localparam integer SSH = (SE > 1) ? $clog2(SE) : 0;
    localparam integer DSH = (DIV > 1) ? $clog2(DIV) : 0;
    localparam integer NW = ((KE > 1) ? $clog2(KE) : 0) + 1;  // positions - 1 per axis
    localparam integer DB = (DIV > 1) ? DSH : 1;               // pool-window phase bits
    localparam integer CB = 20;                                // coordinate arithmetic

    // a * k for a constant k by shifts and adds (no multiplier: DSP blocks stay free)
    function [CB-1:0] mulc(input [CB-1:0] a, input integer k);
        integer i;
        begin
            mulc = {CB{1'b0}};
            for (i = 0; i < 31; i = i + 1)
                if (((k >> i) & 1) == 1) mulc = mulc + (a << i);
        end
    endfunction

    // ---- event start values (combinational from the offered event) --------------------
    /* verilator lint_off WIDTH */
    wire [31:0] e32 = ev_index;
    wire [CB-1:0] ev_cc = e32 >> (YW + XW);
    wire [CB-1:0] ev_y = (YW == 0) ? 0 : ((e32 >> XW) & ((1 << YW) - 1));
    wire [CB-1:0] ev_x = (XW == 0) ? 0 : (e32 & ((1 << XW) - 1));
    // per axis: first position lo, positions - 1, first kernel tap (convmap.axis_range)
    wire [CB-1:0] yp = ev_y + PAD;
    wire [CB-1:0] xp = ev_x + PAD;
    wire [CB-1:0] ylo = (yp < KE) ? 0 : ((yp - KE + SE) >> SSH);
    wire [CB-1:0] xlo = (xp < KE) ? 0 : ((xp - KE + SE) >> SSH);
    wire [CB-1:0] yhi = ((yp >> SSH) > HE - 1) ? HE - 1 : (yp >> SSH);
    wire [CB-1:0] xhi = ((xp >> SSH) > WE - 1) ? WE - 1 : (xp >> SSH);
    wire [CB-1:0] ky0 = yp - (ylo << SSH);
    wire [CB-1:0] kx0 = xp - (xlo << SSH);
    wire [NW-1:0] yn0 = yhi - ylo;
    wire [NW-1:0] xn0 = xhi - xlo;
    wire [DB-1:0] yph0 = (DIV > 1) ? ylo : 0;
    wire [DB-1:0] xph0 = (DIV > 1) ? xlo : 0;
    wire [MAW-1:0] chunk0 = mulc(mulc(ylo >> DSH, WO) + (xlo >> DSH), G);
    wire [WAW-1:0] waddr0 = mulc(ev_cc, KE * KE * G) + mulc(ky0, KE * G) + mulc(kx0, G);
    /* verilator lint_on WIDTH */

    // ---- counters ------------------------------------------------------------------------
    reg            ev_mode;              // 1: an event's positions, 0: a linear pass
    reg [NW-1:0]   yrem, xrem, xlen;     // positions left in the column / row; row length
    reg [DB-1:0]   yph, xph, xph_row;    // Ye, Xe mod DIV (and Xe's at the row start)
    reg [MAW-1:0]  row_chunk;
    reg [WAW-1:0]  row_waddr;
    wire x_last = (xrem == {NW{1'b0}});
    wire y_last = (yrem == {NW{1'b0}});
    /* verilator lint_off WIDTH */
    wire g_last = (g == G - 1) || (G == 1);
    wire pass_last = (chunk == MW - 1) || (MW == 1);
    wire x_cross = (DIV == 1) || (xph == DIV - 1);   // Xe + 1 starts a new pool window
    wire y_cross = (DIV == 1) || (yph == DIV - 1);
    wire [MAW-1:0] next_row_chunk = y_cross ? row_chunk + WO * G : row_chunk;
    wire [WAW-1:0] next_row_waddr = row_waddr - SE * KE * G;
    wire [MAW-1:0] next_x_chunk = x_cross ? chunk + 1'b1 : chunk - (G - 1);
    wire [WAW-1:0] next_x_waddr = waddr - (SE * G + G - 1);
    /* verilator lint_on WIDTH */
    assign last = ev_mode ? (g_last && x_last && y_last) : pass_last;

    always @(posedge clk) begin
        if (rst) begin
            ev_mode <= 1'b0;
            chunk <= {MAW{1'b0}};
            g <= {GW{1'b0}};
        end else if (load) begin
            ev_mode <= 1'b1;
            g <= {GW{1'b0}};
            chunk <= chunk0;
            row_chunk <= chunk0;
            waddr <= waddr0;
            row_waddr <= waddr0;
            yrem <= yn0;
            xrem <= xn0;
            xlen <= xn0;
            yph <= yph0;
            xph <= xph0;
            xph_row <= xph0;
        end else if (adv && !ev_mode) begin
            chunk <= chunk + 1'b1;
            g <= g_last ? {GW{1'b0}} : g + 1'b1;
        end else if (adv && !g_last) begin
            g <= g + 1'b1;
            chunk <= chunk + 1'b1;
            waddr <= waddr + 1'b1;
        end else if (adv && !x_last) begin
            g <= {GW{1'b0}};
            xrem <= xrem - 1'b1;
            xph <= xph + 1'b1;
            chunk <= next_x_chunk;
            waddr <= next_x_waddr;
        end else if (adv) begin
            g <= {GW{1'b0}};
            xrem <= xlen;
            xph <= xph_row;
            yrem <= yrem - 1'b1;
            yph <= yph + 1'b1;
            row_chunk <= next_row_chunk;
            chunk <= next_row_chunk;
            row_waddr <= next_row_waddr;
            waddr <= next_row_waddr;
        end else if (!hold) begin
            ev_mode <= 1'b0;
            chunk <= {MAW{1'b0}};
            g <= {GW{1'b0}};
        end
    end
endmodule
`default_nettype wire
