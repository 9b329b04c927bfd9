// qsnn_net_tb: free-running network bench around the generated qsnn_top (docs/hardware.md,
// Verification). Plain Verilog-2005: Verilator (C++ main toggling clk, hw/benches/
// qsnn_net_tb_main.cpp) and Icarus Verilog (qsnn_net_tb_top.v makes the clock) run it.
//
// Stimulus ($readmemh, one byte per word): W_BYTES weight bytes (weights.bin of a
// run-time-weight design; none otherwise), then the images, IN_BYTES bytes each.
// Plusargs (all required but seed):
//   +stimulus=FILE  the stimulus file      +results=FILE  where the results go
//   +images=N       images in the file     +timeout=C     cycles allowed per image
//   +seed=S         seed of the bench's xorshift32 (random input gaps, output back-pressure)
// Sequence: reset; [W_BYTES > 0: w_loaded must be 0, w_start pulse, the weight bytes on
// w_valid/w_data with random gaps, then w_loaded must be 1]; every image streamed on
// s_valid/s_data with random gaps while m_ready is random every cycle (back-pressure).
// Results, one line per image at its output handshake (hex, so a 4-state simulator's
// x/z bits show as 'x'/'z'):
//   R <image> <m_pred> <m_cycles> <m_counts>
// then "DONE <images>"; a failure writes one "ERROR <what>" line instead and stops:
// a timeout (no m_valid within +timeout cycles of the image's first offered byte), m_valid
// dropped or an output changed before its handshake, a wrong w_loaded.
`default_nettype none
module qsnn_net_tb #(
    parameter integer IN_BYTES = 64,     // bytes per image (params.json input_bytes)
    parameter integer CLASSES = 10,
    parameter integer COUNT_BITS = 16,   // bits per class on m_counts
    parameter integer W_BYTES = 0,       // weight bytes before the images (0: none)
    parameter integer DEPTH = 1 << 16    // stimulus memory (bytes)
) (
    input wire clk
);
    localparam integer CB = CLASSES * COUNT_BITS;
    localparam integer AW = 32;
    localparam [2:0] P_RESET = 3'd0, P_WSTART = 3'd1, P_WEIGHTS = 3'd2, P_WCHECK = 3'd3,
                     P_IMAGES = 3'd4, P_DONE = 3'd5;

    reg  rst;
    reg  s_valid, m_ready, w_start, w_valid;
    reg  [7:0] s_data, w_data;
    wire s_ready, m_valid, w_ready, w_loaded;
    wire [7:0] m_pred;
    wire [CB-1:0] m_counts;
    wire [31:0] m_cycles;
    /* verilator lint_off UNUSEDSIGNAL */
    wire [31:0] info_id, info_in_bytes, info_w_bytes;
    /* verilator lint_on UNUSEDSIGNAL */

    qsnn_top dut (
        .clk(clk), .rst(rst), .s_valid(s_valid), .s_ready(s_ready), .s_data(s_data),
        .m_valid(m_valid), .m_ready(m_ready), .m_pred(m_pred), .m_counts(m_counts),
        .m_cycles(m_cycles), .w_start(w_start), .w_valid(w_valid), .w_ready(w_ready),
        .w_data(w_data), .w_loaded(w_loaded), .info_id(info_id),
        .info_in_bytes(info_in_bytes), .info_w_bytes(info_w_bytes)
    );

    // ---- bench state -------------------------------------------------------------------
    reg [7:0]        stim [0:DEPTH-1];
    reg [8*1024-1:0] stim_file, result_file;
    integer      fd, images, timeout, seed;
    reg [31:0]   rnd;               // xorshift32: random gaps and back-pressure
    reg [2:0]    phase;
    reg [AW-1:0] ptr;               // the stimulus byte offered (or to offer next)
    reg [AW-1:0] img_end;           // end of the current image's bytes
    integer      image;             // the image whose result is awaited
    integer      wait_cycles;       // cycles since the image's first offered byte
    integer      reset_cycles;
    reg          out_seen;          // m_valid seen, handshake pending
    reg [7:0]    held_pred;
    reg [CB-1:0] held_counts;
    reg [31:0]   held_cycles;

    // ---- plusargs, stimulus, results file ------------------------------------------
    initial begin
        rst = 1'b1;
        {s_valid, m_ready, w_start, w_valid} = 4'b0;
        s_data = 8'd0;
        w_data = 8'd0;
        phase = P_RESET;
        ptr = {AW{1'b0}};
        img_end = {AW{1'b0}};
        {image, wait_cycles, reset_cycles} = {3{32'sd0}};
        out_seen = 1'b0;
        held_pred = 8'd0;
        held_counts = {CB{1'b0}};
        held_cycles = 32'd0;
        {fd, images, timeout} = {3{32'sd0}};
        if (!$value$plusargs("seed=%d", seed)) seed = 1;
        rnd = (seed == 0) ? 32'd1 : seed;
        if (!$value$plusargs("results=%s", result_file)) begin
            $display("qsnn_net_tb: ERROR no +results=FILE");
            $finish;
        end
        fd = $fopen(result_file, "w");
        if (fd == 0) begin
            $display("qsnn_net_tb: ERROR cannot write %0s", result_file);
            $finish;
        end
        if (!$value$plusargs("stimulus=%s", stim_file)
            || !$value$plusargs("images=%d", images)
            || !$value$plusargs("timeout=%d", timeout) || images < 1) begin
            $fwrite(fd, "ERROR the bench needs %0s\n",
                    "+stimulus=FILE +images=N (N >= 1) +timeout=CYCLES");
            $fclose(fd);
            $finish;
        end
        if (W_BYTES + images * IN_BYTES > DEPTH) begin
            $fwrite(fd, "ERROR %0d images of %0d bytes exceed the stimulus memory (%0d)\n",
                    images, IN_BYTES, DEPTH);
            $fclose(fd);
            $finish;
        end
        $readmemh(stim_file, stim, 0, W_BYTES + images * IN_BYTES - 1);
        $fwrite(fd, "SEED %0d\n", seed);
    end

    function [31:0] xorshift(input [31:0] x);
        reg [31:0] y;
        begin
            y = x ^ (x << 13);
            y = y ^ (y >> 17);
            xorshift = y ^ (y << 5);
        end
    endfunction

    task fail(input [8*64-1:0] what);
        begin
            $fwrite(fd, "ERROR %0s (image %0d, %0d cycles)\n", what, image, wait_cycles);
            $fflush(fd);
            $display("qsnn_net_tb: ERROR %0s (image %0d)", what, image);
            $finish;
        end
    endtask

    always @(posedge clk) begin
        rnd <= xorshift(rnd);
        case (phase)
            P_RESET: begin
                reset_cycles <= reset_cycles + 1;
                if (reset_cycles == 3) rst <= 1'b0;
                if (reset_cycles == 4) begin
                    if (W_BYTES > 0) begin
                        if (w_loaded !== 1'b0) fail("w_loaded before any weights were sent");
                        w_start <= 1'b1;
                        phase <= P_WSTART;
                    end else begin
                        img_end <= ptr + IN_BYTES;
                        phase <= P_IMAGES;
                    end
                end
            end
            P_WSTART: begin
                w_start <= 1'b0;
                phase <= P_WEIGHTS;
            end
            P_WEIGHTS: begin
                wait_cycles <= wait_cycles + 1;
                if (wait_cycles > 16 * W_BYTES + 1000) fail("weight stream stalled");
                if (w_valid && w_ready) ptr <= ptr + 1;
                if (w_valid && w_ready && ptr == W_BYTES - 1) begin
                    w_valid <= 1'b0;
                    wait_cycles <= 0;
                    phase <= P_WCHECK;
                end else begin
                    // a new byte when the current one went (or none was offered)
                    w_valid <= (rnd[3:0] != 4'd0);
                    w_data <= stim[(w_valid && w_ready) ? ptr + 1 : ptr];
                end
            end
            P_WCHECK: begin
                wait_cycles <= wait_cycles + 1;
                if (wait_cycles == 2) begin
                    if (w_loaded !== 1'b1) fail("w_loaded low after the whole weight blob");
                    wait_cycles <= 0;
                    img_end <= ptr + IN_BYTES;
                    phase <= P_IMAGES;
                end
            end
            P_IMAGES: begin
                wait_cycles <= wait_cycles + 1;
                if (wait_cycles > timeout) fail("timeout: no m_valid");
                // input stream: this image's bytes, with random gaps
                if (s_valid && s_ready) ptr <= ptr + 1;
                if (s_valid && s_ready && ptr == img_end - 1) begin
                    s_valid <= 1'b0;
                end else if (ptr < img_end) begin
                    s_valid <= (rnd[3:0] != 4'd0);
                    s_data <= stim[(s_valid && s_ready) ? ptr + 1 : ptr];
                end
                // output: random m_ready; outputs must hold until the handshake
                m_ready <= rnd[8];
                if (m_valid !== 1'b1 && out_seen) fail("m_valid dropped before m_ready");
                if (m_valid === 1'b1) begin
                    if (out_seen && (m_pred !== held_pred || m_counts !== held_counts
                                     || m_cycles !== held_cycles))
                        fail("output changed before its handshake");
                    out_seen <= 1'b1;
                    held_pred <= m_pred;
                    held_counts <= m_counts;
                    held_cycles <= m_cycles;
                end
                if (m_valid === 1'b1 && m_ready) begin
                    $fwrite(fd, "R %0d %h %h %h\n", image, m_pred, m_cycles, m_counts);
                    out_seen <= 1'b0;
                    image <= image + 1;
                    wait_cycles <= 0;
                    img_end <= img_end + IN_BYTES;
                    if (image + 1 == images) phase <= P_DONE;
                end
            end
            default: begin
                $fwrite(fd, "DONE %0d\n", image);
                $fclose(fd);
                $finish;
            end
        endcase
    end
endmodule
`default_nettype wire
