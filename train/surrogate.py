"""Surrogate gradients of the Heaviside spike ``S = (x > 0)`` (strictly greater, as snnTorch).

``x = U - theta``; ``g`` is the grad scale (1 in float mode; the membrane unit in
hardware-aware mode, so that ``x * g`` is the membrane distance in float units and the
gradients equal those of the float model). Given the incoming gradient ``dL/dS``:

- fast sigmoid (snnTorch ``fast_sigmoid(slope)``): dL/dx = dL/dS * g / (slope * |x g| + 1)^2
- atan (snnTorch ``atan(alpha)``):  dL/dx = alpha/2 / (1 + (pi/2 * alpha * x g)^2) * g * dL/dS

With g = 1 the operations are snnTorch's, in its order, so gradients match it bit for bit.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

SURROGATES = ("fast_sigmoid", "atan")


def surrogate_backward(name: str, slope: float, u: Tensor, theta: Tensor, grad: Tensor,
                       scale: Tensor | None = None) -> Tensor:
    """dL/dx for spikes ``S = (u - theta > 0)`` given ``grad = dL/dS``.

    ``scale`` None is float mode (snnTorch's exact operations); otherwise ``theta`` must
    already be multiplied by ``scale`` (``x * g`` is formed as ``u * g - theta * g``).
    """
    if scale is None:
        x = u - theta
        if name == "fast_sigmoid":
            return grad / (slope * x.abs() + 1.0) ** 2
        return slope / 2 / (1 + (math.pi / 2 * slope * x).pow(2)) * grad
    xs = torch.addcmul(-theta, u, scale)
    gs = grad * scale
    if name == "fast_sigmoid":
        return gs.div_(xs.abs_().mul_(slope).add_(1.0).square_())
    return xs.mul_(math.pi / 2 * slope).square_().add_(1.0).reciprocal_().mul_(slope / 2).mul_(gs)
