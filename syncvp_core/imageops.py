"""Resizing sensor frames to the model's resolution and predictions back.

Policy (used by the Predictor, the dataset converters and the evaluation alike):

* Frames are resized to the model's (H, W) **without cropping** (an anisotropic "squash" when aspect
  ratios differ), so predictions cover the sensor's whole field of view. The way back is the inverse
  resize, so predicted pixels land where they belong and camera intrinsics scale per axis
  (fx * W_out / W_in, fy * H_out / H_in).
* Colour is resized with area (box) averaging when shrinking and bilinear interpolation when growing.
* Depth is resized with a **validity-weighted** average: invalid pixels (NaN, inf, <= 0) never bleed into
  valid ones; a model pixel whose source pixels are all invalid stays invalid (NaN).
"""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F


def _resize(x: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """(N, C, H, W) float -> (N, C, *size): box (area) average along shrinking axes, bilinear along growing
    ones. Area averaging keeps each output pixel's footprint inside its own source pixels, which is what
    makes the validity-weighted depth resize exact about holes."""
    h, w = x.shape[-2:]
    if (h, w) == tuple(size):
        return x
    mid = (min(h, size[0]), min(w, size[1]))
    if mid != (h, w):
        x = F.interpolate(x, size=mid, mode="area")
    if mid != tuple(size):
        x = F.interpolate(x, size=size, mode="bilinear", align_corners=False)
    return x


def resize_rgb(frames: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """uint8 (..., H, W, 3) -> uint8 (..., size[0], size[1], 3)."""
    lead = frames.shape[:-3]
    x = torch.from_numpy(np.ascontiguousarray(frames)).reshape(-1, *frames.shape[-3:])
    x = x.permute(0, 3, 1, 2).float()
    y = _resize(x, size).round().clamp(0, 255).to(torch.uint8).permute(0, 2, 3, 1)
    return y.reshape(*lead, size[0], size[1], 3).numpy()


def resize_depth(depth_m: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """float (..., H, W) metres -> float32 (..., size) metres; invalid = NaN."""
    lead = depth_m.shape[:-2]
    d = torch.from_numpy(np.ascontiguousarray(depth_m, dtype=np.float32)).reshape(-1, 1, *depth_m.shape[-2:])
    valid = torch.isfinite(d) & (d > 0)
    w = _resize(valid.float(), size)
    s = _resize(torch.where(valid, d, torch.zeros_like(d)), size)
    out = torch.where(w > 1e-3, s / w.clamp_min(1e-3), torch.full_like(s, float("nan")))
    return out.reshape(*lead, *size).numpy().astype(np.float32)


def scale_intrinsics(k: np.ndarray, src_hw: tuple[int, int], dst_hw: tuple[int, int]) -> np.ndarray:
    """Scale a 3x3 camera matrix for a resize from src (H, W) to dst (H, W) without cropping."""
    sy, sx = dst_hw[0] / src_hw[0], dst_hw[1] / src_hw[1]
    out = np.array(k, dtype=np.float64).reshape(3, 3).copy()
    out[0, 0] *= sx
    out[0, 2] = (out[0, 2] + 0.5) * sx - 0.5
    out[1, 1] *= sy
    out[1, 2] = (out[1, 2] + 0.5) * sy - 0.5
    return out
