"""Device choice and torchrun / DistributedDataParallel setup.

Under ``torchrun`` (``WORLD_SIZE`` > 1) each process joins a process group (NCCL on
CUDA, gloo on CPU), wraps the model in DDP and draws its shard of every epoch from a
``DistributedSampler``. ``train.batch_size`` is per process; rank 0 alone writes files.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist

from qsnn.errors import QsnnError


@dataclass(frozen=True)
class DistInfo:
    """Rank, world size and device of this process."""

    rank: int
    world: int
    device: torch.device

    @property
    def is_main(self) -> bool:
        """True on the process that writes files and prints."""
        return self.rank == 0


def resolve_device(name: str) -> torch.device:
    """``auto`` -> CUDA when present (the local rank's GPU under torchrun), else CPU."""
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
        return torch.device("cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise QsnnError(f"device '{name}' requested but CUDA is not available")
    return torch.device(name)


def setup(device_name: str) -> DistInfo:
    """Join the process group when launched by torchrun; return this process's info."""
    device = resolve_device(device_name)
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return DistInfo(0, 1, device)
    if not dist.is_initialized():
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    if device.type == "cuda":
        torch.cuda.set_device(device)
    return DistInfo(dist.get_rank(), dist.get_world_size(), device)


def teardown() -> None:
    """Leave the process group, if any."""
    if dist.is_initialized():
        dist.destroy_process_group()


def barrier() -> None:
    """Wait for all ranks (no-op when not distributed)."""
    if dist.is_initialized():
        dist.barrier()


def broadcast(value: str) -> str:
    """Rank 0's ``value`` on every rank (itself when not distributed)."""
    if not dist.is_initialized():
        return value
    box = [value]
    dist.broadcast_object_list(box, src=0)
    return box[0]
