"""Pictures for the model card: one held-out window per source, the truth beside copy-last, optical flow and
the model, colour and depth, at the sensor resolution.

    python bench/heldout_picture.py --config motion_prior --out docs/images/heldout_real.png --source real
    python bench/heldout_picture.py --config motion_prior --out docs/images/heldout_sim.png --source sim

The window is fixed by position (the middle window of the first held-out real tail, or of the first held-out
simulator sequence), never picked for how the model does on it.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from syncvp_core.evaluation.baselines import FlowExtrapolation  # noqa: E402
from syncvp_core.evaluation.heldout import heldout_sources, windows  # noqa: E402
from syncvp_core.evaluation.report import colorize_depth, labelled, panel  # noqa: E402
from syncvp_core.predictor import Predictor  # noqa: E402
from syncvp_core.training.config import load_train_config  # noqa: E402
from syncvp_core.training.data import stride_for  # noqa: E402

SHOW = (2, 4, 8)  # horizons shown


def middle_window(source: str, cfg_name: str, context: int, horizon: int, rate: float):
    """(name, rgb, depth) of the middle window (window step 12, as eval-heldout) of the first held-out source."""
    from syncvp_core.data.mix import heldout_sim_sequences

    d = load_train_config(cfg_name).data
    folders = list(d.folders) if source == "real" else []
    sims = heldout_sim_sequences(d.sim_root, d.sim_mix) if source == "sim" else []
    name, rgb, dep, rate_hz, first = next(iter(heldout_sources(folders, d.holdout_fraction, sims)))
    wins = windows(len(rgb), first, stride_for(rate_hz, rate), context + horizon, 12)
    idx = wins[len(wins) // 2]
    return name, rgb[idx], dep[idx]


def picture(p: Predictor, name: str, rgb: np.ndarray, dep: np.ndarray, show: tuple[int, ...] = SHOW) -> np.ndarray:
    c, k = p.context_frames, p.chunk_frames
    cr, cd, fr, fd = rgb[:c], dep[:c], rgb[c:c + k], dep[c:c + k]
    flow = FlowExtrapolation().predict(cr, cd, k)
    out = p.predict(cr, cd, seed=0)
    rows = {"truth": (fr, fd), "copy-last": (np.repeat(cr[-1:], k, 0), np.repeat(cd[-1:], k, 0)),
            "DIS flow": (flow.rgb, flow.depth), "model": (out.rgb, out.depth)}
    ok = np.isfinite(dep) & (dep > 0)
    lo, hi = np.percentile(dep[ok], 2), np.percentile(dep[ok], 98)
    h, w = rgb.shape[1:3]
    scale = max(1, int(round(200 / w)))
    size = (h * scale, w * scale)
    grid = []
    for r, d in rows.values():
        grid.append([panel(r[t - 1], size) for t in show]
                    + [panel(colorize_depth(d[t - 1], lo, hi), size) for t in show])
    grid.insert(0, [panel(cr[-1], size)] * len(show) + [panel(colorize_depth(cd[-1], lo, hi), size)] * len(show))
    cols = [f"colour t+{t}" for t in show] + [f"depth t+{t}" for t in show]
    return labelled(grid, cols, ["newest", *rows], f"{name}: newest context frame, then t+k = k x 100 ms")


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--checkpoint", default=None, help="model bundle (default: the shipped checkpoint)")
    ap.add_argument("--config", required=True, help="train config naming the held-out data")
    ap.add_argument("--source", choices=("real", "sim"), default="real")
    ap.add_argument("--out", required=True)
    a = ap.parse_args(argv)
    from PIL import Image

    p = Predictor.from_checkpoint(a.checkpoint)
    name, rgb, dep = middle_window(a.source, a.config, p.context_frames, p.chunk_frames, p.frame_rate_hz)
    Image.fromarray(picture(p, name, rgb, dep)).save(a.out)
    print(f"wrote {a.out} ({name})")


if __name__ == "__main__":
    main()
