"""Backend selection: ``auto`` order and fallbacks with monkeypatched availability, explicit requests, and
install hints instead of tracebacks for missing optional packages."""
import logging
import sys

import pytest

from syncvp_core.backends import select
from syncvp_core.backends.select import BackendError, auto_candidates, create_backend
from syncvp_core.backends.selfcheck import time_step as real_time_step
from syncvp_core.backends.torch_backend import TorchBackend
from syncvp_core.predictor import Predictor
from syncvp_core.testing import micro_config


@pytest.fixture(scope="module")
def model():
    return Predictor.from_config(micro_config(), seed=0).model


@pytest.fixture(autouse=True)
def _fresh_ranking():
    select.clear_auto_cache()
    yield
    select.clear_auto_cache()


def _avail(monkeypatch, cuda, trt, ort_cuda, ort=True):
    monkeypatch.setattr(select, "cuda_usable", lambda device: cuda)
    monkeypatch.setattr(select, "tensorrt_available", lambda: trt)
    monkeypatch.setattr(select, "onnxruntime_cuda_available", lambda: ort_cuda)
    monkeypatch.setattr(select, "onnxruntime_available", lambda: ort)


@pytest.mark.parametrize("cuda,trt,ort_cuda,ort,expected", [
    (True, True, True, True, ["torch", "tensorrt", "onnxruntime"]),
    (True, True, False, True, ["torch", "tensorrt"]),  # onnxruntime-CPU does not serve a CUDA device
    (True, False, True, True, ["torch", "onnxruntime"]),
    (True, False, False, True, ["torch"]),
    (False, True, True, True, ["torch", "onnxruntime"]),  # CPU: onnxruntime-CPU qualifies, TensorRT does not
    (False, True, True, False, ["torch"]),
])
def test_auto_candidates(monkeypatch, cuda, trt, ort_cuda, ort, expected):
    _avail(monkeypatch, cuda, trt, ort_cuda, ort)
    cands = auto_candidates("cuda:0" if cuda else "cpu")
    assert [k for k, _ in cands] == expected
    assert all(reason for _, reason in cands)


class _Fake:
    """A stand-in backend: torch eager's denoiser with a declared step time, optionally failing or wrong."""

    def __init__(self, name, model, delay=0.0, offset=0.0, fail=None):
        self.name, self._ref, self.delay, self.offset, self.fail = name, TorchBackend(model, "cpu"), delay, offset, fail

    def denoise(self, *args):
        if self.fail:
            raise RuntimeError(self.fail)
        e_r, e_d = self._ref.denoise(*args)
        return e_r.map(lambda p: p + self.offset), e_d


def _fakes(monkeypatch, model, specs):
    created = []

    def fake_create(kind, model_, device, checkpoint, options):
        created.append(kind)
        spec = specs[kind]
        if isinstance(spec, Exception):
            raise spec
        return _Fake(kind, model, **spec)

    def declared_time(backend, inputs, device, max_steps, budget_s):
        # The real timing loop runs (its calls, its failures), but the ranking sees each stand-in's declared
        # step time: wall-clock sleeps of tens of ms lost to scheduler noise on a loaded 2-core CI machine.
        _, eps_r, eps_d = real_time_step(backend, inputs, device, max_steps, budget_s)
        return backend.delay, eps_r, eps_d

    monkeypatch.setattr(select, "_create", fake_create)
    monkeypatch.setattr(select, "time_step", declared_time)
    return created


def test_auto_picks_the_fastest_backend_that_passes_its_self_check(model, monkeypatch, caplog):
    _avail(monkeypatch, True, True, True)
    _fakes(monkeypatch, model, {"torch": {"delay": 0.03}, "onnxruntime": {"delay": 0.01},
                                "tensorrt": {"delay": 0.0, "offset": 1.0}})  # fastest, but wrong
    with caplog.at_level(logging.INFO, logger="syncvp_core.backends.select"):
        b = create_backend("auto", model, "cpu")  # CUDA availability is patched in
    assert b.name == "onnxruntime"
    sel = b.selection
    assert sel["onnxruntime"]["step_ms"] < sel["torch"]["step_ms"]
    assert sel["onnxruntime"]["self_check_rel_err"] == 0.0
    assert "self-check failed" in sel["tensorrt"]["dropped"]
    assert "fastest passing backend" in b.selection_reason and "tensorrt: self-check failed" in b.selection_reason
    assert "inference backend: onnxruntime" in caplog.text and "dropped" in caplog.text


def test_auto_ranking_is_measured_once_per_process(model, monkeypatch):
    _avail(monkeypatch, False, False, False, True)
    created = _fakes(monkeypatch, model, {"torch": {"delay": 0.02}, "onnxruntime": {}})
    assert create_backend("auto", model, "cpu").name == "onnxruntime"
    assert created == ["torch", "onnxruntime"]
    created.clear()
    b = create_backend("auto", model, "cpu")
    assert b.name == "onnxruntime" and created == ["onnxruntime"]  # no second measurement
    assert "measured earlier in this process" in b.selection_reason
    created.clear()
    create_backend("auto", model, "cpu", threads=1)  # other options: measured again
    assert created == ["torch", "onnxruntime"]


def test_cached_ranking_falls_through_when_the_fastest_cannot_start(model, monkeypatch):
    _avail(monkeypatch, False, False, False, True)
    specs = {"torch": {"delay": 0.02}, "onnxruntime": {}}
    _fakes(monkeypatch, model, specs)
    create_backend("auto", model, "cpu")
    specs["onnxruntime"] = BackendError("the export directory vanished")
    b = create_backend("auto", model, "cpu")
    assert b.name == "torch" and "export directory vanished" in b.selection_reason


def test_auto_drops_candidates_that_fail_to_start_or_to_run(model, monkeypatch, caplog):
    _avail(monkeypatch, True, True, True)
    _fakes(monkeypatch, model, {"torch": {}, "tensorrt": RuntimeError("TensorRT could not parse denoiser_step.onnx"),
                                "onnxruntime": {"fail": "CUDA provider lost the device"}})
    with caplog.at_level(logging.WARNING):
        b = create_backend("auto", model, "cpu")  # CUDA availability is patched in
    assert b.name == "torch"
    assert "could not parse" in b.selection_reason and "lost the device" in b.selection_reason
    assert caplog.text.count("is unusable") == 2


def test_auto_on_cpu_measures_the_real_backends(model, tmp_path):
    # Real torch eager vs real onnxruntime-CPU (exported on the fly): the faster one is chosen, both agree.
    pytest.importorskip("onnxruntime")
    pytest.importorskip("onnx")
    b = create_backend("auto", model, "cpu", cache_dir=tmp_path)
    sel = b.selection
    assert set(sel) == {"torch", "onnxruntime"}
    assert sel["onnxruntime"]["self_check_rel_err"] < 1e-4
    assert b.name == min(sel, key=lambda k: sel[k]["step_ms"])
    assert "one denoiser step" in b.selection_reason


def test_explicit_tensorrt_without_tensorrt_gives_install_hint(model, monkeypatch):
    monkeypatch.setitem(sys.modules, "tensorrt", None)  # make `import tensorrt` fail even if installed
    with pytest.raises(BackendError, match="TensorRT Python wheel"):
        create_backend("tensorrt", model, "cuda:0")


def test_explicit_tensorrt_needs_cuda(model, monkeypatch):
    monkeypatch.setattr(select, "tensorrt_available", lambda: True)
    monkeypatch.setitem(sys.modules, "tensorrt", type(sys)("tensorrt"))
    with pytest.raises(BackendError, match="CUDA device"):
        create_backend("tensorrt", model, "cpu")


def test_explicit_onnxruntime_without_onnxruntime_gives_install_hint(model, monkeypatch):
    monkeypatch.setitem(sys.modules, "onnxruntime", None)
    with pytest.raises(BackendError, match=r"pip install 'syncvp_ros\[export\]'"):
        create_backend("onnxruntime", model, "cpu")


def test_onnxruntime_cuda_without_cuda_provider_is_refused_before_exporting(model, monkeypatch, tmp_path):
    pytest.importorskip("onnxruntime")
    monkeypatch.setattr(select, "onnxruntime_cuda_available", lambda: False)
    with pytest.raises(BackendError, match="onnxruntime-gpu"):
        create_backend("onnxruntime", model, "cuda:0", cache_dir=tmp_path)
    assert not list(tmp_path.iterdir())


def test_unknown_kind_and_option(model):
    with pytest.raises(BackendError, match="unknown backend"):
        create_backend("openvino", model)
    with pytest.raises(BackendError, match="unknown backend option"):
        create_backend("torch", model, precision_typo="fp16")


def test_cuda_graphs_need_cuda(model):
    with pytest.raises(BackendError, match="CUDA graphs need a CUDA device"):
        create_backend("torch", model, "cpu", cuda_graphs=True)


def test_predictor_reports_the_chosen_backend(monkeypatch):
    monkeypatch.setattr(select, "onnxruntime_available", lambda: False)
    p = Predictor.from_config(micro_config(), seed=0, backend="auto")
    assert p.backend_name == "torch" and p.backend.selection_reason.startswith("the only installed backend")
