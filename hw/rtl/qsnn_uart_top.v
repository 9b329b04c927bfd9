// qsnn_uart_top: UART wrapper of the generated qsnn_top for boards.
// Protocol (8N1, CLKS_PER_BIT clocks per bit): the host sends one image (params.json
// "input_bytes" bytes, row-major pixels; events: T frames of 0/1 bytes) and receives one
// byte, the prediction. A received byte waits in a one-byte buffer while the core is
// busy; the host must wait for the prediction before sending the next image.
`default_nettype none
module qsnn_uart_top #(
    parameter integer CLKS_PER_BIT = 104
) (
    input  wire clk,
    input  wire rst,
    input  wire rx,
    output wire tx,
    output wire busy_led
);
    wire [7:0] rx_data;
    wire       rx_valid;
    reg  [7:0] buf_data;
    reg        buf_full;
    wire       s_ready;
    wire       m_valid;
    wire [7:0] m_pred;
    wire       tx_ready;

    qsnn_uart_rx #(.CLKS_PER_BIT(CLKS_PER_BIT)) u_rx (
        .clk(clk), .rst(rst), .rx(rx), .data(rx_data), .valid(rx_valid)
    );

    always @(posedge clk) begin
        if (rst) begin
            buf_full <= 1'b0;
            buf_data <= 8'd0;
        end else begin
            if (buf_full && s_ready) buf_full <= 1'b0;
            if (rx_valid) begin
                buf_full <= 1'b1;
                buf_data <= rx_data;
            end
        end
    end

    /* verilator lint_off PINCONNECTEMPTY */
    qsnn_top u_core (
        .clk(clk), .rst(rst), .s_valid(buf_full), .s_ready(s_ready), .s_data(buf_data),
        .m_valid(m_valid), .m_ready(m_valid && tx_ready), .m_pred(m_pred), .m_counts(),
        .m_cycles()
    );
    /* verilator lint_on PINCONNECTEMPTY */

    qsnn_uart_tx #(.CLKS_PER_BIT(CLKS_PER_BIT)) u_tx (
        .clk(clk), .rst(rst), .data(m_pred), .valid(m_valid && tx_ready), .ready(tx_ready),
        .tx(tx)
    );

    assign busy_led = !s_ready;
endmodule
`default_nettype wire
