"""Validation of an IR graph: node order, shapes, dtypes, value ranges and widths.

Order: ``(Linear | Conv2d) [SumPool] LIF`` blocks, ``Flatten`` only before a block
whose input is 3-D (after the input or a LIF), ``Readout`` last with as many classes
as the last LIF has neurons. Every failure is one :class:`QsnnError` line naming the node.
"""

from __future__ import annotations

import numpy as np

from qsnn.errors import QsnnError
from qsnn.export.ir import (
    LIF,
    MAX_MEMBRANE_BITS,
    Conv2d,
    Encoding,
    Flatten,
    Graph,
    Leak,
    Linear,
    Readout,
    Reset,
    SumPool,
)

MAX_TIME_STEPS = 100_000


def _fail(node: object, msg: str) -> None:
    raise QsnnError(f"IR node '{getattr(node, 'name', node)}': {msg}")


def _int_array(node: object, key: str, arr: np.ndarray, shape: tuple[int, ...]) -> None:
    if not isinstance(arr, np.ndarray) or arr.dtype.kind not in "iu":
        _fail(node, f"{key} must be an integer array")
    if arr.shape != shape:
        _fail(node, f"{key} has shape {arr.shape}, expected {shape}")


def _check_weight(node: Linear | Conv2d, shape: tuple[int, ...]) -> None:
    if not 2 <= node.weight_bits <= 8:
        _fail(node, f"weight_bits {node.weight_bits} outside 2..8")
    _int_array(node, "weight", node.weight, shape)
    lim = 2 ** (node.weight_bits - 1) - 1
    if node.weight.size and (int(node.weight.min()) < -lim or int(node.weight.max()) > lim):
        _fail(node, f"weight out of range for {node.weight_bits} bits (|W| <= {lim})")


def _check_lif(node: LIF, shape: tuple[int, ...]) -> None:
    if tuple(node.shape) != shape:
        _fail(node, f"shape {tuple(node.shape)} does not match its input {shape}")
    if node.reset not in Reset.values() or node.leak not in Leak.values():
        _fail(node, f"reset must be one of {Reset.values()} and leak one of {Leak.values()}")
    if not 1 <= node.frac_bits <= 16:
        _fail(node, f"frac_bits {node.frac_bits} outside 1..16")
    lim = 2**node.frac_bits if node.leak == Leak.MULT else 30
    low = 0 if node.leak == Leak.MULT else 1
    if not low <= node.leak_param <= lim:
        _fail(node, f"leak_param {node.leak_param} outside {low}..{lim}")
    if not 2 <= node.membrane_bits <= MAX_MEMBRANE_BITS:
        _fail(node, f"membrane_bits {node.membrane_bits} outside 2..{MAX_MEMBRANE_BITS}")
    _int_array(node, "theta", node.theta, (shape[0],))
    top = 2 ** (node.membrane_bits - 1) - 1
    if int(node.theta.min()) < 1 or int(node.theta.max()) > top:
        _fail(node, f"theta must lie in 1..{top} for {node.membrane_bits}-bit membranes")
    if node.bias is not None:
        _int_array(node, "bias", node.bias, (shape[0],))
        if int(node.bias.min()) < -top or int(node.bias.max()) > top:
            _fail(node, f"bias exceeds the {node.membrane_bits}-bit membrane range")


def _check_input(graph: Graph) -> tuple[int, ...]:
    inp = graph.input
    if inp.encoding not in Encoding.values():
        raise QsnnError(f"IR input: encoding '{inp.encoding}' not one of {Encoding.values()}")
    if len(inp.shape) != 3:
        raise QsnnError(f"IR input: shape {inp.shape} must be (C, H, W)")
    if not 1 <= inp.pixel_max <= 65535:
        raise QsnnError(f"IR input: pixel_max {inp.pixel_max} outside 1..65535")
    if inp.encoding == Encoding.RATE and not 0 < inp.lfsr_seed < 2**32:
        raise QsnnError(f"IR input: lfsr_seed {inp.lfsr_seed} outside 1..2^32-1")
    if not 1 <= graph.time_steps <= MAX_TIME_STEPS:
        raise QsnnError(f"IR: time_steps {graph.time_steps} outside 1..{MAX_TIME_STEPS}")
    return tuple(inp.shape)


def _walk(graph: Graph) -> None:
    shape = _check_input(graph)
    expect = "weight"  # what may come next: weight, pool_or_lif, lif, after_lif
    for node in graph.nodes:
        if isinstance(node, (Linear, Conv2d)):
            if expect not in ("weight", "after_lif"):
                _fail(node, "a weight layer must follow the input, a LIF or a Flatten")
            if isinstance(node, Linear):
                if len(shape) != 1 or node.in_features != shape[0]:
                    _fail(node, f"in_features {node.in_features} does not match input {shape}")
                _check_weight(node, (node.out_features, node.in_features))
            else:
                if len(shape) != 3 or node.in_channels != shape[0]:
                    _fail(node, f"in_channels {node.in_channels} does not match input {shape}")
                k, p = node.kernel, node.padding
                if k < 1 or p < 0 or min(node.out_shape(shape)[1:]) < 1:
                    _fail(node, f"kernel {k} / padding {p} do not fit input {shape}")
                _check_weight(node, (node.out_channels, node.in_channels, k, k))
            shape = node.out_shape(shape)
            expect = "pool_or_lif"
        elif isinstance(node, SumPool):
            if expect != "pool_or_lif" or len(shape) != 3:
                _fail(node, "SumPool must follow a Conv2d")
            k = node.kernel
            if k < 1 or shape[1] % k or shape[2] % k:
                _fail(node, f"kernel {k} does not divide {shape}")
            shape = node.out_shape(shape)
            expect = "lif"
        elif isinstance(node, LIF):
            if expect not in ("pool_or_lif", "lif"):
                _fail(node, "LIF must follow a weight layer or SumPool")
            _check_lif(node, shape)
            expect = "after_lif"
        elif isinstance(node, Flatten):
            if expect not in ("weight", "after_lif") or len(shape) == 1:
                _fail(node, "Flatten must follow the input or a LIF with a 3-D output")
            shape = node.out_shape(shape)
            expect = "weight"
        elif isinstance(node, Readout):
            if expect != "after_lif" or node is not graph.nodes[-1]:
                _fail(node, "Readout must be the last node, after a LIF")
            if shape != (node.classes,):
                _fail(node, f"classes {node.classes} does not match the last LIF {shape}")
            expect = "end"
    if expect != "end":
        raise QsnnError("IR: the graph must end with a Readout node")


def _check_widths(graph: Graph) -> None:
    from qsnn.export.widths import analyze

    lifs = {n.name: n for n in graph.lifs()}
    for w in analyze(graph):
        have = lifs[w.name].membrane_bits
        if have < w.membrane_bits:
            raise QsnnError(
                f"IR node '{w.name}': membrane_bits {have} can overflow (worst case "
                f"[{w.membrane_lo}, {w.membrane_hi}] needs {w.membrane_bits} bits)")


def validate(graph: Graph) -> Graph:
    """Raise :class:`QsnnError` if ``graph`` is not a well-formed, overflow-free IR."""
    names = [n.name for n in graph.nodes]
    from qsnn.config import NAME

    for name in (graph.name, graph.input.name, *names):
        if not isinstance(name, str) or not NAME.match(name):
            raise QsnnError(f"IR: name {name!r} is not 1-100 letters, digits, '_', '-' or '.' "
                            "(names reach file names and generated Verilog)")
    dup = sorted({n for n in names if names.count(n) > 1})
    if dup:
        raise QsnnError(f"IR: node name '{dup[0]}' is used more than once")
    _walk(graph)
    _check_widths(graph)
    return graph
