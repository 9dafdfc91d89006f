"""Simple forecasters to compare the model against, with the model's interface (context in, K frames out).

* :class:`CopyLast` — repeats the last context frame (colour and depth). The "nothing moves" baseline, hard
  to beat at short horizons for slow cameras.
* :class:`ConstantVelocity` — estimates one global image translation between the last two context frames
  (phase correlation to the pixel, then Lucas-Kanade least squares to sub-pixel) and keeps moving the last
  frame by that much per step: frame k = last frame shifted by k * velocity. Colour is resampled
  bilinearly, depth by nearest neighbour (no mixing across depth edges); pixels that come from outside the
  image repeat the border.
  The motion is estimated from colour when colour is given, else from inverse depth.
* :class:`FlowExtrapolation` — dense optical flow (OpenCV DIS) between the two newest context frames,
  extrapolated per pixel, depth warped with the same flow and validity-aware
  (:mod:`syncvp_core.flow_extrapolation`, which the model's motion prior uses too). Needs
  ``opencv-python-headless`` (a core dependency: the default model uses the same flow).
* :class:`SceneFlowExtrapolation` — the same flow and colour, and each pixel's depth change along its flow
  extrapolated too (an approaching wall gets nearer; ``depth_motion="rate"``): the strongest classical
  depth row where the flow is right, and it shows what ignoring motion along the optical axis costs.

Missing modality: a baseline cannot invent a modality it never saw, so in the RGB-only scenario the
baselines forecast no depth (and none for colour in the depth-only one); the report shows N/A there rather
than a made-up number. Only the model forecasts the missing modality (cross-modal prediction).

:func:`resize_ceiling` is not a forecaster: it takes the *real* future frames through the model's
resolution and back, which bounds what any model working at that resolution can reach at sensor
resolution.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from ..diffusion.guidance import Mode
from ..flow_extrapolation import FlowExtrapolator, grey, inverse_depth
from ..imageops import resize_depth, resize_rgb


@dataclass
class Forecast:
    rgb: np.ndarray | None  # uint8 (K, H, W, 3), None = this forecaster cannot predict colour here
    depth: np.ndarray | None  # float32 metres (K, H, W), NaN = no value
    mode: str
    depth_std: np.ndarray | None = None  # float32 metres (K, H, W): the model's spread over N > 1 samples


def scenario_mode(rgb: np.ndarray | None, depth: np.ndarray | None) -> str:
    if rgb is None and depth is None:
        raise ValueError("at least one of context_rgb and context_depth must be given")
    return Mode.of(rgb is not None, depth is not None)


class CopyLast:
    name = "copy_last"
    description = "repeat the last context frame"

    def __init__(self, context_frames: int = 2) -> None:
        self.context_frames = context_frames

    def predict(self, context_rgb: np.ndarray | None, context_depth: np.ndarray | None, horizon: int,
                steps: int | None = None, seed: int = 0) -> Forecast:
        mode = scenario_mode(context_rgb, context_depth)
        rgb = None if context_rgb is None else np.repeat(context_rgb[-1:], horizon, axis=0)
        dep = None if context_depth is None else np.repeat(context_depth[-1:].astype(np.float32), horizon, axis=0)
        return Forecast(rgb, dep, mode)


def phase_correlation(a: np.ndarray, b: np.ndarray) -> tuple[int, int]:
    """Integer global shift (dy, dx) such that b(y, x) ~= a(y - dy, x - dx), for 2-D float images."""
    if a.shape != b.shape or a.ndim != 2:
        raise ValueError(f"phase correlation needs two 2-D images of one shape, got {a.shape} and {b.shape}")
    h, w = a.shape
    window = np.outer(np.hanning(h), np.hanning(w))  # damps the wrap-around edges of the FFT
    fa = np.fft.fft2((a - a.mean()) * window)
    fb = np.fft.fft2((b - b.mean()) * window)
    cross = fb * np.conj(fa)
    r = np.fft.ifft2(cross / np.maximum(np.abs(cross), 1e-12)).real
    py, px = np.unravel_index(int(np.argmax(r)), r.shape)
    return int(py - h if py > h // 2 else py), int(px - w if px > w // 2 else px)


def refine_shift(a: np.ndarray, b: np.ndarray, shift: tuple[float, float], iterations: int = 8,
                 ) -> tuple[float, float]:
    """Sub-pixel refinement of a global shift by Gauss-Newton on sum (b(x) - a(x - d))^2 (Lucas-Kanade).

    Phase correlation alone is only reliable to the pixel (its peak shape depends on the window), so the
    integer estimate is polished by least squares over the pixels that stay inside the image.
    """
    h, w = a.shape
    at = torch.from_numpy(a.astype(np.float64))[None]
    dy, dx = float(shift[0]), float(shift[1])
    for _ in range(iterations):
        warped = shift_frames(at, torch.tensor([[dy, dx]], dtype=torch.float64), "bilinear")[0, 0].numpy()
        gy, gx = np.gradient(warped)
        my, mx = int(np.ceil(abs(dy))) + 2, int(np.ceil(abs(dx))) + 2
        if 2 * my >= h or 2 * mx >= w:
            break
        sl = (slice(my, h - my), slice(mx, w - mx))
        g = np.stack([gy[sl].ravel(), gx[sl].ravel()], axis=1)
        e = (b - warped)[sl].ravel()
        hess = g.T @ g
        if np.linalg.cond(hess) > 1e8:
            break  # no texture to lock on to: keep the current estimate
        step = -np.linalg.solve(hess, g.T @ e)
        dy, dx = dy + float(step[0]), dx + float(step[1])
        if np.hypot(*step) < 1e-3:
            break
    return dy, dx


def shift_frames(frame: torch.Tensor, shifts: torch.Tensor, mode: str) -> torch.Tensor:
    """frame (C, H, W) -> (K, C, H, W), output k = frame moved by shifts[k] = (dy, dx) pixels."""
    c, h, w = frame.shape
    k = shifts.shape[0]
    ys = torch.arange(h, dtype=torch.float64).view(1, h, 1) - shifts[:, 0].view(k, 1, 1)
    xs = torch.arange(w, dtype=torch.float64).view(1, 1, w) - shifts[:, 1].view(k, 1, 1)
    # grid_sample's normalised coordinates with align_corners=True: -1 = first pixel centre, +1 = last.
    gx = (2 * xs / max(w - 1, 1) - 1).expand(k, h, w)
    gy = (2 * ys / max(h - 1, 1) - 1).expand(k, h, w)
    grid = torch.stack([gx, gy], dim=-1).to(frame.dtype)
    src = frame.unsqueeze(0).expand(k, c, h, w)
    return F.grid_sample(src, grid, mode=mode, padding_mode="border", align_corners=True)


class ConstantVelocity:
    name = "const_velocity"
    description = "global translation between the last two context frames, extrapolated"

    def __init__(self, context_frames: int = 2, max_shift_fraction: float = 0.25) -> None:
        self.context_frames = context_frames
        # A shift larger than this fraction of the frame is treated as a failed estimate (no motion).
        self.max_shift_fraction = max_shift_fraction
        self.last_velocity: tuple[float, float] = (0.0, 0.0)

    def velocity(self, context_rgb: np.ndarray | None, context_depth: np.ndarray | None) -> tuple[float, float]:
        if context_rgb is not None:
            a, b = grey(context_rgb[-2]), grey(context_rgb[-1])
        else:
            a, b = inverse_depth(context_depth[-2]), inverse_depth(context_depth[-1])
        dy, dx = refine_shift(a, b, phase_correlation(a, b))
        h, w = a.shape
        if abs(dy) > self.max_shift_fraction * h or abs(dx) > self.max_shift_fraction * w:
            return 0.0, 0.0
        return dy, dx

    def predict(self, context_rgb: np.ndarray | None, context_depth: np.ndarray | None, horizon: int,
                steps: int | None = None, seed: int = 0) -> Forecast:
        mode = scenario_mode(context_rgb, context_depth)
        ref = context_rgb if context_rgb is not None else context_depth
        if ref.shape[0] < 2:
            raise ValueError("the constant-velocity baseline needs at least 2 context frames")
        vy, vx = self.velocity(context_rgb, context_depth)
        self.last_velocity = (vy, vx)
        steps_k = torch.arange(1, horizon + 1, dtype=torch.float64)
        shifts = torch.stack([steps_k * vy, steps_k * vx], dim=1)
        rgb = dep = None
        if context_rgb is not None:
            last = torch.from_numpy(np.ascontiguousarray(context_rgb[-1])).permute(2, 0, 1).double()
            out = shift_frames(last, shifts, "bilinear")
            rgb = out.round().clamp(0, 255).to(torch.uint8).permute(0, 2, 3, 1).numpy()
        if context_depth is not None:
            last = torch.from_numpy(np.ascontiguousarray(context_depth[-1], dtype=np.float64))[None]
            dep = shift_frames(last, shifts, "nearest")[:, 0].numpy().astype(np.float32)
        return Forecast(rgb, dep, mode)


class FlowExtrapolation:
    name = "optical_flow"
    description = ("dense optical flow (OpenCV DIS) between the last two context frames, extrapolated k "
                   "times per step; depth warped with the same flow, nearest, holes invalid")

    depth_motion = "carry"

    def __init__(self, context_frames: int = 2, preset: str = "medium") -> None:
        try:
            self.impl = FlowExtrapolator(preset, self.depth_motion)
        except ImportError as e:
            raise ImportError("the flow baseline needs OpenCV: pip install opencv-python-headless "
                              "(a dependency of syncvp_ros since the motion prior)") from e
        self.context_frames = context_frames

    @property
    def last_flow(self) -> np.ndarray | None:
        """(H, W, 2) flow of the last predict: newest -> previous frame."""
        return self.impl.last_flow

    def flow(self, context_rgb: np.ndarray | None, context_depth: np.ndarray | None) -> np.ndarray:
        return self.impl.flow(context_rgb, context_depth)

    def predict(self, context_rgb: np.ndarray | None, context_depth: np.ndarray | None, horizon: int,
                steps: int | None = None, seed: int = 0) -> Forecast:
        mode = scenario_mode(context_rgb, context_depth)
        rgb, dep = self.impl.extrapolate(context_rgb, context_depth, horizon)
        return Forecast(rgb, dep, mode)


class SceneFlowExtrapolation(FlowExtrapolation):
    name = "scene_flow"
    description = ("optical flow as above, and each pixel's depth change along its flow extrapolated too "
                   "(capped at 10 % of the depth per frame)")
    depth_motion = "rate"


def resize_ceiling(rgb: np.ndarray | None, depth: np.ndarray | None, model_hw: tuple[int, int]) -> Forecast:
    """The real frames squashed to the model resolution and back: an upper bound, not a forecast."""
    out_r = out_d = None
    if rgb is not None:
        out_r = resize_rgb(resize_rgb(rgb, model_hw), tuple(rgb.shape[-3:-1]))
    if depth is not None:
        out_d = resize_depth(resize_depth(depth, model_hw), tuple(depth.shape[-2:]))
    return Forecast(out_r, out_d, "reference")
