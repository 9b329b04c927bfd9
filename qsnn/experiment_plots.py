"""Experiment plots, like the paper's loss figure: curves per schedule with the LR overlaid.

- ``plots/<precision>.png``: one column per schedule; top row training loss, bottom row
  train/validation accuracy (mean over seeds, band = min..max), the learning rate on a
  twin axis in both (sampled :data:`LR_SAMPLES` times per epoch from the real scheduler).
- ``plots/accuracy.png``: validation accuracy of every (precision, schedule) cell.
"""

from __future__ import annotations

import dataclasses
import warnings
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import torch  # noqa: E402

from qsnn.atomic import atomic_write  # noqa: E402
from qsnn.config import RunConfig, TrainConfig  # noqa: E402
from qsnn.experiment import Grid  # noqa: E402

LR_SAMPLES = 20
LINESTYLES = ("-", "--", ":", "-.")


def lr_curve(cfg: TrainConfig, epochs: int,
             samples: int = LR_SAMPLES) -> tuple[list[float], list[float]]:
    """(epoch, lr) of ``cfg``'s schedule, ``samples`` points per epoch, from 0 to ``epochs``.

    Runs the training's own :func:`~qsnn.train.schedules.make_scheduler` on a dummy
    optimiser with ``samples`` iterations per epoch (the shape in epochs is the same for
    any iteration count, up to rounding of the period).
    """
    from qsnn.train.schedules import make_scheduler

    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=cfg.lr)
    sched = make_scheduler(opt, cfg, samples)
    xs, ys = [], []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "scheduler.step() before optimizer.step()"
        for i in range(epochs * samples + 1):
            xs.append(i / samples)
            ys.append(opt.param_groups[0]["lr"])
            sched.step()
    return xs, ys


def _series(runs: list[dict[str, Any]], key: str) -> tuple[list[int], list[float],
                                                             list[float], list[float]]:
    """Epochs, mean, min and max of ``key`` over the runs (epochs all runs have)."""
    n = min(len(r["history"]) for r in runs)
    ep, mean, lo, hi = [], [], [], []
    for i in range(n):
        vals = [r["history"][i][key] for r in runs if r["history"][i][key] is not None]
        if not vals:
            continue
        ep.append(runs[0]["history"][i]["epoch"])
        mean.append(sum(vals) / len(vals))
        lo.append(min(vals))
        hi.append(max(vals))
    return ep, mean, lo, hi


def _band(ax: Any, runs: list[dict[str, Any]], key: str, label: str, color: str) -> None:
    ep, mean, lo, hi = _series(runs, key)
    ax.plot(ep, mean, color=color, label=label)
    if len(runs) > 1:
        ax.fill_between(ep, lo, hi, color=color, alpha=0.2, lw=0)


def _lr_overlay(ax: Any, cfg: TrainConfig, epochs: int) -> None:
    lr_ax = ax.twinx()
    xs, ys = lr_curve(cfg, epochs)
    lr_ax.plot(xs, ys, color="C3", ls="--", lw=1, label="lr")
    lr_ax.set_ylabel("learning rate", color="C3")
    lr_ax.tick_params(axis="y", labelcolor="C3", labelsize=7)
    lr_ax.set_ylim(bottom=0)


def _save(fig: Any, path: Path) -> None:
    fig.tight_layout()
    atomic_write(path, lambda f: fig.savefig(f, format="png", dpi=100,
                                             metadata={"Software": None}))
    plt.close(fig)


def precision_figure(base: RunConfig, precision: str, schedules: tuple[str, ...],
                     records: list[dict[str, Any]], path: Path) -> None:
    """``plots/<precision>.png`` (see the module docstring)."""
    fig, axes = plt.subplots(2, len(schedules), figsize=(4.2 * len(schedules), 6.4),
                             squeeze=False)
    for col, schedule in enumerate(schedules):
        runs = [r for r in records if r["precision"] == precision and r["schedule"] == schedule]
        tcfg = dataclasses.replace(base.train, schedule=schedule)
        epochs = max(len(r["history"]) for r in runs)
        top, bottom = axes[0][col], axes[1][col]
        _band(top, runs, "train_loss", "train loss", "C0")
        top.set_title(f"{precision}, {schedule} ({len(runs)} seeds)")
        top.set_ylabel("loss")
        _band(bottom, runs, "train_accuracy", "train", "C0")
        _band(bottom, runs, "val_accuracy", "validation", "C1")
        bottom.set_ylabel("accuracy")
        bottom.set_xlabel("epoch")
        for ax in (top, bottom):
            ax.legend(loc="center right", fontsize=8)
            _lr_overlay(ax, tcfg, epochs)
    _save(fig, path)


def accuracy_figure(grid: Grid, records: list[dict[str, Any]], path: Path, title: str) -> None:
    """``plots/accuracy.png``: mean validation accuracy per cell."""
    fig, ax = plt.subplots(figsize=(7, 4.2))
    for pi, precision in enumerate(grid.precisions):
        for si, schedule in enumerate(grid.schedules):
            runs = [r for r in records
                    if r["precision"] == precision and r["schedule"] == schedule]
            ep, mean, _, _ = _series(runs, "val_accuracy")
            ax.plot(ep, mean, color=f"C{si}", ls=LINESTYLES[pi % len(LINESTYLES)],
                    label=f"{precision} {schedule}")
    ax.set_xlabel("epoch")
    ax.set_ylabel("validation accuracy (mean over seeds)")
    ax.set_title(title)
    ax.legend(fontsize=8)
    _save(fig, path)


def write(out: Path, base: RunConfig, grid: Grid, records: list[dict[str, Any]]) -> None:
    """Write every plot into ``out/plots/``."""
    folder = out / "plots"
    folder.mkdir(parents=True, exist_ok=True)
    for precision in grid.precisions:
        precision_figure(base, precision, grid.schedules, records, folder / f"{precision}.png")
    accuracy_figure(grid, records, folder / "accuracy.png", base.name)
