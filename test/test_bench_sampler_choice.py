"""bench/sampler_choice.py: the freshly rendered simulator sequences it chooses on are nobody's training or
held-out data, and come at the size asked for."""
import importlib.util
from pathlib import Path

import numpy as np
import pytest

from syncvp_core.data.demo import SIM_SEED
from syncvp_core.data.sim.writer import sequence_seeds
from syncvp_core.testing import load_bench
from syncvp_core.training.config import load_train_config

ROOT = Path(__file__).parent.parent


@pytest.fixture(scope="module")
def sc():
    return load_bench("sampler_choice")


def test_choice_sequences_share_no_seed_with_any_data_mix_or_the_demo(sc):
    used = {SIM_SEED}
    for path in sorted((ROOT / "config/train").glob("*.yaml")):
        for part in load_train_config(path).data.sim_mix:
            used |= set(sequence_seeds(part.seed, part.sequences))
    assert len(used) > 80  # the motion mix's sequences were found
    seeds = sc.choice_seeds(12)
    assert len(set(seeds)) == 12 and not used & set(seeds)


@pytest.mark.skipif(importlib.util.find_spec("mujoco") is None, reason="mujoco is not installed")
def test_choice_windows_render_each_motion_at_the_asked_size(sc):
    from syncvp_core.data import sim

    try:
        sim.select_gl_backend()
    except sim.SimError as e:
        pytest.skip(str(e))
    wins = list(sc.sim_choice_windows(3, (24, 32), 2, 4, 10.0, step=3, frames=12, antialias=False, shadows=False))
    assert len(wins) == 3 * 3  # starts 0, 3, 6 of 12 frames, three sequences (handheld, robot, car)
    rgb, dep = wins[4]
    assert rgb.shape == (6, 24, 32, 3) and rgb.dtype == np.uint8
    assert dep.shape == (6, 24, 32) and dep.dtype == np.float32
    assert not np.array_equal(wins[0][0], wins[3][0])  # different sequences
