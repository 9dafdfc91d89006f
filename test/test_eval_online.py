"""eval-bag --online: the bag through the real node (in-process rclpy); online metrics == offline metrics."""
import json

import numpy as np
import pytest
import torch
import yaml

pytest.importorskip("rclpy")

from click.testing import CliRunner  # noqa: E402

from syncvp_core.data.bag import write_rgbd_bag  # noqa: E402
from syncvp_core.evaluation.cli import eval_bag  # noqa: E402
from syncvp_core.testing import micro_config, sliding_frames  # noqa: E402

pytestmark = pytest.mark.ros
H, W = 36, 48
T0 = 1_700_000_000_000_000_000
RATE_HZ = 20.0  # twice the model's rate: the node and the offline code must pick the same frames


def _frames(n):
    return sliding_frames(n, H, W, RATE_HZ, t0_ns=T0)


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    root = tmp_path_factory.mktemp("online")
    cfg = root / "micro.yaml"
    cfg.write_text(yaml.safe_dump(json.loads(micro_config().to_json())))
    bag = root / "bag"
    write_rgbd_bag(bag, _frames(2 * (2 + 3 * 2) + 3))  # 2 context + 3 windows x horizon 2, at frame step 2
    return cfg, bag


def _run(args):
    res = CliRunner().invoke(eval_bag, args, catch_exceptions=False)
    assert res.exit_code == 0, res.output
    return res


def _numbers(results):
    """Every per-horizon value of every cell, keyed by (scenario, method, metric)."""
    out = {}
    for scenario, by_method in results.items():
        for method, cell in by_method.items():
            for metric, c in cell.items():
                if isinstance(c, dict) and c.get("available"):
                    out[(scenario, method, metric)] = c["mean"]
    return out


def test_online_lockstep_matches_offline_and_reports_delivery_and_latency(setup, tmp_path):
    cfg, bag = setup
    threads = torch.get_num_threads()
    common = [str(bag), "--random-init", str(cfg), "--horizon", "2", "--max-windows", "3", "--steps", "2",
              "--seed", "5", "--no-fvd", "--threads", "1", "--quiet", "--scenarios", "full,rgb_only"]
    try:
        _run(common + ["--out", str(tmp_path / "offline")])
        res = _run(common + ["--out", str(tmp_path / "online"), "--online"])
    finally:
        torch.set_num_threads(threads)
    off = json.loads((tmp_path / "offline" / "metrics.json").read_text())
    on = json.loads((tmp_path / "online" / "metrics.json").read_text())
    assert on["counts"]["windows_evaluated"] == off["counts"]["windows_evaluated"] == 3
    a, b = _numbers(off["results"]), _numbers(on["results"])
    assert set(a) == set(b) and ("full", "model", "psnr") in a and ("rgb_only", "model", "absrel") in a
    for key in a:
        np.testing.assert_allclose(b[key], a[key], rtol=0, atol=1e-9, err_msg=str(key))
    for scenario in ("full", "rgb_only"):
        assert on["results"][scenario]["model"]["failed_windows"] == 0
        o = on["online"]["scenarios"][scenario]
        assert o["dropped_work"] == 0 and o["lockstep_timeouts"] == 0 and o["unmatched_outputs"] == 0
        # every context-ready frame (not only the scored windows) got a complete prediction
        assert o["delivered_predictions"] == o["expected_predictions"] == 5
        assert o["delivered_fraction"] == 1.0
        assert o["latency"]["p50"] > 0 and o["latency"]["p95"] >= o["latency"]["p50"]
        assert len(o["latency_ms"]) == o["delivered_predictions"]
    assert on["protocol"]["online"]["pacing"] == "lockstep"
    assert on["protocol_hash"] != off["protocol_hash"]
    report = (tmp_path / "online" / "report.md").read_text()
    assert "## Online replay through the node" in report and "plots/latency.png" in report
    assert (tmp_path / "online" / "plots" / "latency.png").stat().st_size > 0
    assert "latency p50" in res.output


def test_online_needs_raw_image_topics_and_a_window(setup, tmp_path):
    from syncvp_core.evaluation.protocol import EvalError, EvalProtocol
    from syncvp_ros.online_eval import OnlineOptions, evaluate_bag_online

    cfg, bag = setup
    with pytest.raises(EvalError, match="no window"):
        evaluate_bag_online(str(bag), f"random:{cfg}", EvalProtocol(horizon=40), progress=False)
    with pytest.raises(EvalError, match="rate"):
        evaluate_bag_online(str(bag), f"random:{cfg}", options=OnlineOptions(rate=0.0), progress=False)


def test_cli_without_rclpy_gives_an_install_hint_and_rate_needs_online(setup, tmp_path, monkeypatch):
    import sys

    cfg, bag = setup
    res = CliRunner().invoke(eval_bag, [str(bag), "--random-init", str(cfg), "--rate", "2", "--out", str(tmp_path)])
    assert res.exit_code != 0 and "--rate only applies with --online" in res.output
    monkeypatch.setitem(sys.modules, "syncvp_ros.online_eval", None)  # import fails as without rclpy
    res = CliRunner().invoke(eval_bag, [str(bag), "--random-init", str(cfg), "--online", "--out", str(tmp_path)])
    assert res.exit_code != 0 and "rclpy" in res.output and "pip install" in res.output
    import importlib.metadata

    monkeypatch.setattr(importlib.metadata, "entry_points", lambda group=None: [])  # syncvp_ros not installed
    res = CliRunner().invoke(eval_bag, [str(bag), "--random-init", str(cfg), "--online", "--out", str(tmp_path)])
    assert res.exit_code != 0 and "provided by the syncvp_ros package" in res.output


def test_online_is_registered_by_the_ros_package():
    from syncvp_core.evaluation.cli import online_evaluator
    from syncvp_ros.online_eval import run_from_cli

    assert online_evaluator() is run_from_cli  # found through the entry point, not imported by the core


def test_core_evaluation_does_not_import_rclpy():
    import subprocess
    import sys

    code = ("import sys, syncvp_core.evaluation.cli, syncvp_core.evaluation.replay, syncvp_core.evaluation.report; "
            "assert 'rclpy' not in sys.modules, 'rclpy imported'")
    subprocess.run([sys.executable, "-c", code], check=True)
