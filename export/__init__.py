"""qsnn.export: deployment IR, integer golden model, QONNX/NIR export (folder ``export/``).

Not yet available: the [export] issue adds it.
"""
