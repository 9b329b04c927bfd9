"""Learning-rate schedules, all stepped once per iteration.

- ``cosine``: ``CosineAnnealingLR(T_max = cosine_period_epochs * iters_per_epoch)``, as
  the seed code: lr_i = eta_min + (lr - eta_min)(1 + cos(pi i / T_max)) / 2, which keeps
  going past T_max as a periodic cosine (the LR climbs back up: the periodic boost).
- ``cosine-restarts``: ``CosineAnnealingWarmRestarts(T_0 = restart_epochs * iters,
  T_mult = restart_mult)``: drops to eta_min, then jumps back to lr.
- ``step``: lr * step_gamma^floor(i / (step_epochs * iters)).
- ``constant``: lr.
"""

from __future__ import annotations

from torch.optim import Optimizer
from torch.optim.lr_scheduler import (
    CosineAnnealingLR,
    CosineAnnealingWarmRestarts,
    LambdaLR,
    LRScheduler,
    StepLR,
)

from qsnn.config import TrainConfig


def make_scheduler(opt: Optimizer, cfg: TrainConfig, iters_per_epoch: int) -> LRScheduler:
    """Per-iteration scheduler named by ``cfg.schedule``."""
    if cfg.schedule == "cosine":
        t_max = max(1, round(cfg.cosine_period_epochs * iters_per_epoch))
        return CosineAnnealingLR(opt, T_max=t_max, eta_min=cfg.eta_min)
    if cfg.schedule == "cosine-restarts":
        return CosineAnnealingWarmRestarts(
            opt, T_0=cfg.restart_epochs * iters_per_epoch, T_mult=cfg.restart_mult,
            eta_min=cfg.eta_min,
        )
    if cfg.schedule == "step":
        return StepLR(opt, step_size=cfg.step_epochs * iters_per_epoch, gamma=cfg.step_gamma)
    return LambdaLR(opt, lambda _: 1.0)
