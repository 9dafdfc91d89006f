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

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm import tqdm

from .. import motion_prior
from ..checkpoint import CheckpointError, load_checkpoint, load_into, save_checkpoint, sidecar_path
from ..config import ModelConfig
from ..diffusion.losses import joint_loss, single_loss
from ..diffusion.schedule import NoiseSchedule
from ..flow_extrapolation import FlowExtrapolator
from ..models.anchored import empty_anchor
from ..models.syncvp import SyncVPDenoiser, SyncVPModel, make_autoencoder
from ..models.unet import BranchUNet
from ..triplane import Triplane
from .ae_objective import (
    anchored_inputs,
    anchored_outputs,
    hole_validity_loss,
    multiscale_recon_loss,
    perceptual_term,
    recon_loss,
)
from .config import AEConfig, JointConfig, SingleConfig
from .data import ClipIndex, to_model_tensors
from .dist import DistInfo
from .flow_teacher import flow_teacher_loss, teacher_flow
from .loop import Task, shard
from .perceptual import PerceptualLoss

MOD_INDEX = {"rgb": 0, "depth": 1}
PLANES = ("xy", "xt", "yt")


# ---------------------------------------------------------------------------------------------------------
# Stage "ae"


def ae_clip_length(cfg: ModelConfig) -> int:
    """Frames per autoencoder training clip: the anchored decoder also needs the context before a future."""
    if cfg.autoencoder.decoder == "anchored":
        return cfg.context_frames + cfg.chunk_frames
    return cfg.chunk_frames


@dataclass
class AEBatch:
    """One micro-batch of autoencoder clips: colour (B,3,T,H,W) and depth (B,1,T,H,W) in the network range,
    the depth validity mask, the frames that are scored, and the frame of each clip for the perceptual term.
    Anchored decoder only: the index of the anchor frame in the clip and the clips whose anchor is dropped."""

    x_r: torch.Tensor
    x_d: torch.Tensor
    mask: torch.Tensor
    score: slice
    frame_idx: torch.Tensor
    anchor_index: int | None = None
    drop: torch.Tensor | None = None

    def network(self, modality: str, device: str) -> tuple[torch.Tensor, torch.Tensor]:
        """(the modality's clip, the validity mask), on ``device``."""
        return (self.x_r if modality == "rgb" else self.x_d).to(device), self.mask.to(device)


def ae_task(cfg: ModelConfig, acfg: AEConfig, modality: str, clips: ClipIndex, hflip: bool,
            device: str) -> Task:
    module = make_autoencoder(cfg, modality)
    anchored = cfg.autoencoder.decoder == "anchored"
    how = "scratch"
    if acfg.init:
        path = acfg.init.replace("{modality}", modality)
        tensors, _ = load_checkpoint(path)
        load_into(module, tensors, path, prefix=f"ae_{modality}.")
        how = f"checkpoint:{path}"
    if acfg.freeze_encoder:
        for name in module.ENCODER_PARTS:
            getattr(module, name).requires_grad_(False)
    lpips = None
    if acfg.perceptual_weight > 0 and modality == "rgb":
        lpips = PerceptualLoss.pretrained(device)
    c, k = cfg.context_frames, cfg.chunk_frames

    def batch(idx: np.ndarray, gen: torch.Generator, info: DistInfo) -> AEBatch:
        """This rank's clips as network tensors."""
        bg = len(idx) * info.world
        short = bool(torch.rand((), generator=gen) < acfg.context_clip_fraction)

        def draw_flips():
            return shard(torch.rand(bg, generator=gen) < 0.5, info) if hflip else torch.zeros(len(idx), dtype=bool)

        if anchored:
            # A context clip is scored against its own last frame; a future against the frame before it.
            score = slice(0, c) if short else slice(c, c + k)
            flips = draw_flips()
            rgb, dep = zip(*(clips.frames(int(i)) for i in idx))
            frame_idx = shard(torch.randint(0, score.stop - score.start, (bg,), generator=gen), info)
            drop = shard(torch.rand(bg, generator=gen) < acfg.anchor_dropout, info)
            x_r, x_d, mask = to_model_tensors(np.stack(rgb), np.stack(dep), cfg, flips.numpy())
            return AEBatch(x_r, x_d, mask, score, frame_idx, c - 1, drop)
        length = c if short else k
        offsets = shard(torch.randint(0, k - length + 1, (bg,), generator=gen), info)
        flips = draw_flips()
        frame_idx = shard(torch.randint(0, length, (bg,), generator=gen), info)
        rgb, dep = zip(*(clips.frames(int(i), length, int(o)) for i, o in zip(idx, offsets)))
        x_r, x_d, mask = to_model_tensors(np.stack(rgb), np.stack(dep), cfg, flips.numpy())
        return AEBatch(x_r, x_d, mask, slice(0, length), frame_idx)

    def loss(model, idx: np.ndarray, gen: torch.Generator, info: DistInfo):
        bt = batch(idx, gen, info)
        x, mask = bt.network(modality, device)
        target, tmask = x[:, :, bt.score], (None if modality == "rgb" else mask[:, :, bt.score])
        if bt.anchor_index is None:
            y = model(target)
            rec = recon_loss(y, target, tmask, acfg.recon_loss)
            return with_perceptual(acfg, lpips, y, target, bt.frame_idx, acfg.recon_weight * rec,
                                   {"recon": float(rec.detach())})
        net, anchor = anchored_inputs(x, mask, bt.anchor_index, modality, bt.drop)
        return anchored_loss(acfg, lpips, modality, model(net[:, :, bt.score], anchor), anchor, target, tmask, bt,
                             device)

    def sample(model, writer, step):
        bt = batch(np.array([0]), torch.Generator().manual_seed(0), DistInfo())
        x, mask = bt.network(modality, device)
        target = x[:, :, bt.score]
        if bt.anchor_index is None:
            y = model(target)
        else:
            net, anchor = anchored_inputs(x, mask, bt.anchor_index, modality)
            y, _ = anchored_outputs(model(net[:, :, bt.score], anchor), anchor, modality)
        both = torch.cat([target[0], y[0]], dim=-2)  # (C, T, 2H, W): input above reconstruction
        grid = torch.cat(list(both.permute(1, 0, 2, 3)), dim=-1)
        writer.add_image(f"ae_{modality}/input_vs_recon", ((grid.clamp(-1, 1) + 1) / 2).repeat(
            3 // grid.shape[0], 1, 1), step)

    meta = {"modality": modality, "init": how, "freeze_encoder": acfg.freeze_encoder,
            "decoder": cfg.autoencoder.decoder, "perceptual_weight": acfg.perceptual_weight}
    return Task(f"ae_{modality}", module, len(clips), loss, f"ae_{modality}.", meta, sample)


def anchored_loss(acfg: AEConfig, lpips, modality: str, fields: torch.Tensor, anchor: torch.Tensor,
                  target: torch.Tensor, tmask: torch.Tensor | None, bt: AEBatch, device: str):
    """The anchored autoencoder's objective for decoder ``fields`` against the ``target`` frames of ``bt``:
    multi-scale reconstruction of the composed frames, DIS flow teacher, depth hole validity, LPIPS."""
    y, warp_valid = anchored_outputs(fields, anchor, modality)
    rec = multiscale_recon_loss(y, target, tmask, acfg.recon_loss)
    total, parts = acfg.recon_weight * rec, {"recon": float(rec.detach())}
    if acfg.flow_teacher_weight > 0:
        r = bt.x_r.to(device)
        teacher = teacher_flow(r[:, :, bt.score], r[:, :, bt.anchor_index])
        # A clip whose anchor was dropped has nothing to warp: no flow target.
        keep = (~bt.drop).to(device).view(-1, 1, 1, 1, 1).float()
        ft = flow_teacher_loss(fields * keep, teacher * keep)
        total = total + acfg.flow_teacher_weight * ft
        parts["flow"] = float(ft.detach())
    if warp_valid is not None:
        holes = hole_validity_loss(fields, warp_valid, tmask)
        total = total + acfg.hole_weight * holes
        parts["holes"] = float(holes.detach())
    return with_perceptual(acfg, lpips, y, target, bt.frame_idx, total, parts)


def with_perceptual(acfg: AEConfig, lpips, y: torch.Tensor, target: torch.Tensor, frame_idx: torch.Tensor,
                    total: torch.Tensor, parts: dict[str, float]):
    """(total + the LPIPS term on one frame per clip when ``lpips`` is set, parts)."""
    if lpips is not None:
        p = perceptual_term(lpips, y, target, frame_idx)
        total = total + acfg.perceptual_weight * p
        parts["perceptual"] = float(p.detach())
    return total, parts


# ---------------------------------------------------------------------------------------------------------
# Latent cache


def cache_latents(cfg: ModelConfig, ae_rgb_path: Path, ae_depth_path: Path, clips: ClipIndex, hflip: bool,
                  out: Path, device: str = "cpu", batch: int = 16, progress: bool = True,
                  meta: dict[str, Any] | None = None, part_key: dict[str, Any] | None = None,
                  part_size: int = 1024) -> Path:
    """Encode every training clip (context + future, both modalities, and mirrored if ``hflip``) once.

    Encoding the motion mix takes an hour on a CPU, so it is written in parts of ``part_size`` clips under
    ``<out>.parts/``: an interrupted run keeps every finished part whose key (``part_key``: what the latents
    depend on, autoencoder files, data, clip settings; without the mirroring switch, so switching mirrored
    copies on keeps the plain parts) matches. The parts are merged into ``out`` and removed at the end."""
    model = SyncVPModel(cfg)
    for mod, p in (("rgb", ae_rgb_path), ("depth", ae_depth_path)):
        tensors, _ = load_checkpoint(p)
        load_into(getattr(model, f"ae_{mod}"), tensors, p, prefix=f"ae_{mod}.")
    model.to(device).eval()
    base = {k: v for k, v in (part_key or {}).items() if k != "cache_hflip"}
    parts_dir = Path(str(out) + ".parts")
    parts = []
    for flip in (False, True) if hflip else (False,):
        for s in range(0, len(clips), part_size):
            key = {**base, "clips": len(clips), "flip": flip, "start": s, "stop": min(s + part_size, len(clips))}
            parts.append((parts_dir / f"{'mirror' if flip else 'plain'}_{s:07d}.safetensors", key))
    acc: dict[str, list[torch.Tensor]] = {}
    for path, key in tqdm(parts, desc="cache-latents", disable=not progress):
        tensors = _cached_part(path, key)
        if tensors is None:
            tensors = _encode_part(cfg, model, clips, range(key["start"], key["stop"]), key["flip"], device, batch)
            save_checkpoint(path, tensors, {"kind": "latent_part", "part": key})
        for k, v in tensors.items():
            acc.setdefault(k, []).append(v)
    tensors = {k: torch.cat(v) for k, v in acc.items()}
    info = {"config": cfg.to_dict(), **(meta or {}), "kind": "latents", "clips": len(clips), "hflip": hflip,
            "n": len(clips) * (2 if hflip else 1), "ae_rgb": str(ae_rgb_path), "ae_depth": str(ae_depth_path)}
    save_checkpoint(out, tensors, info)
    for path, _ in parts:
        path.unlink(missing_ok=True)
        sidecar_path(path).unlink(missing_ok=True)
    if parts_dir.exists() and not any(parts_dir.iterdir()):
        parts_dir.rmdir()
    return out


def _cached_part(path: Path, key: dict[str, Any]) -> dict[str, torch.Tensor] | None:
    """A finished part of an interrupted cache run, or None when it is missing, unreadable or stale."""
    if not path.exists():
        return None
    try:
        tensors, meta = load_checkpoint(path)
    except CheckpointError:
        return None  # a part cut short by the interruption: encode it again
    same = json.dumps(meta.get("part"), sort_keys=True, default=str) == json.dumps(key, sort_keys=True, default=str)
    return tensors if meta.get("kind") == "latent_part" and same else None


def _encode_part(cfg: ModelConfig, model: SyncVPModel, clips: ClipIndex, idx: range, flip: bool, device: str,
                 batch: int) -> dict[str, torch.Tensor]:
    acc: dict[str, list[torch.Tensor]] = {}
    c = cfg.context_frames
    flow = FlowExtrapolator() if motion_prior.enabled(cfg) else None
    for s in range(idx.start, idx.stop, batch):
        part = range(s, min(s + batch, idx.stop))
        rgb, dep = zip(*(clips.frames(i) for i in part))
        x_r, x_d, valid = to_model_tensors(np.stack(rgb), np.stack(dep), cfg, np.full(len(part), flip))
        nets = {mod: encoder_inputs(cfg, mod, x.to(device), valid.to(device))
                for mod, x in (("rgb", x_r), ("depth", x_d))}
        priors = {}
        if motion_prior.enabled(cfg):  # the flow extrapolation of the context, as the predictor makes it
            p_r, p_d = motion_prior.extrapolate(nets["rgb"][0][:, :, :c], nets["depth"][0][:, :, :c], cfg, flow)
            priors = {"rgb": p_r, "depth": p_d}
        with torch.no_grad():
            for mod, (x, anchor) in nets.items():
                clips_of_role = [("ctx", x[:, :, :c], anchor), ("tgt", x[:, :, c:], anchor)]
                if anchor is not None:  # the target as decoded when this sensor is silent (no anchor)
                    clips_of_role.append(("free", x[:, :, c:], empty_anchor(anchor)))
                if mod in priors:
                    clips_of_role.append(("prior", priors[mod], anchor))
                for role, clip, a in clips_of_role:
                    z = model.autoencoder(mod).encode(clip, a)
                    for name, p in zip(PLANES, z.planes()):
                        acc.setdefault(f"{mod}.{role}.{name}", []).append(p.cpu())
    return {k: torch.cat(v) for k, v in acc.items()}


def encoder_inputs(cfg: ModelConfig, modality: str, x: torch.Tensor, valid: torch.Tensor):
    """(clip, anchor) as the autoencoder of ``cfg`` takes them, for a context + future clip: the anchor is
    the newest context frame (None for the direct decoder)."""
    if cfg.autoencoder.decoder != "anchored":
        return x, None
    return anchored_inputs(x, valid, cfg.context_frames - 1, modality)


class Latents:
    def __init__(self, path: Path, device: str):
        tensors, meta = load_checkpoint(path)
        if meta.get("kind") != "latents":
            raise CheckpointError(f"{path}: not a latent cache (run `syncvp cache-latents` first)")
        self.t = {k: v.to(device) for k, v in tensors.items()}
        self.n = int(meta["n"])
        self.meta = meta
        self.path = path

    def has(self, role: str) -> bool:
        """Whether the cache holds latents of this role ("free": anchored targets against the empty anchor)."""
        return f"rgb.{role}.xy" in self.t

    def get(self, mod: str, role: str, idx: np.ndarray) -> Triplane:
        i = torch.as_tensor(idx, device=self.t[f"{mod}.{role}.xy"].device)
        return Triplane(*(self.t[f"{mod}.{role}.{p}"][i] for p in PLANES))

    def condition(self, cfg: ModelConfig, mod: str, idx: np.ndarray) -> Triplane:
        """What the denoiser branch is conditioned on: the context latent, with ``motion_prior`` also the
        prior latent (:func:`syncvp_core.motion_prior.condition`)."""
        ctx = self.get(mod, "ctx", idx)
        if not motion_prior.enabled(cfg):
            return ctx
        if not self.has("prior"):
            raise CheckpointError(f"{self.path} holds no motion-prior latents but the model config has "
                                  f"motion_prior={cfg.motion_prior}: run `syncvp cache-latents` again")
        return motion_prior.condition(ctx, self.get(mod, "prior", idx), cfg.chunk_frames)


# ---------------------------------------------------------------------------------------------------------
# Stage "single"


def single_task(cfg: ModelConfig, scfg: SingleConfig, modality: str, lat: Latents, device: str) -> Task:
    module = BranchUNet(cfg, cfg.autoencoder.latent_channels)
    schedule = NoiseSchedule(cfg.diffusion)
    own = MOD_INDEX[modality]

    def loss(model, idx: np.ndarray, gen: torch.Generator, info: DistInfo):
        z, ctx = lat.get(modality, "tgt", idx), lat.condition(cfg, modality, idx)
        free = lat.get(modality, "free", idx) if lat.has("free") else None
        return single_loss(model, schedule, z, ctx, own, scfg.cond_drop, gen, share=info, unanchored=free), {}

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
        free = (lat.get("rgb", "free", idx), lat.get("depth", "free", idx)) if lat.has("free") else None
        total, parts = joint_loss(model, schedule, cfg.diffusion, lat.get("rgb", "tgt", idx),
                                  lat.get("depth", "tgt", idx), lat.condition(cfg, "rgb", idx),
                                  lat.condition(cfg, "depth", idx), gen, share=info, unanchored=free,
                                  full_t_max=jcfg.full_t_max)
        return total, {"loss_rgb": float(parts["loss_rgb"]), "loss_depth": float(parts["loss_depth"])}

    sample = None
    # The anchored decoder needs the anchor frames, which the latent cache does not keep.
    if ae_paths is not None and cfg.autoencoder.decoder == "direct":
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
