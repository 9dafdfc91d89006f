"""Depth while the depth sensor is out: the node's depth hold against depth inferred from colour alone.

    python bench/depth_hold.py [--checkpoint PATH] [--stale 1,3,5,10,20] [--sim 6]       # choice windows
    python bench/depth_hold.py --heldout [--config motion_prior]                          # report only

For every window and every staleness ``s`` (model frames the depth has been out, 0.1 s each at 10 Hz), the
forecast's depth for the next 8 frames is scored three ways at the sensor resolution:

* ``held s``: what the node publishes with ``depth_hold`` >= s: a :class:`DepthHold` remembering the synced
  context that ended ``s`` frames before the newest colour frame, read ``s + k`` frames ahead;
* ``colour only``: depth inferred from the current colour context (rgb_only guidance; the node with
  ``depth_hold: 0``, or past it);
* ``full``: both sensors up to the newest frame (the reference), and ``copy-stale s``: the held context's
  newest depth repeated.

Default windows are the choice set (training part of the real sequences, plus ``--sim N`` freshly rendered
simulator sequences): the node's default ``depth_hold`` is chosen there. ``--heldout`` scores the held-out
tails and held-out simulator sequences for the model card, after the choice. Prints AbsRel per horizon and
the ratio held / colour-only (< 1: the hold is better).
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from anchor_ceiling import REAL, real_windows  # noqa: E402
from sampler_choice import sim_choice_windows  # noqa: E402

from syncvp_core.depth_hold import DepthHold  # noqa: E402
from syncvp_core.evaluation import metrics as M  # noqa: E402
from syncvp_core.evaluation.heldout import Accumulator, heldout_sources, windows  # noqa: E402
from syncvp_core.predictor import Predictor  # noqa: E402
from syncvp_core.training.data import stride_for  # noqa: E402

DT_NS = 100_000_000  # the stamps' spacing only sets the units of the hold's frame arithmetic


def heldout_windows(config: str, context: int, length: int, rate: float, step: int = 12):
    """(group, rgb, depth) windows of the held-out real tails and held-out simulator sequences."""
    from syncvp_core.data.mix import heldout_sim_sequences
    from syncvp_core.training.config import load_train_config

    tcfg = load_train_config(config)
    sims = heldout_sim_sequences(tcfg.data.sim_root, tcfg.data.sim_mix)
    for name, rgb, dep, hz, first in heldout_sources(list(tcfg.data.folders), tcfg.data.holdout_fraction, sims):
        for idx in windows(len(rgb), first, stride_for(hz, rate), length, step):
            yield ("sim" if name.startswith("sim/") else "real"), rgb[idx], dep[idx].astype(np.float32)


def choice_windows(context: int, length: int, rate: float, sim: int, window_step: int):
    for src in REAL:
        for rgb, dep in real_windows(src, context, length - context, rate, window_step, split="train"):
            yield "real", rgb, dep
    if sim:
        for rgb, dep in sim_choice_windows(sim, (120, 160), context, length - context, rate, step=5):
            yield "sim", rgb, dep


def held_depth(p: Predictor, rgb: np.ndarray, dep: np.ndarray, now: int, s: int, k: int) -> np.ndarray:
    """The node's depth hold: the synced context ending ``s`` frames before ``now``, read ``s+1..s+k`` on."""
    c = p.context_frames
    hold = DepthHold(max_age_s=s * DT_NS * 1e-9 + 1e-3, step_frames=p.chunk_frames)
    hold.remember(rgb[now - s - c:now - s], dep[now - s - c:now - s], newest_ns=-s * DT_NS, dt_ns=DT_NS)

    def forecast(r, d, horizon):
        out = p.predict(r, d, horizon=horizon, seed=0)
        return out.rgb, out.depth, None, None

    assert hold.usable(0, dep.shape[1:3])
    return hold.depth_for([i * DT_NS for i in range(1, k + 1)], 0, forecast).depth


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--checkpoint", default=None, help="default: the shipped checkpoint")
    ap.add_argument("--stale", default="1,3,5,10,20", help="stalenesses in model frames, comma-separated")
    ap.add_argument("--heldout", action="store_true", help="score the held-out data (report; never choose)")
    ap.add_argument("--config", default="motion_prior", help="training config naming the held-out data")
    ap.add_argument("--sim", type=int, default=6, help="fresh simulator sequences in the choice set")
    ap.add_argument("--window-step", type=int, default=48, help="source frames between training windows")
    ap.add_argument("--threads", type=int, default=1)
    a = ap.parse_args(argv)
    torch.set_num_threads(a.threads)
    p = Predictor.from_checkpoint(a.checkpoint)
    c, k, rate = p.context_frames, p.chunk_frames, p.frame_rate_hz
    stale = sorted(int(v) for v in a.stale.split(","))
    length = c + stale[-1] + k
    now = c + stale[-1]  # index of the first frame to forecast
    source = (heldout_windows(a.config, c, length, rate) if a.heldout
              else choice_windows(c, length, rate, a.sim, a.window_step))
    acc = Accumulator(k)
    counts: dict[str, int] = {}
    t0 = time.time()
    for group, rgb, dep in source:
        counts[group] = counts.get(group, 0) + 1
        truth = dep[now:now + k]
        ctx_r, ctx_d = rgb[now - c:now], dep[now - c:now]
        acc.add(f"{group}/full", M.depth_errors(p.predict(ctx_r, ctx_d, seed=0).depth, truth)["absrel"])
        acc.add(f"{group}/colour only", M.depth_errors(p.predict(ctx_r, None, seed=0).depth, truth)["absrel"])
        for s in stale:
            acc.add(f"{group}/held {s}", M.depth_errors(held_depth(p, rgb, dep, now, s, k), truth)["absrel"])
            acc.add(f"{group}/copy-stale {s}",
                    M.depth_errors(np.repeat(dep[now - s - 1:now - s], k, 0), truth)["absrel"])
    summary = acc.summary()
    print(f"{'held-out' if a.heldout else 'choice'} windows: {counts}; {time.time() - t0:.0f} s")
    print("| group | depth | " + " | ".join(f"t+{i + 1}" for i in range(k)) + " | mean | held / colour only |")
    print("|---|---|" + "---|" * (k + 2))
    for group in counts:
        base = summary[f"{group}/colour only"]["mean_over_horizon"]
        rows = ["full", "colour only"] + [r for s in stale for r in (f"held {s}", f"copy-stale {s}")]
        for row in rows:
            st = summary[f"{group}/{row}"]
            ratio = f"{st['mean_over_horizon'] / base:.2f}" if row.startswith("held") else ""
            vals = " | ".join(f"{v:.3f}" for v in st["mean"])
            print(f"| {group} | {row} | {vals} | {st['mean_over_horizon']:.3f} | {ratio} |")


if __name__ == "__main__":
    main()
