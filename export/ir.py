"""The deployment IR: small frozen dataclasses with integer fields (model.json + weights.npz).

A graph is an input encoder, a list of nodes run in order, and a readout::

    Input ─► (Linear | Conv2d) ─► [SumPool] ─► LIF ─► [Flatten] ─► ... ─► LIF ─► Readout

Every array is an integer numpy array; no floating-point scale survives. The update
order and arithmetic are those of ``docs/spec.md`` §1 (and :mod:`qsnn.export.golden`,
which runs a graph). ``docs/spec.md`` §5 documents every field.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from enum import Enum
from typing import Any, ClassVar

import numpy as np

IR_FORMAT = "qsnn-ir"
IR_VERSION = 1
MAX_MEMBRANE_BITS = 32


class Choice(str, Enum):
    """A str-valued enum: members compare equal to (and serialise as) their JSON/YAML
    spelling, so ``node.reset == Reset.ZERO`` holds for the plain string ``"zero"``."""

    def __str__(self) -> str:
        return str(self.value)

    @classmethod
    def values(cls) -> tuple[str, ...]:
        """The spellings, in declaration order."""
        return tuple(m.value for m in cls)

    @property
    def code(self) -> int:
        """The RTL parameter value: the member's position (``ENC``, ``RESET_MODE``,
        ``LEAK_MULT`` of ``hw/rtl``)."""
        return list(type(self)).index(self)

    @classmethod
    def from_code(cls, code: int) -> Choice:
        """The member whose RTL parameter value is ``code``."""
        return list(cls)[int(code)]


class Encoding(Choice):
    """Input encoding of the first layer (``InputEncoder.encoding``; RTL ``ENC``)."""

    DIRECT = "direct"
    RATE = "rate"
    EVENTS = "events"


class Reset(Choice):
    """LIF reset mode (``LIF.reset``; RTL ``RESET_MODE``): subtract theta, set to zero,
    or none."""

    SUBTRACT = "subtract"
    ZERO = "zero"
    NONE = "none"


class Leak(Choice):
    """LIF leak form (``LIF.leak``; RTL ``LEAK_MULT``): U - (U >>> k), or (m U) >>> F."""

    SHIFT = "shift"
    MULT = "mult"


def conv_out_size(size: int, kernel: int, padding: int) -> int:
    """Output rows (or columns) of a stride-1 convolution: size + 2 padding - kernel + 1."""
    return size + 2 * padding - kernel + 1


def pool_out_size(size: int, kernel: int) -> int:
    """Output rows (or columns) of non-overlapping kernel x kernel pooling: floor."""
    return size // kernel


def _arr_eq(a: np.ndarray | None, b: np.ndarray | None) -> bool:
    if a is None or b is None:
        return a is None and b is None
    return a.dtype.kind == b.dtype.kind and a.shape == b.shape and bool(np.array_equal(a, b))


class Node:
    """Base of IR nodes: scalar fields go to JSON, array fields to the npz."""

    op: ClassVar[str] = ""
    array_fields: ClassVar[tuple[str, ...]] = ()
    name: str  # every node type declares it (annotation only: Node is not a dataclass)
    __dataclass_fields__: ClassVar[dict[str, Any]]  # the subclasses are dataclasses

    def scalars(self) -> dict[str, Any]:
        """JSON-serialisable fields (arrays excluded), with ``op`` first."""
        out: dict[str, Any] = {"op": self.op}
        for f in dataclasses.fields(self):
            v = getattr(self, f.name)
            if f.name in self.array_fields:
                if f.default is None:
                    out[f"has_{f.name}"] = v is not None
                continue
            if isinstance(v, tuple):
                v = [int(x) for x in v]
            elif isinstance(v, np.integer):
                v = int(v)
            out[f.name] = v
        return out

    def arrays(self) -> dict[str, np.ndarray]:
        """Array fields keyed ``<node name>.<field>`` (None fields omitted)."""
        return {f"{self.name}.{k}": getattr(self, k) for k in self.array_fields
                if getattr(self, k) is not None}

    def out_shape(self, shape: tuple[int, ...]) -> tuple[int, ...]:
        """Shape of this node's output for an input of ``shape`` (per image and step);
        the input shape is not checked (``validate`` does)."""
        return tuple(shape)

    def __eq__(self, other: object) -> bool:
        if type(other) is not type(self):
            return NotImplemented
        return self.scalars() == other.scalars() and all(
            _arr_eq(getattr(self, k), getattr(other, k)) for k in self.array_fields)

    __hash__ = None  # type: ignore[assignment]  # unhashable, as eq=True dataclasses


@dataclass(frozen=True, eq=False)
class InputEncoder(Node):
    """How images become first-layer inputs.

    direct: x_j[t] = p_j (integer pixel 0..pixel_max) every step;
    rate:   x_j[t] = (r[t, j] * pixel_max < p_j * 256), r from the LFSR of ``qsnn.lfsr``
            seeded with ``lfsr_seed`` for every image;
    events: x[t] = binary event frame t.
    """

    op: ClassVar[str] = "input"
    name: str
    encoding: str           # an :class:`Encoding` spelling
    shape: tuple[int, ...]  # (C, H, W) of one image / frame
    pixel_max: int
    lfsr_seed: int = 0


@dataclass(frozen=True, eq=False)
class Linear(Node):
    """I_i = sum_j W_ij x_j; ``weight`` [out, in] signed, |W| <= 2^(weight_bits-1) - 1."""

    op: ClassVar[str] = "linear"
    array_fields: ClassVar[tuple[str, ...]] = ("weight",)
    name: str
    in_features: int
    out_features: int
    weight_bits: int
    weight: np.ndarray = field(repr=False)

    def out_shape(self, shape: tuple[int, ...]) -> tuple[int, ...]:
        return (self.out_features,)


@dataclass(frozen=True, eq=False)
class Conv2d(Node):
    """I[o, y, x] = sum_{c,i,j} W[o, c, i, j] x[c, y + i - padding, x + j - padding] (stride 1,
    zero padding); ``weight`` [out, in, K, K]."""

    op: ClassVar[str] = "conv2d"
    array_fields: ClassVar[tuple[str, ...]] = ("weight",)
    name: str
    in_channels: int
    out_channels: int
    kernel: int
    padding: int
    weight_bits: int
    weight: np.ndarray = field(repr=False)

    def out_shape(self, shape: tuple[int, ...]) -> tuple[int, ...]:
        return (self.out_channels, conv_out_size(shape[1], self.kernel, self.padding),
                conv_out_size(shape[2], self.kernel, self.padding))


@dataclass(frozen=True, eq=False)
class SumPool(Node):
    """Sum over non-overlapping ``kernel`` x ``kernel`` windows (average pooling with its
    1/K^2 folded into the LIF threshold and bias)."""

    op: ClassVar[str] = "sumpool"
    name: str
    kernel: int

    def out_shape(self, shape: tuple[int, ...]) -> tuple[int, ...]:
        return (shape[0], pool_out_size(shape[1], self.kernel),
                pool_out_size(shape[2], self.kernel))


@dataclass(frozen=True, eq=False)
class Flatten(Node):
    """Row-major (C, H, W) -> (C*H*W,)."""

    op: ClassVar[str] = "flatten"
    name: str

    def out_shape(self, shape: tuple[int, ...]) -> tuple[int, ...]:
        return (math.prod(shape),)


@dataclass(frozen=True, eq=False)
class LIF(Node):
    """LIF neurons of ``docs/spec.md`` §1 on the preceding current I (+ ``bias``).

    ``theta`` and ``bias`` hold one value per channel (the first axis of ``shape``);
    leak ``shift``: U - (U >>> leak_param); ``mult``: (leak_param * U) >>> frac_bits.
    The membrane saturates to signed ``membrane_bits``.
    """

    op: ClassVar[str] = "lif"
    array_fields: ClassVar[tuple[str, ...]] = ("theta", "bias")
    name: str
    shape: tuple[int, ...]
    leak: str               # a :class:`Leak` spelling
    leak_param: int
    frac_bits: int
    reset: str              # a :class:`Reset` spelling
    membrane_bits: int
    theta: np.ndarray = field(repr=False)
    bias: np.ndarray | None = field(default=None, repr=False)

    @property
    def channels(self) -> int:
        """Number of per-channel parameters (first axis of ``shape``)."""
        return self.shape[0]


@dataclass(frozen=True, eq=False)
class Readout(Node):
    """Spike counts C_i = sum_t s_i[t] of the last LIF; prediction argmax, lowest index on ties."""

    op: ClassVar[str] = "readout"
    name: str
    classes: int


NODE_TYPES: dict[str, type[Node]] = {
    cls.op: cls for cls in (Linear, Conv2d, SumPool, Flatten, LIF, Readout)
}


@dataclass(frozen=True, eq=False)
class Graph:
    """A whole deployment model."""

    name: str
    time_steps: int
    input: InputEncoder
    nodes: tuple[Node, ...]
    metadata: dict[str, Any] = field(default_factory=dict)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Graph):
            return NotImplemented
        return (self.name, self.time_steps, self.metadata) == (
            other.name, other.time_steps, other.metadata
        ) and self.input == other.input and len(self.nodes) == len(other.nodes) and all(
            a == b for a, b in zip(self.nodes, other.nodes, strict=True))

    __hash__ = None  # type: ignore[assignment]  # unhashable, as eq=True dataclasses

    def lifs(self) -> list[LIF]:
        """The LIF layers in order."""
        return [n for n in self.nodes if isinstance(n, LIF)]

    @property
    def classes(self) -> int:
        """Number of output classes."""
        return self.nodes[-1].classes  # type: ignore[attr-defined]  # Readout is last

    def replace(self, **changes: Any) -> Graph:
        """A copy with fields replaced."""
        return dataclasses.replace(self, **changes)
