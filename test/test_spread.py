"""Predictor.predict(num_samples=N): N forecasts in one batched call, mean and per-pixel spread."""
import numpy as np
import pytest

from syncvp_core.predictor import Predictor, PredictorError
from syncvp_core.spread import summarise
from syncvp_core.testing import micro_config


@pytest.fixture(scope="module")
def pred():
    return Predictor.from_config(micro_config(), seed=0)


def clip(t=3, h=24, w=32, seed=0):
    r = np.random.default_rng(seed)
    return (r.integers(0, 256, (t, h, w, 3), dtype=np.uint8), r.uniform(0.5, 8.0, (t, h, w)).astype(np.float32))


def test_samples_mean_and_std_shapes_and_values(pred):
    rgb, dep = clip()
    out = pred.predict(rgb, dep, steps=2, seed=5, num_samples=4)
    s = out.spread
    assert s.num_samples == 4
    assert s.rgb.shape == (4, 4, 24, 32, 3) and s.rgb.dtype == np.uint8
    assert s.depth.shape == (4, 4, 24, 32) and s.depth.dtype == np.float32
    assert out.rgb.shape == (4, 24, 32, 3) and out.depth.shape == (4, 24, 32)
    assert s.depth_std.shape == (4, 24, 32) and s.rgb_std.shape == (4, 24, 32)
    np.testing.assert_allclose(out.depth, s.depth.mean(axis=0), rtol=1e-5)
    np.testing.assert_allclose(s.depth_std, s.depth.std(axis=0), rtol=1e-4, atol=1e-6)
    want_rgb_std = np.sqrt(s.rgb.astype(np.float64).var(axis=0).mean(axis=-1))
    np.testing.assert_allclose(s.rgb_std, want_rgb_std, rtol=1e-4, atol=1e-4)
    np.testing.assert_array_equal(out.rgb, np.round(s.rgb.astype(np.float64).mean(axis=0)).astype(np.uint8))
    # Different noise per sample: the samples differ and the spread is not zero.
    assert not np.array_equal(s.depth[0], s.depth[1])
    assert float(s.depth_std.mean()) > 0 and float(s.rgb_std.mean()) > 0


def test_the_samples_are_one_batched_call_with_the_repeated_context(pred):
    rgb, dep = clip()
    calls = []
    inner = pred.backend.denoise

    def counting(*a, **kw):
        calls.append(1)
        return inner(*a, **kw)

    pred.backend.denoise = counting
    try:
        pred.predict(rgb, dep, steps=2, seed=1)
        n_single = len(calls)
        calls.clear()
        out = pred.predict(rgb, dep, steps=2, seed=1, num_samples=3)
        assert len(calls) == n_single  # one sampler loop, not three
    finally:
        pred.backend.denoise = inner
    manual = pred.predict(np.stack([rgb] * 3), np.stack([dep] * 3), steps=2, seed=1)
    np.testing.assert_array_equal(out.spread.depth, manual.depth)
    np.testing.assert_array_equal(out.spread.rgb, manual.rgb)
    again = pred.predict(rgb, dep, steps=2, seed=1, num_samples=3)  # same seed = same samples
    np.testing.assert_array_equal(again.spread.depth, out.spread.depth)


def test_batched_contexts_put_samples_on_axis_one(pred):
    rgb, dep = clip()
    rgb2, dep2 = clip(seed=1)
    out = pred.predict(np.stack([rgb, rgb2]), np.stack([dep, dep2]), steps=2, num_samples=3)
    assert out.spread.depth.shape == (2, 3, 4, 24, 32) and out.spread.rgb.shape == (2, 3, 4, 24, 32, 3)
    assert out.depth.shape == (2, 4, 24, 32) and out.spread.depth_std.shape == (2, 4, 24, 32)
    np.testing.assert_allclose(out.depth[1], out.spread.depth[1].mean(axis=0), rtol=1e-5)


def test_missing_modality_with_samples(pred):
    rgb, _ = clip()
    out = pred.predict(rgb, None, steps=2, num_samples=2)
    assert out.mode == "rgb_only" and out.spread.depth.shape == (2, 4, 24, 32)


def test_one_sample_has_no_spread_and_bad_counts_are_refused(pred):
    rgb, dep = clip()
    assert pred.predict(rgb, dep, steps=2).spread is None
    for bad in (0, -2, 1.5, True, "2"):
        with pytest.raises(PredictorError, match="num_samples"):
            pred.predict(rgb, dep, steps=2, num_samples=bad)
    with pytest.raises(PredictorError, match="numpy array"):  # the usual input checks still apply
        pred.predict([[1]], dep, steps=2, num_samples=2)


def test_summarise_keeps_all_nan_pixels_nan():
    depth = np.array([[[1.0, np.nan]], [[3.0, np.nan]]], np.float32)[:, None]  # (N=2, K=1, 1, 2)
    rgb = np.zeros((2, 1, 1, 2, 3), np.uint8)
    rgb[1, ..., 0] = 30
    mean_rgb, mean_d, s = summarise(rgb, depth, 2, batched=False)
    assert mean_d[0, 0, 0] == 2.0 and np.isnan(mean_d[0, 0, 1])
    assert s.depth_std[0, 0, 0] == 1.0 and np.isnan(s.depth_std[0, 0, 1])
    np.testing.assert_allclose(s.rgb_std[0, 0], np.sqrt(15.0 ** 2 / 3))
    assert mean_rgb[0, 0, 0, 0] == 15
