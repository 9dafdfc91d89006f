"""Depth while the depth sensor is silent: forecast from the last context that had both sensors.

Colour alone says little about metric depth: the shipped model's depth inferred from colour is far off on
real scenes (AbsRel 2.3 on the held-out tails, MODEL_CARD.md). Most depth dropouts are short (IR
interference, a USB hiccup, sunlight), and the frames just before one carry the scene's depth. So while
depth is out, the depth of each output stamp is read from ONE forecast made from the newest synced
context, ``age + k`` frames ahead of it, where ``age`` is how long depth has been out: a full-mode forecast
at a longer horizon, the model's best depth (measured in ``bench/depth_hold.py``). Colour still comes from
the current colour frames. Past ``max_age_s`` the held context is too old to trust and the caller falls back
to depth inferred from colour.

One forecast per held context, extended a chunk at a time as the dropout ages, so a prediction during a
dropout costs its colour forecast plus, every chunk's worth of frames, one more chunk. ROS-free: the node
and the evaluation use it alike.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

# forecast(context_rgb, context_depth, horizon) -> rgb (T, H, W, 3), depth (T, H, W) metres, and with several
# samples their depth (N, T, H, W) and per-pixel std (T, H, W) (syncvp_core.spread), else None, None
Forecast = Callable[[np.ndarray, np.ndarray, int], tuple]


@dataclass
class HeldDepth:
    """Depth for the requested stamps, and how old the context it came from is."""

    depth: np.ndarray  # (K, H, W) float32 metres
    samples: np.ndarray | None  # (N, K, H, W) when the forecast drew several samples
    std: np.ndarray | None  # (K, H, W) their per-pixel std
    age_s: float  # newest colour stamp minus the held context's newest stamp
    frames_ahead: list[int]  # per output: how many model frames past the held context it is


@dataclass(frozen=True)
class _Context:
    rgb: np.ndarray  # (C, H, W, 3) uint8
    depth: np.ndarray  # (C, H, W) metres
    newest_ns: int
    dt_ns: int


@dataclass
class _Forecast:
    """The held context's forecast so far, frames 1..len (lists of per-call arrays, concatenated on use)."""

    of: _Context
    parts: list[tuple] = field(default_factory=list)  # forecast() results, in time order

    def __len__(self) -> int:
        return sum(len(p[1]) for p in self.parts)

    def frames(self, which: int) -> np.ndarray | None:
        got = [p[which] for p in self.parts]
        return None if got[0] is None else np.concatenate(got, axis=1 if which == 2 else 0)


class DepthHold:
    """The newest synced context and its forecast. Safe to ``remember`` from one thread while another calls
    ``depth_for``: the context is replaced as one object, and a forecast is only used for the context it
    was made from.

    The forecast grows on demand by ``step_frames`` (the model's chunk) at a time, each extension forecast
    from the last frames of the forecast so far, as the predictor's own autoregressive rollout does: a
    dropout costs one extra chunk every ``step_frames`` predictions, not one long forecast up front.
    """

    def __init__(self, max_age_s: float, step_frames: int = 8):
        if not max_age_s >= 0:
            raise ValueError(f"depth hold max_age_s must be >= 0, got {max_age_s}")
        if step_frames < 1:
            raise ValueError(f"depth hold step_frames must be >= 1, got {step_frames}")
        self.max_age_s = float(max_age_s)
        self.step_frames = int(step_frames)
        self._ctx: _Context | None = None
        self._forecast: _Forecast | None = None
        self.forecasts = 0  # forecast calls made (the first of a dropout and each extension)

    @property
    def enabled(self) -> bool:
        return self.max_age_s > 0

    def remember(self, rgb: np.ndarray, depth: np.ndarray, newest_ns: int, dt_ns: int) -> None:
        """The newest context with both sensors: (C, H, W, 3) uint8, (C, H, W) metres, its spacing."""
        if dt_ns <= 0:
            raise ValueError(f"context spacing must be > 0 ns, got {dt_ns}")
        self._ctx = _Context(rgb, depth, int(newest_ns), int(dt_ns))

    def forget(self) -> None:
        self._ctx = None

    def age_s(self, newest_ns: int) -> float | None:
        """Seconds from the held context to ``newest_ns``; None when nothing is held."""
        ctx = self._ctx
        return None if ctx is None else (int(newest_ns) - ctx.newest_ns) * 1e-9

    def usable(self, newest_ns: int, size: tuple[int, int]) -> bool:
        """Whether depth for a context ending at ``newest_ns`` with images of ``size`` may come from here."""
        ctx = self._ctx
        if not self.enabled or ctx is None:
            return False
        age = (int(newest_ns) - ctx.newest_ns) * 1e-9
        return 0 <= age <= self.max_age_s and tuple(ctx.depth.shape[1:3]) == tuple(size)

    def depth_for(self, stamps_ns: list[int], newest_ns: int, forecast: Forecast) -> HeldDepth | None:
        """Depth at ``stamps_ns``, the output stamps of a context ending at ``newest_ns``; None when
        nothing is held (``usable`` says whether it should be used)."""
        ctx = self._ctx
        if ctx is None:
            return None
        ahead = [max(1, round((int(s) - ctx.newest_ns) / ctx.dt_ns)) for s in stamps_ns]
        fc = self._forecast if self._forecast is not None and self._forecast.of is ctx else _Forecast(ctx)
        c = len(ctx.rgb)
        while len(fc) < max(ahead):
            rgb = ctx.rgb if not fc.parts else np.concatenate([ctx.rgb, fc.frames(0)])[-c:]
            depth = ctx.depth if not fc.parts else np.concatenate([ctx.depth, fc.frames(1)])[-c:]
            n = -(-(max(ahead) - len(fc)) // self.step_frames) * self.step_frames  # whole chunks
            fc.parts.append(tuple(forecast(rgb, depth, n)))
            self.forecasts += 1
        self._forecast = fc
        i = np.asarray(ahead) - 1
        samples, std = fc.frames(2), fc.frames(3)
        return HeldDepth(fc.frames(1)[i], None if samples is None else samples[:, i],
                         None if std is None else std[i], (int(newest_ns) - ctx.newest_ns) * 1e-9, ahead)
