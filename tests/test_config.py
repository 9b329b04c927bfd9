"""Typed configs: every shipped config loads; unknown keys and wrong types are rejected."""

from __future__ import annotations

import pytest

from qsnn import config
from qsnn.errors import QsnnError


def test_shipped_configs_load(root) -> None:
    names = sorted(p.stem for p in (root / "configs").glob("*.yaml"))
    assert {"digits", "fashion-mnist-mlp", "fashion-mnist-conv", "mnist-conv",
            "dvs-gesture-conv"} <= set(names)
    for name in names:
        cfg = config.load(root / "configs" / f"{name}.yaml")
        assert cfg.name == name


def test_seed_hyperparameters(root) -> None:
    cfg = config.load(root / "configs/fashion-mnist-conv.yaml")
    m, t = cfg.model, cfg.train
    assert (m.beta, m.threshold, m.slope, m.dropout) == (0.974, 2.473, 5.5565, 0.0736)
    assert (t.lr, t.batch_size, cfg.data.time_steps) == (2.908e-3, 128, 100)


@pytest.mark.parametrize("raw,match", [
    ({"model": {"betaa": 0.5}}, "unknown config key 'model.betaa'"),
    ({"modle": {}}, "unknown config key 'modle'"),
    ({"train": {"epochs": "ten"}}, "'train.epochs' must be an integer"),
    ({"train": {"epochs": 2.5}}, "'train.epochs' must be an integer"),
    ({"model": {"learn_beta": "yes"}}, "'model.learn_beta' must be true or false"),
    ({"model": {"layers": "fc10"}}, "'model.layers' must be a list"),
    ({"model": {"precision": "int5"}}, "'model.precision' is 'int5'"),
    ({"train": {"schedule": "cosin"}}, "'train.schedule' is 'cosin'"),
    ({"model": {"layers": ["fc10", "relu"]}}, "unknown layer 'relu'"),
    ({"train": {"lr": -1}}, "'train.lr' is out of range"),
    ({"model": {"precision": "fp32", "hardware_aware": True}}, "needs an integer precision"),
])
def test_bad_configs(raw, match) -> None:
    with pytest.raises(QsnnError, match=match):
        config.from_dict(raw)


def test_overrides_and_types() -> None:
    cfg = config.apply_overrides(config.RunConfig(), [
        "train.lr=0.01", "model.layers=[fc8, lif, fc10, lif]", "data.data_dir=/x",
        "train.grad_clip=null", "train.epochs=3"])
    assert cfg.train.lr == 0.01 and cfg.train.epochs == 3
    assert cfg.model.layers == ["fc8", "lif", "fc10", "lif"] and cfg.data.data_dir == "/x"
    with pytest.raises(QsnnError, match="section.key=value"):
        config.apply_overrides(cfg, ["train.lr"])
    with pytest.raises(QsnnError, match="unknown config key 'foo.bar'"):
        config.apply_overrides(cfg, ["foo.bar=1"])


def test_hardware_aware_default() -> None:
    assert config.RunConfig().hardware_aware
    fp = config.apply_overrides(config.RunConfig(), ["model.precision=fp32"])
    assert not fp.hardware_aware and fp.weight_bits is None
    assert config.RunConfig().weight_bits == 4


def test_dump_roundtrip(tmp_path) -> None:
    cfg = config.apply_overrides(config.RunConfig(), ["train.lr=0.5"])
    (tmp_path / "c.yaml").write_text(config.dump(cfg))
    assert config.load(tmp_path / "c.yaml") == cfg


def test_invalid_yaml_and_missing(tmp_path) -> None:
    (tmp_path / "bad.yaml").write_text("train: [unclosed")
    with pytest.raises(QsnnError, match="not valid YAML"):
        config.load(tmp_path / "bad.yaml")
    with pytest.raises(QsnnError, match="config file not found"):
        config.load(tmp_path / "none.yaml")


def test_shipped_configs_resolve_by_name(root, tmp_path, monkeypatch) -> None:
    """Names find the package's configs from any folder; an existing file wins."""
    from qsnn.configs import shipped

    assert list(shipped()) == sorted(p.stem for p in (root / "configs").glob("*.yaml"))
    monkeypatch.chdir(tmp_path)  # no configs/ here
    for spec in ("digits", "digits.yaml"):
        assert config.resolve(spec).read_bytes() == (root / "configs/digits.yaml").read_bytes()
    assert config.load("fashion-mnist-conv").name == "fashion-mnist-conv"
    (tmp_path / "digits").write_text("name: mine\n")
    assert config.load("digits").name == "mine"
    with pytest.raises(QsnnError, match=r"^config file not found: configs/digits\.yaml "
                                        r"\(shipped configs, by name: digits, .*mnist-conv\)$"):
        config.load("configs/digits.yaml")
    with pytest.raises(QsnnError, match="config file not found: nope"):
        config.load("nope")
