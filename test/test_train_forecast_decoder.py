"""Decoder fine-tuning on forecasts (syncvp_core.training.forecast_decoder): the decoder of one modality
learns to compose the model's own forecasts into the true future; encoders and the denoiser never move."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from syncvp_core.checkpoint import CheckpointError, load_checkpoint, load_into, save_checkpoint
from syncvp_core.models.syncvp import SyncVPModel
from syncvp_core.training.config import load_train_config
from syncvp_core.training.dist import DistInfo
from syncvp_core.training.forecast_decoder import forecast_decoder_task
from syncvp_core.training.pipeline import Session
from syncvp_core.training.synthetic import smoke_overrides, write_synthetic_folder

ANCHORED = ['model_overrides=["name=micro","resolution=[16,16]","context_frames=2","chunk_frames=4",'
            '"autoencoder.channels=8","autoencoder.channel_mult=[1,2]","unet.channels=16",'
            '"unet.channel_mult=[1,2]","unet.attention_levels=[1]","unet.num_heads=2","unet.emb_mult=2",'
            '"fusion.num_heads=2","sampler.steps=1","autoencoder.decoder=anchored","depth.representation=log"]']


def _session(root, *extra):
    folder = write_synthetic_folder(root / "seq", n_frames=40)
    return Session(load_train_config("smoke", smoke_overrides(folder, root / "run", *ANCHORED, *extra)), DistInfo())


def _bundle(s: Session, path):
    torch.manual_seed(0)
    model = SyncVPModel(s.cfg)
    save_checkpoint(path, model.state_dict(), {"kind": "model", "config": s.cfg.to_dict()})
    return path


def _recon(task, n=3):
    """Reconstruction error of the composed forecast frames on fixed clips and noise draws."""
    out = []
    for k in range(n):
        with torch.no_grad():
            _, parts = task.loss(task.module.eval(), np.arange(4 * k, 4 * k + 4) % task.n_items,
                                 torch.Generator().manual_seed(50 + k), DistInfo())
        out.append(parts["recon"])
    return float(np.mean(out))


@pytest.mark.parametrize("modality", ["rgb", "depth"])
def test_decoder_learns_the_forecasts_and_the_latent_space_stays(tmp_path, modality):
    s = _session(tmp_path, "ae.steps=24", "ae.lr=0.005", "ae.ema_decay=0", "ae.batch_size=4", "ae.perceptual_weight=0",
                 "ae.sample_every=0", "ae.warmup_steps=1")
    bundle = _bundle(s, tmp_path / "bundle.safetensors")
    out = s.run_forecast_decoder(modality, bundle)
    trained, meta = load_checkpoint(out)
    assert meta["forecast_decoder"]["bundle"] == str(bundle) and meta["freeze_encoder"]
    before, _ = load_checkpoint(bundle)
    prefix = f"ae_{modality}."
    enc = [k for k in trained if k.split(".")[1] in SyncVPModel(s.cfg).autoencoder(modality).ENCODER_PARTS]
    dec = [k for k in trained if k.split(".")[1] == "fields_out"]
    assert enc and dec and all(k.startswith(prefix) for k in trained)
    assert all(torch.equal(trained[k], before[k]) for k in enc)  # cached latents, joint model stay valid
    assert not all(torch.equal(trained[k], before[k]) for k in dec)

    clips = s.clips(s.cfg.context_frames + s.cfg.chunk_frames)
    mk = lambda: forecast_decoder_task(s.cfg, s.tcfg.ae, modality, clips, bundle, False, "cpu")  # noqa: E731
    untrained = _recon(mk())
    task = mk()
    load_into(task.module, trained, out, prefix=prefix)
    assert _recon(task) < 0.96 * untrained  # same clips and noise draws: the forecast frames got closer


def test_needs_the_anchored_autoencoder(tmp_path):
    folder = write_synthetic_folder(tmp_path / "seq", n_frames=24)
    s = Session(load_train_config("smoke", smoke_overrides(folder, tmp_path / "run")), DistInfo())
    bundle = _bundle(s, tmp_path / "direct.safetensors")
    with pytest.raises(CheckpointError, match="anchored"):
        forecast_decoder_task(s.cfg, s.tcfg.ae, "rgb", s.clips(6), bundle, False, "cpu")
