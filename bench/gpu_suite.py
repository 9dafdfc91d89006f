"""The GPU suite (issue 16): one call that checks and measures every CUDA path of the project.

    python bench/gpu_suite.py --out runs/gpu               # on a GPU (H100: under 8 minutes)
    python bench/gpu_suite.py --smoke --out /tmp/gpu_smoke  # the same code paths on the CPU, micro sizes

Writes ``report.json`` and ``report.md`` into ``--out`` (rewritten after every section, so a run cut short
still leaves what it measured). Sections, in order:

1. ``correctness``: device vs CPU fp32 for encode, one denoiser step, decode and one whole sampled chunk
   (same weights, same inputs, the DDIM noise drawn from one CPU generator), in fp32, fp16 and bf16
   (autocast), with max / relative / mean errors;
2. ``paper``: the official way of sampling (fp32 eager, 100 DDIM steps, eta 1, batch 1) against our fast
   variants (fp16/bf16 autocast x eager / CUDA graphs), 2 -> 28 frames by autoregressive rollout through
   ``Predictor.predict``, side by side: latency, speed-up, FLOPs per prediction, TFLOP/s and fraction of the
   GPU's dense peak, and for the fastest variant the fraction of the time the denoiser's own matrix shapes
   allow (each FLOP-bearing op timed alone); CUDA graphs give the same outputs as eager (step and prediction);
3. ``stca``: ``bench/stca_cost.py`` on the device at that dtype: STCA vs full cross-attention at 64x64 and
   128x128 (paper dimensions), interleaved rounds, FLOP and wall-clock ratios;
4. ``tiny``: predictions/s at batch 1 and at the best batch;
5. ``training``: joint-step clips/s, bf16 mixed precision, tiny and paper, with peak memory;
6. ``release``: what the node does on deactivate/cleanup (drop the Predictor, ``torch.cuda.empty_cache()``)
   returns the CUDA memory, for eager and for the CUDA-graphs backend;
7. ``compile``: ``torch.compile`` (+ CUDA graphs) of the paper denoiser, same outputs as eager and its
   latency; last because compilation takes minutes, and only when the time budget still allows it.

A feature this machine lacks (CUDA graphs or memory statistics on a CPU, a dtype autocast refuses, a peak
figure for an unknown GPU) is recorded with the reason, never a crash; a failing section is recorded with
its error and the next one runs. ``--smoke`` uses the 16x16 micro model for both configurations, 2 rollout
chunks, few steps and the dynamo ``eager`` backend instead of inductor, so it finishes in about a minute on
one CPU thread; ``test/test_gpu_suite.py`` runs it.
"""
from __future__ import annotations

import argparse
import contextlib
import copy
import gc
import importlib.util
import json
import math
import os
import platform
import statistics
import sys
import time
import traceback
import weakref
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_map

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
# What the GPU machine may lack (it has torch, onnx and onnxruntime): say so instead of a traceback.
_MISSING = [m for m in ("numpy", "yaml") if importlib.util.find_spec(m) is None]
if _MISSING:
    sys.exit(f"gpu_suite needs {', '.join(_MISSING)} (pip install numpy pyyaml; offline: pip download "
             "--only-binary=:all: --python-version 3.12 --platform manylinux2014_x86_64 -d wheels numpy pyyaml "
             "on a connected machine, carry wheels/, then pip install --no-index wheels/*.whl)")

import numpy as np  # noqa: E402

from syncvp_core.backends.selfcheck import random_step_inputs, sync  # noqa: E402
from syncvp_core.config import ModelConfig, apply_overrides, from_dict, load_model_config  # noqa: E402
from syncvp_core.diffusion.ddim import DDIMSampler, sample_joint  # noqa: E402
from syncvp_core.diffusion.losses import joint_loss  # noqa: E402
from syncvp_core.diffusion.schedule import NoiseSchedule  # noqa: E402
from syncvp_core.flops import count_flops, flop_counter  # noqa: E402
from syncvp_core.models.syncvp import SyncVPDenoiser, SyncVPModel  # noqa: E402
from syncvp_core.predictor import Predictor  # noqa: E402
from syncvp_core.testing import micro_config  # noqa: E402
from syncvp_core.triplane import Triplane  # noqa: E402

# ---------------------------------------------------------------------------------------------------------
# Model adapter: the ONLY direct calls of the autoencoders, the denoiser and the training loss in this suite.
# Whole predictions go through Predictor.predict. When the autoencoder API changes (issue 11: encode/decode
# take the newest context frame as an "anchor"), these functions are the one place to edit.

def encode(model: SyncVPModel, modality: str, clip: torch.Tensor) -> Triplane:
    """(B, C, T, H, W) in [-1, 1] -> latent."""
    return (model.ae_rgb if modality == "rgb" else model.ae_depth).encode(clip)


def decode(model: SyncVPModel, modality: str, z: Triplane, context: torch.Tensor) -> torch.Tensor:
    """latent -> (B, C, T, H, W) in [-1, 1]; ``context`` is the clip that was encoded (its newest frame is
    the anchor of issue 11)."""
    return (model.ae_rgb if modality == "rgb" else model.ae_depth).decode(z)


def denoise(model: SyncVPModel, x_r, x_d, t, ctx_r, ctx_d, present):
    return model.denoiser(x_r, x_d, t, ctx_r, ctx_d, present)


def training_loss(denoiser: SyncVPDenoiser, cfg: ModelConfig, z_r, z_d, c_r, c_d, gen) -> torch.Tensor:
    return joint_loss(denoiser, NoiseSchedule(cfg.diffusion), cfg.diffusion, z_r, z_d, c_r, c_d, gen)[0]


def sample_chunk(model: SyncVPModel, clip_r, clip_d, steps: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """One chunk, both modalities, full mode; noise from a CPU generator so every device draws the same."""
    cfg = model.cfg
    ctx_r, ctx_d = encode(model, "rgb", clip_r), encode(model, "depth", clip_d)
    sampler = DDIMSampler.from_config(NoiseSchedule(cfg.diffusion), cfg.sampler, steps)
    lh, lw = cfg.latent_size
    like = Triplane.zeros(clip_r.shape[0], cfg.autoencoder.latent_channels, cfg.chunk_frames, lh, lw,
                          device=clip_r.device)
    present = torch.ones(clip_r.shape[0], 2, device=clip_r.device)
    z_r, z_d = sample_joint(lambda *a: denoise(model, *a), sampler, ctx_r, ctx_d, present, like,
                            torch.Generator().manual_seed(seed))
    return decode(model, "rgb", z_r, clip_r), decode(model, "depth", z_d, clip_d)


# ---------------------------------------------------------------------------------------------------------
# Constants

# Dense (no structured sparsity) peak TFLOP/s from NVIDIA's H100 and H200 datasheets: fp32 on CUDA cores,
# tf32/fp16/bf16 on tensor cores. Matched against torch.cuda.get_device_name(), first match wins.
PEAK_TFLOPS = (
    ("H200", {"fp32": 67.0, "tf32": 494.7, "fp16": 989.4, "bf16": 989.4}),
    ("H100 PCIe", {"fp32": 51.2, "tf32": 378.0, "fp16": 756.0, "bf16": 756.0}),
    ("H100 NVL", {"fp32": 60.0, "tf32": 417.5, "fp16": 835.0, "bf16": 835.0}),
    ("H100", {"fp32": 67.0, "tf32": 494.7, "fp16": 989.4, "bf16": 989.4}),  # SXM5 (e.g. "H100 80GB HBM3")
)
DTYPES = {"fp32": None, "fp16": torch.float16, "bf16": torch.bfloat16}
# Relative error (max |device - cpu| / max |cpu|) above which a correctness row is flagged. fp32 allows for
# TF32 convolutions (cuDNN's default on Ampere and later); half precision for its 8-11 bit mantissa.
TOLERANCE = {"fp32": 1e-2, "fp16": 5e-2, "bf16": 1e-1}
# Sampling repeats a step tens of times and clips x0, so a sampled chunk is allowed this many times more.
SAMPLED_TOLERANCE_FACTOR = 5.0
MIB = 2**20


@dataclass
class Plan:
    paper: ModelConfig
    tiny: ModelConfig
    official_steps: int = 100
    official_eta: float = 1.0
    horizon: int = 28
    tiny_batches: tuple[int, ...] = (1, 2, 4, 8, 16, 32, 64, 128)
    train_batch: dict[str, int] = field(default_factory=lambda: {"tiny": 64, "paper": 8})
    train_steps: int = 10
    reps: int = 5
    official_reps: int = 2
    op_iters: int = 20
    compile_backend: str = "inductor"
    compile_min_s: float = 200.0  # do not start compiling the paper denoiser with less budget than this
    budget_s: float = 450.0
    smoke: bool = False
    peak_tflops: float | None = None  # overrides the datasheet table (an unknown GPU; smoke tests)
    stca_resolutions: tuple[int, ...] = (64, 128)
    stca_rounds: int = 20
    stca_step_rounds: int = 5


def make_plan(smoke: bool, budget_s: float | None, peak: float | None = None) -> Plan:
    if not smoke:
        return Plan(load_model_config("paper"), load_model_config("tiny"), budget_s=budget_s or 450.0, peak_tflops=peak)
    micro = micro_config()
    return Plan(micro, micro, official_steps=4, horizon=6, tiny_batches=(1, 2), train_batch={"tiny": 2, "paper": 2},
                train_steps=2, reps=2, official_reps=1, op_iters=2, compile_backend="eager", compile_min_s=0.0,
                budget_s=budget_s or 300.0, smoke=True, peak_tflops=peak, stca_resolutions=(64,), stca_rounds=3,
                stca_step_rounds=1)


def with_overrides(cfg: ModelConfig, *overrides: str) -> ModelConfig:
    return from_dict(ModelConfig, apply_overrides(cfg.to_dict(), list(overrides)))


# ---------------------------------------------------------------------------------------------------------
# Helpers


class Budget:
    def __init__(self, seconds: float):
        self.deadline = time.perf_counter() + seconds

    def left(self) -> float:
        return self.deadline - time.perf_counter()


def is_cuda(device: str) -> bool:
    return torch.device(device).type == "cuda"


def precision(device: str, dtype: str, graphs: bool = False):
    """fp32: nothing; fp16/bf16: autocast. The autocast weight cache must be off while a CUDA graph is
    captured (a cached cast made during capture would be freed memory at replay)."""
    if DTYPES[dtype] is None:
        return contextlib.nullcontext()
    return torch.autocast(device_type=torch.device(device).type, dtype=DTYPES[dtype], cache_enabled=not graphs)


@contextlib.contextmanager
def cudnn_autotune():
    """Our fast path lets cuDNN pick the fastest convolution algorithm per shape (shapes are static); the
    official way runs with PyTorch's default (off)."""
    old = torch.backends.cudnn.benchmark
    torch.backends.cudnn.benchmark = True
    try:
        yield
    finally:
        torch.backends.cudnn.benchmark = old


def reason(e: BaseException) -> str:
    text = str(e).strip().splitlines()
    return f"{type(e).__name__}: {text[0][:300] if text else ''}"


def timed(fn, device: str, reps: int, budget_s: float) -> list[float]:
    """Seconds per call after the caller's warm-up: up to ``reps`` calls, at least one, within ``budget_s``."""
    out: list[float] = []
    start = time.perf_counter()
    while len(out) < reps and (not out or time.perf_counter() - start < budget_s):
        sync(device)
        t0 = time.perf_counter()
        fn()
        sync(device)
        out.append(time.perf_counter() - t0)
    return out


def stats(ts: list[float]) -> dict:
    return {"median_s": statistics.median(ts), "min_s": min(ts), "max_s": max(ts), "n": len(ts)}


def errors(got: torch.Tensor, ref: torch.Tensor) -> dict:
    d = (got.detach().float().cpu() - ref.detach().float().cpu()).abs()
    scale = float(ref.detach().float().abs().max().clamp_min(1e-12))
    return {"max_abs": float(d.max()), "mean_abs": float(d.mean()), "rel": float(d.max()) / scale}


def merge_errors(parts: list[dict]) -> dict:
    return {"max_abs": max(p["max_abs"] for p in parts), "mean_abs": sum(p["mean_abs"] for p in parts) / len(parts),
            "rel": max(p["rel"] for p in parts)}


def triplane_errors(got: Triplane | tuple, ref: Triplane | tuple) -> dict:
    got_t = [p for tp in (got if isinstance(got, tuple) else (got,)) for p in tp.planes()]
    ref_t = [p for tp in (ref if isinstance(ref, tuple) else (ref,)) for p in tp.planes()]
    return merge_errors([errors(a, b) for a, b in zip(got_t, ref_t)])


def peak_tflops(device: str, given: float | None = None) -> tuple[dict | None, str]:
    if given:
        return dict.fromkeys(("fp32", "tf32", "fp16", "bf16"), given), "given with --peak-tflops"
    if not is_cuda(device):
        return None, "no GPU peak on a CPU run"
    name = torch.cuda.get_device_name(device)
    for key, peaks in PEAK_TFLOPS:
        if key in name:
            return peaks, f"{key} datasheet (dense), matched {name!r}"
    return None, f"no dense-peak figure for {name!r} (add it to PEAK_TFLOPS)"


class MemoryWatch:
    """Peak CUDA memory allocated inside the block (reset at entry); a reason instead on a CPU."""

    def __init__(self, device: str):
        self.device = device
        self.result: dict = {}

    def __enter__(self):
        if is_cuda(self.device):
            sync(self.device)
            torch.cuda.reset_peak_memory_stats(self.device)
            self._base = torch.cuda.memory_allocated(self.device)
        return self

    def __exit__(self, *exc):
        if is_cuda(self.device):
            sync(self.device)
            peak = torch.cuda.max_memory_allocated(self.device)
            self.result = {"peak_allocated_mib": peak / MIB, "peak_above_start_mib": (peak - self._base) / MIB}
        else:
            self.result = {"skipped": "CUDA memory statistics need a CUDA device"}
        return False


def sensor_context(cfg: ModelConfig, batch: int | None = None, seed: int = 0):
    """uint8 colour and float metres depth at the model's resolution (no resize cost in the figures)."""
    r = np.random.default_rng(seed)
    h, w = cfg.resolution
    lead = (batch,) if batch else ()
    rgb = r.integers(0, 256, (*lead, cfg.context_frames, h, w, 3), dtype=np.uint8)
    dep = r.uniform(cfg.depth.min_m * 1.5, cfg.depth.max_m * 0.5, (*lead, cfg.context_frames, h, w)).astype(np.float32)
    return rgb, dep


def random_model(cfg: ModelConfig, seed: int = 0) -> SyncVPModel:
    """The Predictor's random initialisation (zero-initialised output layers randomised), on the CPU."""
    return Predictor.from_config(cfg, seed=seed, device="cpu").model


def prediction_errors(a, b) -> dict:
    """Colour in uint8 levels, depth relative to the reference's range."""
    rgb = np.abs(a.rgb.astype(np.int16) - b.rgb.astype(np.int16))
    dd = np.abs(a.depth - b.depth)
    return {"rgb_max_levels": int(rgb.max()), "rgb_mean_levels": float(rgb.mean()),
            "depth_rel": float(np.nanmax(dd) / max(float(np.nanmax(np.abs(b.depth))), 1e-12))}


# ---------------------------------------------------------------------------------------------------------
# FLOPs: per prediction from two counted predictions, and the time the matrix shapes allow


def flops_per_prediction(pred: Predictor, rgb, dep, horizon: int, steps: int) -> dict:
    """Counted FLOPs of ``predict`` at 1 and 2 DDIM steps; linear in the step count, so F(s) = F1 + (s-1) dF."""
    f1, _ = count_flops(pred.predict, rgb, dep, horizon=horizon, steps=1)
    f2, _ = count_flops(pred.predict, rgb, dep, horizon=horizon, steps=2)
    return {"per_step_all_chunks": f2 - f1, "fixed": f1 - (f2 - f1), "total": f1 + (steps - 1) * (f2 - f1)}


def _flop_ops() -> set:
    reg = flop_counter().flop_registry
    return set(reg)


@dataclass(frozen=True)
class _TensorLayout:
    """A recorded tensor argument: enough to make a tensor with the same layout (a pytree leaf)."""
    shape: tuple
    stride: tuple
    dtype: torch.dtype
    device: str


_PRIMITIVE = {torch.ops.prim.device.default} if hasattr(torch.ops.prim, "device") else set()


class _OpRecorder(TorchDispatchMode):
    """Records the FLOP-bearing aten calls (matmuls, convolutions, attention) with their tensor layouts."""

    def __init__(self):
        super().__init__()
        self.wanted = _flop_ops()
        self.calls: list = []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if func._overloadpacket in self.wanted:
            def desc(x):
                return _TensorLayout(tuple(x.shape), tuple(x.stride()), x.dtype, str(x.device)) \
                    if isinstance(x, torch.Tensor) else x
            self.calls.append((func, tree_map(desc, args), tree_map(desc, kwargs)))
        elif func not in _PRIMITIVE:
            # Under inference mode composite ops (linear, conv2d, sdpa) arrive undecomposed: decompose them
            # so the kernels they run are recorded (what FlopCounterMode does too).
            with self:
                out = func.decompose(*args, **kwargs)
            if out is not NotImplemented:
                return out
        return func(*args, **kwargs)


def shape_bound(fn, device: str, iters: int) -> dict:
    """Time each distinct FLOP-bearing op of one ``fn()`` alone (random data, same layouts, back to back):
    their sum is the time the shapes allow, with no launch gaps, no elementwise work and no framework
    overhead between them. Returns that time, the FLOPs of those ops and the number of ops."""
    rec = _OpRecorder()
    with rec, torch.inference_mode():
        fn()
    counts: dict[str, list] = {}
    for func, args, kwargs in rec.calls:
        key = repr((str(func), args, kwargs))
        counts.setdefault(key, [func, args, kwargs, 0])[3] += 1
    total_s = 0.0
    flops_total = 0

    def make(x):
        if isinstance(x, _TensorLayout):
            shape, stride, dtype, dev = x.shape, x.stride, x.dtype, x.device
            # One random storage viewed with the recorded strides (stride 0 = an expanded tensor).
            size = 1 + sum((n - 1) * st for n, st in zip(shape, stride)) if all(shape) else 0
            base = torch.randn(size, device=dev).to(dtype) if dtype.is_floating_point else \
                torch.zeros(size, dtype=dtype, device=dev)
            return base.as_strided(shape, stride)
        return x

    for func, args, kwargs, n in counts.values():
        a, k = tree_map(make, args), tree_map(make, kwargs)
        with torch.inference_mode():
            counter = flop_counter()
            with counter:
                func(*a, **k)
            flops_total += counter.get_total_flops() * n
            func(*a, **k)
            sync(device)
            t0 = time.perf_counter()
            for _ in range(iters):
                func(*a, **k)
            sync(device)
        total_s += (time.perf_counter() - t0) / iters * n
    return {"bound_s": total_s, "flops": int(flops_total), "ops": len(rec.calls), "distinct_ops": len(counts)}


# ---------------------------------------------------------------------------------------------------------
# Sections


def env_info(device: str, plan: Plan) -> dict:
    def version(mod):
        try:
            return __import__(mod).__version__
        except Exception as e:  # noqa: BLE001 - optional packages
            return f"not importable ({type(e).__name__})"

    out = {"date_utc": time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime()), "python": platform.python_version(),
           "torch": torch.__version__, "cuda": torch.version.cuda, "device": device, "smoke": plan.smoke,
           "cpu_count": os.cpu_count(), "torch_threads": torch.get_num_threads(), "onnx": version("onnx"),
           "onnxruntime": version("onnxruntime"), "tensorrt": version("tensorrt"), "machine": platform.platform(),
           "configs": {"paper": plan.paper.name, "tiny": plan.tiny.name}}
    if is_cuda(device):
        p = torch.cuda.get_device_properties(device)
        out.update(gpu=torch.cuda.get_device_name(device), capability=f"{p.major}.{p.minor}",
                   gpu_memory_gib=p.total_memory / 2**30, cudnn=torch.backends.cudnn.version(),
                   tf32_matmul=torch.backends.cuda.matmul.allow_tf32, tf32_cudnn=torch.backends.cudnn.allow_tf32)
    peaks, why = peak_tflops(device, plan.peak_tflops)
    out["peak_tflops"], out["peak_source"] = peaks, why
    return out


def section_correctness(plan: Plan, device: str, budget: Budget) -> dict:
    cfg = plan.paper
    cpu_model = random_model(cfg)
    dev_model = copy.deepcopy(cpu_model).to(device).eval()
    g = torch.Generator().manual_seed(1)
    h, w = cfg.resolution
    clip_r = torch.rand(1, 3, cfg.context_frames, h, w, generator=g) * 2 - 1
    clip_d = torch.rand(1, 1, cfg.context_frames, h, w, generator=g) * 2 - 1
    steps = cfg.sampler.steps
    with torch.inference_mode():
        ref = {"enc_r": encode(cpu_model, "rgb", clip_r), "enc_d": encode(cpu_model, "depth", clip_d)}
        lat_r = Triplane.randn_like(Triplane.zeros(1, cfg.autoencoder.latent_channels, cfg.chunk_frames,
                                                   *cfg.latent_size), g).map(torch.tanh)
        lat_d = lat_r.map(torch.neg)
        ref["dec_r"], ref["dec_d"] = decode(cpu_model, "rgb", lat_r, clip_r), decode(cpu_model, "depth", lat_d, clip_d)
        ref["step"] = denoise(cpu_model, *random_step_inputs(cfg, "cpu"))
        ref["chunk"] = sample_chunk(cpu_model, clip_r, clip_d, steps, seed=0)
    rows = {}
    for dt in DTYPES:
        row: dict = {}
        try:
            with torch.inference_mode(), precision(device, dt):
                cr, cd = clip_r.to(device), clip_d.to(device)
                row["encode"] = merge_errors([triplane_errors(encode(dev_model, "rgb", cr), ref["enc_r"]),
                                              triplane_errors(encode(dev_model, "depth", cd), ref["enc_d"])])
                eps = denoise(dev_model, *random_step_inputs(cfg, device))
                row["denoiser_step"] = triplane_errors(eps, ref["step"])
                row["decode"] = merge_errors([
                    errors(decode(dev_model, "rgb", lat_r.to(device), cr), ref["dec_r"]),
                    errors(decode(dev_model, "depth", lat_d.to(device), cd), ref["dec_d"])])
                y_r, y_d = sample_chunk(dev_model, cr, cd, steps, seed=0)
                row["sampled_chunk"] = merge_errors([errors(y_r, ref["chunk"][0]), errors(y_d, ref["chunk"][1])])
        except Exception as e:  # noqa: BLE001 - a dtype this device/autocast cannot run is recorded
            rows[dt] = {"skipped": reason(e)}
            continue
        tol = TOLERANCE[dt]
        row["within_tolerance"] = all(v["rel"] <= tol for k, v in row.items() if k != "sampled_chunk") and \
            row["sampled_chunk"]["rel"] <= tol * SAMPLED_TOLERANCE_FACTOR
        row["tolerance_rel"] = tol
        rows[dt] = row
    note = "device is the CPU: compares autocast on the CPU with fp32" if not is_cuda(device) else None
    return {"config": cfg.name, "steps": steps, "by_dtype": rows, "note": note}


@dataclass
class Variant:
    name: str
    dtype: str
    options: dict
    graphs: bool = False


def fast_variants() -> list[Variant]:
    out = []
    for dt in ("fp16", "bf16"):
        out.append(Variant(f"{dt} eager", dt, {}))
        out.append(Variant(f"{dt} CUDA graphs", dt, {"cuda_graphs": True}, graphs=True))
    return out


def run_variant(model: SyncVPModel, device: str, v: Variant, rgb, dep, horizon: int, steps: int, reps: int,
                time_s: float, ref_step: dict, ref_pred: dict) -> dict:
    """Build a Predictor with this variant's backend, check its step and prediction against the eager one of
    the same dtype (``ref_*`` keyed by dtype; the first variant of a dtype becomes the reference), time it."""
    row: dict = {"variant": v.name, "dtype": v.dtype, "graphs": v.graphs, "steps": steps,
                 "options": {k: str(x) for k, x in v.options.items()}}
    try:
        with MemoryWatch(device) as mem, cudnn_autotune():
            pred = Predictor(model, device, backend="torch", backend_options=v.options)
            inputs = random_step_inputs(model.cfg, device)
            with precision(device, v.dtype, v.graphs):
                t0 = time.perf_counter()
                eps = pred.backend.denoise(*inputs)
                first = pred.predict(rgb, dep, horizon=horizon, steps=steps, seed=0)
                sync(device)
                row["first_call_s"] = time.perf_counter() - t0  # includes capture / compilation
                ts = timed(lambda: pred.predict(rgb, dep, horizon=horizon, steps=steps, seed=0), device, reps, time_s)
                step_ts = timed(lambda: pred.backend.denoise(*inputs), device, max(reps, 10), min(time_s, 10.0))
    except Exception as e:  # noqa: BLE001 - e.g. CUDA graphs on a CPU: recorded, not fatal
        row["skipped"] = reason(e)
        return row
    row.update(stats(ts))
    row["step_median_s"] = statistics.median(step_ts)
    row["memory"] = mem.result
    if v.dtype in ref_step:
        row["vs_eager_step"] = triplane_errors(eps, ref_step[v.dtype])
        row["vs_eager_prediction"] = prediction_errors(first, ref_pred[v.dtype])
    else:
        ref_step[v.dtype], ref_pred[v.dtype] = eps, first
    row["_predictor"] = pred  # kept by the caller only as long as needed (shape bound), never serialised
    return row


def section_paper(plan: Plan, device: str, budget: Budget, state: dict) -> dict:
    cfg_fast = plan.paper
    cfg_official = with_overrides(cfg_fast, f"sampler.eta={plan.official_eta}")
    rgb, dep = sensor_context(cfg_fast)
    h, steps_fast = plan.horizon, cfg_fast.sampler.steps
    out: dict = {"config": cfg_fast.name, "horizon": h, "context_frames": cfg_fast.context_frames,
                 "chunks": math.ceil(h / cfg_fast.chunk_frames)}
    peaks, _ = peak_tflops(device, plan.peak_tflops)
    # The official way: fp32 eager, 100 steps, eta 1, batch 1.
    model = random_model(cfg_official)
    official = Predictor(model, device, backend="torch")
    with MemoryWatch(device) as mem:
        official.predict(rgb, dep, horizon=h, steps=plan.official_steps, seed=0)  # warm-up
        ts = timed(lambda p=official: p.predict(rgb, dep, horizon=h, steps=plan.official_steps, seed=0), device,
                   plan.official_reps, budget.left() / 4)
    fl = flops_per_prediction(official, rgb, dep, h, plan.official_steps)
    out["official"] = {"variant": "fp32 eager (official)", "dtype": "fp32", "steps": plan.official_steps,
                       "eta": plan.official_eta, **stats(ts), "flops": fl["total"], "memory": mem.result}
    official = None  # free its device memory before the fast variants
    # Ours: the same weights, our sampler settings (eta from the config), the config's step count.
    fast_model = random_model(cfg_fast)
    fast_model.load_state_dict(model.state_dict())
    del model
    fl_fast = flops_per_prediction(Predictor(fast_model, device, backend="torch"), rgb, dep, h, steps_fast)
    rows, ref_step, ref_pred = [], {}, {}
    for v in fast_variants():
        if budget.left() < 30:
            rows.append({"variant": v.name, "skipped": "time budget"})
            continue
        row = run_variant(fast_model, device, v, rgb, dep, h, steps_fast, plan.reps, budget.left() / 8, ref_step,
                          ref_pred)
        rows.append(row)
    done = [r for r in rows if "median_s" in r]
    for r in [out["official"], *done]:
        r["flops"] = r.get("flops", fl_fast["total"])
        r["tflops_per_s"] = r["flops"] / r["median_s"] / 1e12
        if peaks:
            r["fraction_of_dense_peak"] = r["tflops_per_s"] / peaks["fp32" if r["dtype"] == "fp32" else r["dtype"]]
    out["fast"] = rows
    if done:
        best = min(done, key=lambda r: r["median_s"])
        out["fastest"] = best["variant"]
        out["speedup_vs_official"] = out["official"]["median_s"] / best["median_s"]
        inputs = random_step_inputs(cfg_fast, device)
        try:
            # The ops are recorded from the eager denoiser at the variant's dtype: a CUDA-graph replay runs the
            # same kernels but shows none of them to a dispatch mode.
            with precision(device, best["dtype"]):
                sb = shape_bound(lambda: denoise(fast_model, *inputs), device, plan.op_iters)
            if not sb["bound_s"] > 0:
                raise RuntimeError(f"no matmul/conv/attention op was recorded ({sb})")
            sb["step_s"] = best["step_median_s"]
            sb["fraction_of_shape_bound"] = sb["bound_s"] / best["step_median_s"]
            sb["shape_bound_tflops_per_s"] = sb["flops"] / sb["bound_s"] / 1e12
            out["shape_bound"] = {"variant": best["variant"], **sb}
        except Exception as e:  # noqa: BLE001
            out["shape_bound"] = {"skipped": reason(e)}
        state["best_paper"] = (best["dtype"], best["graphs"])
    for r in rows:
        r.pop("_predictor", None)
    state["paper_model"] = fast_model
    state["paper_ref"] = (ref_step, ref_pred)
    return out


def section_stca(plan: Plan, device: str, budget: Budget, state: dict) -> dict:
    """bench/stca_cost.py on this device: STCA vs full cross-attention, interleaved rounds, at the fastest
    paper variant's dtype (issue 16.3: STCA no slower than full attention at 64x64 and 128x128)."""
    import stca_cost  # bench/ is on sys.path when this file runs as a script

    dtype = state.get("best_paper", ("bf16", False))[0]
    out = {"config": plan.paper.name, "dtype": dtype, "by_resolution": []}
    for res in plan.stca_resolutions:
        if budget.left() < 20:
            out["by_resolution"].append({"resolution": res, "skipped": "time budget"})
            continue
        r = stca_cost.run(plan.paper, res, plan.stca_rounds, plan.stca_step_rounds, device, DTYPES[dtype])
        fl = r["flops"]
        out["by_resolution"].append({
            "resolution": res, "core_flops_ratio": fl["stca"]["core"] / fl["full"]["core"],
            "block_flops_ratio": fl["stca"]["block"] / fl["full"]["block"],
            "fusion_ms": {k: v["median"] * 1e3 for k, v in r["fusion_s"].items()},
            "fusion_ratio_per_round": r["fusion_ratio"], "step_ratio_per_round": r["step_ratio"],
            "rounds": plan.stca_rounds})
    return out


def batch_sweep(pred: Predictor, v: Variant, plan: Plan, device: str, budget: Budget) -> list[dict]:
    """Predictions/s per batch size, until out of memory, out of budget or two sizes past the best."""
    rows: list[dict] = []
    for b in plan.tiny_batches:
        if budget.left() < 20:
            rows.append({"batch": b, "skipped": "time budget"})
            break
        rgb, dep = sensor_context(pred.config, batch=b)
        try:
            with MemoryWatch(device) as mem, precision(device, v.dtype, v.graphs):
                pred.predict(rgb, dep, seed=0)  # warm-up (and capture for this batch size)
                ts = timed(lambda r=rgb, d=dep: pred.predict(r, d, seed=0), device, plan.reps, budget.left() / 12)
        except Exception as e:  # noqa: BLE001 - typically torch.cuda.OutOfMemoryError: the end of the sweep
            rows.append({"batch": b, "skipped": reason(e)})
            break
        s = stats(ts)
        rows.append({"batch": b, **s, "predictions_per_s": b / s["median_s"], "memory": mem.result})
        rate = [r["predictions_per_s"] for r in rows if "predictions_per_s" in r]
        if len(rate) >= 3 and max(rate[-2:]) < max(rate[:-2]):
            break  # two batch sizes in a row below the best: past the knee
    return rows


def section_tiny(plan: Plan, device: str, budget: Budget, state: dict) -> dict:
    cfg = plan.tiny
    model = random_model(cfg)
    dtype, graphs = state.get("best_paper", ("bf16", False))
    variants = [Variant("fp32 eager", "fp32", {})]
    variants.append(Variant(f"{dtype} {'CUDA graphs' if graphs else 'eager'}", dtype,
                            {"cuda_graphs": True} if graphs else {}, graphs))
    out = {"config": cfg.name, "steps": cfg.sampler.steps, "variants": []}
    for v in variants:
        row: dict = {"variant": v.name, "by_batch": []}
        fast = v.dtype != "fp32"
        try:
            with cudnn_autotune() if fast else contextlib.nullcontext():
                pred = Predictor(model, device, backend="torch", backend_options=v.options)
                row["by_batch"] = batch_sweep(pred, v, plan, device, budget)
            pred = None
        except Exception as e:  # noqa: BLE001
            row["skipped"] = reason(e)
        done = [r for r in row["by_batch"] if "predictions_per_s" in r]
        if done:
            row["batch1_predictions_per_s"] = done[0]["predictions_per_s"]
            best = max(done, key=lambda r: r["predictions_per_s"])
            row["best_batch"], row["best_predictions_per_s"] = best["batch"], best["predictions_per_s"]
        out["variants"].append(row)
    return out


def train_throughput(cfg: ModelConfig, b: int, device: str, steps: int, time_s: float) -> dict:
    """Joint denoiser optimiser steps on random latents (the data reader is not part of the step)."""
    torch.manual_seed(0)
    den = SyncVPDenoiser(cfg).to(device).train()
    opt = torch.optim.AdamW(den.parameters(), lr=1e-4, fused=is_cuda(device))
    c, (lh, lw) = cfg.autoencoder.latent_channels, cfg.latent_size
    g = torch.Generator().manual_seed(0)

    def lat(frames):
        return Triplane.randn_like(Triplane.zeros(b, c, frames, lh, lw), g).map(torch.tanh).to(device)

    z_r, z_d, c_r, c_d = lat(cfg.chunk_frames), lat(cfg.chunk_frames), lat(cfg.context_frames), lat(cfg.context_frames)
    gen = torch.Generator().manual_seed(0)

    def step():
        with precision(device, "bf16"):
            loss = training_loss(den, cfg, z_r, z_d, c_r, c_d, gen)
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)

    with MemoryWatch(device) as mem:
        for _ in range(2):
            step()
        ts = timed(step, device, steps, time_s)
    s = stats(ts)
    return {**s, "clips_per_s": b / s["median_s"], "memory": mem.result}


def section_training(plan: Plan, device: str, budget: Budget) -> dict:
    out = {"precision": "bf16 autocast (mixed), fp32 weights and optimiser", "configs": []}
    for name, cfg in (("tiny", plan.tiny), ("paper", plan.paper)):
        b = plan.train_batch[name]
        row: dict = {"config": name, "model": cfg.name, "batch": b}
        if budget.left() < 30:
            row["skipped"] = "time budget"
            out["configs"].append(row)
            continue
        try:
            row.update(train_throughput(cfg, b, device, plan.train_steps, budget.left() / 6))
        except Exception as e:  # noqa: BLE001
            row["skipped"] = reason(e)
        out["configs"].append(row)
    return out


def release_check(make_predictor, device: str, rgb, dep) -> dict:
    """What the node does on deactivate/cleanup: drop its only reference to the Predictor, then
    ``torch.cuda.empty_cache()``. The model must become unreachable and the CUDA memory come back without a
    garbage-collector pass (a reference cycle would hold it until one runs)."""
    gc.collect()
    cuda = is_cuda(device)
    if cuda:
        sync(device)
        torch.cuda.empty_cache()
        base = torch.cuda.memory_allocated(device)
    pred = make_predictor()
    pred.predict(rgb, dep, seed=0)
    alive = weakref.ref(pred.model)
    row: dict = {}
    if cuda:
        sync(device)
        row["held_mib"] = (torch.cuda.memory_allocated(device) - base) / MIB
    pred = None  # noqa: F841 - the node's self.predictor = None
    if cuda:
        torch.cuda.empty_cache()
        row["left_after_release_mib"] = (torch.cuda.memory_allocated(device) - base) / MIB
        row["reserved_after_release_mib"] = torch.cuda.memory_reserved(device) / MIB
    row["model_unreachable_without_gc"] = alive() is None
    gc.collect()
    if cuda:
        torch.cuda.empty_cache()
        row["left_after_gc_mib"] = (torch.cuda.memory_allocated(device) - base) / MIB
        row["released"] = row["left_after_release_mib"] <= 1.0
    else:
        row["released"] = row["model_unreachable_without_gc"]
        row["note"] = "CPU run: checks that the model is unreachable; CUDA memory figures need a CUDA device"
    return row


def section_release(plan: Plan, device: str, budget: Budget, state: dict) -> dict:
    cfg = plan.paper
    rgb, dep = sensor_context(cfg)
    state.pop("paper_model", None)  # the suite's own reference would look like a leak
    state.pop("paper_ref", None)
    gc.collect()
    out = {"config": cfg.name}
    for name, opts, dt, graphs in (("eager", {}, "fp32", False), ("CUDA graphs", {"cuda_graphs": True}, "fp16", True)):
        def make(opts=opts):
            return Predictor.from_config(cfg, seed=0, device=device, backend="torch", backend_options=opts)
        try:
            with precision(device, dt, graphs):
                out[name] = release_check(make, device, rgb, dep)
        except Exception as e:  # noqa: BLE001
            out[name] = {"skipped": reason(e)}
    return out


def section_compile(plan: Plan, device: str, budget: Budget, state: dict) -> dict:
    if budget.left() < plan.compile_min_s:
        return {"skipped": f"time budget: {budget.left():.0f} s left, compiling the paper denoiser needs "
                           f"about {plan.compile_min_s:.0f} s"}
    cfg = plan.paper
    dtype, _ = state.get("best_paper", ("bf16", False))
    model = random_model(cfg)
    rgb, dep = sensor_context(cfg)
    ref_step, ref_pred = {}, {}
    rows = []
    base = {"compile": True, "compile_backend": plan.compile_backend}
    for v in (Variant(f"{dtype} eager", dtype, {}),
              Variant(f"{dtype} compile ({plan.compile_backend})", dtype, base),
              Variant(f"{dtype} compile ({plan.compile_backend}) + CUDA graphs", dtype, {**base, "cuda_graphs": True},
                      graphs=True)):
        if budget.left() < 20:
            rows.append({"variant": v.name, "skipped": "time budget"})
            continue
        row = run_variant(model, device, v, rgb, dep, plan.horizon, cfg.sampler.steps, plan.reps, budget.left() / 6,
                          ref_step, ref_pred)
        row.pop("_predictor", None)
        rows.append(row)
    return {"config": cfg.name, "variants": rows}


# ---------------------------------------------------------------------------------------------------------
# Report


def fmt(v, spec=".3g", unit=""):
    return "-" if v is None else f"{format(v, spec)}{unit}"


def markdown(rep: dict) -> str:
    e = rep["env"]
    lines = [f"# GPU suite report ({'smoke, ' if e['smoke'] else ''}{e['date_utc']} UTC)", "",
             f"device **{e.get('gpu', e['device'])}**, torch {e['torch']} (CUDA {e['cuda']}), Python {e['python']}, "
             f"onnx {e['onnx']}, onnxruntime {e['onnxruntime']}, tensorrt {e['tensorrt']}; dense peak TFLOP/s: "
             f"{', '.join(f'{k} {v:g}' for k, v in (e['peak_tflops'] or {}).items()) or '-'} ({e['peak_source']})", ""]
    for name, sec in rep["sections"].items():
        lines.append(f"## {name}")
        if "skipped" in sec or "failed" in sec:
            lines += [f"{'skipped' if 'skipped' in sec else 'FAILED'}: {sec.get('skipped') or sec.get('failed')}", ""]
            continue
        lines += _section_md(name, sec) + [f"({sec.get('seconds', 0):.1f} s)", ""]
    return "\n".join(lines)


def _section_md(name: str, sec: dict) -> list[str]:
    if name == "correctness":
        out = [f"config {sec['config']}, device vs CPU fp32, relative error max|d|/max|ref| (sampled chunk: "
               f"{sec['steps']} DDIM steps)" + (f"; {sec['note']}" if sec.get("note") else ""), "",
               "| dtype | encode | denoiser step | decode | sampled chunk | within tolerance |",
               "|---|---|---|---|---|---|"]
        for dt, r in sec["by_dtype"].items():
            if "skipped" in r:
                out.append(f"| {dt} | skipped: {r['skipped']} | | | | |")
                continue
            out.append(f"| {dt} | " + " | ".join(fmt(r[k]["rel"], ".2e") for k in
                                                   ("encode", "denoiser_step", "decode", "sampled_chunk"))
                       + f" | {r['within_tolerance']} (tol {r['tolerance_rel']:g}) |")
        return out
    if name in ("paper", "compile"):
        rows = ([sec["official"]] if "official" in sec else []) + sec.get("fast", sec.get("variants", []))
        out = [f"config {sec['config']}" + (f", {sec['context_frames']} -> {sec['horizon']} frames "
                                            f"({sec['chunks']} chunks), batch 1" if "horizon" in sec else ""), "",
               "| variant | steps | latency median s | x official | GFLOP / prediction | TFLOP/s | of dense peak "
               "| step ms | vs eager: step rel err / rgb max levels | peak MiB |", "|---" * 10 + "|"]
        off = sec.get("official", {}).get("median_s")
        for r in rows:
            if "skipped" in r:
                out.append(f"| {r['variant']} | skipped: {r['skipped']} |" + " |" * 8)
                continue
            cmp = (f"{r['vs_eager_step']['rel']:.1e} / {r['vs_eager_prediction']['rgb_max_levels']}"
                   if "vs_eager_step" in r else "reference")
            speedup = off / r["median_s"] if off else None
            out.append(f"| {r['variant']} | {r['steps']} | {r['median_s']:.3f} | {fmt(speedup, '.1f')} "
                       f"| {fmt(r.get('flops', 0) / 1e9 if r.get('flops') else None, '.1f')} | "
                       f"{fmt(r.get('tflops_per_s'), '.3g')} | {fmt(r.get('fraction_of_dense_peak'), '.1%')} | "
                       f"{fmt(r['step_median_s'] * 1e3 if 'step_median_s' in r else None, '.2f')} | {cmp} | "
                       f"{fmt(r.get('memory', {}).get('peak_allocated_mib'), '.0f')} |")
        if "speedup_vs_official" in sec:
            out += ["", f"fastest: **{sec['fastest']}**, **{sec['speedup_vs_official']:.1f}x** the official way"]
        sb = sec.get("shape_bound")
        if sb and "skipped" not in sb:
            out.append(f"denoiser step of {sb['variant']}: {sb['step_s'] * 1e3:.2f} ms; its {sb['distinct_ops']} "
                       f"distinct matmul/conv/attention ops timed alone sum to {sb['bound_s'] * 1e3:.2f} ms "
                       f"({sb['shape_bound_tflops_per_s']:.3g} TFLOP/s): **{sb['fraction_of_shape_bound']:.0%} of "
                       "what the shapes allow**")
        elif sb:
            out.append(f"shape bound skipped: {sb['skipped']}")
        return out
    if name == "stca":
        out = [f"STCA vs full cross-attention, {sec['config']} dimensions, {sec['dtype']}, interleaved rounds", "",
               "| frames | attention-core FLOPs STCA / full | fusion-block FLOPs | fusion ms STCA | fusion ms full "
               "| STCA / full per round, median (range) | denoiser step STCA / full |", "|---" * 7 + "|"]
        for r in sec["by_resolution"]:
            if "skipped" in r:
                out.append(f"| {r['resolution']} | skipped: {r['skipped']} |" + " |" * 5)
                continue
            fr, st = r["fusion_ratio_per_round"], r["step_ratio_per_round"]
            out.append(f"| {r['resolution']}x{r['resolution']} | {r['core_flops_ratio']:.3f} | "
                       f"{r['block_flops_ratio']:.3f} | {r['fusion_ms']['stca']:.2f} | {r['fusion_ms']['full']:.2f} | "
                       f"**{fr['median']:.3f}** ({fr['min']:.3f}-{fr['max']:.3f}) | "
                       f"{fmt(st['median'] if st else None, '.3f')} |")
        return out
    if name == "tiny":
        out = [f"config {sec['config']}, {sec['steps']} DDIM steps, one chunk", "",
               "| variant | batch | latency median s | predictions/s | peak MiB |", "|---|---|---|---|---|"]
        for v in sec["variants"]:
            if "skipped" in v:
                out.append(f"| {v['variant']} | skipped: {v['skipped']} | | | |")
            for r in v["by_batch"]:
                if "skipped" in r:
                    out.append(f"| {v['variant']} | {r['batch']} | skipped: {r['skipped']} | | |")
                else:
                    out.append(f"| {v['variant']} | {r['batch']} | {r['median_s']:.4f} | {r['predictions_per_s']:.1f} "
                               f"| {fmt(r['memory'].get('peak_allocated_mib'), '.0f')} |")
            if "best_batch" in v:
                out.append(f"| {v['variant']} | **best: {v['best_batch']}** | | **{v['best_predictions_per_s']:.1f}** "
                           f"(batch 1: {v['batch1_predictions_per_s']:.1f}) | |")
        return out
    if name == "training":
        out = [f"joint denoiser steps, {sec['precision']}, AdamW", "",
               "| config | batch | step median s | clips/s | peak MiB |", "|---|---|---|---|---|"]
        for r in sec["configs"]:
            if "skipped" in r:
                out.append(f"| {r['config']} | {r['batch']} | skipped: {r['skipped']} | | |")
            else:
                out.append(f"| {r['config']} ({r['model']}) | {r['batch']} | {r['median_s']:.4f} | "
                           f"{r['clips_per_s']:.1f} | {fmt(r['memory'].get('peak_allocated_mib'), '.0f')} |")
        return out
    if name == "release":
        out = ["| backend | released | held MiB | left after release MiB | left after gc MiB | model unreachable "
               "without gc |", "|---|---|---|---|---|---|"]
        for k, r in sec.items():
            if not isinstance(r, dict):
                continue
            if "skipped" in r:
                out.append(f"| {k} | skipped: {r['skipped']} | | | | |")
            else:
                out.append(f"| {k} | {r['released']} | {fmt(r.get('held_mib'), '.1f')} | "
                           f"{fmt(r.get('left_after_release_mib'), '.2f')} | "
                           f"{fmt(r.get('left_after_gc_mib'), '.2f')} | {r['model_unreachable_without_gc']} |")
        return out
    return [f"```\n{json.dumps(sec, indent=1, default=str)}\n```"]


def clean(x):
    """JSON-safe: drop private keys (live objects), stringify the rest."""
    if isinstance(x, dict):
        return {k: clean(v) for k, v in x.items() if not str(k).startswith("_")}
    if isinstance(x, (list, tuple)):
        return [clean(v) for v in x]
    if isinstance(x, float) and not math.isfinite(x):
        return str(x)
    if isinstance(x, (str, int, float, bool)) or x is None:
        return x
    return str(x)


def write(rep: dict, out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    data = clean(rep)
    (out / "report.json").write_text(json.dumps(data, indent=1))
    (out / "report.md").write_text(markdown(data))


def run_suite(plan: Plan, device: str, out: Path) -> dict:
    budget = Budget(plan.budget_s)
    rep = {"env": env_info(device, plan), "plan": {k: v for k, v in vars(plan).items() if k not in ("paper", "tiny")},
           "sections": {}}
    state: dict = {}
    sections = (("correctness", lambda: section_correctness(plan, device, budget), 20),
                ("paper", lambda: section_paper(plan, device, budget, state), 60),
                ("stca", lambda: section_stca(plan, device, budget, state), 20),
                ("tiny", lambda: section_tiny(plan, device, budget, state), 20),
                ("training", lambda: section_training(plan, device, budget), 20),
                ("release", lambda: section_release(plan, device, budget, state), 10),
                ("compile", lambda: section_compile(plan, device, budget, state), 0))
    for name, fn, min_s in sections:
        t0 = time.perf_counter()
        if budget.left() < min_s:
            rep["sections"][name] = {"skipped": f"time budget ({budget.left():.0f} s left)"}
        else:
            print(f"[{time.strftime('%H:%M:%S')}] {name} ({budget.left():.0f} s of budget left)", flush=True)
            try:
                rep["sections"][name] = fn()
            except Exception as e:  # noqa: BLE001 - one failing section must not cost the others
                rep["sections"][name] = {"failed": reason(e), "traceback": traceback.format_exc()[-3000:]}
                print(traceback.format_exc(), file=sys.stderr, flush=True)
        rep["sections"][name]["seconds"] = time.perf_counter() - t0
        write(rep, out)
    rep["total_s"] = plan.budget_s - budget.left()
    write(rep, out)
    return rep


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", required=True, help="folder for report.json and report.md")
    ap.add_argument("--smoke", action="store_true", help="micro sizes, seconds, any device (CPU by default)")
    ap.add_argument("--device", default=None, help="default: cuda when available (not with --smoke), else cpu")
    ap.add_argument("--budget-s", type=float, default=None,
                    help="sections that would start after this many seconds are skipped (default 450; smoke 300)")
    ap.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's)")
    ap.add_argument("--peak-tflops", type=float, default=None,
                    help="dense peak TFLOP/s to compare with, for a GPU missing from PEAK_TFLOPS (all dtypes)")
    args = ap.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    device = args.device or ("cuda" if torch.cuda.is_available() and not args.smoke else "cpu")
    plan = make_plan(args.smoke, args.budget_s, args.peak_tflops)
    rep = run_suite(plan, device, Path(args.out))
    print((Path(args.out) / "report.md").read_text())
    failed = [k for k, v in rep["sections"].items() if "failed" in v]
    print(f"\nwrote {args.out}/report.json and report.md in {rep['total_s']:.0f} s; "
          f"failed sections: {failed or 'none'}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
