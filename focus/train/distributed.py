"""Distributed data parallel (``torchrun``) helpers: process group, rank, device, barriers.

Run any training stage under ``torchrun --nproc_per_node N stages/<stage>.py``: ``torchrun`` sets
``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``, ``MASTER_ADDR`` and ``MASTER_PORT``; :func:`setup`
initialises the process group (``gloo`` on CPU, ``nccl`` on CUDA). Each process takes its share of
every step's batch (``torch.utils.data.DistributedSampler``), gradients are averaged by
``DistributedDataParallel``, and only rank 0 logs, validates and writes checkpoints. Without
``torchrun`` (``WORLD_SIZE`` unset) everything runs in one process and these helpers are no-ops.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist

from focus.devices import resolve_device


@dataclass(frozen=True)
class DistInfo:
    """Where this process stands: ``rank`` of ``world_size`` processes, its ``device``."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    device: torch.device = torch.device("cpu")

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1


def setup(device: str = "cpu") -> DistInfo:
    """Initialise the process group if launched by ``torchrun`` (idempotent)."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local = int(os.environ.get("LOCAL_RANK", "0"))
    dev = resolve_device(device, "train.device", "set train.device: cpu", index=local)
    if world > 1 and not dist.is_initialized():
        backend = "nccl" if dev.type == "cuda" else "gloo"
        if dev.type == "cuda":
            torch.cuda.set_device(dev)
        dist.init_process_group(backend=backend, rank=rank, world_size=world)
    if dist.is_initialized():
        world, rank = dist.get_world_size(), dist.get_rank()
    return DistInfo(rank=rank, world_size=world, local_rank=local, device=dev)


def barrier(info: DistInfo) -> None:
    """Wait for every process (no-op in a single process)."""
    if info.distributed and dist.is_initialized():
        dist.barrier()


def all_reduce_mean(value: torch.Tensor, info: DistInfo) -> torch.Tensor:
    """Mean of ``value`` over processes (a copy; the input is unchanged)."""
    if not (info.distributed and dist.is_initialized()):
        return value
    out = value.detach().clone()
    dist.all_reduce(out, op=dist.ReduceOp.SUM)
    return out / info.world_size


def broadcast_flag(flag: bool, info: DistInfo) -> bool:
    """``flag`` of rank 0, on every rank."""
    if not (info.distributed and dist.is_initialized()):
        return flag
    t = torch.tensor([1 if flag else 0], dtype=torch.int64, device=info.device)
    dist.broadcast(t, src=0)
    return bool(t.item())


def any_flag(flag: bool, info: DistInfo) -> bool:
    """``True`` on every rank if ``flag`` is true on any rank."""
    if not (info.distributed and dist.is_initialized()):
        return flag
    t = torch.tensor([1 if flag else 0], dtype=torch.int64, device=info.device)
    dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return bool(t.item())


def cleanup() -> None:
    if dist.is_initialized():
        dist.destroy_process_group()


__all__ = ["DistInfo", "all_reduce_mean", "any_flag", "barrier", "broadcast_flag", "cleanup", "setup"]
