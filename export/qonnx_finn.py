"""What FINN-style tools see in the QONNX step graph: datatypes, QCDQ, inference cost.

:func:`integer_weights` and :func:`set_io_datatypes` rewrite a cleaned step graph
(``qsnn.export.qonnx_export``) so that qonnx datatype inference and FINN-style consumers
see the integer structure:

- every ``Quant`` weight node is split by qonnx's ``ExtractQuantScaleZeroPt`` into
  ``Quant(scale = 1)`` (output ``INT<wb>``, e.g. INT4: the integer weights W) and a ``Mul``
  by the power-of-two scale, with the ``Div`` on the weight folded (``FoldConstants``);
- the graph input ``x`` is ``UINT<n>`` for direct input (the narrowest unsigned type holding
  ``pixel_max``: UINT5 for digits, UINT8 for 8-bit images) and ``BINARY`` for rate/event
  frames; every spike output is ``BINARY``; membrane inputs ``mem_i`` and outputs
  ``mem_i_next`` are ``INT<B_i>`` with B_i the IR's membrane width of block i (the
  worst-case analysis of ``qsnn.export.widths``: no value outside that range can occur).

:func:`verify_qcdq` converts the Quant nodes to QuantizeLinear/Clip/DequantizeLinear with
qonnx's ``QuantToQCDQ`` and runs the step graph in onnxruntime over all T steps, comparing
spikes and membranes with the model; :func:`inference_cost` is qonnx's
``inference_cost`` of one image and one step.
"""

from __future__ import annotations

import ast
import time
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort
import torch
from qonnx.core.datatype import DataType
from qonnx.core.modelwrapper import ModelWrapper
from qonnx.transformation.extract_quant_scale_zeropt import ExtractQuantScaleZeroPt
from qonnx.transformation.fold_constants import FoldConstants
from qonnx.transformation.infer_datatypes import InferDataTypes
from qonnx.transformation.qonnx_to_qcdq import QuantToQCDQ
from qonnx.util import inference_cost as qonnx_cost
from qonnx.util.cleanup import cleanup_model

from qsnn.errors import QsnnError
from qsnn.export import lower, pass_checks, widths
from qsnn.export.ir import Encoding, Graph
from qsnn.train.model import QSNN


def input_datatype(model: QSNN) -> str:
    """``UINT<n>`` for direct input (n bits hold pixel_max), else ``BINARY``."""
    if model.encoding != Encoding.DIRECT:
        return "BINARY"
    return f"UINT{max(1, int(model.pixel_max).bit_length())}"


def membrane_bits(model: QSNN, input_shape: tuple[int, ...]) -> list[int]:
    """The IR's minimal membrane width of every block (lowered without checks; the export
    checks the same lowering against the model)."""
    enc, nodes = lower.lower_model(model, "qonnx", tuple(input_shape))
    folded = lower.ir_nodes(pass_checks.pass_graphs(nodes)[-1][1])
    graph = Graph("qonnx", model.steps, enc, tuple(folded))
    return [w.membrane_bits for w in widths.analyze(graph)]


def integer_weights(wrapper: ModelWrapper) -> ModelWrapper:
    """Quant nodes with scale 1 (``INT<wb>`` outputs) followed by a ``Mul`` by the scale;
    cleaned (qonnx renames the graph inputs/outputs) and datatypes inferred."""
    wrapper = wrapper.transform(ExtractQuantScaleZeroPt()).transform(FoldConstants())
    return cleanup_model(wrapper).transform(InferDataTypes())


def set_io_datatypes(wrapper: ModelWrapper, model: QSNN, mem_bits: list[int]) -> None:
    """qonnx datatypes of the step graph's inputs and outputs (module docstring)."""
    n = len(mem_bits)
    graph = wrapper.graph
    ins = [vi.name for vi in graph.input]
    outs = [vi.name for vi in graph.output]
    wrapper.set_tensor_datatype(ins[0], DataType[input_datatype(model)])
    for i, bits in enumerate(mem_bits):
        wrapper.set_tensor_datatype(ins[1 + i], DataType[f"INT{bits}"])
        wrapper.set_tensor_datatype(outs[n + i], DataType[f"INT{bits}"])
    for name in outs[:n]:
        wrapper.set_tensor_datatype(name, DataType["BINARY"])


def _qcdq_session(path: str) -> ort.InferenceSession:
    wrapper = ModelWrapper(path).transform(QuantToQCDQ())
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    return ort.InferenceSession(wrapper.model.SerializeToString(), opts,
                                providers=["CPUExecutionProvider"])


def verify_qcdq(path: str | Path, model: QSNN, x: torch.Tensor) -> dict[str, Any]:
    """Step graph after ``QuantToQCDQ`` in onnxruntime over all T steps vs the model
    (batch of ``x``, any size: the graph's batch axis is dynamic)."""
    from qsnn.export.qonnx_export import step_inputs

    with torch.no_grad():
        _, trace = model(x, record=True)
    frames = step_inputs(model, x).numpy()
    sess = _qcdq_session(str(path))
    ins = [i.name for i in sess.get_inputs()]
    outs = [o.name for o in sess.get_outputs()]
    n = len(trace.membranes)
    mems = [np.zeros(m.shape[1:], np.float32) for m in trace.membranes]
    spk_bad = mem_bad = 0
    start = time.perf_counter()
    for t in range(model.steps):
        res = dict(zip(outs, sess.run(outs, dict(zip(ins, [frames[t], *mems], strict=True))),
                       strict=True))
        spikes = [res[outs[1 + i]] for i in range(n - 1)] + [res[outs[0]]]
        mems = [res[outs[n + i]] for i in range(n)]
        for i in range(n):
            spk_bad += int((spikes[i] != trace.spikes[i][t].numpy()).sum())
            mem_bad += int((mems[i] != trace.membranes[i][t].numpy()).sum())
    return {"images": int(x.shape[0]), "spike_mismatches": spk_bad,
            "membrane_mismatches": mem_bad, "seconds": time.perf_counter() - start}


COST_KEYS = ("total_macs", "total_bops", "total_mem_w_bits", "total_mem_w_elems",
             "total_mem_o_bits", "total_mem_o_elems")


def _fuse_scales(wrapper: ModelWrapper) -> ModelWrapper:
    """``Quant(scale=1) -> Mul(s)`` back to ``Quant(scale=s)``, the form qonnx's cost
    analysis reads as ``SCALEDINT<wb>`` weights (it folds a separate Mul into FLOAT32)."""
    graph = wrapper.graph
    for quant in wrapper.get_nodes_by_op_type("Quant"):
        users = wrapper.find_consumers(quant.output[0]) or []
        scale = wrapper.get_initializer(users[0].input[1]) if len(users) == 1 else None
        if users and users[0].op_type == "Mul" and scale is not None:
            wrapper.set_initializer(quant.input[1], scale.astype(np.float32))
            weight = wrapper.get_initializer(quant.input[0])
            wrapper.set_initializer(quant.input[0], (weight * scale).astype(np.float32))
            for node in graph.node:
                node.input[:] = [quant.output[0] if i == users[0].output[0] else i
                                 for i in node.input]
            graph.node.remove(users[0])
    return wrapper


def inference_cost(path: str | Path) -> dict[str, Any]:
    """qonnx ``inference_cost`` of one time step for one image (batch fixed to 1):
    MACs / bit-operations, weight and output memory, and the per-type MAC counts
    (weights ``SCALEDINT<wb>``: integers times their power-of-two scale)."""
    from qsnn.export.qonnx_export import with_batch

    one = _fuse_scales(with_batch(ModelWrapper(str(path)), 1))
    cost = qonnx_cost.inference_cost(one, discount_sparsity=False)["total_cost"]
    out = {k: cost[k] for k in COST_KEYS if k in cost}
    out["by_type"] = {k: v for k, v in sorted(cost.items())
                      if k.startswith(("op_mac_", "mem_w_"))}
    out["unsupported"] = unsupported_ops(cost.get("unsupported", "set()"))
    return out


def unsupported_ops(text: str) -> list[str]:
    """The op types qonnx's cost analysis skips, sorted: qonnx hands over ``str()`` of a
    set, whose order changes with the string hash seed of each run."""
    ops = ast.literal_eval(text)
    if not isinstance(ops, set) or not all(isinstance(op, str) for op in ops):
        raise QsnnError(f"qonnx inference_cost: unexpected 'unsupported' value {text!r}")
    return sorted(ops)

