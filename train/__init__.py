"""qsnn.train: 4-bit quantized SNN training (folder ``train/``)."""
