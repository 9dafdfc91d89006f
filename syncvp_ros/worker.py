"""Inference off the executor thread: a latest-only slot feeding one worker thread. ROS-free.

Subscription callbacks must never wait for the model. They :meth:`Worker.submit` a job and return; the
worker runs the newest job when it is free. A job that is replaced before the worker picked it up is
stale and dropped, and counted (``dropped``): under load the node predicts from the freshest context
instead of building a backlog. ``min_period_s`` (from ``predict_rate_hz``) holds the next job back
until that long after the previous start; newer jobs still replace it while it waits.
"""
from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable
from typing import Any

import numpy as np


class LatestSlot:
    """A one-item mailbox: ``put`` replaces what is there (counting it as dropped)."""

    def __init__(self) -> None:
        self._cv = threading.Condition()
        self._item: Any = None
        self._has = False
        self._closed = False
        self.dropped = 0

    def put(self, item: Any) -> bool:
        """Store ``item``; True when an unprocessed item was replaced (and counted as dropped)."""
        with self._cv:
            replaced = self._has
            if replaced:
                self.dropped += 1
            self._item, self._has = item, True
            self._cv.notify_all()
            return replaced

    def take(self, timeout: float | None = None) -> tuple[bool, Any]:
        """Wait up to ``timeout`` for an item: ``(True, item)``, or ``(False, None)`` on timeout/close."""
        with self._cv:
            self._cv.wait_for(lambda: self._has or self._closed, timeout)
            return self._pop()

    def take_nowait(self) -> tuple[bool, Any]:
        with self._cv:
            return self._pop()

    def _pop(self) -> tuple[bool, Any]:
        if not self._has:
            return False, None
        item, self._item, self._has = self._item, None, False
        return True, item

    def wait_closed(self, timeout: float) -> bool:
        """Sleep up to ``timeout`` s, waking early on close; True when closed."""
        with self._cv:
            self._cv.wait_for(lambda: self._closed, timeout)
            return self._closed

    def count_drop(self) -> None:
        with self._cv:
            self.dropped += 1

    def clear(self) -> int:
        with self._cv:
            had = int(self._has)
            self._item, self._has = None, False
            return had

    def close(self) -> None:
        with self._cv:
            self._closed = True
            self._cv.notify_all()

    @property
    def closed(self) -> bool:
        return self._closed


class Worker:
    """One thread running ``fn(job)`` for the latest submitted job."""

    def __init__(self, fn: Callable[[Any], None], on_error: Callable[[BaseException], None] | None = None,
                 name: str = "syncvp-inference", min_period_s: float = 0.0):
        self._fn = fn
        self._on_error = on_error
        self._slot = LatestSlot()
        self._busy = threading.Event()
        self._thread = threading.Thread(target=self._loop, name=name, daemon=True)
        self.min_period_s = min_period_s
        self.done = 0
        self.errors = 0
        self._last_start = -float("inf")

    @property
    def dropped(self) -> int:
        return self._slot.dropped

    @property
    def busy(self) -> bool:
        return self._busy.is_set()

    def busy_for(self, now_s: float) -> float:
        """Seconds the job in progress has been running (``time.monotonic`` clock); 0 when idle."""
        return now_s - self._last_start if self._busy.is_set() else 0.0

    def start(self) -> None:
        self._thread.start()

    def submit(self, job: Any) -> bool:
        """Hand over a job without blocking; True when a pending older job was dropped for it."""
        return self._slot.put(job)

    def discard_pending(self) -> int:
        """Drop a job that has not started (e.g. both sensors are gone); counted as dropped."""
        n = self._slot.clear()
        for _ in range(n):
            self._slot.count_drop()
        return n

    def stop(self, timeout: float = 30.0) -> bool:
        """Stop after the job in progress (pending ones are discarded); True when the thread ended."""
        self._slot.close()
        if self._thread.is_alive() and self._thread is not threading.current_thread():
            self._thread.join(timeout)
        return not self._thread.is_alive()

    def _loop(self) -> None:
        while not self._slot.closed:
            ok, job = self._slot.take(timeout=0.5)
            if not ok:
                continue
            wait = self._last_start + self.min_period_s - time.monotonic()
            if wait > 0:
                if self._slot.wait_closed(wait):
                    break
                newer, job2 = self._slot.take_nowait()
                if newer:  # a fresher context arrived while waiting: the held one is stale
                    self._slot.count_drop()
                    job = job2
            self._last_start = time.monotonic()
            self._busy.set()
            try:
                self._fn(job)
                self.done += 1
            except BaseException as e:  # the worker must survive any job
                self.errors += 1
                if self._on_error is not None:
                    self._on_error(e)
            finally:
                self._busy.clear()


# ----------------------------------------------------------------------------------------------------
# Statistics for diagnostics.


class LatencyStats:
    """The last ``window`` durations (seconds): p50 / p95 / max."""

    def __init__(self, window: int = 200):
        self._values: deque[float] = deque(maxlen=window)
        self._lock = threading.Lock()
        self.count = 0

    def add(self, seconds: float) -> None:
        with self._lock:
            self._values.append(float(seconds))
            self.count += 1

    def percentile(self, q: float) -> float | None:
        with self._lock:
            if not self._values:
                return None
            return float(np.percentile(np.fromiter(self._values, float), q))

    @property
    def p50(self) -> float | None:
        return self.percentile(50)

    @property
    def p95(self) -> float | None:
        return self.percentile(95)


class RateMeter:
    """Events per second over the last ``window_s`` seconds (of whatever clock the caller passes)."""

    def __init__(self, window_s: float = 5.0):
        self.window_s = window_s
        self._times: deque[float] = deque()
        self._lock = threading.Lock()
        self.count = 0

    def tick(self, now_s: float) -> None:
        with self._lock:
            self._times.append(now_s)
            self.count += 1
            self._trim(now_s)

    def rate(self, now_s: float) -> float:
        with self._lock:
            self._trim(now_s)
            if len(self._times) < 2:
                return 0.0
            span = max(now_s - self._times[0], self._times[-1] - self._times[0])
            return (len(self._times) - 1) / span if span > 0 else 0.0

    def _trim(self, now_s: float) -> None:
        while self._times and (self._times[0] < now_s - self.window_s or self._times[0] > now_s):
            self._times.popleft()
