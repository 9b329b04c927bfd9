"""DVS128 Gesture loader: event files -> binary frame tensors, with an on-disk cache.

On-disk layout (the one the ``tonic`` package downloads and extracts)::

    <data_dir>/DVSGesture/ibmGestureTrain/user01_fluorescent/0.npy
    <data_dir>/DVSGesture/ibmGestureTrain/user01_fluorescent/1.npy ... 10.npy
    <data_dir>/DVSGesture/ibmGestureTest/user24_led/0.npy ...

``data_dir`` may also be the ``DVSGesture`` folder itself. Each ``<label>.npy``
holds one sample: an ``[n_events, 4]`` array with columns ``x, y, p, t``
(``x, y`` in ``0..127``, polarity ``p`` in ``{0, 1}``, timestamp ``t``); the file
name is the class index ``0..10``. Samples are read in sorted user-folder order,
then by label.

Binning (:func:`bin_events`) turns one sample into ``[T, 2, F, F]`` binary frames
(``T = time_steps``, ``F = frame_size``). The frames are cached, bit-packed, in
``qsnn-cache-T<T>-F<F>.npz`` next to the ``ibmGestureTrain`` folder; the cache is
rebuilt when the set of event files (names and sizes) changes.

With ``download=True`` missing data is downloaded with ``tonic`` (the ``[dvs]`` extra:
``pip install 'qsnn[dvs]'``).
"""

from __future__ import annotations

import hashlib
import os
import tempfile
import warnings
from pathlib import Path

import numpy as np
import torch

from qsnn.data.base import DatasetSplits, Split
from qsnn.errors import QsnnError
from qsnn.extras import require

SENSOR_SIZE = 128
NUM_POLARITIES = 2
NUM_CLASSES = 11
DATASET_FOLDER = "DVSGesture"
SPLIT_FOLDERS = {"train": "ibmGestureTrain", "test": "ibmGestureTest"}
CACHE_VERSION = 1

CLASSES = (
    "Hand clapping",
    "Right hand wave",
    "Left hand wave",
    "Right arm cw",
    "Right arm ccw",
    "Left arm cw",
    "Left arm ccw",
    "Arm roll",
    "Air drums",
    "Air guitar",
    "Other gestures",
)


def bin_events(events: np.ndarray, time_steps: int, frame_size: int) -> np.ndarray:
    """Bin one sample's events into binary frames ``[time_steps, 2, frame_size, frame_size]``.

    ``events`` is ``[n, 4]`` with columns ``x, y, p, t``. The rules, applied to every
    event at once (vectorized, deterministic):

    - space: ``col = x * frame_size // 128``, ``row = y * frame_size // 128``
      (integer division; for ``frame_size`` dividing 128 this is ``x // (128 // frame_size)``);
    - polarity: channel ``1`` if ``p > 0`` else channel ``0``;
    - time: with ``t0 = min(t)`` and ``span = max(t) - t0`` the sample's duration is cut
      into ``time_steps`` equal bins, ``bin = floor((t - t0) * time_steps / span)``, and the
      last event (``t == max(t)``) goes into the last bin; if ``span == 0`` every event
      is in bin 0;
    - value: 1 if at least one event fell in that (bin, channel, row, col), else 0.

    An empty sample gives all-zero frames.

    Raises:
        ValueError: if ``events`` is not ``[n, 4]`` or a coordinate is outside the sensor.
    """
    frames = np.zeros((time_steps, NUM_POLARITIES, frame_size, frame_size), dtype=np.uint8)
    events = np.asarray(events)
    if events.size == 0:
        return frames
    if events.ndim != 2 or events.shape[1] != 4:
        raise ValueError(f"events must have shape [n, 4] (x, y, p, t), got {events.shape}")
    x = events[:, 0].astype(np.int64)
    y = events[:, 1].astype(np.int64)
    if x.min() < 0 or y.min() < 0 or x.max() >= SENSOR_SIZE or y.max() >= SENSOR_SIZE:
        raise ValueError(f"event coordinates outside the {SENSOR_SIZE}x{SENSOR_SIZE} sensor")
    channel = (events[:, 2] > 0).astype(np.int64)
    t = events[:, 3]
    if np.issubdtype(t.dtype, np.integer) or t.dtype == np.bool_:
        t = t.astype(np.int64)
        t0 = t.min()
        span = int(t.max() - t0)
        bins = (t - t0) * time_steps // span if span > 0 else np.zeros_like(t)
    else:
        t = t.astype(np.float64)
        t0 = t.min()
        span_f = float(t.max() - t0)
        bins = (
            np.floor((t - t0) * time_steps / span_f).astype(np.int64)
            if span_f > 0
            else np.zeros(t.shape, dtype=np.int64)
        )
    bins = np.minimum(bins, time_steps - 1)
    col = x * frame_size // SENSOR_SIZE
    row = y * frame_size // SENSOR_SIZE
    flat = ((bins * NUM_POLARITIES + channel) * frame_size + row) * frame_size + col
    frames.reshape(-1)[flat] = 1
    return frames


def load_dvs_gesture(
    data_dir: Path | None,
    *,
    time_steps: int = 20,
    frame_size: int = 32,
    download: bool = False,
) -> DatasetSplits:
    """Load DVS128 Gesture as binary frames ``[N, time_steps, 2, frame_size, frame_size]``.

    Reads the cache if it matches, else bins every sample and writes the cache
    atomically (a temporary file then ``os.replace``). See the module docstring for
    the layout and binning.

    Raises:
        QsnnError: if ``data_dir`` is None, the files are missing (and ``download`` is
            False), a sample is corrupt, or ``time_steps``/``frame_size`` are invalid.
    """
    if not isinstance(time_steps, int) or time_steps < 1:
        raise QsnnError(f"time_steps must be a positive integer, got {time_steps!r}")
    if not isinstance(frame_size, int) or not 1 <= frame_size <= SENSOR_SIZE:
        raise QsnnError(f"frame_size must be an integer in 1..{SENSOR_SIZE}, got {frame_size!r}")
    if data_dir is None:
        raise QsnnError(
            "dvs-gesture needs a data directory: pass --data-dir with the folder that holds "
            f"{DATASET_FOLDER}/{SPLIT_FOLDERS['train']} (add --download to fetch it there)"
        )
    data_dir = Path(data_dir)
    root = find_root(data_dir)
    if root is None:
        if not download:
            raise QsnnError(
                f"DVS Gesture not found in {data_dir} (expected "
                f"{DATASET_FOLDER}/{SPLIT_FOLDERS['train']}/userNN_*/<label>.npy and "
                f"{SPLIT_FOLDERS['test']}); pass --data-dir pointing to it or enable download"
            )
        download_dataset(data_dir)
        root = find_root(data_dir)
        if root is None:
            raise QsnnError(
                f"download finished but no DVS Gesture samples are in {data_dir / DATASET_FOLDER}; "
                "remove that folder and retry"
            )

    files = {part: list_samples(root / folder) for part, folder in SPLIT_FOLDERS.items()}
    fingerprint = _fingerprint(root, files)
    cache_path = root / f"qsnn-cache-T{time_steps}-F{frame_size}.npz"
    cached = _read_cache(cache_path, fingerprint)
    if cached is None:
        cached = {}
        for part, samples in files.items():
            x = np.zeros(
                (len(samples), time_steps, NUM_POLARITIES, frame_size, frame_size), np.uint8
            )
            for i, (path, _) in enumerate(samples):
                x[i] = _bin_file(path, time_steps, frame_size)
            y = np.array([label for _, label in samples], dtype=np.int64)
            cached[part] = (x, y)
        _write_cache(cache_path, fingerprint, cached)
    return DatasetSplits(
        name="dvs-gesture",
        train=Split(torch.from_numpy(cached["train"][0]), torch.from_numpy(cached["train"][1])),
        test=Split(torch.from_numpy(cached["test"][0]), torch.from_numpy(cached["test"][1])),
        num_classes=NUM_CLASSES,
        input_shape=(NUM_POLARITIES, frame_size, frame_size),
        pixel_max=1,
        kind="events",
    )


def find_root(data_dir: Path) -> Path | None:
    """Return the folder holding both split folders with samples, or None if absent.

    Looks at ``data_dir/DVSGesture`` first, then ``data_dir`` itself.
    """
    for candidate in (data_dir / DATASET_FOLDER, data_dir):
        if all(any((candidate / folder).glob("*/*.npy")) for folder in SPLIT_FOLDERS.values()):
            return candidate
    return None


def list_samples(split_dir: Path) -> list[tuple[Path, int]]:
    """List ``(path, label)`` for every ``<user>/<label>.npy`` in sorted order.

    Raises:
        QsnnError: if a file name is not a class index ``0..10``.
    """
    samples = []
    for user_dir in sorted(p for p in split_dir.iterdir() if p.is_dir()):
        entries = []
        for path in user_dir.glob("*.npy"):
            try:
                label = int(path.stem)
            except ValueError:
                label = -1
            if not 0 <= label < NUM_CLASSES:
                raise QsnnError(
                    f"unexpected DVS Gesture file {path}: names must be <label>.npy with "
                    f"label 0..{NUM_CLASSES - 1}; remove it"
                )
            entries.append((label, path))
        samples.extend((path, label) for label, path in sorted(entries))
    return samples


def download_dataset(data_dir: Path) -> None:
    """Download and extract DVS Gesture into ``data_dir/DVSGesture`` using ``tonic``.

    Raises:
        QsnnError: if ``tonic`` is not installed or the download fails.
    """
    require("dvs", "downloading DVS Gesture")
    from tonic.datasets import DVSGesture

    data_dir.mkdir(parents=True, exist_ok=True)
    try:
        for train in (True, False):
            DVSGesture(save_to=str(data_dir), train=train)
    except Exception as exc:  # network and archive errors come in many types
        raise QsnnError(
            f"downloading DVS Gesture into {data_dir} failed ({type(exc).__name__}: {exc}); "
            "check the network or download it yourself and pass --data-dir"
        ) from exc


def _read_events(path: Path) -> np.ndarray:
    """Read one sample's ``[n, 4]`` event array."""
    return np.load(path, allow_pickle=False)


def _bin_file(path: Path, time_steps: int, frame_size: int) -> np.ndarray:
    """Read and bin one sample file, turning any problem into a QsnnError naming it."""
    try:
        return bin_events(_read_events(path), time_steps, frame_size)
    except (OSError, ValueError, EOFError) as exc:
        raise QsnnError(
            f"corrupt DVS Gesture sample {path} ({exc}); re-extract the dataset"
        ) from exc


def _fingerprint(root: Path, files: dict[str, list[tuple[Path, int]]]) -> str:
    """Hash of the sample files' relative paths and sizes, to detect a changed dataset."""
    digest = hashlib.sha256(f"v{CACHE_VERSION}".encode())
    for part in sorted(files):
        for path, label in files[part]:
            rel = path.relative_to(root).as_posix()
            digest.update(f"{part}:{rel}:{label}:{path.stat().st_size}\n".encode())
    return digest.hexdigest()


def _read_cache(path: Path, fingerprint: str) -> dict[str, tuple[np.ndarray, np.ndarray]] | None:
    """Return the cached splits if ``path`` exists and matches ``fingerprint``, else None."""
    if not path.is_file():
        return None
    try:
        with np.load(path, allow_pickle=False) as cache:
            if str(cache["fingerprint"]) != fingerprint:
                return None
            result = {}
            for part in SPLIT_FOLDERS:
                shape = tuple(int(d) for d in cache[f"{part}_shape"])
                count = int(np.prod(shape, dtype=np.int64))
                bits = np.unpackbits(cache[f"{part}_x"], count=count)
                result[part] = (bits.reshape(shape), cache[f"{part}_y"].astype(np.int64))
            return result
    except (OSError, ValueError, KeyError, EOFError):
        return None  # unreadable cache: rebuild it


def _write_cache(
    path: Path, fingerprint: str, splits: dict[str, tuple[np.ndarray, np.ndarray]]
) -> None:
    """Write the bit-packed cache atomically; warn (and go on) if the folder is read-only."""
    arrays: dict[str, np.ndarray] = {"fingerprint": np.array(fingerprint)}
    for part, (x, y) in splits.items():
        arrays[f"{part}_x"] = np.packbits(x.reshape(-1))
        arrays[f"{part}_shape"] = np.array(x.shape, dtype=np.int64)
        arrays[f"{part}_y"] = y
    tmp_name = None
    try:
        with tempfile.NamedTemporaryFile(
            dir=path.parent, prefix=path.name + ".", suffix=".tmp", delete=False
        ) as tmp:
            tmp_name = tmp.name
            np.savez(tmp, **arrays)
            tmp.flush()
            os.fsync(tmp.fileno())
        os.replace(tmp_name, path)
    except OSError as exc:
        if tmp_name is not None and os.path.exists(tmp_name):
            os.unlink(tmp_name)
        warnings.warn(f"could not write DVS Gesture cache {path}: {exc}", stacklevel=3)
