"""Backend selection: ``auto`` | ``torch`` | ``onnxruntime`` | ``tensorrt``."""
from __future__ import annotations

from pathlib import Path

from ..models.syncvp import SyncVPModel
from .torch_backend import TorchBackend

BACKENDS = ("auto", "torch", "onnxruntime", "tensorrt")


class BackendError(RuntimeError):
    """A backend cannot be created; the message says why and how to fix it."""


def create_backend(kind: str, model: SyncVPModel, device: str = "cpu", checkpoint: Path | None = None,
                   **options):
    if kind not in BACKENDS:
        raise BackendError(f"unknown backend {kind!r}; choose one of {BACKENDS}")
    if kind in ("auto", "torch"):
        return TorchBackend(model, device)
    raise BackendError(f"backend {kind!r} is not available in this build")
