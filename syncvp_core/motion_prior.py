"""The motion prior (``motion_prior: flow``): the denoiser also sees where plain motion extrapolation says
the scene goes, so it predicts a correction to constant velocity instead of the whole motion.

The two newest context frames at model resolution give a dense optical flow (OpenCV DIS), extrapolated
per pixel over the chunk exactly as the ``optical_flow`` baseline does (:mod:`.flow_extrapolation`, one
piece of code for both). The extrapolated frames are encoded by the modality's own anchored autoencoder
against the newest frame, so the prior lives in the very latent space of the target: "the flow
extrapolation was right" is the identity map for the denoiser. Each branch gets its prior concatenated on
channels to its context, plane by plane (:func:`condition`); the presence flags zero both together, so a
silent sensor's modality has neither.

The flow comes from colour when colour is there (full and RGB-only modes), else from inverse depth
(depth-only mode). RGB-only has no depth prior (nothing to warp), depth-only no colour prior.

Training computes the prior of every cached clip with the same function on the same model-resolution
tensors the predictor builds (:func:`extrapolate`), so training and inference see one distribution.
"""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from . import depth as depth_norm
from .config import ModelConfig
from .flow_extrapolation import FlowExtrapolator
from .triplane import Triplane


def enabled(cfg: ModelConfig) -> bool:
    return cfg.motion_prior != "none"


def condition_channels(cfg: ModelConfig, latent_channels: int) -> int:
    """Channels of one branch's conditioning planes: the context latent, plus the prior latent."""
    return 2 * latent_channels if enabled(cfg) else latent_channels


def condition(ctx: Triplane, prior: Triplane | None, chunk_frames: int) -> Triplane:
    """Context (T = context_frames) + prior (T = chunk_frames) -> one conditioning triplane of chunk_frames
    temporal rows (the context's rows zero-padded after its last frame, as the UNet's stem pads them) and
    the prior's channels after the context's. ``prior`` None: the context as it is."""
    if prior is None:
        return ctx
    return pad_time(ctx, chunk_frames).cat(prior)


def pad_time(ctx: Triplane, frames: int) -> Triplane:
    """Temporal planes zero-padded after their last row to ``frames`` rows (a no-op when they have them)."""
    pad = frames - ctx.xt.shape[-2]
    if pad == 0:
        return ctx
    return Triplane(ctx.xy, F.pad(ctx.xt, (0, 0, 0, pad)), F.pad(ctx.yt, (0, 0, 0, pad)))


def extrapolate(x_r: Tensor | None, x_d: Tensor | None, cfg: ModelConfig, flow: FlowExtrapolator | None = None
                ) -> tuple[Tensor | None, Tensor | None]:
    """Model-resolution context clips -> their flow extrapolation over ``cfg.chunk_frames`` frames, as
    network tensors: colour (B, 3, T, H, W) in [-1, 1] -> (B, 3, K, H, W); depth [value, validity]
    (B, 2, T, H, W) -> (B, 2, K, H, W) with the warp's holes invalid. A modality given as None stays None."""
    flow = flow or FlowExtrapolator()
    ref = x_r if x_r is not None else x_d
    out_r, out_d = [], []
    for b in range(ref.shape[0]):
        rgb = None if x_r is None else _to_uint8(x_r[b])
        dep = None if x_d is None else _to_metres(x_d[b], cfg)
        p_r, p_d = flow.extrapolate(rgb, dep, cfg.chunk_frames)
        if p_r is not None:
            out_r.append(torch.from_numpy(p_r).float().div(127.5).sub(1.0).permute(3, 0, 1, 2))
        if p_d is not None:
            x, valid = depth_norm.normalize(torch.from_numpy(p_d), cfg.depth)
            out_d.append(depth_norm.with_validity(x[None, None], valid[None, None])[0])  # (2, K, H, W)
    dev = ref.device
    return (torch.stack(out_r).to(dev) if out_r else None), (torch.stack(out_d).to(dev) if out_d else None)


def _to_uint8(x: Tensor) -> np.ndarray:
    """(3, T, H, W) in [-1, 1] -> (T, H, W, 3) uint8 (exact for frames that came from uint8)."""
    return ((x.float().clamp(-1, 1) + 1.0) * 127.5).round().to(torch.uint8).permute(1, 2, 3, 0).cpu().numpy()


def _to_metres(x: Tensor, cfg: ModelConfig) -> np.ndarray:
    """(2, T, H, W) [value, validity] -> (T, H, W) metres, NaN where invalid."""
    metres = depth_norm.denormalize(x[0].float(), cfg.depth)
    return torch.where(x[1] > 0.5, metres, torch.full_like(metres, float("nan"))).cpu().numpy()
