"""Random-weight IRs of a training config's exact network, for tests and benches where
the dataset or a trained checkpoint is not on the machine (MNIST, DVS Gesture).

:func:`config_ir` builds the config's :class:`~qsnn.train.model.QSNN` (random
initialisation, eval mode) on the dataset's input geometry, lowers and folds it with the
exporter's own code (:func:`qsnn.export.runner.lower_and_fold`, every pass checked on the
random inputs), then sets each LIF's θ so that it fires but not everywhere (per channel,
the ``quantile`` of its membranes on the golden model, as :func:`qsnn.testing.random_net`
does: an untrained network is silent or saturated) and assigns the minimal membrane
widths. Everything else (layers, kernels, padding, pooling, leak, reset, encoder, T,
classes) is what ``qsnn export`` of a trained run of that config would give.
"""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import numpy as np
import torch

from qsnn import config
from qsnn.data import dvs, idx
from qsnn.data.digits import load_digits_dataset
from qsnn.errors import QsnnError
from qsnn.export.ir import Encoding, Graph
from qsnn.export.runner import assign_widths, lower_and_fold
from qsnn.testing import _calibrate, random_inputs, save_ir
from qsnn.train.model import QSNN

#: IDX datasets: 28 x 28 grey images (the files' header says so; the loader checks it)
IDX_SHAPE = (1, 28, 28)


def geometry(cfg: config.RunConfig) -> tuple[tuple[int, ...], int, int]:
    """(input shape (C, H, W), classes, pixel_max) of the config's dataset, without its
    files (digits is embedded and loaded)."""
    name = cfg.data.dataset
    if name in ("mnist", "fashion-mnist"):
        return IDX_SHAPE, idx.NUM_CLASSES, idx.PIXEL_MAX
    if name == "dvs-gesture":
        f = cfg.data.frame_size
        return (dvs.NUM_POLARITIES, f, f), dvs.NUM_CLASSES, 1
    if name == "digits":
        d = load_digits_dataset(None)
        return d.input_shape, d.num_classes, d.pixel_max
    raise QsnnError(f"config dataset {name!r}: no known input geometry")


def config_ir(config_path: str | Path, build: str | Path, *, images: int = 8, seed: int = 0,
              quantile: float = 0.9) -> Graph:
    """The config's network with random weights (torch seed ``seed``) as an IR in
    ``build`` (golden vectors of ``images`` random inputs, random labels); returns it."""
    cfg = config.load(config_path)
    shape, classes, pixel_max = geometry(cfg)
    torch.manual_seed(seed)
    model = QSNN(cfg, shape, classes, pixel_max).eval()
    rng = np.random.default_rng(seed)
    enc_kind = Encoding(cfg.data.encoding)
    x = torch.from_numpy(random_inputs(enc_kind, shape, cfg.data.time_steps, images, rng))
    data = SimpleNamespace(input_shape=shape)
    enc, nodes, _ = lower_and_fold(model, cfg, data, x)  # type: ignore[arg-type]
    meta = {"dataset": cfg.data.dataset, "precision": cfg.model.precision,
            "classes": classes, "random_weights": True}
    graph = assign_widths(enc, nodes, cfg.name, cfg.data.time_steps, None, meta)
    graph = _calibrate(graph, x, quantile)
    return save_ir(graph, Path(build), inputs=x, labels=rng.integers(0, classes, images))
