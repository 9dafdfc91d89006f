"""Per-modality video autoencoder: a clip (B, C, T, H, W) <-> a tanh-bounded :class:`Triplane` latent.

Convolutional rather than the official ViT (23 M parameters): frames are encoded by a 2-D conv trunk with
temporal convolutions between levels, then each plane is produced by *attention pooling* along the axis it
collapses (a learned score per position, softmax over the collapsed axis). No weight depends on T, so the
same autoencoder encodes the 2-frame context and the 8-frame future (the official code trains a separate
2-frame AE per modality, docs/design-notes.md §1.2).

Decoding broadcasts the three planes back to a (B, C, T, h, w) volume (xy over T, xt over rows, yt over
columns), as PVDM does, and runs the mirrored conv trunk. :class:`TriplaneAutoencoder` is the paper-style
("direct") model whose decoder draws the frames; :mod:`.anchored` builds the anchored variant on the same
trunk.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..config import AutoencoderConfig
from ..triplane import Triplane
from .layers import ResBlock, group_norm, zero_module


class TemporalMix(nn.Module):
    """Residual temporal convolution over (B, C, T, h, w); zero-initialised so it starts as identity."""

    def __init__(self, channels: int, kernel: int):
        super().__init__()
        self.norm = group_norm(channels)
        self.conv = zero_module(nn.Conv3d(channels, channels, (kernel, 1, 1), padding=(kernel // 2, 0, 0)))

    def forward(self, x: Tensor) -> Tensor:
        return x + self.conv(F.silu(self.norm(x)))


def _per_frame(module: nn.Module, x: Tensor) -> Tensor:
    """Apply a 2-D module to every frame of (B, C, T, h, w)."""
    b, c, t, h, w = x.shape
    y = module(x.permute(0, 2, 1, 3, 4).reshape(b * t, c, h, w))
    return y.reshape(b, t, *y.shape[1:]).permute(0, 2, 1, 3, 4)


class Level(nn.Module):
    def __init__(self, cin: int, cout: int, blocks: int, temporal_kernel: int, resample: str):
        super().__init__()
        chans = [cin] + [cout] * blocks
        self.res = nn.ModuleList(ResBlock(chans[i], chans[i + 1], None) for i in range(blocks))
        self.temporal = TemporalMix(cout, temporal_kernel) if temporal_kernel > 1 else nn.Identity()
        self.resample = ResBlock(cout, cout, None, resample=resample) if resample != "none" else nn.Identity()

    def forward(self, x: Tensor) -> Tensor:
        for blk in self.res:
            x = _per_frame(blk, x)
        x = self.temporal(x)
        return _per_frame(self.resample, x)


class AxisPool(nn.Module):
    """Attention pooling of (B, C, T, h, w) along one axis (2 = T, 3 = rows, 4 = columns)."""

    def __init__(self, channels: int, axis: int):
        super().__init__()
        self.axis = axis
        self.score = nn.Conv3d(channels, 1, 1)

    def forward(self, x: Tensor) -> Tensor:
        w = torch.softmax(self.score(x), dim=self.axis)
        return (x * w).sum(dim=self.axis)


class TriplaneTrunk(nn.Module):
    """The conv encoder/decoder pair around the triplane bottleneck, shared by both autoencoders.

    ``encode_features`` maps per-frame inputs (B, C_in, T, H, W) to tanh-bounded planes (times
    ``latent_scale``); ``decode_features`` maps planes back to (B, chans[0], T, H, W) features at frame
    resolution, optionally adding per-level features of the anchor frame (broadcast over time) before each
    decoder level.
    """

    def __init__(self, cfg: AutoencoderConfig, in_channels: int):
        super().__init__()
        self.cfg = cfg
        chans = [cfg.channels * m for m in cfg.channel_mult]
        self.chans = chans
        n = len(chans)
        self.enc_in = nn.Conv2d(in_channels, chans[0], 3, padding=1)
        self.enc_levels = nn.ModuleList(
            Level(chans[max(i - 1, 0)], chans[i], cfg.num_res_blocks, cfg.temporal_kernel,
                  "down" if i < n - 1 else "none")
            for i in range(n)
        )
        c = chans[-1]
        self.enc_norm = group_norm(c)
        self.pool_xy = AxisPool(c, 2)
        self.pool_xt = AxisPool(c, 3)
        self.pool_yt = AxisPool(c, 4)
        lc = cfg.latent_channels
        self.to_latent = nn.ModuleDict({p: nn.Conv2d(c, lc, 1) for p in ("xy", "xt", "yt")})
        self.from_latent = nn.ModuleDict({p: nn.Conv2d(lc, c, 1) for p in ("xy", "xt", "yt")})
        self.dec_levels = nn.ModuleList(
            Level(chans[i], chans[max(i - 1, 0)], cfg.num_res_blocks, cfg.temporal_kernel,
                  "up" if i > 0 else "none")
            for i in reversed(range(n))
        )
        self.dec_norm = group_norm(chans[0])

    # Names of the encoder's sub-modules (training can freeze them to keep a latent space fixed).
    ENCODER_PARTS = ("enc_in", "enc_levels", "enc_norm", "pool_xy", "pool_xt", "pool_yt", "to_latent")

    @property
    def factor(self) -> int:
        return 2 ** (len(self.cfg.channel_mult) - 1)

    def encode_features(self, x: Tensor) -> Triplane:
        h = _per_frame(self.enc_in, x)
        for level in self.enc_levels:
            h = level(h)
        h = F.silu(_per_frame(self.enc_norm, h))
        xy, xt, yt = self.pool_xy(h), self.pool_xt(h), self.pool_yt(h)
        s = self.cfg.latent_scale
        return Triplane(
            torch.tanh(self.to_latent["xy"](xy)) * s,
            torch.tanh(self.to_latent["xt"](xt)) * s,
            torch.tanh(self.to_latent["yt"](yt)) * s,
        )

    def decode_features(self, z: Triplane, skips: list[Tensor] | None = None) -> Tensor:
        """``skips[i]``: (B, chans[i], H / 2**i, W / 2**i) anchor features, added before the decoder level
        that runs at that resolution."""
        z = z * (1.0 / self.cfg.latent_scale)
        xy = self.from_latent["xy"](z.xy)  # (B, C, h, w)
        xt = self.from_latent["xt"](z.xt)  # (B, C, T, w)
        yt = self.from_latent["yt"](z.yt)  # (B, C, T, h)
        h = xy[:, :, None, :, :] + xt[:, :, :, None, :] + yt[:, :, :, :, None]
        n = len(self.dec_levels)
        for j, level in enumerate(self.dec_levels):
            if skips is not None:
                h = h + skips[n - 1 - j][:, :, None]
            h = level(h)
        return F.silu(_per_frame(self.dec_norm, h))


class TriplaneAutoencoder(TriplaneTrunk):
    """The paper-style ("direct") autoencoder: the decoder draws every pixel of every frame."""

    def __init__(self, cfg: AutoencoderConfig, in_channels: int):
        super().__init__(cfg, in_channels)
        self.in_channels = in_channels
        self.dec_out = nn.Conv2d(self.chans[0], in_channels, 3, padding=1)

    def encode(self, x: Tensor, anchor: Tensor | None = None) -> Triplane:
        """(B, C_in, T, H, W) in [-1, 1] -> Triplane. ``anchor`` is accepted for a uniform interface with
        the anchored autoencoder and ignored."""
        return self.encode_features(x)

    def decode(self, z: Triplane, anchor: Tensor | None = None) -> Tensor:
        """Triplane -> (B, C_in, T, H, W) in (-1, 1)."""
        return torch.tanh(_per_frame(self.dec_out, self.decode_features(z)))

    def forward(self, x: Tensor) -> Tensor:
        return self.decode(self.encode(x))
