"""The interface the Predictor runs on: encode, decode and ONE joint denoising step.

The DDIM loop, autoregressive rollout and guidance stay in host code (the Predictor), so every backend
(torch eager/compiled, onnxruntime, TensorRT) only has to provide these three calls.
"""
from __future__ import annotations

from typing import Protocol, runtime_checkable

from torch import Tensor

from ..triplane import Triplane


@runtime_checkable
class Backend(Protocol):
    """The seam between the Predictor and an inference engine (:func:`~.select.create_backend` returns one)."""

    name: str
    device: str

    def encode(self, modality: str, x: Tensor, anchor: Tensor | None = None) -> Triplane:
        """modality "rgb" (B,3,T,H,W) or "depth" (B,1,T,H,W), values in [-1, 1] -> latent. The anchored
        autoencoder also takes ``anchor`` (B,C,H,W), the newest context frame (depth: C = 2 with validity)."""

    def decode(self, modality: str, z: Triplane, anchor: Tensor | None = None) -> Tensor:
        """latent -> (B, C, T, H, W) in [-1, 1]; anchored: -> fields (B, K, T, H, W) for
        :mod:`syncvp_core.warp`."""

    def denoise(self, x_r: Triplane, x_d: Triplane, t: Tensor, ctx_r: Triplane, ctx_d: Triplane,
                present: Tensor) -> tuple[Triplane, Triplane]:
        """One joint epsilon prediction for both modalities."""
