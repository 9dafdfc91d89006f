"""Smoke runs of the deployment benchmarks (tiny settings), so the scripts keep working."""
import json
from pathlib import Path

import pytest

from syncvp_core.testing import load_bench

ROOT = Path(__file__).resolve().parent.parent
REAL = ROOT.parent / "shared/data/real-rgbd"


def test_latency_bench_runs_and_reports(tmp_path, capsys):
    lat = load_bench("latency")
    out = tmp_path / "lat.json"
    assert lat.main(["--models", "tiny", "--backends", "torch-eager,tensorrt", "--threads", "1", "--steps", "2",
                     "--step-reps", "2", "--pred-reps", "1", "--json", str(out)]) == 0
    text = capsys.readouterr().out
    assert "| tiny | 1 | torch-eager |" in text and "predictions/s" in text
    data = json.loads(out.read_text())
    eager, trt = data["summary"]
    assert eager["step_speedup"] == 1.0 and eager["pred_per_s"] > 0
    assert "skipped" in trt  # no TensorRT / GPU here: reported, not fatal


@pytest.mark.skipif(not REAL.exists(), reason="shared/data/real-rgbd is not available")
def test_steps_quality_bench_runs_on_real_clips(tmp_path, capsys):
    sq = load_bench("steps_quality")
    png, js = tmp_path / "sq.png", tmp_path / "sq.json"
    assert sq.main(["--random-init", "tiny", "--data", str(REAL / "tum_freiburg1_xyz"), "--clips", "1",
                    "--steps", "3,1", "--plot", str(png), "--json", str(js)]) == 0
    res = json.loads(js.read_text())
    assert [e["steps"] for e in res["summary"]] == [3, 1, "copy-last"]
    assert png.stat().st_size > 10_000 and "| copy-last |" in capsys.readouterr().out
    assert res["recommended_min_steps"] in (1, 3)
