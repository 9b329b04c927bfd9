"""Run a NIR graph with the importers of snnTorch and Norse, as a user of those tools would:
the input held for ``steps`` steps, output spike counts summed over the steps.

NIR shapes have no batch axis, so the importers' modules run one image at a time. With
``batched=True`` the whole batch runs at once: every ``torch.nn.Flatten`` of the imported
network (the one module whose meaning depends on the batch axis: NIR's ``start_dim`` and
``end_dim`` count from the first per-image axis) is replaced by the same flatten shifted by
one axis; every other module is the importer's own. ``test_nir_interop`` checks that the
batched run equals the per-image run.
"""

from __future__ import annotations

import contextlib
import io
from collections.abc import Iterator

import nir
import torch


@contextlib.contextmanager
def one_thread() -> Iterator[None]:
    """torch on one thread (restored after): small ops on a shared 2-core machine run
    several times faster than with two threads per pytest worker."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def batch_flattens(net: torch.nn.Module) -> torch.nn.Module:
    """``net`` with each ``Flatten(s, e)`` changed in place to ``Flatten(s + 1, e + 1)``
    (e < 0 kept; in place, as Norse's executor holds its modules in its graph too)."""
    for module in net.modules():
        if isinstance(module, torch.nn.Flatten):
            module.start_dim += 1
            module.end_dim += 1 if module.end_dim >= 0 else 0
    return net


def _images(x: torch.Tensor, batched: bool) -> list[torch.Tensor]:
    return [x.float()] if batched else list(x.float())


def snntorch_counts(graph: nir.NIRGraph, x: torch.Tensor, steps: int,
                    batched: bool = True) -> torch.Tensor:
    """Spike counts [B, classes] of ``snntorch.import_nir.import_from_nir(graph)``."""
    from snntorch import utils
    from snntorch.import_nir import import_from_nir

    with contextlib.redirect_stdout(io.StringIO()):  # the importer prints its weight scaling
        net = import_from_nir(graph)
    net = batch_flattens(net) if batched else net
    out = []
    with torch.no_grad():
        for image in _images(x, batched):
            utils.reset(net)
            state, total = None, 0  # the executor's state carries recurrent edges
            for _ in range(steps):
                spikes, state = net(image, state)
                total = total + spikes
            out.append(total)
    return (out[0] if batched else torch.stack(out)).round().long()


def norse_counts(graph: nir.NIRGraph, x: torch.Tensor, steps: int, dt: float,
                 batched: bool = True) -> torch.Tensor:
    """Spike counts [B, classes] of ``norse.torch.from_nir(graph, dt=dt)``."""
    import norse.torch

    net = norse.torch.from_nir(graph, dt=dt)
    net = batch_flattens(net) if batched else net
    out = []
    with torch.no_grad():
        for image in _images(x, batched):
            state, total = None, 0
            for _ in range(steps):
                spikes, state = net(image, state)
                total = total + spikes
            out.append(total)
    return (out[0] if batched else torch.stack(out)).round().long()
