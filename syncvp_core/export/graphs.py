"""The three deployable graphs as flat-tensor modules, and the names and shapes of their inputs/outputs.

ONNX and TensorRT see named tensors, not :class:`~syncvp_core.triplane.Triplane` objects, so each graph is a
thin wrapper that takes and returns plain tensors in a fixed order:

* ``encoder_rgb`` / ``encoder_depth``: ``frames`` (B, C, T_ctx, H, W) -> ``z_xy``, ``z_xt``, ``z_yt``
  (T_ctx = context_frames: the only clip length the host code ever encodes);
* ``decoder_rgb`` / ``decoder_depth``: ``z_xy``, ``z_xt``, ``z_yt`` (T = chunk_frames) -> ``frames``;
* with the anchored decoder (``autoencoder.decoder: anchored``) both also take ``anchor`` (B, C, H, W), the
  newest context frame at model resolution (depth: C = 2, value and validity), and the decoder returns
  ``fields`` (B, K, T, H, W) instead of frames; composing them at the sensor resolution stays in host code
  (:mod:`syncvp_core.warp`), so the graphs keep static model-resolution shapes;
* ``denoiser_step``: ``x_rgb_{xy,xt,yt}``, ``x_depth_{...}``, ``t`` (B,) int64, ``ctx_rgb_{...}``,
  ``ctx_depth_{...}``, ``present`` (B, 2) float -> ``eps_rgb_{...}``, ``eps_depth_{...}``: ONE joint step;
* with ``motion_prior`` (syncvp_core/motion_prior.py) also ``prior_rgb`` / ``prior_depth``: the same
  encoders at T = chunk_frames (the flow extrapolation of the context), and the denoiser's ``ctx_*`` planes
  are the conditioning (T = chunk_frames, context and prior channels).

The DDIM loop, guidance and rollout stay in host code (docs/design-notes.md §8.1). The same names are used by the
exporter, the onnxruntime and TensorRT backends and the manifest, so they are defined once, here.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
from torch import Tensor, nn

from .. import motion_prior
from ..config import PLANES, ModelConfig
from ..models.syncvp import SyncVPDenoiser, SyncVPModel
from ..triplane import Triplane
from ..warp import field_channels

MODALITIES = ("rgb", "depth")
IN_CHANNELS = {"rgb": 3, "depth": 1}
DENOISER = "denoiser_step"
GRAPH_NAMES = ("encoder_rgb", "encoder_depth", "decoder_rgb", "decoder_depth", DENOISER)
PRIOR_GRAPHS = ("prior_rgb", "prior_depth")


def graph_names(cfg: ModelConfig) -> tuple[str, ...]:
    """Every graph a model of ``cfg`` deploys as: the five, plus the prior encoders with ``motion_prior``."""
    return GRAPH_NAMES + (PRIOR_GRAPHS if motion_prior.enabled(cfg) else ())


def encoder_graph(cfg: ModelConfig, modality: str, frames: int) -> str:
    """The graph that encodes a clip of ``frames`` frames: contexts, or (motion prior) chunk-long priors."""
    if frames == cfg.context_frames:
        return f"encoder_{modality}"
    if motion_prior.enabled(cfg) and frames == cfg.chunk_frames:
        return f"prior_{modality}"
    takes = f"{cfg.context_frames}" + (f" or {cfg.chunk_frames}" if motion_prior.enabled(cfg) else "")
    raise ValueError(f"no exported encoder takes {frames} frames (this model's take {takes})")


@dataclass(frozen=True)
class TensorSpec:
    name: str
    shape: tuple[int, ...]  # dim 0 is the batch
    dtype: str  # "float32" | "int64"

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class GraphSpec:
    name: str
    inputs: tuple[TensorSpec, ...]
    outputs: tuple[TensorSpec, ...]

    @property
    def input_names(self) -> list[str]:
        return [s.name for s in self.inputs]

    @property
    def output_names(self) -> list[str]:
        return [s.name for s in self.outputs]


def plane_names(prefix: str, modality: str | None = None) -> list[str]:
    stem = f"{prefix}_{modality}" if modality else prefix
    return [f"{stem}_{p}" for p in PLANES]


def latent_plane_shapes(cfg: ModelConfig, batch: int, frames: int, channels: int | None = None
                        ) -> list[tuple[int, ...]]:
    """Shapes of the xy, xt, yt planes of a latent clip of ``frames`` frames (``channels``: default the
    latent's)."""
    c = channels or cfg.autoencoder.latent_channels
    lh, lw = cfg.latent_size
    return [(batch, c, lh, lw), (batch, c, frames, lw), (batch, c, frames, lh)]


def anchored(cfg: ModelConfig) -> bool:
    return cfg.autoencoder.decoder == "anchored"


def encoder_channels(cfg: ModelConfig, modality: str) -> int:
    """Channels of one input frame: the anchored depth encoder also takes the validity mask."""
    return 2 if anchored(cfg) and modality == "depth" else IN_CHANNELS[modality]


def graph_specs(cfg: ModelConfig, batch: int = 1) -> dict[str, GraphSpec]:
    h, w = cfg.resolution
    tc, tk = cfg.context_frames, cfg.chunk_frames
    f32 = "float32"
    specs: dict[str, GraphSpec] = {}
    for m in MODALITIES:
        ch = encoder_channels(cfg, m)
        anchor = (TensorSpec("anchor", (batch, ch, h, w), f32),) if anchored(cfg) else ()
        ctx_planes = tuple(TensorSpec(n, s, f32) for n, s in zip(plane_names("z"), latent_plane_shapes(cfg, batch, tc)))
        specs[f"encoder_{m}"] = GraphSpec(
            f"encoder_{m}", (TensorSpec("frames", (batch, ch, tc, h, w), f32), *anchor), ctx_planes)
        tgt_planes = tuple(TensorSpec(n, s, f32) for n, s in zip(plane_names("z"), latent_plane_shapes(cfg, batch, tk)))
        out = (TensorSpec("fields", (batch, field_channels(m, IN_CHANNELS[m]), tk, h, w), f32) if anchored(cfg)
               else TensorSpec("frames", (batch, IN_CHANNELS[m], tk, h, w), f32))
        specs[f"decoder_{m}"] = GraphSpec(f"decoder_{m}", (*tgt_planes, *anchor), (out,))
        if motion_prior.enabled(cfg):
            specs[f"prior_{m}"] = GraphSpec(
                f"prior_{m}", (TensorSpec("frames", (batch, ch, tk, h, w), f32), *anchor), tgt_planes)
    tgt = latent_plane_shapes(cfg, batch, tk)
    if motion_prior.enabled(cfg):  # the conditioning: context padded to the chunk, prior channels after it
        ctx = latent_plane_shapes(cfg, batch, tk, motion_prior.condition_channels(cfg, cfg.autoencoder.latent_channels))
    else:
        ctx = latent_plane_shapes(cfg, batch, tc)
    inputs = [TensorSpec(n, s, f32) for m in MODALITIES for n, s in zip(plane_names("x", m), tgt)]
    inputs.append(TensorSpec("t", (batch,), "int64"))
    inputs += [TensorSpec(n, s, f32) for m in MODALITIES for n, s in zip(plane_names("ctx", m), ctx)]
    inputs.append(TensorSpec("present", (batch, 2), f32))
    outputs = [TensorSpec(n, s, f32) for m in MODALITIES for n, s in zip(plane_names("eps", m), tgt)]
    specs[DENOISER] = GraphSpec(DENOISER, tuple(inputs), tuple(outputs))
    return specs


# -- wrapper modules (flat tensors in, flat tensors out) ---------------------------------------------------


class EncoderGraph(nn.Module):
    def __init__(self, ae: nn.Module):
        super().__init__()
        self.ae = ae

    def forward(self, frames: Tensor, anchor: Tensor | None = None) -> tuple[Tensor, Tensor, Tensor]:
        return self.ae.encode(frames, anchor).planes()


class DecoderGraph(nn.Module):
    def __init__(self, ae: nn.Module):
        super().__init__()
        self.ae = ae

    def forward(self, z_xy: Tensor, z_xt: Tensor, z_yt: Tensor, anchor: Tensor | None = None) -> Tensor:
        return self.ae.decode(Triplane(z_xy, z_xt, z_yt), anchor)


class DenoiserStepGraph(nn.Module):
    """One joint denoising step with the argument order of :data:`graph_specs`' ``denoiser_step``."""

    def __init__(self, denoiser: SyncVPDenoiser):
        super().__init__()
        self.denoiser = denoiser

    def forward(self, x_rgb_xy, x_rgb_xt, x_rgb_yt, x_depth_xy, x_depth_xt, x_depth_yt, t,
                ctx_rgb_xy, ctx_rgb_xt, ctx_rgb_yt, ctx_depth_xy, ctx_depth_xt, ctx_depth_yt, present):
        eps_r, eps_d = self.denoiser(
            Triplane(x_rgb_xy, x_rgb_xt, x_rgb_yt), Triplane(x_depth_xy, x_depth_xt, x_depth_yt), t,
            Triplane(ctx_rgb_xy, ctx_rgb_xt, ctx_rgb_yt), Triplane(ctx_depth_xy, ctx_depth_xt, ctx_depth_yt),
            present)
        return (*eps_r.planes(), *eps_d.planes())


def graph_module(model: SyncVPModel, name: str) -> nn.Module:
    if name == DENOISER:
        return DenoiserStepGraph(model.denoiser).eval()
    kind, modality = name.split("_")
    ae = model.ae_rgb if modality == "rgb" else model.ae_depth
    return (DecoderGraph(ae) if kind == "decoder" else EncoderGraph(ae)).eval()


# -- flattening helpers used by the backends ---------------------------------------------------------------


def step_inputs(x_r: Triplane, x_d: Triplane, t: Tensor, ctx_r: Triplane, ctx_d: Triplane,
                present: Tensor) -> dict[str, Tensor]:
    """The denoiser arguments as the graph's named inputs, in the graph's input order."""
    out: dict[str, Tensor] = {}
    out.update(zip(plane_names("x", "rgb"), x_r.planes()))
    out.update(zip(plane_names("x", "depth"), x_d.planes()))
    out["t"] = t.to(torch.int64)
    out.update(zip(plane_names("ctx", "rgb"), ctx_r.planes()))
    out.update(zip(plane_names("ctx", "depth"), ctx_d.planes()))
    out["present"] = present.to(torch.float32)
    return out


def eps_from_outputs(outputs: dict[str, Tensor]) -> tuple[Triplane, Triplane]:
    return tuple(Triplane(*(outputs[n] for n in plane_names("eps", m))) for m in MODALITIES)  # type: ignore


def encoder_inputs(x: Tensor, anchor: Tensor | None) -> dict[str, Tensor]:
    """The encoder graph's named inputs (``anchor`` only for the anchored autoencoder)."""
    feeds = {"frames": x.float()}
    if anchor is not None:
        feeds["anchor"] = anchor.float()
    return feeds


def decoder_inputs(z: Triplane, anchor: Tensor | None) -> dict[str, Tensor]:
    """The decoder graph's named inputs (``anchor`` only for the anchored autoencoder)."""
    feeds = dict(zip(plane_names("z"), z.planes()))
    if anchor is not None:
        feeds["anchor"] = anchor.float()
    return feeds


def decoder_output(outputs: dict[str, Tensor]) -> Tensor:
    """The decoder graph's only output: ``frames`` (direct) or ``fields`` (anchored)."""
    return outputs["fields"] if "fields" in outputs else outputs["frames"]


def latent_from_outputs(outputs: dict[str, Tensor]) -> Triplane:
    return Triplane(*(outputs[n] for n in plane_names("z")))


def example_inputs(spec: GraphSpec, generator: torch.Generator | None = None) -> tuple[Tensor, ...]:
    """Random inputs matching ``spec`` (timesteps in [0, 1000), presence flags in {0, 1}), for tracing and
    parity checks. Values are in the ranges the host code feeds (latents and frames in [-1, 1])."""
    out = []
    for s in spec.inputs:
        if s.dtype == "int64":
            out.append(torch.randint(0, 1000, s.shape, generator=generator))
        elif s.name == "present":
            out.append(torch.ones(s.shape))
        elif s.name in ("frames", "anchor") and s.shape[1] == 2:
            # Anchored depth: [normalised depth, validity in {0, 1}].
            v = torch.rand(s.shape, generator=generator) * 2 - 1
            v[:, 1] = (v[:, 1] > -0.8).float()
            out.append(v)
        else:
            out.append(torch.rand(s.shape, generator=generator) * 2 - 1)
    return tuple(out)
