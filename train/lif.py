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

from qsnn.export.ir import Leak, Reset
from qsnn.train.surrogate import surrogate_backward

MAX_THETA_INT = 2**20


def ste(value: Tensor, proxy: Tensor) -> Tensor:
    """Forward ``value`` exactly, backward through ``proxy`` (adds an exact zero)."""
    return value.detach() + (proxy - proxy.detach())


def quantize_beta(beta: float, leak: str, frac_bits: int) -> int:
    """Integer leak parameter: shift ``k`` (beta ~ 1 - 2^-k) or multiplier ``m`` (m / 2^F)."""
    if leak == Leak.MULT:
        return int(min(max(round(beta * 2**frac_bits), 0), 2**frac_bits))
    if beta >= 1.0:
        return 30
    return int(min(max(round(-math.log2(1.0 - beta)), 1), 30))


def beta_of(leak: str, param: int, frac_bits: int) -> float:
    """Effective beta of an integer leak parameter."""
    return param / 2**frac_bits if leak == Leak.MULT else 1.0 - 2.0**-param


def exact_leak(u: Tensor, leak: str, param: int, frac_bits: int) -> Tensor:
    """Integer leak of an integer-valued tensor: floor arithmetic, exact in float32."""
    if leak == Leak.MULT:
        return u.mul(param / 2**frac_bits).floor_()
    return u - u.mul(2.0**-param).floor_()


class LIF(nn.Module):
    """Multi-step LIF layer; see the module docstring for the update equations."""

    def __init__(
        self,
        beta: float,
        threshold: float,
        *,
        learn_beta: bool = False,
        learn_threshold: bool = False,
        reset: str = Reset.SUBTRACT.value,
        surrogate: str = "fast_sigmoid",
        slope: float = 25.0,
        leak: str = Leak.MULT.value,
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
        self.surrogate, self.slope = surrogate, slope

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
        Returns spikes [T, B, ...] and, if ``record``, membranes [T, B, ...] (recorded
        membranes carry no gradient).
        """
        if unit is None:
            beta = self.beta

            def leak(u: Tensor) -> Tensor:
                return beta.clamp(0, 1) * u

            theta, scale = self.threshold, None
        else:
            param, form, frac = self.leak_param(), self.leak, self.frac_bits

            def leak(u: Tensor) -> Tensor:
                return exact_leak(u, form, param, frac)

            theta, scale = self.theta_int(unit), unit.detach()
        spikes, mems = _LIFSequence.apply(current, theta, self.beta, self, steps, static, leak,
                                          scale)
        return spikes, (mems if record else None)


class _LIFSequence(torch.autograd.Function):
    """The whole T-step recurrence as one autograd node (forward loop without autograd,
    hand-written backpropagation through time). See the module docstring for the maths;
    the backward pass, with g_t = dL/dU_t and c_t = dU_t / dU_{t-1}, is::

        g_t   = surrogate(dL/dS_t) + c_{t+1} * g_{t+1}
        c_t   = leak'(1 - r_t) for zero reset, leak' otherwise
        dL/dI_t = g_t,  dL/dtheta = -sum(surrogate(dL/dS_t)) - sum(r_t g_t) [subtract],
        dL/dbeta = sum(g_t V_t) with V_t the membrane entering the leak.
    """

    @staticmethod
    def forward(ctx, current, theta, beta, lif, steps, static, leak, scale):  # noqa: ANN001
        first = current if static else current[0]
        mems = _empty_steps_like(first, steps)
        spikes = torch.empty_like(mems)
        inputs = [current] * steps if static else current.unbind(0)
        u = torch.zeros_like(mems[0])
        for t in range(steps):
            # r[t] = (U[t-1] > theta) = S[t-1]; r[0] = 0 because U[-1] = 0 < theta.
            reset = spikes[t - 1] if (t > 0 and lif.reset != Reset.NONE) else None
            if reset is not None and lif.reset == Reset.ZERO:
                u = (1 - reset) * u
            u = torch.add(leak(u), inputs[t], out=mems[t])
            if reset is not None and lif.reset == Reset.SUBTRACT:
                u.sub_(reset * theta)  # r * theta is theta or exactly 0
            torch.gt(u, theta, out=spikes[t])
        ctx.save_for_backward(mems, spikes, theta, beta)
        ctx.lif, ctx.static, ctx.scale, ctx.float_mode = lif, static, scale, scale is None
        ctx.set_materialize_grads(False)
        ctx.mark_non_differentiable(mems)
        return spikes, mems

    @staticmethod
    def backward(ctx, grad_spikes, _grad_mems):  # noqa: ANN001
        mems, spikes, theta, beta = ctx.saved_tensors
        if grad_spikes is None:
            grad_spikes = torch.zeros_like(mems)
        lif, steps = ctx.lif, mems.shape[0]
        scale = None if ctx.float_mode else ctx.scale
        theta_s = theta if scale is None else theta * scale
        d_leak = beta.clamp(0, 1) if ctx.float_mode else beta
        want_theta, want_beta = ctx.needs_input_grad[1], ctx.needs_input_grad[2]
        g_cur = torch.zeros_like(mems[0]) if ctx.static else torch.empty_like(mems)
        g_theta = torch.zeros_like(mems[0]) if want_theta else None
        g_beta = torch.zeros_like(mems[0]) if want_beta else None
        carry = None  # c_{t+1} * g_{t+1}
        for t in range(steps - 1, -1, -1):
            g_x = surrogate_backward(lif.surrogate, lif.slope, mems[t], theta_s,
                                     grad_spikes[t], scale)
            if ctx.static:
                g = g_x if carry is None else g_x + carry
                g_cur += g
            else:
                g = g_cur[t].copy_(g_x) if carry is None else torch.add(g_x, carry, out=g_cur[t])
            prev = mems[t - 1] if t > 0 else None
            r = spikes[t - 1] if (prev is not None and lif.reset != Reset.NONE) else None
            if want_theta:
                g_theta.sub_(g_x)
                if r is not None and lif.reset == Reset.SUBTRACT:
                    g_theta.addcmul_(r, g, value=-1.0)
            if prev is None:
                break
            v = (1 - r) * prev if lif.reset == Reset.ZERO else prev
            if want_beta:
                g_beta += g * v
            carry = g * d_leak if lif.reset != Reset.ZERO else g * d_leak * (1 - r)
        if want_theta:
            g_theta = _reduce_to(g_theta, theta.shape)
        if want_beta:
            if ctx.float_mode:
                g_beta = g_beta * ((beta >= 0) & (beta <= 1)).to(g_beta.dtype)
            g_beta = _reduce_to(g_beta, beta.shape)
        return g_cur, g_theta, g_beta, None, None, None, None, None


def _empty_steps_like(like: Tensor, steps: int) -> Tensor:
    """Uninitialised [steps, *like.shape] whose every step has ``like``'s memory layout
    (so channels-last currents give channels-last spikes for the next convolution)."""
    order = sorted(range(like.dim()), key=lambda i: -like.stride(i))
    buf = torch.empty((steps, *[like.shape[i] for i in order]), dtype=like.dtype,
                      device=like.device)
    return buf.permute(0, *[1 + order.index(i) for i in range(like.dim())])


def _reduce_to(grad: Tensor, shape: torch.Size) -> Tensor:
    """Sum a broadcast gradient back to ``shape`` (trailing-aligned broadcasting)."""
    extra = grad.dim() - len(shape)
    out = grad.sum(dim=tuple(range(extra))) if extra > 0 else grad
    dims = tuple(i for i, s in enumerate(shape) if s == 1 and out.shape[i] != 1)
    return (out.sum(dim=dims, keepdim=True) if dims else out).reshape(shape)
