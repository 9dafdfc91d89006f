"""The shipped default checkpoint: present, small, loaded by Predictor.from_checkpoint(None), documented."""
from __future__ import annotations

import json

import numpy as np

from syncvp_core.checkpoint import DEFAULT_CHECKPOINT, load_checkpoint, sidecar_path
from syncvp_core.predictor import Predictor


def test_default_checkpoint_is_small_and_complete():
    assert DEFAULT_CHECKPOINT.exists(), "syncvp_core/assets/default/syncvp_tiny.safetensors is missing"
    size = DEFAULT_CHECKPOINT.stat().st_size + sidecar_path(DEFAULT_CHECKPOINT).stat().st_size
    assert size <= 25 * 2**20
    tensors, meta = load_checkpoint(DEFAULT_CHECKPOINT)
    assert {k.split(".")[0] for k in tensors} == {"ae_rgb", "ae_depth", "denoiser"}
    assert meta["kind"] == "model" and meta["config"]["name"] in ("tiny", "tiny_anchored")
    side = json.loads(sidecar_path(DEFAULT_CHECKPOINT).read_text())
    assert side["data_fingerprint"] and side["code_version"] and side["joint_step"] > 0


def test_predictor_loads_default_and_predicts():
    p = Predictor.from_checkpoint(None)
    assert p.model_name == load_checkpoint(DEFAULT_CHECKPOINT)[1]["config"]["name"]
    assert p.checkpoint == DEFAULT_CHECKPOINT
    rng = np.random.default_rng(0)
    rgb = rng.integers(0, 255, (2, 120, 160, 3), dtype=np.uint8)
    dep = rng.uniform(0.5, 4.0, (2, 120, 160)).astype(np.float32)
    out = p.predict(rgb, dep, steps=2)
    assert out.rgb.shape == (8, 120, 160, 3) and out.depth.shape == (8, 120, 160)
    # the anchored decoder may leave warp holes invalid (NaN), never most of the frame
    assert np.isfinite(out.depth).mean() > 0.5 and np.nanmin(out.depth) > 0 and out.mode == "full"
