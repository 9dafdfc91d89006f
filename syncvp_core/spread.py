"""Several forecasts from one context: their mean and per-pixel spread (``Predictor.predict(num_samples=N)``).

The N forecasts are drawn in ONE batched sampler call: the context is repeated along the batch axis and the
predictor's single generator draws a different initial noise for every batch row, so the samples share the
context and differ only in noise. Batching makes N samples cost far less than N calls (see
``bench/planner_outputs.py``).

What the spread means: with the DDIM sampler at ``eta = 0`` a forecast is a deterministic function of the
context and the initial noise, so the per-pixel standard deviation over N samples measures how much the
*model's* forecast depends on the noise — the model's own uncertainty about that pixel (e.g. where an object
may or may not move in). ``eta > 0`` (the model config's ``sampler.eta``) injects fresh noise at every step
too, which changes the spread — not necessarily wider: the shipped checkpoint at 10 steps gave about half
the depth std with ``eta = 1`` (docs/planner.md). It does not include errors the model is confidently
wrong about (an object it never saw), the autoencoder's reconstruction error or sensor noise, and it is
estimated from few samples (the standard error of a std from N samples is about std / sqrt(2(N-1))).
Calibrate before trusting it (``syncvp eval-bag --num-samples N`` reports how often the truth lies within
1 and 2 std).
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np


@dataclass
class Spread:
    """The N samples and their per-pixel standard deviation. Shapes: samples (N, K, H, W[, 3]) and std
    (K, H, W), with a leading batch axis B when the context was batched."""

    rgb: np.ndarray  # uint8 samples
    depth: np.ndarray  # float32 metres samples
    rgb_std: np.ndarray  # float32, 8-bit intensity units (0..255), RMS over the three channels
    depth_std: np.ndarray  # float32 metres; NaN where no sample has valid depth

    @property
    def num_samples(self) -> int:
        return int(self.depth.shape[-4])


def is_batched(context_rgb, context_depth) -> bool:
    if isinstance(context_rgb, np.ndarray):
        return context_rgb.ndim == 5
    return isinstance(context_depth, np.ndarray) and context_depth.ndim == 4


def repeat_context(x, n: int, batched: bool):
    """(T, ...) -> (n, T, ...); (B, T, ...) -> (B*n, T, ...) with each context's n copies adjacent.
    Anything else is returned unchanged, for the predictor's own input checks to refuse."""
    if not isinstance(x, np.ndarray):
        return x
    return np.repeat(x, n, axis=0) if batched else np.repeat(x[None], n, axis=0)


def summarise(rgb: np.ndarray, depth: np.ndarray, n: int, batched: bool) -> tuple[np.ndarray, np.ndarray, Spread]:
    """Batched predictions (B*n, K, ...) -> (mean rgb uint8, mean depth float32, Spread), samples on axis 1
    (batched) or 0 (unbatched)."""
    rgb = rgb.reshape(-1, n, *rgb.shape[1:])
    depth = depth.reshape(-1, n, *depth.shape[1:])
    b, k = depth.shape[0], depth.shape[2]
    mean_rgb = np.empty((b, *rgb.shape[2:]), np.uint8)
    rgb_std = np.empty((b, *depth.shape[2:]), np.float32)
    mean_depth = np.empty((b, *depth.shape[2:]), np.float32)
    depth_std = np.empty_like(mean_depth)
    # One (context, step) at a time: small float copies instead of whole-array temporaries (at 640x480,
    # N=4, K=8 that is 0.24 s instead of 0.34-1.5 s).
    for i in range(b):
        for t in range(k):
            c = rgb[i, :, t].astype(np.float32)
            m = c.mean(axis=0)
            mean_rgb[i, t] = np.clip(np.round(m), 0, 255)
            c -= m
            rgb_std[i, t] = np.sqrt((c * c).mean(axis=0).mean(axis=-1))
            mean_depth[i, t], depth_std[i, t] = _mean_std(depth[i, :, t])
    if not batched:
        rgb, depth, mean_rgb, mean_depth, rgb_std, depth_std = (
            a[0] for a in (rgb, depth, mean_rgb, mean_depth, rgb_std, depth_std))
    return mean_rgb, mean_depth, Spread(rgb, depth, rgb_std, depth_std)


def _mean_std(d: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean and std over axis 0 ignoring NaN (all-NaN pixels stay NaN); the NaN-aware numpy functions
    copy, so they only run when there is a NaN."""
    if np.isfinite(d).all():
        return d.mean(axis=0), d.std(axis=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return np.nanmean(d, axis=0), np.nanstd(d, axis=0)
