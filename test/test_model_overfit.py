"""The autoencoder and the joint denoiser can fit one tiny clip on CPU (loss falls >= 10x)."""
import torch

from syncvp_core.diffusion.losses import triplane_mse
from syncvp_core.diffusion.schedule import NoiseSchedule
from syncvp_core.models.syncvp import SyncVPModel
from syncvp_core.testing import micro_config
from syncvp_core.triplane import Triplane


def _clip():
    # A smooth moving pattern: learnable but not trivial.
    t = torch.arange(6).float()[:, None, None]
    y, x = torch.meshgrid(torch.arange(16.0), torch.arange(16.0), indexing="ij")
    frames = torch.stack([torch.sin((x + 2 * t) / 3) * torch.cos(y / 4), torch.cos((x - t) / 5), torch.sin(y / 3 + t)])
    return frames[None].clamp(-1, 1)  # (1, 3, 6, 16, 16)


def test_autoencoder_overfits_one_clip():
    torch.manual_seed(0)
    m = SyncVPModel(micro_config())
    x = _clip()[:, :, :4]
    opt = torch.optim.Adam(m.ae_rgb.parameters(), lr=3e-3)
    losses = []
    for _ in range(250):
        loss = (m.ae_rgb(x) - x).abs().mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < losses[0] / 10, (losses[0], losses[-1])


def test_joint_denoiser_overfits_fixed_noise():
    torch.manual_seed(0)
    cfg = micro_config()
    m = SyncVPModel(cfg)
    den = m.denoiser
    sched = NoiseSchedule(cfg.diffusion)
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():
        z_r = m.ae_rgb.encode(_clip()[:, :, 2:6])
        z_d = m.ae_depth.encode(_clip()[:, :1, 2:6])
        c_r = m.ae_rgb.encode(_clip()[:, :, :2])
        c_d = m.ae_depth.encode(_clip()[:, :1, :2])
    t = torch.tensor([300])
    eps = Triplane.randn_like(z_r, g)
    x_r, x_d = sched.q_sample(z_r, t, eps), sched.q_sample(z_d, t, eps)
    opt = torch.optim.Adam(den.parameters(), lr=2e-3)
    losses = []
    for _ in range(150):
        p_r, p_d = den(x_r, x_d, t, c_r, c_d, torch.ones(1, 2))
        loss = triplane_mse(p_r, eps) + triplane_mse(p_d, eps)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < losses[0] / 10, (losses[0], losses[-1])
