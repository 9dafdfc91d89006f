"""Scoring forecasts against the real future: per-horizon metrics per (scenario, method), FVD features,
and extra metric blocks.

Every number is computed at the sensor resolution on the frames as recorded. A metric that cannot be
computed (weights missing, frames too small, a modality the method never saw) is recorded with its
reason, never as a made-up number.

Adding a metric block (e.g. uncertainty calibration): write a class with ``name``,
``update(window, forecasts)`` and ``summary() -> dict`` (:class:`MetricBlock`) and pass it to
:func:`~.replay.evaluate_frames` in ``blocks``; its summary lands in metrics.json under ``blocks.<name>``
and as a section of report.md.
"""
from __future__ import annotations

import dataclasses
from typing import Any, Protocol

import numpy as np
import torch

from .. import depth as depth_norm
from ..pretrained import WeightsUnavailable
from .baselines import Forecast
from .methods import CEILING
from .metrics import DEPTH_METRICS, RGB_METRICS, HorizonStats, depth_errors, psnr, ssim
from .protocol import FVD_CLIP, EvalError, EvalProtocol
from .windows import Window

Forecasts = dict[str, dict[str, Forecast | None]]  # scenario -> method -> forecast (None: it failed)


class MetricBlock(Protocol):
    """An extra section of the results that sees every scored window (see the module docstring)."""

    name: str

    def update(self, window: Window, forecasts: Forecasts) -> None: ...

    def summary(self) -> dict: ...


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

    def score(self, window: Window, forecasts: Forecasts) -> None:
        """Score one window. ``forecasts[scenario][method]`` (None = the method failed on this window)."""
        self.windows += 1
        fut_rgb = window.fut_rgb
        self._check_lpips_size(fut_rgb)
        gt_feats = None
        if self.lpips is not None:
            with torch.no_grad():
                gt_feats = self.lpips.features(self.lpips.to_input(fut_rgb))
        use_fvd = self.i3d is not None and bool(self.chunks)
        if use_fvd:
            self._real_fvd_features(window)
        for scenario, by_method in forecasts.items():
            for method, fc in by_method.items():
                if fc is not None:
                    self._score_forecast(scenario, method, fc, window, gt_feats)
                    if use_fvd and method != CEILING:
                        self._fvd_features(scenario, method, fc, window.ctx_rgb, window.ctx_depth)

    def _check_lpips_size(self, fut_rgb: np.ndarray) -> None:
        if self.lpips is not None and min(fut_rgb.shape[1:3]) < self.lpips.min_size:
            self.unavailable["lpips"] = (f"frames of {fut_rgb.shape[1]}x{fut_rgb.shape[2]} are smaller than "
                                         f"AlexNet's minimum of {self.lpips.min_size} px")
            self.lpips = None

    def _real_fvd_features(self, window: Window) -> None:
        from .fvd import depth_to_video

        real_rgb = np.concatenate([window.ctx_rgb, window.fut_rgb])
        real_dep = np.concatenate([window.ctx_depth, window.fut_depth])
        self.features.setdefault(("real", "real", "rgb"), []).append(self._clip_features(real_rgb))
        self.features.setdefault(("real", "real", "depth"), []).append(
            self._clip_features(depth_to_video(self._depth_unit(real_dep))))

    def _score_forecast(self, scenario: str, method: str, fc: Forecast, window: Window, gt_feats: Any) -> None:
        if fc.rgb is None:
            self.na[(scenario, method, "rgb")] = "cannot forecast colour without a colour context"
        else:
            self._score_rgb(scenario, method, fc.rgb, window.fut_rgb, gt_feats)
        if fc.depth is None:
            self.na[(scenario, method, "depth")] = "cannot forecast depth without a depth context"
        else:
            for name, vals in depth_errors(fc.depth, window.fut_depth).items():
                self._add(scenario, method, name, vals)

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
                for metric in RGB_METRICS + DEPTH_METRICS:
                    modality = "rgb" if metric in RGB_METRICS else "depth"
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


def load_metric_models(protocol: EvalProtocol, device: str = "cpu") -> tuple[Any, Any, dict[str, str]]:
    """LPIPS and I3D models, or None with the reason (never a fake number)."""
    from .fvd import I3D
    from .lpips import LPIPS

    unavailable: dict[str, str] = {}

    def load(metric: str, enabled: bool, network: Any) -> Any:
        if not enabled:
            unavailable[metric] = f"disabled (--no-{metric})"
            return None
        try:
            return network.pretrained(device)
        except WeightsUnavailable as e:
            unavailable[metric] = str(e)
            return None

    return load("lpips", protocol.lpips, LPIPS), load("fvd", protocol.fvd, I3D), unavailable


def metric_models_for(protocol: EvalProtocol, window_length: int) -> tuple[Any, Any, dict[str, str]]:
    """:func:`load_metric_models`, but without loading I3D when no window is long enough for a 16-frame
    clip (the scorer then says why FVD is missing)."""
    wants_fvd = protocol.fvd and bool(fvd_chunks(window_length))
    lp, i3d, unavailable = load_metric_models(dataclasses.replace(protocol, fvd=wants_fvd))
    if protocol.fvd and not wants_fvd:
        unavailable.pop("fvd", None)
    return lp, i3d, unavailable
