"""Lowering a trained QSNN to the IR: per-layer handlers, then folding passes.

1. ``lower_model`` walks every block's sub-modules and dispatches each through
   :data:`HANDLERS` (module type -> handler). Handlers emit *raw* nodes that still carry
   the float annotations of training: :class:`ScaledWeight` (integer weight + its
   power-of-two scale and the input scale), :class:`AvgPool`, :class:`BatchNorm`,
   :class:`BiasAdd`, :class:`FloatLIF` (float theta and beta).
2. :data:`PASSES` (a named list) fold those annotations away, one contract each::

       fold_weight_scale   ScaledWeight -> Linear/Conv2d;  LIF unit  = scale * in_scale
       avgpool_to_sumpool  AvgPool(K)   -> SumPool(K);     LIF unit /= K^2
       fold_batchnorm      BatchNorm    -> sign into W;    unit *= max(|a|, 1e-4), offset = c
       fold_bias           BiasAdd      -> offset += b
       quantize_lif        FloatLIF     -> LIF: theta_int = clamp(round(theta/unit), 1, 2^20),
                                               bias = clamp(round(offset/unit), +-2^20),
                                               leak parameter k or m from beta

   with the float32 operations in the order the training forward uses them
   (``train/layers.py``), so the result is exact. Membrane widths are assigned last.
3. :mod:`qsnn.export.raw_exec` executes any intermediate graph node by node (without
   the passes); :mod:`qsnn.export.pass_checks` compares each pass's output with its input.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TypeVar

import numpy as np
import torch
from torch import Tensor, nn

from qsnn.errors import QsnnError
from qsnn.export import ir
from qsnn.export.ir import LIF, Conv2d, Flatten, InputEncoder, Linear, Node, Readout, SumPool
from qsnn.export.torch_types import modules_of, quant_weight
from qsnn.train import lif as train_lif
from qsnn.train.layers import MIN_BN_GAIN, Block
from qsnn.train.lif import MAX_THETA_INT, quantize_beta
from qsnn.train.model import QSNN


# -- raw (annotated) nodes ------------------------------------------------------------------
@dataclass(frozen=True, eq=False)
class ScaledWeight:
    """An integer weight layer with its float scale: float current = scale * in_scale * W x."""

    name: str
    layer: Linear | Conv2d
    scale: np.ndarray  # float32 [out]
    in_scale: float


@dataclass(frozen=True, eq=False)
class AvgPool:
    """Average pooling over K x K windows."""

    name: str
    kernel: int


@dataclass(frozen=True, eq=False)
class BatchNorm:
    """Inference BatchNorm y = gamma (x - mean) / sqrt(var + eps) + beta (float32)."""

    name: str
    gamma: np.ndarray
    beta: np.ndarray
    mean: np.ndarray
    var: np.ndarray
    eps: float


@dataclass(frozen=True, eq=False)
class BiasAdd:
    """A float bias current per channel."""

    name: str
    bias: np.ndarray


@dataclass(frozen=True, eq=False)
class FloatLIF:
    """A LIF with float threshold/beta; ``unit``/``offset`` collect folded annotations."""

    name: str
    shape: tuple[int, ...]
    threshold: float
    beta: float
    leak: str
    frac_bits: int
    reset: str
    unit: np.ndarray | None = field(default=None, repr=False)  # float32 [C]
    offset: np.ndarray | None = field(default=None, repr=False)  # float32 [C]


RawNode = ScaledWeight | AvgPool | BatchNorm | BiasAdd | FloatLIF | Linear | Conv2d | SumPool \
    | LIF | Flatten | Readout


# -- handlers ------------------------------------------------------------------------------
@dataclass
class LowerContext:
    """What handlers need to know: the block, its index and its input scale."""

    block: Block
    index: int
    in_scale: float
    shape: tuple[int, ...] = ()


# A handler takes an instance of the type it is registered for (``_dispatch`` looks the
# module's classes up in its MRO), so each handler declares its own module type.
Handler = Callable[..., list[RawNode]]
HANDLERS: dict[type[nn.Module], Handler] = {}
H = TypeVar("H", bound=Handler)


def handler(*types: type[nn.Module]) -> Callable[[H], H]:
    """Register a lowering handler ``fn(module, ctx) -> raw nodes`` for module types."""

    def register(fn: H) -> H:
        for t in types:
            HANDLERS[t] = fn
        return fn

    return register


def _np(t: Tensor) -> np.ndarray:
    return t.detach().cpu().numpy().copy()


def _weight_node(module: nn.Module, ctx: LowerContext) -> list[RawNode]:
    qw = quant_weight(module)
    w = _np(qw.int()).astype(np.int8)
    scale = np.broadcast_to(_np(qw.scale).reshape(-1).astype(np.float32), (w.shape[0],)).copy()
    spec = ctx.block.spec
    name = f"{spec.kind}{ctx.index}"  # fc<i> or conv<i>
    bits = int(qw.bit_width.item())
    if spec.kind == "fc":
        layer: Linear | Conv2d = Linear(name, spec.in_ch, spec.out_ch, bits, w)
    else:
        layer = Conv2d(name, spec.in_ch, spec.out_ch, spec.kernel, spec.padding, bits, w)
    nodes: list[RawNode] = [ScaledWeight(name, layer, scale, ctx.in_scale)]
    if spec.pool > 1:
        nodes.append(AvgPool(f"pool{ctx.index}", spec.pool))
    return nodes


@handler(nn.Linear, nn.Conv2d)
def lower_weight(module: nn.Module, ctx: LowerContext) -> list[RawNode]:
    """Brevitas QuantLinear/QuantConv2d (subclasses of nn.Linear/Conv2d) -> ScaledWeight."""
    return _weight_node(module, ctx)


@handler(nn.BatchNorm1d, nn.BatchNorm2d)
def lower_bn(module: nn.BatchNorm1d | nn.BatchNorm2d, ctx: LowerContext) -> list[RawNode]:
    """BatchNorm (running statistics) -> BatchNorm annotation."""
    mean, var = module.running_mean, module.running_var
    if mean is None or var is None:
        raise QsnnError(f"export: bn{ctx.index} has no running statistics "
                        "(BatchNorm with track_running_stats=False)")
    return [BatchNorm(f"bn{ctx.index}", _np(module.weight), _np(module.bias),
                      _np(mean), _np(var), float(module.eps))]


@handler(train_lif.LIF)
def lower_lif(module: train_lif.LIF, ctx: LowerContext) -> list[RawNode]:
    """LIF -> FloatLIF (float theta and beta, leak form, reset)."""
    return [FloatLIF(f"lif{ctx.index}", ctx.shape, float(module.threshold.detach()),
                     float(module.beta.detach().clamp(0, 1)), module.leak, module.frac_bits,
                     module.reset)]


def _dispatch(module: nn.Module, ctx: LowerContext) -> list[RawNode]:
    for cls in type(module).__mro__:
        if cls in HANDLERS:
            return HANDLERS[cls](module, ctx)
    raise QsnnError(f"export: no handler for layer type {type(module).__name__}")


def block_shape(block: Block, in_shape: tuple[int, ...]) -> tuple[int, ...]:
    """Output shape of a block for an input of ``in_shape``."""
    s = block.spec
    if s.kind == "fc":
        return (s.out_ch,)
    return (s.out_ch, *(ir.pool_out_size(ir.conv_out_size(n, s.kernel, s.padding), s.pool)
                        for n in in_shape[1:3]))


def lower_model(model: QSNN, name: str, input_shape: tuple[int, ...],
                lfsr_seed: int = 0) -> tuple[InputEncoder, list[RawNode]]:
    """Raw node list of a trained hardware-aware model (eval-mode parameters)."""
    if not model.hardware_aware:
        raise QsnnError("export needs a hardware-aware integer model "
                        "(model.hardware_aware true with an int precision)")
    enc = InputEncoder("input", model.encoding, tuple(input_shape), model.pixel_max,
                       lfsr_seed if model.encoding == "rate" else 0)
    nodes: list[RawNode] = []
    shape = tuple(input_shape)
    for i, block in enumerate(modules_of(model.blocks, Block)):
        if block.spec.flatten and len(shape) > 1:
            nodes.append(Flatten(f"flatten{i}"))
            shape = (int(np.prod(shape)),)
        in_scale = block.in_scale
        shape = block_shape(block, shape)
        ctx = LowerContext(block, i, in_scale, shape)
        nodes += _dispatch(block.layer, ctx)
        if block.bn is not None:
            nodes += _dispatch(block.bn, ctx)
        if block.bias is not None:
            nodes.append(BiasAdd(f"bias{i}", _np(block.bias)))
        nodes += _dispatch(block.lif, ctx)
    nodes.append(Readout("readout", shape[0]))
    return enc, nodes


# -- passes --------------------------------------------------------------------------------
# A pass rewrites one *segment*: the nodes of a block, ending with its (Float)LIF.
Segment = list[RawNode]


def _t(a: np.ndarray | float) -> Tensor:
    return torch.as_tensor(a, dtype=torch.float32)


def segments(nodes: list[RawNode]) -> list[Segment | RawNode]:
    """Split into block segments (ending at a LIF) and the Flatten/Readout between them."""
    out: list[Segment | RawNode] = []
    cur: Segment = []
    for n in nodes:
        if isinstance(n, (Flatten, Readout)) and not cur:
            out.append(n)
            continue
        cur.append(n)
        if isinstance(n, (FloatLIF, LIF)):
            out.append(cur)
            cur = []
    return out


def apply(fn: Callable[[Segment], Segment], nodes: list[RawNode]) -> list[RawNode]:
    """Apply a segment pass to every block of a node list."""
    out: list[RawNode] = []
    for part in segments(nodes):
        out += fn(list(part)) if isinstance(part, list) else [part]
    return out


def _pending_lif(seg: Segment) -> FloatLIF:
    """The FloatLIF that ends ``seg``: the node a pass folds an annotation into."""
    lif = seg[-1]
    if not isinstance(lif, FloatLIF):
        raise QsnnError(f"export: cannot fold an annotation into {lif.name}: "
                        "it is not a FloatLIF (already quantized?)")
    return lif


def _unit(lif: FloatLIF) -> np.ndarray:
    """The LIF's unit; set by ``fold_weight_scale``, so every later pass has it."""
    if lif.unit is None:
        raise QsnnError(f"export: {lif.name} has no unit: its weight scale is not folded")
    return lif.unit


def _with_lif(seg: Segment, *, unit: np.ndarray | None = None,
              offset: np.ndarray | None = None) -> Segment:
    """``seg`` with its FloatLIF's ``unit`` and/or ``offset`` replaced (None: kept)."""
    lif = _pending_lif(seg)
    new = dataclasses.replace(lif, unit=lif.unit if unit is None else unit,
                              offset=lif.offset if offset is None else offset)
    return seg[:-1] + [new]


def fold_weight_scale(seg: Segment) -> Segment:
    """ScaledWeight -> integer layer; LIF unit = scale * in_scale."""
    for i, n in enumerate(seg):
        if isinstance(n, ScaledWeight):
            seg = _with_lif(seg, unit=(_t(n.scale) * n.in_scale).numpy())
            seg[i] = n.layer
    return seg


def avgpool_to_sumpool(seg: Segment) -> Segment:
    """AvgPool(K) -> SumPool(K); LIF unit /= K^2 (once the weight scale set the unit)."""
    for i, n in enumerate(seg):
        if not isinstance(n, AvgPool):
            continue
        unit = _pending_lif(seg).unit
        if unit is not None:
            seg = _with_lif(seg, unit=(_t(unit) / (n.kernel * n.kernel)).numpy())
            seg[i] = SumPool(n.name, n.kernel)
    return seg


def bn_gain_offset(bn: BatchNorm) -> tuple[Tensor, Tensor]:
    """(a, c) with BN(x) = a x + c, in the training forward's float32 operations."""
    a = _t(bn.gamma) / torch.sqrt(_t(bn.var) + bn.eps)
    return a, _t(bn.beta) - a * _t(bn.mean)


def fold_batchnorm(seg: Segment) -> Segment:
    """BatchNorm -> channel signs into W, unit *= max(|a|, 1e-4), offset = c."""
    bns = [(k, n) for k, n in enumerate(seg) if isinstance(n, BatchNorm)]
    if not bns or any(isinstance(n, (ScaledWeight, AvgPool)) for n in seg):
        return seg  # the unit must be complete (weight scale and pool folded) first
    ((i, bn),) = bns
    a, c = bn_gain_offset(bn)
    neg = (a < 0).numpy()
    if neg.any():
        ((k, layer),) = [(k, n) for k, n in enumerate(seg) if isinstance(n, (Linear, Conv2d))]
        w = layer.weight.copy()
        w[neg] = -w[neg]
        seg[k] = dataclasses.replace(layer, weight=w)
    unit = (_t(_unit(_pending_lif(seg))) * a.abs().clamp_min(MIN_BN_GAIN)).numpy()
    seg = _with_lif(seg, unit=unit, offset=c.numpy())
    return seg[:i] + seg[i + 1:]


def fold_bias(seg: Segment) -> Segment:
    """BiasAdd -> offset += b (after BatchNorm's offset, as the training forward)."""
    if any(isinstance(n, BatchNorm) for n in seg):
        return seg
    for i, n in enumerate(seg):
        if isinstance(n, BiasAdd):
            off = _pending_lif(seg).offset
            new = _t(n.bias) if off is None else _t(off) + _t(n.bias)
            seg = _with_lif(seg, offset=new.numpy())
            return seg[:i] + seg[i + 1:]
    return seg


def quantize_float_lif(n: FloatLIF, bits: int = 32) -> LIF:
    """theta_int, bias_int and the integer leak parameter of a folded FloatLIF."""
    unit = _t(_unit(n))
    theta = torch.round(_t(n.threshold) / unit).clamp(1, MAX_THETA_INT)
    bias = None
    if n.offset is not None:
        ratio = torch.round(_t(n.offset) / unit).clamp(-MAX_THETA_INT, MAX_THETA_INT)
        bias = ratio.numpy().astype(np.int32)
    return LIF(n.name, n.shape, n.leak, quantize_beta(n.beta, n.leak, n.frac_bits),
               n.frac_bits, n.reset, bits, theta.numpy().astype(np.int32), bias)


def quantize_lif(seg: Segment) -> Segment:
    """FloatLIF -> integer LIF (32-bit membranes until widths are assigned)."""
    lif = seg[-1]
    if not isinstance(lif, FloatLIF) or len(seg) != sum(
            isinstance(n, (Linear, Conv2d, SumPool)) for n in seg) + 1:
        return seg  # annotations still pending
    return seg[:-1] + [quantize_float_lif(lif)]


PASSES: list[tuple[str, Callable[[Segment], Segment]]] = [
    ("fold_weight_scale", fold_weight_scale),
    ("avgpool_to_sumpool", avgpool_to_sumpool),
    ("fold_batchnorm", fold_batchnorm),
    ("fold_bias", fold_bias),
    ("quantize_lif", quantize_lif),
]


def ir_nodes(nodes: list[RawNode]) -> list[Node]:
    """The node list of a fully folded graph as IR nodes; a raw node left is an error."""
    left = [f"{n.name} ({type(n).__name__})" for n in nodes if not isinstance(n, Node)]
    if left:
        raise QsnnError(f"export: the passes left raw nodes {', '.join(left)}")
    return [n for n in nodes if isinstance(n, Node)]
