"""DepthHold: depth during a depth dropout, read from one long forecast of the newest synced context."""
import numpy as np
import pytest

from syncvp_core.depth_hold import DepthHold

MS = 1_000_000
DT = 100 * MS


def context(value=1.0, hw=(6, 8)):
    rgb = np.zeros((2, *hw, 3), np.uint8)
    depth = np.full((2, *hw), value, np.float32)
    return rgb, depth


class Recorder:
    """A forecast whose frame t (1-based) has depth = the context's newest depth + t: an extension made from
    the forecast's own last frames continues the count, so the value read back says which frame it is."""

    def __init__(self, samples=0):
        self.calls = []
        self.samples = samples

    def __call__(self, rgb, depth, horizon):
        self.calls.append(horizon)
        t = np.arange(1, horizon + 1, dtype=np.float32)[:, None, None]
        out = depth[-1] + t + np.zeros((horizon, *depth.shape[1:]), np.float32)
        colour = np.zeros((horizon, *rgb.shape[1:]), np.uint8)
        if not self.samples:
            return colour, out, None, None
        samples = np.stack([out + 10 * i for i in range(self.samples)])
        return colour, out, samples, samples.std(axis=0)


def output_stamps(newest, k=3):
    return [newest + i * DT for i in range(1, k + 1)]


def test_each_stamp_reads_the_frame_that_many_model_frames_past_the_held_context():
    hold = DepthHold(1.0)
    hold.remember(*context(), newest_ns=10_000 * MS, dt_ns=DT)
    fc = Recorder()
    newest = 10_000 * MS + 3 * DT  # depth went silent three frames ago
    held = hold.depth_for(output_stamps(newest), newest, fc)
    assert held.frames_ahead == [4, 5, 6]
    assert [float(d[0, 0]) for d in held.depth] == [5, 6, 7]  # context depth 1 + frames ahead
    assert held.age_s == pytest.approx(0.3) and held.samples is None and held.std is None
    assert fc.calls == [8]  # one chunk (step_frames 8) covers frames 1..8


def test_one_forecast_serves_the_dropout_extended_a_chunk_at_a_time_and_a_new_context_starts_over():
    hold = DepthHold(1.0, step_frames=4)
    hold.remember(*context(1.0), newest_ns=0, dt_ns=DT)
    fc = Recorder()
    for lag in range(1, 11):
        newest = lag * DT
        assert hold.usable(newest, (6, 8))
        held = hold.depth_for(output_stamps(newest), newest, fc)
        assert [float(d[0, 0]) for d in held.depth] == [1 + lag + k for k in (1, 2, 3)]
    # frames 1..13 needed: 4 at first, extended from the forecast's own last frames as the dropout aged
    assert fc.calls == [4, 4, 4, 4] and hold.forecasts == 4
    assert not hold.usable(11 * DT, (6, 8))  # 1.1 s > depth_hold: too old
    hold.remember(*context(2.0), newest_ns=20 * DT, dt_ns=DT)  # depth came back, then went again
    held = hold.depth_for(output_stamps(21 * DT), 21 * DT, fc)
    assert float(held.depth[0, 0, 0]) == 4 and hold.forecasts == 5


def test_a_jump_in_the_horizon_is_forecast_in_whole_chunks():
    hold = DepthHold(2.0, step_frames=4)
    hold.remember(*context(), newest_ns=0, dt_ns=DT)
    fc = Recorder()
    hold.depth_for(output_stamps(DT, 2), DT, fc)
    held = hold.depth_for(output_stamps(2 * DT, 10), 2 * DT, fc)  # the horizon parameter grew
    assert fc.calls == [4, 8] and held.frames_ahead == list(range(3, 13))
    assert [float(d[0, 0]) for d in held.depth] == [1 + a for a in range(3, 13)]


def test_samples_and_std_follow_the_same_frames():
    hold = DepthHold(1.0)
    hold.remember(*context(), newest_ns=0, dt_ns=DT)
    held = hold.depth_for(output_stamps(2 * DT), 2 * DT, Recorder(samples=3))
    assert held.samples.shape == (3, 3, 6, 8) and held.std.shape == (3, 6, 8)
    assert held.samples[:, 0, 0, 0].tolist() == [4, 14, 24]  # sample i of frame 3
    assert np.allclose(held.std[:, 0, 0], np.std([0, 10, 20]))


def test_not_usable_when_off_empty_stamps_went_back_or_the_size_changed():
    hold = DepthHold(1.0)
    assert not hold.usable(0, (6, 8)) and hold.age_s(0) is None
    assert hold.depth_for(output_stamps(0), 0, Recorder()) is None
    hold.remember(*context(), newest_ns=10 * DT, dt_ns=DT)
    assert hold.usable(12 * DT, (6, 8))
    assert not hold.usable(9 * DT, (6, 8))  # a looping bag: older than the held context
    assert not hold.usable(12 * DT, (12, 16))  # the camera's resolution changed
    hold.max_age_s = 0.0  # depth_hold:=0 at runtime
    assert not hold.enabled and not hold.usable(12 * DT, (6, 8))
    hold.max_age_s = 1.0
    hold.forget()
    assert not hold.usable(12 * DT, (6, 8))
    with pytest.raises(ValueError, match="max_age_s"):
        DepthHold(-1.0)
    with pytest.raises(ValueError, match="spacing"):
        hold.remember(*context(), newest_ns=0, dt_ns=0)
