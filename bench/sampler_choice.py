"""Choose a checkpoint's sampler (and compare candidate checkpoints) on the *training* part of the real
sequences, never on the held-out tails that the model card reports.

    python bench/sampler_choice.py --checkpoint A=runs/x/a.safetensors [--checkpoint B=...] \\
        --setting noise:999:10 --setting anchor:200:5 [--setting anchor:400:5 ...]

A setting is ``start:start_t:steps`` (``sampler.start``, ``sampler.start_t``, ``sampler.steps``). For every
checkpoint x setting it prints, per horizon and as the mean over t+1..t+8, LPIPS and depth AbsRel of the
full-mode forecast (both sensors) at the sensor resolution, and RGB-only depth AbsRel, beside copy-last on
the same windows; with ``--samples N`` also the mean of N forecasts (the node's ``num_samples``). Training
windows favour a model that memorised them, equally for every setting of one
checkpoint; between checkpoints trained on the same data the comparison is biased the same way.
"""
from __future__ import annotations

import argparse
import dataclasses
import sys
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from anchor_ceiling import REAL, real_windows  # noqa: E402

from syncvp_core.evaluation.heldout import Accumulator, score  # noqa: E402
from syncvp_core.evaluation.lpips import LPIPS  # noqa: E402
from syncvp_core.predictor import Predictor  # noqa: E402


def with_sampler(p: Predictor, setting: str) -> Predictor:
    start, start_t, steps = setting.split(":")
    p.config = dataclasses.replace(p.config, sampler=dataclasses.replace(
        p.config.sampler, start=start, start_t=int(start_t), steps=int(steps)))
    return p


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--checkpoint", action="append", required=True, metavar="NAME=PATH")
    ap.add_argument("--setting", action="append", required=True, metavar="START:START_T:STEPS")
    ap.add_argument("--window-step", type=int, default=48, help="source frames between training windows")
    ap.add_argument("--samples", type=int, action="append", default=[], metavar="N",
                    help="also score the full-mode mean of N forecasts (the node's num_samples); repeatable")
    ap.add_argument("--span", type=float, nargs=2, default=None, metavar=("FROM", "TO"),
                    help="only windows in this fraction of the training part, e.g. 0.75 1.0: the frames a "
                         "fine-tune with data.holdout_fraction=0.4 left out")
    ap.add_argument("--threads", type=int, default=1)
    a = ap.parse_args(argv)
    torch.set_num_threads(a.threads)
    lp = LPIPS.pretrained()
    acc = Accumulator(8)
    t0 = time.time()
    models = {}
    for item in a.checkpoint:
        name, _, path = item.partition("=")
        for s in a.setting:
            models[f"{name}@{s}"] = with_sampler(Predictor.from_checkpoint(path), s)
    any_p = next(iter(models.values()))
    c, k, rate = any_p.context_frames, any_p.chunk_frames, any_p.frame_rate_hz
    n = 0
    for src in REAL:
        for rgb, dep in real_windows(src, c, k, rate, a.window_step, split="train", span=a.span):
            n += 1
            cr, cd, truth = rgb[None, :c], dep[None, :c], (rgb[None, c:], dep[None, c:])
            score(acc, "copy_last", np.repeat(cr[:, -1:], k, 1), np.repeat(cd[:, -1:], k, 1), *truth, lp)
            for name, p in models.items():
                out = p.predict(cr, cd, seed=0)
                score(acc, name, out.rgb, out.depth, *truth, lp)
                out = p.predict(cr, None, seed=0)
                score(acc, f"{name}/rgb_only", out.rgb, out.depth, *truth, lp)
                for m in a.samples:
                    out = p.predict(cr, cd, seed=0, num_samples=m)
                    score(acc, f"{name}/mean{m}", out.rgb, out.depth, *truth, lp)
    summary = acc.summary()
    print(f"training-part windows: {n}; {time.time() - t0:.0f} s")
    print("| method | metric | " + " | ".join(f"t+{i + 1}" for i in range(k)) + " | mean |")
    print("|---|---|" + "---|" * (k + 1))
    means = [f"{m}/mean{n_samples}" for m in models for n_samples in a.samples]
    for method in ["copy_last", *models, *(f"{m}/rgb_only" for m in models), *means]:
        for metric in ("lpips", "absrel"):
            s = summary.get(f"{method}/{metric}")
            if s is None:
                continue
            vals = " | ".join(f"{v:.3f}" for v in s["mean"])
            print(f"| {method} | {metric} | {vals} | {s['mean_over_horizon']:.3f} |")


if __name__ == "__main__":
    main()
