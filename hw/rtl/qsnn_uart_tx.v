// qsnn_uart_tx: 8N1 UART transmitter (LSB first, idle high), CLKS_PER_BIT clocks per bit.
// ready is high while idle; valid && ready accepts data at a clock edge e, tx drives the
// start bit from e on, then data bits 0..7 and the stop bit, CLKS_PER_BIT clocks each;
// ready is high again after edge e + 10 * CLKS_PER_BIT. tx is a register (glitch free).
`default_nettype none
module qsnn_uart_tx #(
    parameter integer CLKS_PER_BIT = 16
) (
    input  wire       clk,
    input  wire       rst,
    input  wire [7:0] data,
    input  wire       valid,
    output wire       ready,
    output reg        tx
);
    generate
        if (CLKS_PER_BIT < 4) begin : g_bad_cpb
            // CLKS_PER_BIT must be >= 4
            ERROR_qsnn_uart_tx_CLKS_PER_BIT_must_be_at_least_4 u_error ();
        end
    endgenerate

    localparam integer CNTW = (CLKS_PER_BIT > 1) ? $clog2(CLKS_PER_BIT) : 1;
    localparam integer LAST = CLKS_PER_BIT - 1;

    reg            busy;
    reg [CNTW-1:0] cnt;
    reg [3:0]      nbit;    // bit being sent: 0 start, 1..8 data, 9 stop
    reg [8:0]      shreg;   // bits still to send after the current one, stop bit on top

    assign ready = !busy;

    always @(posedge clk) begin
        if (rst) begin
            busy  <= 1'b0;
            tx    <= 1'b1;
            cnt   <= {CNTW{1'b0}};
            nbit  <= 4'd0;
            shreg <= 9'h1FF;
        end else if (!busy) begin
            tx  <= 1'b1;
            cnt <= {CNTW{1'b0}};
            if (valid) begin
                busy  <= 1'b1;
                tx    <= 1'b0;   // start bit
                nbit  <= 4'd0;
                shreg <= {1'b1, data};
            end
        end else if (cnt == LAST[CNTW-1:0]) begin
            cnt <= {CNTW{1'b0}};
            if (nbit == 4'd9) begin
                busy <= 1'b0;
                tx   <= 1'b1;
            end else begin
                tx    <= shreg[0];
                shreg <= {1'b1, shreg[8:1]};
                nbit  <= nbit + 4'd1;
            end
        end else begin
            cnt <= cnt + 1'b1;
        end
    end
endmodule
`default_nettype wire
