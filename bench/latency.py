"""Latency of one denoiser step and of one full prediction per backend, side by side, in one run.

    python bench/latency.py                                   # tiny (all CPU backends) + paper (per-step only)
    python bench/latency.py --models tiny --steps 10 --threads 1,2 --json runs/latency.json
    python bench/latency.py --device cuda --models tiny,paper  # on a GPU: torch eager/compiled/CUDA graphs,
                                                                # onnxruntime-CUDA and TensorRT when installed

A prediction = encode the context of both modalities, ``steps`` joint DDIM steps, decode ``chunk_frames``
frames of both modalities (the Predictor's own code path, sensor-sized uint8/float32 in and out). Each
backend is timed after warm-up; median and p95 are reported with the speed-up over torch eager (>1 = faster).
Set-up time (export, compile, engine build) is reported separately. Weights are random: latency does not
depend on them. The machine load is printed, because a shared CPU makes every number noisy.
"""
from __future__ import annotations

import argparse
import functools
import json
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from syncvp_core.backends.select import create_backend  # noqa: E402
from syncvp_core.backends.selfcheck import random_step_inputs  # noqa: E402
from syncvp_core.export.deps import available  # noqa: E402
from syncvp_core.predictor import Predictor  # noqa: E402

CPU_BACKENDS = ("torch-eager", "torch-compiled", "onnxruntime")
GPU_BACKENDS = ("torch-eager", "torch-compiled", "torch-cudagraphs", "onnxruntime", "tensorrt")


def make_backend(kind: str, model, device: str, cache_dir: str | None, threads: int):
    if kind == "torch-eager":
        return create_backend("torch", model, device)
    if kind == "torch-compiled":
        return create_backend("torch", model, device, compile=True)
    if kind == "torch-cudagraphs":
        return create_backend("torch", model, device, cuda_graphs=True)
    if kind == "onnxruntime":
        return create_backend("onnxruntime", model, device, cache_dir=cache_dir, threads=threads)
    if kind == "tensorrt":
        return create_backend("tensorrt", model, device, cache_dir=cache_dir, precision="fp16")
    raise ValueError(kind)


def sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def timeit(fn, reps: int, warmup: int, device: str) -> np.ndarray:
    for _ in range(warmup):
        fn()
    sync(device)
    out = []
    for _ in range(reps):
        t0 = time.perf_counter()
        fn()
        sync(device)
        out.append(time.perf_counter() - t0)
    return np.array(out)


def sensor_clip(p: Predictor, seed: int = 0):
    r = np.random.default_rng(seed)
    h, w = 120, 160  # the real-rgbd sequences' size: includes the resize both ways
    rgb = r.integers(0, 256, (p.context_frames, h, w, 3), dtype=np.uint8)
    dep = r.uniform(0.5, 5.0, (p.context_frames, h, w)).astype(np.float32)
    return rgb, dep


def bench_model(name: str, kinds, args, threads: int) -> list[dict]:
    torch.set_num_threads(threads)
    device = args.device
    p = Predictor.from_config(name, seed=0, device=device)
    steps = args.steps or p.config.sampler.steps
    per_pred = not (name == "paper" and device == "cpu" and not args.paper_predictions)
    step_reps = args.step_reps if not (name == "paper" and device == "cpu") else args.paper_step_reps
    rows = []
    inputs = random_step_inputs(p.config, device)
    rgb, dep = sensor_clip(p)
    for kind in kinds:
        row = {"model": name, "backend": kind, "threads": threads, "device": device, "steps": steps}
        t0 = time.perf_counter()
        try:
            backend = make_backend(kind, p.model, device, args.cache_dir, threads)
            # First calls include lazy work (compilation, CUDA graph capture): count them as set-up.
            backend.denoise(*inputs)
            if per_pred:
                p.backend = backend
                p.predict(rgb, dep, steps=1)
        except Exception as e:  # noqa: BLE001 - a backend that cannot run here is reported, not fatal
            row["skipped"] = f"{type(e).__name__}: {str(e).splitlines()[0][:160]}"
            rows.append(row)
            print(f"  {name:6s} {kind:17s} skipped: {row['skipped']}", flush=True)
            continue
        row["setup_s"] = time.perf_counter() - t0
        row["backend_name"] = backend.name
        ts = timeit(functools.partial(backend.denoise, *inputs), step_reps, 2, device)
        row["step_ms"] = ts * 1e3
        if per_pred:
            p.backend = backend
            tp = timeit(functools.partial(p.predict, rgb, dep, steps=steps, seed=0), args.pred_reps, 1, device)
            row["pred_ms"] = tp * 1e3
        rows.append(row)
        msg = f"  {name:6s} {kind:17s} step median {np.median(row['step_ms']):8.1f} ms"
        if per_pred:
            msg += f"   prediction median {np.median(row['pred_ms']):8.1f} ms"
        print(msg + f"   (set-up {row['setup_s']:.1f} s)", flush=True)
        backend = p.backend = None  # free it (and its sessions/engines) before the next one
    return rows


def summarize(rows: list[dict]) -> list[dict]:
    out = []
    for r in rows:
        s = {k: v for k, v in r.items() if k not in ("step_ms", "pred_ms")}
        for key in ("step_ms", "pred_ms"):
            if key in r:
                s[key.replace("_ms", "_median_ms")] = float(np.median(r[key]))
                s[key.replace("_ms", "_p95_ms")] = float(np.percentile(r[key], 95))
                s[key.replace("_ms", "_n")] = len(r[key])
        out.append(s)
    for s in out:
        ref = next((e for e in out if e["model"] == s["model"] and e["threads"] == s["threads"]
                    and e["backend"] == "torch-eager" and "skipped" not in e), None)
        for key in ("step", "pred"):
            if ref and f"{key}_median_ms" in s and f"{key}_median_ms" in ref:
                s[f"{key}_speedup"] = ref[f"{key}_median_ms"] / s[f"{key}_median_ms"]
        if "pred_median_ms" in s:
            s["pred_per_s"] = 1000.0 / s["pred_median_ms"]
    return out


def table(summary: list[dict]) -> str:
    head = ("| model | threads | backend | step median ms | step p95 ms | step x eager | prediction median ms "
            "| prediction p95 ms | predictions/s | prediction x eager | set-up s |")
    lines = [head, "|" + "---|" * (head.count("|") - 1)]

    def f(v, fmt):
        return format(v, fmt) if v is not None else "-"

    for s in summary:
        if "skipped" in s:
            lines.append(f"| {s['model']} | {s['threads']} | {s['backend']} | skipped: {s['skipped']} |"
                         + " |" * 8)
            continue
        g = s.get
        lines.append(
            f"| {s['model']} | {s['threads']} | {s['backend']} | {f(g('step_median_ms'), '.1f')} | "
            f"{f(g('step_p95_ms'), '.1f')} | {f(g('step_speedup'), '.2f')} | {f(g('pred_median_ms'), '.0f')} | "
            f"{f(g('pred_p95_ms'), '.0f')} | {f(g('pred_per_s'), '.2f')} | {f(g('pred_speedup'), '.2f')} | "
            f"{f(g('setup_s'), '.1f')} |")
    return "\n".join(lines)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--models", default="tiny,paper", help="comma-separated model configs")
    ap.add_argument("--backends", default=None, help=f"comma-separated; default CPU {CPU_BACKENDS}, GPU {GPU_BACKENDS}")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--steps", type=int, default=None, help="DDIM steps per prediction (default: the config's)")
    ap.add_argument("--threads", default="2", help="torch/onnxruntime threads, comma-separated to compare")
    ap.add_argument("--step-reps", type=int, default=30)
    ap.add_argument("--pred-reps", type=int, default=10)
    ap.add_argument("--paper-step-reps", type=int, default=3, help="per-step repetitions of paper on the CPU")
    ap.add_argument("--paper-predictions", action="store_true", help="also time full paper predictions on the CPU")
    ap.add_argument("--cache-dir", default=None, help="where onnxruntime/TensorRT exports go (default ~/.cache)")
    ap.add_argument("--target", type=float, default=2.0, help="predictions/s the tiny model must reach")
    ap.add_argument("--json", default=None, help="write all timings here")
    args = ap.parse_args(argv)
    kinds = args.backends.split(",") if args.backends else (GPU_BACKENDS if args.device.startswith("cuda")
                                                            else CPU_BACKENDS)
    load0 = os.getloadavg()
    env = {"python": platform.python_version(), "torch": torch.__version__, "cpu_count": os.cpu_count(),
           "device": args.device, "load_before": load0,
           "gpu": torch.cuda.get_device_name() if args.device.startswith("cuda") else None,
           "onnxruntime": __import__("onnxruntime").__version__ if available("onnxruntime") else None,
           "tensorrt": __import__("tensorrt").__version__ if available("tensorrt") else None}
    print(f"environment: {env}", flush=True)
    rows = []
    for threads in [int(t) for t in args.threads.split(",")]:
        for name in args.models.split(","):
            rows += bench_model(name, kinds, args, threads)
    env["load_after"] = os.getloadavg()
    summary = summarize(rows)
    print()
    print(table(summary))
    print(f"\nload average before {load0[0]:.2f}, after {env['load_after'][0]:.2f} on {os.cpu_count()} CPUs "
          "(>= the CPU count means other work competed for the cores)")
    for s in summary:
        if s["model"] == "tiny" and "pred_per_s" in s:
            ok = s["pred_per_s"] >= args.target
            print(f"tiny, {s['backend']}, {s['threads']} thread(s), {s['steps']} steps: {s['pred_per_s']:.2f} "
                  f"predictions/s -> target {args.target:g}/s {'MET' if ok else 'NOT met'}")
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        raw = [{k: (v.tolist() if isinstance(v, np.ndarray) else v) for k, v in r.items()} for r in rows]
        Path(args.json).write_text(json.dumps({"env": env, "summary": summary, "raw": raw}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
