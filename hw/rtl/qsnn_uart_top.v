// qsnn_uart_top: UART wrapper of the generated qsnn_top for boards (docs/hardware.md).
// Protocol (8N1, CLKS_PER_BIT clocks per bit); the host sends a command byte:
//   'I' (0x49) + the image (qsnn_top info_in_bytes bytes: row-major pixels; events: T
//       frames of 0/1 bytes)               -> 1 byte: the prediction
//   'W' (0x57) + the weight blob (info_w_bytes bytes, weights.bin of qsnn hw; none for
//       designs whose weights are all in ROM) -> 1 byte: 0x57 once all are written
//   '?' (0x3F)                              -> 5 bytes: info_id (the first 4 bytes of the
//       IR's SHA-256, most significant first), then status: bit 0 = weights loaded
// Other command bytes are ignored. One received byte waits in a one-byte buffer while
// the core is busy; the host waits for each answer before the next command.
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
    localparam [7:0] CMD_IMAGE = 8'h49, CMD_WEIGHTS = 8'h57, CMD_INFO = 8'h3f;
    localparam [2:0] S_CMD = 3'd0, S_IMG = 3'd1, S_WGT = 3'd2, S_PRED = 3'd3,
                     S_REPLY = 3'd4;

    wire [7:0]  rx_data;
    wire        rx_valid;
    reg  [7:0]  buf_data;
    reg         buf_full;
    wire        s_ready, w_ready, w_loaded;
    wire        m_valid;
    wire [7:0]  m_pred;
    wire        tx_ready;
    wire [31:0] info_id, info_in_bytes, info_w_bytes;

    reg  [2:0]  state;
    reg  [31:0] cnt;          // bytes of the current image / blob taken so far
    reg  [2:0]  reply_n;      // bytes of the reply still to send
    reg  [39:0] reply;        // reply bytes, the next one in the top byte
    reg         w_restart;

    qsnn_uart_rx #(.CLKS_PER_BIT(CLKS_PER_BIT)) u_rx (
        .clk(clk), .rst(rst), .rx(rx), .data(rx_data), .valid(rx_valid)
    );

    wire s_take = buf_full && state == S_IMG && s_ready;
    wire w_take = buf_full && state == S_WGT && w_ready;
    wire c_take = buf_full && state == S_CMD;
    wire tx_go = tx_ready && ((state == S_PRED && m_valid) || (state == S_REPLY));
    wire [7:0] tx_data = (state == S_PRED) ? m_pred : reply[39:32];

    always @(posedge clk) begin
        w_restart <= 1'b0;
        if (rst) begin
            buf_full <= 1'b0;
            buf_data <= 8'd0;
            state <= S_CMD;
            cnt <= 32'd0;
            reply_n <= 3'd0;
            reply <= 40'd0;
        end else begin
            if (s_take || w_take || c_take) buf_full <= 1'b0;
            if (rx_valid) begin
                buf_full <= 1'b1;
                buf_data <= rx_data;
            end
            case (state)
                S_CMD: if (c_take) begin
                    cnt <= 32'd0;
                    if (buf_data == CMD_IMAGE) begin
                        state <= (info_in_bytes == 32'd0) ? S_PRED : S_IMG;
                    end else if (buf_data == CMD_WEIGHTS) begin
                        w_restart <= 1'b1;
                        reply <= {CMD_WEIGHTS, 32'd0};
                        reply_n <= 3'd1;
                        state <= (info_w_bytes == 32'd0) ? S_REPLY : S_WGT;
                    end else if (buf_data == CMD_INFO) begin
                        reply <= {info_id, 7'd0, w_loaded};
                        reply_n <= 3'd5;
                        state <= S_REPLY;
                    end
                end
                S_IMG: if (s_take) begin
                    cnt <= cnt + 32'd1;
                    if (cnt == info_in_bytes - 32'd1) state <= S_PRED;
                end
                S_WGT: if (w_take) begin
                    cnt <= cnt + 32'd1;
                    if (cnt == info_w_bytes - 32'd1) state <= S_REPLY;
                end
                S_PRED: if (tx_go) state <= S_CMD;
                S_REPLY: if (tx_go) begin
                    reply <= {reply[31:0], 8'd0};
                    reply_n <= reply_n - 3'd1;
                    if (reply_n == 3'd1) state <= S_CMD;
                end
                default: state <= S_CMD;
            endcase
        end
    end

    /* verilator lint_off PINCONNECTEMPTY */
    qsnn_top u_core (
        .clk(clk), .rst(rst), .s_valid(buf_full && state == S_IMG), .s_ready(s_ready),
        .s_data(buf_data),
        .m_valid(m_valid), .m_ready(state == S_PRED && tx_go), .m_pred(m_pred),
        .m_counts(), .m_cycles(),
        .w_start(w_restart), .w_valid(buf_full && state == S_WGT), .w_ready(w_ready), .w_data(buf_data),
        .w_loaded(w_loaded),
        .info_id(info_id), .info_in_bytes(info_in_bytes), .info_w_bytes(info_w_bytes)
    );
    /* verilator lint_on PINCONNECTEMPTY */

    qsnn_uart_tx #(.CLKS_PER_BIT(CLKS_PER_BIT)) u_tx (
        .clk(clk), .rst(rst), .data(tx_data), .valid(tx_go), .ready(tx_ready), .tx(tx)
    );

    assign busy_led = (state == S_IMG) || (state == S_PRED) || (state == S_WGT);
endmodule
`default_nettype wire
