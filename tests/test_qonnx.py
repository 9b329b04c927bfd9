"""QONNX export of one time step: the graph run by qonnx's executor over T steps equals the
eval-mode hardware-aware model (spikes and integer membranes of every block, bit for bit)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from nir_consumers import one_thread
from qonnx.core.modelwrapper import ModelWrapper
from qonnx.core.onnx_exec import execute_onnx

from qsnn import config
from qsnn.config import RunConfig
from qsnn.errors import QsnnError
from qsnn.export.qonnx_export import (
    build_step_module,
    export_step_qonnx,
    step_inputs,
    verify_step_qonnx,
    with_batch,
)
from qsnn.export.qonnx_finn import verify_qcdq
from qsnn.train.model import QSNN

STEPS = 6


@pytest.fixture(scope="module", autouse=True)
def _one_thread():
    with one_thread():
        yield

# name: (layers, encoding, input shape, pixel_max, extra overrides)
CASES = {
    "mlp-direct": (["fc24", "lif", "fc10", "lif"], "direct", (1, 8, 8), 16, []),
    "conv-bn-pool-perchannel": (["conv4k3", "avgpool2", "bn", "lif", "fc10", "lif"], "direct",
                                (1, 8, 8), 16, ["model.per_channel=true"]),
    "mlp-rate-shift-zero": (["fc24", "lif", "fc10", "lif"], "rate", (1, 8, 8), 16,
                            ["model.leak=shift", "model.reset=zero", "model.beta=0.875"]),
    "mlp-bias-nonereset-int2": (["fc20", "lif", "fc10", "lif"], "direct", (1, 8, 8), 16,
                                ["model.bias=true", "model.reset=none", "model.precision=int2"]),
    "conv-events-int8": (["conv3k3p1", "avgpool2", "bn", "lif", "flatten", "fc10", "lif"],
                         "events", (2, 8, 8), 1, ["model.precision=int8"]),
}


def make_case(name: str, batch: int = 8) -> tuple[QSNN, torch.Tensor]:
    """A small eval-mode model with non-trivial BN statistics / biases, and an input batch."""
    layers, enc, shape, pmax, extra = CASES[name]
    cfg = config.apply_overrides(RunConfig(), [
        f"model.layers=[{', '.join(layers)}]", f"data.encoding={enc}",
        f"data.time_steps={STEPS}", "model.threshold=0.4", *extra])
    torch.manual_seed(0)
    model = QSNN(cfg, shape, 10, pmax)
    gen = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for block in model.blocks:
            if block.bn is not None:
                block.bn.running_mean.uniform_(-0.5, 0.5, generator=gen)
                block.bn.running_var.uniform_(0.2, 2.0, generator=gen)
                block.bn.weight.uniform_(-1.5, 1.5, generator=gen)  # some negative gains
                block.bn.bias.uniform_(-0.3, 0.3, generator=gen)
            if block.bias is not None:
                block.bias.uniform_(-0.5, 0.5, generator=gen)
        if cfg.model.per_channel:  # different power-of-two scales per output channel
            w = model.blocks[0].layer.weight
            w.mul_(torch.tensor([1.0, 2.0, 1.0, 0.5]).reshape(-1, 1, 1, 1))
    if enc == "events":
        x = (torch.rand(batch, STEPS, *shape, generator=gen) < 0.3).to(torch.uint8)
    else:
        x = torch.randint(0, pmax + 1, (batch, *shape), generator=gen, dtype=torch.uint8)
    return model.eval(), x


def neuron_steps(model: QSNN, x: torch.Tensor) -> int:
    """Number of (image, step, neuron) triples over all blocks."""
    with torch.no_grad():
        _, trace = model(x, record=True)
    return sum(s.numel() for s in trace.spikes)


@pytest.mark.parametrize("case", sorted(CASES))
def test_qonnx_step_equals_model(case: str, tmp_path: Path) -> None:
    model, x = make_case(case)
    path = tmp_path / "step.onnx"
    export_step_qonnx(model, path, x[:1])  # batch 1 graph; the verification re-batches it
    wrapper = ModelWrapper(str(path))
    quants = wrapper.get_nodes_by_op_type("Quant")
    assert len(quants) == len(model.blocks)
    bits = model.blocks[0].layer.quant_weight().bit_width.item()
    assert all(wrapper.get_initializer(q.input[3]).item() == bits for q in quants)
    n = len(model.blocks)
    assert [i.name for i in wrapper.graph.input] == ["x"] + [f"mem_{i}" for i in range(n)]
    assert [o.name for o in wrapper.graph.output][:1] == ["spk_out"]
    res = verify_step_qonnx(path, model, x)
    assert res["images"] == x.shape[0] and res["time_steps"] == STEPS
    assert res["spike_mismatches"] == 0
    assert res["membrane_mismatches"] == 0
    assert res["output_spike_mismatches"] == 0
    total = neuron_steps(model, x)
    assert 0.02 * total < res["spikes"] < 0.98 * total, "degenerate case"


def test_quant_nodes_hold_the_int_weights(tmp_path: Path) -> None:
    model, x = make_case("conv-bn-pool-perchannel", batch=1)
    path = tmp_path / "step.onnx"
    export_step_qonnx(model, path, x)
    wrapper = with_batch(ModelWrapper(str(path)), 1)
    frame = step_inputs(model, x)[0].numpy()
    mems = [np.zeros(vi_shape, np.float32) for vi_shape in
            (wrapper.get_tensor_shape(i.name) for i in wrapper.graph.input[1:])]
    feed = dict(zip([i.name for i in wrapper.graph.input], [frame, *mems], strict=True))
    ctx = execute_onnx(wrapper, feed, return_full_exec_context=True)
    quants = wrapper.get_nodes_by_op_type("Quant")
    for q, block in zip(quants, model.blocks, strict=True):
        assert wrapper.get_initializer(q.input[1]).item() == 1.0  # scale moved to a Mul
        assert wrapper.get_tensor_datatype(q.output[0]).name == "INT4"
        want = block.layer.quant_weight().int().detach().numpy().astype(np.float32)
        if block.spec.kind == "fc":  # qonnx folds the MatMul transpose into the initializer
            want = want.T
        assert np.array_equal(ctx[q.output[0]], want)
    (mul,) = [n for n in wrapper.graph.node if n.input[0] == quants[0].output[0]]
    assert mul.op_type == "Mul"
    scales = wrapper.get_initializer(mul.input[1])
    assert len(np.unique(scales)) > 1  # per-channel scales really differ


def test_tampered_graph_is_caught(tmp_path: Path) -> None:
    model, x = make_case("mlp-direct", batch=4)
    path = tmp_path / "step.onnx"
    export_step_qonnx(model, path, x)
    wrapper = ModelWrapper(str(path))
    leak = model.blocks[0].lif.leak_param() / 2**model.blocks[0].lif.frac_bits
    for node in wrapper.get_nodes_by_op_type("Mul"):
        init = wrapper.get_initializer(node.input[1])
        if init is not None and init.size == 1 and init.item() == leak:
            wrapper.set_initializer(node.input[1], np.array(1.0, np.float32))  # no leak
    wrapper.save(str(path))
    res = verify_step_qonnx(path, model, x)
    assert res["membrane_mismatches"] > 0
    assert verify_qcdq(str(path), model, x)["membrane_mismatches"] > 0


def test_export_is_deterministic_and_leaves_model_alone(tmp_path: Path) -> None:
    model, x = make_case("conv-bn-pool-perchannel", batch=2)
    state = {k: v.clone() for k, v in model.state_dict().items()}
    with torch.no_grad():
        before = model(x)
    export_step_qonnx(model, tmp_path / "a.onnx", x)
    export_step_qonnx(model, tmp_path / "b.onnx", x)
    twin, _ = make_case("conv-bn-pool-perchannel", batch=2)  # same weights, new objects
    export_step_qonnx(twin, tmp_path / "c.onnx", x)
    data = [(tmp_path / f"{n}.onnx").read_bytes() for n in "abc"]
    assert data[0] == data[1] == data[2]
    assert all(torch.equal(state[k], v) for k, v in model.state_dict().items())
    with torch.no_grad():
        assert torch.equal(model(x), before)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.onnx", "b.onnx", "c.onnx"]


def test_step_module_in_torch_matches_model() -> None:
    model, x = make_case("mlp-rate-shift-zero")
    step = build_step_module(model)
    frames = step_inputs(model, x)
    with torch.no_grad():
        _, trace = model(x, record=True)
        mems = step.zero_membranes(frames[0])
        for t in range(STEPS):
            out = step(frames[t], *mems)
            n = len(model.blocks)
            mems = list(out[n:])
            assert torch.equal(out[0], trace.spikes[-1][t])
            for i in range(n):
                assert torch.equal(mems[i], trace.membranes[i][t])


def test_rejects_training_or_float_models(tmp_path: Path) -> None:
    model, x = make_case("mlp-direct", batch=1)
    with pytest.raises(QsnnError, match="eval mode"):
        export_step_qonnx(model.train(), tmp_path / "a.onnx", x)
    cfg = config.apply_overrides(RunConfig(), ["model.precision=fp32"])
    fp = QSNN(cfg, (1, 8, 8), 10, 16).eval()
    with pytest.raises(QsnnError, match="hardware-aware"):
        export_step_qonnx(fp, tmp_path / "b.onnx", x)
    assert not (tmp_path / "a.onnx").exists()
