"""The three stages as :class:`~.loop.Task` objects, latent caching, and the full-model bundle.

* ``ae``: one :class:`TriplaneAutoencoder` per modality, reconstruction loss (L1 or L2, per clip; depth
  averaged over valid pixels only), optional LPIPS term on one random frame per clip (colour only).
  Clips are ``chunk_frames`` long, or with probability ``context_clip_fraction`` ``context_frames`` long,
  because the same autoencoder encodes contexts and futures.
* ``single``: one :class:`BranchUNet` on cached latents, trained with
  :func:`syncvp_core.diffusion.losses.single_loss` (this rank's share of the global batch's draws).
* ``joint``: :class:`SyncVPDenoiser`, trained with :func:`~syncvp_core.diffusion.losses.joint_loss`
  (shared noise, guidance modes), initialised strictly from the two single models.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm import tqdm

from ..checkpoint import CheckpointError, load_checkpoint, load_into, save_checkpoint
from ..config import ModelConfig
from ..diffusion.losses import joint_loss, single_loss
from ..diffusion.schedule import NoiseSchedule
from ..models.autoencoder import TriplaneAutoencoder
from ..models.syncvp import SyncVPDenoiser, SyncVPModel
from ..models.unet import BranchUNet
from ..triplane import Triplane
from .config import AEConfig, JointConfig, SingleConfig
from .data import ClipIndex, to_model_tensors
from .dist import DistInfo
from .loop import Task, shard

MOD_INDEX = {"rgb": 0, "depth": 1}
PLANES = ("xy", "xt", "yt")


# ---------------------------------------------------------------------------------------------------------
# Stage "ae"


def recon_loss(pred: torch.Tensor, target: torch.Tensor, mask: torch.Tensor | None, kind: str) -> torch.Tensor:
    """Per-clip reconstruction error averaged over clips; ``mask`` (same shape, bool) = pixels that count."""
    err = (pred - target).abs() if kind == "l1" else (pred - target) ** 2
    dims = tuple(range(1, err.ndim))
    if mask is None:
        return err.mean(dim=dims).mean()
    m = mask.to(err.dtype)
    return ((err * m).sum(dim=dims) / m.sum(dim=dims).clamp_min(1.0)).mean()


def ae_task(cfg: ModelConfig, acfg: AEConfig, modality: str, clips: ClipIndex, hflip: bool,
            device: str) -> Task:
    module = TriplaneAutoencoder(cfg.autoencoder, 3 if modality == "rgb" else 1)
    how = "scratch"
    if acfg.init:
        path = acfg.init.replace("{modality}", modality)
        tensors, _ = load_checkpoint(path)
        load_into(module, tensors, path, prefix=f"ae_{modality}.")
        how = f"checkpoint:{path}"
    if acfg.freeze_encoder:
        for name in ("enc_in", "enc_levels", "enc_norm", "pool_xy", "pool_xt", "pool_yt", "to_latent"):
            getattr(module, name).requires_grad_(False)
    lpips = None
    if acfg.perceptual_weight > 0 and modality == "rgb":
        from ..evaluation.lpips import LPIPS

        lpips = LPIPS.pretrained(device)

    def loss(model, idx: np.ndarray, gen: torch.Generator, info: DistInfo):
        bg = len(idx) * info.world
        short = bool(torch.rand((), generator=gen) < acfg.context_clip_fraction)
        length = cfg.context_frames if short else cfg.chunk_frames
        offsets = shard(torch.randint(0, cfg.chunk_frames - length + 1, (bg,), generator=gen), info)
        flips = shard(torch.rand(bg, generator=gen) < 0.5, info) if hflip else torch.zeros(len(idx), dtype=bool)
        frame_idx = shard(torch.randint(0, length, (bg,), generator=gen), info)
        rgb, dep = zip(*(clips.frames(int(i), length, int(o)) for i, o in zip(idx, offsets)))
        x_r, x_d, mask = to_model_tensors(np.stack(rgb), np.stack(dep), cfg, flips.numpy())
        x = (x_r if modality == "rgb" else x_d).to(device)
        m = None if modality == "rgb" else mask.to(device)
        y = model(x)
        rec = recon_loss(y, x, m, acfg.recon_loss)
        total = acfg.recon_weight * rec
        parts = {"recon": float(rec.detach())}
        if lpips is not None:
            b = torch.arange(x.shape[0])
            f_x = x[b, :, frame_idx.to(device)]  # (B, 3, H, W): one random frame per clip
            f_y = y[b, :, frame_idx.to(device)]
            p = lpips(f_y, f_x).mean()
            total = total + acfg.perceptual_weight * p
            parts["perceptual"] = float(p.detach())
        return total, parts

    def sample(model, writer, step):
        rgb, dep = clips.frames(0)
        x_r, x_d, _ = to_model_tensors(rgb[None], dep[None], cfg)
        x = (x_r if modality == "rgb" else x_d).to(device)
        y = model(x)
        both = torch.cat([x[0], y[0]], dim=-2)  # (C, T, 2H, W): input above reconstruction
        frames = both.permute(1, 0, 2, 3)  # (T, C, 2H, W)
        grid = torch.cat(list(frames), dim=-1)
        writer.add_image(f"ae_{modality}/input_vs_recon", ((grid.clamp(-1, 1) + 1) / 2).repeat(
            3 // grid.shape[0], 1, 1), step)

    meta = {"modality": modality, "init": how, "freeze_encoder": acfg.freeze_encoder}
    return Task(f"ae_{modality}", module, len(clips), loss, f"ae_{modality}.", meta, sample)


# ---------------------------------------------------------------------------------------------------------
# Latent cache


def cache_latents(cfg: ModelConfig, ae_rgb_path: Path, ae_depth_path: Path, clips: ClipIndex, hflip: bool,
                  out: Path, device: str = "cpu", batch: int = 16, progress: bool = True,
                  meta: dict[str, Any] | None = None) -> Path:
    """Encode every training clip (context + future, both modalities, and mirrored if ``hflip``) once."""
    model = SyncVPModel(cfg)
    for mod, p in (("rgb", ae_rgb_path), ("depth", ae_depth_path)):
        tensors, _ = load_checkpoint(p)
        load_into(getattr(model, f"ae_{mod}"), tensors, p, prefix=f"ae_{mod}.")
    model.to(device).eval()
    jobs = [(i, f) for f in ((False, True) if hflip else (False,)) for i in range(len(clips))]
    acc: dict[str, list[torch.Tensor]] = {}
    c = cfg.context_frames
    for s in tqdm(range(0, len(jobs), batch), desc="cache-latents", disable=not progress):
        part = jobs[s : s + batch]
        rgb, dep = zip(*(clips.frames(i) for i, _ in part))
        x_r, x_d, _ = to_model_tensors(np.stack(rgb), np.stack(dep), cfg, np.array([f for _, f in part]))
        with torch.no_grad():
            for mod, x, ae in (("rgb", x_r, model.ae_rgb), ("depth", x_d, model.ae_depth)):
                x = x.to(device)
                for role, sl in (("ctx", slice(0, c)), ("tgt", slice(c, None))):
                    z = ae.encode(x[:, :, sl])
                    for name, p in zip(PLANES, z.planes()):
                        acc.setdefault(f"{mod}.{role}.{name}", []).append(p.cpu())
    tensors = {k: torch.cat(v) for k, v in acc.items()}
    info = {"config": cfg.to_dict(), **(meta or {}), "kind": "latents", "clips": len(clips), "hflip": hflip,
            "n": len(jobs), "ae_rgb": str(ae_rgb_path), "ae_depth": str(ae_depth_path)}
    save_checkpoint(out, tensors, info)
    return out


class Latents:
    def __init__(self, path: Path, device: str):
        tensors, meta = load_checkpoint(path)
        if meta.get("kind") != "latents":
            raise CheckpointError(f"{path}: not a latent cache (run `syncvp cache-latents` first)")
        self.t = {k: v.to(device) for k, v in tensors.items()}
        self.n = int(meta["n"])
        self.meta = meta
        self.path = path

    def get(self, mod: str, role: str, idx: np.ndarray) -> Triplane:
        i = torch.as_tensor(idx, device=self.t[f"{mod}.{role}.xy"].device)
        return Triplane(*(self.t[f"{mod}.{role}.{p}"][i] for p in PLANES))


# ---------------------------------------------------------------------------------------------------------
# Stage "single"


def single_task(cfg: ModelConfig, scfg: SingleConfig, modality: str, lat: Latents, device: str) -> Task:
    module = BranchUNet(cfg, cfg.autoencoder.latent_channels)
    schedule = NoiseSchedule(cfg.diffusion)
    own = MOD_INDEX[modality]

    def loss(model, idx: np.ndarray, gen: torch.Generator, info: DistInfo):
        z, ctx = lat.get(modality, "tgt", idx), lat.get(modality, "ctx", idx)
        return single_loss(model, schedule, z, ctx, own, scfg.cond_drop, gen, share=info), {}

    return Task(f"single_{modality}", module, lat.n, loss, f"denoiser.{modality}.", {"modality": modality})


# ---------------------------------------------------------------------------------------------------------
# Stage "joint"


def init_joint(denoiser: SyncVPDenoiser, init: str, run_dir: Path) -> str:
    """Initialise the joint denoiser; returns a description for the sidecar.

    ``singles``: strictly from ``single_rgb/ema.safetensors`` and ``single_depth/ema.safetensors``: only the
    new fusion (STCA) weights may be missing; any other missing or unexpected key is refused.
    """
    if init == "scratch":
        return "scratch"
    if init == "singles":
        if denoiser.kind == "concat":
            raise CheckpointError("fusion.kind=concat has no per-modality branches: use joint.init=scratch")
        merged: dict[str, torch.Tensor] = {}
        paths = []
        for mod in ("rgb", "depth"):
            p = Path(run_dir) / f"single_{mod}" / "ema.safetensors"
            tensors, _ = load_checkpoint(p)
            bad = [k for k in tensors if not k.startswith(f"denoiser.{mod}.")]
            if bad:
                raise CheckpointError(f"{p}: unexpected key(s) for a single {mod} model, e.g. {bad[:5]}")
            merged.update(tensors)
            paths.append(str(p))
        load_into(denoiser, merged, " + ".join(paths), prefix="denoiser.", allow_missing=("fusion.",))
        return "singles:" + ",".join(paths)
    tensors, _ = load_checkpoint(init)
    load_into(denoiser, tensors, init, prefix="denoiser.")
    return f"checkpoint:{init}"


def joint_task(cfg: ModelConfig, jcfg: JointConfig, lat: Latents, run_dir: Path, device: str,
               ae_paths: tuple[Path, Path] | None = None) -> Task:
    torch.manual_seed(0)
    module = SyncVPDenoiser(cfg)
    how = init_joint(module, jcfg.init, run_dir)
    schedule = NoiseSchedule(cfg.diffusion)

    def loss(model, idx: np.ndarray, gen: torch.Generator, info: DistInfo):
        total, parts = joint_loss(model, schedule, cfg.diffusion, lat.get("rgb", "tgt", idx),
                                  lat.get("depth", "tgt", idx), lat.get("rgb", "ctx", idx),
                                  lat.get("depth", "ctx", idx), gen, share=info)
        return total, {"loss_rgb": float(parts["loss_rgb"]), "loss_depth": float(parts["loss_depth"])}

    sample = None
    if ae_paths is not None:
        sample = _joint_sampler(cfg, lat, ae_paths, device)
    return Task("joint", module, lat.n, loss, "denoiser.", {"init": how}, sample)


def _joint_sampler(cfg: ModelConfig, lat: Latents, ae_paths: tuple[Path, Path], device: str):
    """TensorBoard images: ground-truth future above a 10-step DDIM forecast of one training clip."""
    from ..diffusion.ddim import DDIMSampler, sample_joint

    model = SyncVPModel(cfg)
    for mod, p in zip(("rgb", "depth"), ae_paths):
        tensors, _ = load_checkpoint(p)
        load_into(getattr(model, f"ae_{mod}"), tensors, p, prefix=f"ae_{mod}.")
    model.to(device).eval()
    schedule = NoiseSchedule(cfg.diffusion)

    def sample(denoiser, writer, step):
        idx = np.array([0])
        c_r, c_d = lat.get("rgb", "ctx", idx), lat.get("depth", "ctx", idx)
        like = lat.get("rgb", "tgt", idx)
        gen = torch.Generator().manual_seed(0)
        sampler = DDIMSampler(schedule, 10)
        z_r, z_d = sample_joint(denoiser, sampler, c_r, c_d, torch.ones(1, 2), like.map(lambda p: p.cpu()), gen)
        for mod, z, gt, ae in (("rgb", z_r, like, model.ae_rgb), ("depth", z_d, lat.get("depth", "tgt", idx),
                                                                      model.ae_depth)):
            y, g = ae.decode(z)[0], ae.decode(gt)[0]  # (C, T, H, W)
            grid = torch.cat([torch.cat(list(g.permute(1, 0, 2, 3)), -1), torch.cat(list(y.permute(1, 0, 2, 3)), -1)],
                             -2)
            writer.add_image(f"joint/{mod}_gt_vs_pred", ((grid.clamp(-1, 1) + 1) / 2).repeat(3 // grid.shape[0], 1, 1),
                             step)

    return sample


# ---------------------------------------------------------------------------------------------------------
# The full model bundle (what Predictor.from_checkpoint loads)


def write_bundle(cfg: ModelConfig, parts: dict[str, Path], out: Path, meta: dict[str, Any],
                 dtype: torch.dtype = torch.float32) -> Path:
    """Merge the exported AE and joint weights into one checkpoint with keys ae_rgb.*, ae_depth.*, denoiser.*;
    verified by loading it strictly into a fresh :class:`SyncVPModel` before it is written."""
    tensors: dict[str, torch.Tensor] = {}
    for prefix, p in parts.items():
        t, _ = load_checkpoint(p)
        tensors.update({k: v for k, v in t.items() if k.startswith(prefix)})
    model = SyncVPModel(cfg)
    load_into(model, tensors, out)
    tensors = {k: (v.to(dtype) if v.is_floating_point() else v) for k, v in tensors.items()}
    save_checkpoint(out, tensors, {**meta, "kind": "model", "config": cfg.to_dict(), "dtype": str(dtype)})
    return out
