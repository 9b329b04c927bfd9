// qsnn_uart_rx: 8N1 UART receiver (LSB first, idle high), CLKS_PER_BIT clocks per bit.
// rx passes a two-flop synchronizer; a start is a high-to-low edge of the synchronized
// line while idle. The line is checked again H = ceil(CLKS_PER_BIT/2) clocks after the
// first low sample: a low pulse shorter than half a bit covers at most H samples, so it
// is ignored as a false start. Data bit 0 is sampled CLKS_PER_BIT-1 clocks after that
// check (which re-centres the late start check) and data bits 1..7 and the stop bit
// CLKS_PER_BIT clocks apart, i.e. within half a clock of mid-bit (start edge to clock
// uncertainty aside). A good stop bit (high) gives data and a one-cycle valid pulse; a
// bad one (framing error) drops the byte, and the next start needs a new falling edge.
// The receiver is idle again from mid stop bit; valid rises about 3 clocks (synchronizer
// and edge detect) after the middle of the stop bit.
`default_nettype none
module qsnn_uart_rx #(
    parameter integer CLKS_PER_BIT = 16
) (
    input  wire       clk,
    input  wire       rst,
    input  wire       rx,
    output reg  [7:0] data,
    output reg        valid
);
    generate
        if (CLKS_PER_BIT < 4) begin : g_bad_cpb
            // CLKS_PER_BIT must be >= 4
            ERROR_qsnn_uart_rx_CLKS_PER_BIT_must_be_at_least_4 u_error ();
        end
    endgenerate

    localparam integer CNTW = (CLKS_PER_BIT > 1) ? $clog2(CLKS_PER_BIT) : 1;
    localparam integer LAST = CLKS_PER_BIT - 1;        // one bit period: 0 .. LAST
    localparam integer HALF_LAST = (CLKS_PER_BIT + 1) / 2 - 1;  // start check: H - 1

    localparam [1:0] S_IDLE = 2'd0, S_START = 2'd1, S_DATA = 2'd2, S_STOP = 2'd3;

    // two-flop synchronizer and the previous synchronized value (edge detect)
    reg rx_meta, rx_sync, rx_prev;
    always @(posedge clk) begin
        if (rst) begin
            rx_meta <= 1'b1;
            rx_sync <= 1'b1;
            rx_prev <= 1'b1;
        end else begin
            rx_meta <= rx;
            rx_sync <= rx_meta;
            rx_prev <= rx_sync;
        end
    end

    reg [1:0]      state;
    reg [CNTW-1:0] cnt;
    reg [2:0]      nbit;
    reg [7:0]      shreg;

    always @(posedge clk) begin
        if (rst) begin
            state <= S_IDLE;
            cnt   <= {CNTW{1'b0}};
            nbit  <= 3'd0;
            shreg <= 8'd0;
            data  <= 8'd0;
            valid <= 1'b0;
        end else begin
            valid <= 1'b0;
            case (state)
                S_IDLE: begin
                    cnt <= {CNTW{1'b0}};
                    if (rx_prev && !rx_sync) state <= S_START;
                end
                S_START: begin
                    if (cnt == HALF_LAST[CNTW-1:0]) begin
                        cnt  <= {{(CNTW - 1){1'b0}}, 1'b1};  // bit 0 after LAST more clocks
                        nbit <= 3'd0;
                        state <= rx_sync ? S_IDLE : S_DATA;   // false start: back to idle
                    end else begin
                        cnt <= cnt + 1'b1;
                    end
                end
                S_DATA: begin
                    if (cnt == LAST[CNTW-1:0]) begin
                        cnt   <= {CNTW{1'b0}};
                        shreg <= {rx_sync, shreg[7:1]};
                        nbit  <= nbit + 3'd1;
                        if (nbit == 3'd7) state <= S_STOP;
                    end else begin
                        cnt <= cnt + 1'b1;
                    end
                end
                default: begin  // S_STOP
                    if (cnt == LAST[CNTW-1:0]) begin
                        cnt   <= {CNTW{1'b0}};
                        state <= S_IDLE;
                        if (rx_sync) begin
                            data  <= shreg;
                            valid <= 1'b1;
                        end
                    end else begin
                        cnt <= cnt + 1'b1;
                    end
                end
            endcase
        end
    end
endmodule
`default_nettype wire
