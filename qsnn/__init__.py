"""qsnn: FPGA co-design of quantized spiking neural networks.

Sub-packages (see docs/architecture.md for the folder mapping):

- ``qsnn.data``   datasets as in-memory integer tensors
- ``qsnn.train``  (folder ``train/``) 4-bit QSNN training
- ``qsnn.export`` (folder ``export/``) deployment IR and golden model
- ``qsnn.hw``     (folder ``hw/``) Verilog generator
"""

__version__ = "0.1.0"
