"""The export's checks of lowering and of every folding pass, each on its own.

The graphs are ``g0`` (the raw graph of ``lower.lower_model``) and ``g_k`` (pass k of
``lower.PASSES`` applied to ``g_(k-1)``). Check 0 compares ``g0``, run by the raw
interpreter (:mod:`qsnn.export.raw_exec`), with the trained model in eval mode; check k
compares ``g_k`` with ``g_(k-1)``, both run by the raw interpreter, so each pass is only
ever compared with its own input and a broken pass fails its own check, no other.

Compared, by exact equality on the same test images, at every time step of every LIF
layer (not only the output counts: a pass that changes a hidden layer's spikes is broken
even where the counts survive; the traces cost little next to running the graphs):

- pass checks: spike trains *and* membranes (both graphs are integer, int64: a pass that
  moves a membrane that never crosses θ, e.g. a bias off by one, is still caught);
- the lowering check: spike trains (the trained model holds membranes in float32, exact
  only below 2^24, spec §5 "Float32 note"; hidden spikes are what the network passes on).

The first difference is located as the lowest image, then the first layer, then the first
step where the compared values differ. Images run in chunks sized from the golden model's
memory estimate plus the traces.
"""

from __future__ import annotations

import dataclasses
import hashlib
import math
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import Tensor

from qsnn.errors import QsnnError
from qsnn.export import golden, lower, raw_exec
from qsnn.export.ir import LIF, Graph, InputEncoder, SumPool
from qsnn.export.lower import AvgPool, BatchNorm, BiasAdd, FloatLIF, RawNode, ScaledWeight
from qsnn.export.raw_exec import RawTrace
from qsnn.train.model import QSNN

LOWERING = "lower_model"
TRACE_BYTES = 48  # per neuron and step: the trained model's, two graphs' traces, compares
SPIKES = "spike trains of every LIF layer at every step"
SPIKES_AND_MEMBRANES = "spike trains and membranes of every LIF layer at every step"


@dataclass(frozen=True)
class Difference:
    """Where two runs first differ: test image, LIF layer, time step, and which values."""

    image: int
    layer: str
    step: int
    values: str  # "spikes" or "membranes"


@dataclass
class PassCheck:
    """One check: which pass, which graphs, its evidence and its verdict."""

    name: str  # LOWERING or a pass name
    graphs: str
    images: int
    layers: list[str]
    changed: list[str]  # what the step did to the graph (see _changed)
    membranes: bool = True  # membranes compared too (not against the trained model)
    unchanged: bool = False  # the pass changed no node: nothing to run or compare
    spikes: int = 0  # spikes in the compared traces of the later graph
    equal: bool = True
    first_difference: Difference | None = None
    error: str | None = None

    def fail(self, error: str) -> None:
        """Mark failed with a reason (when a graph cannot be run or compared)."""
        if self.error is None and self.first_difference is None:
            self.error = error
        self.equal = False

    def message(self) -> str:
        """The one-line reason of a failed check."""
        what = "the lowering" if self.name == LOWERING else f"pass '{self.name}'"
        head = f"export check of {what} failed ({self.graphs})"
        d = self.first_difference
        if d is None:
            return f"{head}: {self.error}"
        return (f"{head}: {d.layer} {d.values} differ first at test image {d.image}, "
                f"step {d.step}")

    def compared(self) -> str:
        """What the check compares."""
        if self.unchanged:
            return "nothing: the pass changed no node (its output is its input)"
        return SPIKES_AND_MEMBRANES if self.membranes else SPIKES

    def to_json(self) -> dict[str, Any]:
        """The ``passes`` entry of ``export_report.json``."""
        d = self.first_difference
        out = {"pass": None if self.name == LOWERING else self.name, "step": self.name,
               "graphs": self.graphs, "images": self.images,
               "compared": self.compared(),
               "layers": self.layers, "changed": self.changed, "spikes": self.spikes,
               "equal": self.equal,
               "first_difference": None if d is None else dict(vars(d))}
        if self.error is not None:
            out["error"] = self.error
        return out


# -- comparing two runs --------------------------------------------------------------------
def _differ(a: Tensor, b: Tensor) -> Tensor:
    """[T, B] mask of (step, image) where two [T, B, ...] tensors differ (exactly)."""
    if a.dtype != b.dtype:  # float32 membranes of the trained model: compare in float64
        a, b = a.double(), b.double()
    return (a != b).flatten(2).any(2)


def first_difference(want: RawTrace, got: RawTrace, first_image: int,
                     membranes: bool = True) -> Difference | None:
    """Lowest image, then first layer, then first step where spikes (or membranes) differ;
    ``first_image`` is the index of the traces' first image."""
    if len(want.spikes) != len(got.spikes):
        raise QsnnError(f"{len(got.spikes)} LIF layers against {len(want.spikes)}")
    found: Difference | None = None
    for name, ws, gs, wm, gm in zip(got.names, want.spikes, got.spikes, want.membranes,
                                    got.membranes, strict=True):
        if ws.shape != gs.shape:
            raise QsnnError(f"{name} has shape {tuple(gs.shape)} against {tuple(ws.shape)}")
        spk = _differ(ws, gs)
        mem = _differ(wm, gm) if membranes else torch.zeros_like(spk)
        bad = (spk | mem).any(0).nonzero()
        if len(bad) == 0 or (found is not None and found.image <= first_image + int(bad[0])):
            continue
        img = int(bad[0])
        step = int((spk[:, img] | mem[:, img]).nonzero()[0])
        found = Difference(first_image + img, name, step,
                           "spikes" if bool(spk[step, img]) else "membranes")
    return found


def trained_trace(model: QSNN, x: Tensor, names: list[str]) -> RawTrace:
    """The trained model's (eval mode) per-layer spikes and (float32) membranes."""
    with torch.no_grad():
        out, tr = model(x, record=True)
    spikes = [s.to(torch.int8) for s in tr.spikes]
    return RawTrace(list(names), spikes, list(tr.membranes), out.sum(0))


# -- chunking ------------------------------------------------------------------------------
def _skeleton(nodes: list[RawNode]) -> list:
    """IR nodes of the same shapes (for the memory estimate only)."""
    out: list = []
    for n in nodes:
        if isinstance(n, ScaledWeight):
            out.append(n.layer)
        elif isinstance(n, AvgPool):
            out.append(SumPool(n.name, n.kernel))
        elif isinstance(n, FloatLIF):
            out.append(LIF(n.name, n.shape, n.leak, 0, n.frac_bits, n.reset, 32, np.ones(1)))
        elif not isinstance(n, (BatchNorm, BiasAdd)):
            out.append(n)
    return out


def chunk_size(enc: InputEncoder, nodes: list[RawNode], steps: int, images: int) -> int:
    """Images per chunk: the golden model's working memory plus the compared traces within
    :data:`golden.BATCH_BYTES`."""
    skeleton = _skeleton(nodes)
    neurons = sum(math.prod(n.shape) for n in skeleton if isinstance(n, LIF))
    per_image = golden.bytes_per_image(Graph("raw", steps, enc, tuple(skeleton), {}))
    per_image += steps * neurons * TRACE_BYTES
    return max(1, min(images, golden.BATCH_BYTES // per_image))


# -- the checks ----------------------------------------------------------------------------
def _changed(before: list[RawNode], after: list[RawNode]) -> list[str]:
    """What a step did, in graph order: ``name: Old -> New`` for each node it replaced,
    ``name: New`` for a node it added, ``name: Old -> removed``; unchanged nodes are the
    same objects in both graphs."""
    kept = {id(n) for n in before} & {id(n) for n in after}
    old = {n.name: type(n).__name__ for n in before if id(n) not in kept}
    out = []
    for n in after:
        if id(n) not in kept:
            was = old.pop(n.name, None)
            out.append(f"{n.name}: {type(n).__name__}" if was is None
                       else f"{n.name}: {was} -> {type(n).__name__}")
    return out + [f"{name}: {kind} -> removed" for name, kind in old.items()]


def _arrays(node: object) -> Iterator[np.ndarray]:
    for f in dataclasses.fields(node):  # type: ignore[arg-type]  # every node is a dataclass
        v = getattr(node, f.name)
        if isinstance(v, np.ndarray):
            yield v
        elif dataclasses.is_dataclass(v):
            yield from _arrays(v)


def fingerprint(nodes: list[RawNode]) -> str:
    """SHA-256 of every array of a graph (nodes are frozen; only arrays can change)."""
    h = hashlib.sha256()
    for n in nodes:
        for a in _arrays(n):
            h.update(f"{n.name}{a.dtype}{a.shape}".encode())
            h.update(np.ascontiguousarray(a).tobytes())
    return h.hexdigest()


def pass_graphs(nodes: list[RawNode]) -> list[tuple[str, list[RawNode]]]:
    """``[(LOWERING, g0), (pass 1, g1), ...]``: the raw graph and each pass's output in
    turn (``lower.PASSES`` as it is at the call). A pass that writes into its input's
    arrays (which every earlier graph shares) is a one-line error naming it."""
    graphs = [(LOWERING, nodes)]
    for name, fn in lower.PASSES:
        before = fingerprint(nodes)
        out = lower.apply(fn, nodes)
        if fingerprint(nodes) != before:
            raise QsnnError(f"export: pass '{name}' wrote into the arrays of its input graph")
        nodes = out
        graphs.append((name, nodes))
    return graphs


def make_checks(graphs: list[tuple[str, list[RawNode]]], images: int) -> list[PassCheck]:
    """One empty check per graph: the lowering, then each pass against its input."""
    layers = [n.name for n in graphs[0][1] if isinstance(n, (FloatLIF, LIF))]
    checks = [PassCheck(LOWERING, "raw graph vs trained model", images, layers,
                        _changed([], graphs[0][1]), membranes=False)]
    for (_, before), (name, after) in zip(graphs[:-1], graphs[1:], strict=True):
        same = [id(n) for n in before] == [id(n) for n in after]
        checks.append(PassCheck(name, f"after {name} vs before {name}", images, layers,
                                _changed(before, after), unchanged=same))
    return checks


def _run(check: PassCheck, enc: InputEncoder, nodes: list[RawNode], steps: int,
         x: Tensor) -> RawTrace | None:
    try:
        return raw_exec.run(enc, nodes, steps, x)
    except QsnnError as exc:
        check.fail(f"the graph cannot run: {exc}")
        return None


def _compare(check: PassCheck, want: RawTrace | None, got: RawTrace | None,
             first_image: int) -> None:
    if got is None:
        return
    check.spikes += int(sum(int(s.sum()) for s in got.spikes))
    if want is None:
        check.fail("not compared: the graph before it cannot run")
        return
    try:
        diff = first_difference(want, got, first_image, check.membranes)
    except QsnnError as exc:
        check.fail(f"the graphs do not match: {exc}")
        return
    if diff is not None and check.first_difference is None:
        check.first_difference, check.equal = diff, False


def run_checks(model: QSNN, enc: InputEncoder, graphs: list[tuple[str, list[RawNode]]],
               steps: int, x: Tensor) -> list[PassCheck]:
    """All checks over the images ``x``, chunk by chunk: every graph runs once per chunk,
    except the output of a pass that changed no node (the same objects as its input)."""
    checks = make_checks(graphs, len(x))
    size = chunk_size(enc, graphs[0][1], steps, len(x))
    for lo in range(0, len(x), size):
        xb = x[lo:lo + size]
        want: RawTrace | None = trained_trace(model, xb, checks[0].layers)
        for check, (_, nodes) in zip(checks, graphs, strict=True):
            if check.unchanged:  # the pass's output is its input: the same trace
                check.spikes += 0 if want is None else sum(int(s.sum()) for s in want.spikes)
                continue
            got = _run(check, enc, nodes, steps, xb)
            _compare(check, want, got, lo)
            want = got
    return checks
