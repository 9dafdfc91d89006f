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

``--sim N`` also scores N simulator sequences rendered fresh for the choice (rows ``sim:...``): motions
handheld / robot / car in turn, from a master seed no data mix, demo bag or held-out set uses, at
``--sim-size`` (default the sensor layout 160x120). They are neither trained on nor reported, so checkpoints
trained on different simulator renders can be compared on them without touching the held-out sequences.
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

from syncvp_core.evaluation.heldout import Accumulator, score, windows  # noqa: E402
from syncvp_core.evaluation.lpips import LPIPS  # noqa: E402
from syncvp_core.predictor import Predictor  # noqa: E402


def with_sampler(p: Predictor, setting: str) -> Predictor:
    start, start_t, steps = setting.split(":")
    p.config = dataclasses.replace(p.config, sampler=dataclasses.replace(
        p.config.sampler, start=start, start_t=int(start_t), steps=int(steps)))
    return p


# Master seed of the choice sequences: no mix part (config/train/*.yaml: 1201-1204) or demo bag (11) uses it.
CHOICE_SEED = 9001
CHOICE_MOTIONS = (("handheld", "mixed"), ("robot", "yard"), ("car", "street"))


def choice_seeds(n: int) -> list[int]:
    from syncvp_core.data.sim.writer import sequence_seeds

    return sequence_seeds(CHOICE_SEED, n)


def sim_choice_windows(n: int, size: tuple[int, int], context: int, horizon: int, rate: float, step: int,
                       frames: int = 60, **sim_options):
    """Windows of ``n`` fresh simulator sequences for choosing between checkpoints."""
    from syncvp_core.data.sim import SimConfig, simulate_sequence

    h, w = size
    for i, seed in enumerate(choice_seeds(n)):
        motion, scene = CHOICE_MOTIONS[i % len(CHOICE_MOTIONS)]
        cfg = SimConfig(height=h, width=w, frames=frames, rate_hz=rate, scene=scene, motion=motion, **sim_options)
        sq = simulate_sequence(cfg, seed)
        for idx in windows(len(sq), 0, 1, context + horizon, step):
            yield sq.rgb[idx], sq.depth[idx].astype(np.float32)


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
    ap.add_argument("--sim", type=int, default=0, metavar="N",
                    help="also score N freshly rendered simulator sequences (rows sim:...)")
    ap.add_argument("--sim-size", default="160x120", metavar="WxH", help="their render size")
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
    sources = [("", lambda src=src: real_windows(src, c, k, rate, a.window_step, split="train", span=a.span))
               for src in REAL]
    if a.sim:
        w, h = (int(v) for v in a.sim_size.lower().split("x"))
        sources.append(("sim:", lambda: sim_choice_windows(a.sim, (h, w), c, k, rate, step=5)))
    n = 0
    for prefix, source_windows in sources:
        for rgb, dep in source_windows():
            n += 1
            cr, cd, truth = rgb[None, :c], dep[None, :c], (rgb[None, c:], dep[None, c:])
            score(acc, f"{prefix}copy_last", np.repeat(cr[:, -1:], k, 1), np.repeat(cd[:, -1:], k, 1), *truth, lp)
            for name, p in models.items():
                out = p.predict(cr, cd, seed=0)
                score(acc, prefix + name, out.rgb, out.depth, *truth, lp)
                out = p.predict(cr, None, seed=0)
                score(acc, f"{prefix}{name}/rgb_only", out.rgb, out.depth, *truth, lp)
                for m in a.samples:
                    out = p.predict(cr, cd, seed=0, num_samples=m)
                    score(acc, f"{prefix}{name}/mean{m}", out.rgb, out.depth, *truth, lp)
    summary = acc.summary()
    print(f"windows: {n} (training part{' + fresh simulator' if a.sim else ''}); {time.time() - t0:.0f} s")
    print("| method | metric | " + " | ".join(f"t+{i + 1}" for i in range(k)) + " | mean |")
    print("|---|---|" + "---|" * (k + 1))
    means = [f"{m}/mean{n_samples}" for m in models for n_samples in a.samples]
    rows = ["copy_last", *models, *(f"{m}/rgb_only" for m in models), *means]
    for method in rows + ([f"sim:{r}" for r in rows] if a.sim else []):
        for metric in ("lpips", "absrel"):
            s = summary.get(f"{method}/{metric}")
            if s is None:
                continue
            vals = " | ".join(f"{v:.3f}" for v in s["mean"])
            print(f"| {method} | {metric} | {vals} | {s['mean_over_horizon']:.3f} |")


if __name__ == "__main__":
    main()
