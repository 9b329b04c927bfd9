"""The free-running bench's own checks fail when the design misbehaves: stand-in
``qsnn_top`` modules that break the output protocol or the weight stream, run under
Icarus Verilog (the same bench source Verilator compiles; a compile costs ~0.3 s here
instead of a cached C++ build). Each must end with the bench's one ERROR line."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from qsnn.hw import netbench
from qsnn.hw.netbench import BenchDesign, BenchError

pytestmark = pytest.mark.skipif(not netbench.icarus_ok(),
                                reason="Icarus Verilog not installed (apt-get install iverilog)")

#: a stand-in qsnn_top: takes IN_BYTES bytes, then after 8 cycles raises m_valid;
#: MODE 0 behaves, 1 drops m_valid after one cycle, 2 changes m_counts while waiting,
#: 3 never answers, 4 reports w_loaded before any weights, 5 never after them, 6 leaves
#: bit 20 of m_counts (class 1) an unassigned, x register
STUB = """`default_nettype none
module qsnn_top (
    input wire clk, input wire rst, input wire s_valid, output wire s_ready,
    input wire [7:0] s_data, output reg m_valid, input wire m_ready, output wire [7:0] m_pred,
    output reg [47:0] m_counts, output wire [31:0] m_cycles, input wire w_start,
    input wire w_valid, output wire w_ready, input wire [7:0] w_data, output wire w_loaded,
    output wire [31:0] info_id, output wire [31:0] info_in_bytes, output wire [31:0] info_w_bytes
);
    localparam integer MODE = {mode};
    reg [7:0] got, wait_n;
    reg [15:0] wbytes;
    reg xbit;  // never assigned: x in a 4-state simulator
    assign s_ready = got < 8'd3 && !m_valid;
    assign m_pred = 8'd1;
    assign m_cycles = 32'd11;
    assign w_ready = 1'b1;
    assign w_loaded = (MODE == 4) || (MODE != 5 && wbytes == 16'd5);
    assign info_id = 32'd0;
    assign info_in_bytes = 32'd3;
    assign info_w_bytes = 32'd5;
    always @(posedge clk) begin
        if (rst) begin
            got <= 8'd0; wait_n <= 8'd0; m_valid <= 1'b0; m_counts <= 48'h000300020001;
            wbytes <= 16'd0;
        end else begin
            if (w_start) wbytes <= 16'd0;
            else if (w_valid) wbytes <= wbytes + 16'd1;
            if (s_valid && s_ready) got <= got + 8'd1;
            if (got == 8'd3 && !m_valid) wait_n <= wait_n + 8'd1;
            if (got == 8'd3 && wait_n == 8'd8 && MODE != 3) m_valid <= 1'b1;
            if (m_valid && MODE == 2) m_counts <= m_counts + 48'd1;
            if (MODE == 6) m_counts[20] <= xbit;
            if (m_valid && (m_ready || MODE == 1)) begin
                m_valid <= 1'b0; got <= 8'd0; wait_n <= 8'd0;
            end
        end
    end
    wire unused = &{{1'b0, s_data, w_data}};
endmodule
`default_nettype wire
"""


def stub(tmp_path: Path, mode: int, weights: bytes = b"") -> BenchDesign:
    src = tmp_path / f"stub{mode}" / "qsnn_top.v"
    src.parent.mkdir()
    src.write_text(STUB.format(mode=mode))
    return BenchDesign(src.parent, (src,), 3, 3, 16, weights)


IMAGES = np.arange(24, dtype=np.uint8).reshape(8, 3)


def test_a_well_behaved_stub_passes(tmp_path) -> None:
    got = netbench.run(stub(tmp_path, 0, b"\1\2\3\4\5"), IMAGES, 100, seed=3,
                       simulator="icarus")
    assert [(r.image, r.counts, r.prediction, r.cycles) for r in got] == [
        (i, [1, 2, 3], 1, 11) for i in range(8)]


@pytest.mark.parametrize("mode,weights,message", [
    (1, b"", "m_valid dropped before m_ready"),
    (2, b"", "output changed before its handshake"),
    (3, b"", r"timeout: no m_valid \(image 0, 101 cycles\)"),
    (4, b"\1\2\3\4\5", "w_loaded before any weights were sent"),
    (5, b"\1\2\3\4\5", "w_loaded low after the whole weight blob"),
    (6, b"", "x/z bits on m_counts for image 0"),
])
def test_bench_checks_fail(tmp_path, mode, weights, message) -> None:
    with pytest.raises(BenchError, match=message):
        netbench.run(stub(tmp_path, mode, weights), IMAGES, 100, seed=3, simulator="icarus")
