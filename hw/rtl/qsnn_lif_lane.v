// qsnn_lif_lane: the update of one LIF neuron, pipelined (docs/hardware.md).
//   U    = v                              (v is held in MB bits: sat_MB(v) = v)
//   s    = (U > theta)                     strictly greater
//   base = (RESET_MODE == 1 && s) ? 0 : U  zero reset
//   a    = c - ((RESET_MODE == 0 && s) ? theta : 0)
//   leak = U - (U >>> k)        (LEAK_MULT == 0, k = LEAK_PARAM)
//        | (m * U) >>> F        (LEAK_MULT == 1, m = LEAK_PARAM, F = FRAC_BITS)
//   v_next = sat_MB(leak(base) + a)
// Pipeline (LATENCY = 2): cycle 0 (inputs): s, base, a -> registers; cycle 1: leak(base)
// -> register; cycle 2: v_next = sat(leak + a) and s are valid (combinational outputs
// of the cycle-1 registers). One neuron enters per cycle.
`default_nettype none
module qsnn_lif_lane #(
    parameter integer MB = 16,          // membrane bits
    parameter integer LEAK_MULT = 1,    // 1: multiplier leak, 0: shift leak
    parameter integer LEAK_PARAM = 230, // m (mult) or k (shift)
    parameter integer FRAC_BITS = 8,    // F (mult)
    parameter integer RESET_MODE = 0    // 0 subtract, 1 zero, 2 none
) (
    input  wire                 clk,
    input  wire signed [MB-1:0] v,
    input  wire signed [MB-1:0] c,
    input  wire signed [MB-1:0] theta,
    output wire                 s,
    output wire signed [MB-1:0] v_next
);
    localparam integer XB = MB + FRAC_BITS + 2;  // leak product width
    localparam integer SB = MB + 2;              // sum width (|leak| <= |U|, |a| < 2^MB)
    localparam signed [MB-1:0] MAXV = (1 <<< (MB - 1)) - 1;
    localparam signed [MB-1:0] MINV = -(1 <<< (MB - 1));

    generate
        if (MB < 2 || MB > 32) begin : g_bad_mb
            // MB must be 2..32
            ERROR_qsnn_lif_lane_MB_must_be_2_to_32 u_error ();
        end
        if (RESET_MODE < 0 || RESET_MODE > 2) begin : g_bad_reset
            // RESET_MODE must be 0, 1 or 2
            ERROR_qsnn_lif_lane_RESET_MODE_must_be_0_1_or_2 u_error ();
        end
        if (LEAK_MULT != 0 && (FRAC_BITS < 1 || FRAC_BITS > 16
                               || LEAK_PARAM < 0 || LEAK_PARAM > (1 << FRAC_BITS))) begin : g_bad_m
            // mult leak needs 1 <= F <= 16 and 0 <= m <= 2^F
            ERROR_qsnn_lif_lane_mult_leak_needs_F_1_to_16_and_m_0_to_2_pow_F u_error ();
        end
        if (LEAK_MULT == 0 && (LEAK_PARAM < 1 || LEAK_PARAM > 30)) begin : g_bad_k
            // shift leak needs 1 <= k <= 30
            ERROR_qsnn_lif_lane_shift_leak_needs_k_1_to_30 u_error ();
        end
    endgenerate

    // ---- cycle 0: fire, reset base, addend (compare and c - theta in parallel) ---------
    wire               s0 = (v > theta);
    wire signed [SB-1:0] c_s = {{(SB - MB){c[MB-1]}}, c};
    wire signed [SB-1:0] th_s = {{(SB - MB){theta[MB-1]}}, theta};
    wire signed [SB-1:0] c_minus = c_s - th_s;
    reg                s1;
    reg  signed [MB-1:0] base1;
    reg  signed [SB-1:0] a1;
    always @(posedge clk) begin
        s1 <= s0;
        base1 <= (RESET_MODE == 1 && s0) ? {MB{1'b0}} : v;
        a1 <= (RESET_MODE == 0 && s0) ? c_minus : c_s;
    end

    // ---- cycle 1: leak -------------------------------------------------------------------
    // m * U as a sum of shifted +-U over the canonical signed digits of m (m = 230:
    // 256 - 32 + 8 - 2, three adders instead of a multiplier)
    localparam integer MW = FRAC_BITS + 2;       // digits of m <= 2^F
    function integer csd_digit(input integer m, input integer i);  // -1, 0 or +1
        integer x, k, d;
        begin
            x = m;
            d = 0;
            for (k = 0; k <= i; k = k + 1) begin
                d = (x % 2 == 0) ? 0 : 2 - (x % 4);
                x = (x - d) / 2;
            end
            csd_digit = d;
        end
    endfunction
    wire signed [XB-1:0] base_x = {{(XB - MB){base1[MB-1]}}, base1};
    /* verilator lint_off UNOPTFLAT */
    wire signed [XB-1:0] part [0:MW];            // part[i]: the digits below i summed
    /* verilator lint_on UNOPTFLAT */
    assign part[0] = {XB{1'b0}};
    genvar gi;
    generate
        for (gi = 0; gi < MW; gi = gi + 1) begin : g_csd
            if (LEAK_MULT != 0 && csd_digit(LEAK_PARAM, gi) == 1) begin : g_add
                assign part[gi + 1] = part[gi] + (base_x <<< gi);
            end else if (LEAK_MULT != 0 && csd_digit(LEAK_PARAM, gi) == -1) begin : g_sub
                assign part[gi + 1] = part[gi] - (base_x <<< gi);
            end else begin : g_zero
                assign part[gi + 1] = part[gi];
            end
        end
    endgenerate
    /* verilator lint_off UNUSEDSIGNAL */
    wire signed [XB-1:0] leak_x = (LEAK_MULT != 0) ? (part[MW] >>> FRAC_BITS)
                                                   : (base_x - (base_x >>> LEAK_PARAM));
    /* verilator lint_on UNUSEDSIGNAL */
    reg                s2;
    reg  signed [MB-1:0] leak2;                  // |leak(U)| <= |U|: fits MB bits
    reg  signed [SB-1:0] a2;
    always @(posedge clk) begin
        s2 <= s1;
        leak2 <= leak_x[MB-1:0];
        a2 <= a1;
    end

    // ---- cycle 2: add, saturate (in range iff the bits above MB-1 are sign copies) --------
    wire signed [SB-1:0] sum = {{(SB - MB){leak2[MB-1]}}, leak2} + a2;
    wire [SB-MB:0] top = sum[SB-1:MB-1];
    wire in_range = (&top) || !(|top);
    assign v_next = in_range ? sum[MB-1:0] : (sum[SB-1] ? MINV : MAXV);
    assign s = s2;
endmodule
`default_nettype wire
