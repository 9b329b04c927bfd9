// qsnn_gate_tb: the host side of the UART protocol (docs/hardware.md) around the synthesized
// board_top netlist (qsnn.hw.gate, `qsnn verify --netlist`). Plain Verilog-2005, no Python
// per bit or byte: the requests come from two $readmemh files written by Python with the
// host's own request code (qsnn.hw.host):
//   +requests=FILE  one hex word per request: {bytes[31:0], answer bytes[7:0]}
//   +stimulus=FILE  the requests' bytes, one hex byte per line, request after request
//   +results=FILE   written: "S <request> <cycle>" when a request's last stop bit ends,
//                   "B <request> <byte> <cycle> <counts>" per answer byte (cycle of its
//                   start bit; counts: the core's m_counts net at that start bit, hex, so
//                   x/z bits show), then "DONE <requests> <cycles>", or one "ERROR ..." line
//   +n=N  +timeout=CYCLES (per answer, after its request)  +seed=S (idle gaps)
// The bench waits for led_ready (the board's power-on reset is over), then sends each
// request as 8N1 frames of CLKS_PER_BIT clocks per bit on uart_rx (idle gaps of up to two
// bit times between some bytes, from a xorshift32 seeded by +seed), and waits for its
// answer as the host does (one command at a time); a monitor decodes uart_tx at mid-bit.
// ERROR and $finish: no answer within +timeout cycles (plus the answer's own UART time),
// an answer byte before its request is complete or after the expected answer, a bad stop
// bit, a tx start bit not low at mid-bit, x/z on tx (4-state simulators).
// The UART answers only the prediction; the spike counts are read from the netlist's own
// net: `QSNN_GATE_COUNTS (required define) names it, e.g. dut.\u_qsnn.u_core.m_counts in
// a flattened Yosys netlist (qsnn.hw.gate.COUNTS_NET), COUNTS_W its width. The core holds
// m_counts from its output handshake until the next image starts, and the host sends no
// next image before the answer, so the value at the answer's start bit is the image's.
`default_nettype none
module qsnn_gate_tb #(
    parameter integer CLKS_PER_BIT = 8,
    parameter integer READY_LEVEL = 1,         // led_ready once out of reset
    parameter integer STIM_BYTES = 1 << 20,
    parameter integer MAX_REQ = 1 << 14,
    parameter integer COUNTS_W = 8
) (
    input wire clk
);
    localparam integer CPB = CLKS_PER_BIT;

    reg  [7:0]  stim [0:STIM_BYTES-1];
    reg  [39:0] reqs [0:MAX_REQ-1];
    reg  [1023:0] fname;
    integer fd, n_req, timeout;
    reg [31:0] rng;

    reg  rx;
    wire tx, led_busy, led_ready;
    /* verilator lint_off PINMISSING */
    board_top dut (.clk_in(clk), .uart_rx(rx), .uart_tx(tx), .led_busy(led_busy),
                   .led_ready(led_ready));
    /* verilator lint_on PINMISSING */
    wire [COUNTS_W-1:0] counts = `QSNN_GATE_COUNTS ;  // space: ends an escaped name

    reg [63:0] cycle;
    initial begin
        rx = 1'b1;
        cycle = 64'd0;
        rng = 32'd1;
        n_req = 0;
        timeout = 1000000;
        if (!$value$plusargs("n=%d", n_req)) n_req = 0;
        if (!$value$plusargs("timeout=%d", timeout)) timeout = 1000000;
        if ($value$plusargs("seed=%d", rng)) rng = (rng == 32'd0) ? 32'd1 : rng;
        if ($value$plusargs("requests=%s", fname)) $readmemh(fname, reqs);
        if ($value$plusargs("stimulus=%s", fname)) $readmemh(fname, stim);
        if (!$value$plusargs("results=%s", fname)) fname = "gate_results.txt";
        fd = $fopen(fname, "w");
    end

    task fail;
        input [8*96-1:0] what;
        input integer req;
        begin
            $fwrite(fd, "ERROR request %0d: %0s (cycle %0d)\n", req, what, cycle);
            $fclose(fd);
            $finish;
        end
    endtask

    function [31:0] xorshift;
        input [31:0] x;
        reg [31:0] y;
        begin
            y = x ^ (x << 13);
            y = y ^ (y >> 17);
            xorshift = y ^ (y << 5);
        end
    endfunction

    // ---------------------------------------------------------------- sender (host)
    localparam [2:0] H_READY = 3'd0, H_SEND = 3'd1, H_GAP = 3'd2, H_WAIT = 3'd3,
                     H_PAUSE = 3'd4, H_TAIL = 3'd5;
    reg  [2:0]  hs;
    integer     req, pos, k, bitn, cnt, wait_cnt, n_expect, got;
    reg  [9:0]  frame;                        // stop, data (LSB first), start
    reg  [39:0] cur, nxt;                     // {bytes, answer bytes} of the request
    initial begin
        hs = H_READY;
        req = 0; pos = 0; k = 0; bitn = 0; cnt = 0; wait_cnt = 0; n_expect = 0; got = 0;
        frame = 10'h3ff; cur = 40'd0; nxt = 40'd0;
    end

    // start request r (its first byte is stim[pos])
    task begin_request;
        input integer r;
        begin
            nxt = reqs[r];
            cur <= nxt;
            req <= r;
            n_expect <= n_expect + nxt[7:0];
            k <= 0; bitn <= 0; cnt <= 0; wait_cnt <= 0;
            frame <= {1'b1, stim[pos], 1'b0};
            hs <= (nxt[39:8] == 32'd0) ? H_WAIT : H_SEND;
        end
    endtask

    always @(posedge clk) begin
        cycle <= cycle + 64'd1;
        case (hs)
            H_READY: if (led_ready === READY_LEVEL[0]) begin
                if (n_req == 0) begin
                    hs <= H_TAIL;
                    wait_cnt <= 0;
                end else
                    begin_request(0);
            end else if (cycle > 64'd10000000) begin
                fail("led_ready never came (board in reset)", 0);
            end
            H_SEND: begin
                rx <= frame[bitn];
                if (cnt == CPB - 1) begin
                    cnt <= 0;
                    if (bitn == 9) begin
                        bitn <= 0;
                        pos <= pos + 1;
                        if (k + 1 == cur[39:8]) begin
                            hs <= H_WAIT;
                            wait_cnt <= 0;
                        end else begin
                            k <= k + 1;
                            frame <= {1'b1, stim[pos + 1], 1'b0};
                            rng = xorshift(rng);
                            if (rng[7:0] < 8'd77) begin    // 30 %: idle gap
                                wait_cnt <= 1 + (rng[31:16] % (2 * CPB));
                                hs <= H_GAP;
                            end
                        end
                    end else
                        bitn <= bitn + 1;
                end else
                    cnt <= cnt + 1;
            end
            H_GAP: begin
                rx <= 1'b1;
                if (wait_cnt <= 1) hs <= H_SEND;
                wait_cnt <= wait_cnt - 1;
            end
            H_WAIT: begin
                // the request's last stop bit ends at the first edge here
                if (wait_cnt == 0) $fwrite(fd, "S %0d %0d\n", req, cycle);
                wait_cnt <= wait_cnt + 1;
                if (got == n_expect) begin
                    rng = xorshift(rng);
                    wait_cnt <= rng[0] ? 1 + (rng[31:16] % (4 * CPB)) : 1;
                    hs <= H_PAUSE;
                end else if (wait_cnt > timeout + 10 * CPB * cur[7:0]) begin
                    fail("no answer within the timeout", req);
                end
            end
            H_PAUSE: begin                       // the host takes a while (or not)
                if (wait_cnt <= 1) begin
                    if (req + 1 == n_req) begin
                        hs <= H_TAIL;
                        wait_cnt <= 0;
                    end else
                        begin_request(req + 1);
                end else
                    wait_cnt <= wait_cnt - 1;
            end
            H_TAIL: begin                        // no byte may follow the last answer
                wait_cnt <= wait_cnt + 1;
                if (wait_cnt == 20 * CPB && !busy_rx) begin
                    $fwrite(fd, "DONE %0d %0d\n", n_req, cycle);
                    $fclose(fd);
                    $finish;
                end
            end
            default: hs <= H_READY;
        endcase
    end

    // ---------------------------------------------------------------- tx monitor
    reg        busy_rx;
    integer    mcnt, mbit;
    reg [7:0]  mshift;
    reg [63:0] mstart;
    reg [COUNTS_W-1:0] mcounts;
    initial begin
        busy_rx = 1'b0; mcnt = 0; mbit = 0; mshift = 8'd0; mstart = 64'd0;
    end

    always @(posedge clk) begin
        if (hs != H_READY && tx !== 1'b0 && tx !== 1'b1)
            fail("x/z on uart_tx", req);
        if (!busy_rx) begin
            if (hs != H_READY && tx === 1'b0) begin
                if (hs == H_SEND || hs == H_GAP)
                    fail("answer byte before the request was complete", req);
                if (got >= n_expect)
                    fail("answer longer than expected", req);
                busy_rx <= 1'b1;
                mcnt <= 1;
                mbit <= 0;
                mstart <= cycle;
                mcounts <= counts;
            end
        end else begin
            mcnt <= mcnt + 1;
            if (mcnt == CPB / 2) begin
                if (tx !== 1'b0) fail("tx start bit not low at mid-bit", req);
            end else if (mcnt > CPB / 2 && (mcnt - CPB / 2) % CPB == 0) begin
                if (mbit < 8) begin
                    mshift <= {tx, mshift[7:1]};
                    mbit <= mbit + 1;
                end else begin
                    if (tx !== 1'b1) fail("bad stop bit on tx", req);
                    $fwrite(fd, "B %0d %02x %0d %h\n", req, mshift, mstart, mcounts);
                    got <= got + 1;
                    busy_rx <= 1'b0;
                end
            end
        end
    end
endmodule
`default_nettype wire
