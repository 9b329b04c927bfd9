// qsnn_lif_lane: the update of one LIF neuron (combinational), docs/hardware.md.
//   U    = sat_MB(v)                       (v is already MB bits: identity, kept explicit)
//   s    = (U > theta)                     strictly greater
//   base = (RESET_MODE == 1 && s) ? 0 : U  zero reset
//   leak = U - (U >>> k)        (LEAK_MULT == 0, k = LEAK_PARAM)
//        | (m * U) >>> F        (LEAK_MULT == 1, m = LEAK_PARAM, F = FRAC_BITS)
//   v_next = sat_MB(leak(base) + c - ((RESET_MODE == 0 && s) ? theta : 0))
`default_nettype none
module qsnn_lif_lane #(
    parameter integer MB = 16,          // membrane bits
    parameter integer LEAK_MULT = 1,    // 1: multiplier leak, 0: shift leak
    parameter integer LEAK_PARAM = 230, // m (mult) or k (shift)
    parameter integer FRAC_BITS = 8,    // F (mult)
    parameter integer RESET_MODE = 0    // 0 subtract, 1 zero, 2 none
) (
    input  wire signed [MB-1:0] v,
    input  wire signed [MB-1:0] c,
    input  wire signed [MB-1:0] theta,
    output wire                 s,
    output wire signed [MB-1:0] v_next
);
    localparam integer XB = MB + FRAC_BITS + 2;  // leak product width
    localparam integer SB = MB + 3;              // sum width
    localparam signed [SB-1:0] MAXV = (1 <<< (MB - 1)) - 1;
    localparam signed [SB-1:0] MINV = -(1 <<< (MB - 1));

    generate
        if (MB < 2 || MB > 32) begin : g_bad_mb
            $error("qsnn_lif_lane: MB must be 2..32");
        end
        if (RESET_MODE < 0 || RESET_MODE > 2) begin : g_bad_reset
            $error("qsnn_lif_lane: RESET_MODE must be 0, 1 or 2");
        end
        if (LEAK_MULT != 0 && (FRAC_BITS < 1 || FRAC_BITS > 16
                               || LEAK_PARAM < 0 || LEAK_PARAM > (1 << FRAC_BITS))) begin : g_bad_m
            $error("qsnn_lif_lane: mult leak needs 1 <= F <= 16 and 0 <= m <= 2^F");
        end
        if (LEAK_MULT == 0 && (LEAK_PARAM < 1 || LEAK_PARAM > 30)) begin : g_bad_k
            $error("qsnn_lif_lane: shift leak needs 1 <= k <= 30");
        end
    endgenerate

    assign s = (v > theta);
    wire signed [MB-1:0] base = (RESET_MODE == 1 && s) ? {MB{1'b0}} : v;

    localparam integer MW = FRAC_BITS + 2;       // m <= 2^F as a signed operand
    localparam [MW-1:0] M_W = LEAK_PARAM[MW-1:0];
    wire signed [XB-1:0] base_x = {{(XB - MB){base[MB-1]}}, base};
    wire signed [XB-1:0] m_x = {{(XB - MW){1'b0}}, M_W};
    wire signed [XB-1:0] prod = base_x * m_x;
    wire signed [XB-1:0] shifted = prod >>> FRAC_BITS;
    wire signed [XB-1:0] sh_k = base_x >>> LEAK_PARAM;
    // |leak(U)| <= |U|: the top bits are sign copies
    /* verilator lint_off UNUSEDSIGNAL */
    wire signed [XB-1:0] leak_x = (LEAK_MULT != 0) ? shifted : (base_x - sh_k);
    /* verilator lint_on UNUSEDSIGNAL */

    wire signed [SB-1:0] leak_s = leak_x[SB-1:0];
    wire signed [SB-1:0] c_s = {{(SB - MB){c[MB-1]}}, c};
    wire signed [SB-1:0] th_s = {{(SB - MB){theta[MB-1]}}, theta};
    wire signed [SB-1:0] sum = leak_s + c_s - ((RESET_MODE == 0 && s) ? th_s : {SB{1'b0}});
    assign v_next = (sum > MAXV) ? MAXV[MB-1:0] : (sum < MINV) ? MINV[MB-1:0] : sum[MB-1:0];
endmodule
`default_nettype wire
