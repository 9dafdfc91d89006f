"""One denoiser branch: a PVDM-style 2-D UNet run over the three planes of a triplane latent.

Every conv, ResBlock and plane attention is applied to the three planes with the same weights (as in
PVDM/SyncVP); a learned per-plane embedding tells the blocks which plane they are looking at (the
official code has none). At the configured attention levels a *joint* attention over the tokens of all
three planes follows each block: the path by which the planes exchange information.

Context conditioning is plane-aware: each context plane is concatenated on channels to the matching
noisy plane only. Context temporal planes hold ``context_frames`` rows and are zero-padded along time to
``chunk_frames`` rows (the official code pads the flattened latent instead, which puts the context's
height-time plane into the target's width-time plane, docs/design-notes.md §2.2). With ``motion_prior``
the conditioning arrives padded, the prior latent's planes after the context's
(:func:`syncvp_core.motion_prior.condition`).

The forward is written as ``stem`` -> ``blocks[i]`` -> ``head`` so that the joint model can interleave two
branches with fusion blocks between them (no Python generators: they break export).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..config import ModelConfig
from ..motion_prior import condition_channels, pad_time
from ..triplane import Triplane
from .layers import PlaneAttention, ResBlock, SelfAttention, group_norm, timestep_embedding, zero_module


class JointPlaneAttention(nn.Module):
    """Self-attention over the concatenated tokens of the three planes."""

    def __init__(self, channels: int, heads: int):
        super().__init__()
        self.attn = SelfAttention(channels, heads)

    def forward(self, h: Triplane) -> Triplane:
        shapes = [p.shape[-2:] for p in h.planes()]
        tokens = torch.cat([p.flatten(2) for p in h.planes()], dim=2).permute(0, 2, 1)  # (B, N, C)
        tokens = self.attn(tokens).permute(0, 2, 1)
        sizes = [s[0] * s[1] for s in shapes]
        parts = torch.split(tokens, sizes, dim=2)
        out = [p.reshape(*p.shape[:2], s[0], s[1]) for p, s in zip(parts, shapes)]
        return Triplane(*out)


class UNetBlock(nn.Module):
    """ResBlock(s) [+ plane attention] [+ joint attention] [+ trailing up-sampling ResBlock]."""

    def __init__(self, res: list[ResBlock], level: int, attn: PlaneAttention | None = None,
                 joint: JointPlaneAttention | None = None, up: ResBlock | None = None):
        super().__init__()
        self.level = level
        self.res = nn.ModuleList(res)
        self.attn = attn
        self.joint = joint
        self.up = up

    def forward(self, h: Triplane, embs: tuple[Tensor, Tensor, Tensor]) -> Triplane:
        planes = list(h.planes())
        for i in range(3):
            x = planes[i]
            for j, blk in enumerate(self.res):
                x = blk(x, embs[i])
                if j == 0 and self.attn is not None:
                    x = self.attn(x)
            planes[i] = x
        out = Triplane(*planes)
        if self.joint is not None:
            out = self.joint(out)
        if self.up is not None:
            out = Triplane(*(self.up(p, e) for p, e in zip(out.planes(), embs)))
        return out


class BranchUNet(nn.Module):
    """Denoiser for one modality (or, with doubled channels, both stacked: the concat ablation)."""

    def __init__(self, cfg: ModelConfig, latent_channels: int, context_channels: int | None = None):
        super().__init__()
        u = cfg.unet
        self.cfg = cfg
        self.latent_channels = latent_channels
        # The context latent, and with ``motion_prior`` the prior latent after it (motion_prior.condition).
        if context_channels is None:
            context_channels = condition_channels(cfg, latent_channels)
        self.context_channels = context_channels
        self.chunk_frames = cfg.chunk_frames
        c0 = u.channels
        emb = c0 * u.emb_mult
        self.time_mlp = nn.Sequential(nn.Linear(c0, emb), nn.SiLU(), nn.Linear(emb, emb))
        # Which modalities the context holds (rgb, depth). Zero-initialised: a single-modality model never
        # sees the other flag set, so its column stays zero and a joint model built from two single
        # models computes exactly what they computed.
        self.presence = zero_module(nn.Linear(2, emb, bias=False))
        self.plane_emb = nn.Parameter(torch.zeros(3, emb))
        self.conv_in = nn.Conv2d(latent_channels + self.context_channels, c0, 3, padding=1)

        def attn_pair(ch: int, level: int):
            if level not in u.attention_levels:
                return None, None
            return PlaneAttention(ch, u.num_heads), JointPlaneAttention(ch, u.num_heads)

        blocks: list[UNetBlock] = []
        kinds: list[str] = []
        skip_ch = [c0]
        ch = c0
        n_levels = len(u.channel_mult)
        for level, mult in enumerate(u.channel_mult):
            for _ in range(u.num_res_blocks):
                cout = c0 * mult
                a, j = attn_pair(cout, level)
                blocks.append(UNetBlock([ResBlock(ch, cout, emb, u.dropout)], level, a, j))
                kinds.append("in")
                ch = cout
                skip_ch.append(ch)
            if level < n_levels - 1:
                _, j = attn_pair(ch, level)
                blocks.append(UNetBlock([ResBlock(ch, ch, emb, u.dropout, resample="down")], level, None, j))
                kinds.append("in")
                skip_ch.append(ch)
        deepest = n_levels - 1
        a, j = attn_pair(ch, deepest)
        blocks.append(UNetBlock([ResBlock(ch, ch, emb, u.dropout), ResBlock(ch, ch, emb, u.dropout)],
                                deepest, a if a is not None else PlaneAttention(ch, u.num_heads), j))
        kinds.append("mid")
        for level in reversed(range(n_levels)):
            mult = u.channel_mult[level]
            for r in range(u.num_res_blocks + 1):
                cout = c0 * mult
                a, j = attn_pair(cout, level)
                up = None
                if level > 0 and r == u.num_res_blocks:
                    up = ResBlock(cout, cout, emb, u.dropout, resample="up")
                blocks.append(UNetBlock([ResBlock(ch + skip_ch.pop(), cout, emb, u.dropout)], level, a, j, up))
                kinds.append("out")
                ch = cout
        self.blocks = nn.ModuleList(blocks)
        self.kinds = kinds
        self.levels = [b.level for b in blocks]
        self.block_channels = [self._out_channels(b) for b in blocks]
        self.out_norm = group_norm(ch)
        self.out_conv = zero_module(nn.Conv2d(ch, latent_channels, 3, padding=1))

    @staticmethod
    def _out_channels(b: UNetBlock) -> int:
        last = b.up if b.up is not None else b.res[-1]
        return last.conv2.out_channels

    # -- pieces used by the joint model ------------------------------------------------------------------

    def embed(self, t: Tensor, present: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        e = self.time_mlp(timestep_embedding(t, self.cfg.unet.channels)) + self.presence(present)
        return e + self.plane_emb[0], e + self.plane_emb[1], e + self.plane_emb[2]

    def stem(self, x: Triplane, ctx: Triplane) -> Triplane:
        return x.cat(pad_time(ctx, self.chunk_frames)).map(self.conv_in)

    def head(self, h: Triplane) -> Triplane:
        return h.map(lambda p: self.out_conv(F.silu(self.out_norm(p))))

    def run_block(self, i: int, h: Triplane, skips: list[Triplane], embs) -> Triplane:
        if self.kinds[i] == "out":
            h = h.cat(skips.pop())
        return self.blocks[i](h, embs)

    # -- standalone (single-modality) forward ------------------------------------------------------------

    def forward(self, x: Triplane, t: Tensor, ctx: Triplane, present: Tensor) -> Triplane:
        """x: noisy latent (T = chunk_frames), t: (B,) int, ctx: context latent (T = context_frames),
        present: (B, 2) float flags (rgb, depth). Returns predicted noise, same shapes as x."""
        embs = self.embed(t, present)
        h = self.stem(x, ctx)
        skips = [h]
        for i in range(len(self.blocks)):
            h = self.run_block(i, h, skips, embs)
            if self.kinds[i] == "in":
                skips.append(h)
        return self.head(h)
