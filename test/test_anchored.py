"""Anchored forecasting (issue #11): warping, composition at sensor resolution, the anchored autoencoder
through the Predictor, log depth, latent scale, the DDIM start from the anchor and export parity."""
import numpy as np
import pytest
import torch

from syncvp_core import depth as depth_norm
from syncvp_core.config import ConfigError, DepthConfig
from syncvp_core.diffusion.ddim import DDIMSampler, sample_joint
from syncvp_core.diffusion.schedule import NoiseSchedule
from syncvp_core.models.anchored import AnchoredAutoencoder, empty_anchor
from syncvp_core.models.syncvp import SyncVPModel
from syncvp_core.predictor import Predictor, PredictorError
from syncvp_core.testing import micro_config
from syncvp_core.triplane import Triplane
from syncvp_core.warp import (
    compose_depth,
    compose_rgb,
    extend_background,
    field_channels,
    warp_bicubic,
    warp_bilinear,
    warp_depth,
    warp_nearest,
)


def anchored_cfg(**kw):
    return micro_config(**{"autoencoder.decoder": "anchored", "depth.representation": "log", **kw})


def _flow(b, h, w, dx_px=0.0, dy_px=0.0):
    f = torch.zeros(b, 2, h, w)
    f[:, 0] = dx_px * 2.0 / w
    f[:, 1] = dy_px * 2.0 / h
    return f


# -- warping ----------------------------------------------------------------------------------------------


def test_zero_flow_is_exactly_the_input():
    img = torch.rand(2, 3, 12, 20)
    assert torch.equal(warp_bilinear(img, _flow(2, 12, 20)), img)
    assert torch.equal(warp_bicubic(img, _flow(2, 12, 20)), img)
    valid = torch.rand(2, 1, 12, 20) > 0.3
    for warp in (warp_nearest, warp_depth):
        out, ok = warp(img[:, :1], valid, _flow(2, 12, 20))
        assert torch.equal(out, img[:, :1]) and torch.equal(ok, valid)


@pytest.mark.parametrize("warp", [warp_bilinear, warp_bicubic])
@pytest.mark.parametrize("dx,dy", [(3, 0), (0, -2), (5, 4)])
def test_integer_shift_matches_an_analytic_image_shift(dx, dy, warp):
    img = torch.rand(1, 3, 16, 24)
    out = warp(img, _flow(1, 16, 24, dx, dy))
    # backward warp: out(y, x) = img(y + dy, x + dx) wherever that source lies inside the image
    ys, xs = slice(max(0, -dy), 16 - max(0, dy)), slice(max(0, -dx), 24 - max(0, dx))
    src = img[:, :, ys.start + dy : ys.stop + dy, xs.start + dx : xs.stop + dx]
    torch.testing.assert_close(out[:, :, ys, xs], src, rtol=0, atol=1e-6)


@pytest.mark.parametrize("warp", [warp_bilinear, warp_bicubic])
def test_half_pixel_shift_of_a_linear_ramp_is_exact(warp):
    ramp = torch.arange(24, dtype=torch.float32).view(1, 1, 1, 24).expand(1, 1, 8, 24).contiguous()
    out = warp(ramp, _flow(1, 8, 24, 0.5, 0))
    # the cubic kernel reads one pixel further on each side: compare away from the clamped border
    torch.testing.assert_close(out[..., 1:-2], ramp[..., 1:-2] + 0.5)


def test_bicubic_warp_matches_a_subpixel_shift_of_a_smooth_image_and_keeps_it_sharper():
    x = torch.arange(64, dtype=torch.float64)

    def wave(s):
        return torch.sin(2 * np.pi * (x + s) / 8).view(1, 1, 1, 64).expand(1, 1, 4, 64).contiguous()

    truth = wave(0.5)[..., 4:-4]
    err = {w.__name__: (w(wave(0.0), _flow(1, 4, 64, 0.5, 0).double())[..., 4:-4] - truth).abs().max()
           for w in (warp_bilinear, warp_bicubic)}
    # bilinear halves the read between two samples of an 8-pixel wave (amplitude loss ~8 %); cubic ~1 %
    assert err["warp_bicubic"] < 0.02 < err["warp_bilinear"]


def test_the_same_normalised_flow_moves_every_resolution_by_the_same_fraction():
    small, big = torch.zeros(1, 1, 10, 16), torch.zeros(1, 1, 40, 64)
    small[..., 8], big[..., 32] = 1.0, 1.0  # a bright column at the same place
    flow = torch.zeros(1, 2, 1, 1)
    flow[:, 0] = 2 * 2.0 / 16  # two small pixels to the right = eight big ones
    out_s = warp_bilinear(small, flow.expand(1, 2, 10, 16))
    out_b = warp_bilinear(big, flow.expand(1, 2, 40, 64))
    assert out_s[0, 0, 0].argmax() == 6 and out_b[0, 0, 0].argmax() == 24


def test_nearest_depth_warp_never_mixes_values_and_marks_holes():
    d = torch.tensor([[1.0, 1.0, 5.0, 5.0]]).view(1, 1, 1, 4).expand(1, 1, 3, 4).contiguous()
    valid = torch.ones_like(d, dtype=torch.bool)
    valid[..., 0, 3] = False
    out, ok = warp_nearest(d, valid, _flow(1, 3, 4, 0.5, 0))  # exactly between two surfaces
    assert set(out.unique().tolist()) <= {1.0, 5.0}  # a depth edge is never averaged
    out, ok = warp_nearest(d, valid, _flow(1, 3, 4, 1.0, 0))
    assert not ok[0, 0, :, 3].any()  # source outside the image
    assert not ok[0, 0, 0, 2]  # source pixel (0, 3) is invalid
    assert ok[0, 0, 1, 2] and out[0, 0, 1, 2] == 5.0


def test_depth_warp_is_subpixel_on_a_surface_and_never_mixes_across_an_edge():
    # a gently sloped floor (left) next to a far wall (right), in network units
    d = torch.cat([torch.linspace(0.0, 0.05, 6).view(1, 1, 1, 6), torch.full((1, 1, 1, 4), 0.8)], dim=-1)
    d = d.expand(1, 1, 4, 10).contiguous()
    valid = torch.ones_like(d, dtype=torch.bool)
    out, ok = warp_depth(d, valid, _flow(1, 4, 10, 0.5, 0))
    # on the floor: the value half-way between neighbours (nearest rounding would read a whole pixel on)
    torch.testing.assert_close(out[..., :5], (d[..., :5] + d[..., 1:6]) / 2)
    # across the floor/wall edge: one of the two surfaces, never their average
    assert out[0, 0, 0, 5] == d[0, 0, 0, 5] or out[0, 0, 0, 5] == d[0, 0, 0, 6]
    assert ok[..., :9].all() and not ok[..., 9].any()  # the last column reads beyond the image
    # an invalid source pixel is never read bilinearly either
    valid[..., 2] = False
    out, ok = warp_depth(d, valid, _flow(1, 4, 10, 0.5, 0))
    assert out[0, 0, 0, 1] == d[0, 0, 0, 1] or out[0, 0, 0, 1] == d[0, 0, 0, 2]


def test_depth_warp_passes_gradients_to_the_flow_on_a_surface():
    d = torch.linspace(0.0, 0.1, 16).view(1, 1, 1, 16).expand(1, 1, 8, 16).contiguous()
    flow = _flow(1, 8, 16, 0.3, 0).requires_grad_(True)
    out, _ = warp_depth(d, torch.ones_like(d, dtype=torch.bool), flow)
    out.sum().backward()
    assert flow.grad[:, 0].abs().sum() > 0  # nearest sampling alone gives exactly zero here


def test_claimed_holes_extend_the_nearest_depth_preferring_the_background():
    value = torch.zeros(1, 1, 6, 80)
    value[..., :40], value[..., 40:] = 0.2, 0.6  # near object left, far background right
    ok = torch.ones_like(value, dtype=torch.bool)
    ok[..., 37:42] = False  # the hole a disocclusion opens at the edge
    out, found = extend_background(value, ok)
    # each side from its nearest surface, the middle (equally near to both) from the background; no mix
    assert found.all() and torch.all(out[..., 37] == 0.2) and torch.all(out[..., 39:42] == 0.6)
    assert torch.equal(out[ok], value[ok])
    far = torch.zeros_like(ok)
    far[..., 0] = True
    _, found = extend_background(value, far)  # reach: 5 % of 80 px = 4 pixels
    assert found[..., :5].all() and not found[..., 5:].any()


# -- composition ------------------------------------------------------------------------------------------


def test_zero_fields_compose_to_copy_last_at_any_resolution():
    anchor = torch.rand(2, 3, 30, 44) * 2 - 1
    fields = torch.zeros(2, field_channels("rgb", 3), 4, 8, 8)
    out = compose_rgb(anchor, fields)
    assert out.shape == (2, 3, 4, 30, 44)
    assert torch.equal(out, anchor[:, :, None].expand_as(out))


def test_residual_is_blended_in_through_the_mask():
    anchor = torch.zeros(1, 3, 8, 8)
    fields = torch.zeros(1, 6, 1, 4, 4)
    fields[:, 3:6] = 0.5
    fields[:, 2] = 20.0  # mask ~1
    torch.testing.assert_close(compose_rgb(anchor, fields), torch.full((1, 3, 1, 8, 8), 0.5), rtol=0, atol=1e-6)
    fields[:, 2] = -20.0  # mask ~0: the residual is ignored
    assert compose_rgb(anchor, fields).abs().max() < 1e-6


def test_depth_holes_stay_invalid_unless_the_model_fills_them():
    anchor = torch.zeros(1, 1, 8, 8)
    valid = torch.ones(1, 1, 8, 8, dtype=torch.bool)
    fields = torch.zeros(1, 6, 1, 8, 8)
    fields[:, 0] = 4 * 2.0 / 8  # read 4 pixels to the right: the right half has no source
    value, ok = compose_depth(anchor, valid, fields)
    assert ok[..., :4].all() and not ok[..., 4:].any()
    fields[:, 5, :, :, 6:] = 3.0  # the model claims the last two columns
    fields[:, 4] = 1.0  # and fills them with tanh(1)
    value, ok = compose_depth(anchor, valid, fields, holes="fill")
    assert ok[..., 6:].all() and not ok[..., 4:6].any()
    torch.testing.assert_close(value[..., 6:], torch.full_like(value[..., 6:], float(np.tanh(1.0))))
    # by default a claimed hole near valid depth extends it instead (the fill is upsampled and smeared);
    # beyond the reach (here 2 pixels) the fill value remains
    fields[:, 5, :, :, 4:] = 3.0
    value, ok = compose_depth(anchor, valid, fields)
    assert ok.all() and torch.all(value[..., 4:6] == 0.0)
    torch.testing.assert_close(value[..., 6:], torch.full_like(value[..., 6:], float(np.tanh(1.0))))
    # with nothing valid near (a silent depth sensor), the fill value is what remains
    value, ok = compose_depth(anchor, torch.zeros_like(valid), fields)
    torch.testing.assert_close(value[..., 6:], torch.full_like(value[..., 6:], float(np.tanh(1.0))))


# -- log depth --------------------------------------------------------------------------------------------


def test_log_depth_round_trips_and_keeps_far_depth_when_unclipped():
    cfg = DepthConfig(min_m=0.2, max_m=20.0, representation="log")
    d = torch.tensor([0.2, 0.5, 2.0, 19.0, 70.0])
    x, mask = depth_norm.normalize(d, cfg)
    assert x.min() >= -1 and x.max() <= 1 and mask.all()
    torch.testing.assert_close(depth_norm.denormalize(x, cfg)[:4], d[:4], rtol=1e-5, atol=0)
    xu, _ = depth_norm.normalize(d, cfg, clip=False)
    torch.testing.assert_close(depth_norm.denormalize(xu, cfg, clip=False), d, rtol=1e-5, atol=0)
    # a fixed step in the representation is the same relative change at every depth
    r = depth_norm.denormalize(x + 0.02, cfg) / depth_norm.denormalize(x, cfg)
    torch.testing.assert_close(r[:3], r[1:4], rtol=1e-5, atol=0)


def test_anchored_config_is_validated():
    with pytest.raises(ConfigError, match="decoder"):
        micro_config(**{"autoencoder.decoder": "warp"})
    with pytest.raises(ConfigError, match="anchored"):
        micro_config(**{"sampler.start": "anchor"})
    with pytest.raises(ConfigError, match="representation"):
        micro_config(**{"depth.representation": "sqrt"})


# -- the anchored autoencoder and the Predictor -----------------------------------------------------------


def _context(seed=0, t=3, h=20, w=28):
    r = np.random.default_rng(seed)
    rgb = r.integers(0, 256, (t, h, w, 3), dtype=np.uint8)
    dep = r.uniform(0.5, 8.0, (t, h, w)).astype(np.float32)
    dep[:, :3, :5] = np.nan
    return rgb, dep


def test_untrained_anchored_model_forecasts_copy_last_exactly_at_sensor_resolution():
    p = Predictor(SyncVPModel(anchored_cfg()))
    rgb, dep = _context()
    out = p.predict(rgb, dep, horizon=2 * p.chunk_frames + 1)  # three chunks: rollout included
    assert out.rgb.shape == (2 * p.chunk_frames + 1, 20, 28, 3)
    assert np.array_equal(out.rgb, np.repeat(rgb[-1:], len(out.rgb), 0))
    assert np.array_equal(np.isnan(out.depth), np.repeat(np.isnan(dep[-1:]), len(out.depth), 0))
    np.testing.assert_allclose(out.depth, np.repeat(dep[-1:], len(out.depth), 0), rtol=1e-5)


def test_anchored_depth_beyond_the_trained_range_is_kept():
    p = Predictor(SyncVPModel(anchored_cfg()))
    rgb, dep = _context()
    dep[:, 10:] = 70.0  # far background, beyond depth.max_m = 20
    out = p.predict(rgb, dep)
    np.testing.assert_allclose(out.depth[:, 10:], 70.0, rtol=1e-5)


def test_anchored_predictor_handles_a_silent_sensor():
    p = Predictor(SyncVPModel(anchored_cfg()))
    rgb, dep = _context()
    out = p.predict(rgb, None)
    assert out.mode == "rgb_only" and np.array_equal(out.rgb[0], rgb[-1])
    assert out.depth.shape == (p.chunk_frames, 20, 28)  # predicted from nothing: untrained, all holes
    out = p.predict(None, dep)
    assert out.mode == "depth_only" and out.rgb.shape == (p.chunk_frames, 20, 28, 3)


@pytest.mark.parametrize("start", ["noise", "anchor"])
def test_sampler_draws_run_that_many_noises_per_forecast_in_one_batch(start):
    p = Predictor(SyncVPModel(anchored_cfg(**{"sampler.draws": 3, "sampler.start": start, "sampler.start_t": 200})))
    rows = []
    denoise = p.backend.denoise
    p.backend.denoise = lambda x_r, *a: rows.append(x_r.batch) or denoise(x_r, *a)
    rgb, dep = _context()
    out = p.predict(np.stack([rgb, rgb]), np.stack([dep, dep]), num_samples=2)  # 2 contexts x 2 samples
    assert set(rows) == {2 * 2 * 3} and len(rows) == p.config.sampler.steps
    assert out.rgb.shape == (2, p.chunk_frames, 20, 28, 3) and out.spread.num_samples == 2
    rows.clear()
    out = p.predict(rgb, None)  # a silent sensor: its second pass from noise draws 3 noises too
    assert set(rows) == {3} and out.depth.shape == (p.chunk_frames, 20, 28)
    rows.clear()
    p.predict(rgb, dep, draws=1)  # a per-call override (the node's `draws` parameter)
    assert set(rows) == {1}
    for bad in (0, True, 1.5):
        with pytest.raises(PredictorError, match="draws"):
            p.predict(rgb, dep, draws=bad)
    with pytest.raises(ConfigError, match="draws"):
        anchored_cfg(**{"sampler.draws": 0})


def test_autoencoder_ceiling_of_an_untrained_anchored_model_is_copy_last():
    p = Predictor(SyncVPModel(anchored_cfg()))
    rgb, dep = _context(t=2 + 4)
    r, d = p.autoencode(rgb[None, :2], dep[None, :2], rgb[None, 2:], dep[None, 2:])
    assert np.array_equal(r[0], np.repeat(rgb[1:2], 4, 0))


def test_encoder_sees_the_change_relative_to_the_anchor():
    torch.manual_seed(0)
    ae = AnchoredAutoencoder(anchored_cfg().autoencoder, "rgb")
    x = torch.rand(1, 3, 4, 16, 16) * 2 - 1
    with torch.no_grad():
        same = ae.encode(x[:, :, -1:].expand_as(x), x[:, :, -1])
        moved = ae.encode(x, x[:, :, -1])
    assert any(float((a - b).abs().max()) > 1e-4 for a, b in zip(same.planes(), moved.planes()))
    assert empty_anchor(torch.zeros(1, 2, 4, 4))[:, 0].eq(-1).all()


def test_latent_scale_scales_the_latent_and_not_the_reconstruction():
    torch.manual_seed(0)
    a = SyncVPModel(anchored_cfg())
    b = SyncVPModel(anchored_cfg(**{"autoencoder.latent_scale": 3.0}))
    b.load_state_dict(a.state_dict())
    x, anchor = torch.rand(1, 3, 4, 16, 16) * 2 - 1, torch.rand(1, 3, 16, 16) * 2 - 1
    for m in (a, b):
        for p in m.ae_rgb.fields_out.parameters():
            torch.nn.init.normal_(p, std=0.1)
    b.ae_rgb.fields_out.load_state_dict(a.ae_rgb.fields_out.state_dict())
    za, zb = a.ae_rgb.encode(x, anchor), b.ae_rgb.encode(x, anchor)
    torch.testing.assert_close(zb.xy, 3.0 * za.xy)
    torch.testing.assert_close(a.ae_rgb.decode(za, anchor), b.ae_rgb.decode(zb, anchor), rtol=1e-4, atol=1e-5)


def test_ddim_can_start_from_the_anchor_latent():
    sched = NoiseSchedule(micro_config().diffusion)
    s = DDIMSampler(sched, 4, start_t=300)
    assert s.timesteps[0] == 300 and s.timesteps[-1] == 0
    like = Triplane.zeros(1, 4, 4, 8, 8)
    start = Triplane.zeros(1, 4, 4, 8, 8).map(lambda p: p + 0.7)

    def no_change(x_r, x_d, t, *_):  # a denoiser whose epsilon estimate is exact for x0 = start
        ab = sched.alpha_bar(t).reshape(-1, 1, 1, 1)
        eps = x_r.zip(start, lambda x, s0: (x - ab.sqrt() * s0) / (1 - ab).sqrt())
        return eps, eps

    z_r, _ = sample_joint(no_change, s, like, like, torch.ones(1, 2), like, torch.Generator().manual_seed(0),
                          start=(start, start))
    torch.testing.assert_close(z_r.xy, start.xy, rtol=0, atol=1e-4)
    with pytest.raises(ValueError):
        DDIMSampler(sched, 400, start_t=300)
    full = s.from_noise()
    assert full.timesteps[0] == sched.num_timesteps - 1 and full.steps == 4


def test_a_silent_sensor_is_sampled_from_noise_even_when_the_sampler_starts_from_the_anchor(monkeypatch):
    p = Predictor(SyncVPModel(anchored_cfg(**{"sampler.start": "anchor", "sampler.start_t": 200,
                                               "sampler.steps": 3})))
    seen = []
    inner = Predictor._sample

    def spy(self, ctx_r, ctx_d, present, sampler, gen, start=None):
        seen.append((sampler.timesteps[0], start is not None))
        return inner(self, ctx_r, ctx_d, present, sampler, gen, start)

    monkeypatch.setattr(Predictor, "_sample", spy)
    rgb, dep = _context()
    p.predict(rgb, dep)
    p.predict(rgb, None)  # the depth anchor is empty: no "nothing changes" latent to start from
    p.predict(None, dep)
    # full mode: one pass from the anchor; a silent sensor: the anchor pass (for the observed modality) and
    # a pass from noise (for the silent one)
    noise = (p.schedule.num_timesteps - 1, False)
    assert seen == [(200, True), (200, True), noise, (200, True), noise]


# -- export -----------------------------------------------------------------------------------------------


def test_anchored_graphs_export_and_match_torch_through_onnxruntime(tmp_path):
    pytest.importorskip("onnx")
    pytest.importorskip("onnxruntime")
    from syncvp_core.backends.select import create_backend
    from syncvp_core.export.graphs import graph_specs
    from syncvp_core.export.onnx_cache import ensure_export

    pred = Predictor.from_config(anchored_cfg(), seed=0)  # randomised heads: non-trivial fields
    manifest = ensure_export(pred.model, tmp_path)
    specs = graph_specs(pred.config, 1)
    assert [i.name for i in specs["decoder_depth"].inputs][-1] == "anchor"
    assert specs["decoder_rgb"].outputs[0].name == "fields" and specs["encoder_depth"].inputs[0].shape[1] == 2
    ort_pred = Predictor(pred.model)
    ort_pred.backend = create_backend("onnxruntime", pred.model, "cpu", export_dir=manifest.path)
    rgb, dep = _context()
    for r, d in ((rgb, dep), (rgb, None)):
        ref = pred.predict(r, d, horizon=2 * pred.chunk_frames, steps=3, seed=5)
        out = ort_pred.predict(r, d, horizon=2 * pred.chunk_frames, steps=3, seed=5)
        assert np.abs(out.rgb.astype(int) - ref.rgb.astype(int)).max() <= 1
        np.testing.assert_allclose(out.depth, ref.depth, rtol=1e-3, atol=1e-3)


def test_a_dropped_modality_is_trained_towards_its_unanchored_target():
    from syncvp_core.diffusion.losses import joint_loss

    cfg = micro_config()
    sched = NoiseSchedule(cfg.diffusion)
    z = Triplane.zeros(2, 4, 4, 8, 8).map(lambda p: p + 0.5)
    free = Triplane.zeros(2, 4, 4, 8, 8).map(lambda p: p - 0.5)

    def echo(x_r, x_d, *_):  # predicts the noisy input: the loss then depends on the target used
        return x_r, x_d

    def losses(modes, unanchored):
        _, parts = joint_loss(echo, sched, cfg.diffusion, z, z, z, z, torch.Generator().manual_seed(0),
                              modes=torch.tensor(modes), unanchored=unanchored)
        return float(parts["loss_rgb"]), float(parts["loss_depth"])

    full, rgb_only = [0, 0], [1, 1]  # guidance mode indices: 0 full, 1 rgb_only
    assert losses(full, (free, free)) == losses(full, None)
    r, d = losses(rgb_only, (free, free))
    r0, d0 = losses(rgb_only, None)
    assert r == r0 and d != d0  # only the depth target (whose context is dropped) changed
