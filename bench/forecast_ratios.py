"""Is the model better than doing nothing? Model / baseline ratios per metric and horizon, side by side.

Runs the held-out evaluation (``syncvp eval-heldout``: the held-out tails of the train config's real
sequences, sensor resolution) or reads its JSON, and prints for each model row (full, rgb_only, depth_only)
the ratio to every baseline (copy-last, constant velocity, optical flow, scene flow) per horizon. Ratios
are oriented so that **< 1 means the model is better** (error metrics LPIPS and AbsRel as model / baseline; PSNR as
baseline / model):

    python bench/forecast_ratios.py --checkpoint syncvp_core/assets/default/syncvp_tiny.safetensors \\
        --config anchored_tiny            # or: --json result.json (from eval-heldout --out)
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from syncvp_core.evaluation.methods import BASELINES  # noqa: E402

METRICS = ("lpips", "absrel", "psnr")
ROWS = ("model/full", "model/rgb_only", "model/depth_only", "ae_ceiling")


def ratio(model: float | None, base: float | None, metric: str) -> float | None:
    if model is None or base is None or model == 0 or base == 0:
        return None
    return base / model if metric == "psnr" else model / base


def ratio_table(result: dict) -> str:
    m = result["metrics"]
    h = result["horizon"]
    lines = ["| model row | vs | metric | " + " | ".join(f"t+{i + 1}" for i in range(h)) + " | mean | wins |",
             "|---|---|---|" + "---|" * (h + 2)]
    for row in ROWS:
        for base in BASELINES:
            for metric in METRICS:
                a, b = m.get(f"{row}/{metric}"), m.get(f"{base}/{metric}")
                if a is None or b is None:
                    continue
                rs = [ratio(x, y, metric) for x, y in zip(a["mean"], b["mean"])]
                mean = ratio(a["mean_over_horizon"], b["mean_over_horizon"], metric)
                wins = sum(r is not None and r < 1 for r in rs)
                cells = " | ".join("n/a" if r is None else f"{r:.2f}" for r in rs)
                lines.append(f"| {row} | {base} | {metric} | {cells} | "
                             f"{'n/a' if mean is None else f'{mean:.2f}'} | {wins}/{h} |")
    return "\n".join(lines)


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--json", default=None, help="a result JSON written by `syncvp eval-heldout --out`")
    ap.add_argument("--checkpoint", default=None, help="model bundle (default: the shipped checkpoint)")
    ap.add_argument("--config", default="anchored_tiny", help="train config naming the held-out sequences")
    ap.add_argument("--window-step", type=int, default=12)
    ap.add_argument("--threads", type=int, default=1)
    a = ap.parse_args(argv)
    if a.json:
        result = json.loads(Path(a.json).read_text())
    else:
        import torch

        from syncvp_core.evaluation.heldout import evaluate
        from syncvp_core.training.config import load_train_config

        torch.set_num_threads(a.threads)
        tcfg = load_train_config(a.config)
        result = evaluate(a.checkpoint, list(tcfg.data.folders), tcfg.data.holdout_fraction,
                          window_step=a.window_step)
    print(f"{result.get('checkpoint')}: ratios < 1 mean the model row is better than the baseline")
    print(ratio_table(result))


if __name__ == "__main__":
    main()
