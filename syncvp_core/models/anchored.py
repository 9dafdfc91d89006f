"""The anchored autoencoder: a triplane latent of what *changes* relative to the newest observed frame.

Both halves see the anchor (the newest context frame, at model resolution):

* the encoder reads, per frame, ``[x_t, x_t - anchor, anchor]``, so the difference image (motion edges,
  appearance change) is an explicit input and the latent does not have to carry the static scene;
* the decoder adds per-level features of the anchor (a small conv pyramid, broadcast over time) to the
  decoded triplane volume, and its zero-initialised head outputs per frame the fields that
  :mod:`syncvp_core.warp` composes at the sensor resolution: flow, blend mask, residual (+ fill and
  validity logit for depth).

The head starts at zero, so an untrained anchored model already forecasts copy-last exactly, and the
same autoencoder encodes contexts (anchor = their own last frame: the latent says how the scene moved
into the anchor) and futures (how it moves on from it).

Depth inputs have two channels, [normalised depth, validity] (:func:`syncvp_core.depth.with_validity`).

A modality whose sensor is silent has no anchor: it gets :func:`empty_anchor` (mid-grey colour; depth
with every pixel invalid), with which the decoder must draw the whole frame (colour: the residual at
model resolution; depth: the fill value). Training replaces the anchor by the empty one for a fraction of
clips (``ae.anchor_dropout``) so this path is learned.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..config import AutoencoderConfig
from ..triplane import Triplane
from ..warp import field_channels
from .autoencoder import TriplaneTrunk, _per_frame
from .layers import ResBlock, zero_module


def empty_anchor(like: Tensor) -> Tensor:
    """The anchor of a modality with no observation, shaped like ``like`` (B, C, H, W): zeros, and for
    depth ([value, validity]) value -1 (far) with validity 0."""
    out = torch.zeros_like(like)
    if like.shape[1] == 2:
        out[:, 0] = -1.0
    return out


class AnchoredAutoencoder(TriplaneTrunk):
    def __init__(self, cfg: AutoencoderConfig, modality: str):
        value_channels = 3 if modality == "rgb" else 1
        # Depth travels with its validity mask as a second channel.
        in_channels = value_channels if modality == "rgb" else 2
        super().__init__(cfg, 3 * in_channels)
        self.in_channels = in_channels
        self.modality = modality
        self.out_channels = field_channels(modality, value_channels)
        chans = self.chans
        self.anchor_in = nn.Conv2d(self.in_channels, chans[0], 3, padding=1)
        self.anchor_down = nn.ModuleList(
            ResBlock(chans[i - 1], chans[i], None, resample="down") for i in range(1, len(chans)))
        self.fields_out = zero_module(nn.Conv2d(chans[0], self.out_channels, 3, padding=1))

    def _anchor_pyramid(self, anchor: Tensor) -> list[Tensor]:
        feats = [F.silu(self.anchor_in(anchor))]
        for down in self.anchor_down:
            feats.append(down(feats[-1]))
        return feats

    def encode(self, x: Tensor, anchor: Tensor) -> Triplane:
        """x (B, C_in, T, H, W), anchor (B, C_in, H, W), both in the network range -> Triplane."""
        a = anchor[:, :, None].expand_as(x)
        return self.encode_features(torch.cat([x, x - a, a], dim=1))

    def decode(self, z: Triplane, anchor: Tensor) -> Tensor:
        """Triplane + anchor (B, C_in, H, W) -> fields (B, K, T, H, W) at model resolution."""
        h = self.decode_features(z, self._anchor_pyramid(anchor))
        return _per_frame(self.fields_out, h)

    def forward(self, x: Tensor, anchor: Tensor) -> Tensor:
        return self.decode(self.encode(x, anchor), anchor)
