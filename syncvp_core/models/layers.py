"""Building blocks shared by the autoencoder and the denoiser. Plain 2-D modules: the triplane code
applies them to each plane (same weights for the three planes, as in PVDM/SyncVP)."""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn


def group_norm(channels: int) -> nn.GroupNorm:
    # 32 groups like the official UNet when the width allows; small CPU models get fewer groups.
    groups = math.gcd(32, channels)
    return nn.GroupNorm(groups, channels, eps=1e-6)


def zero_module(m: nn.Module) -> nn.Module:
    for p in m.parameters():
        nn.init.zeros_(p)
    return m


def timestep_embedding(t: Tensor, dim: int, max_period: float = 10000.0) -> Tensor:
    """Sinusoidal embedding of (B,) timesteps -> (B, dim): [cos | sin] like the official UNet."""
    half = dim // 2
    freqs = torch.exp(-math.log(max_period) * torch.arange(half, device=t.device, dtype=torch.float32) / half)
    args = t.float()[:, None] * freqs[None]
    return torch.cat([torch.cos(args), torch.sin(args)], dim=-1)


class ResBlock(nn.Module):
    """GN-SiLU-conv, FiLM from the embedding (scale/shift), GN-SiLU-dropout-zero-conv, residual.

    ``resample``: "none" | "down" (2x2 average pool) | "up" (nearest x2), applied between the first
    activation and conv and to the skip path, as in the official UNet's up/down blocks.
    """

    def __init__(self, cin: int, cout: int, emb_dim: int | None, dropout: float = 0.0, resample: str = "none"):
        super().__init__()
        self.resample = resample
        self.norm1 = group_norm(cin)
        self.conv1 = nn.Conv2d(cin, cout, 3, padding=1)
        self.emb = nn.Linear(emb_dim, 2 * cout) if emb_dim else None
        self.norm2 = group_norm(cout)
        self.drop = nn.Dropout(dropout)
        self.conv2 = zero_module(nn.Conv2d(cout, cout, 3, padding=1))
        self.skip = nn.Identity() if cin == cout else nn.Conv2d(cin, cout, 1)

    def _resample(self, x: Tensor) -> Tensor:
        if self.resample == "down":
            return F.avg_pool2d(x, 2)
        if self.resample == "up":
            return F.interpolate(x, scale_factor=2.0, mode="nearest")
        return x

    def forward(self, x: Tensor, emb: Tensor | None = None) -> Tensor:
        h = F.silu(self.norm1(x))
        h = self.conv1(self._resample(h))
        x = self._resample(x)
        h = self.norm2(h)
        if self.emb is not None:
            scale, shift = self.emb(F.silu(emb)).chunk(2, dim=1)
            h = h * (1 + scale[:, :, None, None]) + shift[:, :, None, None]
        h = self.conv2(self.drop(F.silu(h)))
        return self.skip(x) + h


def split_heads(x: Tensor, heads: int) -> Tensor:
    """(B, N, C) -> (B, heads, N, C // heads)."""
    b, n, c = x.shape
    return x.reshape(b, n, heads, c // heads).permute(0, 2, 1, 3)


def merge_heads(x: Tensor) -> Tensor:
    """(B, heads, N, d) -> (B, N, heads * d)."""
    b, h, n, d = x.shape
    return x.permute(0, 2, 1, 3).reshape(b, n, h * d)


def to_tokens(x: Tensor) -> Tensor:
    """(B, C, H, W) -> (B, H*W, C): one token per plane position."""
    b, c, h, w = x.shape
    return x.reshape(b, c, h * w).permute(0, 2, 1)


def from_tokens(x: Tensor, h: int, w: int) -> Tensor:
    """(B, H*W, C) -> (B, C, H, W)."""
    b, n, c = x.shape
    return x.permute(0, 2, 1).reshape(b, c, h, w)


class SelfAttention(nn.Module):
    """Pre-norm multi-head self-attention over a token sequence, zero-initialised output (identity at init)."""

    def __init__(self, channels: int, heads: int):
        super().__init__()
        if channels % heads:
            raise ValueError(f"channels {channels} not divisible by heads {heads}")
        self.heads = heads
        self.norm = nn.LayerNorm(channels)
        self.qkv = nn.Linear(channels, 3 * channels)
        self.out = zero_module(nn.Linear(channels, channels))

    def forward(self, tokens: Tensor) -> Tensor:
        """(B, N, C) -> (B, N, C)."""
        q, k, v = self.qkv(self.norm(tokens)).chunk(3, dim=-1)
        h = self.heads
        a = F.scaled_dot_product_attention(split_heads(q, h), split_heads(k, h), split_heads(v, h))
        return tokens + self.out(merge_heads(a))


class PlaneAttention(nn.Module):
    """Self-attention over the positions of one 2-D plane (B, C, h, w)."""

    def __init__(self, channels: int, heads: int):
        super().__init__()
        self.attn = SelfAttention(channels, heads)

    def forward(self, x: Tensor) -> Tensor:
        h, w = x.shape[-2:]
        return from_tokens(self.attn(to_tokens(x)), h, w)
