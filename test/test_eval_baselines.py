"""Baselines: copy-last is exact; constant velocity recovers a known global translation; dense-flow
extrapolation follows an analytic image shift, warps depth without mixing edges and keeps holes invalid;
scene flow also extrapolates each pixel's depth change, capped."""
import sys

import numpy as np
import pytest
from scipy import ndimage

from syncvp_core.evaluation.baselines import (
    ConstantVelocity,
    CopyLast,
    FlowExtrapolation,
    SceneFlowExtrapolation,
    phase_correlation,
    refine_shift,
    resize_ceiling,
)


def _texture(seed=0, size=(260, 340)):
    rng = np.random.default_rng(seed)
    t = ndimage.gaussian_filter(rng.uniform(0, 1, size + (3,)), (2, 2, 0))
    return ((t - t.min()) / (t.max() - t.min()) * 255).astype(np.uint8)


def _moving(big, d, n=6, h=60, w=80, y0=90, x0=120):
    """Frames whose content moves by d=(dy, dx) integer pixels per frame (the crop window moves by -d)."""
    return np.stack([big[y0 - k * d[0]:y0 - k * d[0] + h, x0 - k * d[1]:x0 - k * d[1] + w] for k in range(n)])


def test_copy_last_is_exact_and_na_for_missing_modality():
    rng = np.random.default_rng(0)
    rgb = rng.integers(0, 256, (2, 8, 9, 3), dtype=np.uint8)
    dep = rng.uniform(0.5, 3, (2, 8, 9)).astype(np.float32)
    out = CopyLast().predict(rgb, dep, horizon=3)
    assert out.mode == "full" and out.rgb.shape == (3, 8, 9, 3) and out.depth.shape == (3, 8, 9)
    assert all(np.array_equal(f, rgb[-1]) for f in out.rgb)
    assert all(np.array_equal(f, dep[-1]) for f in out.depth)
    only_rgb = CopyLast().predict(rgb, None, horizon=3)
    assert only_rgb.mode == "rgb_only" and only_rgb.depth is None
    assert CopyLast().predict(None, dep, horizon=3).rgb is None


@pytest.mark.parametrize("d", [(3, -5), (0, 7), (-4, 2)])
def test_constant_velocity_recovers_integer_translation(d):
    frames = _moving(_texture(), d)
    cv = ConstantVelocity()
    out = cv.predict(frames[:2], None, horizon=4)
    assert cv.last_velocity == pytest.approx(d, abs=0.02)
    for k in range(4):
        my, mx = 1 + (k + 1) * abs(d[0]), 1 + (k + 1) * abs(d[1])  # border pixels left the context frame
        inner = (slice(my, 60 - my), slice(mx, 80 - mx))
        assert np.abs(out.rgb[k][inner].astype(int) - frames[2 + k][inner]).max() <= 1


def test_constant_velocity_from_depth_only_moves_depth():
    big = _texture(1).astype(np.float32)[..., 0] / 255.0 * 3 + 0.5  # metres
    d = (2, -3)
    frames = _moving(big[..., None].repeat(3, -1), d)[..., 0]
    cv = ConstantVelocity()
    out = cv.predict(None, frames[:2], horizon=2)
    assert out.rgb is None and out.mode == "depth_only"
    assert cv.last_velocity == pytest.approx(d, abs=0.05)
    assert np.allclose(out.depth[0][8:-8, 8:-8], frames[2][8:-8, 8:-8])


def test_subpixel_shift():
    rng = np.random.default_rng(0)
    big = ndimage.gaussian_filter(rng.uniform(0, 1, (300, 300)), 2)
    d = (1.3, -2.6)
    a, b = big[100:200, 100:220], ndimage.shift(big, d, order=3)[100:200, 100:220]
    assert refine_shift(a, b, phase_correlation(a, b)) == pytest.approx(d, abs=0.05)


def test_no_texture_means_no_motion_and_no_crash():
    flat = np.full((2, 40, 50, 3), 128, np.uint8)
    out = ConstantVelocity().predict(flat, None, horizon=2)
    assert np.array_equal(out.rgb[1], flat[-1])


def test_resize_ceiling_shapes():
    rng = np.random.default_rng(0)
    f = resize_ceiling(rng.integers(0, 256, (2, 30, 40, 3), dtype=np.uint8),
                       rng.uniform(1, 2, (2, 30, 40)).astype(np.float32), (16, 16))
    assert f.rgb.shape == (2, 30, 40, 3) and f.depth.shape == (2, 30, 40)


@pytest.mark.parametrize("d", [(3, -5), (0, 4), (-2, 2)])
def test_flow_follows_analytic_shift(d):
    frames = _moving(_texture(2), d, h=96, w=128)
    fl = FlowExtrapolation()
    out = fl.predict(frames[:2], None, horizon=3)
    assert out.mode == "full" or out.mode == "rgb_only"
    inner_f = fl.last_flow[16:-16, 16:-16]
    # pixel p of the newest frame was at p - d one frame earlier: flow = -(dx, dy)
    assert np.median(inner_f[..., 0]) == pytest.approx(-d[1], abs=0.1)
    assert np.median(inner_f[..., 1]) == pytest.approx(-d[0], abs=0.1)
    for k in range(3):
        my, mx = 8 + (k + 1) * abs(d[0]), 8 + (k + 1) * abs(d[1])
        inner = (slice(my, 96 - my), slice(mx, 128 - mx))
        err = np.abs(out.rgb[k][inner].astype(int) - frames[2 + k][inner])
        assert np.median(err) <= 1 and err.mean() < 2.0, (k, err.mean())


def _depth_scene(n=4, h=64, w=96, d=(0, 3)):
    """A near textured block (2 m) moving by d per frame over a static far textured wall (6 m)."""
    wall = _texture(3, (h, w))
    block = _texture(4, (24, 24))
    rgb, dep = [], []
    for k in range(n):
        r, z = wall.copy(), np.full((h, w), 6.0, np.float32)
        y0, x0 = 20 + k * d[0], 10 + k * d[1]
        r[y0:y0 + 24, x0:x0 + 24] = block
        z[y0:y0 + 24, x0:x0 + 24] = 2.0
        z[:, :3] = np.nan  # an invalid band (sensor shadow)
        rgb.append(r)
        dep.append(z)
    return np.stack(rgb), np.stack(dep)


def test_flow_moves_an_object_and_warps_depth_validity_aware():
    rgb, dep = _depth_scene()
    out = FlowExtrapolation().predict(rgb[:2], dep[:2], horizon=2)
    vals = out.depth[np.isfinite(out.depth)]
    assert set(np.unique(vals)) <= {2.0, 6.0}  # nearest: no depth between the two surfaces
    for k in range(2):
        truth = dep[2 + k]
        x0 = 10 + 3 * (2 + k)  # where the block is in the true future frame
        core = (slice(24, 40), slice(x0 + 4, x0 + 20))
        assert np.all(out.depth[k][core] == 2.0)
        bg = (slice(50, 62), slice(40, 90))  # static wall
        assert np.all(out.depth[k][bg] == truth[bg])
        assert np.isnan(out.depth[k][:, :3]).all()  # invalid stays invalid
        both = np.isfinite(truth) & np.isfinite(out.depth[k])
        assert (out.depth[k][both] == truth[both]).mean() > 0.97  # the leading edge moves with the block
    # dense flow beats one global translation on a moving object over a static background
    cv = ConstantVelocity().predict(rgb[:2], dep[:2], horizon=2)
    err_flow = np.abs(out.rgb.astype(int) - rgb[2:4]).mean()
    err_cv = np.abs(cv.rgb.astype(int) - rgb[2:4]).mean()
    assert err_flow < err_cv


def test_flow_outside_sources_are_holes_and_depth_only_works():
    big = _texture(1).astype(np.float32)[..., 0] / 255.0 * 3 + 0.5
    d = (0, 4)
    frames = _moving(big[..., None].repeat(3, -1), d, h=64, w=96)[..., 0]
    fl = FlowExtrapolation()
    out = fl.predict(None, frames[:2], horizon=2)
    assert out.rgb is None and out.mode == "depth_only"
    # content moves right: the leftmost 4*k columns come from outside the newest frame
    for k in range(2):
        assert np.isnan(out.depth[k][10:-10, : 4 * (k + 1) - 1]).all()
        inner = (slice(10, -10), slice(4 * (k + 1) + 8, -8))
        assert np.nanmean(np.abs(out.depth[k][inner] - frames[2 + k][inner])) < 0.05
    with pytest.raises(ValueError, match="2 context frames"):
        fl.predict(None, frames[:1], horizon=2)
    # a size OpenCV's DIS would crash on is a clear error (a failed window in eval-bag), not a segfault
    with pytest.raises(ValueError, match="16 px"):
        fl.predict(np.zeros((2, 12, 48, 3), np.uint8), None, horizon=2)


def test_scene_flow_extrapolates_an_approaching_surface_and_caps_jumps():
    # A textured scene that shifts sideways while its depth falls 0.1 m per frame (the wall approaches),
    # with one patch 2 m nearer in the older frame only (what a flow error at an edge looks like: a jump,
    # not motion) and an invalid band.
    frames = _moving(_texture(5), (0, 2), n=4, h=64, w=96)
    dep = np.stack([np.full((64, 96), 4.0 - 0.1 * k, np.float32) for k in range(4)])
    dep[0, 30:40, 40:50] = 2.0
    dep[:, :, :3] = np.nan
    sf = SceneFlowExtrapolation().predict(frames[:2], dep[:2], horizon=2)
    of = FlowExtrapolation().predict(frames[:2], dep[:2], horizon=2)
    far = (slice(8, 24), slice(60, 88))  # away from the patch and the borders
    for k in range(2):
        assert np.allclose(sf.depth[k][far], 4.0 - 0.1 * (2 + k), atol=1e-4)  # nearer each step, as truth
        assert np.allclose(of.depth[k][far], 3.9)  # optical flow carries the newest depth unchanged
        assert np.isnan(sf.depth[k][:, :2]).all()  # invalid stays invalid
    # the jump (+1.9 m) is capped at 10 % of the depth per frame: never farther than 3.9 * (1 + 0.1 * k)
    for k in range(2):
        assert np.nanmax(sf.depth[k]) == pytest.approx(3.9 * (1 + 0.1 * (k + 1)), abs=1e-4)
    assert np.array_equal(sf.rgb, of.rgb)  # the same flow, the same colour


def test_missing_opencv_is_a_clear_protocol_error(monkeypatch):
    from syncvp_core.evaluation.protocol import EvalError, EvalProtocol

    monkeypatch.setitem(sys.modules, "cv2", None)  # as on a machine without the eval extra
    with pytest.raises(EvalError, match="opencv-python-headless.*leave it out"):
        EvalProtocol().validate()
    EvalProtocol(baselines=("copy_last", "const_velocity")).validate()
