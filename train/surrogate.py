"""Heaviside spike functions with surrogate gradients.

Forward (both): ``S = 1 if x > 0 else 0`` (strictly greater, as snnTorch).

Backward, with ``g`` the grad scale (1 in float mode; the membrane unit in
hardware-aware mode, so that ``x * g`` is the membrane distance in float units):

- fast sigmoid (snnTorch ``fast_sigmoid(slope)``): dS/dx = g / (slope * |x g| + 1)^2
- atan (snnTorch ``atan(alpha)``): dS/dx = g * alpha / 2 / (1 + (pi/2 * alpha * x g)^2)
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import Tensor


class _FastSigmoid(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x: Tensor, slope: float, scale: Tensor | float) -> Tensor:  # type: ignore[override]
        ctx.save_for_backward(x)
        ctx.slope, ctx.scale = slope, scale
        return (x > 0).to(x.dtype)

    @staticmethod
    def backward(ctx, grad: Tensor) -> tuple[Tensor, None, None]:  # type: ignore[override]
        (x,) = ctx.saved_tensors
        g = ctx.scale
        if isinstance(g, float) and g == 1.0:
            return grad / (ctx.slope * torch.abs(x) + 1.0) ** 2, None, None
        return grad * g / (ctx.slope * torch.abs(x * g) + 1.0) ** 2, None, None


class _ATan(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x: Tensor, alpha: float, scale: Tensor | float) -> Tensor:  # type: ignore[override]
        ctx.save_for_backward(x)
        ctx.alpha, ctx.scale = alpha, scale
        return (x > 0).to(x.dtype)

    @staticmethod
    def backward(ctx, grad: Tensor) -> tuple[Tensor, None, None]:  # type: ignore[override]
        (x,) = ctx.saved_tensors
        a, g = ctx.alpha, ctx.scale
        if isinstance(g, float) and g == 1.0:
            return grad * (a / 2 / (1 + (math.pi / 2 * a * x).pow(2))), None, None
        return grad * g * (a / 2 / (1 + (math.pi / 2 * a * x * g).pow(2))), None, None


SpikeFn = Callable[[Tensor, "Tensor | float"], Tensor]


def make_spike_fn(name: str, slope: float) -> SpikeFn:
    """Spike function ``fn(x, grad_scale)`` for surrogate ``name``."""
    fns = {"fast_sigmoid": _FastSigmoid, "atan": _ATan}
    fn = fns[name]
    return lambda x, scale=1.0: fn.apply(x, slope, scale)
