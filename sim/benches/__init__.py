"""cocotb test modules (run inside the simulator by ``simlib.run``; not collected by pytest)."""
