// DP16KD: behavioural model of the ECP5 18-kbit dual-port block RAM, for the gate-level
// simulation of synth_ecp5 netlists (qsnn.hw.gate). Yosys ships DP16KD only as a blackbox
// (share/ecp5/cells_sim.v); qsnn.hw.gate removes that declaration and compiles this model.
// It covers what Yosys' block RAM mapping (share/lattice/brams_map_16kd.v) instantiates,
// following its memory model (brams_16kd.txt): 2048 9-bit units, unit u = bits
// [9(u mod 2) +: 9] of 18-bit word u / 2, words initialised from INITVAL_xx (word
// 16 xx + i in bits [20 i +: 18]). Per port, on the clock edge with CE and the chip
// select {CS2, CS1, CS0} equal to CSDECODE:
//   width 18: word AD[13:4]; writes (WE) the 9-bit halves whose enable AD[0] / AD[1] is set
//   width 9 : unit AD[13:3];  widths 4, 2, 1: item a = AD[13:log2 W] in bits
//             [W (a mod 8/W) +: W] of unit a / (8/W) (the parity bit 8 unused)
//   read    : DO <= the addressed data when not writing; when writing, NORMAL keeps DO,
//             WRITETHROUGH gives the new data, READBEFOREWRITE the old (REGMODE NOREG:
//             DO is this register; bits above the width read 0)
//   RST     : DO <= 0, on the clock edge (RESETMODE SYNC) or at once (ASYNC; Yosys ties
//             RST to 0 when the memory has no reset, as qsnn's)
// Anything else (output registers, inverted clocks) stops elaboration with the name of
// the unmodelled feature.
`default_nettype none
module DP16KD (
    input wire DIA17, DIA16, DIA15, DIA14, DIA13, DIA12, DIA11, DIA10, DIA9, DIA8, DIA7,
    input wire DIA6, DIA5, DIA4, DIA3, DIA2, DIA1, DIA0,
    input wire ADA13, ADA12, ADA11, ADA10, ADA9, ADA8, ADA7, ADA6, ADA5, ADA4, ADA3, ADA2,
    input wire ADA1, ADA0,
    input wire CEA, OCEA, CLKA, WEA, RSTA, CSA2, CSA1, CSA0,
    output wire DOA17, DOA16, DOA15, DOA14, DOA13, DOA12, DOA11, DOA10, DOA9, DOA8, DOA7,
    output wire DOA6, DOA5, DOA4, DOA3, DOA2, DOA1, DOA0,
    input wire DIB17, DIB16, DIB15, DIB14, DIB13, DIB12, DIB11, DIB10, DIB9, DIB8, DIB7,
    input wire DIB6, DIB5, DIB4, DIB3, DIB2, DIB1, DIB0,
    input wire ADB13, ADB12, ADB11, ADB10, ADB9, ADB8, ADB7, ADB6, ADB5, ADB4, ADB3, ADB2,
    input wire ADB1, ADB0,
    input wire CEB, OCEB, CLKB, WEB, RSTB, CSB2, CSB1, CSB0,
    output wire DOB17, DOB16, DOB15, DOB14, DOB13, DOB12, DOB11, DOB10, DOB9, DOB8, DOB7,
    output wire DOB6, DOB5, DOB4, DOB3, DOB2, DOB1, DOB0
);
    parameter integer DATA_WIDTH_A = 18;
    parameter integer DATA_WIDTH_B = 18;
    parameter REGMODE_A = "NOREG";
    parameter REGMODE_B = "NOREG";
    parameter RESETMODE = "SYNC";
    parameter ASYNC_RESET_RELEASE = "SYNC";
    parameter CSDECODE_A = "0b000";
    parameter CSDECODE_B = "0b000";
    parameter WRITEMODE_A = "NORMAL";
    parameter WRITEMODE_B = "NORMAL";
    parameter CLKAMUX = "CLKA";
    parameter CLKBMUX = "CLKB";
    parameter GSR = "ENABLED";
    parameter INIT_DATA = "STATIC";
    parameter [319:0] INITVAL_00 = 320'h0;
    parameter [319:0] INITVAL_01 = 320'h0;
    parameter [319:0] INITVAL_02 = 320'h0;
    parameter [319:0] INITVAL_03 = 320'h0;
    parameter [319:0] INITVAL_04 = 320'h0;
    parameter [319:0] INITVAL_05 = 320'h0;
    parameter [319:0] INITVAL_06 = 320'h0;
    parameter [319:0] INITVAL_07 = 320'h0;
    parameter [319:0] INITVAL_08 = 320'h0;
    parameter [319:0] INITVAL_09 = 320'h0;
    parameter [319:0] INITVAL_0A = 320'h0;
    parameter [319:0] INITVAL_0B = 320'h0;
    parameter [319:0] INITVAL_0C = 320'h0;
    parameter [319:0] INITVAL_0D = 320'h0;
    parameter [319:0] INITVAL_0E = 320'h0;
    parameter [319:0] INITVAL_0F = 320'h0;
    parameter [319:0] INITVAL_10 = 320'h0;
    parameter [319:0] INITVAL_11 = 320'h0;
    parameter [319:0] INITVAL_12 = 320'h0;
    parameter [319:0] INITVAL_13 = 320'h0;
    parameter [319:0] INITVAL_14 = 320'h0;
    parameter [319:0] INITVAL_15 = 320'h0;
    parameter [319:0] INITVAL_16 = 320'h0;
    parameter [319:0] INITVAL_17 = 320'h0;
    parameter [319:0] INITVAL_18 = 320'h0;
    parameter [319:0] INITVAL_19 = 320'h0;
    parameter [319:0] INITVAL_1A = 320'h0;
    parameter [319:0] INITVAL_1B = 320'h0;
    parameter [319:0] INITVAL_1C = 320'h0;
    parameter [319:0] INITVAL_1D = 320'h0;
    parameter [319:0] INITVAL_1E = 320'h0;
    parameter [319:0] INITVAL_1F = 320'h0;
    parameter [319:0] INITVAL_20 = 320'h0;
    parameter [319:0] INITVAL_21 = 320'h0;
    parameter [319:0] INITVAL_22 = 320'h0;
    parameter [319:0] INITVAL_23 = 320'h0;
    parameter [319:0] INITVAL_24 = 320'h0;
    parameter [319:0] INITVAL_25 = 320'h0;
    parameter [319:0] INITVAL_26 = 320'h0;
    parameter [319:0] INITVAL_27 = 320'h0;
    parameter [319:0] INITVAL_28 = 320'h0;
    parameter [319:0] INITVAL_29 = 320'h0;
    parameter [319:0] INITVAL_2A = 320'h0;
    parameter [319:0] INITVAL_2B = 320'h0;
    parameter [319:0] INITVAL_2C = 320'h0;
    parameter [319:0] INITVAL_2D = 320'h0;
    parameter [319:0] INITVAL_2E = 320'h0;
    parameter [319:0] INITVAL_2F = 320'h0;
    parameter [319:0] INITVAL_30 = 320'h0;
    parameter [319:0] INITVAL_31 = 320'h0;
    parameter [319:0] INITVAL_32 = 320'h0;
    parameter [319:0] INITVAL_33 = 320'h0;
    parameter [319:0] INITVAL_34 = 320'h0;
    parameter [319:0] INITVAL_35 = 320'h0;
    parameter [319:0] INITVAL_36 = 320'h0;
    parameter [319:0] INITVAL_37 = 320'h0;
    parameter [319:0] INITVAL_38 = 320'h0;
    parameter [319:0] INITVAL_39 = 320'h0;
    parameter [319:0] INITVAL_3A = 320'h0;
    parameter [319:0] INITVAL_3B = 320'h0;
    parameter [319:0] INITVAL_3C = 320'h0;
    parameter [319:0] INITVAL_3D = 320'h0;
    parameter [319:0] INITVAL_3E = 320'h0;
    parameter [319:0] INITVAL_3F = 320'h0;

    generate
        if (REGMODE_A != "NOREG" || REGMODE_B != "NOREG") begin : g_regmode
            ERROR_DP16KD_model_REGMODE_OUTREG_not_modelled u_error ();
        end
        if (RESETMODE != "SYNC" && RESETMODE != "ASYNC") begin : g_resetmode
            ERROR_DP16KD_model_RESETMODE_unknown u_error ();
        end
        if (CLKAMUX != "CLKA" || CLKBMUX != "CLKB") begin : g_clkmux
            ERROR_DP16KD_model_inverted_clock_not_modelled u_error ();
        end
    endgenerate

    reg [8:0] mem [0:2047];
    integer i;

    task load_row;
        input [5:0] row;
        input [319:0] val;
        begin
            for (i = 0; i < 16; i = i + 1) begin
                mem[2 * (16 * row + i)] = val[20 * i +: 9];
                mem[2 * (16 * row + i) + 1] = val[20 * i + 9 +: 9];
            end
        end
    endtask

    initial begin
        load_row(6'h00, INITVAL_00);
        load_row(6'h01, INITVAL_01);
        load_row(6'h02, INITVAL_02);
        load_row(6'h03, INITVAL_03);
        load_row(6'h04, INITVAL_04);
        load_row(6'h05, INITVAL_05);
        load_row(6'h06, INITVAL_06);
        load_row(6'h07, INITVAL_07);
        load_row(6'h08, INITVAL_08);
        load_row(6'h09, INITVAL_09);
        load_row(6'h0A, INITVAL_0A);
        load_row(6'h0B, INITVAL_0B);
        load_row(6'h0C, INITVAL_0C);
        load_row(6'h0D, INITVAL_0D);
        load_row(6'h0E, INITVAL_0E);
        load_row(6'h0F, INITVAL_0F);
        load_row(6'h10, INITVAL_10);
        load_row(6'h11, INITVAL_11);
        load_row(6'h12, INITVAL_12);
        load_row(6'h13, INITVAL_13);
        load_row(6'h14, INITVAL_14);
        load_row(6'h15, INITVAL_15);
        load_row(6'h16, INITVAL_16);
        load_row(6'h17, INITVAL_17);
        load_row(6'h18, INITVAL_18);
        load_row(6'h19, INITVAL_19);
        load_row(6'h1A, INITVAL_1A);
        load_row(6'h1B, INITVAL_1B);
        load_row(6'h1C, INITVAL_1C);
        load_row(6'h1D, INITVAL_1D);
        load_row(6'h1E, INITVAL_1E);
        load_row(6'h1F, INITVAL_1F);
        load_row(6'h20, INITVAL_20);
        load_row(6'h21, INITVAL_21);
        load_row(6'h22, INITVAL_22);
        load_row(6'h23, INITVAL_23);
        load_row(6'h24, INITVAL_24);
        load_row(6'h25, INITVAL_25);
        load_row(6'h26, INITVAL_26);
        load_row(6'h27, INITVAL_27);
        load_row(6'h28, INITVAL_28);
        load_row(6'h29, INITVAL_29);
        load_row(6'h2A, INITVAL_2A);
        load_row(6'h2B, INITVAL_2B);
        load_row(6'h2C, INITVAL_2C);
        load_row(6'h2D, INITVAL_2D);
        load_row(6'h2E, INITVAL_2E);
        load_row(6'h2F, INITVAL_2F);
        load_row(6'h30, INITVAL_30);
        load_row(6'h31, INITVAL_31);
        load_row(6'h32, INITVAL_32);
        load_row(6'h33, INITVAL_33);
        load_row(6'h34, INITVAL_34);
        load_row(6'h35, INITVAL_35);
        load_row(6'h36, INITVAL_36);
        load_row(6'h37, INITVAL_37);
        load_row(6'h38, INITVAL_38);
        load_row(6'h39, INITVAL_39);
        load_row(6'h3A, INITVAL_3A);
        load_row(6'h3B, INITVAL_3B);
        load_row(6'h3C, INITVAL_3C);
        load_row(6'h3D, INITVAL_3D);
        load_row(6'h3E, INITVAL_3E);
        load_row(6'h3F, INITVAL_3F);
    end

    wire [17:0] dia = {DIA17, DIA16, DIA15, DIA14, DIA13, DIA12, DIA11, DIA10, DIA9, DIA8,
                       DIA7, DIA6, DIA5, DIA4, DIA3, DIA2, DIA1, DIA0};
    wire [13:0] ada = {ADA13, ADA12, ADA11, ADA10, ADA9, ADA8, ADA7, ADA6, ADA5, ADA4, ADA3,
                       ADA2, ADA1, ADA0};
    wire [17:0] dib = {DIB17, DIB16, DIB15, DIB14, DIB13, DIB12, DIB11, DIB10, DIB9, DIB8,
                       DIB7, DIB6, DIB5, DIB4, DIB3, DIB2, DIB1, DIB0};
    wire [13:0] adb = {ADB13, ADB12, ADB11, ADB10, ADB9, ADB8, ADB7, ADB6, ADB5, ADB4, ADB3,
                       ADB2, ADB1, ADB0};
    reg [17:0] doa, dob;
    initial begin
        doa = 18'd0;
        dob = 18'd0;
    end
    assign {DOA17, DOA16, DOA15, DOA14, DOA13, DOA12, DOA11, DOA10, DOA9, DOA8, DOA7, DOA6,
            DOA5, DOA4, DOA3, DOA2, DOA1, DOA0} = doa;
    assign {DOB17, DOB16, DOB15, DOB14, DOB13, DOB12, DOB11, DOB10, DOB9, DOB8, DOB7, DOB6,
            DOB5, DOB4, DOB3, DOB2, DOB1, DOB0} = dob;

    // the chip select value of a CSDECODE string "0bXYZ"
    function [2:0] csdecode;
        input [8 * 5 - 1:0] s;
        begin
            csdecode = {s[16], s[8], s[0]};
        end
    endfunction

    // the data of port width w at address ad
    function [17:0] read_port;
        input integer w;
        input [13:0] ad;
        reg [10:0] u;
        reg [8:0] unit;
        begin
            read_port = 18'd0;
            case (w)
                18: read_port = {mem[{ad[13:4], 1'b1}], mem[{ad[13:4], 1'b0}]};
                9:  read_port[8:0] = mem[ad[13:3]];
                4:  begin unit = mem[ad[13:3]]; read_port[3:0] = unit[4 * ad[2] +: 4]; end
                2:  begin unit = mem[ad[13:3]]; read_port[1:0] = unit[2 * ad[2:1] +: 2]; end
                1:  begin unit = mem[ad[13:3]]; read_port[0] = unit[ad[2:0]]; end
                default: read_port = 18'd0;
            endcase
        end
    endfunction

    // write port width w at address ad (width 18: halves enabled by ad[1:0])
    task write_port;
        input integer w;
        input [13:0] ad;
        input [17:0] d;
        reg [8:0] unit;
        begin
            case (w)
                18: begin
                    if (ad[0]) mem[{ad[13:4], 1'b0}] = d[8:0];
                    if (ad[1]) mem[{ad[13:4], 1'b1}] = d[17:9];
                end
                9: mem[ad[13:3]] = d[8:0];
                4: begin unit = mem[ad[13:3]]; unit[4 * ad[2] +: 4] = d[3:0];
                         mem[ad[13:3]] = unit; end
                2: begin unit = mem[ad[13:3]]; unit[2 * ad[2:1] +: 2] = d[1:0];
                         mem[ad[13:3]] = unit; end
                1: begin unit = mem[ad[13:3]]; unit[ad[2:0]] = d[0];
                         mem[ad[13:3]] = unit; end
                default: ;
            endcase
        end
    endtask

    wire sel_a = ({CSA2, CSA1, CSA0} == csdecode(CSDECODE_A));
    wire sel_b = ({CSB2, CSB1, CSB0} == csdecode(CSDECODE_B));

    // one clock edge of a port (CE, chip select, write mode); RST is handled by the caller
    task edge_a;
        if (CEA && sel_a) begin
            if (WEA) begin
                if (WRITEMODE_A == "READBEFOREWRITE") doa <= read_port(DATA_WIDTH_A, ada);
                write_port(DATA_WIDTH_A, ada, dia);
                if (WRITEMODE_A == "WRITETHROUGH") doa <= read_port(DATA_WIDTH_A, ada);
            end else
                doa <= read_port(DATA_WIDTH_A, ada);
        end
    endtask

    task edge_b;
        if (CEB && sel_b) begin
            if (WEB) begin
                if (WRITEMODE_B == "READBEFOREWRITE") dob <= read_port(DATA_WIDTH_B, adb);
                write_port(DATA_WIDTH_B, adb, dib);
                if (WRITEMODE_B == "WRITETHROUGH") dob <= read_port(DATA_WIDTH_B, adb);
            end else
                dob <= read_port(DATA_WIDTH_B, adb);
        end
    endtask

    generate
        if (RESETMODE == "ASYNC") begin : g_async
            always @(posedge CLKA or posedge RSTA)
                if (RSTA) doa <= 18'd0; else edge_a;
            always @(posedge CLKB or posedge RSTB)
                if (RSTB) dob <= 18'd0; else edge_b;
        end else begin : g_sync
            always @(posedge CLKA)
                if (RSTA) doa <= 18'd0; else edge_a;
            always @(posedge CLKB)
                if (RSTB) dob <= 18'd0; else edge_b;
        end
    endgenerate
endmodule
`default_nettype wire
