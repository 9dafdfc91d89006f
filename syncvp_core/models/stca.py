"""Cross-modal fusion blocks between the RGB and depth branches.

STCA (Spatio-Temporal Cross-modal Attention, SyncVP §3): for each plane p of the triplane, the tokens are
the plane's positions (spatial for xy, spatio-temporal for xt and yt). With per-modality projections

    Q_R = W_qR h_R,  Q_D = W_qD h_D,  V_R = W_vR h_R,  V_D = W_vD h_D        (per head, d = C / heads)
    A   = Q_R Q_D^T / sqrt(d)                                                  (ONE matrix per plane/head)
    h_R <- h_R + W_oR softmax_rows(A)   V_D                                    (RGB reads depth)
    h_D <- h_D + W_oD softmax_rows(A^T) V_R                                    (depth reads RGB)

There is no key projection: each modality's query is the other's key, so the attention matrix is shared.
Differences from the official code, deliberately (docs/design-notes.md §3.2):

* heads are split on the channel axis of (B, N, C) token tensors, so attention runs over positions, not
  over channel groups (the official ``.view`` on channels-first tensors attends over channel groups);
* pre-norm with the residual added to the raw activation (the official adds it to the normalised one);
* zero-initialised output projections, so a freshly joined model equals the two single models exactly.

``FullCrossAttention`` is the ablation: the same kernel over the concatenated tokens of all three planes,
so the cost ratio between the two is exactly the token-structure ratio (docs/design-notes.md §3.3).

Both blocks run the same few large kernels: per-plane norms, then ONE projection per weight over the
concatenated tokens of all planes, the attention, ONE output projection per modality. STCA's per-plane
attention runs planes with equal token counts (xt and yt of a square latent; all three when T = H = W) as
one batched kernel, so a triplane costs one or two attention calls rather than three small ones. Looping
over planes with small kernels made STCA slower than full attention on the CPU despite fewer FLOPs.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..triplane import Triplane
from .layers import from_tokens, group_norm, merge_heads, split_heads, to_tokens, zero_module


def shared_cross_attention(q_r: Tensor, q_d: Tensor, v_r: Tensor, v_d: Tensor, heads: int) -> tuple[Tensor, Tensor]:
    """The STCA kernel on token tensors (B, N, C) -> (out_r, out_d), each (B, N, C).

    One attention matrix A = Q_R Q_D^T / sqrt(d) per head; RGB attends with softmax over A's rows,
    depth with softmax over A^T's rows (= A's columns). A^T = Q_D Q_R^T / sqrt(d) exactly, so each direction
    is one fused scaled-dot-product attention with the other modality's queries as keys: the logits are
    computed twice instead of materialising A, which is 1.4x (N = 256) to 3x (N = 1024-1536) faster on the CPU
    and lets a GPU use flash attention; softmax accumulates in fp32 inside the fused kernels.
    """
    qr, qd, vr, vd = (split_heads(x, heads) for x in (q_r, q_d, v_r, v_d))
    out_r = F.scaled_dot_product_attention(qr, qd, vd)
    out_d = F.scaled_dot_product_attention(qd, qr, vr)
    return merge_heads(out_r), merge_heads(out_d)


def equal_size_runs(sizes: list[int]) -> list[tuple[int, int]]:
    """Consecutive planes with the same token count, as (first plane, number of planes) runs."""
    runs: list[tuple[int, int]] = []
    for i, n in enumerate(sizes):
        if runs and sizes[runs[-1][0]] == n:
            runs[-1] = (runs[-1][0], runs[-1][1] + 1)
        else:
            runs.append((i, 1))
    return runs


class _CrossModalBase(nn.Module):
    """Norms, projections and residuals shared by STCA and full cross-attention; ``_mix`` is the attention."""

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

    def _mix(self, q_r: Tensor, q_d: Tensor, v_r: Tensor, v_d: Tensor, sizes: list[int]) -> tuple[Tensor, Tensor]:
        """Projected tokens of all planes concatenated (B, sum(sizes), C) -> attention outputs, same layout."""
        raise NotImplementedError

    def forward(self, h_r: Triplane, h_d: Triplane) -> tuple[Triplane, Triplane]:
        shapes = [p.shape[-2:] for p in h_r.planes()]
        sizes = [s[0] * s[1] for s in shapes]
        t_r = torch.cat([to_tokens(self.norm_r(p)) for p in h_r.planes()], dim=1)
        t_d = torch.cat([to_tokens(self.norm_d(p)) for p in h_d.planes()], dim=1)
        o_r, o_d = self._mix(self.q_r(t_r), self.q_d(t_d), self.v_r(t_r), self.v_d(t_d), sizes)
        parts_r = torch.split(self.out_r(o_r), sizes, dim=1)
        parts_d = torch.split(self.out_d(o_d), sizes, dim=1)
        new_r = [p + from_tokens(u, s[0], s[1]) for p, u, s in zip(h_r.planes(), parts_r, shapes)]
        new_d = [p + from_tokens(u, s[0], s[1]) for p, u, s in zip(h_d.planes(), parts_d, shapes)]
        return Triplane(*new_r), Triplane(*new_d)


class STCA(_CrossModalBase):
    """Factorised: one cross-attention per plane (xy, xt, yt), shared weights across planes."""

    def _mix(self, q_r, q_d, v_r, v_d, sizes):
        b, _, c = q_r.shape
        out_r, out_d = [], []
        start = 0
        for first, k in equal_size_runs(sizes):
            n = sizes[first]

            def planes_as_batch(x, start=start, k=k, n=n):
                # (B, k*n, C) -> (B*k, n, C): k planes of n tokens each become k batch entries.
                return x[:, start:start + k * n].reshape(b * k, n, c)

            a_r, a_d = shared_cross_attention(*(planes_as_batch(x) for x in (q_r, q_d, v_r, v_d)), self.heads)
            out_r.append(a_r.reshape(b, k * n, c))
            out_d.append(a_d.reshape(b, k * n, c))
            start += k * n
        return torch.cat(out_r, dim=1), torch.cat(out_d, dim=1)


class FullCrossAttention(_CrossModalBase):
    """Ablation: one cross-attention over the concatenated tokens of all three planes."""

    def _mix(self, q_r, q_d, v_r, v_d, sizes):
        return shared_cross_attention(q_r, q_d, v_r, v_d, self.heads)


class NoFusion(nn.Module):
    def forward(self, h_r: Triplane, h_d: Triplane) -> tuple[Triplane, Triplane]:
        return h_r, h_d
