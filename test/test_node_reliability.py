"""Regression tests of the reliability defects (issue 13) and start-up before the camera (issue 14.6),
through the node in-process (syncvp_ros.testing.Harness: real rclpy, loopback DDS). Each failed on the
code before its fix."""
import time

import pytest

pytest.importorskip("rclpy")
import torch  # noqa: E402
from node_support import MS, predictions, wait_predictions  # noqa: E402

from syncvp_ros import health  # noqa: E402
from syncvp_ros.testing import depth_msg, synthetic_depth  # noqa: E402

pytestmark = pytest.mark.ros
torch.set_num_threads(1)
P = 100 * MS  # the harness streams at 10 Hz


@pytest.mark.parametrize("late", ["-150ms", "zero"])
def test_one_late_depth_frame_does_not_stop_predictions(harness, late):
    # 13.1: colour arrives first in every tick (as the harness publishes); one depth frame stamped before
    # the previous one used to turn every later frame into a sync miss, for good.
    h = harness()
    h.start_stream()
    assert wait_predictions(h, 1)
    fault = {}

    def late_depth(t, stamp):
        fault["stamp"] = stamp
        bad = 0 if late == "zero" else stamp - 150 * MS
        return dict(depth_override=depth_msg(synthetic_depth(48, 64, t), bad))

    h.inject.append(late_depth)
    assert h.wait_until(lambda: "stamp" in fault, 5)
    # Predictions from context frames after the fault: within two frames plus the context length.
    assert h.wait_until(lambda: predictions(h)[-1]["stamp_ns"] > fault["stamp"] + 3 * P, 10), \
        h.node.sync.stats.summary()
    misses = h.node.sync.stats
    assert misses.unmatched_color + misses.unmatched_depth <= 4, misses.summary()


def test_inputs_without_predictions_warn_then_error_with_the_reason_then_recover(harness, capfd):
    # 13.2: both sensors publish, but depth stamps are 50 ms off (sync_slop 20 ms): nothing pairs. The
    # diagnostics used to say OK, "predicting (full)".
    h = harness()
    h.start_stream()
    assert wait_predictions(h, 1)

    on = [True]

    def offset(t, stamp):
        return dict(depth_override=depth_msg(synthetic_depth(48, 64, t), stamp + 50 * MS)) if on[0] else {}

    h.inject.extend([offset] * 10_000)
    stall = h.node.monitor.stall
    assert h.wait_until(lambda: stall.verdict is not None and stall.verdict.level == health.WARN, 15)
    assert h.node.modes.mode == "full"
    level, message = h.node.diagnostics()[0].level, h.node.diagnostics()[0].message
    assert level == health.WARN and "no prediction for" in message and "sync_slop" in message, message
    assert h.wait_until(lambda: stall.verdict is not None and stall.verdict.level == health.ERROR, 40)
    hl, kv = h.node.diagnostics()
    assert hl.level == health.ERROR and "depth" in hl.message and "colour" in hl.message, hl.message
    assert int(kv["stalls"]) == 1
    on[0] = False
    n = len(predictions(h))
    assert h.wait_until(lambda: len(predictions(h)) > n, 10)
    assert h.wait_until(lambda: stall.verdict is None, 5)
    time.sleep(0.3)
    err = capfd.readouterr().err
    # Logged once per change: one WARN, one ERROR, one "resumed".
    assert err.count("WARN: no prediction for") == 1 and err.count("ERROR: no prediction for") == 1, err
    assert err.count("predictions resumed") == 1, err


def test_start_up_before_the_camera_is_not_an_error_but_a_lost_camera_is(harness, capfd):
    # 14.6: "mode full -> none" used to be logged at ERROR half a second after start.
    h = harness(params={"dropout_timeout": 0.2})
    assert h.wait_until(lambda: h.node.modes.mode == "none", 3)
    time.sleep(0.3)
    hl = h.node.diagnostics()[0]
    assert hl.level == health.WARN and "waiting for the first input" in hl.message, hl.message
    err = capfd.readouterr().err
    assert "[ERROR]" not in err and "waiting for the camera" in err, err
    h.start_stream()
    assert wait_predictions(h, 1)
    h.stop_stream()
    assert h.wait_until(lambda: h.node.modes.mode == "none", 3)
    assert h.node.diagnostics()[0].level == health.ERROR
    time.sleep(0.2)
    err = capfd.readouterr().err
    assert "[ERROR]" in err and "mode full -> none" in err, err


def test_mismatched_depth_size_falls_back_to_rgb_only(harness):
    # 13.5: colour 64x48 with depth 32x24 for longer than dropout_timeout used to give no predictions while
    # the mode stayed "full". No depth hold: the message under test is the colour-only one.
    h = harness(params={"dropout_timeout": 0.3, "depth_hold": 0.0})
    h.start_stream()
    assert wait_predictions(h, 1)

    on = [True]

    def small(t, stamp):
        return dict(depth_override=depth_msg(synthetic_depth(24, 32, t), stamp)) if on[0] else {}

    h.inject.extend([small] * 10_000)
    assert h.wait_until(lambda: h.node.modes.mode == "rgb_only", 5)
    assert h.wait_until(lambda: predictions(h)[-1]["used_mode"] == "rgb_only", 10)
    hl, kv = h.node.diagnostics()
    assert hl.level == health.WARN and "depth missing" in hl.message and "do not rely on it" in hl.message
    assert int(kv["bad input: size_mismatch"]) > 0
    on[0] = False
    assert h.wait_until(lambda: predictions(h)[-1]["used_mode"] == "full", 10)
