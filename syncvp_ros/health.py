"""Health summary for /diagnostics and rate-limited problem logging. ROS-free.

Levels use the values of ``diagnostic_msgs/DiagnosticStatus`` (OK 0, WARN 1, ERROR 2, STALE 3) so the
node can copy them into the message unchanged.
"""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

OK, WARN, ERROR, STALE = 0, 1, 2, 3


@dataclass
class Health:
    level: int
    message: str


def assess(state: str, mode: str, enabled: bool, configure_error: str = "",
           recent_problems: dict[str, int] | None = None, waiting: bool = False) -> Health:
    """One line a user can act on, most severe cause first.

    ``state``: lifecycle state label (unconfigured/inactive/active/finalized); ``mode``: current
    conditioning mode; ``recent_problems``: bad-input kinds seen since the last report, with counts;
    ``waiting``: active but the context window is not full yet.
    """
    if state != "active":
        if configure_error:
            return Health(ERROR, f"{state}: configure failed: {configure_error}")
        return Health(WARN, f"{state}: waiting for activation (lifecycle); no predictions")
    if mode == "none":
        return Health(ERROR, "no usable colour or depth input: no predictions")
    problems = ", ".join(f"{k} x{n}" for k, n in sorted((recent_problems or {}).items()))
    if mode == "rgb_only":
        msg = "depth missing: predicting from colour only (rgb_only guidance)"
        return Health(WARN, msg + (f"; bad input: {problems}" if problems else ""))
    if mode == "depth_only":
        msg = "colour missing: predicting from depth only (depth_only guidance)"
        return Health(WARN, msg + (f"; bad input: {problems}" if problems else ""))
    if problems:
        return Health(WARN, f"bad input: {problems}")
    if not enabled:
        return Health(OK, "disabled through ~/enable: no predictions")
    if waiting:
        return Health(OK, f"{mode}: filling the context window")
    return Health(OK, f"predicting ({mode})")


class ProblemLog:
    """Decides when a recurring per-frame problem is worth a log line.

    The first occurrence of each kind is logged with its full message; after that at most one line per
    ``every_s`` seconds per kind, saying how many more there were. Counts are kept for diagnostics
    (``totals``) and for "since the last diagnostics report" (``take_recent``).
    """

    def __init__(self, every_s: float = 5.0):
        self.every_s = every_s
        self.totals: Counter[str] = Counter()
        self._recent: Counter[str] = Counter()
        self._last_log: dict[str, float] = {}
        self._suppressed: Counter[str] = Counter()

    def report(self, kind: str, message: str, now_s: float) -> str | None:
        """Count one problem; returns the line to log now, or None to stay quiet."""
        self.totals[kind] += 1
        self._recent[kind] += 1
        last = self._last_log.get(kind)
        if last is not None and 0 <= now_s - last < self.every_s:
            self._suppressed[kind] += 1
            return None
        self._last_log[kind] = now_s
        more = self._suppressed.pop(kind, 0)
        return message + (f" ({more} more since the last message)" if more else "")

    def take_recent(self) -> dict[str, int]:
        out = dict(self._recent)
        self._recent.clear()
        return out
