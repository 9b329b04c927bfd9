"""Run a NIR graph with the importers of snnTorch and Norse, as a user of those tools would:
per image (NIR shapes have no batch axis), the input held for ``steps`` steps, output
spike counts summed over the steps."""

from __future__ import annotations

import contextlib
import io

import nir
import torch


def snntorch_counts(graph: nir.NIRGraph, x: torch.Tensor, steps: int) -> torch.Tensor:
    """Spike counts [B, classes] of ``snntorch.import_nir.import_from_nir(graph)``."""
    from snntorch import utils
    from snntorch.import_nir import import_from_nir

    with contextlib.redirect_stdout(io.StringIO()):  # the importer prints its weight scaling
        net = import_from_nir(graph)
    out = []
    with torch.no_grad():
        for image in x.float():
            utils.reset(net)
            out.append(sum(net(image)[0] for _ in range(steps)))
    return torch.stack(out).round().long()


def norse_counts(graph: nir.NIRGraph, x: torch.Tensor, steps: int, dt: float) -> torch.Tensor:
    """Spike counts [B, classes] of ``norse.torch.from_nir(graph, dt=dt)``."""
    import norse.torch

    net = norse.torch.from_nir(graph, dt=dt)
    out = []
    with torch.no_grad():
        for image in x.float():
            state, total = None, 0
            for _ in range(steps):
                spikes, state = net(image, state)
                total = total + spikes
            out.append(total)
    return torch.stack(out).round().long()
