"""Process-group setup for ``torchrun`` (DDP): NCCL on GPUs, gloo on CPU; rank 0 logs and checkpoints."""
from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as tdist


@dataclass
class DistInfo:
    rank: int = 0
    world: int = 1
    local_rank: int = 0

    @property
    def main(self) -> bool:
        return self.rank == 0

    @property
    def enabled(self) -> bool:
        return self.world > 1


def init_distributed(device: str) -> DistInfo:
    """Join the process group that torchrun describes in the environment (no-op for a single process)."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return DistInfo()
    if not tdist.is_initialized():
        tdist.init_process_group(backend="nccl" if device.startswith("cuda") else "gloo")
    info = DistInfo(tdist.get_rank(), tdist.get_world_size(), int(os.environ.get("LOCAL_RANK", "0")))
    if device.startswith("cuda"):
        torch.cuda.set_device(info.local_rank)
    return info


def resolve_device(name: str, info: DistInfo | None = None) -> str:
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name == "cuda":
        if not torch.cuda.is_available():
            raise RuntimeError("device=cuda requested but no CUDA device is available")
        return f"cuda:{info.local_rank if info else 0}"
    return name


def mean_across(value: float, info: DistInfo, device: str = "cpu") -> float:
    """Average a scalar over ranks (for logging only)."""
    if not info.enabled:
        return value
    t = torch.tensor([value], dtype=torch.float64 if device == "cpu" else torch.float32, device=device)
    tdist.all_reduce(t)
    return float(t.item()) / info.world


def barrier(info: DistInfo) -> None:
    if info.enabled:
        tdist.barrier()
