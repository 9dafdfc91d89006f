"""The 1000-step DDPM noise schedule and the forward (noising) process.

betas = linspace(sqrt(beta_start), sqrt(beta_end), T)**2 (LDM's "scaled linear", the official setting:
beta 0.0015 -> 0.0195, alpha_bar_999 = 1.4e-4). Coefficients are computed in float64 and gathered per
sample as float32.
"""
from __future__ import annotations

import torch
from torch import Tensor

from ..config import DiffusionConfig
from ..triplane import Triplane


class NoiseSchedule:
    def __init__(self, cfg: DiffusionConfig):
        self.num_timesteps = cfg.num_timesteps
        betas = torch.linspace(cfg.beta_start**0.5, cfg.beta_end**0.5, cfg.num_timesteps, dtype=torch.float64) ** 2
        self.betas = betas
        self.alphas_cumprod = torch.cumprod(1.0 - betas, dim=0)
        self.prediction = cfg.prediction

    def target(self, x0: Triplane, noise: Triplane) -> Triplane:
        """What the denoiser is trained to output for this clean latent and noise."""
        return noise if self.prediction == "eps" else x0

    def alpha_bar(self, t: Tensor) -> Tensor:
        """(B,) integer timesteps -> (B,) float32 alpha_bar_t; t = -1 means "clean" (alpha_bar = 1)."""
        ab = self.alphas_cumprod.to(t.device)
        return torch.where(t >= 0, ab[t.clamp_min(0)], torch.ones_like(ab[:1])).float()

    def q_sample(self, x0: Triplane, t: Tensor, noise: Triplane) -> Triplane:
        """x_t = sqrt(alpha_bar_t) x0 + sqrt(1 - alpha_bar_t) eps, per sample."""
        ab = self.alpha_bar(t).reshape(-1, 1, 1, 1)
        return x0.zip(noise, lambda x, e: ab.sqrt() * x + (1 - ab).sqrt() * e)
