"""Backend selection: ``auto`` order and fallbacks with monkeypatched availability, explicit requests, and
install hints instead of tracebacks for missing optional packages."""
import logging
import sys

import pytest

from syncvp_core.backends import select
from syncvp_core.backends.select import BackendError, auto_candidates, create_backend
from syncvp_core.backends.torch_backend import TorchBackend
from syncvp_core.predictor import Predictor
from syncvp_core.testing import micro_config


@pytest.fixture(scope="module")
def model():
    return Predictor.from_config(micro_config(), seed=0).model


def _avail(monkeypatch, cuda, trt, ort_cuda):
    monkeypatch.setattr(select, "cuda_usable", lambda device: cuda)
    monkeypatch.setattr(select, "tensorrt_available", lambda: trt)
    monkeypatch.setattr(select, "onnxruntime_cuda_available", lambda: ort_cuda)


@pytest.mark.parametrize("cuda,trt,ort_cuda,expected", [
    (True, True, True, ["tensorrt", "onnxruntime", "torch"]),
    (True, True, False, ["tensorrt", "torch"]),
    (True, False, True, ["onnxruntime", "torch"]),
    (True, False, False, ["torch"]),
    (False, True, True, ["torch"]),  # no CUDA: neither TensorRT nor onnxruntime-CUDA qualifies
])
def test_auto_order(monkeypatch, cuda, trt, ort_cuda, expected):
    _avail(monkeypatch, cuda, trt, ort_cuda)
    cands = auto_candidates("cuda:0")
    assert [k for k, _ in cands] == expected
    assert all(reason for _, reason in cands)


def test_auto_on_cpu_picks_torch_and_says_why(model, caplog):
    with caplog.at_level(logging.INFO, logger="syncvp_core.backends.select"):
        b = create_backend("auto", model, "cpu")
    assert isinstance(b, TorchBackend) and b.name == "torch"
    assert "not a usable CUDA device" in b.selection_reason
    assert "inference backend: torch" in caplog.text and "auto" in caplog.text


def test_auto_falls_through_failing_candidates(model, monkeypatch, caplog):
    _avail(monkeypatch, True, True, True)
    real = select._create
    tried = []

    def fake_create(kind, model, device, checkpoint, options):
        tried.append(kind)
        if kind == "tensorrt":
            raise RuntimeError("TensorRT could not parse denoiser_step.onnx")
        if kind == "onnxruntime":
            raise BackendError("onnxruntime could not start the CUDA provider")
        return real(kind, model, "cpu", checkpoint, options)

    monkeypatch.setattr(select, "_create", fake_create)
    with caplog.at_level(logging.WARNING):
        b = create_backend("auto", model, "cuda:0")
    assert tried == ["tensorrt", "onnxruntime", "torch"] and b.name == "torch"
    assert "could not parse" in b.selection_reason and "CUDA provider" in b.selection_reason
    assert caplog.text.count("trying the next candidate") == 2


def test_auto_picks_tensorrt_when_it_starts(model, monkeypatch):
    _avail(monkeypatch, True, True, False)

    class FakeTRT:
        name = "tensorrt"

    monkeypatch.setattr(select, "_create", lambda kind, *a: FakeTRT() if kind == "tensorrt" else None)
    b = create_backend("auto", model, "cuda:0")
    assert b.name == "tensorrt" and "tensorrt imports" in b.selection_reason


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


def test_predictor_reports_the_chosen_backend():
    p = Predictor.from_config(micro_config(), seed=0, backend="auto")
    assert p.backend_name == "torch"
