"""eval-dataset (the paper's Cityscapes protocol) on synthetic folders in both supported layouts."""
import json

import numpy as np
import pytest
import torch
import yaml
from click.testing import CliRunner
from PIL import Image

from syncvp_core.evaluation.cli import eval_dataset
from syncvp_core.evaluation.dataset import DatasetProtocol, evaluate_dataset
from syncvp_core.evaluation.protocol import EvalError
from syncvp_core.predictor import Predictor
from syncvp_core.testing import micro_config


class FakeI3D(torch.nn.Module):
    def forward(self, x):
        return torch.cat([x.mean(dim=(2, 3, 4)), x.std(dim=(2, 3, 4))], dim=1)


def _write_archive(root, seqs=(("seqA", 16), ("seqB", 16), ("short", 3)), h=40, w=48):
    rng = np.random.default_rng(0)
    for name, n in seqs:
        (root / "rgb" / "test" / name).mkdir(parents=True)
        (root / "depth" / "test" / name).mkdir(parents=True)
        for i in range(n):
            Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8)).save(
                root / "rgb" / "test" / name / f"{i:06d}.png")
            mm = rng.integers(500, 4000, (h, w)).astype(np.uint16)
            mm[0, 0] = 0
            Image.fromarray(mm).save(root / "depth" / "test" / name / f"{i:06d}.png")


def _write_cityscapes(root, n=8, h=32, w=64):
    rng = np.random.default_rng(1)
    city = "testcity"
    for sub in ("leftImg8bit_sequence", "disparity_sequence", "camera"):
        (root / sub / "test" / city).mkdir(parents=True)
    for i in range(n):
        stem = f"{city}_000001_{i:06d}"
        Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8)).save(
            root / "leftImg8bit_sequence" / "test" / city / f"{stem}_leftImg8bit.png")
        Image.fromarray(np.full((h, w), 2561, np.uint16)).save(  # (2561 - 1) / 256 = 10 px disparity
            root / "disparity_sequence" / "test" / city / f"{stem}_disparity.png")
    cam = {"intrinsic": {"fx": 200.0, "fy": 200.0, "u0": 32.0, "v0": 16.0}, "extrinsic": {"baseline": 0.2}}
    (root / "camera" / "test" / city / f"{city}_000001_000000_camera.json").write_text(json.dumps(cam))


@pytest.fixture(scope="module")
def predictor():
    return Predictor.from_config(micro_config(), seed=0)


def _models(fvd=True):
    from syncvp_core import pretrained as weights
    from syncvp_core.evaluation.lpips import LPIPS

    try:
        lp, why = LPIPS.pretrained(), {}
    except weights.WeightsUnavailable as e:
        lp, why = None, {"lpips": str(e)}
    return lp, FakeI3D() if fvd else None, why if fvd else {**why, "fvd": "off"}


def test_archive_layout_protocol(tmp_path, predictor):
    _write_archive(tmp_path)
    proto = DatasetProtocol(future_frames=14, size=32, steps=1, trajectories=2)
    r = evaluate_dataset(tmp_path, predictor, proto, progress=False, metric_models=_models())
    assert r["protocol"]["layout"] == "folder"
    assert r["counts"]["videos"] == 2 and r["counts"]["skipped_short"] == 1
    m = r["metrics"]
    for name in ("psnr", "ssim", "absrel", "rmse", "delta1"):
        assert m[name]["available"] and m[name]["n_videos"] == 2 and len(m[name]["per_step"]) == 14
    assert m["psnr"]["best_of_n"] >= m["psnr"]["mean"] - 1e-9  # best-of-N is reported separately
    assert m["rmse"]["best_of_n"] <= m["rmse"]["mean"] + 1e-9
    f = r["fvd"]
    assert f["available"] and f["chunks"] == [[0, 16]]
    assert f["rgb"]["n_real_clips"] == 2 and f["rgb"]["n_pred_clips"] == 4  # 2 videos x 2 trajectories
    again = evaluate_dataset(tmp_path, predictor, proto, progress=False, metric_models=_models())
    assert again["metrics"] == m and again["protocol_hash"] == r["protocol_hash"]


def test_cityscapes_layout_uses_metric_depth(tmp_path, predictor):
    _write_cityscapes(tmp_path)
    proto = DatasetProtocol(future_frames=6, size=32, steps=1)
    r = evaluate_dataset(tmp_path, predictor, proto, progress=False, metric_models=_models(fvd=False))
    assert r["protocol"]["layout"] == "cityscapes" and r["counts"]["videos"] == 1
    assert r["fvd"]["available"] is False
    # ground truth depth = 0.2 m * 200 px / 10 px = 4 m everywhere: the model's RMSE is measured in metres
    assert 0 <= r["metrics"]["rmse"]["mean"] < 20


def test_cli_writes_report(tmp_path, predictor):
    _write_archive(tmp_path / "data", seqs=(("seqA", 8),))
    cfg = tmp_path / "micro.yaml"
    cfg.write_text(yaml.safe_dump(json.loads(micro_config().to_json())))
    res = CliRunner().invoke(eval_dataset, [str(tmp_path / "data"), "--out", str(tmp_path / "out"), "--future", "6",
                                            "--size", "32", "--steps", "1", "--random-init", str(cfg), "--quiet"])
    assert res.exit_code == 0, res.output
    data = json.loads((tmp_path / "out" / "metrics.json").read_text())
    assert data["protocol"]["future_frames"] == 6 and "per video" in data["protocol"]["aggregation"]
    assert "FVD not computed" in (tmp_path / "out" / "report.md").read_text()


def test_bad_dataset_input(tmp_path, predictor):
    with pytest.raises(EvalError, match="no such dataset folder"):
        evaluate_dataset(tmp_path / "nope", predictor, progress=False, metric_models=(None, None, {}))
    _write_archive(tmp_path, seqs=(("short", 3),))
    with pytest.raises(EvalError, match="no video with 30 frames"):
        evaluate_dataset(tmp_path, predictor, progress=False, metric_models=(None, None, {}))
    (tmp_path / "rgb" / "test" / "long").mkdir()
    for i in range(30):
        Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(tmp_path / "rgb" / "test" / "long" / f"{i:06d}.png")
    with pytest.raises(EvalError, match="missing depth"):
        evaluate_dataset(tmp_path, predictor, progress=False, metric_models=(None, None, {}))
