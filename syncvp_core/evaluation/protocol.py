"""What an evaluation run promises: its options (:class:`EvalProtocol`), the record of everything that
determines the numbers (written to metrics.json) and its hash.

Two results are comparable when their protocol hashes match; paths, timings and the runtime (torch
version, thread count) are recorded but not hashed.
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any

from ..diffusion.guidance import GUIDED
from .methods import BASELINES

SCENARIOS = tuple(m.value for m in GUIDED)  # full, rgb_only, depth_only: sensor scenarios = guidance modes
FVD_CLIP = 16


class EvalError(ValueError):
    """The input cannot be evaluated (too short, bad options); the message says why."""


@dataclass
class EvalProtocol:
    horizon: int | None = None  # None = the model's chunk_frames
    stride: int | None = None  # in picked (model-rate) frames; None = horizon
    max_windows: int | None = None
    steps: int | None = None  # DDIM steps; None = the model config's
    seed: int = 0
    scenarios: tuple[str, ...] = SCENARIOS
    baselines: tuple[str, ...] = tuple(BASELINES)
    frame_step: int | None = None  # None = auto from stamps vs the model's frame rate
    gap_tolerance: float = 1.5
    lpips: bool = True
    fvd: bool = True
    resize_ceiling: bool = True
    animate_window: int = 0  # index (among evaluated windows) of the window shown in the GIF
    num_samples: int = 1  # > 1: the model row is the mean of N samples, scored for uncertainty too

    def validate(self) -> None:
        bad = [s for s in self.scenarios if s not in SCENARIOS]
        if bad or not self.scenarios:
            raise EvalError(f"unknown scenario(s) {bad}; choose from {list(SCENARIOS)}")
        bad = [b for b in self.baselines if b not in BASELINES]
        if bad:
            raise EvalError(f"unknown baseline(s) {bad}; choose from {list(BASELINES)}")
        for b in self.baselines:
            try:
                BASELINES[b](2)  # construction checks optional dependencies (OpenCV for optical_flow)
            except ImportError as e:
                rest = [x for x in self.baselines if x != b]
                raise EvalError(f"baseline {b}: {e}; or leave it out (protocol baselines: {rest})") from e
        for name in ("horizon", "stride", "max_windows", "steps", "frame_step", "num_samples"):
            v = getattr(self, name)
            if v is not None and v < 1:
                raise EvalError(f"{name} must be >= 1, got {v}")


def protocol_hash(protocol: dict) -> str:
    """SHA-256 (first 16 hex) of everything that determines the numbers (not paths or timings)."""
    keep = {k: v for k, v in protocol.items() if k not in ("hash", "source_path", "created", "runtime")}
    return hashlib.sha256(json.dumps(keep, sort_keys=True, default=str).encode()).hexdigest()[:16]


def model_description(predictor: Any) -> dict:
    """What identifies the model in the protocol: checkpoint hash, config, backend, sampler."""
    from ..checkpoint import file_sha256

    ckpt = getattr(predictor, "checkpoint", None)
    meta = getattr(predictor, "meta", {}) or {}
    cfg = predictor.config
    return {
        "name": predictor.model_name,
        "checkpoint": str(ckpt) if ckpt else None,
        "checkpoint_sha256": file_sha256(ckpt) if ckpt else None,
        "random_init": bool(meta.get("random_init", False)),
        "init_seed": meta.get("seed") if meta.get("random_init") else None,
        "backend": predictor.backend_name,
        "config": cfg.to_dict(),
        "eta": cfg.sampler.eta,
        "default_steps": cfg.sampler.steps,
        "resolution": list(cfg.resolution),
        "frame_rate_hz": cfg.frame_rate_hz,
    }


def metric_assets() -> dict:
    """Source, checksum and licence of the LPIPS / I3D weights (they determine the numbers too)."""
    from ..pretrained import I3D_K400, LPIPS_ALEX

    return {s.name: {"source": s.requirement, "sha256": s.sha256, "licence": s.licence}
            for s in (LPIPS_ALEX, I3D_K400)}


FVD_PROTOCOL = {"clip_frames": FVD_CLIP, "features": "I3D Kinetics-400 logits (400-d)",
                "resize": "bilinear 224x224, no crop", "includes_context_frames": True,
                "depth_as": "normalised depth (config depth mapping) as 3-channel grey"}
