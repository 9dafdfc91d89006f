"""Measuring a backend on one joint denoiser step: fixed inputs, agreement with a reference, median time.

``auto`` selection (:mod:`.select`) ranks backends with it; the benches use the same inputs.
"""
from __future__ import annotations

import statistics
import time

import torch

from .. import motion_prior
from ..config import ModelConfig
from ..triplane import Triplane


def random_step_inputs(cfg: ModelConfig, device: str = "cpu", batch: int = 1, seed: int = 0) -> tuple:
    """Arguments of one joint denoiser step at the model's shapes, full mode, timestep 500: latents are
    tanh of Gaussian noise (the autoencoder's range), drawn on the CPU so every device gets the same values."""
    lh, lw = cfg.latent_size
    c = cfg.autoencoder.latent_channels
    g = torch.Generator().manual_seed(seed)

    def tp(frames):
        return Triplane.randn_like(Triplane.zeros(batch, c, frames, lh, lw), g).map(torch.tanh).to(device)

    def cond():  # the context latent, and with the motion prior the prior latent after it
        prior = tp(cfg.chunk_frames) if motion_prior.enabled(cfg) else None
        return motion_prior.condition(tp(cfg.context_frames), prior, cfg.chunk_frames)

    x = tp(cfg.chunk_frames)
    return (x, x, torch.full((batch,), 500, dtype=torch.long, device=device), cond(), cond(),
            torch.ones(batch, 2, device=device))


def sync(device: str) -> None:
    if torch.device(device).type == "cuda":
        torch.cuda.synchronize(device)


def time_step(backend, inputs: tuple, device: str, max_steps: int, budget_s: float):
    """(median seconds per step, eps_r, eps_d of the first call). The first call is not timed (lazy work:
    compilation, graph capture, allocation); then at least one and at most ``max_steps`` steps, stopping
    once ``budget_s`` is spent."""
    eps_r, eps_d = backend.denoise(*inputs)
    sync(device)
    ts: list[float] = []
    start = time.perf_counter()
    while len(ts) < max_steps and (not ts or time.perf_counter() - start < budget_s):
        t0 = time.perf_counter()
        backend.denoise(*inputs)
        sync(device)
        ts.append(time.perf_counter() - t0)
    return statistics.median(ts), eps_r, eps_d


def relative_error(out: tuple[Triplane, ...], ref: tuple[Triplane, ...]) -> float:
    """max |out - ref| / max |ref| over every plane of every output; inf for a shape mismatch or non-finite output."""
    a = torch.cat([p.detach().float().flatten().cpu() for tp in out for p in tp.planes()])
    b = torch.cat([p.detach().float().flatten().cpu() for tp in ref for p in tp.planes()])
    if a.shape != b.shape or not torch.isfinite(a).all():
        return float("inf")
    return float((a - b).abs().max() / b.abs().max().clamp_min(1e-12))
