// C++ main of the Verilated qsnn_gate_tb (hw/benches/qsnn_gate_tb.v, the board_top netlist
// behind its UART pins): toggles clk until the bench calls $finish. Plusargs pass through.
#include <memory>

#include "Vqsnn_gate_tb.h"
#include "verilated.h"

int main(int argc, char** argv) {
    const std::unique_ptr<VerilatedContext> ctx{new VerilatedContext};
    ctx->commandArgs(argc, argv);
    const std::unique_ptr<Vqsnn_gate_tb> top{new Vqsnn_gate_tb{ctx.get(), "TOP"}};
    ctx->quiet(true);
    top->clk = 0;
    top->eval();
    while (!ctx->gotFinish()) {
        ctx->timeInc(5);
        top->clk = !top->clk;
        top->eval();
    }
    top->final();
    return 0;
}
