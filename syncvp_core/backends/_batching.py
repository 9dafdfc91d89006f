"""Running a graph exported with a static batch on inputs of another batch size."""
from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

from .errors import BackendError

Run = Callable[[dict[str, Tensor]], dict[str, Tensor]]


def run_batched(run: Run, feeds: dict[str, Tensor], static_batch: int | None, graph: str) -> dict[str, Tensor]:
    """``run(feeds)`` directly when the graph takes this batch (or any batch: ``static_batch`` None); otherwise
    in slices of ``static_batch`` samples, concatenated. A batch that is not a multiple is refused."""
    b = next(iter(feeds.values())).shape[0]
    if static_batch is None or b == static_batch:
        return run(feeds)
    if b % static_batch:
        raise BackendError(f"{graph} was exported for batch {static_batch}, cannot run batch {b}; re-export with "
                           f"--dynamic-batch or --batch {b}")
    parts = [run({k: v[i:i + static_batch] for k, v in feeds.items()}) for i in range(0, b, static_batch)]
    return {k: torch.cat([p[k] for p in parts]) for k in parts[0]}
