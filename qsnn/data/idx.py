"""IDX file parser and the MNIST / Fashion-MNIST loaders built on it.

An IDX file is a 4-byte magic number ``00 00 <type> <ndim>``, then ``ndim``
big-endian uint32 dimension sizes, then the data in C order (big-endian for
multi-byte types). Files may be gzip-compressed (``.gz``).

A dataset directory holds four files; each may use the dash (``train-images-idx3-ubyte``)
or the dot (``train-images.idx3-ubyte``) spelling, with or without ``.gz``:

- ``train-images-idx3-ubyte``  ``[60000, 28, 28]`` uint8
- ``train-labels-idx1-ubyte``  ``[60000]`` uint8
- ``t10k-images-idx3-ubyte``   ``[10000, 28, 28]`` uint8
- ``t10k-labels-idx1-ubyte``   ``[10000]`` uint8

Debian's ``dataset-fashion-mnist`` package installs the four dash-named ``.gz``
files in ``/usr/share/datasets/fashion-mnist``.
"""

from __future__ import annotations

import gzip
import zlib
from pathlib import Path

import numpy as np
import torch

from qsnn.data.base import DatasetSplits, Split
from qsnn.errors import QsnnError

FASHION_MNIST_DIR = "/usr/share/datasets/fashion-mnist"
NUM_CLASSES = 10
PIXEL_MAX = 255

# IDX type code -> big-endian numpy dtype.
_IDX_DTYPES: dict[int, np.dtype] = {
    0x08: np.dtype(">u1"),
    0x09: np.dtype(">i1"),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}

# role -> (dash stem, dot stem)
_IDX_FILES: dict[str, tuple[str, str]] = {
    "train_images": ("train-images-idx3-ubyte", "train-images.idx3-ubyte"),
    "train_labels": ("train-labels-idx1-ubyte", "train-labels.idx1-ubyte"),
    "test_images": ("t10k-images-idx3-ubyte", "t10k-images.idx3-ubyte"),
    "test_labels": ("t10k-labels-idx1-ubyte", "t10k-labels.idx1-ubyte"),
}


def read_idx(path: str | Path) -> np.ndarray:
    """Read one IDX file (raw or ``.gz``) into a native-endian numpy array.

    Checks the magic number, the type code, and that the file length matches
    the header's dimensions exactly.

    Raises:
        QsnnError: naming ``path`` if it is unreadable, truncated or corrupt.
    """
    path = Path(path)
    try:
        if path.name.endswith(".gz"):
            with gzip.open(path, "rb") as f:
                raw = bytearray(f.read())
        else:
            raw = bytearray(path.read_bytes())
    except (OSError, EOFError, zlib.error) as exc:
        raise QsnnError(
            f"cannot read IDX file {path} ({exc}); replace it with a fresh copy"
        ) from exc
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] not in _IDX_DTYPES:
        raise QsnnError(
            f"{path} is not an IDX file (bad magic number {bytes(raw[:4]).hex()}); "
            "replace it with a fresh copy"
        )
    dtype = _IDX_DTYPES[raw[2]]
    ndim = raw[3]
    header_len = 4 + 4 * ndim
    if len(raw) < header_len:
        raise QsnnError(f"IDX file {path} is truncated in its header; replace it with a fresh copy")
    dims = tuple(int(d) for d in np.frombuffer(raw, dtype=">u4", count=ndim, offset=4))
    count = int(np.prod(dims, dtype=np.int64))
    expected = header_len + count * dtype.itemsize
    if len(raw) != expected:
        problem = "truncated" if len(raw) < expected else "longer than its header says"
        raise QsnnError(
            f"IDX file {path} is {problem} ({len(raw)} bytes, expected {expected} for "
            f"shape {dims}); replace it with a fresh copy"
        )
    data = np.frombuffer(raw, dtype=dtype, count=count, offset=header_len).reshape(dims)
    return data if dtype.itemsize == 1 else data.astype(dtype.newbyteorder("="))


def find_idx_files(data_dir: Path, install_hint: str) -> dict[str, Path]:
    """Locate the four IDX files in ``data_dir`` (any accepted spelling, raw or ``.gz``).

    Raises:
        QsnnError: if the directory or any file is missing; the message ends with
            ``install_hint``.
    """
    if not data_dir.is_dir():
        raise QsnnError(f"data directory {data_dir} does not exist; {install_hint}")
    found: dict[str, Path] = {}
    missing: list[str] = []
    for role, stems in _IDX_FILES.items():
        candidates = [data_dir / (stem + ext) for stem in stems for ext in ("", ".gz")]
        existing = [c for c in candidates if c.is_file()]
        if existing:
            found[role] = existing[0]
        else:
            missing.append(stems[0] + "[.gz]")
    if missing:
        raise QsnnError(f"missing {', '.join(missing)} in {data_dir}; {install_hint}")
    return found


def load_idx_dataset(name: str, data_dir: Path, install_hint: str) -> DatasetSplits:
    """Load an MNIST-format dataset (images ``[N, 1, H, W]`` uint8, 10 classes) from IDX files.

    Raises:
        QsnnError: on missing, corrupt or mutually inconsistent files.
    """
    files = find_idx_files(data_dir, install_hint)
    splits = {}
    shape: tuple[int, ...] = ()
    for part in ("train", "test"):
        img_path, lbl_path = files[f"{part}_images"], files[f"{part}_labels"]
        images, labels = read_idx(img_path), read_idx(lbl_path)
        if images.ndim != 3 or images.dtype != np.uint8:
            raise QsnnError(
                f"{img_path} holds {images.dtype} data of shape {images.shape}, expected "
                "uint8 [N, H, W] images; replace it with a fresh copy"
            )
        if labels.ndim != 1 or labels.dtype != np.uint8:
            raise QsnnError(
                f"{lbl_path} holds {labels.dtype} data of shape {labels.shape}, expected "
                "uint8 [N] labels; replace it with a fresh copy"
            )
        if images.shape[0] != labels.shape[0]:
            raise QsnnError(
                f"{img_path} has {images.shape[0]} images but {lbl_path} has "
                f"{labels.shape[0]} labels; replace them with a matching pair"
            )
        if labels.size and int(labels.max()) >= NUM_CLASSES:
            raise QsnnError(
                f"{lbl_path} has label {int(labels.max())}, expected 0..{NUM_CLASSES - 1}; "
                "replace it with a fresh copy"
            )
        if shape and images.shape[1:] != shape:
            raise QsnnError(
                f"{img_path} has {images.shape[1:]} images but the train split has {shape}; "
                "use train and t10k files from the same dataset"
            )
        shape = images.shape[1:]
        x = torch.from_numpy(images).unsqueeze(1)
        y = torch.from_numpy(labels.astype(np.int64))
        splits[part] = Split(x=x, y=y)
    return DatasetSplits(
        name=name,
        train=splits["train"],
        test=splits["test"],
        num_classes=NUM_CLASSES,
        input_shape=(1, *shape),
        pixel_max=PIXEL_MAX,
        kind="image",
    )


def load_mnist(
    data_dir: Path | None,
    *,
    time_steps: int = 20,
    frame_size: int = 32,
    download: bool = False,
) -> DatasetSplits:
    """Load MNIST from the four IDX files in ``data_dir`` (no default, no download).

    ``time_steps``, ``frame_size`` and ``download`` are ignored.
    """
    hint = (
        "pass --data-dir pointing to a folder with train-images-idx3-ubyte, "
        "train-labels-idx1-ubyte, t10k-images-idx3-ubyte and t10k-labels-idx1-ubyte "
        "(each optionally .gz); qsnn does not download MNIST"
    )
    if data_dir is None:
        raise QsnnError(f"mnist needs a data directory: {hint}")
    return load_idx_dataset("mnist", Path(data_dir), hint)


def load_fashion_mnist(
    data_dir: Path | None,
    *,
    time_steps: int = 20,
    frame_size: int = 32,
    download: bool = False,
) -> DatasetSplits:
    """Load Fashion-MNIST from IDX files, by default from ``/usr/share/datasets/fashion-mnist``.

    ``time_steps``, ``frame_size`` and ``download`` are ignored.
    """
    hint = (
        "install it with `make data` or `sudo apt-get install dataset-fashion-mnist` "
        f"(files go to {FASHION_MNIST_DIR}), or pass --data-dir pointing to a folder with "
        "the four Fashion-MNIST IDX files"
    )
    directory = Path(data_dir) if data_dir is not None else Path(FASHION_MNIST_DIR)
    return load_idx_dataset("fashion-mnist", directory, hint)
