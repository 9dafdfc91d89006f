"""Predictor: shapes, dtypes, resolutions, missing modalities, determinism, bad input, checkpoints."""
import numpy as np
import pytest
import torch

from syncvp_core.checkpoint import CheckpointError, save_checkpoint
from syncvp_core.predictor import Predictor, PredictorError
from syncvp_core.testing import micro_config


@pytest.fixture(scope="module")
def pred():
    return Predictor.from_config(micro_config(), seed=0)


def clip(t=3, h=24, w=32, seed=0):
    r = np.random.default_rng(seed)
    rgb = r.integers(0, 256, (t, h, w, 3), dtype=np.uint8)
    dep = r.uniform(0.5, 8.0, (t, h, w)).astype(np.float32)
    dep[0, :3, :3] = np.nan  # sensor holes are normal
    dep[1, 5, 5] = 0.0
    return rgb, dep


@pytest.mark.parametrize("hw", [(24, 32), (16, 16), (7, 41)])
def test_shapes_dtypes_at_sensor_resolution(pred, hw):
    rgb, dep = clip(h=hw[0], w=hw[1])
    out = pred.predict(rgb, dep, steps=2)
    assert out.rgb.shape == (4, *hw, 3) and out.rgb.dtype == np.uint8
    assert out.depth.shape == (4, *hw) and out.depth.dtype == np.float32
    assert np.isfinite(out.depth).all() and (out.depth > 0).all()
    assert out.mode == "full"


@pytest.mark.parametrize("drop,mode", [("depth", "rgb_only"), ("rgb", "depth_only")])
def test_missing_modality_still_predicts_both(pred, drop, mode):
    rgb, dep = clip()
    out = pred.predict(None if drop == "rgb" else rgb, None if drop == "depth" else dep, steps=2)
    assert out.mode == mode
    assert out.rgb.shape == (4, 24, 32, 3) and out.depth.shape == (4, 24, 32)


def test_long_horizon_rolls_out_and_batches(pred):
    rgb, dep = clip()
    out = pred.predict(rgb, dep, horizon=10, steps=2)
    assert out.rgb.shape[0] == 10 and out.depth.shape[0] == 10
    b_rgb, b_dep = np.stack([rgb, rgb[::-1]]), np.stack([dep, dep[::-1]])
    out_b = pred.predict(b_rgb, b_dep, steps=2, seed=3)
    assert out_b.rgb.shape == (2, 4, 24, 32, 3) and out_b.depth.shape == (2, 4, 24, 32)


def test_deterministic_under_seed(pred):
    rgb, dep = clip()
    a = pred.predict(rgb, dep, steps=2, seed=7)
    b = pred.predict(rgb, dep, steps=2, seed=7)
    c = pred.predict(rgb, dep, steps=2, seed=8)
    assert np.array_equal(a.rgb, b.rgb) and np.array_equal(a.depth, b.depth)
    assert not np.array_equal(a.depth, c.depth)


def test_context_affects_prediction(pred):
    rgb, dep = clip()
    a = pred.predict(rgb, dep, steps=2, seed=1)
    b = pred.predict(255 - rgb, dep, steps=2, seed=1)
    assert not np.array_equal(a.rgb, b.rgb)


@pytest.mark.parametrize("args,match", [
    (dict(), "at least one"),
    (dict(context_rgb=np.zeros((3, 8, 8, 3), np.float32)), "uint8"),
    (dict(context_rgb=np.zeros((3, 8, 8), np.uint8)), "shape"),
    (dict(context_rgb=np.zeros((1, 8, 8, 3), np.uint8)), "at least 2 context frames"),
    (dict(context_rgb=np.zeros((0, 8, 8, 3), np.uint8)), "empty"),
    (dict(context_depth=np.zeros((3, 8, 8), np.uint16)), "float"),
    (dict(context_depth=np.full((3, 8, 8), np.nan, np.float32)), "invalid"),
    (dict(context_depth=np.full((3, 8, 8), np.inf, np.float32)), "invalid"),
    (dict(context_rgb=np.zeros((3, 8, 8, 3), np.uint8), context_depth=np.ones((3, 8, 9), np.float32)),
     "registered"),
    (dict(context_rgb=np.zeros((3, 8, 8, 3), np.uint8), context_depth=np.ones((2, 8, 8), np.float32)), "frames"),
    (dict(context_rgb=[[1]]), "numpy"),
])
def test_bad_input_gives_clear_errors(pred, args, match):
    with pytest.raises(PredictorError, match=match):
        pred.predict(**args, steps=1)


def test_bad_horizon(pred):
    rgb, dep = clip()
    with pytest.raises(PredictorError, match="horizon"):
        pred.predict(rgb, dep, horizon=0)


def _save(model, path, cfg):
    return save_checkpoint(path, model.state_dict(), {"config": cfg.to_dict(), "stage": "joint", "step": 0})


def test_checkpoint_round_trip(tmp_path, pred):
    path = _save(pred.model, tmp_path / "m.safetensors", pred.config)
    assert (tmp_path / "m.json").exists()
    p2 = Predictor.from_checkpoint(path)
    rgb, dep = clip()
    a, b = pred.predict(rgb, dep, steps=2, seed=1), p2.predict(rgb, dep, steps=2, seed=1)
    assert np.array_equal(a.rgb, b.rgb) and np.allclose(a.depth, b.depth)
    assert p2.meta["sha256"] and p2.meta["stage"] == "joint"


def test_corrupt_or_wrong_checkpoints_are_refused(tmp_path, pred):
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00{not json at all")
    with pytest.raises(CheckpointError, match="not a valid safetensors"):
        Predictor.from_checkpoint(bad)
    with pytest.raises(CheckpointError, match="only .safetensors"):
        Predictor.from_checkpoint(tmp_path / "x.pt") if (tmp_path / "x.pt").write_bytes(b"x") else None
    with pytest.raises(CheckpointError, match="not found"):
        Predictor.from_checkpoint(tmp_path / "missing.safetensors")
    # Right file format, wrong architecture: the error names keys and shapes.
    sd = pred.model.state_dict()
    key = next(k for k in sd if k.endswith("conv_in.weight"))
    sd[key] = torch.zeros(1, 2, 3, 3)
    del sd[next(k for k in sd if "time_mlp" in k)]
    save_checkpoint(tmp_path / "w.safetensors", sd, {"config": pred.config.to_dict()})
    with pytest.raises(CheckpointError, match="shape mismatch") as e:
        Predictor.from_checkpoint(tmp_path / "w.safetensors")
    assert "missing 1 key" in str(e.value) and key.split(".")[0] in str(e.value)
    # No config in the metadata.
    save_checkpoint(tmp_path / "n.safetensors", pred.model.state_dict(), {})
    with pytest.raises(CheckpointError, match="no model config"):
        Predictor.from_checkpoint(tmp_path / "n.safetensors")
