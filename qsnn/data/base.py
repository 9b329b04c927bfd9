"""Core dataset containers and split helpers shared by every loader.

A dataset is held fully in memory as integer tensors: images as ``uint8`` pixels
``0..pixel_max`` with shape ``[N, C, H, W]``, event streams as binary ``uint8``
frames with shape ``[N, T, C, H, W]``. Labels are ``int64`` with shape ``[N]``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import torch

from qsnn.errors import QsnnError


@dataclass(frozen=True)
class Split:
    """One split of a dataset: inputs ``x`` (``uint8``) and labels ``y`` (``int64``).

    ``x`` is ``[N, C, H, W]`` integer pixels for images or ``[N, T, C, H, W]``
    binary 0/1 frames for event data; ``y`` is ``[N]``.
    """

    x: torch.Tensor
    y: torch.Tensor

    def __post_init__(self) -> None:
        if self.x.dtype != torch.uint8:
            raise ValueError(f"Split.x must be uint8, got {self.x.dtype}")
        if self.y.dtype != torch.int64:
            raise ValueError(f"Split.y must be int64, got {self.y.dtype}")
        if self.y.dim() != 1 or self.x.shape[0] != self.y.shape[0]:
            raise ValueError(
                f"Split.x {tuple(self.x.shape)} and Split.y {tuple(self.y.shape)} "
                "must agree on the number of samples"
            )

    def __len__(self) -> int:
        """Number of samples."""
        return int(self.y.shape[0])


@dataclass(frozen=True)
class DatasetSplits:
    """A loaded dataset: train and test splits plus the metadata training needs.

    Attributes:
        name: Registry name, e.g. ``"digits"``.
        train: Training split.
        test: Test split.
        num_classes: Number of label classes (labels are ``0..num_classes-1``).
        input_shape: ``(C, H, W)`` of one image or one event frame.
        pixel_max: Largest possible input value (16 digits, 255 IDX, 1 events).
        kind: ``"image"`` or ``"events"``.
    """

    name: str
    train: Split
    test: Split
    num_classes: int
    input_shape: tuple[int, ...]
    pixel_max: int
    kind: str


class Loader(Protocol):
    """Signature every dataset loader in the registry implements.

    ``data_dir`` is already resolved (the user's value or the dataset default,
    possibly ``None``). Image loaders ignore ``time_steps``/``frame_size``/``download``.
    """

    def __call__(
        self,
        data_dir: Path | None,
        *,
        time_steps: int,
        frame_size: int,
        download: bool,
    ) -> DatasetSplits: ...


PathLike = str | os.PathLike[str]


def train_val_split(split: Split, val_fraction: float, seed: int) -> tuple[Split, Split]:
    """Split ``split`` into ``(train, val)`` at random, deterministically.

    The permutation comes from a ``torch.Generator`` seeded with ``seed``, so the
    same arguments always give the same result. The validation split gets
    ``round(N * val_fraction)`` samples, capped at ``N - 1`` so training is never
    empty; ``val_fraction == 0`` gives an empty validation split. Within each part
    the samples keep their original relative order. No stratification.

    Raises:
        QsnnError: if ``val_fraction`` is not in ``[0, 1)``.
    """
    if not 0.0 <= val_fraction < 1.0:
        raise QsnnError(f"val_fraction must be in [0, 1), got {val_fraction}; set it to e.g. 0.1")
    n = len(split)
    n_val = min(round(n * val_fraction), max(n - 1, 0))
    generator = torch.Generator().manual_seed(int(seed))
    perm = torch.randperm(n, generator=generator)
    val_idx = perm[:n_val].sort().values
    train_idx = perm[n_val:].sort().values
    return _take(split, train_idx), _take(split, val_idx)


def subset(split: Split, n: int | None) -> Split:
    """Return the first ``n`` samples of ``split`` (all of them if ``n`` is None or >= N).

    Raises:
        QsnnError: if ``n`` is negative.
    """
    if n is None:
        return split
    if n < 0:
        raise QsnnError(f"subset size must be >= 0, got {n}; use None for all samples")
    return Split(x=split.x[:n], y=split.y[:n])


def _take(split: Split, index: torch.Tensor) -> Split:
    """Select samples by an index tensor."""
    return Split(x=split.x[index], y=split.y[index])
