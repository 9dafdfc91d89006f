"""The node's context window (syncvp_ros.context): spacing, resets, merging, output stamps. No ROS."""
import numpy as np
import pytest

from syncvp_core.data.frames import RGBDFrame
from syncvp_ros import context as ctx

MS = 1_000_000


def frame(t_ms, rgb=True, depth=True, hw=(4, 6)):
    return RGBDFrame(int(t_ms * MS), np.zeros((*hw, 3), np.uint8) if rgb else None,
                     np.ones(hw, np.float32) if depth else None)


def kept_stamps(buf, stamps_ms):
    kept = []
    for t in stamps_ms:
        if buf.push(frame(t)) == ctx.ACCEPTED:
            kept.append(t)
    return kept


def test_30hz_input_for_10hz_model_keeps_every_third_frame_100ms_apart():
    buf = ctx.ContextBuffer(length=3, interval_s=0.1)
    stamps = [i * 1000 / 30 for i in range(30)]
    kept = kept_stamps(buf, stamps)
    assert np.allclose(np.diff(kept), 100, atol=0.01)
    assert buf.measured_dt_ns() == pytest.approx(100 * MS, abs=1)


def test_jittery_30hz_input_keeps_average_spacing_at_the_interval():
    rng = np.random.default_rng(0)
    buf = ctx.ContextBuffer(length=2, interval_s=0.1)
    stamps = np.cumsum(rng.normal(1000 / 30, 3, size=300))
    kept = kept_stamps(buf, stamps)
    assert np.mean(np.diff(kept)) == pytest.approx(100, abs=5)


def test_input_slower_than_model_keeps_every_frame_and_measures_its_spacing():
    buf = ctx.ContextBuffer(length=2, interval_s=0.1)
    kept = kept_stamps(buf, [0, 200, 400, 600])
    assert kept == [0, 200, 400, 600]
    assert buf.measured_dt_ns() == 200 * MS


def test_stride_takes_every_nth_frame_whatever_the_stamps():
    buf = ctx.ContextBuffer(length=2, interval_s=0.1, stride=2)
    kept = kept_stamps(buf, [0, 10, 20, 30, 40, 50])
    assert kept == [0, 20, 40]


def test_window_needs_a_full_buffer():
    buf = ctx.ContextBuffer(length=2, interval_s=0.1)
    buf.push(frame(0))
    assert buf.window(True, True) is None
    buf.push(frame(100))
    w = buf.window(True, True)
    assert [f.stamp_ns for f in w.frames] == [0, 100 * MS]
    assert w.output_stamps(3) == [200 * MS, 300 * MS, 400 * MS]


def test_output_stamps_are_newest_plus_k_dt():
    assert ctx.output_stamps(1_000, 10, 3) == [1_010, 1_020, 1_030]


def test_window_requires_the_modalities_of_the_mode():
    buf = ctx.ContextBuffer(length=2, interval_s=0.1)
    buf.push(frame(0, depth=False))
    buf.push(frame(100, depth=False))
    assert buf.window(True, True) is None  # full mode needs depth in every frame
    assert buf.window(True, False) is not None  # rgb_only works


def test_same_stamp_merges_the_missing_modality():
    buf = ctx.ContextBuffer(length=2, interval_s=0.1)
    buf.push(frame(0))
    assert buf.push(frame(100, depth=False)) == ctx.ACCEPTED
    assert buf.push(frame(100, rgb=False)) == ctx.MERGED
    assert buf.window(True, True) is not None


def test_backwards_jump_resets_and_keeps_the_new_frame():
    buf = ctx.ContextBuffer(length=2, interval_s=0.1)
    kept_stamps(buf, [1000, 1100, 1200])
    assert buf.push(frame(0)) == ctx.RESET_BACKWARDS
    assert len(buf) == 1 and buf.newest.stamp_ns == 0
    assert buf.resets[ctx.RESET_BACKWARDS] == 1


def test_slightly_older_frame_is_dropped_not_a_reset():
    buf = ctx.ContextBuffer(length=2, interval_s=0.1, backwards_tolerance_s=0.02)
    kept_stamps(buf, [0, 100])
    assert buf.push(frame(90)) == ctx.OUT_OF_ORDER
    assert len(buf) == 2


def test_long_gap_restarts_the_window():
    buf = ctx.ContextBuffer(length=2, interval_s=0.1)
    kept_stamps(buf, [0, 100])
    assert buf.push(frame(1000)) == ctx.RESET_GAP
    assert len(buf) == 1


def test_size_change_restarts_the_window():
    buf = ctx.ContextBuffer(length=2, interval_s=0.1)
    buf.push(frame(0))
    assert buf.push(frame(100, hw=(8, 6))) == ctx.RESET_SHAPE
    assert buf.push(frame(200, hw=(8, 6))) == ctx.ACCEPTED


@pytest.mark.parametrize("kwargs", [dict(length=0, interval_s=0.1), dict(length=2, interval_s=0.0),
                                    dict(length=2, interval_s=0.1, stride=-1)])
def test_bad_settings_are_rejected(kwargs):
    with pytest.raises(ValueError):
        ctx.ContextBuffer(**kwargs)
