"""Joint initialisation from two single-modality models: at step 0 the joint model predicts exactly what
the single models predict (zero-initialised STCA), for every guidance mode."""
from __future__ import annotations

import torch

from syncvp_core.models.syncvp import SyncVPDenoiser
from syncvp_core.models.unet import BranchUNet
from syncvp_core.testing import micro_config
from syncvp_core.training.loop import export
from syncvp_core.training.stages import init_joint
from syncvp_core.triplane import Triplane


def _single(cfg, seed):
    torch.manual_seed(seed)
    m = BranchUNet(cfg, cfg.autoencoder.latent_channels)
    with torch.no_grad():  # as after training: non-zero output layer
        m.out_conv.weight.normal_(0, 0.05)
        m.presence.weight[:, 0].normal_(0, 0.05)
    return m


def _tp(b, c, t, h, w, g):
    return Triplane(torch.randn(b, c, h, w, generator=g), torch.randn(b, c, t, w, generator=g),
                    torch.randn(b, c, t, h, generator=g))


def test_joint_equals_singles_at_init(tmp_path):
    cfg = micro_config()
    singles = {"rgb": _single(cfg, 1), "depth": _single(cfg, 2)}
    with torch.no_grad():  # a single model never sees the other modality's flag: its column stays zero
        singles["depth"].presence.weight.zero_()
        singles["depth"].presence.weight[:, 1].normal_(0, 0.05)
    for mod, m in singles.items():
        export(tmp_path / f"single_{mod}" / "ema.safetensors", m, None, f"denoiser.{mod}.", {"config": {}})
    joint = SyncVPDenoiser(cfg)
    how = init_joint(joint, "singles", tmp_path)
    assert how.startswith("singles:")
    g = torch.Generator().manual_seed(0)
    lc, (h, w), t = cfg.autoencoder.latent_channels, cfg.latent_size, cfg.chunk_frames
    x_r, x_d = _tp(3, lc, t, h, w, g), _tp(3, lc, t, h, w, g)
    c_r, c_d = _tp(3, lc, cfg.context_frames, h, w, g), _tp(3, lc, cfg.context_frames, h, w, g)
    tt = torch.tensor([5, 500, 900])
    present = torch.tensor([[1.0, 1.0], [1.0, 0.0], [0.0, 1.0]])
    with torch.no_grad():
        e_r, e_d = joint(x_r, x_d, tt, c_r, c_d, present)
        keep_r, keep_d = present[:, :1, None, None], present[:, 1:, None, None]
        # each single model sees only its own flag, as in the single stage
        own_r = torch.stack([present[:, 0], torch.zeros(3)], 1)
        own_d = torch.stack([torch.zeros(3), present[:, 1]], 1)
        r_r = singles["rgb"](x_r, tt, c_r * keep_r, own_r)
        r_d = singles["depth"](x_d, tt, c_d * keep_d, own_d)
    for a, b in zip(e_r.planes() + e_d.planes(), r_r.planes() + r_d.planes()):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)
