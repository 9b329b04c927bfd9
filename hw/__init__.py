"""qsnn.hw (folder ``hw/``): the hand-written RTL cores, the generator (``qsnn hw``), the cycle
model, the simulation benches (``qsnn verify``), the FPGA flow (``qsnn bitstream``,
``qsnn program``) and the UART host (``qsnn run``)."""
