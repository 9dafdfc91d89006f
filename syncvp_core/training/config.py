"""Typed training configuration (config/train/*.yaml), strict like the model config: unknown keys are errors.

A train config names a model config (``model``) plus model overrides, the data, and one section per stage.
``syncvp train`` writes the fully resolved config (train + model) next to the checkpoints it produces.
"""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from ..config import (
    ConfigError,
    ModelConfig,
    apply_overrides,
    from_dict,
    load_model_config,
    load_yaml,
    resolve_config_path,
)
from ..data.mix import SimMix, check_parts

STAGES = ("ae", "single", "joint")
MODALITIES = ("rgb", "depth")


@dataclass
class OptimConfig:
    """Optimiser + schedule of one stage (AdamW, linear warm-up then cosine decay to lr * min_lr_ratio)."""

    steps: int = 1000
    batch_size: int = 8           # clips per process per micro-step
    grad_accum: int = 1           # micro-steps per optimiser step
    lr: float = 1e-4
    betas: tuple[float, float] = (0.9, 0.999)
    weight_decay: float = 0.01
    eps: float = 1e-8             # AdamW epsilon
    warmup_steps: int = 50
    min_lr_ratio: float = 0.01
    grad_clip: float = 1.0        # max global grad norm; 0 disables clipping
    ema_decay: float = 0.999      # EMA of the weights, warm-up min(decay, (1+n)/(10+n)); 0 disables
    ema_every: int = 1            # update the EMA every N optimiser steps
    log_every: int = 10
    ckpt_every: int = 200         # optimiser steps between checkpoints
    ckpt_every_s: float = 0.0     # also checkpoint after this many seconds (0 = off)
    sample_every: int = 0         # image samples to TensorBoard every N steps (0 = off)


@dataclass
class AEConfig(OptimConfig):
    recon_loss: str = "l1"        # l1 | l2
    recon_weight: float = 1.0
    # Perceptual (LPIPS) term on one random frame per clip. Off by default: it needs the LPIPS weights,
    # which are never downloaded by training.
    perceptual_weight: float = 0.0
    # Anchored depth decoder: weight of the validity-logit BCE on warp holes (kept small: it only decides
    # which hole pixels are published, and should not steer the shared trunk).
    hole_weight: float = 0.1
    # Anchored decoder: fraction of clips trained with the empty anchor (no observation of this modality),
    # so that a forecast can still be decoded when this sensor is silent.
    anchor_dropout: float = 0.1
    # Anchored decoder: weight of an L1 (in model pixels) between the flow head and OpenCV DIS flow from each
    # frame to the anchor (training/flow_teacher.py); 0 = photometric loss only.
    flow_teacher_weight: float = 0.0
    # Fraction of micro-steps trained on context-length clips (the same AE encodes 2- and 8-frame clips).
    context_clip_fraction: float = 0.25
    # Start from these autoencoder weights ("{modality}" is replaced by rgb/depth); "" = random init.
    init: str = ""
    # Train the decoder only: the latent space (and so cached latents and a trained diffusion model)
    # stays valid, while reconstructions of predicted latents improve.
    freeze_encoder: bool = False


@dataclass
class SingleConfig(OptimConfig):
    cond_drop: float = 0.25       # probability a clip's context is dropped (its presence flag 0)


@dataclass
class JointConfig(OptimConfig):
    # singles: strict initialisation from the two single-modality checkpoints (only fusion.* may be
    # missing); scratch: random init (zero-init fusion); a path: a joint/bundle checkpoint to start from.
    init: str = "singles"
    # > 0: with both modalities present, train only on timesteps below this (see diffusion.losses.joint_loss):
    # for a model sampled from the anchor (sampler.start: anchor, start_t < full_t_max), which then spends
    # its whole budget where it samples. 0 = the whole schedule (the paper; needed to sample from noise).
    full_t_max: int = 0


@dataclass
class DataConfig:
    # Sequence folders in the real-rgbd layout (rgb/, depth/, frames.csv, intrinsics.yaml).
    folders: tuple[str, ...] = ()
    # Data sets in the project's sharded training format (syncvp data / syncvp sim output).
    datasets: tuple[str, ...] = ()
    # Contiguous tail of every sequence kept out of training (validation), as a fraction of its frames.
    holdout_fraction: float = 0.2
    # Random horizontal flips (same flip for colour and depth) in autoencoder training.
    hflip: bool = True
    # Also cache mirrored copies of every clip for the diffusion stages (doubles cache-latents time).
    cache_hflip: bool = True
    # Cached (diffusion) clips start every N model frames (N x stride source frames); 0 = at every source
    # frame, i.e. all sub-sampling phases of a 30 Hz source. Autoencoder clips always start at every frame.
    start_step: int = 0
    # Where cache-latents writes and single/joint read latents; "" = <run_dir>/latents.safetensors.
    latent_cache: str = ""
    # Also train on every clip played backwards, from sequences where that is physically plausible: those
    # the simulator marks time_reversible and those whose name matches a pattern in ``reversible``
    # (fnmatch; e.g. a camera moving through a static scene). Falling objects backwards are not plausible.
    reverse_time: bool = False
    reversible: tuple[str, ...] = ()
    # The simulator part of the data mix (syncvp data make-mix renders it into sim_root/<part>/); its
    # data sets are read like ``datasets``.
    sim_root: str = ""
    sim_mix: tuple[SimMix, ...] = ()
    # A training pack (`syncvp pack-data`, syncvp_core/training/pack.py) to train from instead of folders,
    # datasets and sim_mix: the data of this config, made on a machine that has it, for one that does not.
    pack: str = ""

    def all_datasets(self) -> list[str]:
        from ..data.mix import mix_datasets

        return list(self.datasets) + [str(p) for p in mix_datasets(self.sim_root, self.sim_mix)]


@dataclass
class TrainConfig:
    model: str = "tiny"
    model_overrides: tuple[str, ...] = ()
    run_dir: str = "runs/default"
    seed: int = 0
    device: str = "auto"          # auto | cpu | cuda
    compile: bool = False         # torch.compile the trained module
    bf16: bool = True             # bf16 autocast on CUDA (ignored on CPU)
    threads: int = 0              # torch.set_num_threads on CPU (0 = leave torch's default)
    progress: bool = True         # tqdm bar
    data: DataConfig = field(default_factory=DataConfig)
    ae: AEConfig = field(default_factory=AEConfig)
    single: SingleConfig = field(default_factory=SingleConfig)
    joint: JointConfig = field(default_factory=JointConfig)

    def model_config(self) -> ModelConfig:
        return load_model_config(self.model, list(self.model_overrides))

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def load_train_config(path: str | Path, overrides: list[str] | None = None) -> TrainConfig:
    """Read ``config/train/<name>.yaml`` (or a path); ``overrides`` are ``a.b=value`` strings.

    Overrides starting with ``model.`` change the model config (e.g. ``model.resolution=[16,16]``); they are
    appended to ``model_overrides`` so the resolved config records them.
    """
    p = resolve_config_path(path, "train")
    data = _load_with_base(p, [])
    model_ovr = [o[len("model."):] for o in overrides or [] if o.startswith("model.")]
    train_ovr = [o for o in overrides or [] if not o.startswith("model.")]
    data = apply_overrides(data, train_ovr)
    if model_ovr:
        data["model_overrides"] = list(data.get("model_overrides", [])) + model_ovr
    try:
        cfg = from_dict(TrainConfig, data)
        validate(cfg)
        cfg.model_config()  # fail now, not after an hour of autoencoder training
    except ConfigError as e:
        raise ConfigError(f"{p}: {e}") from e
    return cfg


def _load_with_base(p: Path, seen: list[Path]) -> dict[str, Any]:
    """A config may start from another one (``base: default_tiny``); its own keys win (mappings merge,
    lists and scalars replace). This keeps ablation configs to the lines that differ."""
    if p.resolve() in seen:
        raise ConfigError(f"{p}: circular 'base' chain {[str(s) for s in seen]}")
    data = load_yaml(p)
    base = data.pop("base", None)
    if base is None:
        return data
    if not isinstance(base, str):
        raise ConfigError(f"{p}: base must be a train config name or path")
    return _merge(_load_with_base(resolve_config_path(base, "train"), seen + [p.resolve()]), data)


def _merge(a: dict[str, Any], b: dict[str, Any]) -> dict[str, Any]:
    out = dict(a)
    for k, v in b.items():
        out[k] = _merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


def _fix_floats(obj: Any, path: str = "") -> None:
    """YAML 1.1 reads ``1e-4`` (no dot) as a string; accept it as the float it obviously is, and refuse any
    other non-number in a float field (the generic loader lets strings through there)."""
    import dataclasses
    import typing

    hints = typing.get_type_hints(type(obj))
    for f in dataclasses.fields(obj):
        v = getattr(obj, f.name)
        if dataclasses.is_dataclass(v):
            _fix_floats(v, f"{path}{f.name}.")
        elif hints[f.name] is float and not isinstance(v, float):
            try:
                setattr(obj, f.name, float(v))
            except (TypeError, ValueError):
                raise ConfigError(f"{path}{f.name} must be a number, got {v!r}") from None


def validate(cfg: TrainConfig) -> None:
    _fix_floats(cfg)
    for name in STAGES:
        s: OptimConfig = getattr(cfg, name)
        if s.steps < 0 or s.batch_size < 1 or s.grad_accum < 1:
            raise ConfigError(f"{name}: steps >= 0, batch_size >= 1 and grad_accum >= 1 are required")
        if not 0 <= s.ema_decay < 1:
            raise ConfigError(f"{name}.ema_decay must be in [0, 1)")
    if cfg.ae.recon_loss not in ("l1", "l2"):
        raise ConfigError(f"ae.recon_loss must be l1|l2, got {cfg.ae.recon_loss!r}")
    if cfg.data.start_step < 0:
        raise ConfigError("data.start_step must be >= 0")
    try:
        check_parts(cfg.data.sim_root, cfg.data.sim_mix)
    except ValueError as e:
        raise ConfigError(str(e)) from e
    if not 0 <= cfg.data.holdout_fraction < 1:
        raise ConfigError("data.holdout_fraction must be in [0, 1)")
    if cfg.device not in ("auto", "cpu", "cuda"):
        raise ConfigError(f"device must be auto|cpu|cuda, got {cfg.device!r}")


def resolved_json(cfg: TrainConfig) -> str:
    """Train + model config as written next to every checkpoint."""
    return json.dumps({"train": cfg.to_dict(), "model": cfg.model_config().to_dict()}, indent=2, sort_keys=True)
