"""The pure-Python predictor: context frames in, future colour and depth frames out. No ROS.

    p = Predictor.from_checkpoint()                 # the shipped default model
    out = p.predict(context_rgb, context_depth)     # uint8 (T,H,W,3), float32 metres (T,H,W)
    out.rgb, out.depth, out.mode                    # (K,H,W,3) uint8, (K,H,W) float32 metres, "full"

Resolution: frames of any size are resized to the model's resolution without cropping
(:mod:`syncvp_core.imageops`) and predictions are resized back to the sensor size.

Missing modality: pass ``None`` and the matching cross-modality guidance mode is used (RGB-only or
depth-only); both modalities are still predicted.

Anchored decoding (``autoencoder.decoder: anchored``, docs/anchored.md): the decoders output flow, blend
mask and residual against the newest context frame, and every forecast frame is composed at the *sensor*
resolution from that frame (:mod:`syncvp_core.warp`), so static detail stays sharp whatever the model
resolution; depth pixels the warp cannot fill stay invalid (NaN) unless the model fills them.

Long horizons: a horizon longer than one chunk is rolled out autoregressively. The next chunk's context is
the last ``context_frames`` frames of the previous chunk, always in full mode since both modalities have
now been predicted: direct decoding keeps them as float pixels in [-1, 1] at model resolution (never
quantised to uint8 in between); anchored decoding feeds the composed sensor-resolution frames back like
sensor input.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from . import depth as depth_norm
from . import motion_prior
from .backends.base import Backend
from .backends.select import create_backend
from .checkpoint import DEFAULT_CHECKPOINT, CheckpointError, config_from_meta, load_checkpoint, load_into
from .config import ModelConfig, load_model_config, positive_int
from .diffusion.ddim import DDIMSampler, sample_joint
from .diffusion.guidance import Mode
from .diffusion.schedule import NoiseSchedule
from .flow_extrapolation import FlowExtrapolator
from .imageops import resize_depth, resize_rgb
from .models.anchored import empty_anchor
from .models.syncvp import SyncVPModel
from .spread import Spread, is_batched, repeat_context, summarise
from .triplane import Triplane
from .warp import compose_depth, compose_rgb


class PredictorError(ValueError):
    """Invalid input to :meth:`Predictor.predict`; the message says which argument and why."""


@dataclass
class Prediction:
    rgb: np.ndarray  # uint8 (K, H, W, 3) or (B, K, H, W, 3)
    depth: np.ndarray  # float32 metres (K, H, W) or (B, K, H, W)
    mode: Mode  # FULL | RGB_ONLY | DEPTH_ONLY; equal to the strings "full", "rgb_only", "depth_only"
    steps: int
    seed: int
    timings: dict[str, float] = field(default_factory=dict)
    spread: Spread | None = None  # num_samples > 1: rgb/depth above are the samples' mean


class Predictor:
    # A depth frame with more invalid pixels than this is refused (pass None to predict from RGB alone).
    max_invalid_depth_fraction = 0.95

    def __init__(self, model: SyncVPModel, device: str = "cpu", backend: str = "torch",
                 checkpoint: Path | None = None, meta: dict | None = None, backend_options: dict | None = None):
        self.config: ModelConfig = model.cfg
        self.device = device
        self.model = model
        self.backend: Backend = create_backend(backend, model, device, checkpoint, **(backend_options or {}))
        self.backend_name = self.backend.name
        self.checkpoint = checkpoint
        self.meta = meta or {}
        self.model_name = self.config.name
        self.schedule = NoiseSchedule(self.config.diffusion)
        self._flow: FlowExtrapolator | None = None  # the motion prior's flow (made on first use: OpenCV)

    # -- construction ------------------------------------------------------------------------------------

    @classmethod
    def from_checkpoint(cls, path: str | Path | None = None, device: str = "cpu", backend: str = "torch",
                        backend_options: dict | None = None) -> Predictor:
        """Load a full SyncVP checkpoint (safetensors). ``None`` = the shipped default model.
        ``backend_options`` go to :func:`syncvp_core.backends.select.create_backend` (export_dir, precision,
        threads, compile, ...)."""
        path = Path(path) if path else DEFAULT_CHECKPOINT
        if not path.exists() and path == DEFAULT_CHECKPOINT:
            raise CheckpointError(
                f"the default checkpoint {path} is missing from this installation; pass a checkpoint "
                "path or train one (see README: Training)")
        tensors, meta = load_checkpoint(path)
        cfg = config_from_meta(meta, path)
        model = SyncVPModel(cfg)
        load_into(model, tensors, path)
        return cls(model, device, backend, path, meta, backend_options)

    @classmethod
    def from_config(cls, cfg: ModelConfig | str = "tiny", seed: int = 0, device: str = "cpu",
                    backend: str = "torch", backend_options: dict | None = None) -> Predictor:
        """A randomly initialised model (tests, benchmarks); its predictions are meaningless."""
        cfg = load_model_config(cfg) if isinstance(cfg, str) else cfg
        torch.manual_seed(seed)
        model = SyncVPModel(cfg)
        # Zero-initialised output layers would make a fresh model predict eps = 0; randomise them so that
        # tests exercise a model whose outputs depend on its inputs.
        with torch.no_grad():
            for p in model.parameters():
                if p.ndim > 1 and torch.count_nonzero(p) == 0:
                    p.normal_(0, 0.02)
        return cls(model, device, backend, None, {"random_init": True, "seed": seed}, backend_options)

    # -- properties used by the node and the tools -------------------------------------------------------

    @property
    def context_frames(self) -> int:
        return self.config.context_frames

    @property
    def chunk_frames(self) -> int:
        return self.config.chunk_frames

    @property
    def frame_rate_hz(self) -> float:
        return self.config.frame_rate_hz

    @property
    def resolution(self) -> tuple[int, int]:
        return tuple(self.config.resolution)

    # -- prediction --------------------------------------------------------------------------------------

    def predict(self, context_rgb: np.ndarray | None = None, context_depth: np.ndarray | None = None,
                horizon: int | None = None, steps: int | None = None, seed: int = 0,
                num_samples: int = 1, draws: int | None = None) -> Prediction:
        """``draws``: overrides the model's ``sampler.draws`` (the mean latent of that many draws per forecast;
        1 is the fastest); ``num_samples``: forecasts whose mean and spread are returned (:mod:`.spread`)."""
        n = positive_int(num_samples, "num_samples", PredictorError)
        draws = None if draws is None else positive_int(draws, "draws (None: the model's)", PredictorError)
        if n > 1:  # one batched call: the context repeated n times, the generator draws n noises
            batched = is_batched(context_rgb, context_depth)
            out = self.predict(repeat_context(context_rgb, n, batched), repeat_context(context_depth, n, batched),
                               horizon, steps, seed, draws=draws)
            out.rgb, out.depth, out.spread = summarise(out.rgb, out.depth, n, batched)
            return out
        t0 = time.perf_counter()
        rgb, dep, batched, out_hw = self._check(context_rgb, context_depth)
        horizon = self.chunk_frames if horizon is None else int(horizon)
        if horizon < 1:
            raise PredictorError(f"horizon must be >= 1, got {horizon}")
        steps = int(steps or self.config.sampler.steps)
        sampler = DDIMSampler.from_config(self.schedule, self.config.sampler, steps,
                                          clip_bound=self.config.autoencoder.latent_scale,
                                          draws=draws)
        mode = Mode.of(rgb is not None, dep is not None)
        gen = torch.Generator(device=self.device).manual_seed(int(seed))
        t_model = time.perf_counter()
        rollout = self._rollout_anchored if self.anchored else self._rollout_direct
        rgb_out, depth_out = rollout(rgb, dep, horizon, sampler, gen, out_hw)
        t_post = time.perf_counter()
        if not batched:
            rgb_out, depth_out = rgb_out[0], depth_out[0]
        t1 = time.perf_counter()
        timings = {"total_s": t1 - t0, "model_s": t_post - t_model, "pre_s": t_model - t0, "post_s": t1 - t_post}
        return Prediction(rgb_out, depth_out, mode, steps, int(seed), timings)

    @property
    def anchored(self) -> bool:
        return self.config.autoencoder.decoder == "anchored"

    def _sample(self, ctx_r: Triplane, ctx_d: Triplane, present: torch.Tensor, sampler: DDIMSampler,
                gen: torch.Generator, start: tuple[Triplane, Triplane] | None = None) -> tuple[Triplane, Triplane]:
        return sample_joint(self.backend.denoise, sampler, ctx_r, ctx_d, present, self._target_like(ctx_r.batch),
                            gen, start)

    def _rollout_direct(self, rgb, dep, horizon, sampler, gen, out_hw):
        """Paper-style decoding at model resolution; the next chunk's context is the last decoded frames,
        kept as float pixels in [-1, 1] (never quantised to uint8 in between)."""
        b = (rgb if rgb is not None else dep).shape[0]
        x_r = self._prep_rgb(rgb) if rgb is not None else None
        x_d = self._prep_depth(dep) if dep is not None else None
        present = self._present(x_r is not None, x_d is not None, b)
        out_r, out_d = [], []
        while sum(y.shape[2] for y in out_r) < horizon:
            ctx_r = self._encode_or_zeros("rgb", x_r, b)
            ctx_d = self._encode_or_zeros("depth", x_d, b)
            z_r, z_d = self._sample(ctx_r, ctx_d, present, sampler, gen)
            y_r, y_d = self.backend.decode("rgb", z_r), self.backend.decode("depth", z_d)
            out_r.append(y_r)
            out_d.append(y_d)
            x_r, x_d = y_r[:, :, -self.context_frames:], y_d[:, :, -self.context_frames:]
            present = self._present(True, True, b)
        y_r = torch.cat(out_r, dim=2)[:, :, :horizon]
        y_d = torch.cat(out_d, dim=2)[:, :, :horizon]
        return self._postprocess(y_r, y_d, out_hw)

    def _rollout_anchored(self, rgb, dep, horizon, sampler, gen, out_hw):
        """Anchored decoding: every chunk is composed at the sensor resolution from the newest frame of its
        context. The next chunk's context is the last composed frames, fed back exactly as sensor frames
        would be (uint8 colour, metric depth), so a rollout and a live context take one path."""
        rgbs, deps = [], []
        while sum(r.shape[1] for r in rgbs) < horizon:
            r, d = self._anchored_chunk(rgb, dep, sampler, gen, out_hw)
            rgbs.append(r)
            deps.append(d)
            rgb, dep = r[:, -self.context_frames:], d[:, -self.context_frames:]
        return np.concatenate(rgbs, axis=1)[:, :horizon], np.concatenate(deps, axis=1)[:, :horizon]

    def _anchored_chunk(self, rgb, dep, sampler, gen, out_hw):
        b = (rgb if rgb is not None else dep).shape[0]
        present = self._present(rgb is not None, dep is not None, b)
        (x_r, a_r, full_r), (x_d, a_d, full_d) = self._anchored_inputs(rgb, dep, b, out_hw)
        ctx_r = self._encode_or_zeros("rgb", x_r, b, a_r)
        ctx_d = self._encode_or_zeros("depth", x_d, b, a_d)
        ctx_r, ctx_d = self._with_motion_prior(ctx_r, ctx_d, x_r, x_d, a_r, a_d, b)
        if self.config.sampler.start != "anchor":
            z_r, z_d = self._sample(ctx_r, ctx_d, present, sampler, gen)
            return self._decode_anchored(z_r, z_d, (a_r, full_r), (a_d, full_d))
        k = self.chunk_frames
        still = [a[:, :, None].expand(-1, -1, k, -1, -1) for a in (a_r, a_d)]
        start = (self.backend.encode("rgb", still[0], a_r), self.backend.encode("depth", still[1], a_d))
        z_r, z_d = self._sample(ctx_r, ctx_d, present, sampler, gen, start)
        if rgb is None or dep is None:
            # A silent sensor has no "nothing changes" latent (its anchor is empty): that modality is drawn
            # whole, which only the full grid from pure noise can do; the observed one keeps its anchor start.
            n_r, n_d = self._sample(ctx_r, ctx_d, present, sampler.from_noise(), gen)
            z_r, z_d = (z_r, n_d) if rgb is not None else (n_r, z_d)
        return self._decode_anchored(z_r, z_d, (a_r, full_r), (a_d, full_d))

    def _with_motion_prior(self, ctx_r, ctx_d, x_r, x_d, a_r, a_d, b):
        """The denoiser's conditioning: the context latents, and with ``motion_prior`` the latents of the
        context's flow extrapolation (zeros for a modality with no observation; the presence flag zeroes it
        inside the denoiser anyway)."""
        if not motion_prior.enabled(self.config):
            return ctx_r, ctx_d
        if self._flow is None:
            self._flow = FlowExtrapolator()
        p_r, p_d = motion_prior.extrapolate(x_r, x_d, self.config, self._flow)
        k = self.chunk_frames
        z_r = self._encode_or_zeros("rgb", p_r, b, a_r, k)
        z_d = self._encode_or_zeros("depth", p_d, b, a_d, k)
        return motion_prior.condition(ctx_r, z_r, k), motion_prior.condition(ctx_d, z_d, k)

    def _decode_anchored(self, z_r: Triplane, z_d: Triplane, rgb_anchor, depth_anchor):
        """Latents -> (uint8 colour (B,K,H,W,3), metres (B,K,H,W), NaN = invalid) at the sensor resolution of
        the anchors; each anchor is (model-resolution anchor, sensor-resolution anchor)."""
        (a_r, full_r), (a_d, full_d) = rgb_anchor, depth_anchor
        y_r = compose_rgb(full_r, self.backend.decode("rgb", z_r, a_r).float())
        y_d, valid = compose_depth(full_d[:, :1], full_d[:, 1:] > 0.5, self.backend.decode("depth", z_d, a_d).float())
        rgb_out = ((y_r.clamp(-1, 1) + 1.0) * 127.5).round().to(torch.uint8).permute(0, 2, 3, 4, 1).cpu().numpy()
        metres = depth_norm.denormalize(y_d[:, 0], self.config.depth, clip=not depth_norm.unclipped(self.config.depth))
        depth_out = torch.where(valid[:, 0], metres, torch.full_like(metres, float("nan")))
        return rgb_out, depth_out.cpu().numpy().astype(np.float32)

    def autoencode(self, context_rgb: np.ndarray, context_depth: np.ndarray, future_rgb: np.ndarray,
                   future_depth: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The autoencoder ceiling: decode(encode(true future)), batched (B, T, H, W[, 3]) arrays at the
        sensor resolution. No forecast of this model can be better than what its autoencoders reconstruct
        from the true future (the anchored decoder also gets the newest context frame, as in a forecast; a
        modality whose context is None is decoded against its empty anchor, as for a silent sensor)."""
        rgb, dep, _, out_hw = self._check(context_rgb, context_depth)
        f_r, f_d = self._prep_rgb(future_rgb), self._prep_depth(future_depth.astype(np.float32))
        if not self.anchored:
            with torch.inference_mode():
                y_r = self.backend.decode("rgb", self.backend.encode("rgb", f_r))
                y_d = self.backend.decode("depth", self.backend.encode("depth", f_d))
            return self._postprocess(y_r, y_d, out_hw)
        b = (rgb if rgb is not None else dep).shape[0]
        (_, a_r, full_r), (_, a_d, full_d) = self._anchored_inputs(rgb, dep, b, out_hw)
        z_r, z_d = self.backend.encode("rgb", f_r, a_r), self.backend.encode("depth", f_d, a_d)
        return self._decode_anchored(z_r, z_d, (a_r, full_r), (a_d, full_d))

    def _anchored_inputs(self, rgb, dep, b, out_hw):
        """Per modality: (model-resolution context or None, model-resolution anchor, sensor-resolution
        anchor). A missing modality gets the empty anchor at both resolutions."""
        h, w = self.resolution
        if rgb is not None:
            x_r = self._prep_rgb(rgb)
            full_r = torch.from_numpy(np.ascontiguousarray(rgb[:, -1])).to(self.device).float() / 127.5 - 1.0
            full_r = full_r.permute(0, 3, 1, 2)
            rgb_part = (x_r, x_r[:, :, -1], full_r)
        else:
            rgb_part = (None, empty_anchor(torch.zeros(b, 3, h, w, device=self.device)),
                        torch.zeros(b, 3, *out_hw, device=self.device))
        if dep is not None:
            x_d = self._prep_depth(dep)
            full = torch.from_numpy(np.ascontiguousarray(dep[:, -1:])).to(self.device)
            full_d = depth_norm.with_validity(
                *depth_norm.normalize(full, self.config.depth, clip=not depth_norm.unclipped(self.config.depth)))
            dep_part = (x_d, x_d[:, :, -1], full_d)
        else:
            dep_part = (None, empty_anchor(torch.zeros(b, 2, h, w, device=self.device)),
                        empty_anchor(torch.zeros(b, 2, *out_hw, device=self.device)))
        return rgb_part, dep_part

    # -- helpers -----------------------------------------------------------------------------------------

    def _check(self, rgb, dep):
        if rgb is None and dep is None:
            raise PredictorError("at least one of context_rgb and context_depth must be given")
        batched = None
        if rgb is not None:
            if not isinstance(rgb, np.ndarray):
                raise PredictorError(f"context_rgb must be a numpy array, got {type(rgb).__name__}")
            if rgb.dtype != np.uint8:
                raise PredictorError(f"context_rgb must be uint8 RGB, got dtype {rgb.dtype}")
            if rgb.ndim not in (4, 5) or rgb.shape[-1] != 3:
                raise PredictorError(f"context_rgb must have shape (T,H,W,3) or (B,T,H,W,3), got {rgb.shape}")
            batched = rgb.ndim == 5
            rgb = rgb if batched else rgb[None]
        if dep is not None:
            if not isinstance(dep, np.ndarray):
                raise PredictorError(f"context_depth must be a numpy array, got {type(dep).__name__}")
            if dep.dtype not in (np.float32, np.float64):
                raise PredictorError(
                    f"context_depth must be float metres (float32), got dtype {dep.dtype}; convert 16UC1 "
                    "millimetres with syncvp_core.data.encodings first")
            if dep.ndim not in (3, 4):
                raise PredictorError(f"context_depth must have shape (T,H,W) or (B,T,H,W), got {dep.shape}")
            dep_batched = dep.ndim == 4
            if batched is not None and dep_batched != batched:
                raise PredictorError("context_rgb and context_depth must both be batched or both unbatched")
            batched = dep_batched
            dep = dep if dep_batched else dep[None]
        ref = rgb if rgb is not None else dep
        if ref.shape[1] == 0 or ref.shape[0] == 0:
            raise PredictorError("the context is empty")
        if ref.shape[1] < self.context_frames:
            raise PredictorError(f"need at least {self.context_frames} context frames, got {ref.shape[1]}")
        if rgb is not None and dep is not None:
            if rgb.shape[:2] != dep.shape[:2]:
                raise PredictorError(
                    f"context_rgb has {rgb.shape[:2]} (batch, frames) but context_depth has {dep.shape[:2]}")
            if rgb.shape[2:4] != dep.shape[2:4]:
                raise PredictorError(
                    f"colour frames are {rgb.shape[2:4]} but depth frames are {dep.shape[2:4]} (H, W): depth "
                    "must be registered to the colour camera (e.g. aligned_depth_to_color)")
        n = self.context_frames
        rgb = rgb[:, -n:] if rgb is not None else None
        if dep is not None:
            dep = dep[:, -n:].astype(np.float32)
            invalid = 1.0 - depth_norm.valid_mask(dep).mean(axis=(2, 3))
            worst = float(invalid.max())
            if worst > self.max_invalid_depth_fraction:
                raise PredictorError(
                    f"context depth has a frame with {worst:.0%} invalid pixels (NaN/inf/<=0); more than "
                    f"{self.max_invalid_depth_fraction:.0%} is unusable: pass context_depth=None to predict "
                    "from colour alone")
        return rgb, dep, bool(batched), tuple(ref.shape[2:4])

    def _prep_rgb(self, rgb: np.ndarray) -> torch.Tensor:
        small = resize_rgb(rgb, self.resolution)  # (B, T, h, w, 3)
        x = torch.from_numpy(small).to(self.device).float() / 127.5 - 1.0
        return x.permute(0, 4, 1, 2, 3).contiguous()  # (B, 3, T, h, w)

    def _prep_depth(self, dep: np.ndarray) -> torch.Tensor:
        """(B, 1, T, h, w) normalised depth; anchored: (B, 2, T, h, w) with the validity channel."""
        small = resize_depth(dep, self.resolution)  # (B, T, h, w), NaN = invalid
        x, valid = depth_norm.normalize(torch.from_numpy(small).to(self.device), self.config.depth)
        if self.anchored:
            return depth_norm.with_validity(x[:, None], valid[:, None])
        return x[:, None]

    def _present(self, rgb: bool, depth: bool, b: int) -> torch.Tensor:
        return torch.tensor([[float(rgb), float(depth)]] * b, device=self.device)

    def _encode_or_zeros(self, modality: str, x: torch.Tensor | None, b: int,
                         anchor: torch.Tensor | None = None, frames: int | None = None) -> Triplane:
        """The latent of ``x``, or zeros of ``frames`` (default: context_frames) frames when it is None."""
        if x is not None:
            return self.backend.encode(modality, x, anchor)
        lh, lw = self.config.latent_size
        return Triplane.zeros(b, self.config.autoencoder.latent_channels, frames or self.context_frames, lh, lw,
                              device=self.device)

    def _target_like(self, b: int) -> Triplane:
        lh, lw = self.config.latent_size
        return Triplane.zeros(b, self.config.autoencoder.latent_channels, self.chunk_frames, lh, lw,
                              device=self.device)

    def _postprocess(self, y_r: torch.Tensor, y_d: torch.Tensor, out_hw) -> tuple[np.ndarray, np.ndarray]:
        rgb = ((y_r.clamp(-1, 1) + 1.0) * 127.5).round().to(torch.uint8).permute(0, 2, 3, 4, 1).cpu().numpy()
        dep = depth_norm.denormalize(y_d[:, 0].float(), self.config.depth).cpu().numpy().astype(np.float32)
        return resize_rgb(rgb, out_hw), resize_depth(dep, out_hw)
