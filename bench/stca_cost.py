"""Cost of STCA vs full cross-attention vs no fusion, with the paper's dimensions, at 64x64 and 128x128.

Counts FLOPs with torch.utils.flop_counter (2 FLOPs per multiply-add; the CPU's fused attention kernel
registered by :mod:`syncvp_core.flops`) and times the fusion blocks on the activations they see inside the
denoiser. Prints, in one run:

* attention-core FLOPs (the attention kernels inside the fusion blocks): the quantity the paper's "STCA
  costs 37% of full cross-attention at 64x64" refers to; the analytic value is (1 + 2 rho^2) / (1 + 2 rho)^2
  with rho = T/S at the fusion level (docs/design-notes.md §3.3);
* whole fusion-block FLOPs (projections included) and whole-denoiser FLOPs;
* wall-clock of the fusion blocks and of one denoiser step: the variants are timed INTERLEAVED (round r
  runs every variant once, in an order rotated by r), so load changes on a shared machine hit all variants
  alike; reported as median [p25-p75] (min-max) over the rounds, plus the median and range of the per-round
  ratio STCA / full.

Usage: python bench/stca_cost.py [--rounds 15] [--step-rounds 3] [--threads 1] [--json out.json]
On a GPU, bench/gpu_suite.py runs the same measurement (its "stca" section) in half precision.
"""
from __future__ import annotations

import argparse
import contextlib
import json
import os
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from syncvp_core.backends.selfcheck import sync  # noqa: E402
from syncvp_core.config import ModelConfig, apply_overrides, from_dict, load_model_config  # noqa: E402
from syncvp_core.flops import count_flops  # noqa: E402
from syncvp_core.models.stca import NoFusion  # noqa: E402
from syncvp_core.models.syncvp import SyncVPDenoiser  # noqa: E402
from syncvp_core.triplane import Triplane  # noqa: E402

KINDS = ("stca", "full", "none")


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


def is_attention_op(name: str) -> bool:
    return "attention" in name or "bmm" in name


def fusion_flops(den, seen):
    core = total = 0
    for i, args in seen:
        flops, per_op = count_flops(den.fusion[i], *args)
        total += flops
        core += sum(v for k, v in per_op.items() if is_attention_op(k))
    return core, total


def interleaved(fns: dict, rounds: int) -> dict[str, list[float]]:
    """Seconds per call of each function, ``rounds`` rounds, every variant once per round, rotated order."""
    names = list(fns)
    for n in names:  # warm-up (allocator, lazy init) outside the timed rounds
        fns[n]()
    out = {n: [] for n in names}
    for r in range(rounds):
        for n in names[r % len(names):] + names[:r % len(names)]:
            t0 = time.perf_counter()
            fns[n]()
            out[n].append(time.perf_counter() - t0)
    return out


def spread(ts) -> dict[str, float]:
    a = np.asarray(ts)
    return {"median": float(np.median(a)), "p25": float(np.percentile(a, 25)), "p75": float(np.percentile(a, 75)),
            "min": float(a.min()), "max": float(a.max()), "n": len(a)}


def fmt_ms(s: dict) -> str:
    return (f"{s['median'] * 1e3:8.1f} [{s['p25'] * 1e3:.1f}-{s['p75'] * 1e3:.1f}] "
            f"({s['min'] * 1e3:.1f}-{s['max'] * 1e3:.1f})")


def ratio_stats(a: list[float], b: list[float]) -> dict[str, float]:
    """Per-round ratio a/b (paired: same round, same machine state)."""
    r = [x / y for x, y in zip(a, b)]
    return {"median": statistics.median(r), "min": min(r), "max": max(r)}


def run(config: str | ModelConfig, resolution: int, rounds: int, step_rounds: int, device: str = "cpu",
        autocast: torch.dtype | None = None) -> dict:
    """All figures at one resolution. ``config``: a config name or a ModelConfig (its dimensions are used);
    ``autocast``: time in that half-precision dtype (FLOPs do not depend on it)."""
    def cfg_for(*overrides):
        ov = [f"resolution=[{resolution},{resolution}]", *overrides]
        if isinstance(config, str):
            return load_model_config(config, ov)
        return from_dict(ModelConfig, apply_overrides(config.to_dict(), ov))

    base = cfg_for()
    dens, seens, inputs = {}, {}, tuple(x.to(device) for x in make_inputs(base))
    flops = {}
    for kind in KINDS:
        cfg = cfg_for(f"fusion.kind={kind}")
        torch.manual_seed(0)
        dens[kind] = SyncVPDenoiser(cfg).to(device).eval()
        seens[kind] = capture_fusion_inputs(dens[kind], inputs)
        core, block = fusion_flops(dens[kind], seens[kind]) if seens[kind] else (0, 0)
        step, _ = count_flops(dens[kind], *inputs)
        flops[kind] = {"core": core, "block": block, "step": step, "blocks": len(seens[kind])}

    def precision():
        if autocast is None:
            return contextlib.nullcontext()
        return torch.autocast(torch.device(device).type, dtype=autocast)

    def fusion_only(kind):
        def f():
            with torch.no_grad(), precision():
                for i, args in seens[kind]:
                    dens[kind].fusion[i](*args)
            sync(device)
        return f

    def step(kind):
        def f():
            with torch.no_grad(), precision():
                dens[kind](*inputs)
            sync(device)
        return f

    t_fusion = interleaved({k: fusion_only(k) for k in ("stca", "full")}, rounds)
    t_step = interleaved({k: step(k) for k in KINDS}, step_rounds) if step_rounds else {}
    # Analytic attention-matrix ratio at the fusion levels (token shapes of each block).
    num = den = 0.0
    shapes = {}
    for _, (h_r, _h_d) in seens["stca"]:
        sizes = [p.shape[-2] * p.shape[-1] * 1.0 for p in h_r.planes()]
        num += sum(s * s for s in sizes) * h_r.channels
        den += sum(sizes) ** 2 * h_r.channels
        shapes[str(tuple(h_r.shape_thw))] = shapes.get(str(tuple(h_r.shape_thw)), 0) + 1
    return {"resolution": resolution, "flops": flops, "analytic_core_ratio": num / den, "fusion_shapes": shapes,
            "fusion_s": {k: spread(v) for k, v in t_fusion.items()},
            "fusion_ratio": ratio_stats(t_fusion["stca"], t_fusion["full"]),
            "step_s": {k: spread(v) for k, v in t_step.items()},
            "step_ratio": ratio_stats(t_step["stca"], t_step["full"]) if t_step else None}


def report(r: dict) -> str:
    f, fl = r["flops"], r["flops"]
    lines = [f"\n== {r['resolution']}x{r['resolution']} frames; fusion blocks at (T,H,W) plane sizes "
             f"{r['fusion_shapes']}",
             f"{'':6s}{'core GFLOP':>11s}{'block GFLOP':>12s}{'step GFLOP':>11s}   "
             "fusion ms median [p25-p75] (min-max)      step ms median [p25-p75] (min-max)"]
    for k in KINDS:
        fs = fmt_ms(r["fusion_s"][k]) if k in r["fusion_s"] else " " * 8 + "-"
        ss = fmt_ms(r["step_s"][k]) if k in r["step_s"] else "-"
        lines.append(f"{k:6s}{fl[k]['core'] / 1e9:11.3f}{fl[k]['block'] / 1e9:12.3f}{fl[k]['step'] / 1e9:11.2f}   "
                     f"{fs:40s}{ss}")
    s, full = f["stca"], f["full"]
    fr = r["fusion_ratio"]
    lines += [
        f"STCA / full, attention core FLOPs : {s['core'] / full['core']:.3f}  (analytic (1+2r^2)/(1+2r)^2 summed "
        f"over blocks: {r['analytic_core_ratio']:.3f}; paper claims 0.37 at 64x64)",
        f"STCA / full, fusion-block FLOPs   : {s['block'] / full['block']:.3f}",
        f"STCA / full, fusion wall-clock    : median of {r['fusion_s']['stca']['n']} interleaved rounds "
        f"{fr['median']:.3f} (range {fr['min']:.3f}-{fr['max']:.3f}); ratio of medians "
        f"{r['fusion_s']['stca']['median'] / r['fusion_s']['full']['median']:.3f}",
        f"denoiser step FLOPs, STCA / none  : {s['step'] / f['none']['step']:.3f};  full / none: "
        f"{full['step'] / f['none']['step']:.3f}"]
    if r["step_ratio"]:
        st = r["step_s"]
        lines.append(f"denoiser step time,  STCA / none  : {st['stca']['median'] / st['none']['median']:.3f};  "
                     f"full / none: {st['full']['median'] / st['none']['median']:.3f};  STCA / full per round: "
                     f"{r['step_ratio']['median']:.3f} (range {r['step_ratio']['min']:.3f}-"
                     f"{r['step_ratio']['max']:.3f})")
    return "\n".join(lines)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--config", default="paper", help="model config whose dimensions are used (default paper)")
    ap.add_argument("--rounds", type=int, default=15, help="interleaved rounds of the fusion blocks")
    ap.add_argument("--step-rounds", type=int, default=3, help="interleaved rounds of whole denoiser steps (0: skip)")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--resolutions", type=int, nargs="+", default=[64, 128])
    ap.add_argument("--json", default=None, help="also write every figure here")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    load0 = os.getloadavg()[0]
    print(f"torch {torch.__version__}, {args.threads} thread(s), {args.config} dimensions, load average "
          f"{load0:.2f} on {os.cpu_count()} CPUs")
    results = []
    for res in args.resolutions:
        r = run(args.config, res, args.rounds, args.step_rounds)
        results.append(r)
        print(report(r), flush=True)
    load1 = os.getloadavg()[0]
    print(f"\nload average after: {load1:.2f}")
    if args.json:
        Path(args.json).write_text(json.dumps({"torch": torch.__version__, "threads": args.threads,
                                               "config": args.config, "load": [load0, load1],
                                               "results": results}, indent=1))
    return results


if __name__ == "__main__":
    main()
