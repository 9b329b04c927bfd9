// qsnn_layer: one LIF layer, fully connected or convolutional, time-multiplexed over P lanes
// (docs/hardware.md).
//
// Fully connected (H_IN = W_IN = KS = KP = 1, the defaults): N_IN inputs, N neurons.
// Convolutional: input map N_IN x H_IN x W_IN, N output channels, kernel KS, padding PAD,
// sum pool KP (a power of two dividing the conv map) fused into the kernel (FUSED = 1:
// kernel KS+KP-1 at stride KP, the weights Wf of docs/spec.md §1a) or as an address map
// (FUSED = 0: kernel KS, KP*KP positions per pooled neuron); neurons (o, Y, X) of the
// HO x WO LIF map; stage 0 from qsnn_conv_addr (docs/hardware.md "Convolution engine").
// The event index is the packed coordinate {c, y, x} (a size-1 dimension has no bits, so
// a fully connected layer sees the input index j). C_RAM = 0 drops the C memory (C = the
// bias word: hidden layers, which never take to_c events).
//
// Memories (G = ceil(N/P) channel groups, K = HO*WO*G chunks of P neurons (fully
// connected: K = G), lane 0 in the low bits of every word):
//   W      [N_IN*K] x P*WB   word j*K + c = W[c*P + p][j]   ROM ($readmemh W_FILE) when
//                            W_RUNTIME = 0; else RAM written through the load port
//                            (wl_we, wl_addr, wl_data) while the layer is idle
//          conv: [N_IN*KE*KE*G], word ((c*KE + u)*KE + v)*G + g = Wx[g*P + p, c, u, v]
//   theta  [G]      x P*MB                                  ($readmemh TH_FILE)
//   bias   [G]      x P*MB                                  ($readmemh B_FILE)
//   C RAM  [K]      x P*MB   constant current (bias + direct-input MAC; C_RAM = 1)
//   V RAM  [K]      x P*MB   membrane accumulator; conv: word (Y*WO + X)*G + g
// Commands (one-cycle pulses while idle):
//   cmd_clear : C[c] <- bias[c], V[c] <- bias[c]             busy K + ACC_DRAIN cycles
//   cmd_loadv : V[c] <- C[c]                                 busy K + ACC_DRAIN cycles
//   (ACC_DRAIN = UPD_DRAIN = 4: qsnn.hw.cycles)
//   cmd_update: for every chunk, P qsnn_lif_lane's: s, V[c] <- v_next;
//               spk_valid/spk_chunk/spk_mask report each chunk's spikes
//                                                            busy K + UPD_DRAIN cycles
// Events (valid/ready, accepted while idle): index j, value v, to_c:
//   to_c = 0: V[c] += v * W[.][j]   to_c = 1: C[c] += v * W[.][j]   (K cycles per event)
//   conv: every chunk of qsnn_conv_addr's sequence (nY*nX*G cycles per event)
//
// Pipeline (one chunk per cycle):
//   stage 0  control: chunk counter, W address j*K + c from registered j and c
//            (conv: chunk, group and W address registers of qsnn_conv_addr)
//   stage 1  W word out of its RAM -> register; update/clear/loadv: C/V/theta/bias read
//   stage 2  accumulate: products v * W -> register, C/V read issued;
//            update: lanes' cycle 0; clear/loadv: write
//   stage 3  accumulate: sum = acc + product -> register; update: lanes' cycle 1 (leak)
//   stage 4  accumulate: saturate, write; update: lanes' cycle 2: V write, spikes out
//            (registered: spk_* one cycle later)
// Forwarding covers events that revisit a chunk before its write reached the RAM (K <= 2):
// the stage-4 value (one event back, K = 1) or the value written in the previous cycle
// (K = 2), newest first. Events are accepted only while no update/clear/loadv write is
// in flight.
// Stored values saturate to MB bits (never reached for an IR whose widths came from
// qsnn.export.widths).
// M_SPRAM = 1: V (and C) in one single-port qsnn_mem_spram (iCE40 SB_SPRAM256KA), word
// {C, V} with each field padded to FW = 4*ceil(P*MB/4) bits (nibble write masks); every
// chunk takes 2 cycles in stage 0 (the second issues it), every pass and event reads its
// word in stage 1 and writes in stage 4 (update, accumulate) or 2 (clear, loadv): reads
// and writes never meet. An event is not accepted from idle the cycle after a chunk
// issued (its first read would meet that chunk's write); the chunk two cycles back is
// forwarded (sel_fwd) as for K = 2.
`default_nettype none
module qsnn_layer #(
    parameter integer N_IN = 64,
    parameter integer N = 128,
    parameter integer P = 4,
    parameter integer WB = 4,
    parameter integer MB = 16,
    parameter integer VB = 1,
    parameter integer LEAK_MULT = 1,
    parameter integer LEAK_PARAM = 230,
    parameter integer FRAC_BITS = 8,
    parameter integer RESET_MODE = 0,
    parameter integer W_RUNTIME = 0,
    parameter integer H_IN = 1,
    parameter integer W_IN = 1,
    parameter integer KS = 1,
    parameter integer PAD = 0,
    parameter integer KP = 1,
    parameter integer FUSED = 1,
    parameter integer C_RAM = 1,
    parameter integer M_SPRAM = 0,
    parameter W_FILE = "w.mem",
    parameter TH_FILE = "theta.mem",
    parameter B_FILE = "bias.mem"
) (
    input  wire clk,
    input  wire rst,
    input  wire cmd_clear,
    input  wire cmd_loadv,
    input  wire cmd_update,
    output wire busy,
    input  wire ev_valid,
    output wire ev_ready,
    input  wire [((((N_IN > 1) ? $clog2(N_IN) : 0) + ((H_IN > 1) ? $clog2(H_IN) : 0)
                   + ((W_IN > 1) ? $clog2(W_IN) : 0)) > 0
                  ? (((N_IN > 1) ? $clog2(N_IN) : 0) + ((H_IN > 1) ? $clog2(H_IN) : 0)
                     + ((W_IN > 1) ? $clog2(W_IN) : 0)) : 1)-1:0] ev_index,
    input  wire [VB-1:0] ev_value,
    input  wire ev_to_c,
    output reg  spk_valid,
    output reg  [(((((H_IN + 2 * PAD - KS + 1) / KP) * ((W_IN + 2 * PAD - KS + 1) / KP)
                    * ((N + P - 1) / P)) > 1)
                  ? $clog2(((H_IN + 2 * PAD - KS + 1) / KP) * ((W_IN + 2 * PAD - KS + 1) / KP)
                           * ((N + P - 1) / P)) : 1)-1:0] spk_chunk,
    output reg  [P-1:0] spk_mask,
    /* verilator lint_off UNUSEDSIGNAL */
    input  wire wl_we,       // load port (W_RUNTIME = 1 only)
    input  wire [(((N_IN * ((FUSED != 0) ? KS + KP - 1 : KS) * ((FUSED != 0) ? KS + KP - 1 : KS)
                    * ((N + P - 1) / P)) > 1)
                  ? $clog2(N_IN * ((FUSED != 0) ? KS + KP - 1 : KS)
                           * ((FUSED != 0) ? KS + KP - 1 : KS) * ((N + P - 1) / P)) : 1)-1:0]
                 wl_addr,
    input  wire [P*WB-1:0] wl_data
    /* verilator lint_on UNUSEDSIGNAL */
);
    localparam integer G = (N + P - 1) / P;                // channel groups
    localparam integer GW = (G > 1) ? $clog2(G) : 1;
    localparam integer CONV = (H_IN != 1 || W_IN != 1 || KS != 1 || KP != 1) ? 1 : 0;
    localparam integer HC = H_IN + 2 * PAD - KS + 1;        // conv map
    localparam integer WC = W_IN + 2 * PAD - KS + 1;
    localparam integer HO = HC / KP;                         // LIF map
    localparam integer WO = WC / KP;
    /* verilator lint_off UNUSEDPARAM */
    localparam integer KE = (FUSED != 0) ? KS + KP - 1 : KS; // engine kernel, stride, DIV
    localparam integer SE = (FUSED != 0) ? KP : 1;
    localparam integer DIV = (FUSED != 0) ? 1 : KP;
    localparam integer K = HO * WO * G;                      // chunks (membrane words)
    localparam integer KW = (K > 1) ? $clog2(K) : 1;
    localparam integer WD = N_IN * KE * KE * G;
    localparam integer WAW = (WD > 1) ? $clog2(WD) : 1;
    localparam integer IW = (N_IN > 1) ? $clog2(N_IN) : 1;
    localparam integer EWS = ((N_IN > 1) ? $clog2(N_IN) : 0) + ((H_IN > 1) ? $clog2(H_IN) : 0)
                             + ((W_IN > 1) ? $clog2(W_IN) : 0);
    localparam integer EW = (EWS > 0) ? EWS : 1;            // event index {c, y, x}
    /* verilator lint_on UNUSEDPARAM */
    localparam integer PB = VB + WB + 1;                   // product bits
    localparam integer AB = ((MB > PB) ? MB : PB) + 1;     // adder bits
    localparam signed [MB-1:0] MAXV = (1 <<< (MB - 1)) - 1;
    localparam signed [MB-1:0] MINV = -(1 <<< (MB - 1));

    localparam [2:0] S_IDLE = 3'd0, S_PROC = 3'd1, S_CLEAR = 3'd2, S_LOADV = 3'd3,
                     S_UPDATE = 3'd4;

    generate
        if (P < 1 || N < 1 || N_IN < 1) begin : g_bad_size
            // N, N_IN and P must be >= 1
            ERROR_qsnn_layer_N_N_IN_and_P_must_be_at_least_1 u_error ();
        end
        if (WB < 2 || WB > 8) begin : g_bad_wb
            // WB must be 2..8
            ERROR_qsnn_layer_WB_must_be_2_to_8 u_error ();
        end
        if (VB < 1 || VB > 16) begin : g_bad_vb
            // VB must be 1..16
            ERROR_qsnn_layer_VB_must_be_1_to_16 u_error ();
        end
        if (W_RUNTIME < 0 || W_RUNTIME > 1) begin : g_bad_wr
            // W_RUNTIME must be 0 or 1
            ERROR_qsnn_layer_W_RUNTIME_must_be_0_or_1 u_error ();
        end
        if (H_IN < 1 || W_IN < 1 || KS < 1 || KP < 1) begin : g_bad_geom
            // H_IN, W_IN, KS and KP must be >= 1
            ERROR_qsnn_layer_H_IN_W_IN_KS_and_KP_must_be_at_least_1 u_error ();
        end
        if (PAD < 0 || PAD > KS - 1) begin : g_bad_pad
            // PAD must be 0..KS-1
            ERROR_qsnn_layer_PAD_must_be_0_to_KS_minus_1 u_error ();
        end
        if (HC < 1 || WC < 1) begin : g_bad_kernel
            // KS larger than the padded input map
            ERROR_qsnn_layer_KS_larger_than_the_padded_input_map u_error ();
        end
        if ((KP & (KP - 1)) != 0) begin : g_bad_kp
            // KP must be a power of two
            ERROR_qsnn_layer_KP_must_be_a_power_of_two u_error ();
        end
        if (HC % KP != 0 || WC % KP != 0) begin : g_bad_pool
            // KP must divide the conv map
            ERROR_qsnn_layer_KP_must_divide_the_conv_map u_error ();
        end
        if (FUSED < 0 || FUSED > 1 || C_RAM < 0 || C_RAM > 1) begin : g_bad_flags
            // FUSED and C_RAM must be 0 or 1
            ERROR_qsnn_layer_FUSED_and_C_RAM_must_be_0_or_1 u_error ();
        end
        if (M_SPRAM < 0 || M_SPRAM > 1) begin : g_bad_mspram
            // M_SPRAM must be 0 or 1
            ERROR_qsnn_layer_M_SPRAM_must_be_0_or_1 u_error ();
        end
    endgenerate

    // ---- memories ------------------------------------------------------------------
    reg  [P*WB-1:0] w_rd;
    wire [WAW-1:0]  w_ra;        // W address (stage 0): j * K + chunk
    generate
        if (W_RUNTIME == 0) begin : g_wrom
            reg [P*WB-1:0] wmem [0:WD-1];
            initial $readmemh(W_FILE, wmem);
            always @(posedge clk) w_rd <= wmem[w_ra];
        end else begin : g_wram
            // single port (iCE40 SPRAM-friendly): the load port owns it while it writes;
            // the iCE40 synthesis puts it in SPRAM (Yosys would pick EBR for small ones)
`ifdef QSNN_SB_SPRAM
            (* ram_style = "huge" *)
`endif
            reg [P*WB-1:0] wmem [0:WD-1];
            wire [WAW-1:0] w_a = wl_we ? wl_addr : w_ra;
            always @(posedge clk) begin
                if (wl_we) wmem[w_a] <= wl_data;
                else w_rd <= wmem[w_a];
            end
        end
    endgenerate

    reg [P*MB-1:0] thmem [0:G-1];
    reg [P*MB-1:0] bmem [0:G-1];
    /* verilator lint_off UNUSEDSIGNAL */
    reg [P*MB-1:0] vmem [0:K-1];   // M_SPRAM = 0 only (else qsnn_mem_spram u_vmem)
    reg [P*MB-1:0] cmem [0:K-1];   // C_RAM = 1, M_SPRAM = 0 only
    /* verilator lint_on UNUSEDSIGNAL */
    initial begin
        $readmemh(TH_FILE, thmem);
        $readmemh(B_FILE, bmem);
    end

    reg  [P*MB-1:0] th_rd, b_rd;
    wire [P*MB-1:0] c_rd, v_rd;
    reg             c_we, v_we;
    reg  [KW-1:0]   wa;          // chunk write address
    /* verilator lint_off UNUSEDSIGNAL */
    reg  [P*MB-1:0] c_wd;        // unused with M_SPRAM = 1 and C_RAM = 0
    /* verilator lint_on UNUSEDSIGNAL */
    reg  [P*MB-1:0] v_wd;

    // ---- control (stage 0) ---------------------------------------------------------
    reg [2:0]    state;
    /* verilator lint_off UNUSEDSIGNAL */
    reg [KW-1:0] chunk;         // fully connected: chunk counter (conv: qsnn_conv_addr)
    reg [IW-1:0] ev_j;          // fully connected: the event's input index, registered
    /* verilator lint_on UNUSEDSIGNAL */
    reg [VB-1:0] ev_v;
    reg          ev_c;
    reg          ph;            // M_SPRAM: the chunk's second stage-0 cycle (it issues)
    wire         step = (M_SPRAM == 0) || ph;
    wire [KW-1:0] issue;        // chunk issued this cycle
    wire         last;          // ... is the pass's or the event's last one
    wire [GW-1:0] grp;          // conv: its channel group
    // stage registers p1 .. p4 (stage n holds the chunk issued n cycles ago)
    reg          p1_valid, p2_valid, p3_valid, p4_valid;
    reg [2:0]    p1_kind, p2_kind, p3_kind, p4_kind;
    reg [KW-1:0] p1_chunk, p2_chunk, p3_chunk, p4_chunk;
    reg [VB-1:0] p1_v, p2_v;
    reg          p1_c, p2_c, p3_c, p4_c;
    /* verilator lint_off UNUSEDSIGNAL */
    reg [GW-1:0] p1_g;          // conv: theta/bias word of the chunk in stage 1
    /* verilator lint_on UNUSEDSIGNAL */
    wire accept = ev_valid && ev_ready;
    // an update/clear/loadv write still in flight (accumulates are forwarded instead)
    wire draining = (p1_valid && p1_kind != S_PROC) || (p2_valid && p2_kind != S_PROC)
                    || (p3_valid && p3_kind != S_PROC) || (p4_valid && p4_kind != S_PROC);
    assign ev_ready = (state == S_IDLE && !cmd_clear && !cmd_loadv && !cmd_update && !draining
                       && !(M_SPRAM != 0 && p1_valid))
                      || (state == S_PROC && last && step);
    assign busy = (state != S_IDLE) || p1_valid || p2_valid || p3_valid || p4_valid;

    generate
        if (CONV == 0) begin : g_fc
            // W address j*K + chunk from the registered event index and the chunk counter
            assign issue = chunk;
            assign last = (chunk == K[KW-1:0] - 1'b1) || (K == 1);
            /* verilator lint_off WIDTH */
            assign w_ra = ev_j * K + chunk;
            /* verilator lint_on WIDTH */
            assign grp = {GW{1'b0}};
        end else begin : g_conv
            qsnn_conv_addr #(
                .H(H_IN), .W(W_IN), .PAD(PAD), .KE(KE), .SE(SE), .DIV(DIV),
                .HO(HO), .WO(WO), .G(G), .EW(EW), .MAW(KW), .WAW(WAW), .GW(GW)
            ) u_addr (
                .clk(clk), .rst(rst), .load(accept), .adv(state != S_IDLE && !last && step),
                .hold(!step),
                .ev_index(ev_index), .chunk(issue), .g(grp), .waddr(w_ra), .last(last)
            );
        end
    endgenerate

    // S_IDLE accepts an event (issued from the next cycle) or a command; S_PROC issues one
    // chunk per cycle and accepts the next event while issuing its last chunk.
    always @(posedge clk) begin
        if (rst) begin
            state <= S_IDLE;
            chunk <= {KW{1'b0}};
            ev_j <= {IW{1'b0}};
            p1_valid <= 1'b0;
            p2_valid <= 1'b0;
            p3_valid <= 1'b0;
            p4_valid <= 1'b0;
            ev_v <= {VB{1'b0}};
            ev_c <= 1'b0;
            ph <= 1'b0;
        end else begin
            ph <= (M_SPRAM != 0) && (state != S_IDLE) && !ph;
            p1_valid <= (state != S_IDLE) && step;
            p2_valid <= p1_valid;
            p3_valid <= p2_valid;
            p4_valid <= p3_valid;
            if (accept) begin
                ev_v <= ev_value;
                ev_c <= ev_to_c && (C_RAM != 0);
                ev_j <= ev_index[IW-1:0];
            end
            if (state == S_IDLE) begin
                chunk <= {KW{1'b0}};
                if (accept) state <= S_PROC;
                else if (cmd_clear) state <= S_CLEAR;
                else if (cmd_loadv) state <= S_LOADV;
                else if (cmd_update) state <= S_UPDATE;
            end else if (!step) begin
                // M_SPRAM: the chunk's first cycle
            end else if (last) begin
                chunk <= {KW{1'b0}};
                if (!(state == S_PROC && accept)) state <= S_IDLE;
            end else begin
                chunk <= chunk + 1'b1;
            end
        end
        p1_kind <= state;
        p1_chunk <= issue;
        p1_g <= grp;
        p1_v <= ev_v;
        p1_c <= ev_c;
        p2_kind <= p1_kind;
        p2_chunk <= p1_chunk;
        p2_v <= p1_v;
        p2_c <= p1_c;
        p3_kind <= p2_kind;
        p3_chunk <= p2_chunk;
        p3_c <= p2_c;
        p4_kind <= p3_kind;
        p4_chunk <= p3_chunk;
        p4_c <= p3_c;
    end

    // ---- stage 1: W word registered (deep ROM cascades: no logic after the RAM) ------
    reg  [P*WB-1:0] w_q;
    always @(posedge clk) w_q <= w_rd;

    // ---- stage 2: products; C/V read (accumulate one stage later than the others) ----
    // VB = 1 (spikes): v * W is W or 0, a mux; written as a product, Yosys maps it to a
    // DSP (an ECP5 MULT18X18D per lane)
    reg  [P*(PB)-1:0] p3_prod;
    genvar g;
    generate
        for (g = 0; g < P; g = g + 1) begin : g_prod
            wire signed [WB-1:0] w = w_q[g*WB +: WB];
            if (VB == 1) begin : g_spike
                always @(posedge clk)
                    p3_prod[g*PB +: PB] <= p2_v[0] ? {{(PB - WB){w[WB-1]}}, w} : {PB{1'b0}};
            end else begin : g_value
                always @(posedge clk) p3_prod[g*PB +: PB] <= $signed({1'b0, p2_v}) * w;
            end
        end
    endgenerate

    wire p2_proc = p2_valid && p2_kind == S_PROC;
    // the passes never overlap: while an accumulate is in stage 2, stage 1 holds none else
    wire [KW-1:0] ra = p2_proc ? p2_chunk : p1_chunk;
    // theta/bias word: the chunk (fully connected, G = K) or its group (conv; read for
    // update/clear/loadv only, which are in stage 1)
    /* verilator lint_off WIDTH */
    wire [GW-1:0] gra = (CONV != 0) ? p1_g : ra;
    /* verilator lint_on WIDTH */
    // C RAM (C_RAM = 0: never written nor used, synthesis removes it; C = the bias word)
    always @(posedge clk) begin
        th_rd <= thmem[gra];
        b_rd  <= bmem[gra];
    end
    wire [P*MB-1:0] acc_c, acc_v;   // the C/V words of the chunk in stage 3
    generate
        if (M_SPRAM == 0) begin : g_vdual
            reg [P*MB-1:0] c_q, v_q;
            always @(posedge clk) begin
                c_q <= cmem[ra];
                v_q <= vmem[ra];
                if (c_we && C_RAM != 0) cmem[wa] <= c_wd;
                if (v_we) vmem[wa] <= v_wd;
            end
            assign c_rd = c_q;
            assign v_rd = v_q;
            assign acc_c = c_q;
            assign acc_v = v_q;
        end else begin : g_vspram
            // one word {C, V}: read in stage 1 (p1_chunk), written in stage 4 or 2
            localparam integer FW = 4 * ((P * MB + 3) / 4);
            localparam integer MW = (C_RAM != 0) ? 2 * FW : FW;
            /* verilator lint_off UNUSEDSIGNAL */
            wire [MW-1:0] rdata;     // the padding bits are never read
            /* verilator lint_on UNUSEDSIGNAL */
            wire [MW-1:0] wdata;
            wire [MW/4-1:0] wmask;
            reg  [P*MB-1:0] c_q, v_q;   // stage 3: the word read two cycles back
            assign v_rd = rdata[P*MB-1:0];
            assign wdata[P*MB-1:0] = v_wd;
            assign wmask[FW/4-1:0] = {(FW / 4){v_we}};
            if (FW > P * MB) begin : g_vpad
                assign wdata[FW-1:P*MB] = {(FW - P * MB){1'b0}};
            end
            if (C_RAM != 0) begin : g_c
                assign c_rd = rdata[FW +: P*MB];
                assign wdata[FW +: P*MB] = c_wd;
                assign wmask[MW/4-1:FW/4] = {(FW / 4){c_we}};
                if (FW > P * MB) begin : g_cpad
                    assign wdata[MW-1:FW+P*MB] = {(FW - P * MB){1'b0}};
                end
            end else begin : g_noc
                assign c_rd = {(P * MB){1'b0}};
            end
            always @(posedge clk) begin
                c_q <= c_rd;
                v_q <= v_rd;
            end
            assign acc_c = c_q;
            assign acc_v = v_q;
            qsnn_mem_spram #(.DEPTH(K), .WIDTH(MW)) u_vmem (
                .clk(clk), .we(c_we || v_we), .addr(c_we || v_we ? wa : p1_chunk),
                .wmask(wmask), .wdata(wdata), .rdata(rdata)
            );
        end
    endgenerate
    wire [P*MB-1:0] c_cur = (C_RAM != 0) ? c_rd : b_rd;

    // forwarding selects for the stage-3 accumulate, registered one cycle ahead:
    //   sel_s4 : the chunk in stage 4 next cycle is the one stage 3 will add to (K = 1)
    //   sel_fwd: the chunk stage 4 writes now is the one stage 2 reads now (K = 2; the
    //            read sees the old word), so keep the written value for next cycle
    wire p3_proc = p3_valid && p3_kind == S_PROC;
    reg            sel_s4, sel_fwd;
    // write-port selects, decoded one stage ahead (one-hot: the passes never overlap)
    reg            wr_acc, wr_upd, wr_clr, wr_ldv;
    always @(posedge clk) begin
        wr_acc <= p3_proc && !rst;
        wr_upd <= p3_valid && p3_kind == S_UPDATE && !rst;
        wr_clr <= p1_valid && p1_kind == S_CLEAR && !rst;
        wr_ldv <= p1_valid && p1_kind == S_LOADV && !rst;
    end
    reg [P*MB-1:0] fwd_data;
    wire [P*MB-1:0] acc_wd;                     // stage 4: saturated accumulate result
    always @(posedge clk) begin
        sel_s4 <= p2_proc && p3_proc && p2_chunk == p3_chunk && p2_c == p3_c && !rst;
        sel_fwd <= p2_proc && wr_acc && p2_chunk == p4_chunk && p2_c == p4_c && !rst;
        fwd_data <= acc_wd;
    end

    // ---- stage 3: accumulate sum; stage 4: saturate; stages 2-4: lanes -----------------
    wire [P*MB-1:0] acc_ram = p3_c ? ((M_SPRAM != 0) ? acc_c : c_cur) : acc_v;
    wire [P*MB-1:0] acc_in = sel_s4 ? acc_wd : (sel_fwd ? fwd_data : acc_ram);
    reg  [P*AB-1:0] sum4;
    wire [P*MB-1:0] upd_v;
    wire [P-1:0]    upd_s;

    generate
        for (g = 0; g < P; g = g + 1) begin : g_lane
            wire signed [PB-1:0] prod = p3_prod[g*PB +: PB];
            wire signed [MB-1:0] a = acc_in[g*MB +: MB];
            always @(posedge clk)
                sum4[g*AB +: AB] <= {{(AB - MB){a[MB-1]}}, a} + {{(AB - PB){prod[PB-1]}}, prod};
            // in range iff the bits above MB-1 are copies of the sign
            wire [AB-1:0] sum = sum4[g*AB +: AB];
            wire [AB-MB:0] top = sum[AB-1:MB-1];
            wire in_range = (&top) || !(|top);
            assign acc_wd[g*MB +: MB] = in_range ? sum[MB-1:0] : (sum[AB-1] ? MINV : MAXV);
            qsnn_lif_lane #(
                .MB(MB), .LEAK_MULT(LEAK_MULT), .LEAK_PARAM(LEAK_PARAM),
                .FRAC_BITS(FRAC_BITS), .RESET_MODE(RESET_MODE)
            ) u_lane (
                .clk(clk), .v(v_rd[g*MB +: MB]), .c(c_cur[g*MB +: MB]),
                .theta(th_rd[g*MB +: MB]), .s(upd_s[g]), .v_next(upd_v[g*MB +: MB])
            );
        end
    endgenerate

    // one write per cycle: the passes never overlap (commands and events wait for idle)
    //   update (stage 4) -> V;  accumulate (stage 4) -> C or V;  clear (stage 2) -> C, V;
    //   loadv (stage 2) -> V
    always @* begin
        c_we = wr_clr || (wr_acc && p4_c);
        v_we = wr_upd || wr_clr || wr_ldv || (wr_acc && !p4_c);
        wa = (wr_upd || wr_acc) ? p4_chunk : p2_chunk;
        c_wd = ({(P*MB){wr_acc}} & acc_wd) | ({(P*MB){wr_clr}} & b_rd);
        v_wd = ({(P*MB){wr_upd}} & upd_v) | ({(P*MB){wr_acc}} & acc_wd)
               | ({(P*MB){wr_clr}} & b_rd) | ({(P*MB){wr_ldv}} & c_cur);
    end

    always @(posedge clk) begin
        spk_valid <= 1'b0;
        spk_chunk <= p4_chunk;
        spk_mask <= upd_s;
        if (!rst && wr_upd) spk_valid <= 1'b1;
    end
endmodule
`default_nettype wire
