"""One training epoch and evaluation over in-memory integer datasets."""

from __future__ import annotations

import sys
from collections.abc import Iterator

import torch
from torch import Tensor, nn
from torch.utils.data import DistributedSampler
from tqdm import tqdm

from qsnn.config import TrainConfig
from qsnn.data import Split
from qsnn.train.losses import LossFn
from qsnn.train.model import predict


def batches(
    split: Split, indices: list[int] | Tensor | range, size: int
) -> Iterator[tuple[Tensor, Tensor]]:
    """Yield (x, y) batches of ``split`` in the order of ``indices``."""
    idx = torch.as_tensor(indices, dtype=torch.long)
    for start in range(0, len(idx), size):
        sel = idx[start : start + size]
        yield split.x[sel], split.y[sel]


def make_sampler(n: int, rank: int, world: int, seed: int) -> DistributedSampler:
    """Shuffling sampler over ``range(n)``, sharded across ``world`` processes."""
    return DistributedSampler(range(n), num_replicas=world, rank=rank, shuffle=True, seed=seed)


def weight_params(model: nn.Module) -> list[nn.Parameter]:
    """The weight tensors of the fc/conv layers (what weight clipping applies to)."""
    return [b.layer.weight for b in model.blocks]


def train_epoch(
    model: nn.Module, net: nn.Module, split: Split, sampler: DistributedSampler,
    opt: torch.optim.Optimizer, sched, loss_fn: LossFn, cfg: TrainConfig,
    device: torch.device, show_progress: bool,
) -> tuple[float, float]:
    """Train one epoch; ``net`` is ``model`` or its DDP wrapper. Returns (loss, accuracy).

    Per iteration: forward, loss, backward, [clip grad norm], Adam step, [clip weights
    to +-weight_clip, after the step], scheduler step.
    """
    model.train()
    indices = list(sampler)
    total_loss, correct, seen = 0.0, 0, 0
    n_batches = (len(indices) + cfg.batch_size - 1) // cfg.batch_size
    bar = tqdm(batches(split, indices, cfg.batch_size), total=n_batches, leave=False,
               disable=not show_progress or not sys.stderr.isatty(), desc="train")
    for x, y in bar:
        x, y = x.to(device), y.to(device)
        spk = net(x)
        loss = loss_fn(spk, y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        if cfg.grad_clip is not None:
            nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
        opt.step()
        if cfg.weight_clip is not None:
            with torch.no_grad():
                for w in weight_params(model):
                    w.clamp_(-cfg.weight_clip, cfg.weight_clip)
        sched.step()
        total_loss += loss.item() * len(y)
        correct += int((predict(spk.sum(0)) == y).sum())
        seen += len(y)
        bar.set_postfix(loss=f"{loss.item():.4f}")
    return total_loss / max(seen, 1), correct / max(seen, 1)


@torch.no_grad()
def spike_counts(model: nn.Module, split: Split, batch_size: int, device: torch.device) -> Tensor:
    """Output spike counts [N, classes] (int64) of ``model`` in eval mode."""
    model.eval()
    out = [model(x.to(device)).sum(0).round().long().cpu()
           for x, _ in batches(split, range(len(split.y)), batch_size)]
    if not out:
        return torch.zeros(0, dtype=torch.long)
    return torch.cat(out)


def accuracy(model: nn.Module, split: Split, batch_size: int, device: torch.device) -> float:
    """Classification accuracy of the spike-count argmax on ``split`` (nan if empty)."""
    if len(split.y) == 0:
        return float("nan")
    counts = spike_counts(model, split, batch_size, device)
    return float((predict(counts) == split.y).float().mean())
