"""NIR export of an IR graph, parameterised so that NIR's own importers run it.

Convention (``docs/spec.md`` §5, "NIR convention"; also in the graph's ``metadata``):
one time step is ``dt = 1e-4`` s (snnTorch's importer hard-codes it; Norse takes it as
``from_nir(graph, dt=1e-4)``), and every neuron is integrated with forward Euler at that
step, as both importers do. The network's input is the integer input of the IR (pixels
``0..pixel_max`` for direct input, 0/1 spikes otherwise), held for ``time_steps`` steps.
With ``beta`` the IR's effective leak (``m / 2^F`` or ``1 - 2^-k``)::

    LIF:  tau = dt / (1 - beta),  r = 1,  v_leak = 0,  v_reset = 0,
          v_threshold = (1 - beta) * theta          (float64, per neuron)
    =>    v <- v + dt/tau (v_leak - v + r I) = beta v + (1 - beta) I,   spike: v > v_threshold

i.e. the membrane in units of ``(1 - beta)``: the same spikes as ``U <- beta U + I`` with
threshold ``theta``. The integer leak rounds (``floor(m U / 2^F)`` loses ``(1 - g/2^F)/2`` on
average, g = gcd(m, 2^F); ``U - (U >> k)`` gains ``(1 - 2^-k)/2``): that mean rounding is
written as a constant bias (:func:`floor_bias`, also in the LIF node's metadata).
snnTorch's importer folds the input gain ``r dt / tau`` into its
threshold (``theta`` again); Norse's ignores ``r`` and applies the gain ``dt / tau``; both
therefore run the file as written. A leak-free layer (beta = 1) becomes ``nir.IF`` with
``r = 1 / dt`` (gain ``dt r = 1``, Norse's IAF gain) and ``v_threshold = theta``.
Weights are the IR's integers (as float32), biases the IR's integer bias plus the floor
bias; Linear -> ``nir.Affine`` (``nir.Linear`` when the bias is zero), Conv2d -> ``nir.Conv2d``
(the bias divided by K^2 when a pool follows), SumPool -> ``nir.SumPool2d``, Flatten ->
``nir.Flatten`` (``start_dim = 0``: NIR shapes have no batch axis; run the importers'
modules per image).

Each LIF node's metadata keeps the exact integer parameters (reset, leak, leak_param,
frac_bits, membrane_bits, floor_bias) so that ``qsnn import`` restores the IR bit for bit;
the graph's
metadata says what NIR cannot express (:data:`LIMITS`).
"""

from __future__ import annotations

import math
from pathlib import Path

import nir
import numpy as np

from qsnn.atomic import atomic_write
from qsnn.export.ir import LIF, Conv2d, Encoding, Flatten, Graph, Leak, Linear, SumPool
from qsnn.train.lif import beta_of

DT = 1e-4  # seconds per time step (snnTorch's importer hard-codes this value)

CONVENTION = (
    "one time step = dt = 1e-4 s, forward Euler; LIF tau = dt/(1-beta), r = 1, v_leak = 0, "
    "v_reset = 0, v_threshold = (1-beta)*theta, so v <- beta*v + (1-beta)*I and a spike is "
    "v > v_threshold; biases include the integer leak's mean rounding (LIF metadata "
    "floor_bias); IF (beta = 1): r = 1/dt, v_threshold = theta; input = the integer "
    "pixels 0..pixel_max (direct) or 0/1 spikes, held for time_steps steps; output = spike "
    "counts, prediction = argmax (lowest index on ties). snnTorch: "
    "snntorch.import_nir.import_from_nir(graph); Norse: norse.torch.from_nir(graph, dt=1e-4)")

LIMITS = (
    "NIR cannot express: reset by subtraction (qsnn's default; NIR resets to v_reset = 0, "
    "as both importers do), the reset decided from the previous membrane, the integer floor "
    "leak (floor(m*U/2^F) or U - (U >> k); NIR leaks are real-valued), saturating membranes, "
    "bit widths (weights, membranes), integer thresholds (written as (1-beta)*theta), the "
    "rate encoder's LFSR. Per-channel thresholds are written per neuron; snnTorch's importer "
    "accepts one threshold per layer and no SumPool2d. model.json + weights.npz is the exact "
    "integer specification; the LIF nodes' metadata keeps its integer parameters.")


def _full(values: np.ndarray, shape: tuple[int, ...], dtype=np.float64) -> np.ndarray:
    v = np.asarray(values, dtype).reshape(-1, *([1] * (len(shape) - 1)))
    return np.broadcast_to(v, shape).copy()


def floor_bias(node: LIF) -> float:
    """Mean rounding of the integer leak per step, as a current: ``-(1 - g/2^F)/2`` for
    ``floor(m U / 2^F)`` (g = gcd(m, 2^F); m U mod 2^F is spread over multiples of g) and
    ``+(1 - 2^-k)/2`` for ``U - floor(U / 2^k)``."""
    if node.leak == Leak.MULT:
        full = 1 << node.frac_bits
        return -(1.0 - math.gcd(node.leak_param, full) / full) / 2
    return (1.0 - 2.0 ** -node.leak_param) / 2


def lif_node(node: LIF) -> nir.NIRNode:
    """``nir.LIF`` (or ``nir.IF`` for beta = 1) in the convention of the module docstring."""
    beta = beta_of(node.leak, node.leak_param, node.frac_bits)
    shape = tuple(node.shape)
    meta = {"reset": node.reset, "membrane_bits": node.membrane_bits, "leak": node.leak,
            "leak_param": node.leak_param, "frac_bits": node.frac_bits,
            "floor_bias": floor_bias(node)}
    zeros = np.zeros(shape, np.float64)
    theta = _full(node.theta, shape)
    if beta >= 1.0:
        return nir.IF(r=np.full(shape, 1.0 / DT), v_threshold=theta, v_reset=zeros,
                      metadata=meta)
    gain = 1.0 - beta  # exact in float64: (2^F - m) / 2^F or 2^-k
    return nir.LIF(tau=np.full(shape, DT / gain), r=np.ones(shape), v_leak=zeros.copy(),
                   v_threshold=theta * gain, v_reset=zeros.copy(), metadata=meta)


def _blocks(graph: Graph) -> list[list]:
    out, cur = [], []
    for n in graph.nodes:
        cur.append(n)
        if isinstance(n, (LIF, Flatten)):
            out.append(cur)
            cur = []
    return out


def _weight_node(n: Linear | Conv2d, lif: LIF, pool: int,
                 shape: tuple[int, ...]) -> nir.NIRNode:
    w = n.weight.astype(np.float32)
    bias = np.zeros(lif.channels) if lif.bias is None else lif.bias.astype(np.float64)
    bias = bias + floor_bias(lif)
    if isinstance(n, Linear):
        if not bias.any():
            return nir.Linear(weight=w)
        return nir.Affine(weight=w, bias=bias.astype(np.float32))
    return nir.Conv2d(input_shape=(shape[1], shape[2]), weight=w, stride=1, padding=n.padding,
                      dilation=1, groups=1, bias=(bias / (pool * pool)).astype(np.float32))


def graph_metadata(graph: Graph) -> dict:
    """The NIR graph's metadata: source, convention, limits, input and readout facts."""
    inp = graph.input
    meta = {"source": "qsnn", "ir_name": graph.name, "time_steps": graph.time_steps,
            "dt": DT, "encoding": inp.encoding, "pixel_max": inp.pixel_max,
            "input_scale": 1.0, "readout": "spike counts, argmax (lowest index on ties)",
            "convention": CONVENTION, "note": LIMITS}
    if inp.encoding == Encoding.RATE:
        meta["lfsr_seed"] = inp.lfsr_seed
    for key in ("dataset", "precision"):
        if isinstance(graph.metadata.get(key), str):
            meta[key] = graph.metadata[key]
    return meta


def to_nir(graph: Graph) -> nir.NIRGraph:
    """The NIR graph of an IR graph (convention of the module docstring)."""
    nodes: dict[str, nir.NIRNode] = {
        "input": nir.Input(input_type={"input": np.array(graph.input.shape)})}
    order = ["input"]
    shape = tuple(graph.input.shape)
    for block in _blocks(graph):
        lif = block[-1]
        pool = next((n.kernel for n in block if isinstance(n, SumPool)), 1)
        for n in block:
            if isinstance(n, Flatten):
                nodes[n.name] = nir.Flatten(input_type={"input": np.array(shape)}, start_dim=0)
            elif isinstance(n, (Linear, Conv2d)):
                nodes[n.name] = _weight_node(n, lif, pool, shape)
            elif isinstance(n, SumPool):
                k = n.kernel
                nodes[n.name] = nir.SumPool2d(kernel_size=np.array([k, k]),
                                              stride=np.array([k, k]), padding=np.array([0, 0]))
            elif isinstance(n, LIF):
                nodes[n.name] = lif_node(n)
            else:
                continue
            shape = n.out_shape(shape)
            order.append(n.name)
    nodes["output"] = nir.Output(output_type={"output": np.array(shape)})
    order.append("output")
    return nir.NIRGraph(nodes=nodes, edges=list(zip(order[:-1], order[1:], strict=True)),
                        metadata=graph_metadata(graph))


def write_nir(graph: Graph, path: str | Path) -> None:
    """Write ``model.nir`` (HDF5) atomically."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp")
    nir.write(tmp, to_nir(graph))
    atomic_write(path, lambda f: f.write(tmp.read_bytes()))
    tmp.unlink()
