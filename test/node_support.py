"""What the node tests share: the fast model settings and prediction helpers (the ``harness`` fixture is in
conftest.py)."""
from __future__ import annotations

FAST = {"checkpoint": "random:tiny", "steps": 2, "horizon": 2, "warmup": 1}
S = 1_000_000_000
MS = 1_000_000


def predictions(h):
    return [s for s in h.statuses() if s["event"] == "prediction"]


def wait_predictions(h, n, timeout=10.0):
    return h.wait_until(lambda: len(predictions(h)) >= n, timeout)
