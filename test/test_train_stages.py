"""Every training stage runs end to end on the smoke config and reduces its loss; the training objectives
split across ranks like one process; the bundle loads in the Predictor."""
from __future__ import annotations

import importlib.util
import json

import numpy as np
import pytest
import torch

from syncvp_core.checkpoint import load_checkpoint, load_into
from syncvp_core.predictor import Predictor
from syncvp_core.training import stages as S
from syncvp_core.training.config import load_train_config
from syncvp_core.training.dist import DistInfo
from syncvp_core.training.loop import read_losses
from syncvp_core.training.pipeline import Session
from syncvp_core.training.synthetic import smoke_overrides, write_synthetic_folder

STEPS = ["ae.steps=14", "single.steps=14", "joint.steps=14", "ae.lr=0.003", "single.lr=0.003",
         "joint.lr=0.003"]


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    root = tmp_path_factory.mktemp("train")
    folder = write_synthetic_folder(root / "seq", n_frames=60)
    tcfg = load_train_config("smoke", smoke_overrides(folder, root / "run", *STEPS))
    s = Session(tcfg, DistInfo())
    s.run("all", None)
    return s


def _eval(task, n_batches=4, batch=4):
    """Task loss on fixed clips and fixed random draws (comparable between weights)."""
    losses = []
    for k in range(n_batches):
        idx = np.arange(k * batch, (k + 1) * batch) % task.n_items
        with torch.no_grad():
            loss, _ = task.loss(task.module.eval(), idx, torch.Generator().manual_seed(100 + k), DistInfo())
        losses.append(float(loss))
    return float(np.mean(losses))


def _loaded(task, path):
    tensors, _ = load_checkpoint(path)
    load_into(task.module, tensors, path, prefix=task.export_prefix)
    return task


def test_all_stages_wrote_checkpoints_and_configs(run):
    d = run.run_dir
    for name in ("ae_rgb", "ae_depth", "single_rgb", "single_depth", "joint"):
        assert (d / name / "ema.safetensors").exists()
        assert (d / name / "state.safetensors").exists()
        assert json.loads((d / name / "resolved_config.json").read_text())["model"]["resolution"] == [16, 16]
        assert len(read_losses(d / name)) == 14
        side = json.loads((d / name / "ema.json").read_text())
        assert side["step"] == 14 and side["data_fingerprint"] and side["code_version"]
    assert (d / "latents.safetensors").exists()
    assert (d / "tb").exists() or any((d / n / "tb").exists() for n in ("ae_rgb", "joint"))


@pytest.mark.parametrize("modality", ["rgb", "depth"])
def test_ae_loss_goes_down(run, modality):
    clips = run.clips(run.cfg.chunk_frames)
    mk = lambda: S.ae_task(run.cfg, run.tcfg.ae, modality, clips, False, "cpu")  # noqa: E731
    torch.manual_seed(run.tcfg.seed)
    before = _eval(mk())
    after = _eval(_loaded(mk(), run.ae_path(modality)))
    assert after < 0.8 * before


@pytest.mark.parametrize("modality", ["rgb", "depth"])
def test_single_loss_goes_down(run, modality):
    lat = S.Latents(run.latent_path(), "cpu")
    task = S.single_task(run.cfg, run.tcfg.single, modality, lat, "cpu")
    before = _eval(task)  # zero-initialised output layer: exactly MSE(0, eps) ~ 1
    after = _eval(_loaded(S.single_task(run.cfg, run.tcfg.single, modality, lat, "cpu"),
                          run.run_dir / f"single_{modality}" / "ema.safetensors"))
    assert after < 0.9 * before


def test_joint_loss_goes_down(run):
    lat = S.Latents(run.latent_path(), "cpu")
    jcfg = run.tcfg.joint
    jcfg.init = "scratch"
    before = _eval(S.joint_task(run.cfg, jcfg, lat, run.run_dir, "cpu"))
    trained = S.joint_task(run.cfg, jcfg, lat, run.run_dir, "cpu")
    after = _eval(_loaded(trained, run.run_dir / "joint" / "ema.safetensors"))
    assert after < 0.9 * before


def test_objectives_split_across_ranks_like_one_process(run):
    """The stage losses are diffusion.losses drawn for the global batch: two ranks' halves (global
    positions 2j + rank) average to exactly the one-process loss on the whole batch, for the same seed."""
    lat = S.Latents(run.latent_path(), "cpu")
    idx = np.arange(4)
    task = S.single_task(run.cfg, run.tcfg.single, "depth", lat, "cpu")
    torch.nn.init.normal_(task.module.out_conv.weight, std=0.05)
    jcfg = run.tcfg.joint
    jcfg.init = "scratch"
    jt = S.joint_task(run.cfg, jcfg, lat, run.run_dir, "cpu")
    for t, seed in ((task, 5), (jt, 6)):
        whole, _ = t.loss(t.module, idx, torch.Generator().manual_seed(seed), DistInfo())
        halves = [t.loss(t.module, idx[r::2], torch.Generator().manual_seed(seed), DistInfo(rank=r, world=2))[0]
                  for r in (0, 1)]
        torch.testing.assert_close((halves[0] + halves[1]) / 2, whole)
        other, _ = t.loss(t.module, idx, torch.Generator().manual_seed(seed + 1), DistInfo())
        assert not torch.equal(other, whole)  # the draws matter, so equality above is not vacuous


def test_bundle_loads_in_predictor(run):
    p = Predictor.from_checkpoint(run.run_dir / "syncvp_micro.safetensors")
    out = p.predict(np.zeros((2, 24, 32, 3), np.uint8), np.ones((2, 24, 32), np.float32), steps=2)
    assert out.rgb.shape == (4, 24, 32, 3) and np.isfinite(out.depth).all()
    mix = load_checkpoint(run.run_dir / "syncvp_micro.safetensors")[1]["data_mix"]  # for the model card
    assert mix["groups"]["folder"]["sequences"] == 1 and mix["clips"] == len(run.clips(6))


def test_heldout_evaluation_table(run, tmp_path):
    from syncvp_core.evaluation.heldout import evaluate, table

    sim_seqs = []
    if importlib.util.find_spec("mujoco") is not None:  # a held-out simulator sequence, held out whole
        from syncvp_core.data import sim

        cfg = sim.SimConfig(height=20, width=24, frames=8, antialias=False, shadows=False, motion="car")
        sim.generate(tmp_path / "part" / "raw", 1, cfg, seed=3, workers=1, progress=False)
        sim_seqs = sim.list_sequences(tmp_path / "part" / "raw")
    res = evaluate(run.run_dir / "syncvp_micro.safetensors", list(run.tcfg.data.folders), 0.5, window_step=6,
                   steps=2, lpips=False, sim_sequences=sim_seqs)
    seq = next(iter(res["sequences"].values()))
    assert seq["first_heldout_frame"] == 30 and seq["windows"] >= 1
    if sim_seqs:
        assert res["sequences"]["sim/part/seq_00000"] == {"frames": 8, "first_heldout_frame": 0, "windows": 1,
                                                           "stride": 1}
    m = res["metrics"]
    for key in ("copy_last/psnr", "const_velocity/absrel", "optical_flow/lpips" if res["lpips"] else
                "optical_flow/psnr", "model/full/psnr", "model/rgb_only/absrel", "model/depth_only/ssim",
                "ae_ceiling/delta1"):
        assert len(m[key]["mean"]) == res["horizon"]
    text = table(res)
    assert "| copy_last | psnr |" in text and "| optical_flow | absrel |" in text


def test_cache_is_reused_only_when_up_to_date(run):
    path = run.latent_path()
    before = path.stat().st_mtime_ns
    run.run_cache(reuse=True)
    assert path.stat().st_mtime_ns == before
    run.tcfg.data.start_step = 2
    try:
        run.run_cache(reuse=True)
        assert path.stat().st_mtime_ns != before
    finally:
        run.tcfg.data.start_step = 0
        run.run_cache(reuse=True)


def test_decoder_finetune_keeps_the_latent_space(run, tmp_path):
    """ae.freeze_encoder: encoder weights stay bit-identical (cached latents stay valid), decoder moves."""
    init = run.run_dir / "ae_{modality}" / "ema.safetensors"
    ovr = smoke_overrides(run.tcfg.data.folders[0], tmp_path / "dec", "ae.steps=3", f"ae.init={init}",
                          "ae.freeze_encoder=true")
    dec = Session(load_train_config("smoke", ovr), DistInfo())
    dec.run_ae("depth")
    before, _ = load_checkpoint(run.ae_path("depth"))
    after, meta = load_checkpoint(dec.ae_path("depth"))
    assert meta["freeze_encoder"] and meta["init"].startswith("checkpoint:")
    enc = [k for k in before if k.split(".")[1] in ("enc_in", "enc_levels", "enc_norm", "pool_xy", "to_latent")]
    decs = [k for k in before if k.split(".")[1] in ("dec_levels", "dec_out", "from_latent")]
    assert enc and decs
    assert all(torch.equal(before[k], after[k]) for k in enc)
    assert any(not torch.equal(before[k], after[k]) for k in decs)


def test_eval_heldout_cli_scores_the_chosen_sources(run, tmp_path):
    from click.testing import CliRunner

    from syncvp_core.evaluation.cli import eval_heldout

    cfg = tmp_path / "heldout.yaml"
    cfg.write_text(f"base: smoke\ndata:\n  folders: [{run.tcfg.data.folders[0]}]\n  holdout_fraction: 0.5\n")
    ckpt = str(run.run_dir / "syncvp_micro.safetensors")
    common = ["--checkpoint", ckpt, "--config", str(cfg), "--no-lpips", "--window-step", "6", "--steps", "1"]
    res = CliRunner().invoke(eval_heldout, [*common, "--sources", "real", "--out", str(tmp_path / "r.json")])
    assert res.exit_code == 0, res.output
    assert "| copy_last | absrel |" in res.output
    assert list(json.loads((tmp_path / "r.json").read_text())["sequences"]) == ["seq"]
    res = CliRunner().invoke(eval_heldout, [*common, "--sources", "sim"])  # this config has no simulator mix
    assert res.exit_code != 0 and "no held-out sim sources" in res.output


def test_cache_resumes_from_finished_parts_and_keeps_plain_parts_for_mirroring(run, tmp_path, monkeypatch):
    """An interrupted cache run keeps its finished parts; switching mirrored copies on encodes only those."""
    clips = run.clips(run.cfg.context_frames + run.cfg.chunk_frames)
    key = run._cache_key()
    args = (run.cfg, run.ae_path("rgb"), run.ae_path("depth"), clips)
    whole, _ = load_checkpoint(S.cache_latents(*args, False, tmp_path / "whole.safetensors", progress=False,
                                               part_key=key))
    encode, calls = S._encode_part, []

    def counted(*a, **k):
        calls.append(a[4])  # the part's flip
        if len(calls) == 2 and interrupt:
            raise KeyboardInterrupt
        return encode(*a, **k)

    monkeypatch.setattr(S, "_encode_part", counted)
    out = tmp_path / "cut.safetensors"
    interrupt = True
    with pytest.raises(KeyboardInterrupt):
        S.cache_latents(*args, False, out, progress=False, part_key=key, part_size=8)
    n_parts = -(-len(clips) // 8)
    assert n_parts >= 3 and len(list((tmp_path / "cut.safetensors.parts").glob("*.safetensors"))) == 1
    interrupt, calls[:] = False, []
    cut, _ = load_checkpoint(S.cache_latents(*args, False, out, progress=False, part_key=key, part_size=8))
    assert len(calls) == n_parts - 1
    # Same latents (batch composition differs with the part size: float rounding only).
    assert cut.keys() == whole.keys() and all(torch.allclose(cut[k], whole[k], atol=1e-5) for k in whole)
    assert not (tmp_path / "cut.safetensors.parts").exists()  # merged and cleaned up

    # Mirrored copies switched on after an interrupted plain run: its finished plain part is kept.
    half = -(-len(clips) // 2)
    interrupt, calls[:] = True, []
    with pytest.raises(KeyboardInterrupt):
        S.cache_latents(*args, False, out, progress=False, part_key=key, part_size=half)
    interrupt, calls[:] = False, []
    both, meta = load_checkpoint(S.cache_latents(*args, True, out, progress=False,
                                                 part_key={**key, "cache_hflip": True}, part_size=half))
    assert calls == [False, True, True] and meta["n"] == 2 * len(clips)
    assert all(torch.allclose(both[k][: len(clips)], whole[k], atol=1e-5) for k in whole)
    assert not torch.equal(both["rgb.tgt.xy"][len(clips):], whole["rgb.tgt.xy"])
    # A part made from other autoencoder files is stale: encoded again.
    interrupt, calls[:] = True, []
    with pytest.raises(KeyboardInterrupt):
        S.cache_latents(*args, False, out, progress=False, part_key=key, part_size=half)
    interrupt, calls[:] = False, []
    S.cache_latents(*args, False, out, progress=False, part_key={**key, "ae_rgb_sha256": "other"}, part_size=half)
    assert calls == [False, False]
