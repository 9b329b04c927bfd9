"""LIF neuron: float mode equals snnTorch Leaky; integer mode equals the §2 reference."""

from __future__ import annotations

import hypothesis.strategies as st
import pytest
import snntorch as snn
import torch
from hypothesis import given, settings
from reference import leak_int, lif_reference
from snntorch import surrogate

from qsnn.export.ir import Leak, Reset
from qsnn.train.lif import LIF, beta_of, exact_leak, quantize_beta


def run_snntorch(cur: torch.Tensor, beta: float, thr: float, reset: str, grad) -> tuple:
    leaky = snn.Leaky(beta=beta, threshold=thr, spike_grad=grad, reset_mechanism=reset)
    mem = leaky.init_leaky()
    spk_rec, mem_rec = [], []
    for t in range(cur.shape[0]):
        spk, mem = leaky(cur[t], mem)
        spk_rec.append(spk)
        mem_rec.append(mem)
    return torch.stack(spk_rec), torch.stack(mem_rec)


@pytest.mark.parametrize("reset", Reset.values())
@pytest.mark.parametrize("surr", ["fast_sigmoid", "atan"])
def test_float_mode_equals_snntorch_leaky(reset: str, surr: str) -> None:
    torch.manual_seed(1)
    cur = torch.randn(12, 5, 7) * 0.8
    beta, thr, slope = 0.83, 0.7, 5.0
    grad = surrogate.fast_sigmoid(slope) if surr == "fast_sigmoid" else surrogate.atan(slope)
    c1 = cur.clone().requires_grad_(True)
    ref_spk, ref_mem = run_snntorch(c1, beta, thr, reset, grad)
    c2 = cur.clone().requires_grad_(True)
    lif = LIF(beta, thr, reset=reset, surrogate=surr, slope=slope)
    spk, mem = lif(c2, 12, record=True)
    assert ref_spk.sum() > 0
    assert torch.equal(spk, ref_spk)
    assert torch.equal(mem, ref_mem)
    w = torch.randn_like(spk)
    (ref_spk * w).sum().backward()
    (spk * w).sum().backward()
    assert torch.equal(c1.grad, c2.grad)


def test_float_static_current_equals_repeated_current() -> None:
    torch.manual_seed(2)
    cur = torch.randn(4, 6)
    lif = LIF(0.9, 0.5)
    spk_static, _ = lif(cur, 9, static=True)
    spk_rep, _ = lif(cur.expand(9, 4, 6), 9)
    assert torch.equal(spk_static, spk_rep)


@pytest.mark.parametrize("u", [-9, -8, -7, -1, 0, 1, 7, 8, 255, -256, 1000, -1001])
@pytest.mark.parametrize("form,param", [("shift", 1), ("shift", 3), ("mult", 249), ("mult", 128)])
def test_exact_leak_is_floor_arithmetic(u: int, form: str, param: int) -> None:
    got = exact_leak(torch.tensor([float(u)]), form, param, 8)
    assert int(got.item()) == leak_int(u, form, param, 8)


def test_leak_hand_cases() -> None:
    # floor of negative membranes: -5 * 0.5 = -2.5 -> -3 ; shift k=1: -5 - (-5 >>> 1) = -5 + 3 = -2
    assert exact_leak(torch.tensor([-5.0]), "mult", 128, 8).item() == -3
    assert exact_leak(torch.tensor([-5.0]), "shift", 1, 8).item() == -2
    assert exact_leak(torch.tensor([5.0]), "shift", 1, 8).item() == 3


def test_quantize_beta() -> None:
    assert quantize_beta(0.974, "mult", 8) == 249
    assert quantize_beta(0.974, "shift", 8) == 5
    assert quantize_beta(1.0, "mult", 8) == 256
    assert beta_of("shift", 5, 8) == 1 - 1 / 32


def int_lif(currents: torch.Tensor, theta: int, form: str, beta: float, reset: str):
    """Run the training LIF in integer mode with unit 1 (theta_int = theta)."""
    lif = LIF(beta, float(theta), reset=reset, leak=form, leak_frac_bits=8)
    return lif(currents, currents.shape[0], torch.tensor(1.0), record=True)


def test_integer_hand_cases() -> None:
    # U == theta does not spike; the reset uses the previous membrane.
    cur = torch.tensor([[4.0], [0.0], [1.0], [0.0]])
    spk, mem = int_lif(cur, 4, "mult", 1.0, "subtract")
    assert spk.flatten().tolist() == [0, 0, 1, 0]
    assert mem.flatten().tolist() == [4, 4, 5, 1]
    # zero reset: U <- 0 before leak and input when the previous membrane exceeded theta
    cur = torch.tensor([[6.0], [2.0], [2.0]])
    spk, mem = int_lif(cur, 4, "mult", 1.0, "zero")
    assert mem.flatten().tolist() == [6, 2, 4]
    assert spk.flatten().tolist() == [1, 0, 0]


@settings(max_examples=60, deadline=None)
@given(
    data=st.lists(st.lists(st.integers(-40, 40), min_size=3, max_size=3), min_size=1,
                  max_size=12),
    theta=st.integers(1, 30),
    form=st.sampled_from(Leak.values()),
    beta=st.sampled_from([0.5, 0.75, 0.9, 0.974, 1.0]),
    reset=st.sampled_from(Reset.values()),
)
def test_integer_mode_matches_reference(data, theta, form, beta, reset) -> None:
    cur = torch.tensor(data, dtype=torch.float32)
    spk, mem = int_lif(cur, theta, form, beta, reset)
    param = quantize_beta(beta, form, 8)
    ref_spk, ref_mem = lif_reference(data, [theta] * 3, form, param, 8, reset)
    assert spk.long().tolist() == ref_spk
    assert mem.long().tolist() == ref_mem


def test_integer_mode_gradients_flow() -> None:
    cur = (torch.randint(-5, 9, (6, 4, 3)).float()).requires_grad_(True)
    lif = LIF(0.9, 3.0, learn_beta=True, learn_threshold=True)
    spk, _ = lif(cur, 6, torch.tensor(0.5))
    spk.sum().backward()
    assert cur.grad is not None and cur.grad.abs().sum() > 0
    assert lif.threshold.grad is not None and lif.beta.grad is not None


def autograd_lif(cur, theta, beta, steps, static, reset, form, unit, surr, slope):
    """Step-by-step autograd reference (straight-through floor, detached reset)."""
    import math as _m

    def spike(x, g):
        s = (x > 0).float()
        xs = x * g
        sg = 1 / (slope * xs.abs() + 1) ** 2 if surr == "fast_sigmoid" else (
            slope / 2 / (1 + (_m.pi / 2 * slope * xs) ** 2))
        return s.detach() + (x - x.detach()) * (sg * g).detach()

    u = torch.zeros_like(cur if static else cur[0])
    out = []
    if unit is None:
        th, g = theta, 1.0
    else:
        ratio = theta / unit
        th, g = ratio + (torch.round(ratio).clamp(1, 2**20) - ratio).detach(), unit
    param = quantize_beta(float(beta.detach()), form, 8)
    for t in range(steps):
        r = (u > th).float().detach()
        if reset == "zero":
            u = (1 - r) * u
        if unit is None:
            lk = beta.clamp(0, 1) * u
        else:
            lk = beta * u + (exact_leak(u, form, param, 8) - beta * u).detach()
        u = lk + (cur if static else cur[t])
        if reset == "subtract":
            u = u - r * th
        out.append(spike(u - th, g))
    return torch.stack(out)


@pytest.mark.parametrize("mode", ["float", "int"])
@pytest.mark.parametrize("static", [True, False])
@pytest.mark.parametrize("reset", Reset.values())
@pytest.mark.parametrize("surr", ["fast_sigmoid", "atan"])
def test_hand_written_bptt_matches_autograd(mode, static, reset, surr) -> None:
    torch.manual_seed(3)
    steps, shape = 9, (4, 5)
    base = torch.randn(*((shape) if static else (steps, *shape))) * (0.6 if mode == "float" else 6)
    if mode == "int":
        base = base.round()
    unit = None if mode == "float" else torch.tensor(0.25)
    lif = LIF(0.8, 1.1, learn_beta=True, learn_threshold=True, reset=reset, surrogate=surr,
              slope=3.0, leak="mult")
    c1 = base.clone().requires_grad_(True)
    spk, _ = lif(c1, steps, unit, static=static)
    w = torch.randn_like(spk)
    (spk * w).sum().backward()
    grads = (c1.grad.clone(), lif.beta.grad.clone(), lif.threshold.grad.clone())
    beta = lif.beta.detach().clone().requires_grad_(True)
    theta = lif.threshold.detach().clone().requires_grad_(True)
    c2 = base.clone().requires_grad_(True)
    ref = autograd_lif(c2, theta, beta, steps, static, reset, "mult", unit, surr, 3.0)
    assert torch.equal(spk, ref)
    (ref * w).sum().backward()
    for got, want in zip(grads, (c2.grad, beta.grad, theta.grad), strict=True):
        assert torch.allclose(got, want, rtol=1e-5, atol=1e-6), (got, want)
