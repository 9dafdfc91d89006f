"""Streaming replay evaluation: slide over synchronised RGB-D frames, forecast, score per horizon step.

The window loop. It is source-agnostic: :func:`evaluate_frames` takes any iterable of frames (objects with
``stamp_ns``, ``rgb`` uint8 (H, W, 3), ``depth`` float32 metres (H, W), e.g. the bag reader's
:class:`~syncvp_core.data.frames.RGBDFrame`, or plain ``(stamp_ns, rgb, depth)`` tuples), so the bag part
(:func:`evaluate_bag`) is a thin adapter. The pieces, each in its module (docs/evaluation.md has the
protocol in full):

* :mod:`.windows` — frame spacing at the model rate (picked by time), windows, gap skipping;
* :mod:`.methods` — the rows: model, baselines (a registry), resize ceiling;
* :mod:`.scoring` — per-horizon metrics, FVD, extra metric blocks;
* :mod:`.protocol` — the options, the record written to metrics.json and its hash.

Window *i* uses seed ``seed + i`` for every scenario (common random numbers).

Online replay (``--online``, through the ROS node, registered by the ``syncvp_ros`` package) reuses all of
this: :func:`~.windows.plan_windows` tells the player which frames the windows are made of, and the node's
published forecasts replace the model row through the ``model`` argument of :func:`evaluate_frames` (a
:class:`~.methods.Method`); baselines and scoring stay the same code.
"""
from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import torch

from .baselines import Forecast
from .methods import MODEL, Baseline, Method, ModelForecaster, ResizeCeiling
from .metrics import METRIC_DEFINITIONS
from .protocol import FVD_PROTOCOL, EvalError, EvalProtocol, metric_assets, model_description, protocol_hash
from .scoring import Forecasts, MetricBlock, WindowScorer, metric_models_for
from .uncertainty import UncertaintyBlock
from .windows import Spacing, Window, WindowStream


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
    blocks: dict[str, dict] = field(default_factory=dict)  # extra metric blocks' summaries, by name

    def to_json(self) -> dict:
        out = {"protocol": self.protocol, "protocol_hash": self.protocol["hash"], "results": self.results,
               "fvd": self.fvd, "counts": self.counts, "timing": self.timing, "warnings": self.warnings,
               "metric_definitions": METRIC_DEFINITIONS}
        if self.online is not None:
            out["online"] = self.online
        if self.blocks:
            out["blocks"] = self.blocks
        return out


def _rate_warnings(spacing: Spacing, model_rate: float) -> list[str]:
    if not spacing.known:
        return ["cannot tell the frame rate (fewer than 2 distinct stamps); frame step 1"]
    eff = spacing.effective_rate_hz
    if abs(eff - model_rate) > 0.1 * model_rate:
        return [f"frames are spaced at {eff:.2f} Hz (source {1e9 / spacing.source_interval_ns:.2f} Hz, frame "
                f"step {spacing.frame_step}) but the model was trained at {model_rate:g} Hz; forecasts may suffer"]
    return []


def _forecast_window(window: Window, scenarios: tuple[str, ...], methods: list[Method],
                     scorer: WindowScorer, model_times: list[float] | None) -> Forecasts:
    """Every method in every scenario; a method raising ValueError (e.g. PredictorError: a context depth
    frame that is all holes) fails this window for that row, with its message."""
    forecasts: Forecasts = {}
    for scenario in scenarios:
        by_method: dict[str, Forecast | None] = {}
        torch.manual_seed(window.seed)
        for m in methods:
            t0 = time.perf_counter()
            try:
                by_method[m.name] = m.forecast(window, scenario)
            except ValueError as e:
                if m.name != MODEL:
                    raise
                by_method[m.name] = None
                scorer.fail(scenario, m.name, str(e))
                continue
            if m.name == MODEL and model_times is not None:
                model_times.append(time.perf_counter() - t0)
        forecasts[scenario] = by_method
    return forecasts


def _no_window_error(stream: WindowStream, context: int, horizon: int) -> EvalError:
    c, step = stream.counts, stream.spacing.frame_step
    length = context + horizon
    gaps = c["windows_skipped_gap"]
    return EvalError(
        f"no window could be evaluated: {c['source_frames']} synchronised frames, {c['picked_frames']} after "
        f"spacing them at the model rate (frame step {step}); one window needs {length} picked frames "
        f"(~{length * step} source frames: {context} context + {horizon} future)"
        + (f"; {gaps} window(s) skipped for gaps" if gaps else ""))


def _protocol_record(protocol: EvalProtocol, predictor: Any, stream: WindowStream, horizon: int, stride: int,
                     methods: list[str], source: dict | None) -> dict:
    desc = model_description(predictor)
    sp = stream.spacing
    proto = {
        "kind": "eval-bag",
        "source": {k: v for k, v in (source or {}).items() if k != "path"},
        "source_path": (source or {}).get("path"),
        "model": desc,
        "context_frames": predictor.context_frames,
        "horizon": horizon,
        "stride": stride,
        "frame_step": sp.frame_step,
        "frame_step_auto": protocol.frame_step is None,
        "source_rate_hz": 1e9 / sp.source_interval_ns if sp.known else None,
        "effective_rate_hz": sp.effective_rate_hz if sp.known else None,
        "gap_tolerance": protocol.gap_tolerance,
        "max_windows": protocol.max_windows,
        "steps": protocol.steps or desc["default_steps"],
        "eta": desc["eta"],
        "seed": protocol.seed,
        "seed_rule": "window i uses seed + i for every scenario",
        "trajectories": protocol.num_samples,  # > 1: the model row is the mean of that many samples
        "aggregation": "mean over windows per horizon step (each window weighs the same)",
        "scenarios": list(protocol.scenarios),
        "methods": methods,
        "resolution": "sensor (predictions resized back to the bag's image size)",
        "metric_assets": metric_assets(),
        "fvd_protocol": FVD_PROTOCOL,
    }
    # Recorded, not hashed: results are bit-identical for one thread count; another count changes the
    # floating-point summation order (differences ~1e-4 in the metrics).
    proto["runtime"] = {"torch": torch.__version__, "torch_threads": torch.get_num_threads(),
                        "device": str(getattr(predictor, "device", "cpu"))}
    proto["hash"] = protocol_hash(proto)
    return proto


def _progress_total(hint: int | None, stream: WindowStream, protocol: EvalProtocol) -> int | None:
    if not hint:
        return None
    total = max(0, (hint // stream.spacing.frame_step - stream.length) // stream.stride + 1)
    return min(total, protocol.max_windows) if protocol.max_windows else total


def evaluate_frames(frames: Iterable[Any], predictor: Any, protocol: EvalProtocol | None = None, *,
                    source: dict | None = None, progress: bool = True, total_frames_hint: int | None = None,
                    metric_models: tuple[Any, Any, dict[str, str]] | None = None, model: Method | None = None,
                    blocks: Iterable[MetricBlock] = ()) -> EvalResult:
    """Evaluate the model and the baselines on a stream of synchronised frames (see the module docstring).

    ``predictor`` gives the model's shape (context, chunk, rate, resolution) and runs the model row unless
    ``model`` replaces it (online replay: the node's forecasts). ``metric_models``: (LPIPS, I3D, reasons
    why missing), loaded when None. ``blocks``: extra metric blocks (:class:`~.scoring.MetricBlock`).
    """
    from tqdm import tqdm

    protocol = protocol or EvalProtocol()
    protocol.validate()
    t_start = time.perf_counter()
    c = predictor.context_frames
    horizon = protocol.horizon or predictor.chunk_frames
    stream = WindowStream(frames, c + horizon, protocol.stride or horizon, float(predictor.frame_rate_hz),
                          protocol.frame_step, protocol.gap_tolerance, protocol.max_windows)
    if stream.empty:
        raise EvalError("no frames to evaluate (the source yielded none)")
    warnings = _rate_warnings(stream.spacing, float(predictor.frame_rate_hz))
    rows: list[Method] = [model or ModelForecaster(predictor, horizon, protocol.steps, protocol.num_samples)]
    rows += [Baseline(name, c, horizon) for name in protocol.baselines]
    if protocol.resize_ceiling:
        rows.append(ResizeCeiling(tuple(predictor.resolution)))
    methods = [m.name for m in rows]
    lp, i3d, unavailable = metric_models or metric_models_for(protocol, c + horizon)
    scorer = WindowScorer(horizon, c, protocol.scenarios, methods, predictor.config.depth, lp, i3d, unavailable)
    blocks = list(blocks)
    if protocol.num_samples > 1 and model is None:
        blocks.append(UncertaintyBlock(horizon, protocol.num_samples, protocol.seed))
    model_times: list[float] | None = [] if model is None else None
    animation = None
    bar = tqdm(total=_progress_total(total_frames_hint, stream, protocol), desc="eval windows", unit="win",
               disable=not progress)
    try:
        for stamps, frames_ in stream:
            index = stream.counts["windows_evaluated"]
            window = Window.stack(index, protocol.seed + index, stamps, frames_, c)
            forecasts = _forecast_window(window, protocol.scenarios, rows, scorer, model_times)
            scorer.score(window, forecasts)
            for block in blocks:
                block.update(window, forecasts)
            if index == protocol.animate_window:
                animation = {"ctx_rgb": window.ctx_rgb, "ctx_depth": window.ctx_depth, "fut_rgb": window.fut_rgb,
                             "fut_depth": window.fut_depth, "forecasts": forecasts,
                             "stamp_ns": int(stamps[c - 1]), "index": index}
            bar.update(1)
    finally:
        bar.close()
    if stream.counts["windows_evaluated"] == 0:
        raise _no_window_error(stream, c, horizon)
    proto = _protocol_record(protocol, predictor, stream, horizon, stream.stride, methods, source)
    timing = {"total_s": time.perf_counter() - t_start,
              "model_predict_s_mean": float(np.mean(model_times)) if model_times else None,
              "model_predict_calls": len(model_times or [])}
    return EvalResult(proto, scorer.summary(), scorer.fvd(), stream.counts, timing, animation, warnings,
                      blocks={b.name: b.summary() for b in blocks})


def evaluate_bag(path: str, predictor: Any, protocol: EvalProtocol | None = None, topics: Any = None,
                 slop_s: float = 0.02, progress: bool = True,
                 metric_models: tuple[Any, Any, dict[str, str]] | None = None, model: Method | None = None,
                 blocks: Iterable[MetricBlock] = ()) -> EvalResult:
    """:func:`evaluate_frames` over a bag read (streamed) by :func:`syncvp_core.data.bag.read_rgbd_bag`."""
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
    result = evaluate_frames(reader, predictor, protocol, source=source, progress=progress, total_frames_hint=hint,
                             metric_models=metric_models, model=model, blocks=blocks)
    result.warnings.extend(reader.warnings)
    if reader.stats is not None:
        result.counts["sync"] = reader.stats.summary() if hasattr(reader.stats, "summary") else str(reader.stats)
    return result

