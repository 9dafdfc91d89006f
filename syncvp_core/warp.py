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

Colour is sampled bicubically (Catmull-Rom) with coordinates clamped to the image (border pixels repeat):
a bilinear read between pixels averages them and blurs every sub-pixel motion. Depth is sampled
bilinearly only where the four source pixels lie on one surface and at the *nearest* anchor pixel
elsewhere (:func:`warp_depth`), so a depth value is never a mix of a foreground and a background surface;
a pixel whose source lies outside the image or on an invalid anchor pixel is a *hole*. Holes stay invalid
unless the decoder's validity logit claims them; a claimed hole takes the nearest valid depth (the
farthest of equally near ones: a disocclusion uncovers background), or the decoder's fill value where none
is near (a silent depth sensor, a large uncovered region), plus the residual.
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


def _bilinear_taps(x: Tensor, size: int) -> tuple[Tensor, Tensor, Tensor]:
    """Coordinates (clamped to the image) -> (index, index + 1, fraction) along one axis."""
    x = x.clamp(0, size - 1)
    x0 = x.floor()
    return x0.long(), (x0.long() + 1).clamp(max=size - 1), (x - x0).unsqueeze(1)


def warp_bilinear(img: Tensor, flow: Tensor) -> Tensor:
    """Backward-warp img (B, C, H, W) by flow (B, 2, H, W) with bilinear sampling, border clamped."""
    h, w = img.shape[-2:]
    x, y = _pixel_coords(flow)
    x0, x1, fx = _bilinear_taps(x, w)
    y0, y1, fy = _bilinear_taps(y, h)
    top = _gather(img, y0, x0) * (1 - fx) + _gather(img, y0, x1) * fx
    bottom = _gather(img, y1, x0) * (1 - fx) + _gather(img, y1, x1) * fx
    return top * (1 - fy) + bottom * fy


def _catmull_rom(t: Tensor) -> tuple[Tensor, ...]:
    """Weights of the four taps at offsets -1, 0, 1, 2 for a fraction t in [0, 1); (0, 1, 0, 0) at t = 0."""
    t2, t3 = t * t, t * t * t
    return ((-t3 + 2 * t2 - t) / 2, (3 * t3 - 5 * t2 + 2) / 2, (-3 * t3 + 4 * t2 + t) / 2, (t3 - t2) / 2)


def warp_bicubic(img: Tensor, flow: Tensor) -> Tensor:
    """Backward-warp img (B, C, H, W) by flow (B, 2, H, W) with Catmull-Rom bicubic sampling, border clamped.

    Colour uses this rather than bilinear sampling: a bilinear read half-way between pixels averages them,
    which blurs a frame warped by a sub-pixel motion (the common case one step ahead) visibly more than
    repeating the frame would; the cubic kernel keeps edges. Integer displacements read pixels exactly."""
    h, w = img.shape[-2:]
    x, y = _pixel_coords(flow)
    x, y = x.clamp(0, w - 1), y.clamp(0, h - 1)
    x0, y0 = x.floor(), y.floor()
    wx, wy = _catmull_rom((x - x0).unsqueeze(1)), _catmull_rom((y - y0).unsqueeze(1))
    x0, y0 = x0.long(), y0.long()
    xs = [(x0 + o).clamp(0, w - 1) for o in (-1, 0, 1, 2)]
    out = 0.0
    for oy, wy_i in zip((-1, 0, 1, 2), wy):
        yi = (y0 + oy).clamp(0, h - 1)
        row = sum(_gather(img, yi, xi) * wx_j for xi, wx_j in zip(xs, wx))
        out = out + row * wy_i
    return out


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


# Largest spread (network units) of the four depths a bilinear depth read may mix: 0.02 is 4.6 % of the
# depth in log depth over 0.2-20 m, far below the jump at an object's edge and above the slope of a surface
# seen at a grazing angle between two neighbouring pixels of a 160x120 frame.
SURFACE_TOL = 0.02


def warp_depth(img: Tensor, valid: Tensor, flow: Tensor, surface_tol: float = SURFACE_TOL
               ) -> tuple[Tensor, Tensor]:
    """Validity- and edge-aware depth warp: bilinear where the four source pixels are valid and lie on one
    surface (spread below ``surface_tol``), nearest elsewhere, so a depth value is never a mix of a
    foreground and a background surface. Returns (warped, valid) as :func:`warp_nearest`.

    The bilinear reads make the result differentiable in the flow (nearest sampling is not), which is what
    lets the depth autoencoder learn its flow from the depth it reconstructs, and they keep sub-pixel
    motion of a surface sub-pixel instead of rounding it to a whole pixel."""
    h, w = img.shape[-2:]
    near, ok = warp_nearest(img, valid, flow)
    x, y = _pixel_coords(flow)
    x0, x1, fx = _bilinear_taps(x, w)
    y0, y1, fy = _bilinear_taps(y, h)
    taps = [(y0, x0), (y0, x1), (y1, x0), (y1, x1)]
    vals = torch.stack([_gather(img, yi, xi) for yi, xi in taps])
    vfloat = valid.to(img.dtype)
    all_valid = torch.stack([_gather(vfloat, yi, xi) for yi, xi in taps]).amin(0) > 0.5
    one_surface = all_valid & ((vals.amax(0) - vals.amin(0)) < surface_tol)
    top = vals[0] * (1 - fx) + vals[1] * fx
    bottom = vals[2] * (1 - fx) + vals[3] * fx
    return torch.where(one_surface, top * (1 - fy) + bottom * fy, near), ok


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


def compose_rgb(anchor: Tensor, fields: Tensor, sampling: str = "bicubic") -> Tensor:
    """anchor (B, 3, H, W) in [-1, 1] at any resolution; fields (B, K, T, h, w) from the decoder ->
    frames (B, 3, T, H, W) clamped to [-1, 1]. ``sampling="bilinear"`` is kept for comparison
    (``bench/anchor_ceiling.py --compose-ablation``)."""
    b, t = fields.shape[0], fields.shape[2]
    size = tuple(anchor.shape[-2:])
    f, flow, delta = _frame_fields(fields, size, 3)
    warp = warp_bicubic if sampling == "bicubic" else warp_bilinear
    out = (warp(anchor.repeat_interleave(t, dim=0), flow) + delta).clamp(-1.0, 1.0)
    return _clips(out, b, t)


# How far (a fraction of the image width) a claimed hole looks for valid depth to extend.
BACKGROUND_REACH = 0.05


def extend_background(value: Tensor, ok: Tensor, reach: float = BACKGROUND_REACH, wanted: Tensor | None = None
                      ) -> tuple[Tensor, Tensor]:
    """value (N, 1, H, W), ok (N, 1, H, W) bool -> (value with holes set from the nearest valid pixels
    within ``reach`` x width, the farthest of them where several are equally near; whether one was found).
    Grown two pixels per pass (a few max-pools), and no further once every ``wanted`` hole (default: all)
    has a value. Measured against taking the farthest value anywhere within the reach, this is better:
    most holes are sensor dropouts on one surface, not disocclusions."""
    missing = torch.finfo(value.dtype).min
    v = torch.where(ok, value, torch.full_like(value, missing))
    found = ok.clone()
    wanted = ~ok if wanted is None else wanted
    for _ in range(max(1, round(reach * value.shape[-1] / 2))):
        if not bool((wanted & ~found).any()):
            break
        grown = F.max_pool2d(v, 5, stride=1, padding=2)
        new = ~found & (grown > missing)
        if not bool(new.any()):
            break
        v = torch.where(new, grown, v)
        found = found | new
    return v, found


def compose_depth(anchor: Tensor, anchor_valid: Tensor, fields: Tensor, soft: bool = False,
                  holes: str = "background") -> tuple[Tensor, Tensor]:
    """anchor (B, 1, H, W) depth in the network representation, anchor_valid (B, 1, H, W) bool; fields
    (B, 6, T, h, w) -> (depth (B, 1, T, H, W), valid (B, 1, T, H, W) bool). Warped pixels keep the anchor's
    range; the fill value lies in [-1, 1].

    ``soft`` (training): holes always take the fill value and validity is not thresholded, so every
    output pixel carries a gradient; the validity logit is trained separately. ``holes="fill"``: claimed
    holes take the fill value even where valid depth is near (for comparison)."""
    b, t = fields.shape[0], fields.shape[2]
    size = tuple(anchor.shape[-2:])
    f, flow, delta = _frame_fields(fields, size, 1)
    fill = upsample(torch.tanh(f[:, 4:5]), size)  # absolute depth for holes, within the trained range
    warped, ok = warp_depth(anchor.repeat_interleave(t, dim=0), anchor_valid.repeat_interleave(t, dim=0), flow)
    claimed = ~ok & (upsample(f[:, 5:6], size) > 0)
    hole_value = fill
    if not soft and holes == "background" and bool(claimed.any()):
        # Measured on the training windows (docs/anchored.md): the model-resolution fill, upsampled, smears
        # depth edges; the depth next to a hole is sharp and usually the surface the hole belongs to.
        # Only claimed holes are grown into: the rest stay invalid, so their value does not matter.
        background, near = extend_background(warped, ok, wanted=claimed)
        hole_value = torch.where(near, background + delta, fill)
    # Warped values are not clipped: in log depth an anchor beyond the range stays where it was.
    value = torch.where(ok, warped + delta, hole_value)
    valid = ok if soft else ok | claimed
    return _clips(value, b, t), _clips(valid, b, t)
