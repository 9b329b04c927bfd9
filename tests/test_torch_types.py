"""The typed views of torch/Brevitas objects the export reads (``qsnn.export.torch_types``)."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from qsnn.errors import QsnnError
from qsnn.export.torch_types import QuantWeightLayer, modules_of, quant_weight
from qsnn.train.layers import BlockSpec, make_weight_layer


@pytest.mark.parametrize("kind", ["fc", "conv"])
def test_quant_weight_of_a_brevitas_layer_matches_the_protocol(kind) -> None:
    torch.manual_seed(0)
    layer = make_weight_layer(BlockSpec(kind, 3, 5, kernel=3), bits=4, per_channel=True)
    assert isinstance(layer, QuantWeightLayer)
    qw = quant_weight(layer)
    w_int = qw.int()
    assert int(qw.bit_width.item()) == 4 and w_int.abs().max() <= 7
    assert torch.equal(w_int * qw.scale, qw.value)  # value = int * power-of-two scale


def test_quant_weight_of_a_float_layer_is_an_error() -> None:
    layer = make_weight_layer(BlockSpec("fc", 3, 5), bits=None, per_channel=False)
    assert not isinstance(layer, QuantWeightLayer)
    with pytest.raises(QsnnError, match="^an fp32 model has no integer weights"):
        quant_weight(layer)


def test_modules_of_keeps_order_and_names_a_foreign_module() -> None:
    mods = nn.ModuleList([nn.Linear(1, 1), nn.Linear(2, 2)])
    assert modules_of(mods, nn.Linear) == list(mods)
    mods.append(nn.ReLU())
    with pytest.raises(QsnnError, match="^expected a Linear module, got ReLU$"):
        modules_of(mods, nn.Linear)
