"""Typed run configuration: dataclasses per stage, strict YAML loading, CLI overrides.

A run config has three sections, ``data``, ``model`` and ``train`` (plus ``name``).
Every key is declared here; an unknown key or a value of the wrong type is a
:class:`~qsnn.errors.QsnnError` naming the key. Overrides use dotted paths
(``train.lr=0.01``) and are parsed as YAML scalars.
"""

from __future__ import annotations

import dataclasses
import math
import re
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from qsnn.configs import shipped
from qsnn.errors import QsnnError
from qsnn.export.ir import Encoding, Leak, Reset

PRECISIONS = ("fp32", "int2", "int4", "int8")
SCHEDULES = ("constant", "cosine", "cosine-restarts", "step")
LOSSES = ("mse_count", "ce_rate")
SURROGATES = ("fast_sigmoid", "atan")
LAYER_TOKEN = re.compile(r"^(fc\d+|conv\d+k\d+(p\d+)?|avgpool\d+|bn|lif|flatten|dropout)$")
# Names reach file and folder names and generated files (runs/<name>, qsnn_<name>.core).
NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$")
# YAML 1.1 (PyYAML) reads 1e-5 and 2E3 as strings: numbers all the same.
NUMBER = re.compile(r"^[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?$")
MAX_SEED = 2**32


@dataclass
class DataConfig:
    """Dataset and input encoding."""

    dataset: str = "digits"
    data_dir: str | None = None
    download: bool = False
    val_fraction: float = 0.1
    encoding: str = Encoding.DIRECT.value
    time_steps: int = 16
    frame_size: int = 32
    rate_seed: int = 0xACE1
    max_train: int | None = None
    max_test: int | None = None


@dataclass
class ModelConfig:
    """Network structure, quantization and LIF neuron parameters."""

    layers: list[str] = field(default_factory=lambda: ["fc128", "lif", "fc10", "lif"])
    precision: str = "int4"
    per_channel: bool = False
    hardware_aware: bool | None = None
    bias: bool = False
    beta: float = 0.9
    learn_beta: bool = False
    threshold: float = 1.0
    learn_threshold: bool = False
    leak: str = Leak.MULT.value
    leak_frac_bits: int = 8
    reset: str = Reset.SUBTRACT.value
    surrogate: str = "fast_sigmoid"
    slope: float = 25.0
    dropout: float = 0.0


@dataclass
class TrainConfig:
    """Optimiser, schedule, loss and loop settings."""

    epochs: int = 30
    batch_size: int = 64
    eval_batch_size: int = 512
    lr: float = 1e-3
    weight_decay: float = 0.0
    schedule: str = "cosine"
    cosine_period_epochs: float = 10.0
    eta_min: float = 0.0
    restart_epochs: int = 10
    restart_mult: int = 1
    step_epochs: int = 10
    step_gamma: float = 0.5
    loss: str = "mse_count"
    correct_rate: float = 0.8
    incorrect_rate: float = 0.2
    grad_clip: float | None = None
    weight_clip: float | None = None
    seed: int = 0
    device: str = "auto"
    # Warm start: a checkpoint (``best.pt``/``last.pt``) or run folder (its ``best.pt``)
    # of the same network whose weights replace the random initialisation; optimiser,
    # schedule and epochs start afresh (e.g. fine-tune a T = 25 model at T = 100).
    init_from: str | None = None


@dataclass
class RunConfig:
    """A whole training run."""

    name: str = "digits"
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    train: TrainConfig = field(default_factory=TrainConfig)

    def to_dict(self) -> dict[str, Any]:
        """Plain nested dict (YAML/JSON serialisable)."""
        return dataclasses.asdict(self)

    @property
    def integer_weights(self) -> bool:
        """True for int2/int4/int8 precisions."""
        return self.model.precision != "fp32"

    @property
    def hardware_aware(self) -> bool:
        """Integer-grid membrane mode; defaults to on for integer precisions."""
        if self.model.hardware_aware is None:
            return self.integer_weights
        return self.model.hardware_aware

    @property
    def weight_bits(self) -> int | None:
        """Weight bit width, None for fp32."""
        return None if self.model.precision == "fp32" else int(self.model.precision[3:])


SECTIONS: dict[str, type] = {"data": DataConfig, "model": ModelConfig, "train": TrainConfig}


def _check_type(key: str, value: Any, hint: Any) -> Any:
    """Return ``value`` converted to ``hint`` or raise a one-line error."""
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        args = typing.get_args(hint)
        if value is None and type(None) in args:
            return None
        inner = [a for a in args if a is not type(None)]
        return _check_type(key, value, inner[0])
    if origin is list:
        (item,) = typing.get_args(hint)
        if not isinstance(value, list):
            raise QsnnError(f"config key '{key}' must be a list, got {value!r}")
        return [_check_type(f"{key}[{i}]", v, item) for i, v in enumerate(value)]
    if hint is bool:
        if not isinstance(value, bool):
            raise QsnnError(f"config key '{key}' must be true or false, got {value!r}")
        return value
    if hint is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise QsnnError(f"config key '{key}' must be an integer, got {value!r}")
        return value
    if hint is float:
        if isinstance(value, str) and NUMBER.match(value.strip()):
            value = float(value)
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise QsnnError(f"config key '{key}' must be a number, got {value!r}")
        if not math.isfinite(value):
            raise QsnnError(f"config key '{key}' must be a finite number, got {value!r}")
        return float(value)
    if hint is str:
        if not isinstance(value, str):
            raise QsnnError(f"config key '{key}' must be a string, got {value!r}")
        return value
    raise TypeError(f"unsupported config type {hint} for {key}")  # programming error


def _build_section(cls: type, values: dict[str, Any], prefix: str) -> Any:
    """Instantiate a section dataclass from a dict, rejecting unknown keys."""
    if not isinstance(values, dict):
        raise QsnnError(f"config section '{prefix}' must be a mapping, got {values!r}")
    hints = typing.get_type_hints(cls)
    names = [f.name for f in dataclasses.fields(cls)]
    for key in values:
        if key not in names:
            raise QsnnError(
                f"unknown config key '{prefix}.{key}' (valid keys: {', '.join(names)})"
            )
    kwargs = {k: _check_type(f"{prefix}.{k}", v, hints[k]) for k, v in values.items()}
    return cls(**kwargs)


def _choice(key: str, value: str, options: tuple[str, ...]) -> None:
    if value not in options:
        raise QsnnError(f"config key '{key}' is '{value}', expected one of: {', '.join(options)}")


def validate(cfg: RunConfig) -> RunConfig:
    """Check value ranges and choices; return ``cfg`` unchanged."""
    m, d, t = cfg.model, cfg.data, cfg.train
    _choice("model.precision", m.precision, PRECISIONS)
    _choice("data.encoding", d.encoding, Encoding.values())
    _choice("train.schedule", t.schedule, SCHEDULES)
    _choice("train.loss", t.loss, LOSSES)
    _choice("model.surrogate", m.surrogate, SURROGATES)
    _choice("model.reset", m.reset, Reset.values())
    _choice("model.leak", m.leak, Leak.values())
    for tok in m.layers:
        if not LAYER_TOKEN.match(tok):
            raise QsnnError(
                f"config key 'model.layers' has unknown layer '{tok}' "
                "(use fcN, convCkK[pP], avgpoolK, bn, lif, flatten, dropout)"
            )
        sizes = re.findall(r"(fc|conv|k|avgpool)(\d+)", tok)
        if any(int(n) < 1 for _, n in sizes):
            raise QsnnError(f"config key 'model.layers': layer '{tok}' has a size of 0")
    if not NAME.match(cfg.name):
        raise QsnnError(f"name {cfg.name!r}: use 1-100 letters, digits, '_', '-' or '.', "
                        "starting with a letter or digit (it names files and folders)")
    checks = [
        ("data.time_steps", d.time_steps >= 1),
        ("data.val_fraction", 0.0 <= d.val_fraction < 1.0),
        ("data.frame_size", d.frame_size >= 1),
        ("data.rate_seed", 0 < d.rate_seed < 2**32),
        ("model.beta", 0.0 <= m.beta <= 1.0),
        ("model.threshold", m.threshold > 0.0),
        ("model.leak_frac_bits", 1 <= m.leak_frac_bits <= 16),
        ("model.slope", m.slope > 0.0),
        ("model.dropout", 0.0 <= m.dropout < 1.0),
        ("data.max_train", d.max_train is None or d.max_train >= 1),
        ("data.max_test", d.max_test is None or d.max_test >= 1),
        ("train.seed", 0 <= t.seed < MAX_SEED),
        ("train.epochs", t.epochs >= 1),
        ("train.batch_size", t.batch_size >= 1),
        ("train.eval_batch_size", t.eval_batch_size >= 1),
        ("train.lr", t.lr > 0.0),
        ("train.cosine_period_epochs", t.cosine_period_epochs > 0.0),
        ("train.restart_epochs", t.restart_epochs >= 1),
        ("train.restart_mult", t.restart_mult >= 1),
        ("train.step_epochs", t.step_epochs >= 1),
        ("train.grad_clip", t.grad_clip is None or t.grad_clip > 0.0),
        ("train.weight_clip", t.weight_clip is None or t.weight_clip > 0.0),
    ]
    for key, ok in checks:
        if not ok:
            section, name = key.split(".")
            value = getattr(getattr(cfg, section), name)
            raise QsnnError(f"config key '{key}' is out of range ({value!r}; {RANGES[key]})")
    if m.hardware_aware and m.precision == "fp32":
        raise QsnnError("config key 'model.hardware_aware' needs an integer precision (int2/4/8)")
    if t.device not in ("auto", "cpu") and not t.device.startswith("cuda"):
        raise QsnnError(
            f"config key 'train.device' is '{t.device}', expected auto, cpu or cuda[:N]"
        )
    return cfg


RANGES = {
    "data.time_steps": ">= 1", "data.val_fraction": "in [0, 1)", "data.frame_size": ">= 1",
    "data.rate_seed": "in 1..2^32-1", "model.beta": "in [0, 1]", "model.threshold": "> 0",
    "model.leak_frac_bits": "in 1..16", "model.slope": "> 0", "model.dropout": "in [0, 1)",
    "data.max_train": ">= 1 or null", "data.max_test": ">= 1 or null",
    "train.seed": "in 0..2^32-1", "train.epochs": ">= 1", "train.batch_size": ">= 1",
    "train.eval_batch_size": ">= 1", "train.lr": "> 0", "train.cosine_period_epochs": "> 0",
    "train.restart_epochs": ">= 1", "train.restart_mult": ">= 1", "train.step_epochs": ">= 1",
    "train.grad_clip": "> 0 or null", "train.weight_clip": "> 0 or null",
}


def from_dict(raw: dict[str, Any]) -> RunConfig:
    """Build and validate a :class:`RunConfig` from a nested dict."""
    if not isinstance(raw, dict):
        raise QsnnError("config must be a mapping with sections data, model, train")
    for key in raw:
        if key != "name" and key not in SECTIONS:
            raise QsnnError(f"unknown config key '{key}' (valid: name, {', '.join(SECTIONS)})")
    sections = {k: _build_section(c, raw.get(k) or {}, k) for k, c in SECTIONS.items()}
    name = _check_type("name", raw.get("name", "run"), str)
    return validate(RunConfig(name=name, **sections))


def resolve(spec: str | Path) -> Path:
    """The config file ``spec`` names: an existing file, else a shipped config's name
    (``digits`` or ``digits.yaml``: ``configs/*.yaml``, installed with the package)."""
    p = Path(spec)
    if p.is_file():
        return p
    configs = shipped()
    if p.parent == Path(".") and p.name.removesuffix(".yaml") in configs:
        return configs[p.name.removesuffix(".yaml")]
    raise QsnnError(f"config file not found: {p} (shipped configs, by name: "
                    f"{', '.join(configs)})")


def load(path: str | Path) -> RunConfig:
    """Load a YAML config: a file path or a shipped config's name (:func:`resolve`)."""
    p = resolve(path)
    try:
        raw = yaml.safe_load(p.read_bytes().decode("utf-8"))
    except UnicodeDecodeError:
        raise QsnnError(f"config file {p} is not UTF-8 text") from None
    except OSError as exc:
        raise QsnnError(f"cannot read config file {p}: {exc.strerror}") from None
    except yaml.YAMLError as exc:
        raise QsnnError(f"config file {p} is not valid YAML: {exc}") from None
    return from_dict(raw or {})


def apply_overrides(cfg: RunConfig, overrides: list[str]) -> RunConfig:
    """Apply ``section.key=value`` overrides (values parsed as YAML scalars)."""
    raw = cfg.to_dict()
    for item in overrides:
        if "=" not in item:
            raise QsnnError(f"override '{item}' must look like section.key=value")
        path, text = item.split("=", 1)
        parts = path.strip().split(".")
        if parts == ["name"]:
            raw["name"] = text
            continue
        if len(parts) != 2 or parts[0] not in SECTIONS:
            raise QsnnError(f"unknown config key '{path}' (use data.*, model.* or train.*)")
        try:
            value = yaml.safe_load(text)
        except yaml.YAMLError:
            value = text
        raw[parts[0]][parts[1]] = value
    return from_dict(raw)


def dump(cfg: RunConfig) -> str:
    """YAML text of the resolved config (stable key order)."""
    return yaml.safe_dump(cfg.to_dict(), sort_keys=False)
