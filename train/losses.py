"""Losses on output spikes ``spk`` of shape [T, B, C].

- ``mse_count`` (snnTorch ``mse_count_loss``, the seed's): counts n = sum_t spk[t];
  target int(T * correct_rate) for the label, int(T * incorrect_rate) otherwise;
  loss = mean over B, C of (n - target)^2, divided by T (as snnTorch 1.x; Adam is
  invariant to that constant factor).
- ``ce_rate`` (snnTorch ``ce_rate_loss``): mean over t of cross-entropy(spk[t], label).
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor

from qsnn.config import TrainConfig

LossFn = Callable[[Tensor, Tensor], Tensor]


def mse_count_loss(correct_rate: float, incorrect_rate: float) -> LossFn:
    """MSE between spike counts and per-class target counts."""

    def loss(spk: Tensor, labels: Tensor) -> Tensor:
        steps, _, classes = spk.shape
        on, off = int(steps * correct_rate), int(steps * incorrect_rate)
        target = torch.full((labels.shape[0], classes), float(off), device=spk.device)
        target.scatter_(1, labels.unsqueeze(1), float(on))
        return F.mse_loss(spk.sum(0), target) / steps

    return loss


def ce_rate_loss() -> LossFn:
    """Cross-entropy of the spikes at every step, averaged over steps."""

    def loss(spk: Tensor, labels: Tensor) -> Tensor:
        steps = spk.shape[0]
        logp = F.log_softmax(spk, dim=-1)
        return sum(F.nll_loss(logp[t], labels) for t in range(steps)) / steps

    return loss


def make_loss(cfg: TrainConfig) -> LossFn:
    """Loss function named by ``cfg.loss``."""
    if cfg.loss == "mse_count":
        return mse_count_loss(cfg.correct_rate, cfg.incorrect_rate)
    return ce_rate_loss()
