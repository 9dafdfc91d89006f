"""Dropout detection and guidance-mode transitions (syncvp_ros.modes). No ROS."""
from syncvp_ros.modes import DEPTH_ONLY, FULL, NONE, RGB_ONLY, ModeTracker


def feed(tr, t, color=True, depth=True):
    if color:
        tr.record("color", t, True)
    if depth:
        tr.record("depth", t, True)
    return tr.update(t)


def test_start_up_grace_then_error_mode_when_nothing_arrives():
    tr = ModeTracker(0.5, now_s=100.0)
    assert tr.mode == FULL and tr.update(100.4) is None
    t = tr.update(100.6)
    assert t is not None and t.new == NONE and "no usable frame yet" in t.reason
    assert tr.update(101.0) is None  # logged once


def test_depth_silence_switches_to_rgb_only_once_and_back():
    tr = ModeTracker(0.5, now_s=0.0 + 1)
    transitions = []
    for i in range(30):
        t = 1 + i * 0.1
        tr_ = feed(tr, t, depth=i < 5 or i >= 20)
        if tr_:
            transitions.append(tr_)
    assert [(x.old, x.new) for x in transitions] == [(FULL, RGB_ONLY), (RGB_ONLY, FULL)]
    assert "depth: no usable frame for" in transitions[0].reason
    assert tr.dropouts == {"color": 0, "depth": 1}


def test_colour_silence_switches_to_depth_only():
    tr = ModeTracker(0.3, now_s=1)
    for i in range(10):
        feed(tr, 1 + i * 0.1, color=i < 2)
    assert tr.mode == DEPTH_ONLY


def test_unusable_frames_count_as_missing_with_the_reason():
    tr = ModeTracker(0.3, now_s=1)
    last = None
    for i in range(10):
        t = 1 + i * 0.1
        tr.record("color", t, True)
        tr.record("depth", t, False, problem="95% invalid pixels")
        last = tr.update(t) or last
    assert tr.mode == RGB_ONLY
    assert "95% invalid pixels" in last.reason


def test_force_mode_ignores_the_other_modality():
    tr = ModeTracker(0.5, now_s=1, force="rgb_only")
    assert tr.mode == RGB_ONLY
    t = tr.set_force("auto", 1.1)
    assert t.new == FULL and tr.mode == FULL
    assert tr.dropouts == {"color": 0, "depth": 0}


def test_clock_jumping_back_is_not_a_dropout():
    tr = ModeTracker(0.5, now_s=100)
    feed(tr, 100.2)
    assert feed(tr, 5.0) is None  # looping bag under use_sim_time
    assert tr.mode == FULL


def test_zero_time_waits_for_the_clock_to_start():
    tr = ModeTracker(0.5, now_s=0.0)  # sim time before the first /clock
    assert tr.update(1000.0) is None  # grace starts at the first real time
    assert tr.update(1000.6).new == NONE
