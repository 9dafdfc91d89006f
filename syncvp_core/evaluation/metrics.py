"""Per-frame forecast metrics and their per-horizon aggregation.

Colour metrics take frames as uint8 (0..255) or float in [0, 1], shape (..., H, W, 3); every leading axis is
kept, so a (K, H, W, 3) forecast gives K values, one per horizon step.

* PSNR: ``10 log10(1 / MSE)`` on [0, 1] frames, MSE over all pixels and channels of one frame. Identical
  frames would give +inf, which no mean survives, so the MSE is floored at 1e-10 (PSNR <= 100 dB).
* SSIM: the standard definition of Wang et al. (2004): 11x11 Gaussian window with sigma 1.5, K1 = 0.01,
  K2 = 0.03, data range 1, computed per channel on the "valid" part of the image (no padding) and averaged.
  This is what ``skimage.metrics.structural_similarity(gaussian_weights=True, sigma=1.5,
  use_sample_covariance=False, data_range=1)`` computes.
  The official SyncVP code min-max normalises prediction and ground truth, each with its own min/max over
  the whole batch tensor, before SSIM (docs/design-notes.md §5.3). That makes a frame's score depend on the other videos
  in its batch and rewards a global brightness/contrast error, so it is **not** repeated here.
* Depth, on pixels where the ground truth is valid (finite, > 0) and the forecast is valid too:
  AbsRel = mean(|p - g| / g), RMSE = sqrt(mean((p - g)^2)) in metres, delta1 = fraction with
  max(p/g, g/p) < 1.25. ``coverage`` = fraction of valid ground-truth pixels the forecast covers (a
  forecast with holes, e.g. copy-last of a frame with holes, is scored only where it has values, and its
  coverage says how much it left out). A frame without valid ground truth gives NaN (counted, not averaged).

Aggregation (:class:`HorizonStats`): each window contributes one value per horizon step; means and spreads
are over windows (every window weighs the same), never means of batch means.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

PSNR_MAX_DB = 100.0

# name -> (description, "higher"/"lower" is better, unit). Written into metrics.json and the report.
METRIC_DEFINITIONS: dict[str, dict[str, str]] = {
    "psnr": {"description": "PSNR on [0,1] RGB frames, MSE floored at 1e-10", "better": "higher", "unit": "dB"},
    "ssim": {
        "description": "SSIM (Wang et al. 2004): Gaussian window 11, sigma 1.5, K1=0.01, K2=0.03, data range 1, "
        "per channel, valid region, no batch min-max",
        "better": "higher",
        "unit": "",
    },
    "lpips": {
        "description": "LPIPS v0.1, AlexNet backbone, inputs scaled to [-1,1], at the evaluated resolution",
        "better": "lower",
        "unit": "",
    },
    "absrel": {"description": "mean |pred-gt|/gt over valid pixels", "better": "lower", "unit": ""},
    "rmse": {"description": "sqrt(mean (pred-gt)^2) over valid pixels", "better": "lower", "unit": "m"},
    "delta1": {"description": "fraction of valid pixels with max(pred/gt, gt/pred) < 1.25", "better": "higher",
               "unit": ""},
    "coverage": {
        "description": "fraction of valid ground-truth depth pixels where the forecast has a valid value",
        "better": "higher",
        "unit": "",
    },
}
RGB_METRICS = ("psnr", "ssim", "lpips")
DEPTH_METRICS = ("absrel", "rmse", "delta1", "coverage")


def to_unit(frames: np.ndarray) -> np.ndarray:
    """uint8 0..255 or float [0, 1] (..., H, W, 3) -> float64 [0, 1]."""
    a = np.asarray(frames)
    if a.dtype == np.uint8:
        return a.astype(np.float64) / 255.0
    if not np.issubdtype(a.dtype, np.floating):
        raise ValueError(f"colour frames must be uint8 or float in [0,1], got dtype {a.dtype}")
    return a.astype(np.float64)


def _check_pair(pred: np.ndarray, gt: np.ndarray) -> None:
    if pred.shape != gt.shape:
        raise ValueError(f"prediction shape {pred.shape} != ground-truth shape {gt.shape}")
    if pred.ndim < 3 or pred.shape[-1] != 3:
        raise ValueError(f"colour frames must be (..., H, W, 3), got {pred.shape}")


def psnr(pred: np.ndarray, gt: np.ndarray) -> np.ndarray:
    """Per-frame PSNR in dB; returns an array of shape pred.shape[:-3]."""
    p, g = to_unit(pred), to_unit(gt)
    _check_pair(p, g)
    mse = ((p - g) ** 2).mean(axis=(-3, -2, -1))
    return 10.0 * np.log10(1.0 / np.maximum(mse, 10.0 ** (-PSNR_MAX_DB / 10.0)))


def _gaussian_kernel(size: int = 11, sigma: float = 1.5) -> np.ndarray:
    x = np.arange(size, dtype=np.float64) - (size - 1) / 2.0
    k = np.exp(-(x**2) / (2 * sigma**2))
    return k / k.sum()


def ssim(pred: np.ndarray, gt: np.ndarray, win: int = 11, sigma: float = 1.5) -> np.ndarray:
    """Per-frame SSIM (mean over channels and the valid region); shape pred.shape[:-3]."""
    from scipy.ndimage import correlate1d

    p, g = to_unit(pred), to_unit(gt)
    _check_pair(p, g)
    h, w = p.shape[-3:-1]
    if h < win or w < win:
        raise ValueError(f"SSIM needs frames of at least {win}x{win}, got {h}x{w}")
    lead = p.shape[:-3]
    # (N, 3, H, W): each channel is filtered separately.
    x = np.moveaxis(p.reshape(-1, h, w, 3), -1, 1)
    y = np.moveaxis(g.reshape(-1, h, w, 3), -1, 1)
    k = _gaussian_kernel(win, sigma)
    r = (win - 1) // 2

    def blur(t: np.ndarray) -> np.ndarray:  # separable Gaussian, then keep the "valid" part (no padding)
        t = correlate1d(correlate1d(t, k, axis=-2, mode="constant"), k, axis=-1, mode="constant")
        return t[..., r:h - r, r:w - r]

    c1, c2 = 0.01**2, 0.03**2
    mx, my = blur(x), blur(y)
    sxx = blur(x * x) - mx * mx
    syy = blur(y * y) - my * my
    sxy = blur(x * y) - mx * my
    s = ((2 * mx * my + c1) * (2 * sxy + c2)) / ((mx * mx + my * my + c1) * (sxx + syy + c2))
    return s.mean(axis=(-2, -1)).mean(axis=1).reshape(lead)


def depth_errors(pred_m: np.ndarray, gt_m: np.ndarray) -> dict[str, np.ndarray]:
    """Per-frame depth metrics over (..., H, W) metres; NaN where a frame has no usable pixel."""
    p = np.asarray(pred_m, dtype=np.float64)
    g = np.asarray(gt_m, dtype=np.float64)
    if p.shape != g.shape:
        raise ValueError(f"depth prediction shape {p.shape} != ground-truth shape {g.shape}")
    with np.errstate(invalid="ignore"):
        gt_ok = np.isfinite(g) & (g > 0)
        both = gt_ok & np.isfinite(p) & (p > 0)
    axes = (-2, -1)
    n_gt = gt_ok.sum(axis=axes)
    n = both.sum(axis=axes)
    g1 = np.where(both, g, 1.0)
    p1 = np.where(both, p, 1.0)
    with np.errstate(invalid="ignore", divide="ignore"):
        absrel = np.where(both, np.abs(p1 - g1) / g1, 0.0).sum(axis=axes) / n
        rmse = np.sqrt(np.where(both, (p1 - g1) ** 2, 0.0).sum(axis=axes) / n)
        ratio = np.maximum(p1 / g1, g1 / p1)
        delta1 = np.where(both, ratio < 1.25, False).sum(axis=axes) / n
        coverage = n / n_gt
    out = {"absrel": absrel, "rmse": rmse, "delta1": delta1, "coverage": coverage}
    return {k: np.where(n > 0, v, np.nan) if k != "coverage" else np.where(n_gt > 0, v, np.nan)
            for k, v in out.items()}


@dataclass
class HorizonStats:
    """Streaming mean / std over windows of one metric, one slot per horizon step (bounded memory)."""

    horizon: int
    total: np.ndarray = field(init=False)
    total_sq: np.ndarray = field(init=False)
    count: np.ndarray = field(init=False)
    missing: np.ndarray = field(init=False)

    def __post_init__(self) -> None:
        self.total = np.zeros(self.horizon)
        self.total_sq = np.zeros(self.horizon)
        self.count = np.zeros(self.horizon, dtype=np.int64)
        self.missing = np.zeros(self.horizon, dtype=np.int64)

    def add(self, values: np.ndarray) -> None:
        v = np.asarray(values, dtype=np.float64).reshape(-1)
        if v.shape[0] != self.horizon:
            raise ValueError(f"expected {self.horizon} per-horizon values, got {v.shape[0]}")
        ok = np.isfinite(v)
        self.total += np.where(ok, v, 0.0)
        self.total_sq += np.where(ok, v * v, 0.0)
        self.count += ok
        self.missing += ~ok

    def summary(self) -> dict:
        n = self.count
        with np.errstate(invalid="ignore", divide="ignore"):
            mean = self.total / n
            var = np.maximum(self.total_sq / n - mean**2, 0.0) * n / np.maximum(n - 1, 1)
            std = np.sqrt(var)
            ci95 = 1.96 * std / np.sqrt(n)
        overall = float(self.total.sum() / n.sum()) if n.sum() else math.nan
        return {
            "mean": _list(mean),
            "std": _list(std),
            "ci95": _list(ci95),
            "n": n.tolist(),
            "missing": self.missing.tolist(),
            "mean_over_horizon": _nan_to_none(overall),
        }


def _nan_to_none(x: float) -> float | None:
    return None if not math.isfinite(x) else float(x)


def _list(a: np.ndarray) -> list[float | None]:
    return [_nan_to_none(float(x)) for x in a]
