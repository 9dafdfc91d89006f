"""Training objectives: epsilon-prediction MSE for one branch and for the joint model.

Joint (SyncVP): one timestep per clip for both modalities and, with ``shared_noise``, the *same* epsilon
tensor noising both latents; loss = MSE(eps_R_hat, eps_R) + MSE(eps_D_hat, eps_D). The guidance mode
of each clip decides whose context is visible (``present`` flags); every target is always predicted.

These are the only implementation, for one process and for data-parallel training alike. With
``share`` (any object with ``rank`` and ``world``, e.g. :class:`~syncvp_core.training.dist.DistInfo`) the
latents are this process's part of a global batch of ``world`` x local clips: every random draw is made
for the global batch, from one generator, in a fixed order (timesteps, then the context keep flags or
guidance modes, then the noise planes xy, xt, yt), and this process keeps the rows at global positions
``world * j + rank``. So a run draws the same numbers whatever the number of processes, which exact resume
and the DDP-equals-one-process test rely on (docs/design-notes.md, "Training draws").
"""
from __future__ import annotations

from typing import Protocol

import torch
from torch import Tensor

from ..config import DiffusionConfig
from ..triplane import Triplane
from .guidance import presence, sample_modes
from .schedule import NoiseSchedule


class BatchShare(Protocol):
    rank: int
    world: int


def share_of(x: Tensor, share: BatchShare | None) -> Tensor:
    """This process's rows of a value drawn for the global batch (global position ``world * j + rank``)."""
    return x[share.rank :: share.world] if share is not None and share.world > 1 else x


def _global(local: int, share: BatchShare | None) -> int:
    return local * (share.world if share is not None else 1)


def triplane_mse(a: Triplane, b: Triplane) -> Tensor:
    """Mean squared error over every latent element of all three planes (each element weighs the same)."""
    se = sum(((x - y) ** 2).sum() for x, y in zip(a.planes(), b.planes()))
    return se / a.numel_per_sample() / a.batch


def _noise(like: Triplane, generator: torch.Generator | None, share: BatchShare | None) -> Triplane:
    # Drawn on the generator's device (a CPU generator with CUDA latents is allowed), then moved.
    dev = generator.device if generator is not None else None
    b = _global(like.batch, share)
    return like.map(lambda p: share_of(torch.randn((b, *p.shape[1:]), generator=generator, device=dev or p.device,
                                                   dtype=p.dtype), share).to(p.device))


def draw_noise(z_r: Triplane, z_d: Triplane, shared: bool, generator: torch.Generator | None = None,
               share: BatchShare | None = None) -> tuple[Triplane, Triplane]:
    eps_r = _noise(z_r, generator, share)
    eps_d = eps_r if shared else _noise(z_d, generator, share)
    return eps_r, eps_d


def _timesteps(schedule: NoiseSchedule, local: int, generator, share, device) -> Tensor:
    b = _global(local, share)
    return share_of(torch.randint(0, schedule.num_timesteps, (b,), generator=generator), share).to(device)


def joint_loss(denoiser, schedule: NoiseSchedule, cfg: DiffusionConfig, z_r: Triplane, z_d: Triplane,
               ctx_r: Triplane, ctx_d: Triplane, generator: torch.Generator | None = None,
               modes: Tensor | None = None, share: BatchShare | None = None,
               unanchored: tuple[Triplane, Triplane] | None = None, full_t_max: int = 0
               ) -> tuple[Tensor, dict[str, Tensor]]:
    """The joint objective; ``modes`` (local, (B,)) overrides the drawn guidance modes (tests).

    ``unanchored`` (anchored autoencoders): the targets encoded against the empty anchor. A modality whose
    context is dropped has no anchor at inference either, so its target is then the unanchored one.

    ``full_t_max`` > 0: clips with both modalities present draw their timestep from [0, full_t_max) only,
    the part of the schedule a sampler starting from the anchor at ``start_t < full_t_max`` visits; clips
    with a dropped modality keep the whole schedule, because that modality is sampled from pure noise."""
    dev = z_r.xy.device
    t = _timesteps(schedule, z_r.batch, generator, share, dev)
    if modes is None:
        modes = share_of(sample_modes(_global(z_r.batch, share), cfg.guidance_probs, generator), share).to(dev)
    present = presence(modes)
    if full_t_max > 0:
        both = present.sum(dim=1) == 2
        t = torch.where(both, t * full_t_max // schedule.num_timesteps, t)
    if unanchored is not None:
        z_r = z_r.where(present[:, 0] > 0, unanchored[0])
        z_d = z_d.where(present[:, 1] > 0, unanchored[1])
    eps_r, eps_d = draw_noise(z_r, z_d, cfg.shared_noise, generator, share)
    x_r, x_d = schedule.q_sample(z_r, t, eps_r), schedule.q_sample(z_d, t, eps_d)
    pred_r, pred_d = denoiser(x_r, x_d, t, ctx_r, ctx_d, present)
    loss_r = triplane_mse(pred_r, schedule.target(z_r, eps_r))
    loss_d = triplane_mse(pred_d, schedule.target(z_d, eps_d))
    return loss_r + loss_d, {"loss_rgb": loss_r.detach(), "loss_depth": loss_d.detach(), "modes": modes}


def single_loss(branch, schedule: NoiseSchedule, z: Triplane, ctx: Triplane, own_index: int,
                cond_drop: float = 0.0, generator: torch.Generator | None = None,
                share: BatchShare | None = None, unanchored: Triplane | None = None) -> Tensor:
    """One branch alone. ``own_index`` is 0 for RGB, 1 for depth (its presence flag); the other flag is
    always 0 here. With probability ``cond_drop`` a clip's context is dropped (zeroed, flag 0), and its
    target is then ``unanchored`` when given (see :func:`joint_loss`)."""
    dev = z.xy.device
    t = _timesteps(schedule, z.batch, generator, share, dev)
    keep = share_of((torch.rand(_global(z.batch, share), generator=generator) >= cond_drop).float(), share).to(dev)
    if unanchored is not None:
        z = z.where(keep > 0, unanchored)
    present = torch.zeros(z.batch, 2, device=dev)
    present[:, own_index] = keep
    ctx = ctx * keep.reshape(-1, 1, 1, 1)
    eps = _noise(z, generator, share)
    pred = branch(schedule.q_sample(z, t, eps), t, ctx, present)
    return triplane_mse(pred, schedule.target(z, eps))
