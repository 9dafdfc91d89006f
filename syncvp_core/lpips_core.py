"""The backbone-independent parts of LPIPS (Zhang et al. 2018), shared by the evaluation metric
(LPIPS-AlexNet, :mod:`syncvp_core.evaluation.lpips`) and the training loss (LPIPS-VGG16,
:mod:`syncvp_core.training.perceptual`).

Inputs in [-1, 1] are shifted and scaled by the fixed "ScalingLayer" constants; each backbone stage's
features are unit-normalised over channels; the distance is the per-channel weighted (1x1 "lin" heads)
squared difference, averaged over space and summed over stages.
"""
from __future__ import annotations

import torch
from torch import Tensor, nn

SHIFT = (-0.030, -0.088, -0.188)
SCALE = (0.458, 0.448, 0.450)


def register_scaling(module: nn.Module) -> None:
    """Give ``module`` the input constants as buffers ``shift`` and ``scale`` (not weights: not saved)."""
    module.register_buffer("shift", torch.tensor(SHIFT).view(1, 3, 1, 1), persistent=False)
    module.register_buffer("scale", torch.tensor(SCALE).view(1, 3, 1, 1), persistent=False)


def unit_normalise(h: Tensor) -> Tensor:
    return h / (h.pow(2).sum(dim=1, keepdim=True).sqrt() + 1e-10)


def distance(heads: list[nn.Module], fa: list[Tensor], fb: list[Tensor]) -> Tensor:
    """Per-image distance (N,) from two lists of unit-normalised features (fb may have batch 1)."""
    total = 0.0
    for head, a, b in zip(heads, fa, fb):
        total = total + head((a - b) ** 2).mean(dim=(2, 3))
    return total.view(-1)
