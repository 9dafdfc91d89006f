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
from syncvp_core.predictor import Predictor
from syncvp_core.testing import micro_config
from syncvp_core.triplane import Triplane
from syncvp_core.warp import compose_depth, compose_rgb, field_channels, warp_bilinear, warp_nearest


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
    valid = torch.rand(2, 1, 12, 20) > 0.3
    out, ok = warp_nearest(img[:, :1], valid, _flow(2, 12, 20))
    assert torch.equal(out, img[:, :1]) and torch.equal(ok, valid)


@pytest.mark.parametrize("dx,dy", [(3, 0), (0, -2), (5, 4)])
def test_integer_shift_matches_an_analytic_image_shift(dx, dy):
    img = torch.rand(1, 3, 16, 24)
    out = warp_bilinear(img, _flow(1, 16, 24, dx, dy))
    # backward warp: out(y, x) = img(y + dy, x + dx) wherever that source lies inside the image
    ys, xs = slice(max(0, -dy), 16 - max(0, dy)), slice(max(0, -dx), 24 - max(0, dx))
    src = img[:, :, ys.start + dy : ys.stop + dy, xs.start + dx : xs.stop + dx]
    torch.testing.assert_close(out[:, :, ys, xs], src, rtol=0, atol=1e-6)


def test_half_pixel_shift_of_a_linear_ramp_is_exact():
    ramp = torch.arange(24, dtype=torch.float32).view(1, 1, 1, 24).expand(1, 1, 8, 24).contiguous()
    out = warp_bilinear(ramp, _flow(1, 8, 24, 0.5, 0))
    torch.testing.assert_close(out[..., :-1], ramp[..., :-1] + 0.5)


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
    value, ok = compose_depth(anchor, valid, fields)
    assert ok[..., 6:].all() and not ok[..., 4:6].any()
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
