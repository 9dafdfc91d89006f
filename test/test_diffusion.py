"""Schedule, shared noise, cross-modality guidance sampling, DDIM."""
import math

import pytest
import torch

from syncvp_core.config import DiffusionConfig
from syncvp_core.diffusion.ddim import DDIMSampler, sample_joint
from syncvp_core.diffusion.guidance import Mode, presence, sample_modes
from syncvp_core.diffusion.losses import draw_noise, joint_loss
from syncvp_core.diffusion.schedule import NoiseSchedule
from syncvp_core.triplane import Triplane

FULL, RGB_ONLY, DEPTH_ONLY = (m.code for m in (Mode.FULL, Mode.RGB_ONLY, Mode.DEPTH_ONLY))


def tp(g, b=3, c=2, t=4, h=6, w=5):
    return Triplane(torch.randn(b, c, h, w, generator=g), torch.randn(b, c, t, w, generator=g),
                    torch.randn(b, c, t, h, generator=g))


def test_schedule_matches_official_values():
    s = NoiseSchedule(DiffusionConfig())
    assert s.betas[0].item() == pytest.approx(0.0015, rel=1e-6)
    assert s.betas[-1].item() == pytest.approx(0.0195, rel=1e-6)
    assert s.alphas_cumprod[-1].item() == pytest.approx(1.42e-4, rel=0.02)


def test_guidance_mode_frequencies_within_bounds():
    n = 40000
    modes = sample_modes(n, (0.5, 0.25, 0.25), torch.Generator().manual_seed(0))
    for m, p in ((FULL, 0.5), (RGB_ONLY, 0.25), (DEPTH_ONLY, 0.25)):
        freq = (modes == m).float().mean().item()
        sd = math.sqrt(p * (1 - p) / n)
        assert abs(freq - p) < 5 * sd, (m, freq)
    assert torch.equal(presence(torch.tensor([0, 1, 2])), torch.tensor([[1.0, 1.0], [1.0, 0.0], [0.0, 1.0]]))


class Recorder(torch.nn.Module):
    def forward(self, x_r, x_d, t, ctx_r, ctx_d, present):
        self.seen = (x_r, x_d, t, ctx_r, ctx_d, present)
        return x_r.map(torch.zeros_like), x_d.map(torch.zeros_like)


@pytest.mark.parametrize("shared", [True, False])
def test_shared_noise_switch(shared):
    g = torch.Generator().manual_seed(1)
    z_r, z_d = tp(g), tp(g)
    e_r, e_d = draw_noise(z_r, z_d, shared, g)
    same = all(torch.equal(a, b) for a, b in zip(e_r.planes(), e_d.planes()))
    assert same == shared
    # Through the loss: noisy latents minus scaled clean latents are the same epsilon iff shared.
    cfg = DiffusionConfig(shared_noise=shared)
    sched = NoiseSchedule(cfg)
    rec = Recorder()
    joint_loss(rec, sched, cfg, z_r, z_d, tp(g, t=2), tp(g, t=2), generator=g)
    x_r, x_d, t = rec.seen[:3]
    ab = sched.alpha_bar(t).reshape(-1, 1, 1, 1)
    eps_r = (x_r.xy - ab.sqrt() * z_r.xy) / (1 - ab).sqrt()
    eps_d = (x_d.xy - ab.sqrt() * z_d.xy) / (1 - ab).sqrt()
    assert torch.allclose(eps_r, eps_d, atol=1e-4) == shared


def test_dropped_modality_context_is_zero_and_its_target_is_still_predicted():
    g = torch.Generator().manual_seed(2)
    z_r, z_d = tp(g), tp(g)
    cfg = DiffusionConfig()
    modes = torch.tensor([RGB_ONLY, DEPTH_ONLY, FULL])
    rec = Recorder()
    loss, parts = joint_loss(rec, NoiseSchedule(cfg), cfg, z_r, z_d, tp(g, t=2), tp(g, t=2), generator=g,
                             modes=modes)
    present = rec.seen[5]
    assert torch.equal(present, torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]]))
    # The recorder predicts eps = 0, so each modality's loss is the full noise energy: both targets count.
    assert parts["loss_rgb"] > 0.5 and parts["loss_depth"] > 0.5


def test_denoiser_zeroes_dropped_context():
    from syncvp_core.models.syncvp import SyncVPDenoiser
    from syncvp_core.testing import micro_config

    den = SyncVPDenoiser(micro_config())
    g = torch.Generator().manual_seed(3)
    x = tp(g, b=1, c=4, t=4, h=8, w=8)
    c = tp(g, b=1, c=4, t=2, h=8, w=8)
    t = torch.tensor([10])
    pres = torch.tensor([[0.0, 1.0]])
    a = den(x, x, t, c, c, pres)
    b = den(x, x, t, c.map(torch.zeros_like), c, pres)
    assert all(torch.equal(u, v) for u, v in zip(a[0].planes(), b[0].planes()))


class Oracle:
    """Knows the clean latents: eps = (x_t - sqrt(ab) x0) / sqrt(1 - ab)."""

    def __init__(self, sched, x0_r, x0_d):
        self.s, self.x0_r, self.x0_d = sched, x0_r, x0_d

    def __call__(self, x_r, x_d, t, ctx_r, ctx_d, present):
        ab = self.s.alpha_bar(t).reshape(-1, 1, 1, 1)
        f = lambda x, x0: (x - ab.sqrt() * x0) / (1 - ab).sqrt()  # noqa: E731
        return x_r.zip(self.x0_r, f), x_d.zip(self.x0_d, f)


@pytest.mark.parametrize("steps", [1, 2, 5, 20, 100])
@pytest.mark.parametrize("eta", [0.0, 1.0])
def test_ddim_with_oracle_recovers_x0(steps, eta):
    g = torch.Generator().manual_seed(4)
    sched = NoiseSchedule(DiffusionConfig())
    x0_r, x0_d = tp(g).map(torch.tanh), tp(g).map(torch.tanh)
    sampler = DDIMSampler(sched, steps, eta)
    assert len(sampler.timesteps) == steps and sampler.timesteps[0] == 999
    assert steps == 1 or sampler.timesteps[-1] == 0
    out_r, out_d = sample_joint(Oracle(sched, x0_r, x0_d), sampler, None, None, torch.ones(3, 2), x0_r,
                                torch.Generator().manual_seed(9))
    for a, b in zip(out_r.planes() + out_d.planes(), x0_r.planes() + x0_d.planes()):
        torch.testing.assert_close(a, b, atol=1e-4, rtol=1e-4)


def test_ddim_deterministic_under_seed_and_shapes():
    g = torch.Generator().manual_seed(5)
    like = tp(g)

    def model(x_r, x_d, t, *a):
        return x_r.map(lambda p: 0.1 * p), x_d.map(lambda p: -0.1 * p)

    sched = NoiseSchedule(DiffusionConfig())
    for eta in (0.0, 0.5):
        s = DDIMSampler(sched, 7, eta)
        a = sample_joint(model, s, None, None, None, like, torch.Generator().manual_seed(1))
        b = sample_joint(model, s, None, None, None, like, torch.Generator().manual_seed(1))
        c = sample_joint(model, s, None, None, None, like, torch.Generator().manual_seed(2))
        assert all(torch.equal(u, v) for u, v in zip(a[0].planes(), b[0].planes()))
        assert not torch.equal(a[0].xy, c[0].xy)
        assert a[1].xt.shape == like.xt.shape


@pytest.mark.parametrize("steps, eta", [(1, 0.0), (3, 0.5)])
def test_ddim_draws_return_the_mean_of_independent_draws_per_row(steps, eta):
    g = torch.Generator().manual_seed(6)
    like, ctx_r, ctx_d = tp(g), tp(g), tp(g)
    present = torch.tensor([[1.0, 1.0], [1.0, 0.0], [0.0, 1.0]])
    seen = []

    def model(x_r, x_d, t, c_r, c_d, pres):  # depends on the noise, the row's context and its presence
        assert pres.shape[0] == x_r.batch == c_r.batch
        seen.append(pres)
        k = pres[:, :1, None, None]
        return x_r.zip(c_r, lambda x, c: 0.3 * x + k * c), x_d.zip(c_d, lambda x, c: -0.2 * x + c)

    sched = NoiseSchedule(DiffusionConfig())
    n = 4
    out = sample_joint(model, DDIMSampler(sched, steps, eta, draws=n), ctx_r, ctx_d, present, like,
                       torch.Generator().manual_seed(3))
    rep = lambda x: x.repeat_interleave(n, 0)  # noqa: E731
    rows = sample_joint(model, DDIMSampler(sched, steps, eta), ctx_r.map(rep), ctx_d.map(rep), rep(present),
                        like.map(rep), torch.Generator().manual_seed(3))
    for a, r in zip(out[0].planes() + out[1].planes(), rows[0].planes() + rows[1].planes()):
        assert a.shape[0] == 3
        torch.testing.assert_close(a, r.reshape(3, n, *r.shape[1:]).mean(1))
        assert not torch.allclose(r[0], r[1])  # the draws of one row differ: the mean is over distinct noises
    assert torch.equal(seen[0], rep(present))  # each row's draws keep that row's modality presence
    with pytest.raises(ValueError, match="draws"):
        DDIMSampler(sched, 1, draws=0)


def test_ddim_draws_keep_an_exact_denoiser_exact():
    g = torch.Generator().manual_seed(4)
    sched = NoiseSchedule(DiffusionConfig())
    x0_r, x0_d = tp(g).map(torch.tanh), tp(g).map(torch.tanh)
    n = 3
    oracle = Oracle(sched, x0_r.map(lambda x: x.repeat_interleave(n, 0)), x0_d.map(lambda x: x.repeat_interleave(n, 0)))
    out_r, out_d = sample_joint(oracle, DDIMSampler(sched, 5, draws=n), None, None, torch.ones(3, 2), x0_r,
                                torch.Generator().manual_seed(9))
    for a, b in zip(out_r.planes() + out_d.planes(), x0_r.planes() + x0_d.planes()):
        torch.testing.assert_close(a, b, atol=1e-4, rtol=1e-4)


def test_ddim_rejects_bad_step_counts():
    sched = NoiseSchedule(DiffusionConfig())
    with pytest.raises(ValueError):
        DDIMSampler(sched, 0)
    with pytest.raises(ValueError):
        DDIMSampler(sched, 1001)


def test_full_t_max_limits_only_the_clips_with_both_modalities():
    g = torch.Generator().manual_seed(3)
    n = 600
    z = tp(g, b=n)
    cfg = DiffusionConfig()
    modes = torch.tensor([FULL, RGB_ONLY, DEPTH_ONLY] * (n // 3))
    rec = Recorder()
    joint_loss(rec, NoiseSchedule(cfg), cfg, z, z, z, z, generator=g, modes=modes, full_t_max=200)
    t = rec.seen[2]
    full, dropped = t[modes == FULL], t[modes != FULL]
    assert full.max() < 200 and full.float().std() > 30  # spread over [0, 200), not collapsed
    assert dropped.max() > 600  # a dropped modality is sampled from noise: the whole schedule stays trained


def test_x0_prediction_trains_on_the_clean_latent_and_samples_with_it():
    cfg = DiffusionConfig(prediction="x0")
    sched = NoiseSchedule(cfg)
    g = torch.Generator().manual_seed(4)
    z_r, z_d = tp(g), tp(g)

    class Oracle(torch.nn.Module):  # outputs the true clean latents: zero loss only if the target is x0
        def forward(self, x_r, x_d, t, ctx_r, ctx_d, present):
            return z_r, z_d

    loss, _ = joint_loss(Oracle(), sched, cfg, z_r, z_d, tp(g, t=2), tp(g, t=2), generator=g)
    assert float(loss) < 1e-12
    eps_loss, _ = joint_loss(Oracle(), NoiseSchedule(DiffusionConfig()), DiffusionConfig(), z_r, z_d,
                             tp(g, t=2), tp(g, t=2), generator=g)
    assert float(eps_loss) > 0.5
    # DDIM with an exact x0 denoiser lands on the clean latent from pure noise, in any number of steps
    from syncvp_core.diffusion.ddim import DDIMSampler, sample_joint

    for steps in (1, 3):
        out_r, out_d = sample_joint(lambda *a: (z_r, z_d), DDIMSampler(sched, steps, clip_x0=False), z_r, z_d,
                                    torch.ones(3, 2), z_r, torch.Generator().manual_seed(0))
        torch.testing.assert_close(out_r.xy, z_r.xy, rtol=0, atol=1e-4)


def test_prediction_kind_is_validated():
    from syncvp_core.config import ConfigError
    from syncvp_core.testing import micro_config

    with pytest.raises(ConfigError):
        micro_config(**{"diffusion.prediction": "v"})
