"""Typed configuration: dataclasses loaded from YAML.

Every architectural and sampling choice lives here, so a checkpoint's sidecar JSON (which stores the
resolved :class:`ModelConfig`) is enough to rebuild the model that produced it.
"""
from __future__ import annotations

import dataclasses
import json
import numbers
import sys
import types
import typing
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import yaml

PLANES = ("xy", "xt", "yt")


class ConfigError(ValueError):
    """A configuration file or override is invalid; the message names the key."""


@dataclass
class AutoencoderConfig:
    channels: int = 32
    # One entry per resolution level; the latent grid is the frame size / 2**(len(channel_mult) - 1).
    channel_mult: tuple[int, ...] = (1, 2, 2)
    num_res_blocks: int = 1
    latent_channels: int = 4
    # Kernel of the temporal convolutions that mix neighbouring frames; 1 disables temporal mixing.
    temporal_kernel: int = 3
    # direct: the paper's decoder draws every pixel at model resolution. anchored: the encoder and decoder
    # also see the newest context frame and the decoder outputs flow + blend mask + residual, composed at
    # the sensor resolution (docs/anchored.md). Old checkpoints have no key here and load as direct.
    decoder: str = "direct"
    # Multiplies the tanh-bounded latent so the diffusion model sees roughly unit variance (LDM's scale
    # factor); measured after autoencoder training and stored in the checkpoint. DDIM clips x0 to
    # [-latent_scale, latent_scale].
    latent_scale: float = 1.0


@dataclass
class UNetConfig:
    channels: int = 64
    channel_mult: tuple[int, ...] = (1, 2)
    num_res_blocks: int = 1
    # Levels (0 = full latent resolution) that get per-plane self-attention and the joint attention over
    # the tokens of all three planes (the only path between planes besides the shared weights).
    attention_levels: tuple[int, ...] = (1,)
    num_heads: int = 4
    # Width of the timestep embedding = emb_mult * channels (the official UNet uses 4x).
    emb_mult: int = 4
    dropout: float = 0.0


@dataclass
class FusionConfig:
    # stca: Spatio-Temporal Cross-modal Attention (the paper); full: one cross-attention over the tokens of
    # all three planes; concat: one UNet over both modalities stacked on channels; none: two independent
    # branches (what the single-modality stage trains).
    kind: str = "stca"
    # deepest: every block at the deepest UNet level (the paper's choice); all: after every block;
    # none: no fusion blocks.
    points: str = "deepest"
    num_heads: int = 4


@dataclass
class DiffusionConfig:
    num_timesteps: int = 1000
    # LDM "scaled linear" schedule, betas = linspace(sqrt(start), sqrt(end))**2, as in the official code.
    beta_start: float = 0.0015
    beta_end: float = 0.0195
    # One epsilon for both modalities (SyncVP); False draws independent noise (ablation).
    shared_noise: bool = True
    # Context dropout per clip: (both contexts, RGB-only, depth-only). Must sum to 1. (1, 0, 0) = no guidance.
    guidance_probs: tuple[float, float, float] = (0.5, 0.25, 0.25)
    # What the denoiser outputs: eps (the paper, LDM) or x0 (the clean latent). With eps, a few DDIM steps
    # from high noise turn any small error into a large x0 error (x0 = (x_t - sqrt(1 - ab) eps) / sqrt(ab));
    # x0 prediction learns the conditional mean of the target directly.
    prediction: str = "eps"


@dataclass
class SamplerConfig:
    # DDIM steps; the default is a measured choice (bench/steps_quality.py), far below the official 100.
    steps: int = 20
    # 0 = deterministic DDIM. The official evaluation used 1.0 through a constructor default.
    eta: float = 0.0
    # The latent is tanh-bounded, so the predicted x0 is clipped to [-latent_scale, latent_scale].
    clip_x0: bool = True
    # noise: DDIM starts from pure noise at the last timestep (the paper). anchor (anchored decoder only):
    # it starts from the latent of "nothing changes" noised to timestep start_t, so fewer steps cover a
    # shorter path and an unsure forecast stays near the observation.
    start: str = "noise"
    start_t: int = 999
    # The forecast latent is the mean of this many DDIM draws from independent noises, decoded once. With
    # one x0-predicting step from pure noise, the noise carries almost nothing about the target, so each draw
    # estimates E[x0 | context] and their mean has less of the network's noise-dependent error; averaging
    # latents (flow, blend, residual) keeps the composed frame a sharp warp, where averaging decoded frames
    # blurs it. Costs `draws` denoiser rows per forecast, one decode.
    draws: int = 1


@dataclass
class DepthConfig:
    """Metric depth <-> network range. See :mod:`syncvp_core.depth` for the maths."""

    min_m: float = 0.2
    max_m: float = 20.0
    # inverse: normalised inverse depth (more resolution near the robot); linear: normalised metres;
    # log: normalised log depth (constant relative resolution; see syncvp_core/depth.py).
    representation: str = "inverse"


@dataclass
class ModelConfig:
    name: str = "tiny"
    # Model input size (height, width). Sensor frames are resized to it and predictions resized back.
    resolution: tuple[int, int] = (64, 64)
    context_frames: int = 2
    chunk_frames: int = 8
    # Frame rate the model was trained at: the node spaces context frames to match it.
    frame_rate_hz: float = 10.0
    autoencoder: AutoencoderConfig = field(default_factory=AutoencoderConfig)
    unet: UNetConfig = field(default_factory=UNetConfig)
    fusion: FusionConfig = field(default_factory=FusionConfig)
    diffusion: DiffusionConfig = field(default_factory=DiffusionConfig)
    sampler: SamplerConfig = field(default_factory=SamplerConfig)
    depth: DepthConfig = field(default_factory=DepthConfig)
    # none: the denoiser sees the context latents (the paper). flow (anchored decoder only): it also sees
    # the latent of the context's optical-flow extrapolation over the chunk, so it learns a correction to
    # constant velocity (syncvp_core/motion_prior.py).
    motion_prior: str = "none"

    def __post_init__(self) -> None:
        validate(self)

    @property
    def latent_size(self) -> tuple[int, int]:
        f = 2 ** (len(self.autoencoder.channel_mult) - 1)
        return self.resolution[0] // f, self.resolution[1] // f

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True)


def validate(cfg: ModelConfig) -> None:
    h, w = cfg.resolution
    f = 2 ** (len(cfg.autoencoder.channel_mult) - 1)
    levels = len(cfg.unet.channel_mult)
    if h % f or w % f:
        raise ConfigError(f"resolution {cfg.resolution} must be divisible by the autoencoder factor {f}")
    lh, lw = h // f, w // f
    down = 2 ** (levels - 1)
    for name, n in (("latent height", lh), ("latent width", lw), ("chunk_frames", cfg.chunk_frames)):
        if n % down:
            raise ConfigError(f"{name}={n} must be divisible by 2**(len(unet.channel_mult)-1)={down}")
    if cfg.context_frames < 1 or cfg.context_frames > cfg.chunk_frames:
        raise ConfigError("context_frames must be in [1, chunk_frames]")
    if cfg.fusion.kind not in ("stca", "full", "concat", "none"):
        raise ConfigError(f"fusion.kind must be stca|full|concat|none, got {cfg.fusion.kind!r}")
    if cfg.fusion.points not in ("deepest", "all", "none"):
        raise ConfigError(f"fusion.points must be deepest|all|none, got {cfg.fusion.points!r}")
    if any(not 0 <= lvl < levels for lvl in cfg.unet.attention_levels):
        raise ConfigError(f"unet.attention_levels {cfg.unet.attention_levels} outside 0..{levels - 1}")
    if cfg.diffusion.prediction not in ("eps", "x0"):
        raise ConfigError(f"diffusion.prediction must be eps or x0, got {cfg.diffusion.prediction!r}")
    p = cfg.diffusion.guidance_probs
    if len(p) != 3 or min(p) < 0 or abs(sum(p) - 1.0) > 1e-6:
        raise ConfigError(f"diffusion.guidance_probs must be 3 non-negative numbers summing to 1, got {p}")
    if cfg.depth.representation not in ("inverse", "linear", "log"):
        raise ConfigError("depth.representation must be inverse|linear|log")
    if cfg.autoencoder.decoder not in ("direct", "anchored"):
        raise ConfigError(f"autoencoder.decoder must be direct|anchored, got {cfg.autoencoder.decoder!r}")
    if not cfg.autoencoder.latent_scale > 0:
        raise ConfigError("autoencoder.latent_scale must be > 0")
    if cfg.sampler.start not in ("noise", "anchor"):
        raise ConfigError(f"sampler.start must be noise|anchor, got {cfg.sampler.start!r}")
    if cfg.sampler.start == "anchor" and cfg.autoencoder.decoder != "anchored":
        raise ConfigError("sampler.start=anchor needs autoencoder.decoder=anchored")
    if cfg.motion_prior not in ("none", "flow"):
        raise ConfigError(f"motion_prior must be none|flow, got {cfg.motion_prior!r}")
    if cfg.motion_prior != "none" and cfg.autoencoder.decoder != "anchored":
        raise ConfigError("motion_prior=flow needs autoencoder.decoder=anchored (the prior is encoded against "
                          "the newest frame)")
    if not 0 <= cfg.sampler.start_t < cfg.diffusion.num_timesteps:
        raise ConfigError("sampler.start_t must be in [0, num_timesteps)")
    if not 0 < cfg.depth.min_m < cfg.depth.max_m:
        raise ConfigError("depth range must satisfy 0 < min_m < max_m")
    if cfg.sampler.steps < 1 or cfg.sampler.steps > cfg.diffusion.num_timesteps:
        raise ConfigError("sampler.steps must be in [1, num_timesteps]")
    positive_int(cfg.sampler.draws, "sampler.draws", ConfigError)


def positive_int(value: Any, name: str, error: type[Exception] = ValueError) -> int:
    """``value`` as an int if it is an integer >= 1 (numpy integers too, never a bool), else ``error``."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1:
        raise error(f"{name} must be an integer >= 1, got {value!r}")
    return int(value)


# ----------------------------------------------------------------------------------------------------
# Generic dataclass <-> dict with strict key checking (unknown keys are an error, never ignored).


def from_dict(cls: type, data: dict[str, Any] | None, path: str = "") -> Any:
    data = dict(data or {})
    hints = typing.get_type_hints(cls)
    names = {f.name for f in fields(cls)}
    unknown = sorted(set(data) - names)
    if unknown:
        where = path or cls.__name__
        raise ConfigError(f"unknown key(s) {unknown} in {where}; valid keys: {sorted(names)}")
    kwargs = {}
    for key, value in data.items():
        kwargs[key] = _coerce(hints[key], value, f"{path}{key}")
    try:
        return cls(**kwargs)
    except TypeError as e:
        raise ConfigError(f"{path or cls.__name__}: {e}") from e


def _coerce(tp: Any, value: Any, path: str) -> Any:
    origin = typing.get_origin(tp)
    if dataclasses.is_dataclass(tp):
        if not isinstance(value, dict):
            raise ConfigError(f"{path} must be a mapping")
        return from_dict(tp, value, path + ".")
    if origin is tuple:
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{path} must be a list")
        args = typing.get_args(tp)
        item = args[0] if args else Any
        return tuple(_coerce(item, v, path) for v in value)
    if origin in (typing.Union, types.UnionType):
        return value
    if tp is float and isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    if tp is float and isinstance(value, str):
        # YAML 1.1 reads "1e-4" (no dot) as a string; accept numeric strings, refuse the rest.
        try:
            return float(value)
        except ValueError:
            raise ConfigError(f"{path} must be a number, got {value!r}") from None
    if tp is float:
        raise ConfigError(f"{path} must be a number, got {value!r}")
    if tp in (int, str, bool) and not isinstance(value, tp):
        raise ConfigError(f"{path} must be {tp.__name__}, got {value!r}")
    return value


def apply_overrides(data: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    """Apply ``a.b.c=value`` overrides (value parsed as YAML) to a nested dict."""
    out = json.loads(json.dumps(data))
    for item in overrides:
        if "=" not in item:
            raise ConfigError(f"override {item!r} must look like key.sub=value")
        key, raw = item.split("=", 1)
        node = out
        parts = key.split(".")
        for p in parts[:-1]:
            node = node.setdefault(p, {})
            if not isinstance(node, dict):
                raise ConfigError(f"override {key!r}: {p} is not a mapping")
        node[parts[-1]] = yaml.safe_load(raw)
    return out


def config_dirs() -> list[Path]:
    """Where named configs are looked up: the source tree, then the installed share/ folder."""
    here = Path(__file__).resolve().parent.parent / "config"
    return [here, Path(sys.prefix) / "share" / "syncvp_ros" / "config"]


def resolve_config_path(name_or_path: str | Path, kind: str = "model") -> Path:
    p = Path(name_or_path)
    if p.suffix in (".yaml", ".yml"):
        if not p.exists():
            raise ConfigError(f"config file not found: {p}")
        return p
    for d in config_dirs():
        cand = d / kind / f"{name_or_path}.yaml"
        if cand.exists():
            return cand
    raise ConfigError(f"no {kind} config named {name_or_path!r} in {[str(d / kind) for d in config_dirs()]}")


def load_yaml(path: str | Path) -> dict[str, Any]:
    try:
        with open(path) as f:
            data = yaml.safe_load(f) or {}
    except yaml.YAMLError as e:
        raise ConfigError(f"{path}: invalid YAML: {e}") from e
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: top level must be a mapping")
    return data


def load_model_config(name_or_path: str | Path = "tiny", overrides: list[str] | None = None) -> ModelConfig:
    """Load ``config/model/<name>.yaml`` (or a YAML path) into a validated :class:`ModelConfig`."""
    path = resolve_config_path(name_or_path, "model")
    data = apply_overrides(load_yaml(path), overrides or [])
    try:
        return from_dict(ModelConfig, data)
    except ConfigError as e:
        raise ConfigError(f"{path}: {e}") from e


def model_config_from_json(text: str) -> ModelConfig:
    return from_dict(ModelConfig, json.loads(text))
