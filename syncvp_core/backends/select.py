"""Backend selection: ``auto`` | ``torch`` | ``onnxruntime`` | ``tensorrt``.

``auto`` tries, in order: TensorRT (when ``tensorrt`` imports and the requested device is a usable CUDA
device), onnxruntime with the CUDA execution provider (same condition, for onnxruntime-gpu), then torch.
A candidate that fails to start (e.g. an engine build error) is logged and the next one is tried. The chosen
backend and the reason are logged and kept on the backend as ``selection_reason``.

An explicitly requested backend that cannot start raises :class:`BackendError` (with an install hint for a
missing optional package) instead of silently running something else.

Options (keyword arguments of :func:`create_backend`, all optional):

* ``export_dir``: a ``syncvp export`` directory for onnxruntime/TensorRT; without it the model is exported on
  the fly into the cache (``cache_dir``, default ``~/.cache/syncvp``);
* ``precision`` (TensorRT: fp16 | bf16 | fp32, default fp16), ``engine_dir``, ``opt_batch``, ``max_batch``;
* ``compile`` / ``compile_autoencoders`` / ``cuda_graphs`` (torch), ``threads`` (onnxruntime intra-op threads).
"""
from __future__ import annotations

import logging
from pathlib import Path

import torch

from ..export.deps import MissingDependency, available
from ..models.syncvp import SyncVPModel
from .errors import BackendError
from .torch_backend import TorchBackend

log = logging.getLogger(__name__)

BACKENDS = ("auto", "torch", "onnxruntime", "tensorrt")
TORCH_OPTIONS = ("compile", "cuda_graphs", "compile_mode", "compile_autoencoders")
EXPORT_OPTIONS = ("export_dir", "cache_dir", "opset")
ORT_OPTIONS = ("threads",)
TRT_OPTIONS = ("precision", "engine_dir", "opt_batch", "max_batch", "workspace_bytes")

__all__ = ["BACKENDS", "BackendError", "create_backend", "auto_candidates"]


# Availability probes, module-level so tests can monkeypatch them.
def tensorrt_available() -> bool:
    return available("tensorrt")


def cuda_usable(device: str) -> bool:
    return torch.device(device).type == "cuda" and torch.cuda.is_available()


def onnxruntime_cuda_available() -> bool:
    from .onnxruntime_backend import cuda_provider_available

    return cuda_provider_available()


def auto_candidates(device: str) -> list[tuple[str, str]]:
    """Backends ``auto`` tries for ``device``, in order, each with the reason it qualifies."""
    out: list[tuple[str, str]] = []
    skipped: list[str] = []
    if not cuda_usable(device):
        skipped.append(f"device {device!r} is not a usable CUDA device (TensorRT and onnxruntime-CUDA need one)")
    else:
        if tensorrt_available():
            out.append(("tensorrt", f"tensorrt imports and CUDA device {device!r} is available"))
        else:
            skipped.append("tensorrt is not importable")
        if onnxruntime_cuda_available():
            out.append(("onnxruntime", "onnxruntime has the CUDAExecutionProvider"))
        else:
            skipped.append("onnxruntime has no CUDAExecutionProvider")
    out.append(("torch", "fallback: " + "; ".join(skipped) if skipped else "fallback after the others failed"))
    return out


def create_backend(kind: str, model: SyncVPModel, device: str = "cpu", checkpoint: Path | None = None,
                   **options):
    if kind not in BACKENDS:
        raise BackendError(f"unknown backend {kind!r}; choose one of {BACKENDS}")
    known = set(TORCH_OPTIONS + EXPORT_OPTIONS + ORT_OPTIONS + TRT_OPTIONS)
    unknown = sorted(set(options) - known)
    if unknown:
        raise BackendError(f"unknown backend option(s) {unknown}; known: {sorted(known)}")
    if kind != "auto":
        backend = _create(kind, model, device, checkpoint, options)
        backend.selection_reason = "requested"
        log.info("inference backend: %s on %s (requested)", backend.name, device)
        return backend
    failures = []
    for cand, reason in auto_candidates(device):
        try:
            backend = _create(cand, model, device, checkpoint, options)
        except Exception as e:  # noqa: BLE001 - auto must fall through to the next candidate, and say why
            if cand == "torch":
                raise
            failures.append(f"{cand}: {e}")
            log.warning("backend auto: %s is unusable (%s: %s); trying the next candidate", cand, type(e).__name__, e)
            continue
        if failures:
            reason += " (failed: " + " | ".join(failures) + ")"
        backend.selection_reason = reason
        log.info("inference backend: %s on %s (auto: %s)", backend.name, device, reason)
        return backend
    raise AssertionError("unreachable: torch is always a candidate")


def _create(kind: str, model: SyncVPModel, device: str, checkpoint: Path | None, options: dict):
    try:
        if kind == "torch":
            opts = {k: options[k] for k in TORCH_OPTIONS if k in options}
            if opts.get("compile") or opts.get("cuda_graphs"):
                from .torch_compiled import CompiledTorchBackend

                return CompiledTorchBackend(model, device, compile=bool(opts.get("compile")),
                                            cuda_graphs=bool(opts.get("cuda_graphs")),
                                            compile_mode=opts.get("compile_mode"),
                                            compile_autoencoders=bool(opts.get("compile_autoencoders")))
            return TorchBackend(model, device)
        if kind == "onnxruntime":
            from ..export.deps import require
            from .onnxruntime_backend import OnnxRuntimeBackend

            require("onnxruntime", "the onnxruntime backend")  # hint before exporting anything
            if torch.device(device).type == "cuda" and not onnxruntime_cuda_available():
                raise BackendError(f"device {device!r}: this onnxruntime has no CUDAExecutionProvider; install "
                                   "onnxruntime-gpu instead of onnxruntime, or use device cpu")

            manifest = _manifest_for(model, checkpoint, options)
            return OnnxRuntimeBackend(manifest, device, threads=options.get("threads"))
        from ..export.deps import require
        from .tensorrt_backend import TensorRTBackend

        if not tensorrt_available():
            require("tensorrt", "the TensorRT backend")  # the install hint, before exporting anything
        if not cuda_usable(device):
            raise BackendError(f"the TensorRT backend needs a CUDA device, got device={device!r}")
        manifest = _manifest_for(model, checkpoint, options)
        trt_opts = {k: options[k] for k in TRT_OPTIONS if k in options}
        return TensorRTBackend(manifest, device, **trt_opts)
    except MissingDependency as e:
        raise BackendError(str(e)) from e


def _manifest_for(model: SyncVPModel, checkpoint: Path | None, options: dict):
    """The export the graph backends run: ``export_dir`` (checked against the model) or an on-the-fly one."""
    from ..export.manifest import ExportError, check_matches, read_manifest
    from ..export.onnx_cache import ensure_export
    from ..export.onnx_export import weights_sha256

    try:
        if options.get("export_dir"):
            manifest = read_manifest(options["export_dir"])
            check_matches(manifest, model.cfg, weights_sha256(model))
            return manifest
        source = {"checkpoint": str(checkpoint)} if checkpoint else {"checkpoint": None}
        kw = {"opset": options["opset"]} if options.get("opset") else {}
        return ensure_export(model, options.get("cache_dir"), source=source, **kw)
    except ExportError as e:
        raise BackendError(str(e)) from e
