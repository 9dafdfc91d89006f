"""bench/anchor_ceiling.py: windows of a data mix's held-out simulator sequences, ceilings scored on them."""
import importlib.util
from pathlib import Path

import numpy as np
import pytest

from syncvp_core.testing import load_bench

ROOT = Path(__file__).parent.parent
pytestmark = pytest.mark.skipif(importlib.util.find_spec("mujoco") is None, reason="mujoco is not installed")


@pytest.fixture(scope="module")
def ac():
    return load_bench("anchor_ceiling")


@pytest.fixture(scope="module")
def sim_seq(tmp_path_factory):
    from syncvp_core.data import sim

    try:
        sim.select_gl_backend()
    except sim.SimError as e:
        pytest.skip(str(e))
    raw = tmp_path_factory.mktemp("mix") / "car" / "raw"
    cfg = sim.SimConfig(height=24, width=32, frames=12, antialias=False, shadows=False, motion="car")
    sim.generate(raw, 1, cfg, seed=5, workers=1, progress=False)
    return sim.list_sequences(raw)[0]


def test_sim_mix_windows_cover_the_whole_sequence(ac, sim_seq):
    wins = list(ac.sim_mix_windows(sim_seq, 2, 4, 10.0, 3))
    assert len(wins) == 3  # starts 0, 3, 6 of 12 frames
    rgb, dep = wins[1]
    assert rgb.shape == (6, 24, 32, 3) and rgb.dtype == np.uint8 and dep.shape == (6, 24, 32)
    from syncvp_core.data.sim import SimSequence

    np.testing.assert_array_equal(rgb, SimSequence.load(sim_seq).rgb[3:9])


def test_ceiling_is_scored_on_the_held_out_simulator_group(ac, sim_seq, monkeypatch):
    from syncvp_core.predictor import Predictor

    monkeypatch.setattr(ac, "REAL", [])  # only the simulator groups
    monkeypatch.setattr(ac, "SIM", [])
    p = Predictor.from_checkpoint()
    acc, counts = ac.evaluate({"shipped": p}, window_step=9, lpips=False, sim_sequences=[sim_seq])
    assert counts == {"car/seq_00000": 1}
    group = ac.SIM_MIX_GROUP
    for method in ("copy_last", "const_velocity", "ceiling:shipped"):
        assert len(acc.stats[f"{group}/{method}/absrel"].summary()["mean"]) == p.chunk_frames
