"""Training curves: loss, accuracy and learning rate against epochs."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from qsnn.atomic import atomic_write  # noqa: E402


def plot_curves(history: list[dict[str, Any]], path: str | Path, title: str) -> None:
    """Write ``curves.png``: train loss (with LR on a twin axis) and accuracies."""
    ep = [h["epoch"] for h in history]
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10, 3.6))
    ax1.plot(ep, [h["train_loss"] for h in history], color="C0", label="train loss")
    ax1.set_xlabel("epoch")
    ax1.set_ylabel("loss")
    lr_ax = ax1.twinx()
    lr_ax.plot(ep, [h["lr"] for h in history], color="C3", ls="--", label="lr")
    lr_ax.set_ylabel("learning rate")
    ax1.legend(loc="upper left")
    lr_ax.legend(loc="upper right")
    ax2.plot(ep, [h["train_accuracy"] for h in history], label="train")
    ax2.plot(ep, [h["val_accuracy"] for h in history], label="validation")
    ax2.set_xlabel("epoch")
    ax2.set_ylabel("accuracy")
    ax2.legend()
    fig.suptitle(title)
    fig.tight_layout()
    atomic_write(path, lambda f: fig.savefig(f, format="png", dpi=100,
                                             metadata={"Software": None}))
    plt.close(fig)
