"""bench/heldout_picture.py: the model card's picture grid, one row per method, colour and depth columns."""
import numpy as np
import pytest

from syncvp_core.predictor import Predictor
from syncvp_core.testing import load_bench, micro_config

pytest.importorskip("cv2")
hp = load_bench("heldout_picture")


def test_picture_shows_newest_truth_and_every_method_at_the_chosen_horizons():
    p = Predictor.from_config(micro_config(**{"autoencoder.decoder": "anchored", "depth.representation": "log"}))
    rng = np.random.default_rng(0)
    k = p.context_frames + p.chunk_frames
    rgb = rng.integers(0, 256, (k, 24, 32, 3), dtype=np.uint8)
    dep = rng.uniform(0.5, 4.0, (k, 24, 32)).astype(np.float32)
    show = (1, 2, 4)  # the micro model forecasts 4 frames
    img = hp.picture(p, "synthetic", rgb, dep, show)
    scale = round(200 / 32)
    rows, cols = 5, 2 * len(show)  # newest, truth, copy-last, flow, model
    assert img.dtype == np.uint8 and img.shape[2] == 3
    assert img.shape[0] > rows * 24 * scale and img.shape[1] > cols * 32 * scale
