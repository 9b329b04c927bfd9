"""NIR export of an IR graph, parameterised so that NIR's own importers run it.

Convention (``docs/spec.md`` §5, "NIR convention"; also in the graph's ``metadata``):
one time step is ``dt = 1e-4`` s (snnTorch's importer hard-codes it; Norse takes it as
``from_nir(graph, dt=1e-4)``), every neuron integrated with forward Euler at that step, as
both importers do. The input is the IR's integer input (pixels ``0..pixel_max`` for direct
input, 0/1 spikes otherwise), held for ``time_steps`` steps; the output is spike counts.
``beta`` is the IR's effective leak (``m / 2^F`` or ``1 - 2^-k``).

**Subtract and no reset** (:func:`membrane_nodes`): NIR's neurons reset to ``v_reset``
right after a spike, so the membrane is kept outside the neuron, in a loop of linear
nodes that NIR's executors run with one step of delay on the recurrent edges::

    <lif>_u     = identity        inputs: I[t], <lif>_leak[t-1], <lif>_reset[t-1]
    <lif>_leak  = beta * identity  on <lif>_u           (edge <lif>_u -> <lif>_leak -> <lif>_u)
    <lif>       = nir.LIF(tau = dt, r = 1, v_threshold = theta, v_leak = v_reset = 0)
    <lif>_reset = -theta * identity on the spikes       (subtract only)
    =>  U[t] = beta U[t-1] + I[t] - theta s[t-1],   s[t] = (U[t] > theta)

which is spec §1's subtract reset (r[t] = s[t-1]: the reset decided from the previous
membrane) and, without ``<lif>_reset``, the ``none`` reset. The neuron ``<lif>`` has
``beta = 1 - dt/tau = 0``: it keeps no state, so its own reset to 0 changes nothing. The
identities are ``nir.Linear`` for vectors and 1x1 ``nir.Conv2d`` for maps (per channel).

**Zero reset** (:func:`lif_node`): spec §1's zero reset from the previous membrane gives
the same spikes as NIR's reset to 0 right after the spike, so the plain neuron serves::

    LIF:  tau = dt / (1 - beta),  r = 1,  v_leak = v_reset = 0,  v_threshold = (1 - beta) theta
    =>    v <- beta v + (1 - beta) I   (the membrane in units of (1 - beta))

(snnTorch folds the input gain ``r dt / tau`` into its threshold, Norse ignores ``r`` and
applies ``dt / tau``: both run it). A leak-free layer is ``nir.IF`` (``r = 1 / dt``).

The integer leak rounds (``floor(m U / 2^F)`` loses ``(1 - g/2^F)/2`` on average,
g = gcd(m, 2^F); ``U - (U >> k)`` gains ``(1 - 2^-k)/2``): that mean is added to the bias
(:func:`floor_bias`). Weights are the IR's integers (as float32), biases the IR's integer
bias plus the floor bias; Linear -> ``nir.Affine`` (``nir.Linear`` when the bias is zero),
Conv2d -> ``nir.Conv2d`` (the bias divided by K^2 when a pool follows), SumPool ->
``nir.SumPool2d``, Flatten -> ``nir.Flatten`` (``start_dim = 0``: NIR shapes have no
batch axis). Each neuron node's metadata keeps the exact integer parameters (reset, leak,
leak_param, frac_bits, membrane_bits, floor_bias) so that ``qsnn import`` restores the IR
bit for bit; the graph's metadata says what NIR cannot express (:data:`LIMITS`).
"""

from __future__ import annotations

import math
from pathlib import Path

import nir
import numpy as np

from qsnn.atomic import atomic_write
from qsnn.export.ir import LIF, Conv2d, Encoding, Flatten, Graph, Leak, Linear, Reset, SumPool
from qsnn.train.lif import beta_of

DT = 1e-4  # seconds per time step (snnTorch's importer hard-codes this value)

CONVENTION = (
    "one time step = dt = 1e-4 s, forward Euler, recurrent edges delayed one step. Subtract "
    "and no reset: the membrane U lives in a loop of linear nodes, <lif>_u (identity; "
    "inputs I[t], <lif>_leak[t-1], <lif>_reset[t-1]), <lif>_leak = beta*identity on U, "
    "<lif>_reset = -theta*identity on the spikes (subtract only), and <lif> = LIF with "
    "tau = dt (beta 0: no state of its own), r = 1, v_threshold = theta: "
    "U[t] = beta*U[t-1] + I[t] - theta*s[t-1], s[t] = U[t] > theta. Zero reset: LIF "
    "tau = dt/(1-beta), r = 1, v_threshold = (1-beta)*theta (IF with r = 1/dt when "
    "beta = 1). Biases include the integer leak's mean rounding (neuron metadata "
    "floor_bias); input = the integer pixels 0..pixel_max (direct) or 0/1 spikes, held for "
    "time_steps steps; output = spike counts, prediction = argmax (lowest index on ties). "
    "snnTorch: snntorch.import_nir.import_from_nir(graph), passing the returned state back "
    "each step; Norse: norse.torch.from_nir(graph, dt=1e-4)")

LIMITS = (
    "NIR cannot express: the integer floor leak (floor(m*U/2^F) or U - (U >> k); NIR leaks "
    "are real-valued: only its mean is written, as a bias), saturating membranes, bit "
    "widths (weights, membranes), integer arithmetic (float32 in the importers), the rate "
    "encoder's LFSR; a neuron's own reset is to v_reset = 0 right after the spike, so the "
    "subtract reset (qsnn's default) and the reset decided from the previous membrane are "
    "written as a recurrent loop of linear nodes, not as a neuron parameter. Per-channel "
    "thresholds are written per neuron; snnTorch's importer accepts one threshold per layer "
    "and no SumPool2d. model.json + weights.npz is the exact integer specification; the "
    "neuron nodes' metadata keeps its integer parameters.")


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


def neuron_metadata(node: LIF) -> dict:
    """The exact integer parameters of an IR LIF (kept on its NIR neuron node)."""
    return {"reset": str(node.reset), "membrane_bits": node.membrane_bits,
            "leak": str(node.leak), "leak_param": node.leak_param,
            "frac_bits": node.frac_bits, "floor_bias": floor_bias(node)}


def lif_node(node: LIF) -> nir.NIRNode:
    """``nir.LIF`` (or ``nir.IF`` for beta = 1) in the zero-reset form of the module
    docstring: the membrane in units of ``(1 - beta)``."""
    beta = beta_of(node.leak, node.leak_param, node.frac_bits)
    shape = tuple(node.shape)
    zeros = np.zeros(shape, np.float64)
    theta = _full(node.theta, shape)
    if beta >= 1.0:
        return nir.IF(r=np.full(shape, 1.0 / DT), v_threshold=theta, v_reset=zeros,
                      metadata=neuron_metadata(node))
    gain = 1.0 - beta  # exact in float64: (2^F - m) / 2^F or 2^-k
    return nir.LIF(tau=np.full(shape, DT / gain), r=np.ones(shape), v_leak=zeros.copy(),
                   v_threshold=theta * gain, v_reset=zeros.copy(), metadata=neuron_metadata(node))


def diagonal_node(values: np.ndarray, shape: tuple[int, ...]) -> nir.NIRNode:
    """A per-channel gain: ``nir.Linear(diag(values))`` for a vector, a 1x1 ``nir.Conv2d``
    with weight ``diag(values)`` for a map (C, H, W)."""
    weight = np.diag(np.asarray(values, np.float32))
    if len(shape) == 1:
        return nir.Linear(weight=weight)
    return nir.Conv2d(input_shape=(shape[1], shape[2]), weight=weight[:, :, None, None],
                      stride=1, padding=0, dilation=1, groups=1,
                      bias=np.zeros(shape[0], np.float32))


def membrane_nodes(node: LIF) -> tuple[dict[str, nir.NIRNode], list[tuple[str, str]]]:
    """The recurrent form of a subtract- or no-reset LIF (module docstring): its nodes and
    its internal edges, loops before the forward edge ``<lif>_u -> <lif>`` (Norse's executor
    returns the last node of its depth-first order: the loops must not end it)."""
    shape, name = tuple(node.shape), node.name
    beta = beta_of(node.leak, node.leak_param, node.frac_bits)
    ones = np.ones(shape[0])
    u, leak, reset = f"{name}_u", f"{name}_leak", f"{name}_reset"
    nodes = {u: diagonal_node(ones, shape), leak: diagonal_node(beta * ones, shape),
             name: nir.LIF(tau=np.full(shape, DT), r=np.ones(shape), v_leak=np.zeros(shape),
                           v_threshold=_full(node.theta, shape), v_reset=np.zeros(shape),
                           metadata=neuron_metadata(node))}
    edges = [(u, leak), (leak, u), (u, name)]
    if node.reset == Reset.SUBTRACT:
        nodes[reset] = diagonal_node(-np.asarray(node.theta, np.float64), shape)
        edges += [(name, reset), (reset, u)]
    return nodes, edges


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


def _neuron(n: LIF, nodes: dict[str, nir.NIRNode], edges: list[tuple[str, str]],
            prev: str) -> None:
    """Add the NIR form of an IR LIF fed by ``prev`` (plain LIF for zero reset)."""
    if n.reset == Reset.ZERO:
        nodes[n.name] = lif_node(n)
        edges.append((prev, n.name))
        return
    part, inner = membrane_nodes(n)
    nodes.update(part)
    edges += [(prev, f"{n.name}_u"), *inner]


def to_nir(graph: Graph) -> nir.NIRGraph:
    """The NIR graph of an IR graph (convention of the module docstring)."""
    nodes: dict[str, nir.NIRNode] = {
        "input": nir.Input(input_type={"input": np.array(graph.input.shape)})}
    edges: list[tuple[str, str]] = []
    prev, shape = "input", tuple(graph.input.shape)
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
                _neuron(n, nodes, edges, prev)
            else:
                continue
            if not isinstance(n, LIF):
                edges.append((prev, n.name))
            shape, prev = n.out_shape(shape), n.name
    nodes["output"] = nir.Output(output_type={"output": np.array(shape)})
    edges.append((prev, "output"))
    return nir.NIRGraph(nodes=nodes, edges=edges, metadata=graph_metadata(graph),
                        type_check=False)


def write_nir(graph: Graph, path: str | Path) -> None:
    """Write ``model.nir`` (HDF5) atomically."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp")
    nir.write(tmp, to_nir(graph))
    atomic_write(path, lambda f: f.write(tmp.read_bytes()))
    tmp.unlink()
