"""Decoder fine-tuning on the model's own forecasts (anchored autoencoders only).

The autoencoder stage teaches the decoder to decode latents of *true* futures. At prediction time it
decodes the diffusion model's forecast latents instead, which differ from any true latent (a one-step x0
forecast is close to an average over the futures the context allows). This stage keeps the encoders, the
other modality's autoencoder and the joint denoiser frozen, runs the shipped sampler on training clips
exactly as the Predictor does (both sensors present), and trains one modality's decoder so that the
frames it composes from the forecast latents match the true future, with the autoencoder's own objective
(:func:`~syncvp_core.training.stages.anchored_loss`). The latent space does not move: the joint model and
every cache stay valid. The result is an autoencoder run directory that ``ship --ae-run`` bundles.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from ..checkpoint import CheckpointError, load_checkpoint, load_into
from ..config import ModelConfig
from ..diffusion.ddim import DDIMSampler, sample_joint
from ..diffusion.schedule import NoiseSchedule
from ..models.syncvp import SyncVPModel
from ..triplane import Triplane
from .ae_objective import anchored_inputs
from .config import AEConfig
from .data import ClipIndex, to_model_tensors
from .dist import DistInfo
from .loop import Task, shard
from .perceptual import PerceptualLoss
from .stages import AEBatch, anchored_loss


def forecast_decoder_task(cfg: ModelConfig, acfg: AEConfig, modality: str, clips: ClipIndex, bundle: Path,
                          hflip: bool, device: str) -> Task:
    if cfg.autoencoder.decoder != "anchored":
        raise CheckpointError("decoder fine-tuning on forecasts needs the anchored autoencoder")
    model = SyncVPModel(cfg)
    tensors, _ = load_checkpoint(bundle)
    load_into(model, tensors, bundle)
    model.to(device).eval().requires_grad_(False)
    module = model.autoencoder(modality).requires_grad_(True)  # trained in place: only its decoder parts
    for name in module.ENCODER_PARTS:
        getattr(module, name).requires_grad_(False)
    lpips = PerceptualLoss.pretrained(device) if acfg.perceptual_weight > 0 and modality == "rgb" else None
    sampler = DDIMSampler.from_config(NoiseSchedule(cfg.diffusion), cfg.sampler, cfg.sampler.steps,
                                      clip_bound=cfg.autoencoder.latent_scale)
    c, k = cfg.context_frames, cfg.chunk_frames
    lh, lw = cfg.latent_size

    def loss(trained, idx: np.ndarray, gen: torch.Generator, info: DistInfo):
        bg = len(idx) * info.world
        flips = shard(torch.rand(bg, generator=gen) < 0.5, info) if hflip else torch.zeros(len(idx), dtype=bool)
        frame_idx = shard(torch.randint(0, k, (bg,), generator=gen), info)
        rgb, dep = zip(*(clips.frames(int(i)) for i in idx))
        x_r, x_d, mask = to_model_tensors(np.stack(rgb), np.stack(dep), cfg, flips.numpy())
        bt = AEBatch(x_r, x_d, mask, slice(c, c + k), frame_idx, c - 1, torch.zeros(len(idx), dtype=bool))
        xs, valid = {"rgb": x_r.to(device), "depth": x_d.to(device)}, mask.to(device)
        nets = {m: anchored_inputs(x, valid, c - 1, m) for m, x in xs.items()}
        with torch.no_grad():  # the forecast, as the Predictor makes it with both sensors present
            ctx = [model.autoencoder(m).encode(net[:, :, :c], anchor) for m, (net, anchor) in nets.items()]
            like = Triplane.zeros(len(idx), cfg.autoencoder.latent_channels, k, lh, lw, device=device)
            present = torch.ones(len(idx), 2, device=device)
            z = sample_joint(model.denoiser, sampler, *ctx, present, like, gen)[0 if modality == "rgb" else 1]
        anchor = nets[modality][1]
        target, tmask = xs[modality][:, :, c:], (None if modality == "rgb" else valid[:, :, c:])
        return anchored_loss(acfg, lpips, modality, trained.decode(z, anchor), anchor, target, tmask, bt, device)

    meta = {"modality": modality, "init": f"forecasts:{bundle}", "freeze_encoder": True,
            "decoder": cfg.autoencoder.decoder, "perceptual_weight": acfg.perceptual_weight,
            "forecast_decoder": {"bundle": str(bundle), "sampler_steps": cfg.sampler.steps}}
    return Task(f"ae_{modality}", module, len(clips), loss, f"ae_{modality}.", meta)
