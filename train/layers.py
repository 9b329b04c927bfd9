"""One spiking block: weight layer -> [avg pool] -> [BatchNorm] -> (+ bias) -> LIF.

Dropout (training only) acts on the current before the LIF or on its output spikes.

Float mode (fp32, or Brevitas fake-quant without hardware awareness)::

    I = BN(avgpool(W x)) + b                     (x: pixels / pixel_max, or spikes)

Integer (hardware-aware) mode, all integers, per output channel c::

    I_int = sign_c * sumpool(W_int x_int)        W_int = quant_weight / scale   (exact)
    unit_c = |a_c| * scale_c * in_scale / K^2     a_c = gamma_c / sqrt(var_c + eps)  (1 without BN)
    b_int  = round((c_c + b_c) / unit_c)          c_c = beta_c - a_c * mean_c        (0 without BN)
    theta_int = round(theta / unit_c)

so that ``unit * (I_int + b_int)`` is the float model's current. BatchNorm is folded
inside the forward pass (QAT style): batch statistics of the float current over all
time steps and positions while training, running statistics in eval mode.
"""

from __future__ import annotations

from dataclasses import dataclass

import brevitas.nn as qnn
import torch
import torch.nn.functional as F
from brevitas.quant.fixed_point import (
    Int8WeightPerChannelFixedPoint,
    Int8WeightPerTensorFixedPoint,
)
from torch import Tensor, nn

from qsnn.train.lif import LIF, MAX_THETA_INT, ste

MIN_BN_GAIN = 1e-4


@dataclass(frozen=True)
class BlockSpec:
    """Shape and options of one block, parsed from the layer tokens."""

    kind: str  # "fc" or "conv"
    in_ch: int
    out_ch: int
    kernel: int = 1
    padding: int = 0
    pool: int = 1
    bn: bool = False
    dropout: str = ""  # "", "current" or "spikes"
    flatten: bool = False


def make_weight_layer(spec: BlockSpec, bits: int | None, per_channel: bool) -> nn.Module:
    """Brevitas quant layer (signed narrow range, power-of-two scale) or a float layer."""
    if bits is None:
        if spec.kind == "fc":
            return nn.Linear(spec.in_ch, spec.out_ch, bias=False)
        return nn.Conv2d(spec.in_ch, spec.out_ch, spec.kernel, padding=spec.padding, bias=False)
    quant = Int8WeightPerChannelFixedPoint if per_channel else Int8WeightPerTensorFixedPoint
    kw = dict(bias=False, weight_quant=quant, weight_bit_width=bits)
    if spec.kind == "fc":
        return qnn.QuantLinear(spec.in_ch, spec.out_ch, **kw)
    return qnn.QuantConv2d(spec.in_ch, spec.out_ch, spec.kernel, padding=spec.padding, **kw)


def bn_affine(bn: nn.BatchNorm1d | nn.BatchNorm2d, current: Tensor) -> tuple[Tensor, Tensor]:
    """Per-channel (a, c) with ``BN(x) = a * x + c``; batch stats (and running-stat update)
    in training mode, running stats in eval mode. ``current`` is [N, C, ...]."""
    if bn.training:
        dims = [0] + list(range(2, current.dim()))
        mean = current.mean(dims)
        var = current.var(dims, unbiased=False)
        with torch.no_grad():
            n = current.numel() // current.shape[1]
            m = bn.momentum if bn.momentum is not None else 0.1
            bn.running_mean.mul_(1 - m).add_(m * mean)
            bn.running_var.mul_(1 - m).add_(m * var * n / max(n - 1, 1))
            bn.num_batches_tracked += 1
    else:
        mean, var = bn.running_mean, bn.running_var
    a = bn.weight / torch.sqrt(var + bn.eps)
    return a, bn.bias - a * mean


class Block(nn.Module):
    """A spiking block; see the module docstring for the arithmetic."""

    def __init__(
        self, spec: BlockSpec, lif: LIF, *, bits: int | None, per_channel: bool,
        hardware_aware: bool, bias: bool, in_scale: float, dropout: float,
    ) -> None:
        super().__init__()
        self.spec, self.lif = spec, lif
        self.hardware_aware, self.in_scale = hardware_aware, in_scale
        self.layer = make_weight_layer(spec, bits, per_channel)
        bn_cls = nn.BatchNorm1d if spec.kind == "fc" else nn.BatchNorm2d
        self.bn = bn_cls(spec.out_ch) if spec.bn else None
        self.bias = nn.Parameter(torch.zeros(spec.out_ch)) if bias else None
        self.drop = nn.Dropout(dropout) if spec.dropout else None

    # -- integer weights and scales ------------------------------------------------------
    def int_weight(self) -> tuple[Tensor, Tensor]:
        """(W_int with straight-through gradient, per-output-channel scale [C], detached)."""
        qw = self.layer.quant_weight()
        scale = qw.scale.detach()
        w_int = qw.value / scale
        return w_int, scale.reshape(-1).expand(self.spec.out_ch)

    def _linear(self, x: Tensor, w: Tensor) -> Tensor:
        if self.spec.kind == "fc":
            return F.linear(x, w)
        return F.conv2d(x, w, padding=self.spec.padding)

    def _channel_view(self, v: Tensor) -> Tensor:
        return v if self.spec.kind == "fc" else v.reshape(-1, 1, 1)

    def float_current(self, x: Tensor) -> Tensor:
        """Float-mode current: BN(avgpool(W x)) + b."""
        cur = self.layer(x)
        if not isinstance(cur, Tensor):
            cur = cur.value
        if self.spec.pool > 1:
            cur = F.avg_pool2d(cur, self.spec.pool)
        if self.bn is not None:
            cur = self.bn(cur)
        if self.bias is not None:
            cur = cur + self._channel_view(self.bias)
        return cur

    def int_current(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """Integer-mode current (with folded bias) and its unit, both per channel."""
        w_int, scale = self.int_weight()
        cur = self._linear(x, w_int)
        k = self.spec.pool
        if k > 1:
            cur = F.avg_pool2d(cur, k, divisor_override=1)
        unit = scale * (self.in_scale / (k * k))
        offset = None
        if self.bn is not None:
            a, c = bn_affine(self.bn, cur * self._channel_view(unit))
            sign = torch.where(a < 0, -1.0, 1.0).detach()
            cur = cur * self._channel_view(sign)
            unit = unit * a.abs().clamp_min(MIN_BN_GAIN)
            offset = c
        if self.bias is not None:
            offset = self.bias if offset is None else offset + self.bias
        if offset is not None:
            ratio = offset / unit
            b_int = ste(torch.round(ratio).clamp(-MAX_THETA_INT, MAX_THETA_INT), ratio)
            cur = cur + self._channel_view(b_int)
        return cur, self._channel_view(unit)

    def forward(
        self, x: Tensor, steps: int, *, static: bool, record: bool = False
    ) -> tuple[Tensor, Tensor | None]:
        """x: [B, ...] (static) or [T*B, ...]. Returns spikes [T, B, ...] (and membranes)."""
        if self.spec.flatten:
            x = x.flatten(1)
        if self.hardware_aware:
            cur, unit = self.int_current(x)
        else:
            cur, unit = self.float_current(x), None
        if not static:
            cur = cur.reshape(steps, -1, *cur.shape[1:])
        if self.drop is not None and self.spec.dropout == "current":
            cur = self.drop(cur)
        spikes, mems = self.lif(cur, steps, unit, static=static, record=record)
        if self.drop is not None and self.spec.dropout == "spikes":
            spikes = self.drop(spikes)
        return spikes, mems
