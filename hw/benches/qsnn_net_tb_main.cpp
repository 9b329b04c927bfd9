// C++ main of the Verilated qsnn_net_tb (hw/benches/qsnn_net_tb.v): toggles clk until the
// bench calls $finish. Plusargs (+stimulus=, +results=, ...) are passed through.
#include <memory>

#include "Vqsnn_net_tb.h"
#include "verilated.h"

int main(int argc, char** argv) {
    const std::unique_ptr<VerilatedContext> ctx{new VerilatedContext};
    ctx->commandArgs(argc, argv);
    const std::unique_ptr<Vqsnn_net_tb> top{new Vqsnn_net_tb{ctx.get(), "TOP"}};
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
