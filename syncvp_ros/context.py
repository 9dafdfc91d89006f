"""The node's context window: the last N frames, spaced at the model's frame interval. ROS-free.

The model was trained on frames ``1 / frame_rate_hz`` apart; a camera usually runs faster (RealSense 30 Hz
vs a 10 Hz model). Two spacing policies, chosen by ``context_stride``:

* ``stride = 0`` (by stamps): a frame is kept when its stamp is at least ``interval - period / 2`` after
  the last kept one, where ``period`` is the measured input period. Taking half a period off keeps the
  average spacing at ``interval`` instead of rounding it up to the next whole input period (30 Hz in,
  10 Hz model: every third frame, 100 ms apart, not 133 ms). Inputs slower than the model rate keep
  every frame (the spacing is then wider than the model saw in training).
* ``stride = N``: every N-th offered frame, whatever the stamps.

Output stamps use the spacing actually measured in the window (``dt``), so prediction ``h_k`` is stamped
``newest + k * dt`` and lines up with the real frame that arrives then.

Frames may carry one modality only (guidance mode while a sensor is out). A frame with the same stamp as
the newest is merged into it (a colour-only frame that later found its depth partner). Stamps going
backwards by more than ``backwards_tolerance`` (a looping bag, a restarted driver), a gap longer than
``gap_factor`` intervals or a change of image size reset the window: the context must be contiguous.
"""
from __future__ import annotations

import statistics
from collections import deque
from dataclasses import dataclass

from syncvp_core.data.frames import RGBDFrame

# Result of ContextBuffer.push (strings, so they read well in logs and tests).
ACCEPTED = "accepted"  # appended as the newest frame
MERGED = "merged"  # same stamp as the newest frame: missing modality filled in
SKIPPED = "skipped"  # too close to the newest frame for the spacing policy
OUT_OF_ORDER = "out_of_order"  # slightly older than the newest frame (within tolerance): dropped
RESET_BACKWARDS = "reset_backwards"  # stamps jumped back: window cleared, frame kept as the first
RESET_GAP = "reset_gap"  # too long since the newest frame: window cleared, frame kept
RESET_SHAPE = "reset_shape"  # image size changed: window cleared, frame kept
RESETS = (RESET_BACKWARDS, RESET_GAP, RESET_SHAPE)
CHANGED = (ACCEPTED, MERGED, *RESETS)  # results after which the window may be ready for a prediction


@dataclass
class Window:
    """What a prediction needs: the context frames and the stamps of the outputs."""

    frames: list[RGBDFrame]
    dt_ns: int  # measured spacing of the context frames

    @property
    def newest_ns(self) -> int:
        return self.frames[-1].stamp_ns

    def output_stamps(self, horizon: int) -> list[int]:
        return output_stamps(self.newest_ns, self.dt_ns, horizon)


def output_stamps(newest_ns: int, dt_ns: int, horizon: int) -> list[int]:
    """Target stamps of predictions h1..hK: ``newest + k * dt`` (never ``now()``)."""
    return [newest_ns + k * dt_ns for k in range(1, horizon + 1)]


class ContextBuffer:
    def __init__(self, length: int, interval_s: float, stride: int = 0, gap_factor: float = 3.0,
                 backwards_tolerance_s: float = 0.05):
        if length < 1:
            raise ValueError(f"context length must be >= 1, got {length}")
        if interval_s <= 0:
            raise ValueError(f"context interval must be > 0 s, got {interval_s}")
        if stride < 0:
            raise ValueError(f"context_stride must be >= 0, got {stride}")
        self.length = length
        self.interval_ns = int(round(interval_s * 1e9))
        self.stride = stride
        self.gap_factor = gap_factor
        self.backwards_tolerance_ns = int(round(backwards_tolerance_s * 1e9))
        self._frames: deque[RGBDFrame] = deque(maxlen=length)
        self._offered_since_kept = 0
        self._last_offered_ns: int | None = None
        self._periods: deque[int] = deque(maxlen=15)
        self.resets = {RESET_BACKWARDS: 0, RESET_GAP: 0, RESET_SHAPE: 0}

    # ------------------------------------------------------------------ state
    def __len__(self) -> int:
        return len(self._frames)

    @property
    def newest(self) -> RGBDFrame | None:
        return self._frames[-1] if self._frames else None

    @property
    def input_period_ns(self) -> int:
        """Median spacing of the offered frames (0 until two were seen)."""
        return int(statistics.median(self._periods)) if self._periods else 0

    def reset(self) -> None:
        self._frames.clear()
        self._offered_since_kept = 0
        self._last_offered_ns = None
        self._periods.clear()

    # ------------------------------------------------------------------ input
    def push(self, frame: RGBDFrame) -> str:
        """Offer a frame; returns one of the result constants above."""
        newest = self.newest
        if newest is not None and frame.stamp_ns == newest.stamp_ns:
            if frame.size != newest.size:
                return self._restart(frame, RESET_SHAPE)
            if frame.rgb is not None:
                newest.rgb = frame.rgb
            if frame.depth is not None:
                newest.depth = frame.depth
            return MERGED
        if newest is None:
            return self._keep(frame, ACCEPTED)
        if frame.stamp_ns < newest.stamp_ns:
            if newest.stamp_ns - frame.stamp_ns <= self.backwards_tolerance_ns:
                return OUT_OF_ORDER
            return self._restart(frame, RESET_BACKWARDS)
        if frame.size != newest.size:
            return self._restart(frame, RESET_SHAPE)
        elapsed = frame.stamp_ns - newest.stamp_ns
        if elapsed > self.gap_factor * max(self.interval_ns, self.input_period_ns * max(self.stride, 1)):
            return self._restart(frame, RESET_GAP)
        if self._last_offered_ns is not None and frame.stamp_ns > self._last_offered_ns:
            self._periods.append(frame.stamp_ns - self._last_offered_ns)
        self._last_offered_ns = frame.stamp_ns
        self._offered_since_kept += 1
        if self.stride >= 1:
            if self._offered_since_kept < self.stride:
                return SKIPPED
        elif elapsed < self.interval_ns - self.input_period_ns // 2:
            return SKIPPED
        return self._keep(frame, ACCEPTED)

    def _keep(self, frame: RGBDFrame, result: str) -> str:
        self._frames.append(frame)
        self._offered_since_kept = 0
        self._last_offered_ns = frame.stamp_ns
        return result

    def _restart(self, frame: RGBDFrame, reason: str) -> str:
        self.resets[reason] += 1
        self.reset()
        return self._keep(frame, reason)

    # ------------------------------------------------------------------ output
    def window(self, need_rgb: bool, need_depth: bool) -> Window | None:
        """The full window when every frame has the needed modalities, else None."""
        if len(self._frames) < self.length:
            return None
        frames = list(self._frames)
        if not all(f.has(need_rgb, need_depth) for f in frames):
            return None
        return Window(frames, self.measured_dt_ns())

    def measured_dt_ns(self) -> int:
        """Median spacing of the kept frames; the target interval until two frames are kept."""
        stamps = [f.stamp_ns for f in self._frames]
        diffs = [b - a for a, b in zip(stamps, stamps[1:]) if b > a]
        return int(statistics.median(diffs)) if diffs else self.interval_ns
