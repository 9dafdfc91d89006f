"""Training objectives: epsilon-prediction MSE for one branch and for the joint model.

Joint (SyncVP): one timestep per clip for both modalities and, with ``shared_noise``, the *same* epsilon
tensor noising both latents; loss = MSE(eps_R_hat, eps_R) + MSE(eps_D_hat, eps_D). The guidance mode
of each clip decides whose context is visible (``present`` flags); every target is always predicted.
"""
from __future__ import annotations

import torch
from torch import Tensor

from ..config import DiffusionConfig
from ..triplane import Triplane
from .guidance import presence, sample_modes
from .schedule import NoiseSchedule


def triplane_mse(a: Triplane, b: Triplane) -> Tensor:
    """Mean squared error over every latent element of all three planes (each element weighs the same)."""
    se = sum(((x - y) ** 2).sum() for x, y in zip(a.planes(), b.planes()))
    return se / a.numel_per_sample() / a.batch


def draw_noise(z_r: Triplane, z_d: Triplane, shared: bool, generator: torch.Generator | None = None):
    eps_r = Triplane.randn_like(z_r, generator)
    eps_d = eps_r if shared else Triplane.randn_like(z_d, generator)
    return eps_r, eps_d


def joint_loss(denoiser, schedule: NoiseSchedule, cfg: DiffusionConfig, z_r: Triplane, z_d: Triplane,
               ctx_r: Triplane, ctx_d: Triplane, generator: torch.Generator | None = None,
               modes: Tensor | None = None) -> tuple[Tensor, dict[str, Tensor]]:
    b = z_r.batch
    dev = z_r.xy.device
    t = torch.randint(0, schedule.num_timesteps, (b,), generator=generator).to(dev)
    if modes is None:
        modes = sample_modes(b, cfg.guidance_probs, generator, dev)
    present = presence(modes)
    eps_r, eps_d = draw_noise(z_r, z_d, cfg.shared_noise, generator)
    x_r, x_d = schedule.q_sample(z_r, t, eps_r), schedule.q_sample(z_d, t, eps_d)
    pred_r, pred_d = denoiser(x_r, x_d, t, ctx_r, ctx_d, present)
    loss_r, loss_d = triplane_mse(pred_r, eps_r), triplane_mse(pred_d, eps_d)
    return loss_r + loss_d, {"loss_rgb": loss_r.detach(), "loss_depth": loss_d.detach(), "modes": modes}


def single_loss(branch, schedule: NoiseSchedule, z: Triplane, ctx: Triplane, own_index: int,
                cond_drop: float = 0.0, generator: torch.Generator | None = None) -> Tensor:
    """One branch alone. ``own_index`` is 0 for RGB, 1 for depth (its presence flag); the other flag is
    always 0 here. With probability ``cond_drop`` a clip's context is dropped (zeroed, flag 0)."""
    b = z.batch
    dev = z.xy.device
    t = torch.randint(0, schedule.num_timesteps, (b,), generator=generator).to(dev)
    keep = (torch.rand(b, generator=generator) >= cond_drop).float().to(dev)
    present = torch.zeros(b, 2, device=dev)
    present[:, own_index] = keep
    ctx = ctx * keep.reshape(-1, 1, 1, 1)
    eps = Triplane.randn_like(z, generator)
    pred = branch(schedule.q_sample(z, t, eps), t, ctx, present)
    return triplane_mse(pred, eps)
