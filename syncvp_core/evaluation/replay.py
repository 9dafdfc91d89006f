"""Streaming replay evaluation: slide over synchronised RGB-D frames, forecast, score per horizon step.

The core is source-agnostic: :func:`evaluate_frames` takes any iterable of frames (objects with
``stamp_ns``, ``rgb`` uint8 (H, W, 3), ``depth`` float32 metres (H, W), e.g. the bag reader's
:class:`~syncvp_core.data.frames.RGBDFrame`, or plain ``(stamp_ns, rgb, depth)`` tuples), so the bag part
(:func:`evaluate_bag`) is a thin adapter.

Protocol (all of it is recorded in metrics.json, see :class:`EvalProtocol`):

1. **Frame spacing.** The model was trained at ``frame_rate_hz``; a 30 Hz bag evaluated with a 10 Hz model
   keeps every third frame. ``frame_step`` (auto: round(bag rate / model rate), bag rate from the median
   stamp interval of the first frames) sets the spacing; frames are selected by **time** (the next frame
   at least ``frame_step`` source intervals after the previous pick), so a dropped source frame does not
   shift the phase. A window whose picked frames are irregular (an interval > ``gap_tolerance`` x the
   nominal one, e.g. across a recording gap) is skipped and counted.
2. **Windows.** ``context_frames + horizon`` consecutive picked frames; a new window every ``stride``
   picked frames (default: the horizon, so future segments don't overlap). Only the current window is
   held in memory (a deque), so any bag length works.
3. **Scenarios** from the same window: ``full`` (colour + depth context), ``rgb_only`` (depth removed),
   ``depth_only`` (colour removed). Ground truth always has both modalities, so in ``rgb_only`` the model's
   depth is scored against the real depth (cross-modal forecasting). Baselines cannot forecast a modality
   they never saw: those cells are N/A, never a made-up number.
4. **Forecasters**: the model, ``copy_last``, ``const_velocity`` (see :mod:`.baselines`), plus the
   ``resize_ceiling`` reference (real future through the model resolution and back; not a forecast).
5. **Scoring at the sensor resolution**: predictions come back at the bag's resolution (the Predictor
   resizes back) and are compared with the real frames as recorded; baselines work at sensor resolution.
6. **Determinism**: window i uses seed ``seed + i`` for every scenario (common random numbers).

Online replay (``--online``, through the ROS node: :mod:`syncvp_ros.online_eval`) reuses all of this
unchanged: :func:`plan_windows` tells the player which frames the windows are made of (same spacing and
window rules, stamps only), and the node's published forecasts, matched to windows by stamp, replace the
model's offline forecast through the ``model_source`` argument of :func:`evaluate_frames` (baselines and
scoring stay the same code). Latency/drop statistics go into :attr:`EvalResult.online`.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import math
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from dataclasses import asdict, dataclass, field
from itertools import chain, islice
from typing import Any

import numpy as np
import torch

from .. import depth as depth_norm
from .baselines import ConstantVelocity, CopyLast, Forecast, resize_ceiling
from .metrics import COLOUR_METRICS, DEPTH_METRICS, METRIC_DEFINITIONS, HorizonStats, depth_errors, psnr, ssim
from .weights import MetricUnavailable

log = logging.getLogger(__name__)

SCENARIOS = ("full", "rgb_only", "depth_only")
BASELINES = ("copy_last", "const_velocity")
MODEL = "model"
CEILING = "resize_ceiling"
FVD_CLIP = 16


class EvalError(ValueError):
    """The input cannot be evaluated (too short, bad options); the message says why."""


@dataclass
class EvalProtocol:
    horizon: int | None = None  # None = the model's chunk_frames
    stride: int | None = None  # in picked (model-rate) frames; None = horizon
    max_windows: int | None = None
    steps: int | None = None  # DDIM steps; None = the model config's
    seed: int = 0
    scenarios: tuple[str, ...] = SCENARIOS
    baselines: tuple[str, ...] = BASELINES
    frame_step: int | None = None  # None = auto from stamps vs the model's frame rate
    gap_tolerance: float = 1.5
    lpips: bool = True
    fvd: bool = True
    resize_ceiling: bool = True
    animate_window: int = 0  # index (among evaluated windows) of the window shown in the GIF

    def validate(self) -> None:
        bad = [s for s in self.scenarios if s not in SCENARIOS]
        if bad or not self.scenarios:
            raise EvalError(f"unknown scenario(s) {bad}; choose from {list(SCENARIOS)}")
        bad = [b for b in self.baselines if b not in BASELINES]
        if bad:
            raise EvalError(f"unknown baseline(s) {bad}; choose from {list(BASELINES)}")
        for name in ("horizon", "stride", "max_windows", "steps", "frame_step"):
            v = getattr(self, name)
            if v is not None and v < 1:
                raise EvalError(f"{name} must be >= 1, got {v}")


# ----------------------------------------------------------------------------------------------------
# forecasters


class ModelForecaster:
    """Adapts a :class:`~syncvp_core.predictor.Predictor` to the baselines' interface."""

    name = MODEL

    def __init__(self, predictor: Any) -> None:
        self.predictor = predictor
        self.context_frames = predictor.context_frames
        self.last_timing: dict[str, float] = {}

    def predict(self, context_rgb, context_depth, horizon, steps=None, seed=0) -> Forecast:
        out = self.predictor.predict(context_rgb, context_depth, horizon=horizon, steps=steps, seed=seed)
        self.last_timing = dict(out.timings)
        return Forecast(out.rgb, out.depth, out.mode)


def model_description(predictor: Any) -> dict:
    """What identifies the model in the protocol: checkpoint hash, config, backend, sampler."""
    from ..checkpoint import file_sha256

    ckpt = getattr(predictor, "checkpoint", None)
    meta = getattr(predictor, "meta", {}) or {}
    cfg = predictor.config
    return {
        "name": predictor.model_name,
        "checkpoint": str(ckpt) if ckpt else None,
        "checkpoint_sha256": file_sha256(ckpt) if ckpt else None,
        "random_init": bool(meta.get("random_init", False)),
        "init_seed": meta.get("seed") if meta.get("random_init") else None,
        "backend": predictor.backend_name,
        "config": cfg.to_dict(),
        "eta": cfg.sampler.eta,
        "default_steps": cfg.sampler.steps,
        "resolution": list(cfg.resolution),
        "frame_rate_hz": cfg.frame_rate_hz,
    }


# ----------------------------------------------------------------------------------------------------
# frames -> picked frames -> windows


@dataclass
class Frame:
    stamp_ns: int
    rgb: np.ndarray
    depth: np.ndarray


def as_frame(item: Any) -> Frame:
    if isinstance(item, tuple):
        stamp, rgb, dep = item[:3]
    else:
        stamp, rgb, dep = item.stamp_ns, item.rgb, item.depth
    return Frame(int(stamp), rgb, dep)


def median_interval_ns(stamps: list[int]) -> float:
    d = np.diff(np.asarray(stamps, dtype=np.int64))
    d = d[d > 0]
    return float(np.median(d)) if d.size else math.nan


def auto_frame_step(source_interval_ns: float, model_rate_hz: float) -> int:
    if not math.isfinite(source_interval_ns) or source_interval_ns <= 0:
        return 1
    return max(1, int(round((1e9 / source_interval_ns) / model_rate_hz)))


def pick_frames(frames: Iterable[Frame], period_ns: float, source_interval_ns: float) -> Iterator[Frame]:
    """Frames spaced by about ``period_ns``: a frame is kept when it is at least ``period_ns`` minus half
    a source interval after the last kept one (selection by time, robust to dropped source frames)."""
    last: int | None = None
    slack = 0.5 * source_interval_ns if math.isfinite(source_interval_ns) else 0.0
    for f in frames:
        if last is None or f.stamp_ns - last >= period_ns - slack:
            last = f.stamp_ns
            yield f


def windows(frames: Iterable[Frame], length: int, stride: int) -> Iterator[list[Frame]]:
    """Sliding windows of ``length`` frames, one every ``stride`` frames; holds one window in memory."""
    buf: deque[Frame] = deque(maxlen=length)
    since = stride  # the first full window is emitted at once
    for f in frames:
        buf.append(f)
        since += 1
        if len(buf) == length and since >= stride:
            since = 0
            yield list(buf)


# ----------------------------------------------------------------------------------------------------
# scoring


def frame_spacing(head_stamps: list[int], frame_step: int | None, model_rate_hz: float) -> tuple[float, int, float]:
    """(source interval ns, frame step, pick period ns) from the first stamps of a stream."""
    src_dt = median_interval_ns(head_stamps)
    step = frame_step or auto_frame_step(src_dt, model_rate_hz)
    period = step * src_dt if math.isfinite(src_dt) else 0.0
    return src_dt, step, period


def evaluated_windows(stream: Iterable[Frame], length: int, stride: int, period: float, gap_tolerance: float,
                      max_windows: int | None, counts: dict) -> Iterator[tuple[np.ndarray, list[Frame]]]:
    """The windows that get evaluated: (stamps, frames), skipping (and counting) windows across a gap and
    stopping after ``max_windows``; the caller increments ``counts["windows_evaluated"]``."""
    for win in windows(stream, length, stride):
        if max_windows and counts["windows_evaluated"] >= max_windows:
            break
        stamps = np.array([f.stamp_ns for f in win], dtype=np.int64)
        if period > 0 and np.any(np.diff(stamps) > gap_tolerance * period):
            counts["windows_skipped_gap"] += 1
            continue
        yield stamps, win


@dataclass
class WindowPlan:
    """Which frames an evaluation uses (stamps only): what an online player needs to know in advance."""
    picked_stamps: list[int]  # every frame kept at the model rate, up to the last evaluated window
    windows: list[list[int]]  # stamps of each evaluated window (context + future), in window order
    context_frames: int
    horizon: int
    frame_step: int
    period_ns: float
    source_interval_ns: float


def plan_windows(frames: Iterable[Any], context_frames: int, horizon: int, model_rate_hz: float,
                 protocol: EvalProtocol | None = None) -> WindowPlan:
    """The frame picks and windows :func:`evaluate_frames` will use on the same stream (same code path)."""
    protocol = protocol or EvalProtocol()
    stride = protocol.stride or horizon
    length = context_frames + horizon
    it = iter(Frame(as_frame(f).stamp_ns, None, None) for f in frames)  # keep no images
    head = list(islice(it, 32))
    src_dt, step, period = frame_spacing([f.stamp_ns for f in head], protocol.frame_step, model_rate_hz)
    picked: list[int] = []

    def record(src):
        for f in src:
            picked.append(f.stamp_ns)
            yield f

    counts = {"windows_evaluated": 0, "windows_skipped_gap": 0}
    wins = []
    for stamps, _ in evaluated_windows(record(pick_frames(chain(head, it), period, src_dt)), length, stride,
                                       period, protocol.gap_tolerance, protocol.max_windows, counts):
        wins.append([int(s) for s in stamps])
        counts["windows_evaluated"] += 1
    if wins:
        picked = [s for s in picked if s <= wins[-1][-1]]
    return WindowPlan(picked, wins, context_frames, horizon, step, period, src_dt)


def fvd_chunks(length: int, clip: int = FVD_CLIP) -> list[tuple[int, int]]:
    """16-frame chunks covering a video of ``length`` frames: back to back, plus one ending at the last
    frame if frames are left over (30 -> [0,16), [14,30)). Shorter videos give none."""
    if length < clip:
        return []
    out = [(s, s + clip) for s in range(0, length - clip + 1, clip)]
    if out[-1][1] < length:
        out.append((length - clip, length))
    return out


class WindowScorer:
    """Accumulates per-horizon metrics for (scenario, method) and I3D features for FVD.

    ``lpips`` / ``i3d`` are loaded models or None; ``unavailable`` maps a metric to the reason it is not
    computed (written to metrics.json and the report instead of a number).
    """

    def __init__(self, horizon: int, context_frames: int, scenarios: tuple[str, ...], methods: list[str],
                 depth_cfg: Any, lpips: Any = None, i3d: Any = None, unavailable: dict[str, str] | None = None):
        self.horizon, self.context_frames = horizon, context_frames
        self.scenarios, self.methods = scenarios, methods
        self.depth_cfg = depth_cfg
        self.lpips, self.i3d = lpips, i3d
        self.unavailable = dict(unavailable or {})
        self.stats: dict[tuple[str, str, str], HorizonStats] = {}
        self.na: dict[tuple[str, str, str], str] = {}
        self.failures: dict[tuple[str, str], list[str]] = {}
        self.chunks = fvd_chunks(context_frames + horizon)
        if not self.chunks and "fvd" not in self.unavailable:
            self.unavailable["fvd"] = (
                f"windows have {context_frames + horizon} frames (context + horizon) < {FVD_CLIP}; FVD needs "
                f"{FVD_CLIP}-frame clips (use a horizon >= {FVD_CLIP - context_frames})")
        self.features: dict[tuple[str, str, str], list[np.ndarray]] = {}
        self.windows = 0

    def _add(self, scenario: str, method: str, metric: str, values: np.ndarray) -> None:
        key = (scenario, method, metric)
        if key not in self.stats:
            self.stats[key] = HorizonStats(self.horizon)
        self.stats[key].add(values)

    def fail(self, scenario: str, method: str, reason: str) -> None:
        self.failures.setdefault((scenario, method), []).append(reason)

    def _depth_unit(self, depth_m: np.ndarray) -> np.ndarray:
        x, mask = depth_norm.normalize(torch.from_numpy(np.ascontiguousarray(depth_m, dtype=np.float32)),
                                       self.depth_cfg)
        return ((x + 1.0) / 2.0).numpy()

    def _clip_features(self, video: np.ndarray) -> np.ndarray:
        from .fvd import i3d_features

        clips = np.stack([video[a:b] for a, b in self.chunks])
        return i3d_features(self.i3d, clips)

    def score(self, ctx_rgb: np.ndarray, ctx_depth: np.ndarray, fut_rgb: np.ndarray, fut_depth: np.ndarray,
              forecasts: dict[str, dict[str, Forecast | None]]) -> None:
        """Score one window. ``forecasts[scenario][method]`` (None = the method failed on this window)."""
        self.windows += 1
        if self.lpips is not None and min(fut_rgb.shape[1:3]) < self.lpips.min_size:
            self.unavailable["lpips"] = (f"frames of {fut_rgb.shape[1]}x{fut_rgb.shape[2]} are smaller than "
                                         f"AlexNet's minimum of {self.lpips.min_size} px")
            self.lpips = None
        gt_feats = None
        if self.lpips is not None:
            with torch.no_grad():
                gt_feats = self.lpips.features(self.lpips.to_input(fut_rgb))
        use_fvd = self.i3d is not None and bool(self.chunks)
        if use_fvd:
            real_rgb = np.concatenate([ctx_rgb, fut_rgb])
            real_dep = np.concatenate([ctx_depth, fut_depth])
            self.features.setdefault(("real", "real", "rgb"), []).append(self._clip_features(real_rgb))
            from .fvd import depth_to_video

            self.features.setdefault(("real", "real", "depth"), []).append(
                self._clip_features(depth_to_video(self._depth_unit(real_dep))))
        for scenario, by_method in forecasts.items():
            for method, fc in by_method.items():
                if fc is None:
                    continue
                if fc.rgb is None:
                    self.na[(scenario, method, "rgb")] = "cannot forecast colour without a colour context"
                else:
                    self._score_rgb(scenario, method, fc.rgb, fut_rgb, gt_feats)
                if fc.depth is None:
                    self.na[(scenario, method, "depth")] = "cannot forecast depth without a depth context"
                else:
                    for name, vals in depth_errors(fc.depth, fut_depth).items():
                        self._add(scenario, method, name, vals)
                if use_fvd and method != CEILING:
                    self._fvd_features(scenario, method, fc, ctx_rgb, ctx_depth)

    def _score_rgb(self, scenario, method, pred, gt, gt_feats) -> None:
        if pred.shape != gt.shape:
            raise EvalError(f"{method} forecast colour shape {pred.shape} != ground truth {gt.shape}")
        self._add(scenario, method, "psnr", psnr(pred, gt))
        self._add(scenario, method, "ssim", ssim(pred, gt))
        if gt_feats is not None:
            with torch.no_grad():
                d = self.lpips.distance(self.lpips.features(self.lpips.to_input(pred)), gt_feats)
            self._add(scenario, method, "lpips", d.numpy())

    def _fvd_features(self, scenario, method, fc, ctx_rgb, ctx_depth) -> None:
        from .fvd import depth_to_video

        # As in the standard protocol, the clip includes the (real) context frames.
        if fc.rgb is not None:
            video = np.concatenate([ctx_rgb, fc.rgb])
            self.features.setdefault((scenario, method, "rgb"), []).append(self._clip_features(video))
        if fc.depth is not None:
            video = depth_to_video(self._depth_unit(np.concatenate([ctx_depth, fc.depth])))
            self.features.setdefault((scenario, method, "depth"), []).append(self._clip_features(video))

    def fvd(self) -> dict:
        from .fvd import frechet_distance

        if "fvd" in self.unavailable:
            return {"available": False, "reason": self.unavailable["fvd"]}
        out: dict = {"available": True, "clip_frames": FVD_CLIP, "chunks_per_window": [list(c) for c in self.chunks],
                     "values": {}}
        for modality in ("rgb", "depth"):
            real = self.features.get(("real", "real", modality))
            if not real:
                continue
            real_f = np.concatenate(real)
            for (scenario, method, mod), feats in sorted(self.features.items()):
                if mod != modality or scenario == "real":
                    continue
                f = np.concatenate(feats)
                entry = {"n_clips": int(len(f)), "n_real_clips": int(len(real_f))}
                if len(f) < 2 or len(real_f) < 2:
                    entry.update(value=None, reason="FVD needs at least 2 clips per set")
                else:
                    entry["value"] = frechet_distance(real_f, f)
                out["values"].setdefault(scenario, {}).setdefault(method, {})[modality] = entry
        return out

    def summary(self) -> dict:
        results: dict = {}
        for scenario in self.scenarios:
            for method in self.methods:
                cell: dict = {}
                for metric in COLOUR_METRICS + DEPTH_METRICS:
                    modality = "rgb" if metric in COLOUR_METRICS else "depth"
                    key = (scenario, method, metric)
                    if metric in self.unavailable:
                        cell[metric] = {"available": False, "reason": self.unavailable[metric]}
                    elif key in self.stats:
                        cell[metric] = {"available": True, **self.stats[key].summary()}
                    elif (scenario, method, modality) in self.na:
                        cell[metric] = {"available": False, "reason": self.na[(scenario, method, modality)]}
                    else:
                        cell[metric] = {"available": False, "reason": "no window scored"}
                fails = self.failures.get((scenario, method), [])
                cell["failed_windows"] = len(fails)
                if fails:
                    cell["failure_examples"] = sorted(set(fails))[:3]
                results.setdefault(scenario, {})[method] = cell
        return results


# ----------------------------------------------------------------------------------------------------
# the offline driver


@dataclass
class EvalResult:
    protocol: dict
    results: dict
    fvd: dict
    counts: dict
    timing: dict
    animation: dict | None  # arrays of one window for the GIF (not serialised)
    warnings: list[str] = field(default_factory=list)
    online: dict | None = None  # online replay through the node: delivery, latency, dropped work

    def to_json(self) -> dict:
        out = {"protocol": self.protocol, "protocol_hash": self.protocol["hash"], "results": self.results,
               "fvd": self.fvd, "counts": self.counts, "timing": self.timing, "warnings": self.warnings,
               "metric_definitions": METRIC_DEFINITIONS}
        if self.online is not None:
            out["online"] = self.online
        return out


def protocol_hash(protocol: dict) -> str:
    """SHA-256 (first 16 hex) of everything that determines the numbers (not paths or timings)."""
    keep = {k: v for k, v in protocol.items() if k not in ("hash", "source_path", "created", "runtime")}
    return hashlib.sha256(json.dumps(keep, sort_keys=True, default=str).encode()).hexdigest()[:16]


def load_metric_models(protocol: EvalProtocol, device: str = "cpu") -> tuple[Any, Any, dict[str, str]]:
    """LPIPS and I3D models, or None with the reason (never a fake number)."""
    from .fvd import I3D
    from .lpips import LPIPS

    unavailable: dict[str, str] = {}
    lp = i3d = None
    if not protocol.lpips:
        unavailable["lpips"] = "disabled (--no-lpips)"
    else:
        try:
            lp = LPIPS.pretrained(device)
        except MetricUnavailable as e:
            unavailable["lpips"] = str(e)
    if not protocol.fvd:
        unavailable["fvd"] = "disabled (--no-fvd)"
    else:
        try:
            i3d = I3D.pretrained(device)
        except MetricUnavailable as e:
            unavailable["fvd"] = str(e)
    return lp, i3d, unavailable


def _metric_assets() -> dict:
    from .weights import I3D_K400, LPIPS_ALEX

    return {s.name: {"source": s.requirement, "sha256": s.sha256, "licence": s.licence}
            for s in (LPIPS_ALEX, I3D_K400)}


def evaluate_frames(
    frames: Iterable[Any],
    predictor: Any,
    protocol: EvalProtocol | None = None,
    source: dict | None = None,
    progress: bool = True,
    total_frames_hint: int | None = None,
    metric_models: tuple[Any, Any, dict[str, str]] | None = None,
    forecast_source: Callable[..., dict[str, dict[str, Forecast | None]]] | None = None,
    model_source: Callable[..., Forecast] | None = None,
) -> EvalResult:
    """Evaluate the model and the baselines on a stream of synchronised frames (see the module docstring).

    ``forecast_source(window_index, ctx_rgb, ctx_depth, seed)`` may replace all offline forecasters.
    ``model_source(window_index, scenario, stamps_ns, seed)`` replaces only the model's forecast (the
    online-replay hook: the node's published forecast for the window whose frames have ``stamps_ns``); it
    raises ValueError when there is none (counted as a failed window with the message, like a model
    error). By default the predictor and the baselines are run here.
    """
    from tqdm import tqdm

    protocol = protocol or EvalProtocol()
    protocol.validate()
    t_start = time.perf_counter()
    c = predictor.context_frames
    horizon = protocol.horizon or predictor.chunk_frames
    stride = protocol.stride or horizon
    length = c + horizon
    model_rate = float(predictor.frame_rate_hz)

    # Peek at the first frames for the source rate, then put them back in front of the stream.
    it = iter(as_frame(f) for f in frames)
    head = list(islice(it, 32))
    if not head:
        raise EvalError("no frames to evaluate (the source yielded none)")
    src_dt, step, period = frame_spacing([f.stamp_ns for f in head], protocol.frame_step, model_rate)
    warnings: list[str] = []
    if math.isfinite(src_dt):
        eff_rate = 1e9 / period
        if abs(eff_rate - model_rate) > 0.1 * model_rate:
            warnings.append(f"frames are spaced at {eff_rate:.2f} Hz (source {1e9 / src_dt:.2f} Hz, frame step "
                            f"{step}) but the model was trained at {model_rate:g} Hz; forecasts may suffer")
    else:
        eff_rate = math.nan
        warnings.append("cannot tell the frame rate (fewer than 2 distinct stamps); frame step 1")

    methods = [MODEL] + list(protocol.baselines) + ([CEILING] if protocol.resize_ceiling else [])
    if metric_models is None:
        # Don't load I3D when no window is long enough for a 16-frame clip (the scorer says why).
        wants_fvd = protocol.fvd and bool(fvd_chunks(length))
        metric_models = load_metric_models(dataclasses.replace(protocol, fvd=wants_fvd))
        if protocol.fvd and not wants_fvd:
            metric_models[2].pop("fvd", None)
    lp, i3d, unavailable = metric_models
    scorer = WindowScorer(horizon, c, protocol.scenarios, methods, predictor.config.depth, lp, i3d, unavailable)
    model = ModelForecaster(predictor)
    baselines = {"copy_last": CopyLast(c), "const_velocity": ConstantVelocity(c)}

    counts = {"source_frames": 0, "picked_frames": 0, "windows_evaluated": 0, "windows_skipped_gap": 0}

    def counted(src):
        for f in src:
            counts["source_frames"] += 1
            yield f

    def picked(src):
        for f in src:
            counts["picked_frames"] += 1
            yield f

    stream = picked(pick_frames(counted(chain(head, it)), period, src_dt))
    total = None
    if total_frames_hint:
        total = max(0, (total_frames_hint // step - length) // stride + 1)
        if protocol.max_windows:
            total = min(total, protocol.max_windows)
    bar = tqdm(total=total, desc="eval windows", unit="win", disable=not progress)
    animation = None
    model_times: list[float] = []
    try:
        for stamps, win in evaluated_windows(stream, length, stride, period, protocol.gap_tolerance,
                                             protocol.max_windows, counts):
            index = counts["windows_evaluated"]
            seed = protocol.seed + index
            shapes = {(f.rgb.shape, np.shape(f.depth)) for f in win}
            if len(shapes) != 1:
                raise EvalError(f"frame sizes change inside the window ending at stamp {stamps[-1]} ns: "
                                f"{sorted(shapes)}; evaluate each resolution separately")
            rgb = np.stack([f.rgb for f in win])
            dep = np.stack([np.asarray(f.depth, dtype=np.float32) for f in win])
            ctx_rgb, ctx_dep, fut_rgb, fut_dep = rgb[:c], dep[:c], rgb[c:], dep[c:]
            if forecast_source is not None:
                forecasts = forecast_source(index, ctx_rgb, ctx_dep, seed)
            else:
                ceiling = (resize_ceiling(fut_rgb, fut_dep, tuple(predictor.resolution))
                           if protocol.resize_ceiling else None)
                forecasts = {}
                for scenario in protocol.scenarios:
                    cr = None if scenario == "depth_only" else ctx_rgb
                    cd = None if scenario == "rgb_only" else ctx_dep
                    by_method: dict[str, Forecast | None] = {}
                    torch.manual_seed(seed)
                    t0 = time.perf_counter()
                    try:
                        if model_source is not None:
                            by_method[MODEL] = model_source(index, scenario, stamps, seed)
                        else:
                            by_method[MODEL] = model.predict(cr, cd, horizon, protocol.steps, seed)
                            model_times.append(time.perf_counter() - t0)
                    except ValueError as e:  # PredictorError: e.g. a context depth frame that is all holes
                        by_method[MODEL] = None
                        scorer.fail(scenario, MODEL, str(e))
                    for name in protocol.baselines:
                        by_method[name] = baselines[name].predict(cr, cd, horizon)
                    if ceiling is not None:
                        by_method[CEILING] = ceiling
                    forecasts[scenario] = by_method
            scorer.score(ctx_rgb, ctx_dep, fut_rgb, fut_dep, forecasts)
            if index == protocol.animate_window:
                animation = {"ctx_rgb": ctx_rgb, "ctx_depth": ctx_dep, "fut_rgb": fut_rgb, "fut_depth": fut_dep,
                             "forecasts": forecasts, "stamp_ns": int(stamps[c - 1]), "index": index}
            counts["windows_evaluated"] += 1
            bar.update(1)
    finally:
        bar.close()

    if counts["windows_evaluated"] == 0:
        need = length * step
        raise EvalError(
            f"no window could be evaluated: {counts['source_frames']} synchronised frames, "
            f"{counts['picked_frames']} after spacing them at the model rate (frame step {step}); one window "
            f"needs {length} picked frames (~{need} source frames: {c} context + {horizon} future)"
            + (f"; {counts['windows_skipped_gap']} window(s) skipped for gaps" if counts["windows_skipped_gap"]
               else ""))
    desc = model_description(predictor)
    proto = {
        "kind": "eval-bag",
        "source": {k: v for k, v in (source or {}).items() if k != "path"},
        "source_path": (source or {}).get("path"),
        "model": desc,
        "context_frames": c,
        "horizon": horizon,
        "stride": stride,
        "frame_step": step,
        "frame_step_auto": protocol.frame_step is None,
        "source_rate_hz": None if not math.isfinite(src_dt) else 1e9 / src_dt,
        "effective_rate_hz": None if not math.isfinite(eff_rate) else eff_rate,
        "gap_tolerance": protocol.gap_tolerance,
        "max_windows": protocol.max_windows,
        "steps": protocol.steps or desc["default_steps"],
        "eta": desc["eta"],
        "seed": protocol.seed,
        "seed_rule": "window i uses seed + i for every scenario",
        "trajectories": 1,
        "aggregation": "mean over windows per horizon step (each window weighs the same)",
        "scenarios": list(protocol.scenarios),
        "methods": methods,
        "resolution": "sensor (predictions resized back to the bag's image size)",
        "metric_assets": _metric_assets(),
        "fvd_protocol": {"clip_frames": FVD_CLIP, "features": "I3D Kinetics-400 logits (400-d)",
                         "resize": "bilinear 224x224, no crop", "includes_context_frames": True,
                         "depth_as": "normalised depth (config depth mapping) as 3-channel grey"},
    }
    # Recorded, not hashed: results are bit-identical for one thread count; another count changes the
    # floating-point summation order (differences ~1e-4 in the metrics).
    proto["runtime"] = {"torch": torch.__version__, "torch_threads": torch.get_num_threads(),
                        "device": str(getattr(predictor, "device", "cpu"))}
    proto["hash"] = protocol_hash(proto)
    elapsed = time.perf_counter() - t_start
    timing = {"total_s": elapsed,
              "model_predict_s_mean": float(np.mean(model_times)) if model_times else None,
              "model_predict_calls": len(model_times)}
    return EvalResult(proto, scorer.summary(), scorer.fvd(), counts, timing, animation, warnings)


def evaluate_bag(path: str, predictor: Any, protocol: EvalProtocol | None = None, topics: Any = None,
                 slop_s: float = 0.02, progress: bool = True,
                 metric_models: tuple[Any, Any, dict[str, str]] | None = None,
                 model_source: Callable[..., Forecast] | None = None) -> EvalResult:
    """:func:`evaluate_frames` over a bag read (streamed) by :func:`syncvp_core.data.bag.read_rgbd_bag`
    (``model_source``: see :func:`evaluate_frames`)."""
    from ..data.bag import read_rgbd_bag

    reader = read_rgbd_bag(path, topics=topics, slop_s=slop_s)
    info = reader.info
    source = {
        "path": str(path),
        "bag": str(getattr(info, "path", path)).rstrip("/").rsplit("/", 1)[-1],
        "storage": info.storage,
        "message_count": info.message_count,
        "duration_s": info.duration_s,
        "topics": asdict(reader.topics),
        "slop_s": slop_s,
    }
    hint = min(info.topics[reader.topics.color].count, info.topics[reader.topics.depth].count)
    result = evaluate_frames(reader, predictor, protocol, source, progress, hint, metric_models,
                             model_source=model_source)
    result.warnings.extend(reader.warnings)
    if reader.stats is not None:
        result.counts["sync"] = reader.stats.summary() if hasattr(reader.stats, "summary") else str(reader.stats)
    return result
