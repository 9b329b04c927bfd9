"""Typed views of the torch and Brevitas objects the export reads.

torch types ``nn.Module`` attribute access as ``Tensor | Module`` and ``nn.ModuleList``
iteration as ``Module``; Brevitas ships no type information. The export reads these
objects through the small typed helpers here instead of ``cast`` or ``type: ignore``:

- :class:`QuantWeight` / :class:`QuantWeightLayer`: the parts of a Brevitas
  ``QuantLinear`` / ``QuantConv2d`` weight the export uses (integer weight
  ``W_int = value / scale``, its power-of-two ``scale`` and ``bit_width``);
- :func:`quant_weight`: a layer's quantized weight, or a one-line error for a float layer;
- :func:`modules_of`: the modules of an ``nn.ModuleList``, each checked to be of one class.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Protocol, TypeVar, runtime_checkable

from torch import Tensor, nn

from qsnn.errors import QsnnError

M = TypeVar("M", bound=nn.Module)


class QuantWeight(Protocol):
    """A Brevitas ``IntQuantTensor`` weight: ``value = int() * scale`` (float, fake-quantized)."""

    value: Tensor
    scale: Tensor  # power of two, per tensor or per output channel
    bit_width: Tensor  # a scalar

    def int(self) -> Tensor:  # Brevitas's name; shadows the builtin in this class body only
        """The integer weight ``value / scale`` (exact)."""
        ...


@runtime_checkable
class QuantWeightLayer(Protocol):
    """A Brevitas weight layer (``QuantLinear``, ``QuantConv2d``: subclasses of the torch ones)."""

    def quant_weight(self) -> QuantWeight:
        """The layer's current quantized weight."""
        ...


def quant_weight(layer: nn.Module) -> QuantWeight:
    """The quantized weight of a Brevitas weight layer; a float layer has none (an fp32 model)."""
    if not isinstance(layer, QuantWeightLayer):
        raise QsnnError("an fp32 model has no integer weights: train with --precision int2/4/8")
    return layer.quant_weight()


def modules_of(modules: Iterable[nn.Module], cls: type[M]) -> list[M]:
    """The modules of ``modules`` (e.g. an ``nn.ModuleList``) as ``cls`` instances, in order."""
    out: list[M] = []
    for m in modules:
        if not isinstance(m, cls):
            raise QsnnError(f"expected a {cls.__name__} module, got {type(m).__name__}")
        out.append(m)
    return out
