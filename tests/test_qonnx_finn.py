"""The QONNX step graph as FINN-style tools see it: a dynamic batch axis, qonnx datatypes
(UINT pixels, BINARY spikes, INT<B> membranes, INT4 weights behind Quant nodes), qonnx's
own transformations and onnxruntime after QuantToQCDQ, both equal to the integer golden
model step by step (every spike and membrane) at two batch sizes; inference cost."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest
import torch
from nir_consumers import one_thread
from qonnx.core.modelwrapper import ModelWrapper
from qonnx.core.onnx_exec import execute_onnx
from qonnx.transformation.fold_constants import FoldConstants
from qonnx.transformation.general import GiveReadableTensorNames, GiveUniqueNodeNames
from qonnx.transformation.infer_datatypes import InferDataTypes
from qonnx.transformation.infer_shapes import InferShapes
from qonnx.transformation.qonnx_to_qcdq import QuantToQCDQ
from qonnx.util.cleanup import cleanup_model
from test_qonnx import make_case

from qsnn.config import RunConfig
from qsnn.errors import QsnnError
from qsnn.export import golden, lower, pass_checks
from qsnn.export.ir import Graph
from qsnn.export.qonnx_export import BATCH_AXIS, export_step_qonnx, step_inputs, with_batch
from qsnn.export.qonnx_finn import (
    inference_cost,
    input_datatype,
    membrane_bits,
    unsupported_ops,
)


@pytest.fixture(scope="module", autouse=True)
def _one_thread():
    with one_thread():
        yield


def golden_trace(model, x: torch.Tensor) -> golden.GoldenResult:
    """The integer golden model's spikes and membranes of the lowered model."""
    shape = tuple(x.shape[2:] if model.encoding == "events" else x.shape[1:])
    enc, nodes = lower.lower_model(model, "g", shape, RunConfig().data.rate_seed)
    graph = Graph("g", model.steps, enc, tuple(pass_checks.pass_graphs(nodes)[-1][1]))
    return golden.run(graph, x, record=True)


def qonnx_run(wrapper: ModelWrapper, frames: np.ndarray, n: int):
    """Yield (spikes per block, membranes per block) of every step with qonnx's executor."""
    ins = [vi.name for vi in wrapper.graph.input]
    outs = [vi.name for vi in wrapper.graph.output]
    mems = [np.zeros(wrapper.get_tensor_shape(name), np.float32) for name in ins[1:]]
    for frame in frames:
        res = execute_onnx(wrapper, dict(zip(ins, [frame, *mems], strict=True)))
        mems = [res[outs[n + i]] for i in range(n)]
        yield [res[outs[1 + i]] for i in range(n - 1)] + [res[outs[0]]], mems


def ort_run(path: Path, frames: np.ndarray, n: int, batch: int):
    """The same with onnxruntime on the QCDQ form of the graph."""
    proto = ModelWrapper(str(path)).transform(QuantToQCDQ()).model
    assert not [nd for nd in proto.graph.node if nd.op_type == "Quant"]
    sess = ort.InferenceSession(proto.SerializeToString(), providers=["CPUExecutionProvider"])
    ins = [i.name for i in sess.get_inputs()]
    outs = [o.name for o in sess.get_outputs()]
    mems = [np.zeros((batch, *i.shape[1:]), np.float32) for i in sess.get_inputs()[1:]]
    for frame in frames:
        res = sess.run(outs, dict(zip(ins, [frame, *mems], strict=True)))
        mems = res[n:]
        yield [res[1 + i] for i in range(n - 1)] + [res[0]], mems


def mismatches(steps, ref: golden.GoldenResult) -> tuple[int, int]:
    spk = mem = 0
    for t, (spikes, mems) in enumerate(steps):
        for i, (s, m) in enumerate(zip(spikes, mems, strict=True)):
            spk += int((s != ref.spikes[i][t].numpy()).sum())
            mem += int((m != ref.membranes[i][t].numpy()).sum())
    return spk, mem


@pytest.mark.parametrize("case", ["conv-bn-pool-perchannel", "mlp-rate-shift-zero"])
def test_qonnx_and_qcdq_equal_golden_at_two_batch_sizes(case: str, tmp_path: Path) -> None:
    model, x = make_case(case, batch=5)
    path = tmp_path / "step.onnx"
    export_step_qonnx(model, path, x[:2])  # the sample's batch size does not matter
    n = len(model.blocks)
    for batch in (1, 5):
        xb = x[:batch]
        ref = golden_trace(model, xb)
        assert sum(int(s.sum()) for s in ref.spikes) > 0
        frames = step_inputs(model, xb).numpy()
        wrapper = cleanup_model(with_batch(ModelWrapper(str(path)), batch))
        for tf in (InferShapes(), InferDataTypes(), FoldConstants(), GiveUniqueNodeNames(),
                   GiveReadableTensorNames()):
            wrapper = wrapper.transform(tf)
        assert mismatches(qonnx_run(wrapper, frames, n), ref) == (0, 0)
        assert mismatches(ort_run(path, frames, n, batch), ref) == (0, 0)


def test_datatype_annotations_and_dynamic_batch(tmp_path: Path) -> None:
    model, x = make_case("conv-bn-pool-perchannel", batch=3)
    path = tmp_path / "step.onnx"
    export_step_qonnx(model, path, x)
    wrapper = ModelWrapper(str(path))
    ins = [vi.name for vi in wrapper.graph.input]
    outs = [vi.name for vi in wrapper.graph.output]
    for vi in [*wrapper.graph.input, *wrapper.graph.output]:
        assert vi.type.tensor_type.shape.dim[0].dim_param == BATCH_AXIS
    dt = wrapper.get_tensor_datatype
    assert dt("x").name == "UINT5"  # pixels 0..16
    bits = membrane_bits(model, (1, 8, 8))
    ref = golden_trace(model, x)
    for i, b in enumerate(bits):
        assert dt(f"mem_{i}").name == dt(f"mem_{i}_next").name == f"INT{b}"
        peak = int(ref.membranes[i].abs().max())
        assert peak < 2 ** (b - 1)  # the annotation holds on real data
    assert all(dt(o).name == "BINARY" for o in outs[: len(bits)])
    assert [q for q in wrapper.get_nodes_by_op_type("Quant")
            if dt(q.output[0]).name != "INT4"] == []
    assert ins == ["x", "mem_0", "mem_1"]


def test_input_datatype_follows_encoding() -> None:
    assert input_datatype(make_case("mlp-direct")[0]) == "UINT5"
    assert input_datatype(make_case("mlp-rate-shift-zero")[0]) == "BINARY"
    assert input_datatype(make_case("conv-events-int8")[0]) == "BINARY"


def test_inference_cost_counts_the_macs(tmp_path: Path) -> None:
    model, x = make_case("mlp-direct", batch=2)
    path = tmp_path / "step.onnx"
    export_step_qonnx(model, path, x)
    cost = inference_cost(str(path))
    assert cost["total_macs"] == 64 * 24 + 24 * 10  # one image, one step
    assert cost["total_mem_w_elems"] == 64 * 24 + 24 * 10
    assert cost["by_type"]["op_mac_UINT5_SCALEDINT<4>"] == 64 * 24  # pixels x int4 weights
    assert cost["by_type"]["op_mac_BINARY_SCALEDINT<4>"] == 24 * 10  # spikes x int4 weights
    assert "Floor" in cost["unsupported"]  # the leak
    assert cost["unsupported"] == sorted(cost["unsupported"])  # not a set's str(): by hash seed


def test_unsupported_ops_are_sorted_whatever_the_set_order() -> None:
    assert unsupported_ops("{'Where', 'Cast', 'Floor'}") == ["Cast", "Floor", "Where"]
    assert unsupported_ops("set()") == []
    with pytest.raises(QsnnError, match="unexpected 'unsupported' value"):
        unsupported_ops("[1, 2]")
