"""eval-bag end to end on tiny bags, the streaming core, determinism, and bad input."""
import json

import pytest
import torch
from click.testing import CliRunner

from syncvp_core import pretrained as weights
from syncvp_core.data.bag import write_rgbd_bag
from syncvp_core.data.frames import RGBDFrame
from syncvp_core.evaluation.cli import eval_bag
from syncvp_core.evaluation.protocol import EvalError, EvalProtocol
from syncvp_core.evaluation.replay import evaluate_frames
from syncvp_core.evaluation.scoring import fvd_chunks
from syncvp_core.evaluation.windows import pick_frames, windows
from syncvp_core.predictor import Predictor
from syncvp_core.testing import micro_config, sliding_frames

H, W = 32, 40
T0 = 1_700_000_000_000_000_000


def _frames(n, rate_hz=10.0, seed=0, drop=()):
    """A texture sliding right by 1 px per frame, with a depth ramp; optional dropped indices."""
    return sliding_frames(n, H, W, rate_hz, seed, drop, T0)


@pytest.fixture(scope="module")
def predictor():
    return Predictor.from_config(micro_config(), seed=0)


class FakeI3D(torch.nn.Module):
    """Stands in for I3D in plumbing tests (the real network is tested in test_eval_perceptual)."""

    def forward(self, x):
        return torch.cat([x.mean(dim=(2, 3, 4)), x.std(dim=(2, 3, 4))], dim=1)


def _metric_models(fvd=False):
    from syncvp_core.evaluation.lpips import LPIPS

    try:
        lp, why = LPIPS.pretrained(), {}
    except weights.WeightsUnavailable as e:
        lp, why = None, {"lpips": str(e)}
    return lp, (FakeI3D() if fvd else None), (why if fvd else {**why, "fvd": "disabled in this test"})


def test_eval_bag_cli_end_to_end(tmp_path, micro_yaml):
    bag = tmp_path / "bag"
    write_rgbd_bag(bag, _frames(14))
    out = tmp_path / "out"
    res = CliRunner().invoke(eval_bag, [str(bag), "--out", str(out), "--random-init", str(micro_yaml),
                                        "--max-windows", "2", "--steps", "2", "--no-fvd", "--quiet"])
    assert res.exit_code == 0, res.output
    for name in ("metrics.json", "report.md", "animation_full.gif", "animation_rgb_only.gif",
                 "animation_depth_only.gif", "animation_still.png", "plots/psnr.png", "plots/absrel.png"):
        assert (out / name).is_file(), name
    data = json.loads((out / "metrics.json").read_text())
    assert data["counts"]["windows_evaluated"] == 2
    assert data["protocol"]["frame_step"] == 1 and data["protocol"]["horizon"] == 4
    assert len(data["protocol_hash"]) == 16 and data["protocol"]["model"]["random_init"]
    res_ = data["results"]
    assert set(res_) == {"full", "rgb_only", "depth_only"}
    for scenario in res_:
        assert set(res_[scenario]) == {"model", "copy_last", "const_velocity", "optical_flow", "scene_flow",
                                      "resize_ceiling"}
        assert res_[scenario]["model"]["absrel"]["available"]  # the model forecasts both modalities
        assert len(res_[scenario]["model"]["absrel"]["mean"]) == 4
    assert not res_["rgb_only"]["copy_last"]["absrel"]["available"]  # baselines never invent depth
    assert res_["rgb_only"]["copy_last"]["psnr"]["available"]
    assert not res_["depth_only"]["const_velocity"]["ssim"]["available"]
    assert not res_["rgb_only"]["optical_flow"]["absrel"]["available"]
    assert res_["depth_only"]["optical_flow"]["absrel"]["available"]
    assert data["fvd"]["available"] is False and "disabled" in data["fvd"]["reason"]
    report = (out / "report.md").read_text()
    assert "copy-last" in report and "RGB-only" in report and "N/A" in report and "![psnr]" in report
    assert "randomly initialised" in report


def test_deterministic_and_fvd_plumbing(predictor):
    frames = _frames(24)
    proto = EvalProtocol(horizon=14, max_windows=2, steps=1, stride=2, resize_ceiling=False,
                         scenarios=("full", "rgb_only"), baselines=("copy_last",))
    models = (None, FakeI3D(), {"lpips": "off"})
    a = evaluate_frames(frames, predictor, proto, progress=False, metric_models=models)
    b = evaluate_frames(frames, predictor, proto, progress=False, metric_models=models)
    assert a.results == b.results and a.protocol["hash"] == b.protocol["hash"]
    assert a.fvd["available"] and a.fvd["chunks_per_window"] == [[0, 16]]
    v = a.fvd["values"]
    assert v["full"]["copy_last"]["rgb"]["n_clips"] == 2 and v["full"]["model"]["depth"]["value"] is not None
    assert "depth" not in v["rgb_only"]["copy_last"]  # N/A, not a number
    c = evaluate_frames(frames, predictor, EvalProtocol(max_windows=1, steps=1, seed=5, scenarios=("full",)),
                        progress=False, metric_models=(None, None, {"lpips": "off", "fvd": "off"}))
    assert c.protocol["hash"] != a.protocol["hash"]


def test_copy_last_scores_exactly_on_a_static_scene(predictor):
    f = _frames(1)[0]
    frames = [RGBDFrame(T0 + i * 100_000_000, f.rgb, f.depth) for i in range(6)]
    r = evaluate_frames(frames, predictor, EvalProtocol(max_windows=1, steps=1, scenarios=("full",)),
                        progress=False, metric_models=_metric_models())
    cl = r.results["full"]["copy_last"]
    assert cl["psnr"]["mean"] == [100.0] * 4 and cl["absrel"]["mean"] == [0.0] * 4
    assert cl["coverage"]["mean"] == [1.0] * 4


def test_frame_step_auto_from_stamps_and_gaps(predictor):
    frames = _frames(40, rate_hz=30.0, drop={21})  # 30 Hz bag, 10 Hz model -> every 3rd frame
    r = evaluate_frames(frames, predictor, EvalProtocol(steps=1, stride=1, scenarios=("full",), baselines=(),
                                                        resize_ceiling=False),
                        progress=False, metric_models=(None, None, {"lpips": "off", "fvd": "off"}))
    assert r.protocol["frame_step"] == 3 and r.protocol["effective_rate_hz"] == pytest.approx(10.0)
    assert r.counts["picked_frames"] == 13 and r.counts["windows_skipped_gap"] == 0


def test_windows_with_a_recording_gap_are_skipped(predictor):
    frames = _frames(20, drop={8, 9, 10})
    r = evaluate_frames(frames, predictor, EvalProtocol(steps=1, stride=1, scenarios=("full",), baselines=(),
                                                        resize_ceiling=False),
                        progress=False, metric_models=(None, None, {"lpips": "off", "fvd": "off"}))
    assert r.counts["windows_skipped_gap"] > 0 and r.counts["windows_evaluated"] > 0


def test_window_helpers():
    class F:
        def __init__(self, s):
            self.stamp_ns = s

    picked = [f.stamp_ns for f in pick_frames([F(i * 10) for i in range(10)], period_ns=30, source_interval_ns=10)]
    assert picked == [0, 30, 60, 90]
    wins = [[x for x in w] for w in windows(range(7), length=3, stride=2)]
    assert wins == [[0, 1, 2], [2, 3, 4], [4, 5, 6]]
    assert fvd_chunks(10) == [] and fvd_chunks(16) == [(0, 16)] and fvd_chunks(30) == [(0, 16), (14, 30)]


def _eval_bag_fails(bag, tmp_path, micro_yaml, *extra) -> str:
    res = CliRunner().invoke(eval_bag, [str(bag), "--out", str(tmp_path / "o"), "--random-init", str(micro_yaml),
                                        "--quiet", *extra])
    assert res.exit_code != 0 and "Traceback" not in res.output
    return res.output


def test_too_short_is_a_clear_error(tmp_path, micro_yaml):
    bag = tmp_path / "short"
    write_rgbd_bag(bag, _frames(4))
    out = _eval_bag_fails(bag, tmp_path, micro_yaml, "--no-fvd", "--no-lpips")
    assert "no window could be evaluated" in out and "needs 6 picked frames" in out


def test_bag_without_the_topics_is_a_clear_error(tmp_path, micro_yaml):
    bag = tmp_path / "bag"
    write_rgbd_bag(bag, _frames(3))
    out = _eval_bag_fails(bag, tmp_path, micro_yaml, "--topics", "color=/cam/rgb,depth=/cam/depth")
    assert "'/cam/rgb' not in the bag" in out and "/camera/color/image_raw" in out


def test_corrupt_bag_is_a_clear_error(tmp_path, micro_yaml):
    bag = tmp_path / "bag"
    write_rgbd_bag(bag, _frames(12))
    mcap = bag / "bag.mcap"
    data = mcap.read_bytes()
    mcap.write_bytes(data[: len(data) // 2])
    assert "truncated or corrupt" in _eval_bag_fails(bag, tmp_path, micro_yaml, "--no-fvd", "--no-lpips")


def test_bad_options_are_clear(tmp_path, micro_yaml):
    res = CliRunner().invoke(eval_bag, [str(tmp_path / "nope"), "--out", str(tmp_path / "o"), "--scenarios",
                                        "full,sideways", "--random-init", str(micro_yaml)])
    assert res.exit_code != 0 and "unknown scenario" in res.output
    res = CliRunner().invoke(eval_bag, [str(tmp_path / "nope"), "--out", str(tmp_path / "o"), "--random-init",
                                        str(micro_yaml)])
    assert res.exit_code != 0 and "no such bag" in res.output


def test_too_few_frames_in_memory():
    with pytest.raises(EvalError, match="no frames"):
        evaluate_frames([], Predictor.from_config(micro_config()), progress=False,
                        metric_models=(None, None, {}))


def test_demo_names_what_is_missing(tmp_path):
    from syncvp_core.evaluation.cli import demo

    res = CliRunner().invoke(demo, ["--checkpoint", str(tmp_path / "none.safetensors"), "--bag",
                                    str(tmp_path / "nobag"), "--out", str(tmp_path / "o")])
    assert res.exit_code != 0
    assert "missing" in res.output and "none.safetensors" in res.output and "nobag" in res.output


def test_demo_runs_on_a_given_checkpoint_and_bag(tmp_path, predictor):
    from syncvp_core.checkpoint import save_checkpoint
    from syncvp_core.evaluation.cli import demo

    ckpt = save_checkpoint(tmp_path / "m.safetensors", predictor.model.state_dict(),
                           {"config": predictor.config.to_dict()})
    bag = tmp_path / "bag"
    write_rgbd_bag(bag, _frames(8))
    res = CliRunner().invoke(demo, ["--checkpoint", str(ckpt), "--bag", str(bag), "--out", str(tmp_path / "o"),
                                    "--max-windows", "1", "--steps", "1", "--quiet"])
    assert res.exit_code == 0, res.output
    assert "open " in res.output and (tmp_path / "o" / "report.md").is_file()
    data = json.loads((tmp_path / "o" / "metrics.json").read_text())
    assert data["protocol"]["model"]["checkpoint_sha256"] and not data["protocol"]["model"]["random_init"]
    assert "16-frame clips" in data["fvd"]["reason"]


def test_eval_bag_on_the_shipped_demo_bag(tmp_path, micro_yaml):
    from syncvp_core.evaluation.cli import find_demo_bags

    bags = find_demo_bags()
    if not bags:
        pytest.skip("no demo bag under data/demo/")
    out = tmp_path / "out"
    res = CliRunner().invoke(eval_bag, [str(bags[0]), "--out", str(out), "--random-init", str(micro_yaml),
                                        "--max-windows", "1", "--steps", "1", "--no-fvd", "--quiet"])
    assert res.exit_code == 0, res.output
    data = json.loads((out / "metrics.json").read_text())
    assert data["counts"]["windows_evaluated"] == 1
    assert set(data["results"]) == {"full", "rgb_only", "depth_only"}
    assert all((out / f).is_file() for f in ("report.md", "animation_full.gif", "plots/psnr.png"))


def test_extra_baseline_row_and_metric_block(predictor, monkeypatch, tmp_path):
    """The documented extension points: a baseline registered in methods.BASELINES becomes a row with every
    metric; a MetricBlock sees every window and lands in metrics.json and report.md."""
    from syncvp_core.evaluation import methods
    from syncvp_core.evaluation.baselines import CopyLast
    from syncvp_core.evaluation.report import write_report

    class Frozen(CopyLast):
        name = "frozen"
        description = "copy-last under another name (test row)"

    class CountBlock:
        name = "window census"

        def __init__(self):
            self.windows, self.methods = 0, set()

        def update(self, window, forecasts):
            self.windows += 1
            self.methods |= {m for by in forecasts.values() for m in by}

        def summary(self):
            return {"rows": [{"method": m} for m in sorted(self.methods)], "windows": self.windows}

    monkeypatch.setitem(methods.BASELINES, "frozen", Frozen)
    block = CountBlock()
    r = evaluate_frames(_frames(12), predictor, EvalProtocol(max_windows=2, steps=1, scenarios=("full",),
                                                             baselines=("copy_last", "frozen")),
                        progress=False, metric_models=(None, None, {"lpips": "off", "fvd": "off"}), blocks=[block])
    cells = r.results["full"]
    assert cells["frozen"]["psnr"]["mean"] == cells["copy_last"]["psnr"]["mean"]
    assert r.blocks["window census"]["windows"] == 2 == r.counts["windows_evaluated"]
    files = write_report(r, tmp_path / "o")
    report = files["report"].read_text()
    assert "## window census" in report and "| frozen |" in report and "copy-last under another name" in report
    assert json.loads(files["metrics"].read_text())["blocks"]["window census"]["windows"] == 2


def test_report_names_the_samplers_draws(tmp_path):
    """A model whose forecast is the mean latent of several draws says so beside its DDIM steps."""
    import yaml

    cfg = tmp_path / "draws.yaml"
    cfg.write_text(yaml.safe_dump(json.loads(micro_config(**{"sampler.draws": 3}).to_json())))
    bag = tmp_path / "bag"
    write_rgbd_bag(bag, _frames(8))
    out = tmp_path / "out"
    res = CliRunner().invoke(eval_bag, [str(bag), "--out", str(out), "--random-init", str(cfg), "--max-windows",
                                        "1", "--steps", "1", "--no-fvd", "--quiet", "--scenarios", "full"])
    assert res.exit_code == 0, res.output
    assert "DDIM steps 1, eta 0.0, mean latent of 3 draws" in (out / "report.md").read_text()
    data = json.loads((out / "metrics.json").read_text())
    assert data["protocol"]["model"]["config"]["sampler"]["draws"] == 3  # in the protocol hash too
