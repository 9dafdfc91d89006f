"""Uncertainty scoring (syncvp_core.evaluation.uncertainty): calibration, sparsification, AUSE."""
import json

import numpy as np
import pytest
import yaml
from click.testing import CliRunner

from syncvp_core.evaluation.uncertainty import UncertaintyStats, ause, sparsification_curve
from syncvp_core.testing import micro_config


def _gaussian_forecast(k=3, h=40, w=50, seed=0, lie=1.0):
    """Truth drawn from N(mean, std): a perfectly calibrated forecast when lie == 1."""
    r = np.random.default_rng(seed)
    mean = r.uniform(4, 8, (k, h, w)).astype(np.float32)
    std = r.uniform(0.05, 0.8, (k, h, w)).astype(np.float32)
    true = mean + std * r.standard_normal((k, h, w)).astype(np.float32)
    return true, mean, (std * lie).astype(np.float32)


def test_calibrated_gaussian_hits_68_and_95_percent_and_small_ause():
    true, mean, std = _gaussian_forecast()
    st = UncertaintyStats(horizon=3)
    st.add(true, mean, std)
    s = st.summary()
    assert s["within_1std"] == pytest.approx(0.6827, abs=0.02)
    assert s["within_2std"] == pytest.approx(0.9545, abs=0.01)
    for step in s["per_horizon"]:
        assert step["pixels"] == 40 * 50
        assert step["within_1std"] == pytest.approx(0.6827, abs=0.03)
    # An informative std ranks errors well: removing uncertain pixels lowers the error steadily.
    curve = np.array(s["sparsification_mae_m"])
    assert (np.diff(curve) < 0).all()
    oracle = np.array(s["oracle_mae_m"])
    assert (curve >= oracle - 1e-9).all()
    # Against the same errors ranked by a random std, the informative one has a much smaller AUSE.
    shuffled = UncertaintyStats(horizon=3)
    shuffled.add(true, mean, np.random.default_rng(9).permutation(std.ravel()).reshape(std.shape))
    assert s["ause_m"] < 0.5 * shuffled.summary()["ause_m"]


def test_overconfident_spread_is_reported_as_such():
    true, mean, std = _gaussian_forecast(lie=0.3)
    st = UncertaintyStats(horizon=3)
    st.add(true, mean, std)
    s = st.summary()
    assert s["within_1std"] < 0.3 and s["within_2std"] < 0.5


def test_sparsification_and_ause_on_hand_made_errors():
    err = np.array([4.0, 3.0, 2.0, 1.0])
    fr = np.array([0.0, 0.25, 0.5, 0.75])
    np.testing.assert_allclose(sparsification_curve(err, err, fr), [2.5, 2.0, 1.5, 1.0])
    curve, oracle, area = ause(err, -err, fr)  # the std ranks errors exactly backwards
    np.testing.assert_allclose(curve, [2.5, 3.0, 3.5, 4.0])
    assert area == pytest.approx(0.25 * (0 + 2 * 1 + 2 * 2 + 3) / 2)
    _, _, perfect = ause(err, err * 10, fr)
    assert perfect == 0.0


def test_invalid_truth_is_ignored_and_pixels_subsampled_for_ranking():
    true, mean, std = _gaussian_forecast(k=2)
    true[0, :10] = np.nan
    true[1, :, :5] = 0.0
    st = UncertaintyStats(horizon=4, max_pixels_per_frame=500)
    st.add(true, mean, std)
    s = st.summary()
    assert [x["pixels"] for x in s["per_horizon"]] == [30 * 50, 40 * 45, 0, 0]
    assert s["per_horizon"][2]["within_1std"] is None and s["per_horizon"][2]["ause_m"] is None
    assert s["pixels_ranked"] == 1000
    with pytest.raises(ValueError, match="must be equal"):
        st.add(true, mean[:1], std)


def test_eval_with_samples_reports_calibration_sparsification_and_a_plot(tmp_path):
    from syncvp_core.data.bag import write_rgbd_bag
    from syncvp_core.data.frames import RGBDFrame, intrinsics_matrix
    from syncvp_core.evaluation.cli import eval_bag

    rng = np.random.default_rng(0)
    tex = rng.integers(0, 256, (24, 60, 3), dtype=np.uint8)
    ramp = np.linspace(0.8, 3.0, 32, dtype=np.float32)[None].repeat(24, 0)
    frames = [RGBDFrame(10**18 + i * 10**8, np.ascontiguousarray(tex[:, 14 - i:46 - i]), ramp + 0.01 * i,
                        intrinsics_matrix(30, 30, 16, 12)) for i in range(14)]  # sliding texture, 10 Hz
    bag = tmp_path / "bag"
    write_rgbd_bag(bag, frames)
    cfg = tmp_path / "micro.yaml"
    cfg.write_text(yaml.safe_dump(json.loads(micro_config().to_json())))
    out = tmp_path / "out"
    args = [str(bag), "--out", str(out), "--random-init", str(cfg), "--max-windows", "2", "--steps", "2",
            "--no-fvd", "--no-lpips", "--quiet", "--scenarios", "full,rgb_only"]
    res = CliRunner().invoke(eval_bag, args + ["--num-samples", "3"])
    assert res.exit_code == 0, res.output
    data = json.loads((out / "metrics.json").read_text())
    assert data["protocol"]["trajectories"] == 3
    unc = data["blocks"]["uncertainty"]
    assert unc["num_samples"] == 3 and set(unc["scenarios"]) == {"full", "rgb_only"}
    full = unc["scenarios"]["full"]
    assert len(full["per_horizon"]) == 4 and all(h["pixels"] > 0 for h in full["per_horizon"])
    assert 0 <= full["within_1std"] <= full["within_2std"] <= 1
    assert full["ause_m"] >= 0
    assert all(h["mean_std_m"] > 0 for h in full["per_horizon"])  # different noise: a real spread
    report = (out / "report.md").read_text()
    assert "## Depth uncertainty (model)" in report and "![sparsification](plots/sparsification.png)" in report
    assert "| h4 |" in report and "## uncertainty" not in report
    assert (out / "plots" / "sparsification.png").stat().st_size > 1000
    # One sample: no uncertainty block, and the protocol hash is the one from before num_samples existed.
    out1 = tmp_path / "out1"
    res = CliRunner().invoke(eval_bag, [a if a != str(out) else str(out1) for a in args])
    assert res.exit_code == 0, res.output
    one = json.loads((out1 / "metrics.json").read_text())
    assert "blocks" not in one and one["protocol"]["trajectories"] == 1
    assert one["protocol_hash"] != data["protocol_hash"]
    res = CliRunner().invoke(eval_bag, args + ["--num-samples", "0"])
    assert res.exit_code != 0 and "num_samples must be >= 1" in res.output
    res = CliRunner().invoke(eval_bag, args + ["--num-samples", "2", "--online"])
    assert res.exit_code != 0 and "offline only" in res.output


def test_block_ignores_forecasts_without_spread():
    from syncvp_core.evaluation.baselines import Forecast
    from syncvp_core.evaluation.uncertainty import UncertaintyBlock

    true, mean, std = _gaussian_forecast(k=2)

    class W:
        fut_depth = true

    b = UncertaintyBlock(horizon=2, num_samples=4)
    b.update(W, {"full": {"model": Forecast(None, mean, "full", std), "copy_last": Forecast(None, mean, "full")},
                 "rgb_only": {"model": None}, "depth_only": {"model": Forecast(None, mean, "depth_only")}})
    s = b.summary()
    assert list(s["scenarios"]) == ["full"] and s["scenarios"]["full"]["per_horizon"][1]["pixels"] == 40 * 50
