"""DDIM sampling (Song et al. 2021), with the joint SyncVP loop.

For a step from timestep t to the previous grid point s (alpha_bar_s = 1 after the last step):

    x0_hat = (x_t - sqrt(1 - a_t) eps) / sqrt(a_t)                            (eq. 12, "predicted x0")
    x0_hat = clip(x0_hat, -b, b)   if clip_x0   (the latent is tanh-bounded: b = autoencoder.latent_scale)
    sigma  = eta * sqrt((1 - a_s) / (1 - a_t)) * sqrt(1 - a_t / a_s)            (eq. 16)
    x_s    = sqrt(a_s) x0_hat + sqrt(1 - a_s - sigma^2) eps + sigma z

As in the official sampler, eps is not recomputed from the clipped x0. Defaults differ from the official
evaluation on purpose: eta = 0 (deterministic DDIM; the official code silently used eta = 1) and the
grid ends at t = 0 (the official grid's last network call is at t = 9).

Both branches start from ONE shared initial noise and, for eta > 0, share the per-step noise too
(shared-noise training makes that the matching choice).

With ``draws`` = N > 1 the loop runs N independent noises per forecast in one batch and returns the mean of
the N final latents (``sampler.draws`` in the model config explains why).

Starting from the anchor (``sampler.start: anchor``, anchored decoder only): the grid runs from
``start_t`` down to 0 and the loop starts at q(x_start | x0 = "nothing changes") with the same shared
noise, instead of at pure noise. With start_t < T-1 the forecast keeps whatever of the "nothing changes"
latent the noise at start_t did not destroy, so an unsure model stays near the observation.
"""
from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch
from torch import Tensor

from ..config import SamplerConfig
from ..triplane import Triplane
from .schedule import NoiseSchedule


class DDIMSampler:
    def __init__(self, schedule: NoiseSchedule, steps: int, eta: float = 0.0, clip_x0: bool = True,
                 clip_bound: float = 1.0, start_t: int | None = None, draws: int = 1):
        start_t = schedule.num_timesteps - 1 if start_t is None else int(start_t)
        if not 0 <= start_t < schedule.num_timesteps:
            raise ValueError(f"DDIM start_t must be in [0, {schedule.num_timesteps}), got {start_t}")
        if not 1 <= steps <= start_t + 1:
            raise ValueError(f"DDIM steps must be in [1, {start_t + 1}], got {steps}")
        if draws < 1:
            raise ValueError(f"DDIM draws must be >= 1, got {draws}")
        self.draws = int(draws)
        self.schedule = schedule
        self.steps = steps
        self.eta = eta
        self.clip_x0 = clip_x0
        self.clip_bound = float(clip_bound)
        # Evenly spaced grid from start_t (default T-1) down to 0 (inclusive).
        ts = np.round(np.linspace(start_t, 0, steps)).astype(np.int64)
        self.timesteps: list[int] = [int(t) for t in ts]

    @classmethod
    def from_config(cls, schedule: NoiseSchedule, cfg: SamplerConfig, steps: int | None = None,
                    clip_bound: float = 1.0, draws: int | None = None) -> DDIMSampler:
        start_t = cfg.start_t if cfg.start == "anchor" else None
        return cls(schedule, steps or cfg.steps, cfg.eta, cfg.clip_x0, clip_bound, start_t, draws or cfg.draws)

    def from_noise(self) -> DDIMSampler:
        """The same sampler over the full grid (from pure noise), same number of steps."""
        return DDIMSampler(self.schedule, self.steps, self.eta, self.clip_x0, self.clip_bound, draws=self.draws)

    def prev_timestep(self, i: int) -> int:
        return self.timesteps[i + 1] if i + 1 < len(self.timesteps) else -1

    def step(self, out: Tensor, i: int, x_t: Tensor, noise: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """One update from grid index i; ``out`` is the denoiser's output (eps or x0, as the schedule says).
        Returns (x_prev, x0_hat)."""
        ab = self.schedule.alphas_cumprod
        a_t = float(ab[self.timesteps[i]])
        s = self.prev_timestep(i)
        a_s = float(ab[s]) if s >= 0 else 1.0
        x0 = out if self.schedule.prediction == "x0" else (x_t - (1 - a_t) ** 0.5 * out) / a_t**0.5
        if self.clip_x0:
            x0 = x0.clamp(-self.clip_bound, self.clip_bound)
        # x0 prediction: the direction term uses the eps implied by the (clipped) x0 estimate.
        eps = (x_t - a_t**0.5 * x0) / (1 - a_t) ** 0.5 if self.schedule.prediction == "x0" else out
        sigma = self.eta * ((1 - a_s) / (1 - a_t)) ** 0.5 * (1 - a_t / a_s) ** 0.5
        x_prev = a_s**0.5 * x0 + max(1 - a_s - sigma**2, 0.0) ** 0.5 * eps
        if sigma > 0:
            if noise is None:
                raise ValueError("eta > 0 needs a noise tensor")
            x_prev = x_prev + sigma * noise
        return x_prev, x0


DenoiseFn = Callable[[Triplane, Triplane, Tensor, Triplane, Triplane, Tensor], tuple[Triplane, Triplane]]


def sample_joint(denoise: DenoiseFn, sampler: DDIMSampler, ctx_r: Triplane, ctx_d: Triplane, present: Tensor,
                 like: Triplane, generator: torch.Generator | None = None,
                 start: tuple[Triplane, Triplane] | None = None) -> tuple[Triplane, Triplane]:
    """Run the DDIM loop for both modalities. ``like`` gives the target latent shapes (T = chunk_frames);
    ``denoise`` is one joint step (a torch module or an exported engine behind the same signature).
    ``start``: clean latents (RGB, depth) the loop starts from, noised to the grid's first timestep.
    ``sampler.draws`` > 1: every row runs that many noises (adjacent rows of one batch), the mean is returned."""
    n = sampler.draws
    if n == 1:
        return _loop(denoise, sampler, ctx_r, ctx_d, present, like, generator, start)

    def rep(x):  # each row n times, adjacent (None passes: the tests' context-free denoisers)
        if x is None:
            return None
        return x.map(rep) if isinstance(x, Triplane) else x.repeat_interleave(n, dim=0)

    def mean(x):
        return x.reshape(-1, n, *x.shape[1:]).mean(dim=1)

    start = None if start is None else (rep(start[0]), rep(start[1]))
    z_r, z_d = _loop(denoise, sampler, rep(ctx_r), rep(ctx_d), rep(present), rep(like), generator, start)
    return z_r.map(mean), z_d.map(mean)


def _loop(denoise: DenoiseFn, sampler: DDIMSampler, ctx_r: Triplane, ctx_d: Triplane, present: Tensor,
          like: Triplane, generator: torch.Generator | None, start: tuple[Triplane, Triplane] | None
          ) -> tuple[Triplane, Triplane]:
    x_r = Triplane.randn_like(like, generator)
    x_d = x_r  # one shared initial noise for both branches
    b = like.batch
    if start is not None:
        t0 = torch.full((b,), sampler.timesteps[0], dtype=torch.long, device=like.xy.device)
        x_r, x_d = sampler.schedule.q_sample(start[0], t0, x_r), sampler.schedule.q_sample(start[1], t0, x_d)
    for i, t in enumerate(sampler.timesteps):
        tt = torch.full((b,), t, dtype=torch.long, device=like.xy.device)
        eps_r, eps_d = denoise(x_r, x_d, tt, ctx_r, ctx_d, present)
        z = Triplane.randn_like(like, generator) if sampler.eta > 0 else None
        x_r = _step_triplane(sampler, eps_r, i, x_r, z)
        x_d = _step_triplane(sampler, eps_d, i, x_d, z)
    return x_r, x_d


def _step_triplane(sampler: DDIMSampler, eps: Triplane, i: int, x: Triplane, z: Triplane | None) -> Triplane:
    planes = []
    for e, xp, name in zip(eps.planes(), x.planes(), ("xy", "xt", "yt")):
        zp = getattr(z, name) if z is not None else None
        planes.append(sampler.step(e, i, xp, zp)[0])
    return Triplane(*planes)
