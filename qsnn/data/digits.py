"""scikit-learn's 8x8 handwritten digits, embedded in scikit-learn (works offline).

1797 grayscale images ``[1, 8, 8]`` with integer pixels ``0..16`` and 10 classes.

Fixed, deterministic test split: all 1797 samples are permuted with
``numpy.random.default_rng(0).permutation(1797)``; the last 360 samples of that
permutation form the test split and the first 1437 the training split (both in
permuted order).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from qsnn.data.base import DatasetSplits, Split

NUM_SAMPLES = 1797
TEST_SIZE = 360
SPLIT_SEED = 0
PIXEL_MAX = 16


def load_digits_dataset(
    data_dir: Path | None = None,
    *,
    time_steps: int = 20,
    frame_size: int = 32,
    download: bool = False,
) -> DatasetSplits:
    """Load the digits dataset with its fixed train/test split.

    ``data_dir``, ``time_steps``, ``frame_size`` and ``download`` are ignored: the
    data ships inside scikit-learn.
    """
    from sklearn.datasets import load_digits

    features, labels = load_digits(return_X_y=True)
    images = np.asarray(features).reshape(-1, 1, 8, 8).astype(np.uint8)
    targets = np.asarray(labels).astype(np.int64)
    perm = np.random.default_rng(SPLIT_SEED).permutation(images.shape[0])
    train_idx, test_idx = perm[:-TEST_SIZE], perm[-TEST_SIZE:]
    return DatasetSplits(
        name="digits",
        train=Split(torch.from_numpy(images[train_idx]), torch.from_numpy(targets[train_idx])),
        test=Split(torch.from_numpy(images[test_idx]), torch.from_numpy(targets[test_idx])),
        num_classes=10,
        input_shape=(1, 8, 8),
        pixel_max=PIXEL_MAX,
        kind="image",
    )
