"""Health from what is published (syncvp_ros.health): stall watch, input-rate watch, the summary. No ROS."""
import pytest

from syncvp_ros import health

MS = 1_000_000
P = 100 * MS


def test_stall_warns_then_errors_once_per_change_with_the_reason():
    w = health.StallWatch(0.0, warn_intervals=5, error_intervals=15)
    start = health.Progress(pairs=10, misses={"color": 1, "depth": 1}, resets=0, problems={})
    w.progress(0.0, start)
    now = health.Progress(pairs=10, misses={"color": 31, "depth": 30}, resets=0, problems={"depth_invalid": 2})
    assert w.check(0.6, 0.1, 0.2, now) == (None, None)  # within grace + 5 intervals
    verdict, line = w.check(0.8, 0.1, 0.2, now)
    assert verdict.level == health.WARN and line.startswith("WARN: no prediction for 0.8 s")
    assert "0 colour/depth pairs" in line and "30 colour and 29 depth frames found no partner" in line
    assert "(colour frames have no depth frame within sync_slop)" in line and "depth_invalid x2" in line
    assert w.check(1.0, 0.1, 0.2, now)[1] is None  # logged once
    verdict, line = w.check(1.8, 0.1, 0.2, now)
    assert verdict.level == health.ERROR and line.startswith("ERROR:")
    assert w.check(5.0, 0.1, 0.2, now)[1] is None and w.stalls == 1
    assert w.progress(5.1, now) == "predictions resumed after 5.1 s" and w.verdict is None
    w.check(6.0, 0.1, 0.2, now)
    assert w.progress(6.1, now, published=False) is None and w.verdict is None  # nothing expected: quiet


def test_stall_blames_an_inference_that_runs_far_too_long():
    w = health.StallWatch(0.0)
    verdict, _ = w.check(10.0, 0.1, 0.2, health.Progress(), inference_busy_s=9.0)
    assert verdict.level == health.ERROR and "the inference has been running for 9.0 s" in verdict.message


def test_health_levels_for_start_up_and_stalls():
    assert health.assess("active", "none", True, awaiting_first_input="no frame yet").level == health.WARN
    assert health.assess("active", "none", True).level == health.ERROR
    stall = health.Health(health.WARN, "no prediction for 2.0 s")
    assert health.assess("active", "full", True, stall=stall) == stall
    error = health.Health(health.ERROR, "no prediction for 9.0 s")
    assert health.assess("active", "rgb_only", True, stall=error) == error


def test_rate_far_below_the_sensor_rate_is_warned_once():
    # 13.6: the sensor stamps frames 100 ms apart but only every 8th arrives (transport losses).
    w = health.RateWatch()
    for i in range(40):
        w.frame(i * P)
    assert w.sensor_hz() == pytest.approx(10.0)
    assert w.check(10.0, "input /c") is None  # normal
    w = health.RateWatch()
    stamps = [i * P for i in range(200) if i % 8 in (0, 1)]  # pairs of consecutive frames survive
    for s in stamps:
        w.frame(s)
    line = w.check(2.5, "input /c")
    assert line is not None and "2.5 Hz" in line and "10.0 Hz" in line and "shared-memory" in line
    assert w.check(2.4, "input /c") is None  # once per change
    assert w.check(4.0, "input /c") is None  # not back yet: no flapping around the limit
    assert "again" in w.check(9.0, "input /c")


def test_rate_watch_ignores_odd_stamps_and_bursts():
    w = health.RateWatch()
    stamp = 0
    for i in range(30):
        stamp += P
        w.frame(stamp)
        if i % 10 == 0:  # a burst of late and duplicated stamps
            for k in range(20):
                w.frame(stamp - k * 7 * MS)
            w.frame(stamp)
    assert w.sensor_hz() == pytest.approx(10.0)
