"""Datasets as in-memory integer tensors.

``load_dataset(name, data_dir)`` returns a :class:`DatasetSplits` for one of
:data:`DATASETS`:

- ``digits``: scikit-learn's 8x8 digits, embedded (offline), pixels 0..16.
- ``mnist``: IDX files in ``data_dir`` (no default), pixels 0..255.
- ``fashion-mnist``: IDX files, default ``/usr/share/datasets/fashion-mnist``
  (Debian package ``dataset-fashion-mnist``), pixels 0..255.
- ``dvs-gesture``: DVS128 Gesture event files in tonic's layout, binned into
  ``time_steps`` binary frames of ``2 x frame_size x frame_size``.
"""

from __future__ import annotations

from pathlib import Path

from qsnn.data.base import DatasetSplits, Loader, PathLike, Split, subset, train_val_split
from qsnn.data.digits import load_digits_dataset
from qsnn.data.dvs import load_dvs_gesture
from qsnn.data.idx import FASHION_MNIST_DIR, load_fashion_mnist, load_mnist
from qsnn.errors import QsnnError

__all__ = [
    "DATASETS",
    "DEFAULT_DATA_DIRS",
    "DatasetSplits",
    "Split",
    "load_dataset",
    "subset",
    "train_val_split",
]

_LOADERS: dict[str, Loader] = {
    "digits": load_digits_dataset,
    "mnist": load_mnist,
    "fashion-mnist": load_fashion_mnist,
    "dvs-gesture": load_dvs_gesture,
}

DATASETS: tuple[str, ...] = tuple(_LOADERS)

DEFAULT_DATA_DIRS: dict[str, str | None] = {
    "digits": None,
    "mnist": None,
    "fashion-mnist": FASHION_MNIST_DIR,
    "dvs-gesture": None,
}


def load_dataset(
    name: str,
    data_dir: PathLike | None = None,
    *,
    time_steps: int = 20,
    frame_size: int = 32,
    download: bool = False,
) -> DatasetSplits:
    """Load dataset ``name`` from ``data_dir`` (or its entry in :data:`DEFAULT_DATA_DIRS`).

    ``time_steps``, ``frame_size`` and ``download`` only affect ``dvs-gesture``.

    Raises:
        QsnnError: for an unknown name or missing/corrupt data, with a hint on how to fix it.
    """
    loader = _LOADERS.get(name)
    if loader is None:
        raise QsnnError(f"unknown dataset {name!r}; choose one of: {', '.join(DATASETS)}")
    directory = data_dir if data_dir is not None else DEFAULT_DATA_DIRS[name]
    return loader(
        Path(directory) if directory is not None else None,
        time_steps=time_steps,
        frame_size=frame_size,
        download=download,
    )
