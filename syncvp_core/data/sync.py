"""Colour/depth synchronisation by header stamp: the one synchroniser of the project.

Used by the bag reader, the folder importers and the ROS node alike, so it knows nothing about ROS or
files: items are opaque objects (decoded images, raw messages, file names) with an integer stamp in ns.

Policy (approximate time, one-to-one):

* Each stream's stamps must increase. An item with the **same stamp** as the previous one of its stream is
  a ``duplicate``: reported and dropped. A stamp that goes **backwards by more than the slop** is reported
  as ``backwards`` and held until the next item of its stream decides what it was: when that item goes on
  from the old stamps, the held one was a single late (or wrongly stamped) frame and only it is dropped;
  otherwise the stream restarted (a looping bag, a restarted driver): everything pending is resolved (as
  at the end of a stream) and that stream starts over from the held item. Items of the other stream that
  still belong to the old loop (more than ``gap_factor`` periods ahead of the restarted stream, until the
  other stream jumps back too) are reported as unmatched. A stamp that goes backwards by at most the slop
  (slight reordering) is reported and dropped. Whatever the arrival order, pairing resumes within two
  frames of valid input after any such fault.
* A colour and a depth item are paired when each is the other's **nearest** remaining item of the other
  stream and their stamps differ by at most ``slop_s``. Every item is used at most once.
* Items that can never be paired (no partner within the slop, a partner that prefers a closer item, an
  overfull queue while the other stream is silent, leftovers at :meth:`flush`) are counted and reported as
  ``unmatched`` events: nothing is dropped silently.
* A stretch of missing frames in one stream (an interval longer than ``gap_factor`` x the stream's median
  period) is reported as a ``gap``. The frames of the other stream inside the gap find no partner within
  the slop and are reported as unmatched: a gap is never bridged.
* Pairs come out in stamp order. ``SyncedPair.stamp_ns`` is the colour stamp.
* Latency: deciding that a pair is mutual-nearest can need the next item of one stream (at most one frame
  period). ``eager=True`` pairs as soon as the heads of both streams are within the slop (lower latency for
  live use, slightly less optimal pairing when stamps are far apart).

Accounting: after :meth:`flush`, ``color_in == pairs + unmatched_color`` and likewise for depth (duplicates
and out-of-order drops are included in the unmatched counts; their own counters say how many there were).
"""
from __future__ import annotations

import statistics
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass
from typing import Any, Generic, TypeVar

C = TypeVar("C")
D = TypeVar("D")

STREAMS = ("color", "depth")


@dataclass(frozen=True)
class SyncedPair(Generic[C, D]):
    stamp_ns: int  # the colour stamp: the time the pair stands for
    color_stamp_ns: int
    depth_stamp_ns: int
    color: C
    depth: D

    @property
    def dt_ns(self) -> int:
        """Depth stamp minus colour stamp."""
        return self.depth_stamp_ns - self.color_stamp_ns


@dataclass(frozen=True)
class SyncEvent:
    kind: str  # "backwards" | "duplicate" | "gap" | "unmatched"
    stream: str  # "color" | "depth"
    stamp_ns: int
    message: str


@dataclass
class SyncStats:
    color_in: int = 0
    depth_in: int = 0
    pairs: int = 0
    unmatched_color: int = 0
    unmatched_depth: int = 0
    duplicates: int = 0
    backwards: int = 0
    gaps: int = 0
    # |depth stamp - colour stamp| over the pairs, for diagnostics.
    max_abs_dt_ns: int = 0
    sum_abs_dt_ns: int = 0

    @property
    def mean_abs_dt_ns(self) -> float:
        return self.sum_abs_dt_ns / self.pairs if self.pairs else 0.0

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["mean_abs_dt_ns"] = self.mean_abs_dt_ns
        return d

    def summary(self) -> str:
        return (f"{self.pairs} pairs from {self.color_in} colour / {self.depth_in} depth frames; unmatched "
                f"colour {self.unmatched_color}, depth {self.unmatched_depth}; duplicates {self.duplicates}, "
                f"backwards {self.backwards}, gaps {self.gaps}; |dt| mean "
                f"{self.mean_abs_dt_ns / 1e6:.1f} ms, max {self.max_abs_dt_ns / 1e6:.1f} ms")


def _ms(ns: float) -> str:
    return f"{ns / 1e6:.1f} ms"


class StampSynchronizer:
    """Pairs colour and depth items by stamp (see the module docstring for the policy)."""

    def __init__(self, slop_s: float = 0.02, max_queue: int = 30, gap_factor: float = 2.5,
                 on_event: Callable[[SyncEvent], None] | None = None, eager: bool = False,
                 max_events: int = 1000) -> None:
        if slop_s < 0:
            raise ValueError(f"slop_s must be >= 0, got {slop_s}")
        if max_queue < 1:
            raise ValueError(f"max_queue must be >= 1, got {max_queue}")
        if gap_factor <= 1:
            raise ValueError(f"gap_factor must be > 1, got {gap_factor}")
        self.slop_ns = int(round(slop_s * 1e9))
        self.max_queue = int(max_queue)
        self.gap_factor = float(gap_factor)
        self.on_event = on_event
        self.eager = bool(eager)
        # The most recent events (bounded so a long bag cannot grow memory); stats count all of them.
        self.events: deque[SyncEvent] = deque(maxlen=max_events)
        self.reset()

    # ------------------------------------------------------------------------------------------------
    # public API

    def reset(self) -> None:
        """Forget all pending items, stamp history and statistics."""
        self._q: dict[str, deque[tuple[int, Any]]] = {s: deque() for s in STREAMS}
        self._last: dict[str, int | None] = {s: None for s in STREAMS}
        self._periods: dict[str, deque[int]] = {s: deque(maxlen=31) for s in STREAMS}
        # True for a stream whose items still belong to the loop before the other stream jumped back.
        self._stale: dict[str, bool] = {s: False for s in STREAMS}
        # A frame that jumped back by more than the slop, waiting for the next frame of its stream.
        self._held: dict[str, tuple[int, Any] | None] = {s: None for s in STREAMS}
        self.stats = SyncStats()
        self.events.clear()

    def add_color(self, stamp_ns: int, item: Any) -> list[SyncedPair]:
        return self._add("color", int(stamp_ns), item)

    def add_depth(self, stamp_ns: int, item: Any) -> list[SyncedPair]:
        return self._add("depth", int(stamp_ns), item)

    def flush(self) -> list[SyncedPair]:
        """End of input: pair what can be paired, report the rest as unmatched."""
        for stream in STREAMS:
            held, self._held[stream] = self._held[stream], None
            if held is not None:
                self._unmatched(stream, held[0], "stamp went back and no later frame followed")
        return self._match(final=True)

    def pending(self) -> tuple[int, int]:
        """(colour, depth) items waiting for a decision."""
        return len(self._q["color"]), len(self._q["depth"])

    def median_period_ns(self, stream: str) -> float | None:
        p = self._periods[stream]
        return float(statistics.median(p)) if p else None

    # ------------------------------------------------------------------------------------------------
    # internals

    def _emit(self, kind: str, stream: str, stamp_ns: int, message: str) -> None:
        ev = SyncEvent(kind, stream, stamp_ns, message)
        self.events.append(ev)
        if self.on_event is not None:
            self.on_event(ev)

    def _unmatched(self, stream: str, stamp_ns: int, why: str) -> None:
        if stream == "color":
            self.stats.unmatched_color += 1
        else:
            self.stats.unmatched_depth += 1
        self._emit("unmatched", stream, stamp_ns, f"{stream} frame at {stamp_ns} ns not paired: {why}")

    def _add(self, stream: str, stamp: int, item: Any) -> list[SyncedPair]:
        if stream == "color":
            self.stats.color_in += 1
        else:
            self.stats.depth_in += 1
        out: list[SyncedPair] = []
        held, self._held[stream] = self._held[stream], None
        last = self._last[stream]
        if held is not None:
            if stamp >= last - self.slop_ns:
                # The stream went on where it was: the held frame was a single late (or wrongly stamped)
                # frame. Restarting for it would discard the other stream's pending frames and, while
                # that stream stays ahead, everything after (issue 13.1).
                self._count_drop(stream)
                self._emit("unmatched", stream, held[0],
                           f"{stream} frame at {held[0]} ns dropped: stamped {(last - held[0]) / 1e9:.3f} s "
                           f"before the previous frame and the next one continued the old stamps")
            else:
                out.extend(self._restart(stream, *held))
                last = self._last[stream]
        if last is not None and stamp == last:
            self.stats.duplicates += 1
            self._count_drop(stream)
            self._emit("duplicate", stream, stamp, f"{stream} stamp {stamp} ns repeated; frame dropped")
            return out
        if last is not None and stamp < last:
            back = last - stamp
            self.stats.backwards += 1
            if back <= self.slop_ns:
                self._count_drop(stream)
                self._emit("backwards", stream, stamp,
                           f"{stream} stamp went back by {_ms(back)} (within the slop); frame dropped")
                return out
            # One frame cannot tell a restart (loop, restarted driver) from one late frame: the next
            # frame of this stream decides (see above).
            self._emit("backwards", stream, stamp,
                       f"{stream} stamp jumped back by {back / 1e9:.3f} s: held until the next {stream} "
                       f"frame shows whether the stream restarted")
            self._held[stream] = (stamp, item)
            return out
        out.extend(self._enqueue(stream, stamp, item))
        return out

    def _restart(self, stream: str, stamp: int, item: Any) -> list[SyncedPair]:
        """``stream`` restarted (looping bag, restarted driver) with the frame ``(stamp, item)``."""
        other = "depth" if stream == "color" else "color"
        self._emit("backwards", stream, stamp,
                   f"{stream} stream restarted at stamp {stamp} ns (looping bag or restarted driver): "
                   f"pending frames resolved")
        out: list[SyncedPair] = []
        if self._stale[stream]:
            # This stream was the straggler of a loop the other stream already made: now both restarted.
            self._stale[stream] = False
        else:
            out.extend(self._match(final=True, end_reason=f"pending when the {stream} stream restarted (loop)"))
            self._stale[other] = self._last[other] is not None
        self._last[stream] = None
        self._periods[stream].clear()
        out.extend(self._enqueue(stream, stamp, item))
        return out

    def _enqueue(self, stream: str, stamp: int, item: Any) -> list[SyncedPair]:
        """Queue an in-order frame and pair what can be paired."""
        other = "depth" if stream == "color" else "color"
        last = self._last[stream]
        if last is not None and len(self._periods[stream]) >= 3:
            med = statistics.median(self._periods[stream])
            dt = stamp - last
            if dt > self.gap_factor * med:
                self.stats.gaps += 1
                self._emit("gap", stream, stamp,
                           f"{stream} gap of {dt / 1e9:.3f} s before stamp {stamp} ns (median period "
                           f"{_ms(med)}, about {round(dt / med) - 1} frames missing)")
        if last is not None:
            self._periods[stream].append(stamp - last)
        self._last[stream] = stamp

        if self._stale[stream]:
            # Frames still from the loop before the other stream restarted are far ahead of it; a frame
            # within a few periods of it belongs to the new timeline (whichever stream arrives first).
            other_last = self._last[other]
            if other_last is None or stamp > other_last + self._stale_tolerance_ns(stream):
                self._unmatched(stream, stamp, f"belongs to the loop before the {other} stream jumped back")
                return []
            self._stale[stream] = False

        q = self._q[stream]
        q.append((stamp, item))
        if len(q) > self.max_queue:
            old, _ = q.popleft()
            self._unmatched(stream, old, f"queue full (max_queue={self.max_queue}): no {other} frame "
                                         f"arrived to decide")
        return self._match(final=False)

    def _stale_tolerance_ns(self, stream: str) -> float:
        med = self.median_period_ns(stream)
        return self.slop_ns + (self.gap_factor * med if med else 0.0)

    def _count_drop(self, stream: str) -> None:
        if stream == "color":
            self.stats.unmatched_color += 1
        else:
            self.stats.unmatched_depth += 1

    def _pair(self) -> SyncedPair:
        cs, c = self._q["color"].popleft()
        ds, d = self._q["depth"].popleft()
        adt = abs(ds - cs)
        self.stats.pairs += 1
        self.stats.sum_abs_dt_ns += adt
        self.stats.max_abs_dt_ns = max(self.stats.max_abs_dt_ns, adt)
        return SyncedPair(cs, cs, ds, c, d)

    def _match(self, final: bool, end_reason: str = "") -> list[SyncedPair]:
        out: list[SyncedPair] = []
        cq, dq, slop = self._q["color"], self._q["depth"], self.slop_ns
        while True:
            if not cq or not dq:
                # One stream has nothing pending: items of the other that the silent stream has already
                # passed (its next stamp will be later still) can never be paired.
                for stream, q in (("color", cq), ("depth", dq)):
                    other = "depth" if stream == "color" else "color"
                    # A stale stream's last stamp belongs to the loop before the restart: it says nothing.
                    other_last = None if self._stale[other] else self._last[other]
                    while q:
                        s = q[0][0]
                        if other_last is not None and other_last > s + slop:
                            why = f"the {other} stream passed it with no frame within the slop ({_ms(slop)})"
                        elif final:
                            why = end_reason or f"end of input, no {other} frame left to pair with"
                        else:
                            break
                        q.popleft()
                        self._unmatched(stream, s, why)
                return out
            c0, d0 = cq[0][0], dq[0][0]
            if abs(c0 - d0) > slop:
                # The earlier head has no partner: every remaining item of the other stream is later still.
                if c0 < d0:
                    cq.popleft()
                    self._unmatched("color", c0, f"nearest depth is {_ms(d0 - c0)} away (slop {_ms(slop)})")
                else:
                    dq.popleft()
                    self._unmatched("depth", d0, f"nearest colour is {_ms(c0 - d0)} away (slop {_ms(slop)})")
                continue
            gap = abs(c0 - d0)
            # The earlier head `a` has only one candidate left: the other head `b`. `b` may prefer `a1`, the
            # next item of a's stream; but `a1` may in turn prefer `b1`, the next item of b's stream, which
            # leaves `b` to `a` (stamps interleaving at about half a period, common with 30 Hz Kinects).
            first, q_first, q_other = ("color", cq, dq) if c0 <= d0 else ("depth", dq, cq)
            other = "depth" if first == "color" else "color"
            b = q_other[0][0]
            if len(q_first) < 2:
                if final or self.eager or gap == 0:
                    out.append(self._pair())
                    continue
                return out  # wait for the next item of a's stream
            a1 = q_first[1][0]
            if abs(a1 - b) >= gap:  # b prefers a (ties go to the earlier item)
                out.append(self._pair())
                continue
            if len(q_other) >= 2:
                a1_prefers_b1 = abs(a1 - q_other[1][0]) < abs(a1 - b)
            elif final or self.eager:
                a1_prefers_b1 = False
            else:
                return out  # wait for the next item of b's stream
            if a1_prefers_b1:
                out.append(self._pair())
            else:
                s, _ = q_first.popleft()
                self._unmatched(first, s, f"its nearest {other} frame pairs with the next {first} frame")


def synchronize(color: Iterable[tuple[int, Any]], depth: Iterable[tuple[int, Any]], slop_s: float = 0.02,
                **kwargs: Any) -> tuple[list[SyncedPair], SyncStats, list[SyncEvent]]:
    """Offline convenience: pair two lists of ``(stamp_ns, item)``.

    The lists are fed in their own order, interleaved by stamp (as a recorder would have received them),
    so a stamp that goes backwards inside a list is still reported.
    """
    events: list[SyncEvent] = []
    user_cb = kwargs.pop("on_event", None)

    def cb(ev: SyncEvent) -> None:
        events.append(ev)
        if user_cb is not None:
            user_cb(ev)

    sync = StampSynchronizer(slop_s=slop_s, on_event=cb, **kwargs)
    c: Sequence[tuple[int, Any]] = list(color)
    d: Sequence[tuple[int, Any]] = list(depth)
    pairs: list[SyncedPair] = []
    i = j = 0
    while i < len(c) or j < len(d):
        if j >= len(d) or (i < len(c) and c[i][0] <= d[j][0]):
            pairs += sync.add_color(*c[i])
            i += 1
        else:
            pairs += sync.add_depth(*d[j])
            j += 1
    pairs += sync.flush()
    return pairs, sync.stats, events
