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

from torch import Tensor

SURROGATES = ("fast_sigmoid", "atan")


def surrogate_backward(name: str, slope: float, x: Tensor, grad: Tensor,
                       scale: Tensor | float = 1.0) -> Tensor:
    """dL/dx for spikes ``S = (x > 0)`` given ``grad = dL/dS`` (may reuse ``x``'s memory)."""
    unit = isinstance(scale, float) and scale == 1.0
    xs = x if unit else x * scale
    gs = grad if unit else grad * scale
    if name == "fast_sigmoid":
        if unit:
            return gs / (slope * xs.abs() + 1.0) ** 2  # snnTorch's exact operations
        return gs.div_(xs.abs_().mul_(slope).add_(1.0).square_())
    if name == "atan":
        return slope / 2 / (1 + (math.pi / 2 * slope * xs).pow(2)) * gs
    raise ValueError(f"unknown surrogate {name}")
