// qsnn_encoder: input stage. Loads one image from the byte stream, then produces the
// first layer's input events (docs/spec.md §1, docs/hardware.md):
//   ENC = 0 direct: on start, one MAC event (j, p_j, to_c = 1) per nonzero pixel, once
//   ENC = 1 rate:   on start (once per step), event (j, 1) when
//                   lfsr_low8 * PIXEL_MAX < p_j * 256, the LFSR (qsnn_lfsr) stepped once
//                   per pixel in order and re-seeded with LFSR_SEED for every image
//   ENC = 2 events: on start (once per step), event (j, 1) for every 1 in frame t
// The scan reads one pixel per cycle while no event waits for the consumer.
// H x W > 1 (a convolutional first layer): the image is C = N_IN/(H*W) channels of H x W
// in row-major (c, y, x) order; coordinate counters run beside the flat index j and
// ev_index is the packed coordinate {c, y, x} (a size-1 dimension has no bits; H = W = 1:
// the flat index j). Only real pixels are scanned (padding is the engine's address maths),
// so the rate LFSR steps once per real pixel (docs/spec.md §1a).
`default_nettype none
module qsnn_encoder #(
    parameter integer N_IN = 64,
    parameter integer T = 20,
    parameter integer ENC = 0,
    parameter integer PIXEL_MAX = 16,
    parameter integer VB = 8,
    parameter [31:0] LFSR_SEED = 32'hACE1,
    parameter integer H = 1,
    parameter integer W = 1
) (
    input  wire clk,
    input  wire rst,
    input  wire s_valid,
    output wire s_ready,
    /* verilator lint_off UNUSEDSIGNAL */
    input  wire [7:0] s_data,  // events: only bit 0 is stored
    /* verilator lint_on UNUSEDSIGNAL */
    output reg  loaded,
    input  wire release_image,
    input  wire start,
    output wire busy,
    output wire ev_valid,
    input  wire ev_ready,
    output wire [(((((N_IN / (H * W) > 1) ? $clog2(N_IN / (H * W)) : 0)
                    + ((H > 1) ? $clog2(H) : 0) + ((W > 1) ? $clog2(W) : 0)) > 0)
                  ? (((N_IN / (H * W) > 1) ? $clog2(N_IN / (H * W)) : 0)
                     + ((H > 1) ? $clog2(H) : 0) + ((W > 1) ? $clog2(W) : 0)) : 1)-1:0] ev_index,
    output wire [VB-1:0] ev_value,
    output wire ev_to_c
);
    localparam integer IW = (N_IN > 1) ? $clog2(N_IN) : 1;
    localparam integer DEPTH = (ENC == 2) ? N_IN * T : N_IN;
    localparam integer DW = (ENC == 2) ? 1 : 8;
    localparam integer AW = (DEPTH > 1) ? $clog2(DEPTH) : 1;

    generate
        if (ENC < 0 || ENC > 2) begin : g_bad_enc
            // ENC must be 0 (direct), 1 (rate) or 2 (events)
            ERROR_qsnn_encoder_ENC_must_be_0_1_or_2 u_error ();
        end
        if (PIXEL_MAX < 1 || PIXEL_MAX > 255) begin : g_bad_pmax
            // PIXEL_MAX must be 1..255 (8-bit input stream)
            ERROR_qsnn_encoder_PIXEL_MAX_must_be_1_to_255 u_error ();
        end
        if (ENC == 0 && VB < 8) begin : g_bad_vb
            // direct input needs VB >= 8
            ERROR_qsnn_encoder_direct_input_needs_VB_at_least_8 u_error ();
        end
        if (H < 1 || W < 1 || N_IN % (H * W) != 0) begin : g_bad_map
            // H*W must divide N_IN
            ERROR_qsnn_encoder_HxW_must_divide_N_IN u_error ();
        end
    endgenerate

    reg [DW-1:0] mem [0:DEPTH-1];
    reg [AW-1:0] wr_ptr;
    assign s_ready = !loaded;

    // ---- scan ----------------------------------------------------------------------
    reg          running, pending;
    reg [IW:0]   j;            // next pixel to issue
    /* verilator lint_off UNUSEDSIGNAL */
    reg [IW-1:0] jj;           // pixel whose data is in rd  (H*W > 1: the coordinates below)
    /* verilator lint_on UNUSEDSIGNAL */
    reg [DW-1:0] rd;
    reg [AW-1:0] frame_base;   // events: t * N_IN

    /* verilator lint_off UNUSEDSIGNAL */
    wire [31:0] lfsr_state;  // the low byte is the rate comparison operand
    /* verilator lint_on UNUSEDSIGNAL */
    wire issue_ok;
    wire [7:0] px;
    generate
        if (ENC == 2) begin : g_px_bit
            assign px = {7'b0, rd[0]};
        end else begin : g_px_byte
            assign px = rd[7:0];
        end
    endgenerate
    /* verilator lint_off WIDTHEXPAND */
    wire rate_spike = ({8'b0, lfsr_state[7:0]} * PIXEL_MAX) < ({8'b0, px} << 8);
    /* verilator lint_on WIDTHEXPAND */
    wire is_event = (ENC == 1) ? rate_spike : (px != 8'd0);
    wire more = (j < N_IN[IW:0]);
    assign issue_ok = running && more && (!pending || !is_event || ev_ready);
    wire issue = issue_ok;

    qsnn_lfsr #(.SEED(LFSR_SEED)) u_lfsr (
        .clk(clk), .rst(rst), .load(release_image || (s_valid && s_ready && wr_ptr == 0)),
        .step(ENC == 1 && issue), .state(lfsr_state)
    );

    assign ev_valid = pending && is_event;
    generate
        if (H * W == 1) begin : g_flat
            assign ev_index = jj;
        end else begin : g_map
            // coordinates of the next pixel (c, y, x) and of the pixel in rd
            localparam integer CH = N_IN / (H * W);
            localparam integer CW = (CH > 1) ? $clog2(CH) : 1;
            localparam integer YW = (H > 1) ? $clog2(H) : 1;
            localparam integer XW = (W > 1) ? $clog2(W) : 1;
            localparam integer YF = (H > 1) ? $clog2(H) : 0;   // packed field widths
            localparam integer XF = (W > 1) ? $clog2(W) : 0;
            reg [CW-1:0] nc, qc;
            reg [YW-1:0] ny, qy;
            reg [XW-1:0] nx, qx;
            always @(posedge clk) begin
                if (rst || !running) begin
                    nc <= {CW{1'b0}};
                    ny <= {YW{1'b0}};
                    nx <= {XW{1'b0}};
                end else if (issue) begin
                    qc <= nc;
                    qy <= ny;
                    qx <= nx;
                    /* verilator lint_off WIDTH */
                    if (nx == W - 1 || W == 1) begin
                        nx <= {XW{1'b0}};
                        if (ny == H - 1 || H == 1) begin
                            ny <= {YW{1'b0}};
                            nc <= nc + 1'b1;
                        end else begin
                            ny <= ny + 1'b1;
                        end
                    end else begin
                        nx <= nx + 1'b1;
                    end
                    /* verilator lint_on WIDTH */
                end
            end
            /* verilator lint_off WIDTH */
            /* verilator lint_off UNUSEDSIGNAL */
            wire [31:0] coord = (qc << (YF + XF)) | ((YF > 0) ? (qy << XF) : 0)
                                | ((XF > 0) ? qx : 0);
            /* verilator lint_on UNUSEDSIGNAL */
            /* verilator lint_on WIDTH */
            assign ev_index = coord[((YF + XF + ((CH > 1) ? $clog2(CH) : 0)) > 0
                                     ? (YF + XF + ((CH > 1) ? $clog2(CH) : 0)) : 1)-1:0];
        end
    endgenerate
    assign ev_value = (ENC == 0) ? px[VB-1:0] : {{(VB - 1){1'b0}}, 1'b1};
    assign ev_to_c = (ENC == 0);
    assign busy = running;

    /* verilator lint_off WIDTH */
    wire [AW-1:0] rd_addr = frame_base + j[IW-1:0];
    /* verilator lint_on WIDTH */

    always @(posedge clk) begin
        if (s_valid && s_ready) mem[wr_ptr] <= s_data[DW-1:0];
        if (issue) rd <= mem[rd_addr];
        if (rst) begin
            loaded <= 1'b0;
            wr_ptr <= {AW{1'b0}};
            running <= 1'b0;
            pending <= 1'b0;
            j <= {(IW + 1){1'b0}};
            jj <= {IW{1'b0}};
            frame_base <= {AW{1'b0}};
        end else begin
            if (release_image) begin
                loaded <= 1'b0;
                wr_ptr <= {AW{1'b0}};
                frame_base <= {AW{1'b0}};
            end else if (s_valid && s_ready) begin
                /* verilator lint_off WIDTHEXPAND */
                if (wr_ptr == DEPTH - 1) loaded <= 1'b1;
                /* verilator lint_on WIDTHEXPAND */
                wr_ptr <= wr_ptr + 1'b1;
            end
            if (!running) begin
                if (start) begin
                    running <= 1'b1;
                    pending <= 1'b0;
                    j <= {(IW + 1){1'b0}};
                end
            end else begin
                if (issue) begin
                    pending <= 1'b1;
                    jj <= j[IW-1:0];
                    j <= j + 1'b1;
                end else if (!pending || !is_event || ev_ready) begin
                    // the last pixel has been consumed
                    pending <= 1'b0;
                    running <= 1'b0;
                    /* verilator lint_off WIDTH */
                    if (ENC == 2) frame_base <= frame_base + N_IN;
                    /* verilator lint_on WIDTH */
                end
            end
        end
    end
endmodule
`default_nettype wire
