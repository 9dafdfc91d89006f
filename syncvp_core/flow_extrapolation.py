"""Dense optical-flow extrapolation: what an engineer tries before a learned forecaster.

OpenCV's DIS flow from the newest context frame back to the one before is extrapolated **k times** (constant
velocity per pixel): pixel p of the newest frame moves by ``-k * f(p)`` in k steps, where ``f(p)`` points to
where p was one frame earlier. The moved pixels are splatted to their nearest target pixel with a z-buffer
(the nearer surface wins; without depth, the larger motion, which under camera translation is the nearer
surface), so a moving object keeps its leading edge and covers what it passes. Colour is then sampled
bilinearly from the newest frame at the winner's sub-pixel source (one resampling per output frame, no blur
accumulates); a target no pixel lands on (a disocclusion) takes its own flow, border repeated. Depth is
**validity-aware**: the winner's depth exactly (nearest, never averaged across a depth edge), NaN where
nothing landed (a hole, not a guess) or the source was invalid. ``depth_motion="carry"`` (the default)
carries depth values unchanged (no motion along the optical axis); ``"rate"`` also extrapolates each pixel's
depth change along its flow, d_t(p) - d_{t-1}(p + f(p)), k times (scene flow: an approaching wall gets
nearer), the rate capped at RATE_CAP of the depth per frame because at depth edges and in textureless
regions the flow picks the wrong surface and the difference is not motion. The flow comes from colour when
colour is given, else from inverse depth.

Two users, one piece of code: the ``optical_flow`` and ``scene_flow`` evaluation baselines
(:mod:`syncvp_core.evaluation.baselines`) and the model's motion prior (:mod:`syncvp_core.motion_prior`).
Needs ``opencv-python-headless``.
"""
from __future__ import annotations

import numpy as np

# OpenCV's DIS crashes the process (segfault, OpenCV 5.0) on images with a side under 16 px and a
# wider other side (12x48, 15x60, ...); every shape from 16 px up to a 16:1 aspect ratio was tried and works.
MIN_FLOW_SIDE = 16

# depth_motion="rate": the largest depth change per frame, as a fraction of the depth (10 % per frame at 10 Hz
# is 1 m/s at 1 m, 10 m/s at 10 m: walking speed indoors, urban driving outdoors).
RATE_CAP = 0.1
DEPTH_MOTIONS = ("carry", "rate")


def grey(rgb: np.ndarray) -> np.ndarray:
    return rgb.astype(np.float64) @ np.array([0.299, 0.587, 0.114])


def inverse_depth(depth: np.ndarray) -> np.ndarray:
    """1 / depth, invalid pixels (NaN, inf, <= 0) filled with the mean (motion estimators need a value)."""
    d = depth.astype(np.float64)
    ok = np.isfinite(d) & (d > 0)
    inv = np.where(ok, 1.0 / np.where(ok, d, 1.0), np.nan)
    fill = np.nanmean(inv) if ok.any() else 0.0
    return np.where(ok, inv, fill)


def _to_u8(img: np.ndarray) -> np.ndarray:
    """A grey image for OpenCV's flow: colour -> luma, inverse depth -> stretched between its 1st and 99th
    percentile (the flow needs contrast, not units)."""
    if img.dtype == np.uint8 and img.ndim == 2:
        return img
    lo, hi = np.percentile(img, [1, 99])
    return np.clip((img - lo) / max(hi - lo, 1e-9) * 255.0, 0, 255).astype(np.uint8)


class FlowExtrapolator:
    def __init__(self, preset: str = "medium", depth_motion: str = "carry") -> None:
        try:
            import cv2
        except ImportError as e:
            raise ImportError("optical-flow extrapolation needs OpenCV: pip install opencv-python-headless") from e
        presets = {"ultrafast": cv2.DISOPTICAL_FLOW_PRESET_ULTRAFAST, "fast": cv2.DISOPTICAL_FLOW_PRESET_FAST,
                   "medium": cv2.DISOPTICAL_FLOW_PRESET_MEDIUM}
        if preset not in presets:
            raise ValueError(f"DIS preset must be one of {sorted(presets)}, got {preset!r}")
        if depth_motion not in DEPTH_MOTIONS:
            raise ValueError(f"depth_motion must be one of {DEPTH_MOTIONS}, got {depth_motion!r}")
        self.depth_motion = depth_motion
        self._cv2 = cv2
        self._dis = cv2.DISOpticalFlow_create(presets[preset])
        self.last_flow: np.ndarray | None = None  # (H, W, 2) of the last extrapolation: newest -> previous

    def flow(self, context_rgb: np.ndarray | None, context_depth: np.ndarray | None) -> np.ndarray:
        """(H, W, 2) float32 (dx, dy): pixel p of the newest frame was at p + flow[p] one frame earlier."""
        if context_rgb is not None:
            a, b = grey(context_rgb[-1]), grey(context_rgb[-2])
            a, b = np.clip(a, 0, 255).astype(np.uint8), np.clip(b, 0, 255).astype(np.uint8)
        else:
            a, b = _to_u8(inverse_depth(context_depth[-1])), _to_u8(inverse_depth(context_depth[-2]))
        return self._dis.calc(np.ascontiguousarray(a), np.ascontiguousarray(b), None)

    def extrapolate(self, context_rgb: np.ndarray | None, context_depth: np.ndarray | None, horizon: int
                    ) -> tuple[np.ndarray | None, np.ndarray | None]:
        """uint8 (T, H, W, 3) and/or metres (T, H, W) context -> (K, H, W, 3) uint8, (K, H, W) metres with
        NaN holes; None for a modality not given."""
        ref = context_rgb if context_rgb is not None else context_depth
        if ref is None:
            raise ValueError("at least one of context_rgb and context_depth must be given")
        if ref.shape[0] < 2:
            raise ValueError("optical-flow extrapolation needs at least 2 context frames")
        if min(ref.shape[1:3]) < MIN_FLOW_SIDE:
            raise ValueError(f"optical-flow extrapolation needs images of at least {MIN_FLOW_SIDE} px per side, "
                             f"got {ref.shape[2]}x{ref.shape[1]}")
        f = self.flow(context_rgb, context_depth)
        self.last_flow = f
        h, w = f.shape[:2]
        last_d = None if context_depth is None else np.asarray(context_depth[-1], np.float32)
        # z-buffer key per source pixel: smaller wins. Nearer depth; without depth, larger motion.
        if last_d is not None:
            key = np.where(np.isfinite(last_d) & (last_d > 0), last_d, np.inf).ravel()
        else:
            key = -np.hypot(f[..., 0], f[..., 1]).ravel()
        rate = None
        if last_d is not None and self.depth_motion == "rate":
            rate = depth_rate(f, np.asarray(context_depth[-2], np.float32), last_d)
        by_rank = np.argsort(key, kind="stable")  # z-buffer order, ties by pixel index (deterministic)
        rank = np.empty_like(by_rank)
        rank[by_rank] = np.arange(len(by_rank))
        ys, xs = np.mgrid[0:h, 0:w].astype(np.float32)
        rgb = None if context_rgb is None else np.empty((horizon, h, w, 3), np.uint8)
        dep = None if last_d is None else np.empty((horizon, h, w), np.float32)
        for k in range(1, horizon + 1):
            src = _splat(f, k, rank, by_rank)
            hole = src < 0
            fd = np.where(hole[..., None], f, f.reshape(-1, 2)[np.maximum(src, 0)])
            if rgb is not None:
                rgb[k - 1] = self._cv2.remap(np.ascontiguousarray(context_rgb[-1]), xs + k * fd[..., 0],
                                             ys + k * fd[..., 1], self._cv2.INTER_LINEAR,
                                             borderMode=self._cv2.BORDER_REPLICATE)
            if dep is not None:
                d = (last_d if rate is None else last_d + k * rate).ravel()[np.maximum(src, 0)]
                d[hole | ~(np.isfinite(d) & (d > 0))] = np.nan
                dep[k - 1] = d
        return rgb, dep


def depth_rate(flow: np.ndarray, prev_d: np.ndarray, last_d: np.ndarray) -> np.ndarray:
    """(H, W) metres per frame: the newest depth minus the previous frame's depth where the flow says the
    pixel was (nearest), capped at +-RATE_CAP of the newest depth; 0 where either is invalid."""
    h, w = last_d.shape
    ys, xs = np.mgrid[0:h, 0:w]
    px = np.clip(np.rint(xs + flow[..., 0]), 0, w - 1).astype(np.int64)
    py = np.clip(np.rint(ys + flow[..., 1]), 0, h - 1).astype(np.int64)
    prev = prev_d[py, px]
    with np.errstate(invalid="ignore"):
        ok = np.isfinite(last_d) & (last_d > 0) & np.isfinite(prev) & (prev > 0)
        change = np.where(ok, last_d - prev, 0.0)
    cap = RATE_CAP * np.where(ok, last_d, 0.0)  # 0 where invalid: a NaN bound would make the clip NaN
    return np.clip(change, -cap, cap).astype(np.float32)


def _splat(flow: np.ndarray, k: int, rank: np.ndarray, by_rank: np.ndarray) -> np.ndarray:
    """Forward splat of every pixel p to round(p - k * flow[p]): (H, W) int64 index of the source pixel
    that lands on each target, -1 where none lands. Of several, the one of lowest ``rank`` (its place in
    the z-buffer order; ``by_rank`` inverts it) wins."""
    h, w = flow.shape[:2]
    ys, xs = np.mgrid[0:h, 0:w]
    tx = np.rint(xs - k * flow[..., 0]).astype(np.int64).ravel()
    ty = np.rint(ys - k * flow[..., 1]).astype(np.int64).ravel()
    inside = np.nonzero((tx >= 0) & (tx < w) & (ty >= 0) & (ty < h))[0]
    best = np.full(h * w, h * w, np.int64)
    np.minimum.at(best, ty[inside] * w + tx[inside], rank[inside])
    hit = best < h * w
    out = np.full(h * w, -1, np.int64)
    out[hit] = by_rank[best[hit]]
    return out.reshape(h, w)


