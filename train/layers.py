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


def fuse_sum_pool(w: Tensor, k: int) -> Tensor:
    """Kernel W' with ``conv(x, W', stride=k) == sumpool_k(conv(x, W))``.

    W'[m, n] = sum_{a, b < k} W[m - a, n - b]  (size K + k - 1); exact for integer W.
    """
    kk = w.shape[-1]
    return sum(
        F.pad(w, (b, k - 1 - b, a, k - 1 - a)) for a in range(k) for b in range(k)
    ).reshape(*w.shape[:2], kk + k - 1, kk + k - 1)


def bn_affine(
    bn: nn.BatchNorm1d | nn.BatchNorm2d, current: Tensor, unit: Tensor
) -> tuple[Tensor, Tensor]:
    """Per-channel (a, c) with ``BN(x) = a * x + c`` for the float current ``x = unit * current``
    ([N, C, ...], ``unit`` per channel): batch statistics (and a running-statistics update)
    in training mode, running statistics in eval mode."""
    if bn.training:
        flat = current.movedim(1, -1).reshape(-1, current.shape[1])  # a view if channels-last
        n = flat.shape[0]
        mean_i = flat.sum(0) / n
        var_i = ((flat * flat).sum(0) / n - mean_i * mean_i).clamp_min(0.0)
        mean, var = mean_i * unit, var_i * unit * unit
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
        """W x for fc; conv, with a K x K sum pool fused in as a strided conv, for conv."""
        if self.spec.kind == "fc":
            return F.linear(x, w)
        k = self.spec.pool
        if k > 1:
            w = fuse_sum_pool(w, k)
        return F.conv2d(x, w, stride=k, padding=self.spec.padding)

    def _channel_view(self, v: Tensor) -> Tensor:
        return v if self.spec.kind == "fc" else v.reshape(-1, 1, 1)

    def float_weight(self) -> Tensor:
        """The (fake-quantized) float weight the layer applies."""
        if hasattr(self.layer, "quant_weight"):  # Brevitas layers subclass nn.Linear/Conv2d
            return self.layer.quant_weight().value
        return self.layer.weight

    def float_current(self, x: Tensor) -> Tensor:
        """Float-mode current: BN(avgpool(W x)) + b, in the seed's float operation order."""
        w = self.float_weight()
        cur = F.linear(x, w) if self.spec.kind == "fc" else F.conv2d(
            x, w, padding=self.spec.padding)
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
        if self.spec.kind == "conv":  # keep spikes channels-last for the next convolution
            cur = cur.contiguous(memory_format=torch.channels_last)
        k = self.spec.pool
        unit = scale * self.in_scale
        if k > 1:
            unit = unit / (k * k)
        offset = None
        if self.bn is not None:
            a, c = bn_affine(self.bn, cur, unit)
            if bool((a < 0).any()):
                cur = cur * self._channel_view(torch.where(a < 0, -1.0, 1.0).detach())
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
            if self.spec.kind == "conv":  # faster oneDNN kernels; exact for integers
                x = x.contiguous(memory_format=torch.channels_last)
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
