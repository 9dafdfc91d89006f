"""Joint model: zero-init equivalence with the single-modality branches, shapes, config errors."""
import pytest
import torch

from syncvp_core.config import ConfigError, load_model_config
from syncvp_core.models.syncvp import SyncVPDenoiser, SyncVPModel, fusion_sites
from syncvp_core.models.unet import BranchUNet
from syncvp_core.testing import micro_config
from syncvp_core.triplane import Triplane


def _inputs(cfg, b=2, seed=0):
    g = torch.Generator().manual_seed(seed)
    lh, lw = cfg.latent_size
    c = cfg.autoencoder.latent_channels
    T, Tc = cfg.chunk_frames, cfg.context_frames

    def tp(t):
        return Triplane(torch.randn(b, c, lh, lw, generator=g), torch.randn(b, c, t, lw, generator=g),
                        torch.randn(b, c, t, lh, generator=g))

    return tp(T), tp(T), torch.randint(0, 1000, (b,), generator=g), tp(Tc), tp(Tc)


def _train_a_little(module, seed):
    # Make the branches non-trivial (zero-init output convs would hide differences).
    torch.manual_seed(seed)
    with torch.no_grad():
        for name, p in module.named_parameters():
            if "fusion" not in name:
                p.add_(torch.randn_like(p) * 0.05)


@pytest.mark.parametrize("kind,points", [("stca", "deepest"), ("stca", "all"), ("stca", "none"),
                                         ("full", "deepest"), ("full", "all"), ("none", "deepest")])
def test_joint_at_init_equals_two_single_models(kind, points):
    cfg = micro_config(**{"fusion.kind": kind, "fusion.points": points})
    den = SyncVPDenoiser(cfg)
    _train_a_little(den, 0)
    x_r, x_d, t, c_r, c_d = _inputs(cfg)
    for present in ([1.0, 1.0], [1.0, 0.0], [0.0, 1.0]):
        pres = torch.tensor([present] * 2)
        e_r, e_d = den(x_r, x_d, t, c_r, c_d, pres)
        # The single models see their own context, zeroed when absent, and the same presence flags.
        s_r = den.rgb(x_r, t, c_r * pres[:, :1].reshape(-1, 1, 1, 1), pres)
        s_d = den.depth(x_d, t, c_d * pres[:, 1:].reshape(-1, 1, 1, 1), pres)
        for a, b in zip(e_r.planes() + e_d.planes(), s_r.planes() + s_d.planes()):
            torch.testing.assert_close(a, b, atol=1e-6, rtol=1e-6)


def test_fusion_sites_follow_levels():
    cfg = micro_config()
    den = SyncVPDenoiser(cfg)
    levels = den.rgb.levels
    assert fusion_sites(levels, 2, "deepest") == [lvl == 1 for lvl in levels]
    n_stca = sum(type(f).__name__ == "STCA" for f in den.fusion)
    assert n_stca == sum(lvl == 1 for lvl in levels) and n_stca >= 3  # in-block(s), mid, out-blocks


def test_paper_config_matches_official_sizes():
    cfg = load_model_config("paper")
    den = SyncVPDenoiser(cfg)
    branch = sum(p.numel() for p in den.rgb.parameters())
    fusion = sum(p.numel() for p in den.fusion.parameters())
    assert abs(branch - 58_561_284) / 58_561_284 < 0.005  # official branch: 58.56 M
    assert abs(fusion - 6_311_936) / 6_311_936 < 0.005  # 4 STCA blocks at 512 channels: 6.31 M
    assert sum(type(f).__name__ == "STCA" for f in den.fusion) == 4


def test_missing_context_cannot_leak():
    cfg = micro_config()
    den = SyncVPDenoiser(cfg)
    _train_a_little(den, 1)
    x_r, x_d, t, c_r, c_d = _inputs(cfg)
    pres = torch.tensor([[1.0, 0.0], [1.0, 0.0]])
    a_r, a_d = den(x_r, x_d, t, c_r, c_d, pres)
    b_r, b_d = den(x_r, x_d, t, c_r, c_d * 100.0, pres)  # a different depth context must not matter
    for a, b in zip(a_r.planes() + a_d.planes(), b_r.planes() + b_d.planes()):
        assert torch.equal(a, b)


def test_concat_ablation_shapes():
    cfg = micro_config(**{"fusion.kind": "concat"})
    den = SyncVPDenoiser(cfg)
    x_r, x_d, t, c_r, c_d = _inputs(cfg)
    e_r, e_d = den(x_r, x_d, t, c_r, c_d, torch.ones(2, 2))
    assert e_r.xy.shape == x_r.xy.shape and e_d.yt.shape == x_d.yt.shape
    assert isinstance(den.unet, BranchUNet)


def test_autoencoder_is_frame_count_agnostic():
    cfg = micro_config()
    m = SyncVPModel(cfg)
    for t in (1, 2, 4, 6):
        z = m.ae_rgb.encode(torch.rand(1, 3, t, 16, 16) * 2 - 1)
        assert z.shape_thw == (t, 8, 8)
        assert all(p.abs().max() < 1 for p in z.planes())
        assert m.ae_rgb.decode(z).shape == (1, 3, t, 16, 16)


def test_config_errors_name_the_key():
    with pytest.raises(ConfigError, match="bogus"):
        micro_config(bogus=1)
    with pytest.raises(ConfigError, match="guidance_probs"):
        micro_config(**{"diffusion.guidance_probs": "[0.5, 0.5, 0.5]"})
    with pytest.raises(ConfigError, match="fusion.kind"):
        micro_config(**{"fusion.kind": "magic"})
    with pytest.raises(ConfigError, match="divisible"):
        micro_config(resolution="[18, 16]")
