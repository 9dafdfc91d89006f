"""Metric depth <-> network range, in one place.

Sensors give metric depth in metres (REP 118: 32FC1 metres, NaN/0/inf invalid). The network sees values
in [-1, 1]:

* ``inverse`` (default): ``x = 2 * (1/d - 1/max) / (1/min - 1/max) - 1``. Near objects, which matter most
  to a robot, get most of the range; ``d = max`` maps to -1 and ``d = min`` to +1.
* ``linear``: ``x = 2 * (d - min) / (max - min) - 1``.
* ``log``: ``x = 2 * ln(d / min) / ln(max / min) - 1``: the same relative step everywhere, so a 5 %
  depth error costs the same at 0.5 m and at 5 m (what AbsRel measures); indoor depths (0.5-5 m) use about
  half of [-1, 1] with the default 0.2-20 m range, inverse depth about a quarter.

Depth is clipped to ``[min_m, max_m]`` first, so the inverse maps are exact for every in-range depth.
Invalid pixels (non-finite or <= 0) are reported by a mask and filled with -1 (= ``max_m``, "far"), which
is also what the autoencoder loss masks out. The anchored autoencoder also receives the mask as an input
channel (:func:`with_validity`), so "far" and "unknown" are never confused.
"""
from __future__ import annotations

import numpy as np
import torch

from .config import DepthConfig


def valid_mask(depth_m: np.ndarray | torch.Tensor):
    """True where a depth value is usable: finite and strictly positive."""
    if isinstance(depth_m, torch.Tensor):
        return torch.isfinite(depth_m) & (depth_m > 0)
    return np.isfinite(depth_m) & (depth_m > 0)


def normalize(depth_m: torch.Tensor, cfg: DepthConfig, clip: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
    """Metric depth -> ([-1, 1] values, validity mask). Invalid pixels become -1.

    ``clip=False`` (log only, see :func:`unclipped`): depths outside [min_m, max_m] map outside [-1, 1]
    instead of being clipped, so a warped anchor keeps a 70 m background at 70 m."""
    mask = valid_mask(depth_m)
    d = torch.where(mask, depth_m, torch.full_like(depth_m, cfg.max_m))
    if clip:
        d = d.clamp(cfg.min_m, cfg.max_m)
    if cfg.representation == "inverse":
        lo, hi = 1.0 / cfg.max_m, 1.0 / cfg.min_m
        x = 2.0 * (1.0 / d - lo) / (hi - lo) - 1.0
    elif cfg.representation == "log":
        x = 2.0 * torch.log(d / cfg.min_m) / float(np.log(cfg.max_m / cfg.min_m)) - 1.0
    else:
        x = 2.0 * (d - cfg.min_m) / (cfg.max_m - cfg.min_m) - 1.0
    return (x.clamp(-1.0, 1.0) if clip else x), mask


def denormalize(x: torch.Tensor, cfg: DepthConfig, clip: bool = True) -> torch.Tensor:
    """[-1, 1] values -> metric depth in metres (the exact inverse of :func:`normalize` on valid pixels)."""
    u = ((x.clamp(-1.0, 1.0) if clip else x) + 1.0) / 2.0
    if cfg.representation == "inverse":
        lo, hi = 1.0 / cfg.max_m, 1.0 / cfg.min_m
        return 1.0 / (lo + u * (hi - lo))
    if cfg.representation == "log":
        return cfg.min_m * torch.exp(u * float(np.log(cfg.max_m / cfg.min_m)))
    return cfg.min_m + u * (cfg.max_m - cfg.min_m)


def unclipped(cfg: DepthConfig) -> bool:
    """Whether values outside [-1, 1] are meaningful: in log depth a shift of the value is a relative depth
    change at any depth, so anchored composition can work on unclipped values; inverse and linear clip."""
    return cfg.representation == "log"


def with_validity(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """(B, 1, ...) normalised depth + its validity mask -> (B, 2, ...) network input [value, valid]."""
    return torch.cat([x, mask.to(x.dtype)], dim=1)
