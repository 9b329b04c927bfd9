"""Tests for qsnn.data: digits, IDX parsing, Fashion-MNIST, DVS Gesture, split helpers."""

from __future__ import annotations

import gzip
import os
import struct
from pathlib import Path

import numpy as np
import pytest
import torch

import qsnn.data.dvs as dvs
from qsnn.data import (
    DATASETS,
    DEFAULT_DATA_DIRS,
    DatasetSplits,
    Split,
    load_dataset,
    subset,
    train_val_split,
)
from qsnn.data.dvs import bin_events
from qsnn.data.idx import read_idx
from qsnn.errors import QsnnError

FASHION_DIR = Path("/usr/share/datasets/fashion-mnist")


# --------------------------------------------------------------------------- helpers


def idx_bytes(array: np.ndarray) -> bytes:
    """Encode a uint8 array as an IDX file."""
    header = struct.pack(">BBBB", 0, 0, 0x08, array.ndim)
    header += struct.pack(f">{array.ndim}I", *array.shape)
    return header + array.astype(np.uint8).tobytes()


def write_idx_dir(
    directory: Path,
    n_train: int = 12,
    n_test: int = 5,
    gz: bool = False,
    dot_names: bool = False,
    seed: int = 0,
) -> dict[str, np.ndarray]:
    """Write the four MNIST-style IDX files with random content; return the arrays."""
    rng = np.random.default_rng(seed)
    arrays = {
        "train-images": rng.integers(0, 256, (n_train, 28, 28), dtype=np.uint8),
        "train-labels": rng.integers(0, 10, n_train, dtype=np.uint8),
        "t10k-images": rng.integers(0, 256, (n_test, 28, 28), dtype=np.uint8),
        "t10k-labels": rng.integers(0, 10, n_test, dtype=np.uint8),
    }
    directory.mkdir(parents=True, exist_ok=True)
    for stem, array in arrays.items():
        kind = "idx3-ubyte" if array.ndim == 3 else "idx1-ubyte"
        name = f"{stem}.{kind}" if dot_names else f"{stem}-{kind}"
        data = idx_bytes(array)
        if gz:
            (directory / (name + ".gz")).write_bytes(gzip.compress(data))
        else:
            (directory / name).write_bytes(data)
    return arrays


def events_array(rows: list[tuple[int, int, int, int]]) -> np.ndarray:
    """Events ``[n, 4]`` (x, y, p, t) as tonic stores them (int64, unstructured)."""
    return np.array(rows, dtype=np.int64).reshape(-1, 4)


def random_events(rng: np.random.Generator, n: int) -> np.ndarray:
    """Random events with sorted timestamps in microsecond-like units."""
    x = rng.integers(0, 128, n)
    y = rng.integers(0, 128, n)
    p = rng.integers(0, 2, n)
    t = np.sort(rng.integers(0, 50_000, n))
    return np.stack([x, y, p, t], axis=1).astype(np.int64)


# Fake DVS Gesture in tonic's layout: (split folder, user folder, label, n_events)
FAKE_DVS = [
    ("ibmGestureTrain", "user01_fluorescent", 0, 40),
    ("ibmGestureTrain", "user01_fluorescent", 3, 25),
    ("ibmGestureTrain", "user01_fluorescent", 10, 30),
    ("ibmGestureTrain", "user02_led", 1, 50),
    ("ibmGestureTest", "user24_led", 2, 20),
    ("ibmGestureTest", "user24_led", 5, 35),
]


def write_fake_dvs(data_dir: Path, seed: int = 0) -> dict[tuple[str, str, int], np.ndarray]:
    """Write a tiny DVS Gesture dataset under ``data_dir/DVSGesture``; return the events."""
    rng = np.random.default_rng(seed)
    written = {}
    for split, user, label, n in FAKE_DVS:
        folder = data_dir / "DVSGesture" / split / user
        folder.mkdir(parents=True, exist_ok=True)
        events = random_events(rng, n)
        np.save(folder / f"{label}.npy", events)
        written[(split, user, label)] = events
    return written


def make_split(n: int) -> Split:
    """A split whose pixel value encodes the sample index (for tracking samples)."""
    x = torch.arange(n, dtype=torch.int64).remainder(256).to(torch.uint8).reshape(n, 1, 1, 1)
    return Split(x=x.expand(n, 1, 2, 2).contiguous(), y=torch.arange(n, dtype=torch.int64))


# --------------------------------------------------------------------------- registry


def test_registry_names_and_defaults() -> None:
    assert DATASETS == ("digits", "mnist", "fashion-mnist", "dvs-gesture")
    assert DEFAULT_DATA_DIRS["fashion-mnist"] == "/usr/share/datasets/fashion-mnist"
    assert all(DEFAULT_DATA_DIRS[n] is None for n in ("digits", "mnist", "dvs-gesture"))


def test_unknown_name_lists_valid_names() -> None:
    with pytest.raises(QsnnError) as info:
        load_dataset("cifar10")
    message = str(info.value)
    assert "cifar10" in message
    assert "\n" not in message
    for name in DATASETS:
        assert name in message


# --------------------------------------------------------------------------- digits


def test_digits_shapes_ranges_and_split() -> None:
    data = load_dataset("digits")
    assert isinstance(data, DatasetSplits)
    assert (data.name, data.kind, data.num_classes) == ("digits", "image", 10)
    assert data.input_shape == (1, 8, 8)
    assert data.pixel_max == 16
    assert data.train.x.shape == (1437, 1, 8, 8)
    assert data.test.x.shape == (360, 1, 8, 8)
    for split in (data.train, data.test):
        assert split.x.dtype == torch.uint8
        assert split.y.dtype == torch.int64
        assert int(split.x.max()) <= 16
        assert set(split.y.unique().tolist()) == set(range(10))


def test_digits_split_matches_documented_permutation() -> None:
    from sklearn.datasets import load_digits

    features, labels = load_digits(return_X_y=True)
    perm = np.random.default_rng(0).permutation(1797)
    data = load_dataset("digits")
    assert np.array_equal(data.test.y.numpy(), labels[perm[-360:]])
    assert np.array_equal(data.train.y.numpy(), labels[perm[:-360]])
    expected = features[perm[-360:]].reshape(-1, 1, 8, 8)
    assert np.array_equal(data.test.x.numpy(), expected.astype(np.uint8))
    again = load_dataset("digits")
    assert torch.equal(again.train.x, data.train.x)
    assert torch.equal(again.test.y, data.test.y)


# --------------------------------------------------------------------------- IDX


@pytest.mark.parametrize("gz", [False, True])
def test_read_idx_roundtrip(tmp_path: Path, gz: bool) -> None:
    array = np.arange(2 * 3 * 4, dtype=np.uint8).reshape(2, 3, 4)
    path = tmp_path / ("a-idx3-ubyte" + (".gz" if gz else ""))
    data = idx_bytes(array)
    path.write_bytes(gzip.compress(data) if gz else data)
    out = read_idx(path)
    assert out.dtype == np.uint8
    assert np.array_equal(out, array)


def test_read_idx_multibyte_big_endian(tmp_path: Path) -> None:
    values = np.array([[1, -2], [300, -40000]], dtype=">i4")
    path = tmp_path / "ints.idx"
    path.write_bytes(
        struct.pack(">BBBB", 0, 0, 0x0C, 2) + struct.pack(">2I", 2, 2) + values.tobytes()
    )
    out = read_idx(path)
    assert out.dtype == np.dtype("int32")
    assert out.tolist() == [[1, -2], [300, -40000]]


@pytest.mark.parametrize(
    ("mutate", "needle"),
    [
        (lambda b: b[:-1], "truncated"),
        (lambda b: b[:6], "truncated"),
        (lambda b: b + b"\x00", "longer"),
        (lambda b: b"\x12\x34" + b[2:], "magic"),
        (lambda b: b"", "magic"),
    ],
)
def test_read_idx_corrupt_raises(tmp_path: Path, mutate, needle: str) -> None:
    path = tmp_path / "train-images-idx3-ubyte"
    path.write_bytes(mutate(idx_bytes(np.zeros((3, 4, 4), np.uint8))))
    with pytest.raises(QsnnError, match=needle) as info:
        read_idx(path)
    assert str(path) in str(info.value)


def test_read_idx_truncated_gzip_raises(tmp_path: Path) -> None:
    path = tmp_path / "train-labels-idx1-ubyte.gz"
    data = gzip.compress(idx_bytes(np.arange(200, dtype=np.uint8)))
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(QsnnError) as info:
        read_idx(path)
    assert str(path) in str(info.value)


@pytest.mark.parametrize(("gz", "dot_names"), [(False, False), (True, False), (False, True)])
def test_mnist_from_idx_dir(tmp_path: Path, gz: bool, dot_names: bool) -> None:
    arrays = write_idx_dir(tmp_path, gz=gz, dot_names=dot_names)
    data = load_dataset("mnist", tmp_path)
    assert (data.name, data.kind, data.pixel_max, data.num_classes) == ("mnist", "image", 255, 10)
    assert data.input_shape == (1, 28, 28)
    assert data.train.x.shape == (12, 1, 28, 28)
    assert data.test.x.shape == (5, 1, 28, 28)
    assert data.train.x.dtype == torch.uint8 and data.train.y.dtype == torch.int64
    assert np.array_equal(data.train.x[:, 0].numpy(), arrays["train-images"])
    assert np.array_equal(data.test.y.numpy(), arrays["t10k-labels"])


def test_fashion_mnist_with_explicit_dir(tmp_path: Path) -> None:
    write_idx_dir(tmp_path, gz=True)
    data = load_dataset("fashion-mnist", str(tmp_path))
    assert data.name == "fashion-mnist"
    assert len(data.train) == 12 and len(data.test) == 5


def test_mnist_without_dir_says_pass_data_dir() -> None:
    with pytest.raises(QsnnError, match="--data-dir") as info:
        load_dataset("mnist")
    assert "train-images-idx3-ubyte" in str(info.value)


def test_missing_dir_is_helpful(tmp_path: Path) -> None:
    missing = tmp_path / "nope"
    with pytest.raises(QsnnError) as info:
        load_dataset("fashion-mnist", missing)
    message = str(info.value)
    assert str(missing) in message
    assert "apt-get install dataset-fashion-mnist" in message
    assert "\n" not in message


def test_missing_file_is_named(tmp_path: Path) -> None:
    write_idx_dir(tmp_path)
    (tmp_path / "t10k-labels-idx1-ubyte").unlink()
    with pytest.raises(QsnnError, match="t10k-labels-idx1-ubyte") as info:
        load_dataset("mnist", tmp_path)
    assert str(tmp_path) in str(info.value)


def test_corrupt_file_in_dir_is_named(tmp_path: Path) -> None:
    write_idx_dir(tmp_path)
    path = tmp_path / "train-images-idx3-ubyte"
    path.write_bytes(path.read_bytes()[:-100])
    with pytest.raises(QsnnError, match="truncated") as info:
        load_dataset("mnist", tmp_path)
    assert str(path) in str(info.value)


def test_mismatched_counts_raise(tmp_path: Path) -> None:
    write_idx_dir(tmp_path)
    (tmp_path / "train-labels-idx1-ubyte").write_bytes(idx_bytes(np.zeros(3, np.uint8)))
    with pytest.raises(QsnnError, match="labels"):
        load_dataset("mnist", tmp_path)


def test_label_out_of_range_raises(tmp_path: Path) -> None:
    write_idx_dir(tmp_path)
    (tmp_path / "t10k-labels-idx1-ubyte").write_bytes(idx_bytes(np.full(5, 10, np.uint8)))
    with pytest.raises(QsnnError, match="label 10"):
        load_dataset("mnist", tmp_path)


@pytest.mark.skipif(not FASHION_DIR.is_dir(), reason="dataset-fashion-mnist not installed")
def test_fashion_mnist_real_files() -> None:
    data = load_dataset("fashion-mnist")
    assert data.train.x.shape == (60000, 1, 28, 28)
    assert data.test.x.shape == (10000, 1, 28, 28)
    assert data.train.y.shape == (60000,) and data.test.y.shape == (10000,)
    assert data.train.x.dtype == torch.uint8
    assert int(data.train.x.max()) == 255
    assert data.test.y.bincount().tolist() == [1000] * 10


# --------------------------------------------------------------------------- DVS Gesture


def test_bin_events_hand_computed() -> None:
    events = events_array(
        [
            (0, 0, 0, 1000),  # t-t0=0   -> bin 0; (row 0, col 0), channel 0
            (3, 2, 0, 1010),  # t-t0=10  -> 10*4//100=0; same cell as above -> still 1
            (127, 5, 1, 1050),  # 50*4//100=2; col 127*32//128=31, row 5*32//128=1
            (64, 127, 1, 1100),  # last event 100*4//100=4 -> clipped to bin 3; row 31, col 16
            (8, 12, 1, 1074),  # 74*4//100=2; row 3, col 2
        ]
    )
    frames = bin_events(events, time_steps=4, frame_size=32)
    assert frames.shape == (4, 2, 32, 32)
    assert frames.dtype == np.uint8
    expected = np.zeros_like(frames)
    expected[0, 0, 0, 0] = 1
    expected[2, 1, 1, 31] = 1
    expected[3, 1, 31, 16] = 1
    expected[2, 1, 3, 2] = 1
    assert np.array_equal(frames, expected)


def test_bin_events_edge_cases() -> None:
    assert not bin_events(np.zeros((0, 4), np.int64), 3, 8).any()
    same_time = events_array([(1, 1, 1, 5), (127, 127, 0, 5)])
    frames = bin_events(same_time, 3, 8)
    assert frames[0, 1, 0, 0] == 1 and frames[0, 0, 7, 7] == 1 and frames.sum() == 2
    float_events = events_array([(0, 0, 0, 0), (0, 0, 0, 100)]).astype(np.float64)
    assert bin_events(float_events, 2, 4)[:, 0, 0, 0].tolist() == [1, 1]
    with pytest.raises(ValueError, match="sensor"):
        bin_events(events_array([(128, 0, 0, 0)]), 2, 4)
    with pytest.raises(ValueError, match="shape"):
        bin_events(np.zeros((2, 3)), 2, 4)


def test_dvs_shapes_labels_and_binarization(tmp_path: Path) -> None:
    written = write_fake_dvs(tmp_path)
    data = load_dataset("dvs-gesture", tmp_path, time_steps=5, frame_size=16)
    assert (data.name, data.kind, data.pixel_max, data.num_classes) == (
        "dvs-gesture",
        "events",
        1,
        11,
    )
    assert data.input_shape == (2, 16, 16)
    assert data.train.x.shape == (4, 5, 2, 16, 16)
    assert data.test.x.shape == (2, 5, 2, 16, 16)
    assert data.train.x.dtype == torch.uint8 and data.train.y.dtype == torch.int64
    # sorted user folders, then numeric label order within a folder
    assert data.train.y.tolist() == [0, 3, 10, 1]
    assert data.test.y.tolist() == [2, 5]
    assert set(data.train.x.unique().tolist()) <= {0, 1}
    assert all(int(sample.sum()) > 0 for sample in data.train.x)
    # each sample equals the documented binning of its own file
    expected = bin_events(written[("ibmGestureTrain", "user02_led", 1)], 5, 16)
    assert np.array_equal(data.train.x[3].numpy(), expected)
    # data_dir may also be the DVSGesture folder itself
    direct = load_dataset("dvs-gesture", tmp_path / "DVSGesture", time_steps=5, frame_size=16)
    assert torch.equal(direct.train.x, data.train.x)


def test_dvs_cache_is_written_and_used(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write_fake_dvs(tmp_path)
    root = tmp_path / "DVSGesture"
    first = load_dataset("dvs-gesture", tmp_path, time_steps=4, frame_size=8)
    cache = root / "qsnn-cache-T4-F8.npz"
    assert cache.is_file()
    assert not [p for p in os.listdir(root) if p.endswith(".tmp")]

    def no_reading(path: Path) -> np.ndarray:
        raise AssertionError(f"event file {path} read despite the cache")

    monkeypatch.setattr(dvs, "_read_events", no_reading)
    second = load_dataset("dvs-gesture", tmp_path, time_steps=4, frame_size=8)
    assert torch.equal(first.train.x, second.train.x)
    assert torch.equal(first.test.x, second.test.x)
    assert torch.equal(first.train.y, second.train.y)

    # other binning parameters use another cache file
    monkeypatch.undo()
    load_dataset("dvs-gesture", tmp_path, time_steps=3, frame_size=8)
    assert (root / "qsnn-cache-T3-F8.npz").is_file()

    # adding a sample invalidates the cache
    np.save(root / "ibmGestureTest" / "user24_led" / "7.npy", events_array([(0, 0, 1, 0)]))
    third = load_dataset("dvs-gesture", tmp_path, time_steps=4, frame_size=8)
    assert third.test.y.tolist() == [2, 5, 7]


def test_dvs_corrupt_cache_is_rebuilt(tmp_path: Path) -> None:
    write_fake_dvs(tmp_path)
    first = load_dataset("dvs-gesture", tmp_path, time_steps=2, frame_size=4)
    (tmp_path / "DVSGesture" / "qsnn-cache-T2-F4.npz").write_bytes(b"garbage")
    again = load_dataset("dvs-gesture", tmp_path, time_steps=2, frame_size=4)
    assert torch.equal(first.train.x, again.train.x)


def test_dvs_missing_files_without_download(tmp_path: Path) -> None:
    with pytest.raises(QsnnError, match="--data-dir") as info:
        load_dataset("dvs-gesture", tmp_path)
    assert "download" in str(info.value)
    with pytest.raises(QsnnError, match="--data-dir"):
        load_dataset("dvs-gesture")


def test_dvs_download_without_the_extra(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from qsnn import extras

    monkeypatch.setitem(extras.EXTRAS, "dvs", {"tonic": "no_such_tonic"})
    with pytest.raises(QsnnError, match=r"^downloading DVS Gesture needs the \[dvs\] extra "
                                        r"\(tonic not installed\): pip install 'qsnn\[dvs\]'$"):
        dvs.download_dataset(tmp_path / "data")
    assert not (tmp_path / "data").exists()


def test_dvs_download_is_called_only_when_missing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[Path] = []

    def fake_download(data_dir: Path) -> None:
        calls.append(data_dir)
        write_fake_dvs(data_dir)

    monkeypatch.setattr(dvs, "download_dataset", fake_download)
    data = load_dataset("dvs-gesture", tmp_path, time_steps=2, frame_size=4, download=True)
    assert calls == [tmp_path] and len(data.train) == 4
    load_dataset("dvs-gesture", tmp_path, time_steps=2, frame_size=4, download=True)
    assert calls == [tmp_path]


def test_dvs_bad_label_file_and_corrupt_sample(tmp_path: Path) -> None:
    write_fake_dvs(tmp_path)
    bad = tmp_path / "DVSGesture" / "ibmGestureTrain" / "user02_led" / "11.npy"
    np.save(bad, events_array([(0, 0, 0, 0)]))
    with pytest.raises(QsnnError, match="11.npy"):
        load_dataset("dvs-gesture", tmp_path, time_steps=2, frame_size=4)
    bad.unlink()
    corrupt = tmp_path / "DVSGesture" / "ibmGestureTest" / "user24_led" / "2.npy"
    corrupt.write_bytes(corrupt.read_bytes()[:40])
    with pytest.raises(QsnnError, match="2.npy"):
        load_dataset("dvs-gesture", tmp_path, time_steps=2, frame_size=4)


@pytest.mark.parametrize(("time_steps", "frame_size"), [(0, 8), (4, 0), (4, 129)])
def test_dvs_invalid_binning_parameters(tmp_path: Path, time_steps: int, frame_size: int) -> None:
    write_fake_dvs(tmp_path)
    with pytest.raises(QsnnError):
        load_dataset("dvs-gesture", tmp_path, time_steps=time_steps, frame_size=frame_size)


# --------------------------------------------------------------------------- split helpers


def test_train_val_split_sizes_disjoint_and_deterministic() -> None:
    split = make_split(100)
    train, val = train_val_split(split, 0.2, seed=7)
    assert (len(train), len(val)) == (80, 20)
    train_ids = set(train.y.tolist())
    val_ids = set(val.y.tolist())
    assert not train_ids & val_ids
    assert train_ids | val_ids == set(range(100))
    # x travels with y
    assert torch.equal(train.x[:, 0, 0, 0].long(), train.y)
    again_train, again_val = train_val_split(split, 0.2, seed=7)
    assert torch.equal(again_train.y, train.y) and torch.equal(again_val.y, val.y)
    _, other_val = train_val_split(split, 0.2, seed=8)
    assert not torch.equal(other_val.y, val.y)


def test_train_val_split_edges() -> None:
    split = make_split(10)
    train, val = train_val_split(split, 0.0, seed=0)
    assert len(val) == 0 and len(train) == 10
    assert val.x.shape == (0, 1, 2, 2)
    train, val = train_val_split(split, 0.99, seed=0)
    assert len(train) == 1 and len(val) == 9
    train, val = train_val_split(make_split(100), 0.29, seed=0)
    assert len(val) == 29
    for bad in (-0.1, 1.0, 1.5):
        with pytest.raises(QsnnError, match="val_fraction"):
            train_val_split(split, bad, seed=0)


def test_subset() -> None:
    split = make_split(10)
    assert subset(split, None) is split
    assert subset(split, 3).y.tolist() == [0, 1, 2]
    assert len(subset(split, 0)) == 0
    assert len(subset(split, 50)) == 10
    with pytest.raises(QsnnError):
        subset(split, -1)


def test_split_validates_dtypes() -> None:
    with pytest.raises(ValueError):
        Split(x=torch.zeros(2, 1, 2, 2), y=torch.zeros(2, dtype=torch.int64))
    with pytest.raises(ValueError):
        Split(x=torch.zeros(2, 1, 2, 2, dtype=torch.uint8), y=torch.zeros(3, dtype=torch.int64))
