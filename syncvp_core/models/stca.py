"""Cross-modal fusion blocks between the RGB and depth branches.

STCA (Spatio-Temporal Cross-modal Attention, SyncVP §3): for each plane p of the triplane, the tokens are
the plane's positions (spatial for xy, spatio-temporal for xt and yt). With per-modality projections

    Q_R = W_qR h_R,  Q_D = W_qD h_D,  V_R = W_vR h_R,  V_D = W_vD h_D        (per head, d = C / heads)
    A   = Q_R Q_D^T / sqrt(d)                                                  (ONE matrix per plane/head)
    h_R <- h_R + W_oR softmax_rows(A)   V_D                                    (RGB reads depth)
    h_D <- h_D + W_oD softmax_rows(A^T) V_R                                    (depth reads RGB)

There is no key projection: each modality's query is the other's key, so the attention matrix is shared.
Differences from the official code, deliberately (notes §3.3-3.4):

* heads are split on the channel axis of (B, N, C) token tensors, so attention runs over positions, not
  over channel groups (the official ``.view`` on channels-first tensors attends over channel groups);
* pre-norm with the residual added to the raw activation (the official adds it to the normalised one);
* zero-initialised output projections, so a freshly joined model equals the two single models exactly.

``FullCrossAttention`` is the ablation: the same kernel over the concatenated tokens of all three planes,
so the cost ratio between the two is exactly the token-structure ratio (notes §3.6).
"""
from __future__ import annotations

import torch
from torch import Tensor, nn

from ..triplane import Triplane
from .layers import from_tokens, group_norm, merge_heads, split_heads, to_tokens, zero_module


def shared_cross_attention(q_r: Tensor, q_d: Tensor, v_r: Tensor, v_d: Tensor, heads: int) -> tuple[Tensor, Tensor]:
    """The STCA kernel on token tensors (B, N, C) -> (out_r, out_d), each (B, N, C).

    One attention matrix A = Q_R Q_D^T / sqrt(d) per head; RGB attends with softmax over A's rows,
    depth with softmax over A^T's rows (= A's columns). Softmax in fp32.
    """
    qr, qd, vr, vd = (split_heads(x, heads) for x in (q_r, q_d, v_r, v_d))
    scale = qr.shape[-1] ** -0.5
    a = torch.matmul(qr, qd.transpose(-1, -2)).float() * scale  # (B, h, N_r, N_d)
    out_r = torch.matmul(torch.softmax(a, dim=-1).to(vd.dtype), vd)
    out_d = torch.matmul(torch.softmax(a.transpose(-1, -2), dim=-1).to(vr.dtype), vr)
    return merge_heads(out_r), merge_heads(out_d)


class _CrossModalBase(nn.Module):
    def __init__(self, channels: int, heads: int):
        super().__init__()
        if channels % heads:
            raise ValueError(f"fusion channels {channels} not divisible by heads {heads}")
        self.heads = heads
        self.norm_r = group_norm(channels)
        self.norm_d = group_norm(channels)
        self.q_r = nn.Linear(channels, channels)
        self.q_d = nn.Linear(channels, channels)
        self.v_r = nn.Linear(channels, channels)
        self.v_d = nn.Linear(channels, channels)
        self.out_r = zero_module(nn.Linear(channels, channels))
        self.out_d = zero_module(nn.Linear(channels, channels))

    def _attend(self, t_r: Tensor, t_d: Tensor) -> tuple[Tensor, Tensor]:
        """Normalised token tensors (B, N, C) -> residual updates (B, N, C)."""
        o_r, o_d = shared_cross_attention(self.q_r(t_r), self.q_d(t_d), self.v_r(t_r), self.v_d(t_d), self.heads)
        return self.out_r(o_r), self.out_d(o_d)


class STCA(_CrossModalBase):
    """Factorised: one cross-attention per plane (xy, xt, yt), shared weights across planes."""

    def forward(self, h_r: Triplane, h_d: Triplane) -> tuple[Triplane, Triplane]:
        out_r, out_d = [], []
        for p_r, p_d in zip(h_r.planes(), h_d.planes()):
            hh, ww = p_r.shape[-2:]
            u_r, u_d = self._attend(to_tokens(self.norm_r(p_r)), to_tokens(self.norm_d(p_d)))
            out_r.append(p_r + from_tokens(u_r, hh, ww))
            out_d.append(p_d + from_tokens(u_d, hh, ww))
        return Triplane(*out_r), Triplane(*out_d)


class FullCrossAttention(_CrossModalBase):
    """Ablation: one cross-attention over the concatenated tokens of all three planes."""

    def forward(self, h_r: Triplane, h_d: Triplane) -> tuple[Triplane, Triplane]:
        shapes = [p.shape[-2:] for p in h_r.planes()]
        sizes = [s[0] * s[1] for s in shapes]
        t_r = torch.cat([to_tokens(self.norm_r(p)) for p in h_r.planes()], dim=1)
        t_d = torch.cat([to_tokens(self.norm_d(p)) for p in h_d.planes()], dim=1)
        u_r, u_d = self._attend(t_r, t_d)
        parts_r = torch.split(u_r, sizes, dim=1)
        parts_d = torch.split(u_d, sizes, dim=1)
        new_r = [p + from_tokens(u, s[0], s[1]) for p, u, s in zip(h_r.planes(), parts_r, shapes)]
        new_d = [p + from_tokens(u, s[0], s[1]) for p, u, s in zip(h_d.planes(), parts_d, shapes)]
        return Triplane(*new_r), Triplane(*new_d)


class NoFusion(nn.Module):
    def forward(self, h_r: Triplane, h_d: Triplane) -> tuple[Triplane, Triplane]:
        return h_r, h_d
