"""Latest-only worker, statistics and the health summary (syncvp_ros.worker, syncvp_ros.health). No ROS."""
import threading
import time

import pytest

from syncvp_ros import health
from syncvp_ros.worker import LatencyStats, LatestSlot, RateMeter, Worker


def test_slot_keeps_only_the_latest_and_counts_drops():
    s = LatestSlot()
    assert s.put(1) is False
    assert s.put(2) is True
    assert s.take(0.1) == (True, 2)
    assert s.take(0.01) == (False, None)
    assert s.dropped == 1


def test_worker_runs_the_newest_job_and_drops_stale_ones():
    gate, done = threading.Event(), []

    def fn(job):
        if job == 0:
            gate.wait(5)
        done.append(job)

    w = Worker(fn)
    w.start()
    w.submit(0)
    time.sleep(0.05)  # job 0 is running and blocks
    for j in range(1, 6):
        w.submit(j)  # callbacks never block
    gate.set()
    deadline = time.monotonic() + 5
    while w.done < 2 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert w.stop()
    assert done == [0, 5]
    assert w.dropped == 4


def test_worker_survives_a_failing_job():
    errors, done = [], []
    w = Worker(lambda j: done.append(1 / j), on_error=errors.append)
    w.start()
    w.submit(0)
    time.sleep(0.1)
    w.submit(1)
    time.sleep(0.1)
    assert w.stop()
    assert w.errors == 1 and isinstance(errors[0], ZeroDivisionError) and done == [1.0]


def test_min_period_limits_the_rate():
    starts = []
    w = Worker(lambda j: starts.append(time.monotonic()), min_period_s=0.1)
    w.start()
    for j in range(4):
        w.submit(j)
        time.sleep(0.12)
    w.stop()
    gaps = [b - a for a, b in zip(starts, starts[1:])]
    assert len(starts) >= 3 and min(gaps) >= 0.09


def test_latency_percentiles_and_rates():
    s = LatencyStats()
    assert s.p50 is None
    for v in range(1, 101):
        s.add(v / 1000)
    assert s.p50 == pytest.approx(0.0505, abs=1e-3) and s.p95 == pytest.approx(0.095, abs=1e-3)
    r = RateMeter(window_s=5)
    for i in range(11):
        r.tick(i * 0.1)
    assert r.rate(1.0) == pytest.approx(10.0)
    assert r.rate(100.0) == 0.0


def test_health_levels():
    assert health.assess("unconfigured", "none", True, "bad file").level == health.ERROR
    assert health.assess("inactive", "none", True).level == health.WARN
    assert health.assess("active", "none", True).level == health.ERROR
    assert health.assess("active", "rgb_only", True).level == health.WARN
    assert health.assess("active", "full", True, recent_problems={"size_mismatch": 3}).level == health.WARN
    assert health.assess("active", "full", True).level == health.OK


def test_problem_log_first_then_rate_limited():
    log = health.ProblemLog(every_s=5)
    assert log.report("x", "bad", 0.0) == "bad"
    assert log.report("x", "bad", 1.0) is None
    assert log.report("y", "other", 1.0) == "other"
    assert log.report("x", "bad", 6.0) == "bad (1 more since the last message)"
    assert log.totals["x"] == 3 and log.take_recent() == {"x": 3, "y": 1} and log.take_recent() == {}
