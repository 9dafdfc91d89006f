"""DDIM step count vs quality and latency, on held-out clips of the real RGB-D sequences.

    python bench/steps_quality.py                                # shipped checkpoint, 100/50/25/10/5 steps
    python bench/steps_quality.py --random-init tiny --clips 2   # smoke run without a trained model
    python bench/steps_quality.py --checkpoint runs/x/joint.safetensors --backend onnxruntime

Clips come from the held-out tail of each sequence (the last ``--holdout`` fraction, the training split rule
``syncvp_core.training.data.split_point``), evenly spaced, sampled at the model's frame rate: ``context_frames``
context frames, then ``chunk_frames`` ground-truth future frames. Every step count starts from the same
initial noise (same seed), so differences come from the sampler only.

Reported per step count (means over clips, every clip and horizon frame weighing the same), at the sensor
resolution the Predictor returns:

* vs ground truth: PSNR, SSIM (colour), AbsRel (depth, valid ground-truth pixels);
* vs the output of the largest step count (default 100): PSNR, SSIM, AbsRel: how far fewer steps drift from
  the converged sampler;
* latency of one prediction (median over clips).

A copy-last-frame row gives the floor a forecast has to beat. Writes a markdown table, a JSON file and a
plot (default docs/images/steps_quality.png).
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from syncvp_core.checkpoint import DEFAULT_CHECKPOINT  # noqa: E402
from syncvp_core.data.folder import read_folder  # noqa: E402
from syncvp_core.evaluation.metrics import depth_errors, psnr, ssim  # noqa: E402
from syncvp_core.predictor import Predictor  # noqa: E402

DEFAULT_DATA = [ROOT.parent / "shared/data/real-rgbd/tum_freiburg1_xyz",
                ROOT.parent / "shared/data/real-rgbd/iclnuim_living_room_traj2"]


def split_point(n: int, holdout: float) -> int:
    # Same rule as syncvp_core.training.data.split_point (imported lazily there: training pulls in more).
    return int(np.floor(n * (1.0 - holdout)))


def held_out_clips(folder: Path, n_clips: int, holdout: float, context: int, chunk: int, model_rate_hz: float):
    """``n_clips`` (name, rgb (T,H,W,3) uint8, depth (T,H,W) metres) windows from the held-out tail."""
    seq = read_folder(folder)
    stride = max(1, int(round(seq.rate_hz / model_rate_hz)))
    span = (context + chunk - 1) * stride + 1
    start, end = split_point(len(seq), holdout), len(seq)
    if end - start < span:
        raise SystemExit(f"{folder}: held-out tail has {end - start} frames, a clip needs {span}")
    starts = np.linspace(start, end - span, n_clips).round().astype(int)
    clips = []
    for s in starts:
        frames = list(seq.frames(int(s), int(s) + span))[::stride]
        rgb = np.stack([f.rgb for f in frames])
        dep = np.stack([f.depth for f in frames]).astype(np.float32)
        clips.append((f"{seq.name}@{s}", rgb, dep))
    return clips, stride, seq.rate_hz


def score(pred_rgb, pred_dep, ref_rgb, ref_dep) -> dict[str, float]:
    d = depth_errors(pred_dep, ref_dep)
    return {"psnr": float(np.mean(psnr(pred_rgb, ref_rgb))), "ssim": float(np.mean(ssim(pred_rgb, ref_rgb))),
            "absrel": float(np.nanmean(d["absrel"]))}


def build_predictor(args) -> Predictor:
    if args.random_init:
        p = Predictor.from_config(args.random_init, seed=args.seed)
    else:
        p = Predictor.from_checkpoint(args.checkpoint)
    if args.backend != "torch":
        from syncvp_core.backends.select import create_backend

        p.backend = create_backend(args.backend, p.model, "cpu", p.checkpoint)
        p.backend_name = p.backend.name
    return p


def run(args) -> dict:
    torch.set_num_threads(args.threads)
    p = build_predictor(args)
    steps = sorted({int(s) for s in args.steps.split(",")}, reverse=True)
    ref_steps = steps[0]
    tc, tk = p.context_frames, p.chunk_frames
    clips = []
    for folder in args.data:
        c, stride, rate = held_out_clips(Path(folder), args.clips, args.holdout, tc, tk, p.frame_rate_hz)
        print(f"{Path(folder).name}: {len(c)} held-out clips, source {rate:.1f} Hz, frame stride {stride}", flush=True)
        clips += c
    per = {s: [] for s in steps}
    per["copy-last"] = []
    p.predict(clips[0][1][:tc], clips[0][2][:tc], steps=2)  # warm-up (allocations, lazy export)
    for i, (name, rgb, dep) in enumerate(clips):
        ctx_rgb, ctx_dep, gt_rgb, gt_dep = rgb[:tc], dep[:tc], rgb[tc:], dep[tc:]
        outs = {}
        for s in steps:
            t0 = time.perf_counter()
            out = p.predict(ctx_rgb, ctx_dep, steps=s, seed=args.seed)
            dt = time.perf_counter() - t0
            outs[s] = out
            row = {"clip": name, "latency_s": dt, **{f"gt_{k}": v for k, v in score(out.rgb, out.depth, gt_rgb,
                                                                                      gt_dep).items()}}
            ref = outs[ref_steps]
            row.update({f"ref_{k}": v for k, v in score(out.rgb, out.depth, ref.rgb, ref.depth).items()})
            per[s].append(row)
        last_rgb = np.repeat(ctx_rgb[-1:], tk, 0)
        last_dep = np.repeat(ctx_dep[-1:], tk, 0)
        per["copy-last"].append({"clip": name, **{f"gt_{k}": v for k, v in
                                                  score(last_rgb, last_dep, gt_rgb, gt_dep).items()}})
        msg = " ".join(f"{s}:{per[s][-1]['gt_psnr']:.2f}dB/{per[s][-1]['latency_s']:.2f}s" for s in steps)
        print(f"[{i + 1}/{len(clips)}] {name}: {msg}", flush=True)
    summary = []
    for key, rows in per.items():
        entry = {"steps": key, "clips": len(rows)}
        for m in rows[0]:
            if m != "clip":
                entry[m] = float(np.median([r[m] for r in rows])) if m == "latency_s" else \
                    float(np.nanmean([r[m] for r in rows]))
        summary.append(entry)
    model = f"random-init {args.random_init}" if args.random_init else Path(args.checkpoint).name
    return {"model": model,
            "backend": p.backend_name, "threads": args.threads, "reference_steps": ref_steps, "seed": args.seed,
            "load_average": os.getloadavg(), "clips": [c[0] for c in clips], "summary": summary,
            "per_clip": {str(k): v for k, v in per.items()}}


def table(res: dict) -> str:
    ref = res["reference_steps"]
    lines = [f"| steps | latency s (median) | PSNR dB vs GT | SSIM vs GT | depth AbsRel vs GT | PSNR dB vs {ref} "
             f"| SSIM vs {ref} | AbsRel vs {ref} |", "|---|---|---|---|---|---|---|---|"]

    def f(e, k, fmt):
        return format(e[k], fmt) if k in e and e[k] is not None and np.isfinite(e[k]) else "-"

    for e in res["summary"]:
        ref_cols = ("-", "-", "-") if e["steps"] == ref or e["steps"] == "copy-last" else \
            (f(e, "ref_psnr", ".2f"), f(e, "ref_ssim", ".3f"), f(e, "ref_absrel", ".4f"))
        lines.append(f"| {e['steps']} | {f(e, 'latency_s', '.2f')} | {f(e, 'gt_psnr', '.2f')} | "
                     f"{f(e, 'gt_ssim', '.3f')} | {f(e, 'gt_absrel', '.3f')} | " + " | ".join(ref_cols) + " |")
    return "\n".join(lines)


def recommend(res: dict, psnr_tol: float, ssim_tol: float, absrel_tol: float) -> tuple[int, str]:
    """Smallest step count whose quality vs ground truth is within the tolerances of the best step count's
    (per metric). Not "of the reference": an undertrained model can get worse with more steps."""
    rows = {e["steps"]: e for e in res["summary"] if e["steps"] != "copy-last"}
    best_psnr = max(e["gt_psnr"] for e in rows.values())
    best_ssim = max(e["gt_ssim"] for e in rows.values())
    best_absrel = min(e["gt_absrel"] for e in rows.values())
    ok = [s for s, e in rows.items()
          if e["gt_psnr"] >= best_psnr - psnr_tol and e["gt_ssim"] >= best_ssim - ssim_tol
          and e["gt_absrel"] <= best_absrel * (1 + absrel_tol)]
    if ok:
        return min(ok), (f"smallest step count within {psnr_tol} dB PSNR, {ssim_tol} SSIM and {absrel_tol:.0%} "
                         "AbsRel of the best step count (each vs ground truth)")
    # No step count is near the best on all three metrics at once: rank them by their mean rank.
    order = {k: sorted(rows, key=lambda s, k=k: rows[s][k] * (1 if k == "gt_absrel" else -1))
             for k in ("gt_psnr", "gt_ssim", "gt_absrel")}
    best = min(rows, key=lambda s: (sum(order[k].index(s) for k in order), s))
    return best, ("no step count is within tolerance of the best on all of PSNR, SSIM and AbsRel; best mean rank "
                  "over the three (ties: fewer steps)")


def plot(res: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = [e for e in res["summary"] if e["steps"] != "copy-last"]
    last = next(e for e in res["summary"] if e["steps"] == "copy-last")
    steps = [e["steps"] for e in rows]
    lat = [e["latency_s"] for e in rows]
    fig, axes = plt.subplots(1, 4, figsize=(17, 3.8))
    panels = [("gt_psnr", "PSNR vs GT (dB)", "ref_psnr"), ("gt_ssim", "SSIM vs GT", "ref_ssim"),
              ("gt_absrel", "depth AbsRel vs GT", "ref_absrel")]
    for ax, (k, title, _) in zip(axes, panels):
        ax.plot(steps, [e[k] for e in rows], "o-", label="SyncVP")
        ax.axhline(last[k], color="grey", ls="--", label="copy last frame")
        _log_steps_axis(ax, steps)
        ax.set_title(title)
        ax.legend(fontsize=8)
    ax = axes[3]
    ax.plot(steps, lat, "s-", color="C3")
    for s, t in zip(steps, lat):
        ax.annotate(f"{t:.2f}s", (s, t), textcoords="offset points", xytext=(4, 4), fontsize=8)
    _log_steps_axis(ax, steps)
    ax.set_ylim(0, max(lat) * 1.15)
    ax.set_title(f"latency per prediction (s, {res['backend']}, {res['threads']} thr)")
    fig.suptitle(f"{res['model']}: {len(res['clips'])} held-out clips", fontsize=10)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _log_steps_axis(ax, steps) -> None:
    from matplotlib.ticker import NullLocator

    ax.set_xscale("log")
    ax.xaxis.set_minor_locator(NullLocator())
    ax.set_xticks(steps, [str(s) for s in steps])
    ax.set_xlabel("DDIM steps")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--checkpoint", default=str(DEFAULT_CHECKPOINT))
    ap.add_argument("--random-init", metavar="CONFIG", default=None, help="random weights of CONFIG (smoke runs)")
    ap.add_argument("--data", nargs="+", default=[str(d) for d in DEFAULT_DATA], help="sequence folders")
    ap.add_argument("--clips", type=int, default=6, help="held-out clips per sequence")
    ap.add_argument("--holdout", type=float, default=0.2, help="held-out tail fraction (as in training)")
    ap.add_argument("--steps", default="100,50,25,10,5")
    ap.add_argument("--backend", default="torch", choices=["torch", "onnxruntime"])
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--plot", default=str(ROOT / "docs/images/steps_quality.png"))
    ap.add_argument("--json", default=None, help="write all results here")
    ap.add_argument("--tolerance", default="0.5,0.01,0.05",
                    help="PSNR dB, SSIM, relative AbsRel a step count may lose vs the best one to be acceptable")
    args = ap.parse_args(argv)
    res = run(args)
    print()
    print(table(res))
    tol = [float(x) for x in args.tolerance.split(",")]
    rec, why = recommend(res, *tol)
    res["recommended_min_steps"], res["recommendation_rule"] = rec, why
    print(f"\nrecommended steps: {rec} ({why})")
    print(f"load average {res['load_average'][0]:.2f} on {os.cpu_count()} CPUs")
    if args.plot:
        plot(res, Path(args.plot))
        print(f"plot: {args.plot}")
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(res, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
