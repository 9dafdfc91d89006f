"""Resume equivalence: a run killed after step k and restarted repeats the uninterrupted run exactly
(same losses, same data order, same final weights, EMA and optimiser state)."""
from __future__ import annotations

import shutil

import pytest
import torch

from syncvp_core.checkpoint import load_checkpoint
from syncvp_core.training.config import load_train_config
from syncvp_core.training.dist import DistInfo
from syncvp_core.training.loop import read_losses
from syncvp_core.training.pipeline import Session
from syncvp_core.training.synthetic import smoke_overrides, write_synthetic_folder

# grad_accum 2 so that resuming also has to restore the position inside an epoch across micro-steps.
OVR = ["ae.steps=7", "joint.steps=7", "ae.ckpt_every=3", "joint.ckpt_every=3", "ae.grad_accum=2",
       "joint.init=scratch", "single.steps=0"]


@pytest.fixture(scope="module")
def base(tmp_path_factory):
    root = tmp_path_factory.mktemp("resume")
    folder = write_synthetic_folder(root / "seq", n_frames=40)
    return root, folder


def _session(root, folder, name, stop_after=None):
    return Session(load_train_config("smoke", smoke_overrides(folder, root / name, *OVR)), DistInfo(), stop_after)


def _compare(dir_a, dir_b):
    la, lb = read_losses(dir_a), read_losses(dir_b)
    assert [r["step"] for r in lb] == list(range(1, 8))
    assert [r["loss"] for r in la] == [r["loss"] for r in lb]
    ta, ma = load_checkpoint(dir_a / "state.safetensors")
    tb, mb = load_checkpoint(dir_b / "state.safetensors")
    assert sorted(ta) == sorted(tb)
    for k in ta:
        if k != "rng.torch":
            torch.testing.assert_close(ta[k], tb[k], rtol=0, atol=0, msg=k)
    assert (ma["step"], ma["epoch"], ma["pos"]) == (mb["step"], mb["epoch"], mb["pos"])


def test_ae_resume_equals_uninterrupted(base):
    root, folder = base
    _session(root, folder, "a").run_ae("rgb")
    _session(root, folder, "b", stop_after=5).run_ae("rgb")  # killed at step 5, last checkpoint at 3
    assert load_checkpoint(root / "b" / "ae_rgb" / "state.safetensors")[1]["step"] == 3
    _session(root, folder, "b").run_ae("rgb")
    _compare(root / "a" / "ae_rgb", root / "b" / "ae_rgb")


def test_joint_resume_equals_uninterrupted(base):
    root, folder = base
    a = _session(root, folder, "a")
    a.run_ae("depth")
    a.run_cache()
    shutil.copytree(root / "a", root / "c", ignore=shutil.ignore_patterns("joint"))
    a.run_joint()
    _session(root, folder, "c", stop_after=4).run_joint()
    _session(root, folder, "c").run_joint()
    _compare(root / "a" / "joint", root / "c" / "joint")
