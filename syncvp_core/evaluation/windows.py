"""Which frames an evaluation uses: spacing a stream at the model's frame rate and cutting it into windows.

Frames are picked by **time**, not by count (a dropped source frame does not shift the phase), windows of
``context + horizon`` picked frames start every ``stride`` picks, and a window across a recording gap is
skipped and counted. Only the current window is held in memory, so any stream length works. The offline
loop (:mod:`.replay`) and the online player's plan (:func:`plan_windows`) iterate the same
:class:`WindowStream`, so both always agree on the frames.
"""
from __future__ import annotations

import math
from collections import deque
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from itertools import chain, islice
from typing import Any

import numpy as np

from ..data.frames import RGBDFrame
from ..diffusion.guidance import Mode

HEAD_FRAMES = 32  # stamps looked at to measure the source rate


def as_frame(item: Any, images: bool = True) -> RGBDFrame:
    """An :class:`RGBDFrame` from a frame-like object or a ``(stamp_ns, rgb, depth)`` tuple; ``images=False``
    keeps the stamp only (planning needs no pixels)."""
    if isinstance(item, tuple):
        stamp, rgb, dep = item[:3]
    else:
        stamp, rgb, dep = item.stamp_ns, item.rgb, item.depth
    return RGBDFrame(int(stamp), rgb if images else None, dep if images else None)


def median_interval_ns(stamps: list[int]) -> float:
    d = np.diff(np.asarray(stamps, dtype=np.int64))
    d = d[d > 0]
    return float(np.median(d)) if d.size else math.nan


def auto_frame_step(source_interval_ns: float, model_rate_hz: float) -> int:
    if not math.isfinite(source_interval_ns) or source_interval_ns <= 0:
        return 1
    return max(1, int(round((1e9 / source_interval_ns) / model_rate_hz)))


@dataclass(frozen=True)
class Spacing:
    source_interval_ns: float  # median stamp interval of the stream's first frames (NaN: unknown)
    frame_step: int  # picked frames are this many source intervals apart
    period_ns: float  # frame_step * source interval (0: unknown, every frame is picked)

    @classmethod
    def measure(cls, head_stamps: list[int], frame_step: int | None, model_rate_hz: float) -> Spacing:
        src_dt = median_interval_ns(head_stamps)
        step = frame_step or auto_frame_step(src_dt, model_rate_hz)
        return cls(src_dt, step, step * src_dt if math.isfinite(src_dt) else 0.0)

    @property
    def known(self) -> bool:
        return math.isfinite(self.source_interval_ns)

    @property
    def effective_rate_hz(self) -> float:
        return 1e9 / self.period_ns if self.known else math.nan


def pick_frames(frames: Iterable[Any], period_ns: float, source_interval_ns: float) -> Iterator[Any]:
    """Frames spaced by about ``period_ns``: a frame is kept when it is at least ``period_ns`` minus half
    a source interval after the last kept one (selection by time, robust to dropped source frames)."""
    last: int | None = None
    slack = 0.5 * source_interval_ns if math.isfinite(source_interval_ns) else 0.0
    for f in frames:
        if last is None or f.stamp_ns - last >= period_ns - slack:
            last = f.stamp_ns
            yield f


def windows(frames: Iterable[Any], length: int, stride: int) -> Iterator[list[Any]]:
    """Sliding windows of ``length`` frames, one every ``stride`` frames; holds one window in memory."""
    buf: deque = deque(maxlen=length)
    since = stride  # the first full window is emitted at once
    for f in frames:
        buf.append(f)
        since += 1
        if len(buf) == length and since >= stride:
            since = 0
            yield list(buf)


class WindowStream:
    """The evaluated windows of a frame stream, as ``(stamps int64 array, frames)``, with the counts.

    ``counts``: source_frames, picked_frames, windows_evaluated, windows_skipped_gap (updated while
    iterating; a window counts as evaluated once the consumer asks for the next one or the stream ends).
    ``picked_stamps`` (with ``keep_picks``) lists every picked stamp seen.
    """

    def __init__(self, frames: Iterable[Any], length: int, stride: int, model_rate_hz: float,
                 frame_step: int | None = None, gap_tolerance: float = 1.5, max_windows: int | None = None,
                 images: bool = True, keep_picks: bool = False):
        it = (as_frame(f, images) for f in frames)
        head = list(islice(it, HEAD_FRAMES))  # peeked for the source rate, then put back in front
        self.spacing = Spacing.measure([f.stamp_ns for f in head], frame_step, model_rate_hz)
        self.length, self.stride = length, stride
        self.gap_tolerance, self.max_windows = gap_tolerance, max_windows
        self.empty = not head
        self.counts = {"source_frames": 0, "picked_frames": 0, "windows_evaluated": 0, "windows_skipped_gap": 0}
        self.picked_stamps: list[int] | None = [] if keep_picks else None
        self._frames = chain(head, it)

    def _counted(self, frames: Iterable[RGBDFrame], key: str) -> Iterator[RGBDFrame]:
        for f in frames:
            self.counts[key] += 1
            if key == "picked_frames" and self.picked_stamps is not None:
                self.picked_stamps.append(f.stamp_ns)
            yield f

    def __iter__(self) -> Iterator[tuple[np.ndarray, list[RGBDFrame]]]:
        sp = self.spacing
        picked = pick_frames(self._counted(self._frames, "source_frames"), sp.period_ns, sp.source_interval_ns)
        for win in windows(self._counted(picked, "picked_frames"), self.length, self.stride):
            if self.max_windows and self.counts["windows_evaluated"] >= self.max_windows:
                break
            stamps = np.array([f.stamp_ns for f in win], dtype=np.int64)
            if sp.period_ns > 0 and np.any(np.diff(stamps) > self.gap_tolerance * sp.period_ns):
                self.counts["windows_skipped_gap"] += 1
                continue
            yield stamps, win
            self.counts["windows_evaluated"] += 1


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
                 protocol: Any = None) -> WindowPlan:
    """The frame picks and windows the offline evaluation uses on the same stream (same
    :class:`WindowStream`); ``protocol`` an :class:`~.protocol.EvalProtocol` (None: its defaults)."""
    from .protocol import EvalProtocol

    protocol = protocol or EvalProtocol()
    stream = WindowStream(frames, context_frames + horizon, protocol.stride or horizon, model_rate_hz,
                          protocol.frame_step, protocol.gap_tolerance, protocol.max_windows, images=False,
                          keep_picks=True)
    wins = [[int(s) for s in stamps] for stamps, _ in stream]
    picked = stream.picked_stamps or []
    if wins:
        picked = [s for s in picked if s <= wins[-1][-1]]
    sp = stream.spacing
    return WindowPlan(picked, wins, context_frames, horizon, sp.frame_step, sp.period_ns, sp.source_interval_ns)


@dataclass
class Window:
    """One evaluated window, split into context and future (arrays stacked over time)."""
    index: int  # among the evaluated windows
    seed: int  # protocol seed + index, the same for every scenario (common random numbers)
    stamps: np.ndarray  # int64 ns, context + future
    ctx_rgb: np.ndarray  # uint8 (C, H, W, 3)
    ctx_depth: np.ndarray  # float32 metres (C, H, W)
    fut_rgb: np.ndarray  # uint8 (K, H, W, 3)
    fut_depth: np.ndarray  # float32 metres (K, H, W)

    @classmethod
    def stack(cls, index: int, seed: int, stamps: np.ndarray, frames: list[RGBDFrame], context: int) -> Window:
        from .protocol import EvalError

        shapes = {(f.rgb.shape, np.shape(f.depth)) for f in frames}
        if len(shapes) != 1:
            raise EvalError(f"frame sizes change inside the window ending at stamp {stamps[-1]} ns: "
                            f"{sorted(shapes)}; evaluate each resolution separately")
        rgb = np.stack([f.rgb for f in frames])
        dep = np.stack([np.asarray(f.depth, dtype=np.float32) for f in frames])
        return cls(index, seed, stamps, rgb[:context], dep[:context], rgb[context:], dep[context:])

    def context(self, scenario: str) -> tuple[np.ndarray | None, np.ndarray | None]:
        """The context a sensor scenario (a guidance mode) leaves: colour removed in depth_only, depth in
        rgb_only."""
        rgb, depth = Mode(scenario).needs
        return (self.ctx_rgb if rgb else None), (self.ctx_depth if depth else None)
