"""Several forecasts from one context: their mean and per-pixel spread (``Predictor.predict(num_samples=N)``).

The N forecasts are drawn in ONE batched sampler call: the context is repeated along the batch axis and the
predictor's single generator draws a different initial noise for every batch row, so the samples share the
context and differ only in noise. Batching makes N samples cost far less than N calls (see
``bench/planner_outputs.py``).

What the spread means: with the DDIM sampler at ``eta = 0`` a forecast is a deterministic function of the
context and the initial noise, so the per-pixel standard deviation over N samples measures how much the
*model's* forecast depends on the noise — the model's own uncertainty about that pixel (e.g. where an object
may or may not move in). ``eta > 0`` (the model config's ``sampler.eta``) injects fresh noise at every step
and widens the spread. It does not include errors the model is confidently wrong about (an object it never
saw), the autoencoder's reconstruction error or sensor noise, and it is estimated from few samples (the
standard error of a std from N samples is about std / sqrt(2(N-1))). Calibrate before trusting it
(``syncvp eval-bag --num-samples N`` reports how often the truth lies within 1 and 2 std).
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


def check_num_samples(n, error: type[Exception] = ValueError) -> int:
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1:
        raise error(f"num_samples must be an integer >= 1, got {n!r}")
    return int(n)


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
    if not batched:
        rgb, depth = rgb[0], depth[0]
    axis = 1 if batched else 0
    c = rgb.astype(np.float32)
    mean_rgb = np.clip(np.round(c.mean(axis=axis)), 0, 255).astype(np.uint8)
    rgb_std = np.sqrt(c.var(axis=axis).mean(axis=-1)).astype(np.float32)
    with warnings.catch_warnings():  # all-NaN pixels stay NaN, without a RuntimeWarning
        warnings.simplefilter("ignore", RuntimeWarning)
        mean_depth = np.nanmean(depth, axis=axis).astype(np.float32)
        depth_std = np.nanstd(depth, axis=axis).astype(np.float32)
    return mean_rgb, mean_depth, Spread(rgb, depth, rgb_std, depth_std)
