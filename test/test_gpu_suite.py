"""bench/gpu_suite.py --smoke on the CPU: every section runs its code path, and what the CPU lacks (CUDA graphs,
CUDA memory statistics, a GPU peak) is recorded with a reason instead of crashing the suite."""
import json
import os
import subprocess
import sys
import weakref
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    out = tmp_path_factory.mktemp("gpu_suite")
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    cmd = [sys.executable, str(ROOT / "bench" / "gpu_suite.py"), "--smoke", "--device", "cpu", "--threads", "1",
           "--peak-tflops", "0.5", "--out", str(out)]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=900)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return json.loads((out / "report.json").read_text()), (out / "report.md").read_text()


def test_every_section_ran_and_none_failed(report):
    rep, md = report
    assert list(rep["sections"]) == ["correctness", "paper", "stca", "tiny", "training", "release", "compile"]
    for name, sec in rep["sections"].items():
        assert "failed" not in sec and "skipped" not in sec, (name, sec)
        assert f"## {name}" in md
    assert rep["env"]["smoke"] is True and rep["env"]["peak_tflops"]["bf16"] == 0.5
    assert "--peak-tflops" in rep["env"]["peak_source"]


def test_correctness_compares_every_dtype_and_stage(report):
    rows = report[0]["sections"]["correctness"]["by_dtype"]
    assert set(rows) == {"fp32", "fp16", "bf16"}
    assert all(rows["fp32"][k]["max_abs"] == 0.0 for k in ("encode", "denoiser_step", "decode", "sampled_chunk"))
    for dt in ("fp16", "bf16"):  # autocast really ran in half precision: not bit-identical, but close
        assert 0.0 < rows[dt]["denoiser_step"]["rel"] < rows[dt]["tolerance_rel"], rows[dt]
        assert rows[dt]["within_tolerance"] is True


def test_paper_official_vs_fast_side_by_side(report):
    sec = report[0]["sections"]["paper"]
    off = sec["official"]
    assert off["dtype"] == "fp32" and off["steps"] == 4 and off["eta"] == 1.0 and off["median_s"] > 0
    assert sec["chunks"] == 2  # the rollout path ran (2 -> 6 frames with 4-frame chunks)
    fast = {r["variant"]: r for r in sec["fast"]}
    assert fast["fp16 eager"]["median_s"] > 0 and fast["bf16 eager"]["median_s"] > 0
    for name in ("fp16 CUDA graphs", "bf16 CUDA graphs"):
        assert "CUDA graphs need a CUDA device" in fast[name]["skipped"]
    # fewer DDIM steps in the fast path: fewer counted FLOPs per prediction
    assert 0 < fast["fp16 eager"]["flops"] < off["flops"]
    assert sec["speedup_vs_official"] > 0 and sec["fastest"] in fast
    for r in (off, fast["fp16 eager"]):  # achieved FLOP rate against the (given) dense peak
        assert r["fraction_of_dense_peak"] == pytest.approx(r["tflops_per_s"] / 0.5)
    sb = sec["shape_bound"]
    assert sb["distinct_ops"] > 10 and sb["flops"] > 0 and sb["fraction_of_shape_bound"] > 0
    assert all("skipped" in r["memory"] for r in [off, fast["fp16 eager"]])


def test_tiny_throughput_batches(report):
    for v in report[0]["sections"]["tiny"]["variants"]:
        assert [r["batch"] for r in v["by_batch"]] == [1, 2]
        assert v["best_predictions_per_s"] >= v["batch1_predictions_per_s"] > 0


def test_training_and_release(report):
    sections = report[0]["sections"]
    assert [r["config"] for r in sections["training"]["configs"]] == ["tiny", "paper"]
    assert all(r["clips_per_s"] > 0 for r in sections["training"]["configs"])
    rel = sections["release"]
    assert rel["eager"]["released"] is True and rel["eager"]["model_unreachable_without_gc"] is True
    assert "CUDA device" in rel["CUDA graphs"]["skipped"]


def test_compiled_path_equals_eager(report):
    rows = {r["variant"].split(" ", 1)[1]: r for r in report[0]["sections"]["compile"]["variants"]}
    compiled = rows["compile (eager)"]
    assert compiled["vs_eager_step"]["max_abs"] == 0.0  # dynamo's eager backend runs the same kernels
    assert compiled["vs_eager_prediction"]["rgb_max_levels"] == 0
    assert "CUDA device" in rows["compile (eager) + CUDA graphs"]["skipped"]


def test_stca_section_reports_interleaved_ratios(report):
    sec = report[0]["sections"]["stca"]
    (row,) = sec["by_resolution"]
    assert row["resolution"] == 64 and row["rounds"] == 3
    assert 0 < row["core_flops_ratio"] < 1  # STCA's attention costs less than full attention's
    assert row["fusion_ratio_per_round"]["min"] <= row["fusion_ratio_per_round"]["median"] > 0


@pytest.fixture
def suite():
    sys.path.insert(0, str(ROOT / "bench"))
    try:
        import gpu_suite
        yield gpu_suite
    finally:
        sys.path.remove(str(ROOT / "bench"))


@pytest.mark.parametrize("name,key,bf16", [
    ("NVIDIA H100 80GB HBM3", "H100", 989.4),  # SXM5
    ("NVIDIA H100 PCIe", "H100 PCIe", 756.0),
    ("NVIDIA H100 NVL", "H100 NVL", 835.0),
    ("NVIDIA H200", "H200", 989.4),
])
def test_dense_peak_is_matched_by_gpu_name(suite, monkeypatch, name, key, bf16):
    monkeypatch.setattr(suite.torch.cuda, "get_device_name", lambda device=None: name)
    peaks, why = suite.peak_tflops("cuda")
    assert peaks["bf16"] == bf16 and f"{key} datasheet" in why


def test_unknown_gpu_has_no_peak_unless_given(suite, monkeypatch):
    monkeypatch.setattr(suite.torch.cuda, "get_device_name", lambda device=None: "NVIDIA A10")
    peaks, why = suite.peak_tflops("cuda")
    assert peaks is None and "A10" in why and "--peak-tflops" not in why
    assert suite.peak_tflops("cuda", 125.0)[0]["fp16"] == 125.0


class _FakeAllocator:
    """CUDA memory counters driven by the test (this machine has no CUDA): the suite's CUDA-only arithmetic."""

    def __init__(self, suite, monkeypatch):
        self.allocated, self.peak = 100 * 2**20, 100 * 2**20
        monkeypatch.setattr(suite, "is_cuda", lambda device: True)
        monkeypatch.setattr(suite, "sync", lambda device: None)
        cuda = suite.torch.cuda
        monkeypatch.setattr(cuda, "reset_peak_memory_stats", lambda device=None: setattr(self, "peak", self.allocated))
        monkeypatch.setattr(cuda, "memory_allocated", lambda device=None: self.allocated)
        monkeypatch.setattr(cuda, "max_memory_allocated", lambda device=None: self.peak)
        monkeypatch.setattr(cuda, "memory_reserved", lambda device=None: self.allocated)
        monkeypatch.setattr(cuda, "empty_cache", lambda: None)


def test_memory_watch_reports_peak_above_start(suite, monkeypatch):
    fake = _FakeAllocator(suite, monkeypatch)
    with suite.MemoryWatch("cuda") as mem:
        fake.peak = fake.allocated + 30 * 2**20
    assert mem.result == {"peak_allocated_mib": 130.0, "peak_above_start_mib": 30.0}


def test_release_check_flags_memory_that_does_not_come_back(suite, monkeypatch):
    from syncvp_core.testing import micro_config

    fake = _FakeAllocator(suite, monkeypatch)
    cfg = micro_config()
    rgb, dep = suite.sensor_context(cfg)

    def make(leak):
        def build():
            p = suite.Predictor.from_config(cfg, seed=0, device="cpu")
            fake.allocated += 50 * 2**20  # the model's weights arrive on the device
            if not leak:
                weakref.finalize(p.model, lambda: setattr(fake, "allocated", fake.allocated - 50 * 2**20))
            return p
        return build

    ok = suite.release_check(make(leak=False), "cpu", rgb, dep)
    assert ok["released"] is True and ok["held_mib"] == 50.0 and ok["left_after_release_mib"] == 0.0
    assert ok["model_unreachable_without_gc"] is True
    leak = suite.release_check(make(leak=True), "cpu", rgb, dep)
    assert leak["released"] is False and leak["left_after_release_mib"] == 50.0
