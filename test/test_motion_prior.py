"""The motion prior (``motion_prior: flow``, syncvp_core/motion_prior.py): the denoiser is also conditioned
on the latent of the context's optical-flow extrapolation. One extrapolation for the baseline, the cache
and the predictor; what training caches is what the predictor feeds; the denoiser reads it; exports."""
from __future__ import annotations

import numpy as np
import pytest
import torch

pytest.importorskip("cv2")

from syncvp_core import motion_prior  # noqa: E402
from syncvp_core.checkpoint import CheckpointError, save_checkpoint  # noqa: E402
from syncvp_core.config import ConfigError, ModelConfig, from_dict  # noqa: E402
from syncvp_core.flow_extrapolation import FlowExtrapolator  # noqa: E402
from syncvp_core.models.syncvp import SyncVPModel  # noqa: E402
from syncvp_core.predictor import Predictor  # noqa: E402
from syncvp_core.testing import micro_config  # noqa: E402
from syncvp_core.training import stages as S  # noqa: E402
from syncvp_core.training.data import ClipIndex, read_folder, to_model_tensors  # noqa: E402
from syncvp_core.training.synthetic import write_synthetic_folder  # noqa: E402
from syncvp_core.triplane import Triplane  # noqa: E402


def prior_cfg(**kw) -> ModelConfig:
    return micro_config(**{"autoencoder.decoder": "anchored", "depth.representation": "log", "motion_prior": "flow",
                           "resolution": "[24, 32]", **kw})


def _scene(seed=0, t=2, h=24, w=32, shift=1):
    """A smooth texture panning ``shift`` px per frame, depth with a hole."""
    r = np.random.default_rng(seed)
    tex = r.integers(0, 256, (h, w + 8 * t, 3)).astype(np.float32)
    for _ in range(3):
        tex = (tex + np.roll(tex, 1, 0) + np.roll(tex, 1, 1)) / 3
    rgb = np.stack([tex[:, i * shift: i * shift + w] for i in range(t)]).astype(np.uint8)
    dep = np.stack([np.full((h, w), 1.5 + 0.1 * i, np.float32) for i in range(t)])
    dep[:, 2:5, 3:7] = np.nan
    return rgb, dep


# -- the extrapolation ------------------------------------------------------------------------------------


def test_prior_is_the_baselines_flow_extrapolation_at_model_resolution():
    cfg = prior_cfg()
    rgb, dep = _scene()
    x_r, x_d, valid = to_model_tensors(rgb[None], dep[None], cfg)
    net_d = torch.cat([x_d, valid.float()], dim=1)
    p_r, p_d = motion_prior.extrapolate(x_r, net_d, cfg)
    assert p_r.shape == (1, 3, cfg.chunk_frames, 24, 32) and p_d.shape == (1, 2, cfg.chunk_frames, 24, 32)
    ref_r, ref_d = FlowExtrapolator().extrapolate(rgb, dep, cfg.chunk_frames)
    got_r = ((p_r[0] + 1) * 127.5).round().to(torch.uint8).permute(1, 2, 3, 0).numpy()
    np.testing.assert_array_equal(got_r, ref_r)  # the very frames the optical_flow baseline forecasts
    ok = np.isfinite(ref_d)
    np.testing.assert_array_equal(p_d[0, 1].numpy() > 0.5, ok)  # its holes are invalid, nothing else
    want = to_model_tensors(ref_r[None], np.where(ok, ref_d, 0)[None].astype(np.float32), cfg)[1][0, 0]
    np.testing.assert_allclose(p_d[0, 0].numpy()[ok], want.numpy()[ok], atol=1e-6)


def test_a_still_scene_extrapolates_to_the_newest_frame():
    cfg = prior_cfg()
    rgb, dep = _scene(shift=0)
    x_r, x_d, valid = to_model_tensors(rgb[None], dep[None], cfg)
    p_r, p_d = motion_prior.extrapolate(x_r, torch.cat([x_d, valid.float()], 1), cfg)
    torch.testing.assert_close(p_r[0], x_r[0, :, -1:].expand_as(p_r[0]))
    torch.testing.assert_close(p_d[0, 1], valid[0, 0, -1:].float().expand_as(p_d[0, 1]))


def test_colour_alone_gives_no_depth_prior_and_depth_alone_no_colour_prior():
    cfg = prior_cfg()
    rgb, dep = _scene()
    x_r, x_d, valid = to_model_tensors(rgb[None], dep[None], cfg)
    p_r, p_d = motion_prior.extrapolate(x_r, None, cfg)
    assert p_r is not None and p_d is None
    p_r, p_d = motion_prior.extrapolate(None, torch.cat([x_d, valid.float()], 1), cfg)
    assert p_r is None and p_d.shape[1] == 2


# -- conditioning -----------------------------------------------------------------------------------------


def test_condition_pads_the_context_and_puts_the_prior_channels_after_it():
    ctx = Triplane.zeros(2, 4, 2, 6, 8).map(lambda p: p + 1)
    prior = Triplane.zeros(2, 4, 5, 6, 8).map(lambda p: p + 2)
    c = motion_prior.condition(ctx, prior, 5)
    assert c.xy.shape == (2, 8, 6, 8) and c.xt.shape == (2, 8, 5, 8) and c.yt.shape == (2, 8, 5, 6)
    assert (c.xt[:, :4, :2] == 1).all() and (c.xt[:, :4, 2:] == 0).all() and (c.xt[:, 4:] == 2).all()
    assert (c.xy[:, :4] == 1).all() and (c.xy[:, 4:] == 2).all()
    assert motion_prior.condition(ctx, None, 5) is ctx


def test_config_needs_the_anchored_decoder_and_old_configs_have_no_prior():
    with pytest.raises(ConfigError, match="anchored"):
        micro_config(motion_prior="flow")
    with pytest.raises(ConfigError, match="none|flow"):
        prior_cfg(motion_prior="dis")
    old = micro_config().to_dict()
    old.pop("motion_prior")
    assert from_dict(ModelConfig, old).motion_prior == "none"


def test_the_denoiser_reads_the_prior_and_a_dropped_modality_loses_it():
    torch.manual_seed(0)
    cfg = prior_cfg()
    den = Predictor.from_config(cfg).model.denoiser.eval()
    assert den.rgb.conv_in.in_channels == 3 * cfg.autoencoder.latent_channels
    lh, lw = cfg.latent_size
    k = cfg.chunk_frames

    def tp(t):
        return Triplane.randn_like(Triplane.zeros(1, 4, t, lh, lw))

    x, ctx, prior, other = tp(k), tp(2), tp(k), tp(k)
    t = torch.tensor([500])

    def eps(prior_r, present):
        with torch.no_grad():
            return den(x, x, t, motion_prior.condition(ctx, prior_r, k), motion_prior.condition(ctx, prior, k),
                       torch.tensor([present]))[0].xy

    assert not torch.allclose(eps(prior, [1.0, 1.0]), eps(other, [1.0, 1.0]))
    torch.testing.assert_close(eps(prior, [0.0, 1.0]), eps(other, [0.0, 1.0]))


# -- training and inference see one thing ------------------------------------------------------------------


def test_the_cache_holds_the_prior_the_predictor_feeds(tmp_path):
    cfg = prior_cfg()
    folder = write_synthetic_folder(tmp_path / "seq", n_frames=30, size=(24, 32))
    seq = read_folder(folder, cfg.resolution, show_progress=False)
    clips = ClipIndex([seq], cfg.context_frames + cfg.chunk_frames, cfg.frame_rate_hz, 0.0, 0)
    torch.manual_seed(0)
    pred = Predictor.from_config(cfg)
    paths = {}
    for mod in ("rgb", "depth"):
        paths[mod] = tmp_path / f"ae_{mod}.safetensors"
        save_checkpoint(paths[mod], {k: v for k, v in pred.model.state_dict().items() if k.startswith(f"ae_{mod}.")},
                        {"kind": "weights"})
    out = S.cache_latents(cfg, paths["rgb"], paths["depth"], clips, False, tmp_path / "lat.safetensors",
                          progress=False)
    lat = S.Latents(out, "cpu")
    i = 3
    rgb, dep = clips.frames(i)
    c = cfg.context_frames
    (x_r, a_r, _), (x_d, a_d, _) = pred._anchored_inputs(rgb[None, :c], dep[None, :c], 1, rgb.shape[1:3])
    with torch.no_grad():
        ctx = pred._encode_or_zeros("rgb", x_r, 1, a_r), pred._encode_or_zeros("depth", x_d, 1, a_d)
        got = pred._with_motion_prior(*ctx, x_r, x_d, a_r, a_d, 1)
    for mod, g in zip(("rgb", "depth"), got):
        want = lat.condition(cfg, mod, np.array([i]))
        for a, b in zip(g.planes(), want.planes()):
            torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-4)


def test_a_cache_without_prior_latents_is_refused_for_a_prior_model(tmp_path):
    plain = micro_config(**{"autoencoder.decoder": "anchored", "depth.representation": "log"})
    z = Triplane.zeros(3, 4, 2, 4, 4)
    tensors = {f"{m}.ctx.{p}": getattr(z, p).clone() for m in ("rgb", "depth") for p in ("xy", "xt", "yt")}
    save_checkpoint(tmp_path / "lat.safetensors", tensors, {"kind": "latents", "n": 3})
    lat = S.Latents(tmp_path / "lat.safetensors", "cpu")
    assert lat.condition(plain, "rgb", np.array([0])).xt.shape[-2] == 2
    with pytest.raises(CheckpointError, match="motion-prior"):
        lat.condition(prior_cfg(), "rgb", np.array([0]))


def test_predictor_forecasts_every_mode_and_rolls_out_with_the_prior():
    p = Predictor.from_config(prior_cfg(), seed=1)
    rgb, dep = _scene(t=3, h=30, w=40)
    for r, d, mode in ((rgb, dep, "full"), (rgb, None, "rgb_only"), (None, dep, "depth_only")):
        out = p.predict(r, d, horizon=p.chunk_frames + 2)
        assert out.mode == mode and out.rgb.shape == (p.chunk_frames + 2, 30, 40, 3)
        assert out.depth.shape == (p.chunk_frames + 2, 30, 40)


def test_prior_graphs_export_and_match_torch_through_onnxruntime(tmp_path):
    pytest.importorskip("onnx")
    pytest.importorskip("onnxruntime")
    from syncvp_core.backends.select import create_backend
    from syncvp_core.export.graphs import encoder_graph, graph_names, graph_specs
    from syncvp_core.export.onnx_cache import ensure_export

    pred = Predictor.from_config(prior_cfg(), seed=0)
    cfg = pred.config
    assert graph_names(cfg)[-2:] == ("prior_rgb", "prior_depth")
    assert encoder_graph(cfg, "depth", cfg.chunk_frames) == "prior_depth"
    with pytest.raises(ValueError, match="3 frames"):
        encoder_graph(cfg, "rgb", 3)
    spec = graph_specs(cfg, 1)
    assert spec["denoiser_step"].inputs[8].shape == (1, 8, cfg.chunk_frames, cfg.latent_size[1])  # ctx_rgb_xt
    manifest = ensure_export(pred.model, tmp_path)
    assert set(graph_names(cfg)) <= set(manifest.graphs)
    ort_pred = Predictor(pred.model)
    ort_pred.backend = create_backend("onnxruntime", pred.model, "cpu", export_dir=manifest.path)
    rgb, dep = _scene(t=2, h=30, w=40)
    for r, d in ((rgb, dep), (rgb, None)):
        ref = pred.predict(r, d, steps=2, seed=3)
        out = ort_pred.predict(r, d, steps=2, seed=3)
        assert np.abs(out.rgb.astype(int) - ref.rgb.astype(int)).max() <= 1
        np.testing.assert_allclose(out.depth, ref.depth, rtol=1e-3, atol=1e-3)


def test_untrained_prior_model_still_forecasts_copy_last():
    # Zero-initialised heads: whatever the prior says, an untrained anchored model repeats the newest frame.
    p = Predictor(SyncVPModel(prior_cfg()))
    rgb, dep = _scene(t=2, h=30, w=40)
    out = p.predict(rgb, dep)
    np.testing.assert_array_equal(out.rgb, np.repeat(rgb[-1:], p.chunk_frames, 0))
