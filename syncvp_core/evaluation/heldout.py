"""Validation of a model bundle on the held-out tails of the training sequences (what MODEL_CARD.md reports).

For every sequence, windows of ``context_frames + horizon`` frames at the model's frame rate are taken from
the held-out tail (:func:`~.data.split_point`, the frames training never saw), every ``window_step`` source
frames. Metrics are computed at the sensor resolution of the sequence (predictions are resized back by
the Predictor, as users get them), per horizon step, for:

* the model in full mode and with each modality's context dropped (rgb_only / depth_only),
* every baseline of :data:`.methods.BASELINES` (copy-last, constant velocity, optical- and scene-flow
  extrapolation) given both modalities,
* the autoencoder ceiling: decode(encode(true future)), the best any latent forecast of this model can do.

Held-out simulator sequences (the validation sequences of a data mix's parts, ``sim_sequences``: their
raw renders, so at the render resolution) are held out whole: their windows start at frame 0.

Metrics from :mod:`.metrics` (PSNR, SSIM, LPIPS-Alex when its weights are installed, depth AbsRel /
delta1 on pixels valid in both). Scoring a checkpoint is evaluation's job, so this lives here and training
never imports the evaluation stack; it reads the sequences with the training data code (the same split).

    syncvp eval-heldout --checkpoint run/syncvp_tiny.safetensors --config default_tiny
"""
from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import torch

from ..data.mix import sequence_name
from ..diffusion.guidance import GUIDED
from ..predictor import Predictor
from ..training.data import read_folder, split_point, stride_for
from . import metrics as M
from .methods import BASELINES


def windows(n: int, first: int, stride: int, length: int, step: int) -> list[np.ndarray]:
    """Frame indices of the windows from ``first`` (the first held-out frame) on."""
    span = (length - 1) * stride + 1
    return [s + stride * np.arange(length) for s in range(first, n - span + 1, step)]


class Accumulator:
    """Per-horizon statistics keyed ``method/metric`` (the held-out table and bench/anchor_ceiling.py)."""

    def __init__(self, horizon: int):
        self.h = horizon
        self.stats: dict[str, M.HorizonStats] = {}

    def add(self, key: str, values: np.ndarray) -> None:
        self.stats.setdefault(key, M.HorizonStats(self.h)).add(values)

    def summary(self) -> dict[str, dict]:
        return {k: v.summary() for k, v in sorted(self.stats.items())}


def heldout_sources(folders: list[str], holdout_fraction: float, sim_sequences: list[str | Path]):
    """(name, rgb, depth, rate_hz, first held-out frame) of every held-out source, at its own resolution."""
    for folder in folders:
        seq = read_folder(folder, resolution=None)
        yield seq.name, seq.rgb, seq.depth, seq.rate_hz, split_point(len(seq), holdout_fraction)
    for path in sim_sequences:
        from ..data.sim import SimSequence

        sq = SimSequence.load(path)
        yield f"sim/{sequence_name(path)}", sq.rgb, sq.depth, float(sq.meta["rate_hz"]), 0


def evaluate(checkpoint: str | Path | None, folders: list[str], holdout_fraction: float, horizon: int | None = None,
             window_step: int = 12, steps: int | None = None, seed: int = 0, batch: int = 8,
             lpips: bool = True, sim_sequences: list[str | Path] = ()) -> dict:
    torch.manual_seed(seed)
    p = Predictor.from_checkpoint(checkpoint)
    cfg = p.config
    c = cfg.context_frames
    horizon = horizon or cfg.chunk_frames
    lp = None
    if lpips:
        try:
            from .lpips import LPIPS

            lp = LPIPS.pretrained()
        except Exception as e:  # weights not installed: report without LPIPS, say so
            print(f"LPIPS unavailable ({e}); reported without it")
    baselines = {name: factory(c) for name, factory in BASELINES.items()}
    acc = Accumulator(horizon)
    counts = {}
    t0 = time.time()
    for name, seq_rgb, seq_depth, rate_hz, first in heldout_sources(folders, holdout_fraction, list(sim_sequences)):
        stride = stride_for(rate_hz, cfg.frame_rate_hz)
        wins = windows(len(seq_rgb), first, stride, c + horizon, window_step)
        counts[name] = {"frames": len(seq_rgb), "first_heldout_frame": first, "windows": len(wins), "stride": stride}
        for b0 in range(0, len(wins), batch):
            idx = np.stack(wins[b0 : b0 + batch])  # (B, c + horizon)
            rgb, dep = seq_rgb[idx], seq_depth[idx]
            ctx_r, ctx_d, fut_r, fut_d = rgb[:, :c], dep[:, :c], rgb[:, c:], dep[:, c:]
            for mode in GUIDED:
                use_rgb, use_depth = mode.needs
                out = p.predict(ctx_r if use_rgb else None, ctx_d if use_depth else None,
                                horizon=horizon, steps=steps, seed=seed)
                score(acc, f"model/{mode}", out.rgb, out.depth, fut_r, fut_d, lp)
            for bname, b in baselines.items():
                outs = [b.predict(ctx_r[i], ctx_d[i], horizon) for i in range(len(idx))]
                score(acc, bname, np.stack([o.rgb for o in outs]), np.stack([o.depth for o in outs]), fut_r, fut_d,
                       lp)
            rec_r, rec_d = p.autoencode(ctx_r, ctx_d, fut_r, fut_d)
            score(acc, "ae_ceiling", rec_r, rec_d, fut_r, fut_d, lp)
    return {"checkpoint": str(checkpoint), "horizon": horizon, "steps": steps or cfg.sampler.steps,
            "frame_rate_hz": cfg.frame_rate_hz, "sequences": counts, "holdout_fraction": holdout_fraction,
            "seconds": time.time() - t0, "metrics": acc.summary(), "lpips": lp is not None}


def score(acc: Accumulator, key: str, pr, pd, gr, gd, lp) -> None:
    """Add every metric of a batch of forecasts (B, K, ...) against the truth under ``key``."""
    for i in range(len(gr)):
        acc.add(f"{key}/psnr", M.psnr(pr[i], gr[i]))
        acc.add(f"{key}/ssim", M.ssim(pr[i], gr[i]))
        if lp is not None:
            acc.add(f"{key}/lpips", lp.compare(pr[i], gr[i]))
        e = M.depth_errors(pd[i], gd[i])
        acc.add(f"{key}/absrel", e["absrel"])
        acc.add(f"{key}/delta1", e["delta1"])


def table(result: dict, metrics=("psnr", "ssim", "lpips", "absrel", "delta1")) -> str:
    """Markdown: one row per (method, metric), one column per horizon step."""
    m = result["metrics"]
    h = result["horizon"]
    lines = ["| method | metric | " + " | ".join(f"t+{i + 1}" for i in range(h)) + " | mean |",
             "|---|---|" + "---|" * (h + 1)]
    for method in (*BASELINES, "model/full", "model/rgb_only", "model/depth_only", "ae_ceiling"):
        for name in metrics:
            k = f"{method}/{name}"
            if k not in m:
                continue
            vals = m[k]["mean"]
            fmt = (lambda v: "n/a" if v is None else f"{v:.2f}") if name == "psnr" else (
                lambda v: "n/a" if v is None else f"{v:.3f}")
            lines.append(f"| {method} | {name} | " + " | ".join(fmt(v) for v in vals)
                         + f" | {fmt(m[k]['mean_over_horizon'])} |")
    return "\n".join(lines)
