"""Plain PyTorch backend (CPU or CUDA), the reference the other backends are checked against."""
from __future__ import annotations

import torch
from torch import Tensor

from ..models.syncvp import SyncVPModel
from ..triplane import Triplane


class TorchBackend:
    name = "torch"

    def __init__(self, model: SyncVPModel, device: str = "cpu"):
        self.model = model.to(device).eval()
        self.device = device

    @torch.inference_mode()
    def encode(self, modality: str, x: Tensor, anchor: Tensor | None = None) -> Triplane:
        anchor = anchor.to(self.device) if anchor is not None else None
        return self.model.autoencoder(modality).encode(x.to(self.device), anchor)

    @torch.inference_mode()
    def decode(self, modality: str, z: Triplane, anchor: Tensor | None = None) -> Tensor:
        return self.model.autoencoder(modality).decode(z, anchor)

    @torch.inference_mode()
    def denoise(self, x_r, x_d, t, ctx_r, ctx_d, present):
        return self.model.denoiser(x_r, x_d, t, ctx_r, ctx_d, present)
