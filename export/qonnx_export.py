"""QONNX export of ONE time step of a trained hardware-aware QSNN, checked with qonnx's executor.

The exported graph is the per-step function of ``docs/spec.md`` §1–2 with every membrane an
explicit input and output, so a runtime steps it T times and feeds the membranes back::

    forward(x_t, mem_0, ..., mem_{L-1})
        -> (spk_out, spk_0, ..., spk_{L-2}, mem_0', ..., mem_{L-1}')

``spk_out`` is the spike map of the last block (``spk_{L-1}``). Per block l, with the
PREVIOUS membrane ``U = mem_l`` and the block input ``x`` (``x_t`` for block 0, else the
spikes of block l-1 at the same step), all values integers held exactly in float32::

    I         = sumpool_K(layer(x) / s) * sign + b_int
    r         = U > theta_int                       reset from the PREVIOUS membrane
    subtract: U' = leak(U) + I - (r ? theta_int : 0)
    zero:     U' = leak(r ? 0 : U) + I
    none:     U' = leak(U) + I
    spk       = U' > theta_int                      strictly greater; 0.0 / 1.0
    mult:     leak(U) = floor(U * (m / 2^F))
    shift:    leak(U) = U - floor(U * 2^-k)
    sumpool_K(y) = round(AvgPool_K(y) * K^2)        (the round undoes AvgPool's 1/K^2 error)

``layer`` is (a copy of) the trained Brevitas ``QuantLinear`` / ``QuantConv2d``, so the graph
keeps a QONNX ``Quant`` node on each float weight (-> ``MatMul`` / ``Conv``); ``s`` is its
power-of-two weight scale (per tensor or per output channel), so ``layer(x) / s`` is exactly
``W_int x``. ``sign`` (signs of the BatchNorm gains), ``b_int``, ``theta_int`` and the leak
parameter are the constants the trained model itself computes in eval mode; sign and bias
are left out when trivial. There is no saturation: the training model has none either.

The step input ``x_t`` is that step's encoded input: the integer image (as float32) for
``direct``, the LFSR spike frame for ``rate``, the event frame for ``events``. Membranes are
in integer units, shape [B, ...] per block, all zero at t = 0.
"""

from __future__ import annotations

import copy
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from brevitas.export import export_qonnx
from qonnx.core.modelwrapper import ModelWrapper
from qonnx.core.onnx_exec import execute_onnx
from qonnx.transformation.infer_shapes import InferShapes
from qonnx.util.cleanup import cleanup_model
from torch import Tensor, nn

from qsnn.atomic import atomic_write
from qsnn.errors import QsnnError
from qsnn.export.ir import Leak, Reset
from qsnn.export.torch_types import modules_of, quant_weight
from qsnn.train.layers import Block, bn_affine
from qsnn.train.model import QSNN

LEAK_KINDS = Leak.values()
RESET_KINDS = Reset.values()


# -- the step module --------------------------------------------------------------------------
class BlockStep(nn.Module):
    """One block for one time step: ``forward(x, mem) -> (spk, mem')`` (module docstring)."""

    # buffers (registered in __init__; ``sign`` and ``bias`` only when not trivial)
    scale: Tensor
    theta: Tensor
    leak_const: Tensor
    sign: Tensor
    bias: Tensor

    def __init__(self, block: Block) -> None:
        super().__init__()
        spec, lif = block.spec, block.lif
        if lif.leak not in LEAK_KINDS or lif.reset not in RESET_KINDS:
            raise QsnnError(f"unsupported LIF leak/reset '{lif.leak}'/'{lif.reset}'")
        self.layer = copy.deepcopy(block.layer)  # the export mutates modules; keep the model's
        self.pool, self.flatten = spec.pool, spec.flatten
        self.reset, self.leak = lif.reset, lif.leak
        consts = block_constants(block)
        self.register_buffer("scale", consts["scale"])
        self.register_buffer("theta", consts["theta"])
        self.register_buffer("leak_const", consts["leak_const"])
        self.has_sign, self.has_bias = "sign" in consts, "bias" in consts
        if self.has_sign:
            self.register_buffer("sign", consts["sign"])
        if self.has_bias:
            self.register_buffer("bias", consts["bias"])

    def current(self, x: Tensor) -> Tensor:
        """Integer current ``sumpool(layer(x) / s) * sign + b_int``."""
        if self.flatten:
            x = torch.flatten(x, 1)
        cur = self.layer(x) / self.scale
        if self.pool > 1:
            k = self.pool
            cur = torch.round(nn.functional.avg_pool2d(cur, k) * float(k * k))
        if self.has_sign:
            cur = cur * self.sign
        if self.has_bias:
            cur = cur + self.bias
        return cur

    def leak_fn(self, u: Tensor) -> Tensor:
        """``floor(u * m / 2^F)`` (mult) or ``u - floor(u * 2^-k)`` (shift)."""
        if self.leak == "mult":
            return torch.floor(u * self.leak_const)
        return u - torch.floor(u * self.leak_const)

    def forward(self, x: Tensor, mem: Tensor) -> tuple[Tensor, Tensor]:
        """(spikes, new membrane) of one step; ``mem`` is the previous membrane."""
        cur = self.current(x)
        fired = mem > self.theta  # r[t] = (U[t-1] > theta)
        if self.reset == "zero":
            mem = torch.where(fired, 0.0, mem)  # a scalar: the batch axis is dynamic
        new = self.leak_fn(mem) + cur
        if self.reset == "subtract":
            new = new - torch.where(fired, self.theta, 0.0)
        spk = (new > self.theta).to(torch.float32)
        return spk, new


class StepModule(torch.nn.Module):
    """One time step of a trained hardware-aware QSNN (eval mode), membranes explicit:
    ``forward(x_t, mem_0, ..., mem_{L-1}) -> (spk_out, spk_0, ..., spk_{L-2}, mem_0', ...,
    mem_{L-1}')`` with ``spk_out`` the last block's spikes; see the module docstring."""

    def __init__(self, blocks: list[BlockStep]) -> None:
        super().__init__()
        self.blocks = nn.ModuleList(blocks)

    def forward(self, x: Tensor, *mems: Tensor) -> tuple[Tensor, ...]:
        """One step; returns the last block's spikes, the hidden spikes, the new membranes."""
        if len(mems) != len(self.blocks):
            raise QsnnError(f"expected {len(self.blocks)} membranes, got {len(mems)}")
        spikes, new_mems = [], []
        h = x
        for block, mem in zip(self.block_steps(), mems, strict=True):
            h, m = block(h, mem)
            spikes.append(h)
            new_mems.append(m)
        return (spikes[-1], *spikes[:-1], *new_mems)

    def zero_membranes(self, x_t: Tensor) -> list[Tensor]:
        """U[-1] = 0 for every block, shaped for the step input ``x_t`` [B, ...]."""
        mems = []
        h = x_t
        with torch.no_grad():
            for block in self.block_steps():
                cur = block.current(h)
                mems.append(torch.zeros_like(cur))
                h = torch.zeros_like(cur)  # any spike map of the right shape
        return mems

    def block_steps(self) -> list[BlockStep]:
        """The blocks, typed (iterating ``nn.ModuleList`` yields ``nn.Module``)."""
        return modules_of(self.blocks, BlockStep)

    def io_names(self) -> tuple[list[str], list[str]]:
        """Graph input and output names, in ``forward`` order."""
        n = len(self.blocks)
        ins = ["x"] + [f"mem_{i}" for i in range(n)]
        outs = ["spk_out", *(f"spk_{i}" for i in range(n - 1))]
        return ins, outs + [f"mem_{i}_next" for i in range(n)]


# -- constants from the trained model -------------------------------------------------------------
def _probe_input(block: Block) -> Tensor:
    """A zero input just large enough for one output position of the block's layer."""
    spec = block.spec
    if spec.kind == "fc":
        return torch.zeros(1, spec.in_ch)
    size = spec.kernel + spec.pool - 1  # the size of the pool-fused kernel
    return torch.zeros(1, spec.in_ch, size, size)


def block_constants(block: Block) -> dict[str, Tensor]:
    """The block's integer constants, computed by the model's own code (eval mode).

    ``scale`` (weight scale, channel view), ``theta`` (theta_int), ``leak_const`` (m / 2^F
    or 2^-k), and, when not trivial, ``sign`` (BatchNorm gain signs) and ``bias`` (b_int).
    """
    if block.training:
        raise QsnnError("block constants need eval mode (BatchNorm running statistics)")
    channel = (-1,) if block.spec.kind == "fc" else (-1, 1, 1)
    with torch.no_grad():
        scale = quant_weight(block.layer).scale.detach().reshape(-1)
        cur, unit = block.int_current(_probe_input(block))  # W * 0 = 0: the current is b_int
        lif = block.lif
        param = lif.leak_param()
        leak = param / 2**lif.frac_bits if lif.leak == "mult" else 2.0**-param
        out = {
            "scale": scale.reshape(channel if scale.numel() > 1 else ()).clone(),
            "theta": lif.theta_int(unit).detach().reshape(channel).clone(),
            "leak_const": torch.tensor(leak, dtype=torch.float32),
        }
        if block.bn is not None:
            a, _ = bn_affine(block.bn, cur, unit.reshape(-1))
            if bool((a < 0).any()):
                out["sign"] = torch.where(a < 0, -1.0, 1.0).reshape(channel)
        if block.bn is not None or block.bias is not None:
            bias = cur[0] if block.spec.kind == "fc" else cur[0, :, 0, 0]
            out["bias"] = (bias + 0.0).reshape(channel).clone()  # + 0.0 turns -0 into 0
    for k, v in out.items():
        if not bool(torch.isfinite(v).all()) or (k != "leak_const" and v.abs().max() >= 2**24):
            raise QsnnError(f"block constant '{k}' is not exact in float32")
    return out


def _check_model(model: QSNN) -> None:
    """Only eval-mode hardware-aware models have the integer step function."""
    if not model.hardware_aware:
        raise QsnnError("QONNX step export needs a hardware-aware (integer) model")
    if model.training:
        raise QsnnError("QONNX step export needs the model in eval mode (model.eval())")


def build_step_module(model: QSNN) -> StepModule:
    """The one-step module of an eval-mode hardware-aware ``model`` (its own copies of the
    Brevitas weight layers; constants from :func:`block_constants`)."""
    _check_model(model)
    return StepModule([BlockStep(b) for b in modules_of(model.blocks, Block)]).eval()


# -- encoding ----------------------------------------------------------------------------------
def step_inputs(model: QSNN, x: Tensor) -> Tensor:
    """The per-step inputs [T, B, ...] of a batch ``x`` as ``model(x)`` takes it."""
    with torch.no_grad():
        h, static = model.encode(x)
    if static:
        h = h.unsqueeze(0).expand(model.steps, *h.shape)
    return h.to(torch.float32).contiguous()


BATCH_AXIS = "batch"  # the name of the dynamic batch dimension


# -- export ----------------------------------------------------------------------------------
def export_step_qonnx(model: QSNN, path: str | Path, sample_input: Tensor,
                      membrane_bits: list[int] | None = None) -> None:
    """Export one time step of ``model`` as a cleaned, datatype-annotated QONNX file at
    ``path`` (atomically; ``qsnn.export.qonnx_finn``).

    ``sample_input`` is a batch as ``model(x)`` takes it (integer images, or events
    [B, T, C, H, W]); it fixes the graph's shapes except the batch axis, which is dynamic
    (``batch``) on every input and output. ``membrane_bits`` (per block, for the ``INT<B>``
    membrane annotations) defaults to the IR's minimal widths.
    """
    from qsnn.export import qonnx_finn

    _check_model(model)
    x_t = step_inputs(model, sample_input)[0]
    if membrane_bits is None:
        start = 2 if model.encoding == "events" else 1
        membrane_bits = qonnx_finn.membrane_bits(model, tuple(sample_input.shape[start:]))
    step = build_step_module(model)
    mems = step.zero_membranes(x_t)
    ins, outs = step.io_names()
    proto = export_qonnx(step, args=(x_t, *mems), export_path=None, dynamo=False,
                         input_names=ins, output_names=outs,
                         dynamic_axes={name: {0: BATCH_AXIS} for name in ins + outs})
    wrapper = qonnx_finn.integer_weights(cleanup_model(ModelWrapper(proto)))
    _restore_io_names(wrapper, ins, outs)
    qonnx_finn.set_io_datatypes(wrapper, model, membrane_bits)
    data = wrapper.model.SerializeToString()
    atomic_write(path, lambda f: f.write(data))


def _restore_io_names(wrapper: ModelWrapper, ins: list[str], outs: list[str]) -> None:
    """Undo qonnx's ``global_in`` / ``global_out`` renaming (graph order is kept)."""
    graph = wrapper.graph
    if len(graph.input) != len(ins) or len(graph.output) != len(outs):
        raise QsnnError("unexpected QONNX graph inputs/outputs after cleanup")
    for vi, name in zip(list(graph.input), ins, strict=True):
        wrapper.rename_tensor(vi.name, name)
    for vi, name in zip(list(graph.output), outs, strict=True):
        wrapper.rename_tensor(vi.name, name)


# -- verification ------------------------------------------------------------------------------
def with_batch(wrapper: ModelWrapper, batch: int) -> ModelWrapper:
    """The graph with batch size ``batch`` on every input and output (shapes re-inferred;
    qonnx's executor needs static shapes).

    qonnx's ``ChangeBatchSize`` only touches the first input and output; the step graph
    has one input and one output per membrane.
    """
    graph = wrapper.graph
    if wrapper.get_nodes_by_op_type("Reshape"):
        raise QsnnError("cannot change the batch size of a QONNX step graph with Reshape nodes")
    for vi in [*graph.input, *graph.output]:
        vi.type.tensor_type.shape.dim[0].dim_value = batch
    del graph.value_info[:]
    return wrapper.transform(InferShapes())


def verify_step_qonnx(path: str | Path, model: QSNN, x: Tensor) -> dict[str, Any]:
    """Run the QONNX step graph with qonnx's executor over all T steps and compare with the model.

    ``x`` is a batch as ``model(x)`` takes it. The membranes fed back are the graph's own.
    Returns counts of differing elements (all blocks, all steps) and the totals.
    """
    _check_model(model)
    with torch.no_grad():
        _, trace = model(x, record=True)
    frames = step_inputs(model, x).numpy()
    wrapper = with_batch(ModelWrapper(str(path)), int(x.shape[0]))
    n = len(model.blocks)
    ins = [vi.name for vi in wrapper.graph.input]
    outs = [vi.name for vi in wrapper.graph.output]
    mems = [np.zeros(m.shape[1:], dtype=np.float32) for m in trace.membranes]
    spk_bad = mem_bad = out_bad = spikes = 0
    start = time.perf_counter()
    for t in range(model.steps):
        feed = dict(zip(ins, [frames[t], *mems], strict=True))
        res = execute_onnx(wrapper, feed)
        got_spk = [res[outs[1 + i]] for i in range(n - 1)] + [res[outs[0]]]
        mems = [res[outs[n + i]] for i in range(n)]
        for i in range(n):
            ref_s = trace.spikes[i][t].numpy()
            ref_m = trace.membranes[i][t].numpy()
            if got_spk[i].shape != ref_s.shape or mems[i].shape != ref_m.shape:
                raise QsnnError(f"block {i}: QONNX shape {got_spk[i].shape} != {ref_s.shape}")
            spk_bad += int((got_spk[i] != ref_s).sum())
            mem_bad += int((mems[i] != ref_m).sum())
            spikes += int(ref_s.sum())
        out_bad += int((got_spk[-1] != trace.spikes[-1][t].numpy()).sum())
    return {
        "images": int(x.shape[0]), "time_steps": model.steps,
        "spike_mismatches": spk_bad, "membrane_mismatches": mem_bad,
        "output_spike_mismatches": out_bad, "spikes": spikes,
        "seconds": time.perf_counter() - start,
    }
