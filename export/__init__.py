"""qsnn.export (folder ``export/``): the deployment IR, the integer golden model, the
lowering passes and their checks, and the QONNX/NIR exports (``qsnn export``, ``qsnn eval``).
"""
