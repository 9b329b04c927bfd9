"""Losses equal snnTorch's; LR schedules behave as the seed's."""

from __future__ import annotations

import math

import pytest
import snntorch.functional as SF
import torch

from qsnn.config import TrainConfig
from qsnn.train.losses import make_loss
from qsnn.train.schedules import make_scheduler


def test_mse_count_equals_snntorch() -> None:
    torch.manual_seed(0)
    spk = (torch.rand(25, 8, 10) < 0.3).float().requires_grad_(True)
    y = torch.randint(0, 10, (8,))
    ours = make_loss(TrainConfig(loss="mse_count"))(spk, y)
    ref = SF.mse_count_loss(correct_rate=0.8, incorrect_rate=0.2)(spk, y)
    assert torch.equal(ours, ref)


def test_ce_rate_equals_snntorch() -> None:
    torch.manual_seed(0)
    spk = (torch.rand(7, 8, 10) < 0.3).float()
    y = torch.randint(0, 10, (8,))
    ours = make_loss(TrainConfig(loss="ce_rate"))(spk, y)
    ref = SF.ce_rate_loss()(spk, y)
    assert torch.allclose(ours, ref.reshape(()), rtol=0, atol=1e-6)


def lrs(cfg: TrainConfig, iters_per_epoch: int, n: int) -> list[float]:
    opt = torch.optim.Adam([torch.nn.Parameter(torch.zeros(1))], lr=cfg.lr)
    sched = make_scheduler(opt, cfg, iters_per_epoch)
    out = []
    for _ in range(n):
        out.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    return out


def test_cosine_is_seed_periodic_cosine() -> None:
    cfg = TrainConfig(lr=2e-3, schedule="cosine", cosine_period_epochs=10)
    got = lrs(cfg, 5, 160)  # T_max = 50 iterations; run past 3 * T_max
    t_max = 50
    for i in (0, 10, 25, 49, 50, 75, 100, 130):
        want = 2e-3 * (1 + math.cos(math.pi * i / t_max)) / 2
        assert got[i] == pytest.approx(want, abs=1e-9)
    assert got[50] < 1e-8 and got[100] == pytest.approx(2e-3, rel=1e-6)  # periodic boost


def test_restarts_step_constant() -> None:
    r = lrs(TrainConfig(lr=1.0, schedule="cosine-restarts", restart_epochs=2), 5, 25)
    assert r[0] == 1.0 and r[10] == 1.0 and r[9] < 0.05  # restart every 10 iterations
    s = lrs(TrainConfig(lr=1.0, schedule="step", step_epochs=1, step_gamma=0.5), 4, 9)
    assert s[:4] == [1.0] * 4 and s[4] == 0.5 and s[8] == 0.25
    assert set(lrs(TrainConfig(lr=0.3, schedule="constant"), 3, 10)) == {0.3}
