"""bench/device_train.sh, the lent GPU's one-call recipe, runs end to end on the CPU (SMOKE=1: a training pack
of the synthetic folder, 2 steps per stage) and brings back a motion-prior bundle trained from the pack."""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from syncvp_core.checkpoint import load_checkpoint

pytest.importorskip("cv2")
ROOT = Path(__file__).resolve().parents[1]


def test_device_recipe_smoke_run_brings_back_the_bundle(tmp_path):
    env = dict(os.environ, SMOKE="1", OUT=str(tmp_path / "out"), RUN=str(tmp_path / "run"),
               PYTHON=sys.executable, OMP_NUM_THREADS="1")
    r = subprocess.run(["bash", str(ROOT / "bench" / "device_train.sh")], cwd=ROOT, env=env,
                       capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    out = tmp_path / "out"
    bundle = out / "syncvp_tiny.safetensors"
    tensors, meta = load_checkpoint(bundle)
    assert any(k.startswith("denoiser.") for k in tensors)
    assert meta["config"]["motion_prior"] == "flow"
    train = meta["train_config"]
    train = json.loads(train) if isinstance(train, str) else train
    assert train["data"]["pack"].endswith("smoke_pack.npz")  # trained from the pack, not the sources
    assert meta["steps"] == {"ae_rgb": 2, "ae_depth": 2, "denoiser": 2}
    for m in ("rgb", "depth"):
        assert (out / "ae" / f"ae_{m}_ema.safetensors").stat().st_size > 0
    assert "done" in (out / "device_train.log").read_text()
