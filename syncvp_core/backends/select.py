"""Backend selection: ``auto`` | ``torch`` | ``onnxruntime`` | ``tensorrt``.

``auto`` picks the FASTEST backend that is installed and passes its self-check, measured on this machine:

1. candidates: torch always; onnxruntime when it imports (on a CUDA device only with its CUDA execution
   provider); TensorRT when it imports and the device is a usable CUDA device;
2. each candidate that starts runs one joint denoiser step on fixed random inputs and must agree with torch
   eager (relative max error within :data:`SELF_CHECK_TOL`); a candidate that fails to start or to agree is
   logged and dropped;
3. the passing candidates are ranked by the median time of that step (it runs ``steps`` times per prediction
   and dominates it), and the fastest is used. With torch the only candidate
   nothing is measured.

The ranking is cached per process (key: model config, device, options), so a second Predictor of the same
model (a node reconfigured, a test suite) does not measure again; it starts the fastest one, falling through
the ranking if it cannot start. The choice, the timings and the reason are logged and kept on the backend as
``selection_reason`` and ``selection`` (per candidate: median step ms, self-check error, or why it was dropped).

An explicitly requested backend that cannot start raises :class:`BackendError` (with an install hint for a
missing optional package) instead of silently running something else.

Options (keyword arguments of :func:`create_backend`, all optional):

* ``export_dir``: a ``syncvp export`` directory for onnxruntime/TensorRT; without it the model is exported on
  the fly into the cache (``cache_dir``, default ``~/.cache/syncvp``);
* ``precision`` (TensorRT: fp16 | bf16 | fp32, default fp16), ``engine_dir``, ``opt_batch``, ``max_batch``;
* ``compile`` / ``compile_autoencoders`` / ``compile_mode`` / ``compile_backend`` / ``cuda_graphs`` (torch),
  ``threads`` (onnxruntime intra-op threads).
"""
from __future__ import annotations

import json
import logging
from pathlib import Path

import torch

from ..export.deps import MissingDependency, available
from ..models.syncvp import SyncVPModel
from .base import Backend
from .errors import BackendError
from .selfcheck import random_step_inputs, relative_error, time_step
from .torch_backend import TorchBackend

log = logging.getLogger(__name__)

BACKENDS = ("auto", "torch", "onnxruntime", "tensorrt")
TORCH_OPTIONS = ("compile", "cuda_graphs", "compile_mode", "compile_autoencoders", "compile_backend")
EXPORT_OPTIONS = ("export_dir", "cache_dir", "opset")
ORT_OPTIONS = ("threads",)
TRT_OPTIONS = ("precision", "engine_dir", "opt_batch", "max_batch", "workspace_bytes")

__all__ = ["BACKENDS", "BackendError", "create_backend", "auto_candidates", "clear_auto_cache"]

# Self-check tolerance: max |out - torch eager| / max |torch eager| over the step's outputs. fp32 graph
# runtimes agree to ~1e-6; TensorRT's fp16/bf16 engines to ~1e-3 (docs/deployment.md §4).
SELF_CHECK_TOL = {"fp32": 1e-3, "half": 5e-2}
# Timing per candidate: at least one step after warm-up, at most this many, stopping after TIME_BUDGET_S.
TIMED_STEPS = 5
TIME_BUDGET_S = 3.0

_ranking_cache: dict[str, list[str]] = {}


# Availability probes, module-level so tests can monkeypatch them.
def tensorrt_available() -> bool:
    return available("tensorrt")


def cuda_usable(device: str) -> bool:
    return torch.device(device).type == "cuda" and torch.cuda.is_available()


def onnxruntime_available() -> bool:
    # The graph backends export on the fly, so onnx must import too.
    return available("onnxruntime") and available("onnx")


def onnxruntime_cuda_available() -> bool:
    from .onnxruntime_backend import cuda_provider_available

    return cuda_provider_available()


def auto_candidates(device: str) -> list[tuple[str, str]]:
    """Backends ``auto`` measures for ``device``, torch first (the self-check reference), each with the
    reason it qualifies."""
    out: list[tuple[str, str]] = [("torch", "always available (the reference)")]
    if cuda_usable(device):
        if tensorrt_available():
            out.append(("tensorrt", f"tensorrt imports and CUDA device {device!r} is available"))
        if onnxruntime_cuda_available():
            out.append(("onnxruntime", "onnxruntime has the CUDAExecutionProvider"))
    elif torch.device(device).type == "cpu" and onnxruntime_available():
        out.append(("onnxruntime", "onnxruntime and onnx import"))
    return out


def clear_auto_cache() -> None:
    """Forget the measured rankings (the next ``auto`` measures again)."""
    _ranking_cache.clear()


def create_backend(kind: str, model: SyncVPModel, device: str = "cpu", checkpoint: Path | None = None,
                   **options) -> Backend:
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
    key = json.dumps([model.cfg.to_dict(), str(device), {k: str(v) for k, v in sorted(options.items())}],
                     sort_keys=True, default=str)
    if key in _ranking_cache:
        return _start_ranked(_ranking_cache[key], model, device, checkpoint, options)
    backend, ranking = _measure(model, device, checkpoint, options)
    _ranking_cache[key] = ranking
    return backend


def _start_ranked(ranking: list[str], model, device, checkpoint, options):
    """A cached ranking: start the fastest candidate that starts (torch is always last-resort)."""
    failures = []
    for kind in ranking + ([] if "torch" in ranking else ["torch"]):
        try:
            backend = _create(kind, model, device, checkpoint, options)
        except Exception as e:  # noqa: BLE001 - fall through the ranking, and say why
            if kind == "torch":
                raise
            failures.append(f"{kind}: {e}")
            log.warning("backend auto: %s is unusable (%s: %s); trying the next candidate", kind, type(e).__name__, e)
            continue
        backend.selection_reason = f"fastest passing backend measured earlier in this process (ranking {ranking})"
        if failures:
            backend.selection_reason += " (failed: " + " | ".join(failures) + ")"
        backend.selection = {}
        log.info("inference backend: %s on %s (auto: %s)", backend.name, device, backend.selection_reason)
        return backend
    raise AssertionError("unreachable: torch is always a candidate")


def _tolerance(kind: str, options: dict) -> float:
    half = kind == "tensorrt" and options.get("precision", "fp16") != "fp32"
    return SELF_CHECK_TOL["half" if half else "fp32"]


def _measure(model: SyncVPModel, device: str, checkpoint: Path | None, options: dict):
    """Start, self-check and time every candidate; keep the fastest passing one. Returns (backend, ranking)."""
    candidates = auto_candidates(device)
    if len(candidates) == 1:  # torch alone: nothing to rank, nothing to check it against
        backend = _create("torch", model, device, checkpoint, options)
        backend.selection_reason = f"the only installed backend for {device} ({candidates[0][1]})"
        backend.selection = {"torch": {"qualifies": candidates[0][1]}}
        log.info("inference backend: %s on %s (auto: %s)", backend.name, device, backend.selection_reason)
        return backend, ["torch"]
    inputs = random_step_inputs(model.cfg, device)
    results: dict[str, dict] = {}
    started: dict[str, object] = {}
    ref = None
    for kind, why in candidates:
        try:
            backend = _create(kind, model, device, checkpoint, options)
            sec, eps_r, eps_d = time_step(backend, inputs, device, TIMED_STEPS, TIME_BUDGET_S)
        except Exception as e:  # noqa: BLE001 - auto drops a candidate that cannot run, and says why
            if kind == "torch":
                raise
            results[kind] = {"dropped": f"{type(e).__name__}: {str(e).splitlines()[0][:200] if str(e) else ''}"}
            log.warning("backend auto: %s is unusable (%s); trying the others", kind, results[kind]["dropped"])
            continue
        if ref is None:  # torch eager comes first: the reference
            ref = (eps_r, eps_d)
        err = relative_error((eps_r, eps_d), ref)
        results[kind] = {"step_ms": sec * 1e3, "self_check_rel_err": err, "qualifies": why}
        if err > _tolerance(kind, options):
            results[kind]["dropped"] = f"self-check failed: relative error {err:.2e} vs torch eager"
            log.warning("backend auto: %s dropped, %s", kind, results[kind]["dropped"])
            continue
        started[kind] = backend
    ranking = sorted(started, key=lambda k: results[k]["step_ms"])
    best = ranking[0]
    backend = started[best]
    started.clear()  # release the losers (sessions, engines, device memory)
    timings = ", ".join(f"{k} {results[k]['step_ms']:.1f} ms" for k in ranking)
    dropped = "; ".join(f"{k}: {r['dropped']}" for k, r in results.items() if "dropped" in r)
    backend.selection_reason = (f"fastest passing backend on {device}: one denoiser step {timings}"
                                + (f" (dropped: {dropped})" if dropped else ""))
    backend.selection = results
    log.info("inference backend: %s on %s (auto: %s)", backend.name, device, backend.selection_reason)
    return backend, ranking


def _create(kind: str, model: SyncVPModel, device: str, checkpoint: Path | None, options: dict) -> Backend:
    try:
        if kind == "torch":
            opts = {k: options[k] for k in TORCH_OPTIONS if k in options}
            if opts.get("compile") or opts.get("cuda_graphs"):
                from .torch_compiled import CompiledTorchBackend

                return CompiledTorchBackend(model, device, compile=bool(opts.get("compile")),
                                            cuda_graphs=bool(opts.get("cuda_graphs")),
                                            compile_mode=opts.get("compile_mode"),
                                            compile_autoencoders=bool(opts.get("compile_autoencoders")),
                                            compile_backend=opts.get("compile_backend", "inductor"))
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
