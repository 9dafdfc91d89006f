"""Backward warping and the composition of an anchored forecast, at any resolution.

An anchored decoder (:class:`syncvp_core.models.anchored.AnchoredAutoencoder`) does not draw frames: for
every future frame it outputs, at model resolution, a *flow*, a *blend mask* and a *residual* (plus, for
depth, a *fill* value and a *validity* logit for pixels the warp cannot reach). The published frame is
made here, at whatever resolution the newest observed frame (the *anchor*) has:

    warped = warp(anchor, upsample(flow))                   sharp: every pixel comes from the sensor
    frame  = warped + upsample(mask * residual)             low-frequency change the warp cannot explain

so zero flow and zero residual reproduce the anchor exactly (copy-last), and nothing of the output is
ever blurrier than the model resolution allows except the residual itself.

Flow convention: ``flow[:, 0]`` / ``flow[:, 1]`` are the horizontal / vertical displacement in
*normalised* image units (the image spans 2 units in each direction), pointing from the output pixel to
where it is read in the anchor (backward warping). Normalised units make the same flow valid at the model
resolution and at the sensor resolution, whatever the aspect ratio (frames are squashed, not cropped,
to the model size).

Colour is sampled bilinearly with coordinates clamped to the image (border pixels repeat). Depth is
sampled at the *nearest* anchor pixel, so a depth value is never a mix of a foreground and a background
surface; a pixel whose source lies outside the image or on an invalid anchor pixel is a *hole*. Holes
take the decoder's fill value where its validity logit is positive and stay invalid otherwise.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

# Channel layout of an anchored decoder's output, per modality (see the module docstring).
FLOW, MASK = slice(0, 2), slice(2, 3)


def field_channels(modality: str, channels: int) -> int:
    """Number of decoder output channels: flow 2 + mask 1 + residual C (+ fill 1 + validity 1 for depth)."""
    return 3 + channels + (2 if modality == "depth" else 0)


def _pixel_coords(flow: Tensor) -> tuple[Tensor, Tensor]:
    """Source coordinates in pixels (x, y) of every output pixel: its own index plus the flow in pixels.
    Integer pixel indices plus an exact zero displacement give exactly the pixel itself."""
    b, _, h, w = flow.shape
    ys = torch.arange(h, device=flow.device, dtype=flow.dtype).view(1, h, 1)
    xs = torch.arange(w, device=flow.device, dtype=flow.dtype).view(1, 1, w)
    return xs + flow[:, 0] * (w / 2.0), ys + flow[:, 1] * (h / 2.0)


def _gather(img: Tensor, yi: Tensor, xi: Tensor) -> Tensor:
    """img (B, C, H, W) read at integer indices yi, xi (B, H', W') that lie inside the image."""
    b, c, h, w = img.shape
    idx = (yi * w + xi).reshape(b, 1, -1).expand(b, c, -1)
    return img.reshape(b, c, h * w).gather(2, idx).reshape(b, c, *yi.shape[1:])


def warp_bilinear(img: Tensor, flow: Tensor) -> Tensor:
    """Backward-warp img (B, C, H, W) by flow (B, 2, H, W) with bilinear sampling, border clamped."""
    h, w = img.shape[-2:]
    x, y = _pixel_coords(flow)
    x = x.clamp(0, w - 1)
    y = y.clamp(0, h - 1)
    x0, y0 = x.floor(), y.floor()
    fx, fy = (x - x0).unsqueeze(1), (y - y0).unsqueeze(1)
    x0, y0 = x0.long(), y0.long()
    x1, y1 = (x0 + 1).clamp(max=w - 1), (y0 + 1).clamp(max=h - 1)
    top = _gather(img, y0, x0) * (1 - fx) + _gather(img, y0, x1) * fx
    bottom = _gather(img, y1, x0) * (1 - fx) + _gather(img, y1, x1) * fx
    return top * (1 - fy) + bottom * fy


def warp_nearest(img: Tensor, valid: Tensor, flow: Tensor) -> tuple[Tensor, Tensor]:
    """Backward-warp img (B, C, H, W) with nearest sampling; returns (warped, valid) where ``valid``
    (B, 1, H, W) bool is False for sources outside the image or on invalid input pixels."""
    h, w = img.shape[-2:]
    x, y = _pixel_coords(flow)
    xi, yi = torch.round(x), torch.round(y)
    inside = ((xi >= 0) & (xi <= w - 1) & (yi >= 0) & (yi <= h - 1)).unsqueeze(1)
    xi, yi = xi.clamp(0, w - 1).long(), yi.clamp(0, h - 1).long()
    out = _gather(img, yi, xi)
    ok = _gather(valid.to(img.dtype), yi, xi) > 0.5
    return out, ok & inside


def upsample(x: Tensor, size: tuple[int, int]) -> Tensor:
    """Bilinear resize of (B, C, h, w) to ``size``; identity when the size already matches."""
    if tuple(x.shape[-2:]) == tuple(size):
        return x
    return F.interpolate(x, size=size, mode="bilinear", align_corners=False)


def _frame_fields(fields: Tensor, size: tuple[int, int], channels: int) -> tuple[Tensor, Tensor, Tensor]:
    """fields (B, K, T, h, w) -> (per-frame fields (B*T, K, h, w), flow and masked residual of ``channels``
    channels, both upsampled to ``size``)."""
    b, k, t, h, w = fields.shape
    f = fields.permute(0, 2, 1, 3, 4).reshape(b * t, k, h, w)
    flow = upsample(f[:, FLOW], size)
    delta = upsample(torch.sigmoid(f[:, MASK]) * f[:, 3 : 3 + channels], size)
    return f, flow, delta


def _clips(frames: Tensor, b: int, t: int) -> Tensor:
    """(B*T, C, H, W) -> (B, C, T, H, W)."""
    return frames.reshape(b, t, *frames.shape[1:]).permute(0, 2, 1, 3, 4)


def compose_rgb(anchor: Tensor, fields: Tensor) -> Tensor:
    """anchor (B, 3, H, W) in [-1, 1] at any resolution; fields (B, K, T, h, w) from the decoder ->
    frames (B, 3, T, H, W) clamped to [-1, 1]."""
    b, t = fields.shape[0], fields.shape[2]
    size = tuple(anchor.shape[-2:])
    f, flow, delta = _frame_fields(fields, size, 3)
    out = (warp_bilinear(anchor.repeat_interleave(t, dim=0), flow) + delta).clamp(-1.0, 1.0)
    return _clips(out, b, t)


def compose_depth(anchor: Tensor, anchor_valid: Tensor, fields: Tensor, soft: bool = False
                  ) -> tuple[Tensor, Tensor]:
    """anchor (B, 1, H, W) depth in the network representation, anchor_valid (B, 1, H, W) bool; fields
    (B, 6, T, h, w) -> (depth (B, 1, T, H, W), valid (B, 1, T, H, W) bool). Filled holes lie in
    [-1, 1]; warped pixels keep the anchor's range.

    ``soft`` (training): holes always take the fill value and validity is not thresholded, so every
    output pixel carries a gradient; the validity logit is trained separately."""
    b, t = fields.shape[0], fields.shape[2]
    size = tuple(anchor.shape[-2:])
    f, flow, delta = _frame_fields(fields, size, 1)
    fill = upsample(torch.tanh(f[:, 4:5]), size)  # absolute depth for holes, within the trained range
    warped, ok = warp_nearest(anchor.repeat_interleave(t, dim=0), anchor_valid.repeat_interleave(t, dim=0), flow)
    # Warped values are not clipped: in log depth an anchor beyond the range stays where it was.
    value = torch.where(ok, warped + delta, fill)
    valid = ok if soft else ok | (upsample(f[:, 5:6], size) > 0)
    return _clips(value, b, t), _clips(valid, b, t)

