"""NIR export of an IR graph (float NIR nodes for a discrete-time network, dt = 1).

Mapping: Linear -> ``nir.Linear`` (``nir.Affine`` when the LIF has a bias and no pool),
Conv2d -> ``nir.Conv2d`` (the bias, divided by K^2, on the conv when a pool follows),
SumPool -> ``nir.SumPool2d``, Flatten -> ``nir.Flatten``, LIF -> ``nir.LIF`` with
``tau = 1 / (1 - beta)``, ``r = tau``, ``v_leak = 0``, ``v_threshold = theta`` (so the
forward-Euler step with dt = 1 is ``v <- beta v + I``), or ``nir.IF`` for beta = 1.

NIR cannot say everything the IR says; the graph's metadata records it: reset by
subtraction (NIR neurons reset to ``v_reset``), the reset taken from the previous
membrane, the floor arithmetic of the integer leak, saturating B-bit membranes and all
bit widths. ``model.json`` stays the exact specification.
"""

from __future__ import annotations

from pathlib import Path

import nir
import numpy as np

from qsnn.atomic import atomic_write
from qsnn.export.ir import LIF, Conv2d, Flatten, Graph, Linear, SumPool
from qsnn.train.lif import beta_of

LIMITS = ("NIR cannot express: reset by subtraction (qsnn's default; NIR resets to v_reset), "
          "the reset decided from the previous membrane, the integer floor leak, saturating "
          "membranes and bit widths (weights, membranes). model.json + weights.npz is the "
          "exact integer specification.")


def _full(values: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    v = values.astype(np.float32).reshape(-1, *([1] * (len(shape) - 1)))
    return np.broadcast_to(v, shape).copy()


def _lif_node(node: LIF) -> nir.NIRNode:
    beta = beta_of(node.leak, node.leak_param, node.frac_bits)
    shape = tuple(node.shape)
    thr = _full(node.theta, shape)
    meta = {"reset": node.reset, "membrane_bits": node.membrane_bits, "leak": node.leak,
            "leak_param": node.leak_param, "frac_bits": node.frac_bits}
    if beta >= 1.0:
        return nir.IF(r=np.ones(shape, np.float32), v_threshold=thr,
                      v_reset=np.zeros(shape, np.float32), metadata=meta)
    tau = np.full(shape, 1.0 / (1.0 - beta), np.float32)
    return nir.LIF(tau=tau, r=tau.copy(), v_leak=np.zeros(shape, np.float32),
                   v_threshold=thr, v_reset=np.zeros(shape, np.float32), metadata=meta)


def _blocks(graph: Graph) -> list[list]:
    out, cur = [], []
    for n in graph.nodes:
        cur.append(n)
        if isinstance(n, (LIF, Flatten)):
            out.append(cur)
            cur = []
    return out


def to_nir(graph: Graph) -> nir.NIRGraph:
    """The NIR graph of an IR graph."""
    nodes: dict[str, nir.NIRNode] = {
        "input": nir.Input(input_type={"input": np.array(graph.input.shape)})}
    order = ["input"]
    shape = tuple(graph.input.shape)
    for block in _blocks(graph):
        lif = block[-1] if isinstance(block[-1], LIF) else None
        pool = next((n.kernel for n in block if isinstance(n, SumPool)), 1)
        for n in block:
            if isinstance(n, Flatten):
                nodes[n.name] = nir.Flatten(input_type={"input": np.array(shape)}, start_dim=0)
            elif isinstance(n, Linear):
                w = n.weight.astype(np.float32)
                if lif is not None and lif.bias is not None:
                    nodes[n.name] = nir.Affine(weight=w, bias=lif.bias.astype(np.float32))
                else:
                    nodes[n.name] = nir.Linear(weight=w)
            elif isinstance(n, Conv2d):
                bias = np.zeros(n.out_channels, np.float32)
                if lif is not None and lif.bias is not None:
                    bias = lif.bias.astype(np.float32) / (pool * pool)
                nodes[n.name] = nir.Conv2d(
                    input_shape=(shape[1], shape[2]), weight=n.weight.astype(np.float32),
                    stride=1, padding=n.padding, dilation=1, groups=1, bias=bias)
            elif isinstance(n, SumPool):
                k = n.kernel
                nodes[n.name] = nir.SumPool2d(kernel_size=np.array([k, k]),
                                              stride=np.array([k, k]), padding=np.array([0, 0]))
            elif isinstance(n, LIF):
                nodes[n.name] = _lif_node(n)
            else:
                continue
            shape = n.out_shape(shape)
            order.append(n.name)
    nodes["output"] = nir.Output(output_type={"output": np.array(shape)})
    order.append("output")
    meta = {"source": "qsnn", "ir_name": graph.name, "time_steps": graph.time_steps,
            "encoding": graph.input.encoding, "dt": 1.0, "note": LIMITS}
    return nir.NIRGraph(nodes=nodes, edges=list(zip(order[:-1], order[1:], strict=True)),
                        metadata=meta)


def write_nir(graph: Graph, path: str | Path) -> None:
    """Write ``model.nir`` (HDF5) atomically."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp")
    nir.write(tmp, to_nir(graph))
    atomic_write(path, lambda f: f.write(tmp.read_bytes()))
    tmp.unlink()
