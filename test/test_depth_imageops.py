"""Depth normalisation is exactly invertible; resizing keeps invalid pixels out of valid ones."""
import numpy as np
import pytest
import torch

from syncvp_core.config import DepthConfig
from syncvp_core.depth import denormalize, normalize
from syncvp_core.imageops import resize_depth, resize_rgb, scale_intrinsics


@pytest.mark.parametrize("rep", ["inverse", "linear"])
def test_depth_round_trip_exact_in_range(rep):
    cfg = DepthConfig(min_m=0.2, max_m=20.0, representation=rep)
    d = torch.linspace(0.2, 20.0, 1001, dtype=torch.float64)
    x, mask = normalize(d, cfg)
    assert mask.all() and x.min() >= -1 and x.max() <= 1
    torch.testing.assert_close(denormalize(x, cfg), d, rtol=1e-9, atol=1e-9)


def test_invalid_depth_is_masked_and_far():
    cfg = DepthConfig()
    d = torch.tensor([float("nan"), 0.0, -1.0, float("inf"), 1.0])
    x, mask = normalize(d, cfg)
    assert mask.tolist() == [False, False, False, False, True]
    assert (x[:4] == -1).all()


def test_resize_depth_ignores_invalid():
    d = np.full((4, 4), 2.0, np.float32)
    d[:2, :2] = np.nan
    out = resize_depth(d, (2, 2))
    assert np.isnan(out[0, 0]) and np.allclose(out[1, 1], 2.0) and np.allclose(out[0, 1], 2.0)
    up = resize_depth(np.full((2, 3), 1.5, np.float32), (5, 7))
    assert up.shape == (5, 7) and np.allclose(up, 1.5)


def test_resize_rgb_and_intrinsics():
    img = np.full((2, 120, 160, 3), 77, np.uint8)
    out = resize_rgb(img, (64, 64))
    assert out.shape == (2, 64, 64, 3) and (out == 77).all()
    k = np.array([[100.0, 0, 79.5], [0, 100.0, 59.5], [0, 0, 1]])
    k2 = scale_intrinsics(k, (120, 160), (60, 80))
    assert np.allclose(k2, [[50, 0, 39.5], [0, 50, 29.5], [0, 0, 1]])
