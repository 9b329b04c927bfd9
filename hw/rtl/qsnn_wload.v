// qsnn_wload: byte stream -> words of one run-time-loaded weight memory (docs/hardware.md).
// The weight blob holds, for each such layer in order, its WD words (address 0 first),
// each as BYTES = ceil(WBITS / 8) bytes, least significant byte first. While `en` (this
// loader's turn) and not `done`, every `in_valid` byte is taken; the word's last byte
// issues one write (we, addr, data) in the next cycle. `done` rises after word WD - 1;
// `restart` (or rst) starts over at address 0.
`default_nettype none
module qsnn_wload #(
    parameter integer WD = 1,       // words
    parameter integer WBITS = 16    // bits per word
) (
    input  wire clk,
    input  wire rst,
    input  wire restart,
    input  wire en,
    input  wire in_valid,
    input  wire [7:0] in_data,
    output reg  done,
    output reg  we,
    output reg  [((WD > 1) ? $clog2(WD) : 1)-1:0] addr,
    output wire [WBITS-1:0] data
);
    localparam integer AW = (WD > 1) ? $clog2(WD) : 1;
    localparam integer BYTES = (WBITS + 7) / 8;
    localparam integer CW = (BYTES > 1) ? $clog2(BYTES) : 1;

    generate
        if (WD < 1 || WBITS < 1) begin : g_bad
            // WD and WBITS must be >= 1
            ERROR_qsnn_wload_WD_and_WBITS_must_be_at_least_1 u_error ();
        end
    endgenerate

    /* verilator lint_off UNUSEDSIGNAL */
    reg [BYTES*8-1:0] sh;   // bits above WBITS: padding
    /* verilator lint_on UNUSEDSIGNAL */
    reg [CW-1:0]      cnt;
    reg [AW-1:0]      next_addr;
    wire take = en && !done && in_valid;
    wire [BYTES*8-1:0] sh_next;
    generate
        if (BYTES > 1) begin : g_multi
            assign sh_next = {in_data, sh[BYTES*8-1:8]};
        end else begin : g_single
            assign sh_next = in_data;
        end
    endgenerate
    assign data = sh[WBITS-1:0];

    always @(posedge clk) begin
        we <= 1'b0;
        if (rst || restart) begin
            sh <= {(BYTES*8){1'b0}};
            done <= 1'b0;
            cnt <= {CW{1'b0}};
            next_addr <= {AW{1'b0}};
        end else if (take) begin
            sh <= sh_next;
            if (cnt == BYTES[CW-1:0] - 1'b1 || BYTES == 1) begin
                cnt <= {CW{1'b0}};
                we <= 1'b1;
                addr <= next_addr;
                next_addr <= next_addr + 1'b1;
                if (next_addr == WD[AW-1:0] - 1'b1 || WD == 1) done <= 1'b1;
            end else begin
                cnt <= cnt + 1'b1;
            end
        end
    end
endmodule
`default_nettype wire
