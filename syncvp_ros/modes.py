"""Which modalities condition the prediction: full, rgb_only, depth_only or none. ROS-free.

A modality is *present* while a usable frame of it arrived within ``timeout`` seconds. Unusable frames
(undecodable, mostly invalid depth) do not count as arrivals, so a sensor that keeps publishing garbage
drops out just like a silent one. The tracker starts with a grace period of one timeout from its
creation (activation), so start-up is not reported as a dropout.

``update(now)`` returns a :class:`Transition` only when the mode changes: callers log exactly that, so
every change is logged once, never every frame. Time comes from the caller (the node's clock, which
follows /clock under ``use_sim_time``); a clock jumping backwards (a looping bag) restarts the grace
period instead of producing negative ages. Time 0 means "clock not running yet" (sim time before the
first /clock message): a tracker created then starts its grace period at the first non-zero time.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from syncvp_core.diffusion.guidance import Mode

FULL, RGB_ONLY, DEPTH_ONLY, NONE = Mode.FULL, Mode.RGB_ONLY, Mode.DEPTH_ONLY, Mode.NONE
MODES = tuple(Mode)
MODALITIES = ("color", "depth")

# mode -> (needs colour, needs depth)
NEEDS: dict[str, tuple[bool, bool]] = {m: m.needs for m in Mode}


def depth_problem(depth: np.ndarray, invalid_threshold: float, color_hw: tuple[int, int] | None = None
                  ) -> tuple[str, str] | None:
    """``(kind, why)`` when a decoded depth frame cannot count as an arrival, else None.

    Mostly invalid pixels (NaN, 0, inf) above ``invalid_threshold``; or, given the size of the colour it
    should be registered to, another size: such depth never pairs, so it is missing, and after the
    timeout the node predicts from colour alone instead of staying in ``full`` with nothing out.
    """
    invalid = 1.0 - float(np.count_nonzero(np.isfinite(depth) & (depth > 0))) / max(depth.size, 1)
    if invalid > invalid_threshold:
        return "depth_invalid", f"{invalid:.0%} invalid pixels > depth_invalid_threshold {invalid_threshold}"
    if color_hw is not None and tuple(depth.shape[:2]) != tuple(color_hw):
        return "size_mismatch", (f"depth {depth.shape[1]}x{depth.shape[0]} differs from colour "
                                 f"{color_hw[1]}x{color_hw[0]}")
    return None


@dataclass(frozen=True)
class Transition:
    old: str
    new: str
    reason: str

    def __str__(self) -> str:
        return f"mode {self.old} -> {self.new}: {self.reason}"


class _Stream:
    def __init__(self, now_s: float):
        self.last_usable_s = now_s  # grace period: counts as "just arrived" at start
        self.seen_usable = False
        self.last_problem = ""  # why the latest unusable frame was unusable

    def age(self, now_s: float) -> float:
        return now_s - self.last_usable_s


class ModeTracker:
    def __init__(self, timeout_s: float, now_s: float, force: str = "auto"):
        self.timeout_s = timeout_s
        self.force = force
        self._start_s = now_s
        self._streams = {m: _Stream(now_s) for m in MODALITIES}
        self._mode = self._compute(now_s)
        self.dropouts = {m: 0 for m in MODALITIES}  # times each modality went missing
        self.transitions = 0

    @property
    def mode(self) -> str:
        return self._mode

    def _clock_started(self, now_s: float) -> None:
        if self._start_s <= 0 < now_s:
            self._start_s = now_s
            for s in self._streams.values():
                s.last_usable_s = max(s.last_usable_s, now_s)

    def record(self, modality: str, now_s: float, usable: bool, problem: str = "") -> None:
        self._clock_started(now_s)
        s = self._streams[modality]
        if now_s < s.last_usable_s:
            s.last_usable_s = now_s  # clock went backwards (sim time of a looping bag)
        if usable:
            s.last_usable_s = now_s
            s.seen_usable = True
            s.last_problem = ""
        else:
            s.last_problem = problem

    def present(self, modality: str, now_s: float) -> bool:
        self._clock_started(now_s)
        s = self._streams[modality]
        if now_s < s.last_usable_s:
            s.last_usable_s = now_s
        return s.age(now_s) <= self.timeout_s

    def _compute(self, now_s: float) -> str:
        color = self.present("color", now_s) and self.force != "depth_only"
        depth = self.present("depth", now_s) and self.force != "rgb_only"
        if color and depth:
            return FULL
        if color:
            return RGB_ONLY
        if depth:
            return DEPTH_ONLY
        return NONE

    def describe(self, modality: str, now_s: float) -> str:
        s = self._streams[modality]
        if self.force == ("depth_only" if modality == "color" else "rgb_only"):
            return f"{modality}: ignored (force_mode={self.force})"
        if self.present(modality, now_s):
            return f"{modality}: ok"
        what = f"no usable frame for {s.age(now_s):.2f} s" if s.seen_usable else "no usable frame yet"
        if s.last_problem:
            what += f" (last one: {s.last_problem})"
        return f"{modality}: {what}"

    def update(self, now_s: float) -> Transition | None:
        new = self._compute(now_s)
        if new == self._mode:
            return None
        old, self._mode = self._mode, new
        self.transitions += 1
        for m in MODALITIES:
            if self._was_using(old, m) and not self._was_using(new, m) and not self.force_excludes(m):
                self.dropouts[m] += 1
        reason = "; ".join(self.describe(m, now_s) for m in MODALITIES)
        return Transition(old, new, reason)

    def ever_seen(self, modality: str) -> bool:
        """Whether a usable frame of ``modality`` ever arrived (start-up before the camera is normal)."""
        return self._streams[modality].seen_usable

    def force_excludes(self, modality: str) -> bool:
        return self.force == ("depth_only" if modality == "color" else "rgb_only")

    @staticmethod
    def _was_using(mode: str, modality: str) -> bool:
        need_rgb, need_depth = NEEDS[mode]
        return need_rgb if modality == "color" else need_depth

    def set_force(self, force: str, now_s: float) -> Transition | None:
        self.force = force
        return self.update(now_s)
