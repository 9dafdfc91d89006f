"""Colour and depth metrics against independent references (scikit-image, hand-computed values)."""
import math

import numpy as np
import pytest
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

from syncvp_core.evaluation.metrics import HorizonStats, depth_errors, psnr, ssim


def _pair(seed=0, shape=(3, 40, 52, 3)):
    rng = np.random.default_rng(seed)
    a = rng.integers(0, 256, shape, dtype=np.uint8)
    b = np.clip(a.astype(int) + rng.integers(-40, 40, shape), 0, 255).astype(np.uint8)
    return a, b


def test_psnr_matches_skimage():
    a, b = _pair()
    ours = psnr(a, b)
    assert ours.shape == (3,)
    for i in range(3):
        ref = peak_signal_noise_ratio(a[i] / 255.0, b[i] / 255.0, data_range=1.0)
        assert ours[i] == pytest.approx(ref, abs=1e-9)


def test_psnr_identical_frames_is_capped_not_inf():
    a, _ = _pair()
    assert np.all(psnr(a, a) == pytest.approx(100.0))


def test_ssim_matches_skimage_gaussian_wang():
    a, b = _pair(1)
    ours = ssim(a, b)
    for i in range(3):
        ref = structural_similarity(a[i] / 255.0, b[i] / 255.0, gaussian_weights=True, sigma=1.5,
                                    use_sample_covariance=False, data_range=1.0, channel_axis=-1)
        assert ours[i] == pytest.approx(ref, abs=1e-9)
    assert ssim(a, a) == pytest.approx(np.ones(3))


def test_ssim_has_no_batch_min_max():
    # A global brightness offset must lower SSIM (the official batch min-max would hide it).
    a, _ = _pair(2, (1, 32, 32, 3))
    brighter = np.clip(a.astype(int) // 2 + 100, 0, 255).astype(np.uint8)
    darker = (a.astype(int) // 2).astype(np.uint8)
    assert ssim(brighter, darker)[0] < 0.9


def test_float_and_uint8_inputs_agree():
    a, b = _pair(3)
    assert np.allclose(psnr(a, b), psnr(a / 255.0, b / 255.0))
    assert np.allclose(ssim(a, b), ssim(a / 255.0, b / 255.0))


def test_shape_mismatch_is_an_error():
    a, b = _pair()
    with pytest.raises(ValueError, match="shape"):
        psnr(a, b[:, :-1])


def test_depth_errors_hand_computed():
    gt = np.array([[[1.0, 2.0], [4.0, np.nan]]])  # one frame, 3 valid pixels
    pred = np.array([[[1.1, 2.0], [2.0, 3.0]]])
    e = depth_errors(pred, gt)
    absrel = (0.1 / 1.0 + 0.0 + 2.0 / 4.0) / 3
    rmse = math.sqrt((0.01 + 0.0 + 4.0) / 3)
    assert e["absrel"][0] == pytest.approx(absrel)
    assert e["rmse"][0] == pytest.approx(rmse)
    assert e["delta1"][0] == pytest.approx(2 / 3)  # 1.1 and 2.0 are within 1.25, 2 vs 4 is not
    assert e["coverage"][0] == pytest.approx(1.0)


def test_depth_errors_skip_invalid_pred_and_report_coverage():
    gt = np.array([[[1.0, 2.0], [0.0, 4.0]]])  # 0 = invalid
    pred = np.array([[[1.0, np.nan], [5.0, 4.0]]])
    e = depth_errors(pred, gt)
    assert e["absrel"][0] == pytest.approx(0.0)
    assert e["coverage"][0] == pytest.approx(2 / 3)


def test_depth_errors_frame_without_valid_gt_is_nan():
    gt = np.full((2, 3, 3), np.nan)
    gt[1] = 2.0
    e = depth_errors(np.full((2, 3, 3), 2.0), gt)
    assert np.isnan(e["rmse"][0]) and e["rmse"][1] == 0.0


def test_horizon_stats_mean_over_windows_and_missing():
    s = HorizonStats(2)
    s.add([1.0, 10.0])
    s.add([3.0, np.nan])
    out = s.summary()
    assert out["mean"] == [2.0, 10.0]
    assert out["n"] == [2, 1] and out["missing"] == [0, 1]
    assert out["mean_over_horizon"] == pytest.approx(14.0 / 3)
    assert out["std"][0] == pytest.approx(math.sqrt(2.0))
