"""The factorised video latent of PVDM/SyncVP as a typed triple.

A clip of T frames of H x W pixels is represented by three 2-D feature planes:

* ``xy``: (B, C, H, W)  the spatial plane (time collapsed),
* ``xt``: (B, C, T, W)  the width-time plane (height collapsed; x = column index),
* ``yt``: (B, C, T, H)  the height-time plane (width collapsed; y = row index).

Note the official code names the T x W plane ``yt``; here the name lists the axes a plane keeps.
Planes are never packed into one flat tensor sliced by offsets: every operation maps over the three
named fields, so a plane can only ever condition or attend to the plane it means to.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor


@dataclass
class Triplane:
    xy: Tensor
    xt: Tensor
    yt: Tensor

    @property
    def shape_thw(self) -> tuple[int, int, int]:
        """(T, H, W) of the represented clip at this plane resolution."""
        return self.xt.shape[-2], self.xy.shape[-2], self.xy.shape[-1]

    @property
    def batch(self) -> int:
        return self.xy.shape[0]

    @property
    def channels(self) -> int:
        return self.xy.shape[1]

    def planes(self) -> tuple[Tensor, Tensor, Tensor]:
        return self.xy, self.xt, self.yt

    def map(self, fn: Callable[[Tensor], Tensor]) -> Triplane:
        return Triplane(fn(self.xy), fn(self.xt), fn(self.yt))

    def zip(self, other: Triplane, fn: Callable[[Tensor, Tensor], Tensor]) -> Triplane:
        return Triplane(fn(self.xy, other.xy), fn(self.xt, other.xt), fn(self.yt, other.yt))

    def __mul__(self, k: float | Tensor) -> Triplane:
        return self.map(lambda p: p * k)

    __rmul__ = __mul__

    def cat(self, other: Triplane, dim: int = 1) -> Triplane:
        return self.zip(other, lambda a, b: torch.cat([a, b], dim=dim))

    def detach(self) -> Triplane:
        return self.map(Tensor.detach)

    def to(self, *args, **kwargs) -> Triplane:
        return self.map(lambda p: p.to(*args, **kwargs))

    def numel_per_sample(self) -> int:
        return sum(p[0].numel() for p in self.planes())

    @staticmethod
    def randn_like(tp: Triplane, generator: torch.Generator | None = None) -> Triplane:
        # Draw on the generator's device (a CPU generator with CUDA tensors is allowed), then move.
        dev = generator.device if generator is not None else None
        return tp.map(lambda p: torch.randn(p.shape, generator=generator, device=dev or p.device,
                                            dtype=p.dtype).to(p.device))

    @staticmethod
    def zeros(batch: int, channels: int, t: int, h: int, w: int, device=None, dtype=None) -> Triplane:
        z = dict(device=device, dtype=dtype)
        return Triplane(
            torch.zeros(batch, channels, h, w, **z),
            torch.zeros(batch, channels, t, w, **z),
            torch.zeros(batch, channels, t, h, **z),
        )

    def where(self, cond: Tensor, other: Triplane) -> Triplane:
        """Per-sample select: ``cond`` is (B,) bool; True takes self, False takes other."""
        c = cond.reshape(-1, 1, 1, 1)
        return self.zip(other, lambda a, b: torch.where(c, a, b))
