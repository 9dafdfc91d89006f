"""What the node reports on /diagnostics, and when it says so in the log. ROS-free.

Health is derived from what the node actually publishes, not only from what arrives: inputs arriving
while no prediction comes out for several expected intervals is a stall (:class:`StallWatch`), WARN and
then ERROR, with the reason (sync misses and which stream, a context window that never fills, a busy
inference). A stream whose received rate falls far below what its stamps or its own history say the
sensor sends is reported too (:class:`RateWatch`: transport losses, e.g. large images with Fast DDS
defaults).

Levels use the values of ``diagnostic_msgs/DiagnosticStatus`` (OK 0, WARN 1, ERROR 2, STALE 3) so the
node can copy them into the message unchanged. Every "logged once per change" decision lives here; the
node only prints the lines it is handed.
"""
from __future__ import annotations

from collections import Counter, deque
from dataclasses import dataclass, field
from typing import Any

from .modes import MODALITIES, NONE
from .worker import LatencyStats, RateMeter

OK, WARN, ERROR, STALE = 0, 1, 2, 3
LEVEL_NAMES = {OK: "OK", WARN: "WARN", ERROR: "ERROR", STALE: "STALE"}


@dataclass
class Health:
    level: int
    message: str


def assess(state: str, mode: str, enabled: bool, configure_error: str = "",
           recent_problems: dict[str, int] | None = None, waiting: bool = False,
           stall: Health | None = None, awaiting_first_input: str = "", inferred_depth: str = "publish",
           held_depth_s: float | None = None) -> Health:
    """One line a user can act on, most severe cause first.

    ``state``: lifecycle state label (unconfigured/inactive/active/finalized); ``mode``: current
    conditioning mode; ``recent_problems``: bad-input kinds seen since the last report, with counts;
    ``waiting``: active but the context window is not full yet; ``stall``: the :class:`StallWatch`
    verdict; ``awaiting_first_input``: non-empty while no input has ever arrived (start-up before the
    camera publishes is normal: WARN, not ERROR), saying what is awaited; ``inferred_depth``: the node's
    parameter (publish | withhold the depth predicted from colour alone); ``held_depth_s``: in rgb_only, the
    age of the context with both sensors the depth is forecast from (depth_hold), None when it is inferred.
    """
    if state != "active":
        if configure_error:
            return Health(ERROR, f"{state}: configure failed: {configure_error}")
        return Health(WARN, f"{state}: waiting for activation (lifecycle); no predictions")
    if mode == NONE:
        if awaiting_first_input:
            return Health(WARN, f"waiting for the first input: {awaiting_first_input}")
        return Health(ERROR, "no usable colour or depth input: no predictions")
    if stall is not None and stall.level == ERROR:
        return stall
    problems = ", ".join(f"{k} x{n}" for k, n in sorted((recent_problems or {}).items()))
    bad = f"; bad input: {problems}" if problems else ""
    if mode == "rgb_only":
        # The shipped model's depth inferred from colour alone is far off on real scenes (MODEL_CARD.md):
        # say so where operators look, not only in the card.
        if held_depth_s is not None:
            return Health(WARN, "depth missing: colour predicted from colour only (rgb_only guidance); depth "
                          f"forecast from the last frames with depth, {held_depth_s:.1f} s old (depth_hold)" + bad)
        if inferred_depth == "withhold":
            return Health(WARN, "depth missing: predicting from colour only (rgb_only guidance); predicted "
                          "depth and clouds withheld until depth returns (inferred_depth=withhold)" + bad)
        return Health(WARN, "depth missing: predicting from colour only (rgb_only guidance); the published "
                      "depth is inferred from colour, do not rely on it" + bad)
    if mode == "depth_only":
        return Health(WARN, "colour missing: predicting from depth only (depth_only guidance)" + bad)
    if stall is not None and stall.level == WARN:
        return Health(WARN, stall.message + bad)
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


# ----------------------------------------------------------------------------------------------------
# Stalls: inputs arrive, nothing is published.


@dataclass(frozen=True)
class Progress:
    """Counters that explain a stall, taken at the last prediction and compared now."""

    pairs: int = 0
    misses: dict[str, int] = field(default_factory=dict)  # per stream: frames that found no partner
    resets: int = 0  # context window resets
    problems: dict[str, int] = field(default_factory=dict)  # bad-input totals per kind


class StallWatch:
    """No prediction for ``warn_intervals`` expected intervals while predictions are expected: WARN;
    ``error_intervals``: ERROR. :meth:`check` returns a line to log only when the level changes."""

    def __init__(self, now_s: float, warn_intervals: float = 5.0, error_intervals: float = 15.0):
        self.warn_intervals = warn_intervals
        self.error_intervals = error_intervals
        self._since = now_s
        self._at_progress = Progress()
        self.verdict: Health | None = None  # None = not stalled
        self.stalls = 0  # times the level went from OK to WARN or worse

    def progress(self, now_s: float, counters: Progress, published: bool = True) -> str | None:
        """A prediction was ``published``, or none is expected (disabled, no subscribers, no input). Returns
        a line to log when a publication ends a stall."""
        stalled = self.verdict is not None and published
        line = f"predictions resumed after {now_s - self._since:.1f} s" if stalled else None
        self._since, self._at_progress, self.verdict = now_s, counters, None
        return line

    def check(self, now_s: float, interval_s: float, grace_s: float, counters: Progress,
              inference_busy_s: float = 0.0) -> tuple[Health | None, str | None]:
        """(verdict, line to log when the level changes). ``interval_s``: the expected time between
        predictions; ``grace_s``: time allowed on top (filling the context window)."""
        waited = now_s - self._since
        level = OK
        if waited > grace_s + self.error_intervals * interval_s:
            level = ERROR
        elif waited > grace_s + self.warn_intervals * interval_s:
            level = WARN
        old = self.verdict.level if self.verdict is not None else OK
        if level == OK:
            return self.verdict, None
        self.verdict = Health(level, f"no prediction for {waited:.1f} s while inputs arrive (expected one "
                                     f"every {interval_s:.2f} s): "
                                     + self._why(counters, inference_busy_s > 2 * interval_s, inference_busy_s))
        if level == old:
            return self.verdict, None
        if old == OK:
            self.stalls += 1
        return self.verdict, f"{LEVEL_NAMES[level]}: {self.verdict.message}"

    def _why(self, now: Progress, stuck: bool, busy_s: float) -> str:
        then = self._at_progress
        if stuck:
            return f"the inference has been running for {busy_s:.1f} s"
        pairs = now.pairs - then.pairs
        misses = {s: now.misses.get(s, 0) - then.misses.get(s, 0) for s in MODALITIES}
        problems = {k: n - then.problems.get(k, 0) for k, n in now.problems.items()
                    if n > then.problems.get(k, 0)}
        parts = [f"{pairs} colour/depth pairs" + (" (the context window never filled: "
                                                   f"{now.resets - then.resets} resets)" if pairs else "")]
        if any(misses.values()):
            worse, other = ("colour", "depth") if misses["color"] >= misses["depth"] else ("depth", "colour")
            parts.append(f"{misses['color']} colour and {misses['depth']} depth frames found no partner "
                         f"({worse} frames have no {other} frame within sync_slop)")
        if problems:
            parts.append("bad input: " + ", ".join(f"{k} x{n}" for k, n in sorted(problems.items())))
        return "; ".join(parts)


# ----------------------------------------------------------------------------------------------------
# Received rate against what the sensor sends.


class RateWatch:
    """Flags a stream received at a small fraction of its rate.

    The sensor's rate is estimated twice: from the header stamps (the shortest spacing between two
    consecutively received frames that recurs at least ``support`` times: frames lost in transport widen
    the average spacing, but consecutive survivors still show the true period, while a single odd stamp
    does not count) and from the highest received rate seen so far. Warns (a line returned once per
    change) when the received rate is below ``fraction`` of the larger estimate, and says so again when it
    is back above ``recover`` (a gap between the two, so that a rate near the limit does not flap).
    """

    def __init__(self, fraction: float = 0.3, window: int = 50, support: int = 3, recover: float = 0.5):
        self.fraction = fraction
        self.recover = recover
        self.support = support
        self._gaps: deque[int] = deque(maxlen=window)
        self._prev: int | None = None
        self.peak_hz = 0.0
        self.low = False

    def frame(self, stamp_ns: int) -> None:
        if self._prev is not None and 1_000_000 <= stamp_ns - self._prev <= 10_000_000_000:
            self._gaps.append(stamp_ns - self._prev)  # 1 ms .. 10 s: not a duplicate, not a jump
        self._prev = stamp_ns

    def sensor_hz(self) -> float:
        gaps = sorted(self._gaps)
        for g in gaps:
            if sum(0.8 * g <= x <= 1.25 * g for x in gaps) >= self.support:
                return max(1e9 / g, self.peak_hz)
        return self.peak_hz

    def check(self, received_hz: float, name: str) -> str | None:
        """Call about once per rate window with the current received rate."""
        expected = self.sensor_hz()
        self.peak_hz = max(self.peak_hz, received_hz)
        limit = self.recover if self.low else self.fraction
        low = received_hz > 0 and expected > 0 and received_hz < limit * expected
        if low == self.low:
            return None
        self.low = low
        if low:
            return (f"{name} arrives at {received_hz:.1f} Hz, far below the {expected:.1f} Hz the sensor "
                    "sends (its stamps / its earlier rate): frames are lost on the way. For large images "
                    "between processes use Fast DDS's shared-memory profile (docs/node.md, 'Large images')")
        return f"{name} is received at {received_hz:.1f} Hz again"


# ----------------------------------------------------------------------------------------------------
# Everything the node counts.


class Monitor:
    """The node's counters and watches, and the key/values of its diagnostics."""

    def __init__(self, now_s: float = 0.0):
        self.problems = ProblemLog()
        self.latency = LatencyStats()  # inference (predict call)
        self.age = LatencyStats()  # end to end: publish time - newest input stamp
        self.rates = {"color": RateMeter(), "depth": RateMeter(), "predictions": RateMeter()}
        self.input_rates = {m: RateWatch() for m in MODALITIES}
        self.stall = StallWatch(now_s)
        self.predictions = 0
        self.lazy_skips = 0
        self.qos_incompatible = 0

    def frame_received(self, modality: str, mono_s: float) -> None:
        self.rates[modality].tick(mono_s)

    def frame_usable(self, modality: str, stamp_ns: int) -> None:
        """Only decodable frames tell the sensor's rate: a malformed one may carry any stamp."""
        self.input_rates[modality].frame(stamp_ns)

    def published(self, mono_s: float, inference_s: float, age_s: float) -> None:
        self.predictions += 1
        self.rates["predictions"].tick(mono_s)
        self.latency.add(inference_s)
        self.age.add(age_s)

    def rate_lines(self, mono_s: float, topics: dict[str, str]) -> list[tuple[bool, str]]:
        """``(is a warning, line)`` to log about inputs received far below their rate (once per change)."""
        out = []
        for m in MODALITIES:
            line = self.input_rates[m].check(self.rates[m].rate(mono_s), f"input {topics[m]}")
            if line:
                out.append((self.input_rates[m].low, line))
        return out

    def key_values(self, mono_s: float) -> dict[str, str]:
        ms = lambda v: "n/a" if v is None else f"{v * 1e3:.1f}"  # noqa: E731
        kv = {
            "color rate (Hz)": f"{self.rates['color'].rate(mono_s):.1f}",
            "depth rate (Hz)": f"{self.rates['depth'].rate(mono_s):.1f}",
            "prediction rate (Hz)": f"{self.rates['predictions'].rate(mono_s):.1f}",
            "predictions": str(self.predictions),
            "inference latency p50 (ms)": ms(self.latency.p50),
            "inference latency p95 (ms)": ms(self.latency.p95),
            "end-to-end age p50 (ms)": ms(self.age.p50),
            "end-to-end age p95 (ms)": ms(self.age.p95),
            "skipped (no subscribers)": str(self.lazy_skips),
            "incompatible QoS events": str(self.qos_incompatible),
            "stalls": str(self.stall.stalls),
        }
        for m in MODALITIES:
            if self.input_rates[m].low:
                kv[f"{m} rate far below the sensor's"] = f"{self.input_rates[m].sensor_hz():.1f} Hz sent"
        for kind, n in sorted(self.problems.totals.items()):
            kv[f"bad input: {kind}"] = str(n)
        return kv

    @staticmethod
    def pipeline_values(sync: Any, buffer: Any, modes: Any, worker: Any) -> dict[str, str]:
        """Key/values of the active pipeline (synchroniser, context window, modes, worker)."""
        kv = {"dropped work (stale contexts)": str(worker.dropped if worker else 0)}
        if sync is not None:
            s = sync.stats
            kv.update({"synced pairs": str(s.pairs), "sync misses colour": str(s.unmatched_color),
                       "sync misses depth": str(s.unmatched_depth),
                       "sync |dt| mean (ms)": f"{s.mean_abs_dt_ns / 1e6:.1f}"})
        if buffer is not None:
            kv["context fill"] = f"{len(buffer)}/{buffer.length}"
            kv["context dt (ms)"] = f"{buffer.measured_dt_ns() / 1e6:.1f}"
            kv["context resets"] = str(sum(buffer.resets.values()))
        if modes is not None:
            kv["dropouts colour"] = str(modes.dropouts["color"])
            kv["dropouts depth"] = str(modes.dropouts["depth"])
        return kv
