"""``qsnn import``: a NIR graph (snnTorch, Norse, SpikingJelly, Lava-dl, qsnn) -> deployment IR.

The graph must be a chain of blocks ``[Flatten] (Affine | Linear | Conv2d) [SumPool2d |
AvgPool2d] (LIF | IF | membrane loop | LI | I)`` (:func:`parse`; a membrane loop is qsnn's
form of the subtract and no reset, :class:`qsnn.export.nir_interp.Membrane`; the
non-spiking LI and I only as the last layer, the readout); anything else is one error
line naming the node.
Per block, with the float network of :mod:`qsnn.export.nir_interp` at time step ``dt``
(``beta = 1 - dt/tau``, input gain ``g = dt r / tau``; IF: beta = 1, ``g = dt r``)::

    s      = 2^ceil(log2(max|W| / (2^(b-1) - 1)))   (1 if W is already b-bit integers)
    W_int  = clip(round(W / s))                      power-of-two scale, b bits, narrow range
    unit_c = g_c * s * x_scale / (K^2 for AvgPool)   x_scale = input scale (first block), else 1
    theta  = clamp(round(v_threshold_c / unit_c), 1, 2^20)
    bias   = round(g_c * b_c * (K^2 for SumPool) / unit_c - floor_bias)
    leak   = mult, m = round(beta * 2^8)             (qsnn files: their own leak/reset/widths)
    reset  = zero                                    (LIF/IF: NIR resets to v_reset = 0 after
                                                      a spike = the IR's zero reset)

An LI/I readout (prediction = argmax of its membrane after the last step) becomes a
spiking LIF with the same beta and gain, reset ``subtract`` and one threshold theta_r
(float, in the LI's membrane units) chosen by ``qsnn.export.import_runner`` on calibration
images: the spike counts of the integer network rate-decode the membrane, an
approximation whose prediction agreement the import report states.

A membrane loop (``u = U(I + L(u)[t-1] + F(s)[t-1])``, ``s = neuron(u)``) needs U = identity,
L = beta * identity (one beta per layer), a memoryless LIF neuron (tau = dt: it fires on
``r u > v_threshold``, so theta = v_threshold / r, gain g = 1) and F = -theta * identity
(reset ``subtract``) or no F (reset ``none``).

What changes (reported per layer in ``import_report.json``): weight rounding and clipping,
threshold and bias rounding, beta rounded to m/2^F and the floor in the integer leak.
qsnn's own ``model.nir`` carries its exact integers in node metadata (reset, leak,
leak_param, frac_bits, membrane_bits, floor_bias) and comes back as the same IR.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

import nir
import numpy as np

from qsnn.errors import QsnnError
from qsnn.export.ir import LIF, Conv2d, Flatten, Leak, Linear, Reset, SumPool
from qsnn.export.nir_interp import Membrane
from qsnn.train.lif import MAX_THETA_INT, beta_of, quantize_beta

SUPPORTED = ("Affine, Linear, Conv2d, SumPool2d, AvgPool2d, Flatten, LIF, IF, membrane loops, "
             "LI and I as the last layer")
WHY = {
    "CubaLIF": "synaptic current (CubaLIF) has no counterpart in the integer LIF",
    "CubaLI": "synaptic current (CubaLI) has no counterpart in the integer LIF",
    "Delay": "delays are not supported",
    "NIRGraph": "a subgraph (a recurrent layer) is not supported",
}
READOUTS = (nir.LI, nir.I)

RESET_NOTES: dict[str, str] = {  # keyed by Reset (a str enum) or its value
    Reset.ZERO: "NIR reset to 0 right after the spike = the IR's zero reset",
    Reset.SUBTRACT: "membrane loop with reset -theta on the previous spikes = subtract reset",
    Reset.NONE: "membrane loop without a reset = reset none",
}
READOUT_NOTE = ("non-spiking readout -> subtract-reset LIF with a calibrated threshold: "
                "prediction by spike counts instead of the membrane after the last step")


@dataclass
class Block:
    """One ``[Flatten] weight [pool] neuron`` group of NIR nodes (name, node) pairs."""

    weight: tuple[str, nir.NIRNode]
    neuron: tuple[str, nir.NIRNode]
    flatten: str | None = None
    pool: tuple[str, nir.NIRNode] | None = None
    changes: dict[str, Any] = field(default_factory=dict)


def _bad(name: str, what: str) -> QsnnError:
    return QsnnError(f"NIR node '{name}': {what}")


def _pair(value: Any, name: str, what: str) -> int:
    v = np.broadcast_to(np.asarray(value), (2,))
    if v[0] != v[1]:
        raise _bad(name, f"{what} {tuple(int(x) for x in v)} is not square; not supported")
    return int(v[0])


def _check_node(name: str, node: nir.NIRNode) -> None:
    kind = type(node).__name__
    if kind in WHY:
        raise _bad(name, WHY[kind])
    if isinstance(node, Membrane):
        _check_node(name, node.neuron)
        return
    if not isinstance(node, (nir.Affine, nir.Linear, nir.Conv2d, nir.SumPool2d, nir.AvgPool2d,
                             nir.Flatten, nir.LIF, nir.IF, *READOUTS)):
        raise _bad(name, f"node type {kind} is not supported (supported: {SUPPORTED})")
    if isinstance(node, nir.Conv2d):
        if _pair(node.stride, name, "stride") != 1:
            raise _bad(name, f"stride {tuple(int(v) for v in np.broadcast_to(node.stride, 2))} "
                             "is not supported "
                             "(stride 1 only)")
        if _pair(node.dilation, name, "dilation") != 1 or int(node.groups) != 1:
            raise _bad(name, "dilation and groups other than 1 are not supported")
        if node.weight.shape[2] != node.weight.shape[3]:
            raise _bad(name, f"kernel {node.weight.shape[2:]} is not square; not supported")
    if isinstance(node, (nir.SumPool2d, nir.AvgPool2d)):
        k = _pair(node.kernel_size, name, "kernel")
        if _pair(node.stride, name, "stride") != k or _pair(node.padding, name, "padding"):
            raise _bad(name, "only non-overlapping pooling (stride = kernel, no padding) is "
                             "supported")
    if isinstance(node, (nir.LIF, nir.IF)) and np.any(np.asarray(node.v_reset) != 0):
        raise _bad(name, "v_reset other than 0 is not supported")
    if isinstance(node, (nir.LIF, nir.LI)) and np.any(np.asarray(node.v_leak) != 0):
        raise _bad(name, "v_leak other than 0 is not supported")


def parse(nodes: list[tuple[str, nir.NIRNode]]) -> list[Block]:
    """Group a chain into blocks; one error line for anything the IR cannot hold."""
    blocks: list[Block] = []
    flat = weight = pool = None
    for name, node in nodes:
        _check_node(name, node)
        if isinstance(node, nir.Flatten):
            if weight is not None or flat is not None:
                raise _bad(name, "Flatten must come before a weight layer")
            flat = name
        elif isinstance(node, (nir.Affine, nir.Linear, nir.Conv2d)):
            if weight is not None:
                raise _bad(name, "two weight layers without a neuron layer between them")
            weight = (name, node)
        elif isinstance(node, (nir.SumPool2d, nir.AvgPool2d)):
            if weight is None or not isinstance(weight[1], nir.Conv2d) or pool is not None:
                raise _bad(name, "pooling is supported only right after a Conv2d")
            pool = (name, node)
        else:
            if weight is None:
                raise _bad(name, "a neuron layer must follow a weight layer")
            blocks.append(Block(weight, (name, node), flat, pool))
            flat = weight = pool = None
    if weight is not None or flat is not None or not blocks:
        raise QsnnError("NIR graph must end with a neuron layer (LIF, IF, LI or I) after its "
                        "weights")
    for block in blocks[:-1]:
        if isinstance(block.neuron[1], READOUTS):
            raise _bad(block.neuron[0], "a non-spiking LI/I passes real values to the next "
                                        "layer; supported only as the last layer (the readout)")
    return blocks


def ir_name(name: str, used: set[str]) -> str:
    """An IR node name from a NIR key: word characters, not starting with a digit, unique."""
    out = re.sub(r"\W", "_", name) or "node"
    out = f"n{out}" if out[0].isdigit() else out
    base, i = out, 1
    while out in used:
        out, i = f"{base}_{i}", i + 1
    used.add(out)
    return out


def _per_channel(values: Any, shape: tuple[int, ...], name: str, what: str) -> np.ndarray:
    v = np.broadcast_to(np.asarray(values, np.float64), shape).reshape(shape[0], -1)
    if np.any(v != v[:, :1]):
        raise _bad(name, f"{what} differs within a channel; not supported")
    return v[:, 0].copy()


def neuron_params(name: str, node: nir.NIRNode, shape: tuple[int, ...], dt: float,
                  readout_theta: float | None = None
                  ) -> tuple[float, np.ndarray, np.ndarray, str]:
    """(beta, input gain g_c, threshold_c, reset) of a LIF/IF (or an LI/I readout with
    threshold ``readout_theta``) under forward Euler at ``dt``, or of a membrane loop
    (:func:`membrane_params`)."""
    if isinstance(node, Membrane):
        return membrane_params(name, node, shape, dt)
    r = _per_channel(node.r, shape, name, "r")
    if isinstance(node, READOUTS):
        if readout_theta is None:
            raise _bad(name, "an LI/I readout needs a calibrated threshold")
        theta, reset = np.full(shape[0], float(readout_theta)), Reset.SUBTRACT
    else:
        theta, reset = _per_channel(node.v_threshold, shape, name, "v_threshold"), Reset.ZERO
    if isinstance(node, (nir.IF, nir.I)):
        return 1.0, dt * r, theta, reset
    tau = np.asarray(node.tau, np.float64)
    if np.any(tau != tau.flat[0]):
        raise _bad(name, "per-neuron time constants are not supported (one leak per layer)")
    beta = 1.0 - dt / float(tau.flat[0])
    if not 0.0 <= beta <= 1.0:
        raise _bad(name, f"tau = {float(tau.flat[0]):g} gives beta = {beta:g} at dt = {dt:g} "
                         "(outside 0..1); give the time step with --dt")
    return beta, dt * r / float(tau.flat[0]), theta, reset


def _diagonal(name: str, node: nir.NIRNode, what: str) -> np.ndarray:
    """The per-channel gains of a diagonal Linear/Affine or 1x1 Conv2d (zero bias)."""
    w = np.asarray(node.weight, np.float64)
    if w.ndim == 4 and w.shape[2:] != (1, 1):
        raise _bad(name, f"{what}: a membrane loop needs a 1x1 kernel, not {w.shape[2:]}")
    w = w.reshape(w.shape[0], -1)
    bias = np.asarray(getattr(node, "bias", 0.0), np.float64)
    if w.shape[0] != w.shape[1] or np.any(w != np.diag(np.diag(w))) or np.any(bias != 0):
        raise _bad(name, f"{what} of a membrane loop must be diagonal without bias")
    return np.diag(w).copy()


def membrane_params(name: str, node: Membrane, shape: tuple[int, ...], dt: float
                    ) -> tuple[float, np.ndarray, np.ndarray, str]:
    """(beta, gain 1, threshold, subtract|none) of a membrane loop (module docstring)."""
    leak = _diagonal(name, node.leak, "the leak")
    if np.any(_diagonal(name, node.u, "the membrane node") != 1):
        raise _bad(name, "the membrane node of a membrane loop must be an identity")
    if np.any(leak != leak[0]) or not 0.0 <= leak[0] <= 1.0:
        raise _bad(name, "the leak of a membrane loop must be one beta in 0..1 per layer")
    cell = node.neuron
    if not isinstance(cell, nir.LIF) or not np.allclose(dt / np.asarray(cell.tau), 1.0):
        raise _bad(name, f"the neuron of a membrane loop must be a LIF with tau = dt = {dt:g}")
    theta = (_per_channel(cell.v_threshold, shape, name, "v_threshold")
             / _per_channel(cell.r, shape, name, "r"))
    if node.reset is None:
        return float(leak[0]), np.ones(shape[0]), theta, Reset.NONE
    if not np.allclose(_diagonal(name, node.reset, "the reset"), -theta, rtol=1e-6):
        raise _bad(name, "the reset of a membrane loop must subtract the threshold "
                         "(weight -v_threshold/r)")
    return float(leak[0]), np.ones(shape[0]), theta, Reset.SUBTRACT


def weight_scale(w: np.ndarray, bits: int) -> float:
    """Power-of-two scale: 1 if ``w`` already holds ``bits``-bit integers, else the smallest
    that fits max|w| in 2^(bits-1) - 1."""
    lim = 2 ** (bits - 1) - 1
    top = float(np.abs(w).max()) if w.size else 0.0
    if top == 0.0 or (np.array_equal(w, np.round(w)) and top <= lim):
        return 1.0
    return float(2.0 ** np.ceil(np.log2(top / lim)))


def quantize_weight(w: np.ndarray, bits: int) -> tuple[np.ndarray, float, dict[str, Any]]:
    """(W_int int8, scale, what changed) for a float weight."""
    lim = 2 ** (bits - 1) - 1
    s = weight_scale(w, bits)
    q = np.round(w / s)
    clipped = int((np.abs(q) > lim).sum())
    q = np.clip(q, -lim, lim)
    err = np.abs(q * s - w)
    return q.astype(np.int8), s, {"weight_scale": s, "weights_clipped": clipped,
                                  "weight_max_abs_error": float(err.max()) if w.size else 0.0}


def integer_lif(name: str, block: Block, shape: tuple[int, ...], unit: np.ndarray,
                params: tuple[float, np.ndarray, np.ndarray, str], bias: np.ndarray,
                meta: dict[str, Any]) -> LIF:
    """The integer LIF of a block (its ``changes`` filled in); ``params`` as
    :func:`neuron_params` returns them."""
    beta, gain, theta, reset = params
    qsnn = {k: meta[k] for k in ("leak", "leak_param", "frac_bits", "reset") if k in meta}
    leak = str(qsnn.get("leak", Leak.MULT))
    frac = int(qsnn.get("frac_bits", 8))
    param = int(qsnn.get("leak_param", quantize_beta(beta, leak, frac)))
    theta_int = np.clip(np.round(theta / unit), 1, MAX_THETA_INT)
    b_units = gain * bias / unit - float(meta.get("floor_bias", 0.0))
    b_int = np.clip(np.round(b_units), -MAX_THETA_INT, MAX_THETA_INT)
    block.changes.update({
        "beta": beta, "beta_int": beta_of(leak, param, frac), "leak": leak,
        "leak_param": param, "frac_bits": frac,
        "reset": str(qsnn.get("reset", reset)),
        "reset_note": "qsnn metadata" if "reset" in qsnn else RESET_NOTES[reset],
        "theta_max_rel_error": float(np.max(np.abs(theta_int * unit - theta)
                                            / np.maximum(np.abs(theta), 1e-30))),
        "bias_max_abs_error_units": float(np.max(np.abs(b_int - b_units))) if bias.size else 0.0,
    })
    return LIF(name, shape, leak, param, frac, str(qsnn.get("reset", reset)), 32,
               theta_int.astype(np.int32), b_int.astype(np.int32) if b_int.any() else None)


def block_nodes(block: Block, shape: tuple[int, ...], in_scale: float, bits: int, dt: float,
                used: set[str], readout_theta: float | None = None
                ) -> tuple[list, tuple[int, ...]]:
    """IR nodes of one block for an input of ``shape``; returns them and the output shape
    (``readout_theta``: the threshold of an LI/I readout, in its membrane units)."""
    out: list = []
    if block.flatten is not None or (len(shape) > 1 and
                                     not isinstance(block.weight[1], nir.Conv2d)):
        out.append(Flatten(ir_name(block.flatten or "flatten", used)))
        shape = (int(np.prod(shape)),)
    wname, wnode = block.weight
    w_int, s, block.changes = quantize_weight(np.asarray(wnode.weight, np.float64), bits)
    if isinstance(wnode, nir.Conv2d):
        k = w_int.shape[2]
        pad = wnode.padding
        pad = ((k - 1) // 2 if pad == "same" else 0) if isinstance(pad, str) else \
            _pair(pad, wname, "padding")
        layer: Linear | Conv2d = Conv2d(ir_name(wname, used), shape[0], w_int.shape[0], k, pad,
                                        bits, w_int)
    else:
        layer = Linear(ir_name(wname, used), w_int.shape[1], w_int.shape[0], bits, w_int)
    if layer.out_shape(shape)[0] != w_int.shape[0] or (
            isinstance(layer, Linear) and shape != (w_int.shape[1],)):
        raise _bad(wname, f"weight {w_int.shape} does not fit its input {shape}")
    out.append(layer)
    shape = layer.out_shape(shape)
    pool_div, bias_mul = 1, 1
    if block.pool is not None:
        pname, pnode = block.pool
        kp = _pair(pnode.kernel_size, pname, "kernel")
        out.append(SumPool(ir_name(pname, used), kp))
        shape = out[-1].out_shape(shape)
        pool_div, bias_mul = (kp * kp, 1) if isinstance(pnode, nir.AvgPool2d) else (1, kp * kp)
    nname, nnode = block.neuron
    params = neuron_params(nname, nnode, shape, dt, readout_theta)
    gain = params[1]
    bias = np.zeros(shape[0]) if isinstance(wnode, nir.Linear) else np.asarray(
        wnode.bias, np.float64).reshape(-1) * bias_mul
    unit = gain * s * in_scale / pool_div
    cell = nnode.neuron if isinstance(nnode, Membrane) else nnode
    meta = dict(getattr(cell, "metadata", {}) or {})
    meta = {k: v.decode() if isinstance(v, bytes) else v for k, v in meta.items()}
    out.append(integer_lif(ir_name(nname, used), block, shape, unit, params, bias, meta))
    if isinstance(nnode, READOUTS):
        assert readout_theta is not None  # neuron_params() refused a readout without one
        block.changes.update(reset_note=READOUT_NOTE, readout_theta=float(readout_theta))
    return out, shape
