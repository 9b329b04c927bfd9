"""qsnn.hw: Verilog accelerator generator (folder ``hw/``). Not yet available: [rtl] adds it."""
