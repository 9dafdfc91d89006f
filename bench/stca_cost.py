"""Cost of STCA vs full cross-attention vs no fusion, with the paper's dimensions, at 64x64 and 128x128.

Counts FLOPs with torch.utils.flop_counter (2 FLOPs per multiply-add) and times the fusion blocks on
the activations they see inside the denoiser. Prints, in one run:

* attention-core FLOPs (the Q_R Q_D^T and softmax(.)V matmuls, i.e. aten.bmm inside the fusion blocks):
  the quantity the paper's "STCA costs 37% of full cross-attention at 64x64" refers to; the analytic
  value is (1 + 2 rho^2) / (1 + 2 rho)^2 with rho = T/S at the fusion level (notes §3.6);
* whole fusion-block FLOPs (projections included) and whole-denoiser FLOPs;
* median wall-clock of the fusion blocks and of one denoiser step.

Usage: python bench/stca_cost.py [--reps 5] [--threads 2]
"""
from __future__ import annotations

import argparse
import statistics
import time
from collections import defaultdict

import torch
from torch.utils.flop_counter import FlopCounterMode

from syncvp_core.config import load_model_config
from syncvp_core.models.stca import NoFusion
from syncvp_core.models.syncvp import SyncVPDenoiser
from syncvp_core.triplane import Triplane


def make_inputs(cfg, b=1):
    g = torch.Generator().manual_seed(0)
    lh, lw = cfg.latent_size
    c = cfg.autoencoder.latent_channels

    def tp(t):
        return Triplane(torch.randn(b, c, lh, lw, generator=g), torch.randn(b, c, t, lw, generator=g),
                        torch.randn(b, c, t, lh, generator=g))

    return tp(cfg.chunk_frames), tp(cfg.chunk_frames), torch.tensor([500] * b), tp(cfg.context_frames), \
        tp(cfg.context_frames), torch.ones(b, 2)


def capture_fusion_inputs(den, inputs):
    """Record the (h_r, h_d) pair each fusion block receives during one forward."""
    seen = []
    hooks = [m.register_forward_hook(lambda mod, args, out, i=i: seen.append((i, args)))
             for i, m in enumerate(den.fusion) if not isinstance(m, NoFusion)]
    with torch.no_grad():
        den(*inputs)
    for h in hooks:
        h.remove()
    return seen


def fusion_flops(den, seen):
    core = total = 0
    for i, args in seen:
        counter = FlopCounterMode(display=False)
        with counter, torch.no_grad():
            den.fusion[i](*args)
        counts = counter.get_flop_counts()["Global"]
        total += counter.get_total_flops()
        core += sum(v for k, v in counts.items() if "bmm" in str(k))
    return core, total


def median_time(fn, reps):
    fn()
    ts = []
    for _ in range(reps):
        t0 = time.perf_counter()
        fn()
        ts.append(time.perf_counter() - t0)
    return statistics.median(ts)


def run(resolution: int, reps: int):
    base = load_model_config("paper", [f"resolution=[{resolution},{resolution}]"])
    rows = {}
    for kind in ("stca", "full", "none"):
        cfg = load_model_config("paper", [f"resolution=[{resolution},{resolution}]", f"fusion.kind={kind}"])
        torch.manual_seed(0)
        den = SyncVPDenoiser(cfg).eval()
        inputs = make_inputs(cfg)
        seen = capture_fusion_inputs(den, inputs)
        core, block = fusion_flops(den, seen) if seen else (0, 0)
        counter = FlopCounterMode(display=False)
        with counter, torch.no_grad():
            den(*inputs)
        step_flops = counter.get_total_flops()

        def fusion_only(den=den, seen=seen):
            with torch.no_grad():
                for i, args in seen:
                    den.fusion[i](*args)

        def step(den=den, inputs=inputs):
            with torch.no_grad():
                den(*inputs)

        rows[kind] = dict(core=core, block=block, step=step_flops, blocks=len(seen),
                          t_fusion=median_time(fusion_only, reps) if seen else 0.0,
                          t_step=median_time(step, max(1, reps // 2)))
    # Analytic attention-matrix ratio at the fusion levels (token shapes of each block).
    tokens = defaultdict(int)
    ratio_terms = [0.0, 0.0]
    den = SyncVPDenoiser(base).eval()
    for _, (h_r, _h_d) in capture_fusion_inputs(den, make_inputs(base)):
        sizes = [p.shape[-2] * p.shape[-1] * 1.0 for p in h_r.planes()]
        ratio_terms[0] += sum(s * s for s in sizes) * h_r.channels
        ratio_terms[1] += sum(sizes) ** 2 * h_r.channels
        tokens[tuple(h_r.shape_thw)] += 1
    return rows, ratio_terms[0] / ratio_terms[1], dict(tokens)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--resolutions", type=int, nargs="+", default=[64, 128])
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, {args.threads} threads, paper dimensions (C=256, mult [1,2], 8 heads)")
    for res in args.resolutions:
        rows, analytic, shapes = run(res, args.reps)
        s, f, n = rows["stca"], rows["full"], rows["none"]
        print(f"\n== {res}x{res} frames; fusion blocks at (T,H,W) plane sizes {shapes}")
        print(f"{'':10s}{'core GFLOP':>12s}{'block GFLOP':>13s}{'step GFLOP':>12s}{'fusion ms':>11s}{'step ms':>10s}")
        for k in ("stca", "full", "none"):
            r = rows[k]
            print(f"{k:10s}{r['core'] / 1e9:12.3f}{r['block'] / 1e9:13.3f}{r['step'] / 1e9:12.2f}"
                  f"{r['t_fusion'] * 1e3:11.1f}{r['t_step'] * 1e3:10.1f}")
        print(f"STCA / full, attention core FLOPs : {s['core'] / f['core']:.3f}  (analytic (1+2r^2)/(1+2r)^2 "
              f"summed over blocks: {analytic:.3f}; paper claims 0.37 at 64x64)")
        print(f"STCA / full, fusion-block FLOPs   : {s['block'] / f['block']:.3f}")
        print(f"STCA / full, fusion wall-clock    : {s['t_fusion'] / f['t_fusion']:.3f}")
        print(f"denoiser step FLOPs, STCA / none  : {s['step'] / n['step']:.3f};  full / none: "
              f"{f['step'] / n['step']:.3f}")
        print(f"denoiser step time,  STCA / none  : {s['t_step'] / n['t_step']:.3f};  full / none: "
              f"{f['t_step'] / n['t_step']:.3f}")


if __name__ == "__main__":
    main()
