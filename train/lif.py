"""Leaky integrate-and-fire neuron, multi-step, in float or integer (hardware-aware) mode.

Per neuron and time step t (U[-1] = 0, r[t] computed from the PREVIOUS membrane)::

    r[t] = (U[t-1] > theta)                       detached, as snnTorch
    subtract reset: U[t] = leak(U[t-1]) + I[t] - r[t] * theta
    zero reset:     U[t] = leak((1 - r[t]) * U[t-1]) + I[t]
    no reset:       U[t] = leak(U[t-1]) + I[t]
    S[t] = (U[t] > theta)                         strictly greater

Float mode (fp32 or Brevitas fake-quant without hardware awareness) is snnTorch's
``Leaky`` exactly: ``leak(U) = clamp(beta, 0, 1) * U`` with the same float ops in the
same order, so spikes and membranes are bitwise equal.

Integer mode (hardware-aware): ``U`` and ``I`` are integers (held in float32, exact
below 2^24) in units of ``unit`` (weight scale x input scale / pool divisor / BN
gain, per channel). ``theta_int = round(theta / unit)`` (at least 1) and the leak is
the shift or multiplier of ``docs/spec.md``::

    shift: leak(U) = U - floor(U / 2^k),      beta = 1 - 2^-k
    mult:  leak(U) = floor(m * U / 2^F),      beta = m / 2^F

with straight-through gradients (d leak / dU = beta). The surrogate is evaluated on
``(U - theta_int) * unit`` so gradients equal those of the float model.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from qsnn.train.surrogate import make_spike_fn

MAX_THETA_INT = 2**20


def ste(value: Tensor, proxy: Tensor) -> Tensor:
    """Forward ``value`` exactly, backward through ``proxy`` (adds an exact zero)."""
    return value.detach() + (proxy - proxy.detach())


def quantize_beta(beta: float, leak: str, frac_bits: int) -> int:
    """Integer leak parameter: shift ``k`` (beta ~ 1 - 2^-k) or multiplier ``m`` (m / 2^F)."""
    if leak == "mult":
        return int(min(max(round(beta * 2**frac_bits), 0), 2**frac_bits))
    if beta >= 1.0:
        return 30
    return int(min(max(round(-math.log2(1.0 - beta)), 1), 30))


def beta_of(leak: str, param: int, frac_bits: int) -> float:
    """Effective beta of an integer leak parameter."""
    return param / 2**frac_bits if leak == "mult" else 1.0 - 2.0**-param


def exact_leak(u: Tensor, leak: str, param: int, frac_bits: int) -> Tensor:
    """Integer leak of an integer-valued tensor: floor arithmetic, exact in float32."""
    if leak == "mult":
        return torch.floor(u * (param / 2**frac_bits))
    return u - torch.floor(u * 2.0**-param)


class LIF(nn.Module):
    """Multi-step LIF layer; see the module docstring for the update equations."""

    def __init__(
        self,
        beta: float,
        threshold: float,
        *,
        learn_beta: bool = False,
        learn_threshold: bool = False,
        reset: str = "subtract",
        surrogate: str = "fast_sigmoid",
        slope: float = 25.0,
        leak: str = "mult",
        leak_frac_bits: int = 8,
    ) -> None:
        super().__init__()
        beta_t = torch.as_tensor(float(beta))
        thr_t = torch.as_tensor(float(threshold))
        if learn_beta:
            self.beta = nn.Parameter(beta_t)
        else:
            self.register_buffer("beta", beta_t)
        if learn_threshold:
            self.threshold = nn.Parameter(thr_t)
        else:
            self.register_buffer("threshold", thr_t)
        self.reset, self.leak, self.frac_bits = reset, leak, leak_frac_bits
        self.spike_fn = make_spike_fn(surrogate, slope)

    # -- integer-mode parameters -------------------------------------------------------
    def leak_param(self) -> int:
        """Current integer leak parameter (k or m) from beta."""
        return quantize_beta(float(self.beta.detach().clamp(0, 1)), self.leak, self.frac_bits)

    def theta_int(self, unit: Tensor) -> Tensor:
        """``round(theta / unit)`` clamped to [1, 2^20], straight-through."""
        ratio = self.threshold / unit
        return ste(torch.round(ratio).clamp(1, MAX_THETA_INT), ratio)

    # -- forward ------------------------------------------------------------------------
    def forward(
        self,
        current: Tensor,
        steps: int,
        unit: Tensor | None = None,
        *,
        static: bool = False,
        record: bool = False,
    ) -> tuple[Tensor, Tensor | None]:
        """Run ``steps`` time steps.

        current: [T, B, ...], or [B, ...] with ``static`` (the same current every step).
        unit: None for float mode, else the membrane unit (integer mode), broadcastable.
        Returns spikes [T, B, ...] and, if ``record``, membranes [T, B, ...].
        """
        if unit is None:
            return self._run(current, steps, static, self.threshold, 1.0, self._float_leak, record)
        theta = self.theta_int(unit)
        param = self.leak_param()
        beta = self.beta

        def leak(u: Tensor) -> Tensor:
            return ste(exact_leak(u, self.leak, param, self.frac_bits), beta * u)

        return self._run(current, steps, static, theta, unit.detach(), leak, record)

    def _float_leak(self, u: Tensor) -> Tensor:
        return self.beta.clamp(0, 1) * u

    def _run(self, current, steps, static, theta, scale, leak, record):  # noqa: ANN001
        first = current if static else current[0]
        u = torch.zeros_like(first)
        spikes, mems = [], []
        for t in range(steps):
            i_t = current if static else current[t]
            r = (u > theta).to(u.dtype).detach() if self.reset != "none" else None
            if self.reset == "zero":
                u = (1 - r) * u
            u = leak(u) + i_t
            if self.reset == "subtract":
                u = u - r * theta
            spikes.append(self.spike_fn(u - theta, scale))
            if record:
                mems.append(u)
        return torch.stack(spikes), (torch.stack(mems) if record else None)
