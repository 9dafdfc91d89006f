"""Autoencoder objectives: what one training clip costs, for the direct and the anchored decoder.

* direct: reconstruction of the clip (L1 or L2 per clip; depth over valid pixels only).
* anchored: the decoder's fields are composed (:mod:`syncvp_core.warp`) at model resolution against the
  anchor, then compared like the direct output at three scales (:func:`multiscale_recon_loss`). Depth: L1 in
  the depth representation over pixels valid in the target, plus a binary cross-entropy that teaches the
  validity logit which warp holes the target fills. Colour, both kinds: optional LPIPS-VGG on one random frame per clip
  (:mod:`.perceptual`; the metric is LPIPS-Alex, so training never optimises the score it is judged by).

Inputs are network tensors: colour (B, 3, T, H, W) in [-1, 1]; depth (B, 1, T, H, W) normalised with its
validity mask.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from .. import depth as depth_norm
from ..models.anchored import empty_anchor
from ..warp import compose_depth, compose_rgb


def recon_loss(pred: Tensor, target: Tensor, mask: Tensor | None, kind: str) -> Tensor:
    """Per-clip reconstruction error averaged over clips; ``mask`` (same shape, bool) = pixels that count."""
    err = (pred - target).abs() if kind == "l1" else (pred - target) ** 2
    dims = tuple(range(1, err.ndim))
    if mask is None:
        return err.mean(dim=dims).mean()
    m = mask.to(err.dtype)
    return ((err * m).sum(dim=dims) / m.sum(dim=dims).clamp_min(1.0)).mean()


def multiscale_recon_loss(pred: Tensor, target: Tensor, mask: Tensor | None, kind: str, levels: int = 3
                          ) -> Tensor:
    """:func:`recon_loss` averaged over ``levels`` scales (2x2 average pooling, masked for depth).

    A photometric loss on warped frames only sees motion within about a pixel of the current flow; the
    coarser scales widen that basin so that motions of several pixels are found from a zero-flow start.
    """
    total = recon_loss(pred, target, mask, kind)
    m = torch.ones_like(pred[:, :1]) if mask is None else mask.to(pred.dtype)
    for _ in range(levels - 1):
        pred, target, m = (F.avg_pool3d(v, (1, 2, 2)) for v in (pred * m, target * m, m))
        pred, target = pred / m.clamp_min(1e-6), target / m.clamp_min(1e-6)
        total = total + recon_loss(pred, target, (m > 0.5).expand_as(pred), kind)
    return total / levels


def anchored_inputs(x: Tensor, mask: Tensor | None, anchor_index: int, modality: str,
                    drop: Tensor | None = None) -> tuple[Tensor, Tensor]:
    """(network clip, network anchor) from a clip tensor holding the anchor frame at ``anchor_index``;
    clips where ``drop`` (B,) is True get the empty anchor."""
    net = x if modality == "rgb" else depth_norm.with_validity(x, mask)
    anchor = net[:, :, anchor_index]
    if drop is not None and bool(drop.any()):
        anchor = torch.where(drop.to(anchor.device).view(-1, 1, 1, 1), empty_anchor(anchor), anchor)
    return net, anchor


def anchored_outputs(fields: Tensor, anchor: Tensor, modality: str) -> tuple[Tensor, Tensor | None]:
    """Compose decoder fields against the model-resolution anchor: (frames, validity or None)."""
    if modality == "rgb":
        return compose_rgb(anchor, fields), None
    return compose_depth(anchor[:, :1], anchor[:, 1:] > 0.5, fields, soft=True)


def hole_validity_loss(fields: Tensor, warp_valid: Tensor, target_mask: Tensor) -> Tensor:
    """BCE of the depth validity logit against the target's validity, on warp holes only."""
    holes = ~warp_valid
    if not bool(holes.any()):
        return fields.sum() * 0.0
    logits = fields[:, 5:6]
    return F.binary_cross_entropy_with_logits(logits[holes], target_mask[holes].to(logits.dtype))


def perceptual_term(lpips, pred: Tensor, target: Tensor, frame_idx: Tensor) -> Tensor:
    """LPIPS on one frame per clip: (B, 3, T, H, W) tensors, ``frame_idx`` (B,)."""
    b = torch.arange(pred.shape[0], device=pred.device)
    i = frame_idx.to(pred.device)
    return lpips(pred[b, :, i], target[b, :, i]).mean()
