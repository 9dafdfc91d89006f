"""Bad input gives a clear error and overwrites nothing: unknown config keys, a corrupt checkpoint, a
checkpoint of another model shape, single-model checkpoints that do not fit the joint model."""
from __future__ import annotations

import pytest
import torch
from click.testing import CliRunner

from syncvp_core.checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from syncvp_core.config import ConfigError
from syncvp_core.training.cli import train as train_cmd
from syncvp_core.training.config import load_train_config
from syncvp_core.training.dist import DistInfo
from syncvp_core.training.pipeline import Session
from syncvp_core.training.synthetic import smoke_overrides, write_synthetic_folder


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    return write_synthetic_folder(tmp_path_factory.mktemp("bad") / "seq", n_frames=30)


def test_unknown_config_key_is_an_error(tmp_path, folder):
    with pytest.raises(ConfigError, match="lrr"):
        load_train_config("smoke", smoke_overrides(folder, tmp_path / "r", "ae.lrr=0.1"))
    bad = tmp_path / "bad.yaml"
    bad.write_text("base: smoke\nrun_dir: x\noptimiser: {}\n")
    with pytest.raises(ConfigError, match="optimiser"):
        load_train_config(str(bad))
    with pytest.raises(ConfigError, match="resolutionn"):
        load_train_config("smoke", ["model.resolutionn=[8,8]"])
    res = CliRunner().invoke(train_cmd, ["--config", "smoke", "--stage", "ae", f"run_dir={tmp_path / 'r'}",
                                         "joint.bogus=1"])
    assert res.exit_code != 0 and "bogus" in res.output
    assert not (tmp_path / "r").exists()


def _ae_session(tmp_path, folder, *extra):
    return Session(load_train_config("smoke", smoke_overrides(folder, tmp_path / "r", "ae.steps=2", *extra)),
                   DistInfo())


def test_corrupt_state_is_refused_and_kept(tmp_path, folder):
    state = tmp_path / "r" / "ae_rgb" / "state.safetensors"
    state.parent.mkdir(parents=True)
    state.write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00{not json at all")
    before = state.read_bytes()
    with pytest.raises(CheckpointError, match="state.safetensors"):
        _ae_session(tmp_path, folder).run_ae("rgb")
    assert state.read_bytes() == before
    assert not (tmp_path / "r" / "ae_rgb" / "ema.safetensors").exists()


def test_wrong_shape_state_is_refused_and_kept(tmp_path, folder):
    _ae_session(tmp_path, folder).run_ae("rgb")
    state = tmp_path / "r" / "ae_rgb" / "state.safetensors"
    before = state.read_bytes()
    with pytest.raises(CheckpointError, match="shape"):
        _ae_session(tmp_path, folder, "model.autoencoder.channels=16", "ae.steps=4").run_ae("rgb")
    assert state.read_bytes() == before


def test_joint_init_refuses_mismatched_singles(tmp_path, folder):
    s = Session(load_train_config("smoke", smoke_overrides(folder, tmp_path / "r", "ae.steps=1", "single.steps=1",
                                                            "joint.steps=1")), DistInfo())
    s.run_ae("rgb")
    s.run_ae("depth")
    s.run_cache()
    s.run_single("rgb")
    s.run_single("depth")
    single = tmp_path / "r" / "single_depth" / "ema.safetensors"
    tensors, meta = load_checkpoint(single)
    # An extra, unexpected key: refused and named.
    save_checkpoint(single, {**tensors, "denoiser.depth.extra.weight": torch.zeros(3)}, meta)
    with pytest.raises(CheckpointError, match="extra.weight"):
        s.run_joint()
    # A wrong shape: refused.
    k = next(k for k in tensors if k.endswith("conv_in.weight"))
    save_checkpoint(single, {**tensors, k: torch.zeros(1, 1, 3, 3)}, meta)
    with pytest.raises(CheckpointError, match="shape"):
        s.run_joint()
    # A missing non-fusion key: refused.
    save_checkpoint(single, {kk: v for kk, v in tensors.items() if kk != k}, meta)
    with pytest.raises(CheckpointError, match="missing"):
        s.run_joint()
    assert not (tmp_path / "r" / "joint" / "state.safetensors").exists()
    assert not (tmp_path / "r" / "syncvp_micro.safetensors").exists()
